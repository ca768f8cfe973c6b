//! How commands fail and stop: an unreachable registry at once, usage errors with exit 2,
//! interrupts with 130/143 and nothing left behind, a bad config file for every command,
//! read-only commands on a root with no store, root needed before any download, and a
//! non-root pull that meets an opaque directory.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::image::{self, Entry};
use crate::support::netenv::{filled_registry, noise_image};
use crate::support::registry::{Registry, free_port};
use crate::support::strata::{self, Output, Strata};
use crate::support::{self, tempdir};

/// Generous bound for "at once": retries took 10-12 s.
const AT_ONCE: Duration = Duration::from_secs(5);

#[test]
fn an_unreachable_registry_fails_at_once_with_the_reason() {
    let s = Strata::new();
    let port = free_port();
    let started = Instant::now();
    let out = s.pull(&format!("127.0.0.1:{port}/library/alpine:latest"));
    let took = started.elapsed();
    out.assert_error(&["cannot reach registry", "onnection refused"]);
    assert!(took < AT_ONCE, "took {took:?}:\n{}", out.describe());
    assert!(
        !out.stderr.contains("retrying"),
        "no retries:\n{}",
        out.describe()
    );

    let started = Instant::now();
    let out = s.pull("nosuchhost.invalid/library/alpine:latest");
    let took = started.elapsed();
    out.assert_error(&["cannot reach registry nosuchhost.invalid"]);
    assert!(took < AT_ONCE, "took {took:?}:\n{}", out.describe());
    assert!(
        !out.stderr.contains("retrying"),
        "no retries:\n{}",
        out.describe()
    );
}

#[test]
fn usage_errors_exit_2() {
    let s = Strata::new();
    for args in [
        &["pull", "library/UPPER"][..],
        &["pull", "alpine:bad tag"],
        &["export", "alpine::x", "/tmp/never-made"],
        &["pull-and-mount", "Bad/Ref"],
        &["tag", "alpine", "not@valid"],
        &["--platform", "linux/", "pull", "alpine"],
        &["--max-concurrent-downloads", "0", "pull", "alpine"],
        &["--mirror", "docker.io", "pull", "alpine"],
        &["--mirror", "docker.io=ftp://x", "pull", "alpine"],
        &["no-such-command"],
        &["pull"],
    ] {
        let out = s.run(args);
        assert_eq!(out.code(), Some(2), "usage error:\n{}", out.describe());
        assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    }
}

/// A registry behind a relay that passes each connection's first 64 KiB from the registry,
/// then nothing more: a pull or export gets going (manifest, config, the start of each
/// layer), then hangs until interrupted. Returns the registry and the relay's address.
fn stalling_registry() -> (Registry, String) {
    support::preflight();
    let img = noise_image(7, 3, 400_000);
    let reg = filled_registry(&[("test/app", "v1", &img)]);
    let upstream: std::net::SocketAddr = reg.addr().parse().expect("registry address");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
    let addr = listener.local_addr().expect("relay address").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone())
            else {
                continue;
            };
            std::thread::spawn(move || std::io::copy(&mut client_r, &mut server_w));
            std::thread::spawn(move || {
                let (mut server, mut client) = (server, client);
                let mut passed = 0usize;
                let mut buf = [0u8; 4096];
                while passed < 64 * 1024 {
                    match server.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if client.write_all(&buf[..n]).is_err() {
                                return;
                            }
                            passed += n;
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(120));
            });
        }
    });
    (reg, addr)
}

/// Starts `strata --root ROOT ARGS` with SIGINT and SIGTERM at their defaults (a test run
/// in the background of a non-interactive shell inherits SIGINT ignored), waits until
/// `started` holds, sends `signal` and returns the output.
fn interrupt(s: &Strata, args: &[&str], started: impl Fn() -> bool, signal: i32) -> Output {
    let mut cmd = Command::new("env");
    cmd.args(["--default-signal=INT,TERM"])
        .arg(strata::bin())
        .arg("--root")
        .arg(s.root())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().expect("run strata");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started() {
        if Instant::now() > deadline || child.try_wait().is_ok_and(|s| s.is_some()) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait for strata");
            panic!(
                "the command never got going: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let sent = Instant::now();
    let out = child.wait_with_output().expect("wait for strata");
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "stopped at once, not after the stall: {:?}",
        sent.elapsed()
    );
    let mut all = vec!["--root".to_string(), s.root().display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: all,
    }
}

/// Entries of `dir` (none when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The interrupted command's exit code and its one-line message.
#[track_caller]
fn assert_interrupted(out: &Output, code: i32, name: &str) {
    assert_eq!(out.code(), Some(code), "{}", out.describe());
    let last = out.stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("error: interrupted by {name}"),
        "{}",
        out.describe()
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
}

#[test]
fn an_interrupted_pull_exits_130_and_leaves_no_staging() {
    let (reg, relay) = stalling_registry();
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let s = Strata::new();
        let staging = s.root().join("staging");
        let image = format!("{relay}/test/app:v1");
        let out = interrupt(
            &s,
            &["pull", &image],
            || !entries(&staging).is_empty(),
            signal,
        );
        assert_interrupted(&out, code, name);
        assert_eq!(
            entries(&staging),
            Vec::<String>::new(),
            "{}",
            out.describe()
        );
        // The store is usable: a pull straight from the registry brings the image whole.
        s.pull(&format!("{}/test/app:v1", reg.addr())).ok();
    }
}

#[test]
fn an_interrupted_export_exits_130_and_leaves_nothing() {
    let (_reg, relay) = stalling_registry();
    let scratch = tempdir("interrupt-export");
    let s = Strata::new();
    let target = scratch.path().join("rootfs");
    let image = format!("{relay}/test/app:v1");
    let out = interrupt(
        &s,
        &["export", &image, target.to_str().expect("UTF-8")],
        || !entries(scratch.path()).is_empty(),
        libc::SIGINT,
    );
    assert_interrupted(&out, 130, "SIGINT");
    assert_eq!(
        entries(scratch.path()),
        Vec::<String>::new(),
        "{}",
        out.describe()
    );
}

/// An export from the store (no network: nothing stalls it) of an image of many small files,
/// so that it is still writing when the signal comes: SIGINT and SIGTERM each stop it with
/// their code and one line, the staging directory is gone at once, and a second export to
/// the same target then completes (the store's lease was released).
#[test]
fn an_interrupted_export_from_the_store_exits_130_and_leaves_nothing() {
    support::preflight();
    let mut b = image::ImageBuilder::new(image::Flavor::Oci);
    for layer in 0..4 {
        let mut entries = vec![Entry::dir(&format!("l{layer}"))];
        entries.extend(
            (0..6000).map(|i| Entry::file(&format!("l{layer}/f{i}"), format!("{layer}/{i}\n"))),
        );
        b = b.entries(&entries, image::Compression::Gzip);
    }
    let img = b.build();
    let reg = filled_registry(&[("test/many", "v1", &img)]);
    let s = Strata::new();
    let image = format!("{}/test/many:v1", reg.addr());
    s.pull(&image).ok();
    let scratch = tempdir("interrupt-stored-export");
    let target = scratch.path().join("rootfs");
    let target_arg = target.to_str().expect("UTF-8");
    for (signal, code, name) in [
        (libc::SIGINT, 130, "SIGINT"),
        (libc::SIGTERM, 143, "SIGTERM"),
    ] {
        let out = interrupt(
            &s,
            &["export", "--pull", "never", &image, target_arg],
            || !entries(scratch.path()).is_empty(),
            signal,
        );
        assert_interrupted(&out, code, name);
        assert!(
            !out.stderr.contains("Exported from the store"),
            "{}",
            out.describe()
        );
        assert_eq!(
            entries(scratch.path()),
            Vec::<String>::new(),
            "{}",
            out.describe()
        );
    }
    let out = s
        .run(&["export", "--pull", "never", &image, target_arg])
        .ok();
    assert!(
        out.stderr.contains("Exported from the store"),
        "{}",
        out.describe()
    );
    assert_eq!(
        fs::read_to_string(target.join("l3/f5999")).expect("exported file"),
        "3/5999\n"
    );
}

/// Runs `strata ARGS` (with `--root` among them, or none) and returns the output.
fn run_plain(args: &[&str]) -> Output {
    let mut cmd = Command::new(strata::bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run strata");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

#[test]
fn read_only_commands_on_a_missing_root_say_so_and_create_nothing() {
    let scratch = tempdir("no-store");
    for (i, command) in [
        &["images"][..],
        &["images", "-q"],
        &["ps"],
        &["inspect", "alpine"],
        &["system", "df"],
        &["check"],
    ]
    .iter()
    .enumerate()
    {
        let missing = scratch.path().join(format!("typo{i}"));
        let mut args = vec!["--root", missing.to_str().expect("UTF-8")];
        args.extend_from_slice(command);
        let out = run_plain(&args);
        out.assert_error(&["no strata store at", missing.to_str().expect("UTF-8")]);
        assert!(!missing.exists(), "no store made:\n{}", out.describe());
    }
    // Nor is a directory that holds something else (`--root /var/lib` for /var/lib/strata).
    let other = scratch.path().join("other");
    fs::create_dir(&other).expect("mkdir");
    fs::write(other.join("file"), "x").expect("write");
    run_plain(&["--root", other.to_str().expect("UTF-8"), "images"])
        .assert_error(&["no strata store at"]);
    assert_eq!(entries(&other), vec!["file".to_string()]);
    // An empty directory made for a store is one, with no images yet.
    let empty = scratch.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    let out = run_plain(&["--root", empty.to_str().expect("UTF-8"), "images", "-q"]).ok();
    assert_eq!(out.stdout, "");
}

#[test]
fn a_bad_config_file_fails_every_command() {
    let scratch = tempdir("bad-config");
    let s = Strata::new();
    let missing = scratch.path().join("missing.toml");
    let malformed = scratch.path().join("malformed.toml");
    fs::write(
        &malformed,
        "max-concurrent-downloads = \"many\"\n[mirrors\n",
    )
    .expect("write");
    for config in [&missing, &malformed] {
        let config = config.to_str().expect("UTF-8");
        for command in [
            &["images"][..],
            &["ps"],
            &["inspect", "alpine"],
            &["system", "df"],
            &["check"],
            &["rm", "web"],
            &["umount", "web"],
            &["tag", "a", "b"],
            &["rmi", "alpine"],
            &["image", "prune", "-f"],
            &["pull", "127.0.0.1:1/x"],
        ] {
            let mut args = vec!["--config", config];
            args.extend_from_slice(command);
            let out = s.run(&args);
            out.assert_error(&[config]);
        }
    }
}

/// The unprivileged user the tests run strata as.
const NOBODY: u32 = 65534;

/// Runs `strata ARGS` as nobody (no groups) with HOME and XDG_DATA_HOME in `home`.
fn run_as_nobody(home: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(strata::bin())
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run setpriv");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

/// A home directory nobody owns.
fn nobody_home() -> tempfile::TempDir {
    let home = tempdir("nobody");
    std::os::unix::fs::chown(home.path(), Some(NOBODY), Some(NOBODY)).expect("chown home");
    home
}

#[test]
fn a_user_without_subordinate_ids_is_told_what_to_add_before_any_download() {
    support::require_tool("setpriv");
    let home = nobody_home();
    // Were anything fetched first, the unreachable registry would be the error.
    let image = format!("127.0.0.1:{}/library/alpine:latest", free_port());
    for args in [
        &["pull", image.as_str()][..],
        &["pull-and-mount", image.as_str()],
        &["run", "--rm", image.as_str(), "true"],
        &["mount", "web"],
    ] {
        // `run` fails as `docker run` does: 125 for strata's own errors.
        let code = if args[0] == "run" { 125 } else { 1 };
        let out = run_as_nobody(home.path(), args).fails_with(code);
        for needle in [
            "error: ",
            "no subordinate uids in /etc/subuid",
            "/etc/subgid",
        ] {
            assert!(out.stderr.contains(needle), "{needle}: {}", out.describe());
        }
        assert!(!out.stderr.contains("cannot reach"), "{}", out.describe());
    }
    assert!(!home.path().join("data").exists(), "no store made");
}

//! Runs real containers with runc on the Alpine minirootfs. Needs root and runc; skipped with a
//! notice otherwise.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::image::{ContainerConfig, ImageConfig, RootFs};

const RUNTIME: &str = "runc";

fn alpine_tarball() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/alpine/3.20.3/x86_64/alpine-minirootfs-3.20.3-x86_64.tar.gz")
}

/// `None` (after printing why) when these tests cannot run here.
fn runnable(test: &str) -> Option<()> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED {test}: needs root");
        return None;
    }
    if find_runtime(RUNTIME).is_err() {
        eprintln!("SKIPPED {test}: runc not installed (apt-get install -y runc)");
        return None;
    }
    Some(())
}

/// A unique container id; `runc delete -f` runs on drop, whatever happened.
struct Container {
    id: String,
}

impl Container {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Container {
            id: format!("strata-test-{tag}-{}-{n}-{nanos}", std::process::id()),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = delete_container(RUNTIME, &self.id);
    }
}

/// A fresh Alpine rootfs and bundle directory (the tempdir holds both).
fn alpine() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let status = Command::new("tar")
        .arg("xzf")
        .arg(alpine_tarball())
        .arg("-C")
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success(), "tar failed: {status}");
    let bundle = tmp.path().join("bundle");
    (tmp, rootfs, bundle)
}

fn image(env: &[&str]) -> ImageConfig {
    ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        variant: None,
        created: None,
        author: None,
        config: Some(ContainerConfig {
            env: Some(env.iter().map(|s| s.to_string()).collect()),
            cmd: Some(vec!["/bin/sh".into()]),
            ..ContainerConfig::default()
        }),
        rootfs: RootFs {
            r#type: "layers".into(),
            diff_ids: vec![],
        },
        history: None,
    }
}

/// Runs one container; returns (exit code, stdout, stderr).
fn run(tag: &str, image: &ImageConfig, opts: &RunOptions) -> (i32, String, String) {
    let (tmp, rootfs, bundle) = alpine();
    let c = Container::new(tag);
    let spec = build_spec(image, &rootfs, &c.id, opts).unwrap();
    write_bundle(&bundle, &spec).unwrap();
    let out = tmp.path().join("stdout");
    let err = tmp.path().join("stderr");
    let code = run_runtime_with(
        RUNTIME,
        &bundle,
        &c.id,
        Stdio::null(),
        Stdio::from(File::create(&out).unwrap()),
        Stdio::from(File::create(&err).unwrap()),
    )
    .unwrap();
    let out = std::fs::read_to_string(out).unwrap();
    let err = std::fs::read_to_string(err).unwrap();
    (code, out, err)
}

fn args(a: &[&str]) -> RunOptions {
    RunOptions {
        args: a.iter().map(|s| s.to_string()).collect(),
        ..RunOptions::default()
    }
}

#[test]
fn runc_cat_release() {
    if runnable("runc_cat_release").is_none() {
        return;
    }
    let (code, out, err) = run("cat", &image(&[]), &args(&["cat", "/etc/alpine-release"]));
    assert_eq!((code, out.trim()), (0, "3.20.3"), "stderr: {err}");
}

#[test]
fn runc_exit_codes() {
    if runnable("runc_exit_codes").is_none() {
        return;
    }
    let (code, _, err) = run("exit", &image(&[]), &args(&["sh", "-c", "exit 7"]));
    assert_eq!(code, 7, "stderr: {err}");
}

/// The container's init killed from outside: 128 + SIGKILL, like a shell reports it.
#[test]
fn runc_signal_death() {
    if runnable("runc_signal_death").is_none() {
        return;
    }
    let (_tmp, rootfs, bundle) = alpine();
    let c = Container::new("signal");
    let spec = build_spec(&image(&[]), &rootfs, &c.id, &args(&["sleep", "60"])).unwrap();
    write_bundle(&bundle, &spec).unwrap();
    let id = c.id.clone();
    let runner = std::thread::spawn(move || {
        run_runtime_with(
            RUNTIME,
            &bundle,
            &id,
            Stdio::null(),
            Stdio::null(),
            Stdio::null(),
        )
    });
    let runc = find_runtime(RUNTIME).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let state = Command::new(&runc).args(["state", &c.id]).output().unwrap();
        if String::from_utf8_lossy(&state.stdout).contains("\"running\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && !runner.is_finished(),
            "container never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new(&runc)
        .args(["kill", &c.id, "KILL"])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(runner.join().unwrap().unwrap(), 137);
}

#[test]
fn runc_user_workdir_env_hostname() {
    if runnable("runc_user_workdir_env_hostname").is_none() {
        return;
    }
    let opts = RunOptions {
        user: Some("nobody".into()),
        ..args(&["id"])
    };
    let (code, out, err) = run("user", &image(&[]), &opts);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        out.starts_with("uid=65534(nobody) gid=65534(nobody)"),
        "{out}"
    );

    // Root gets its supplementary groups from the image's /etc/group, as in Docker.
    let (_, out, _) = run("root", &image(&[]), &args(&["id"]));
    assert!(
        out.starts_with("uid=0(root) gid=0(root) groups=0(root),1(bin)"),
        "{out}"
    );

    let opts = RunOptions {
        workdir: Some("/tmp".into()),
        ..args(&["pwd"])
    };
    let (code, out, err) = run("pwd", &image(&[]), &opts);
    assert_eq!((code, out.trim()), (0, "/tmp"), "stderr: {err}");

    let opts = RunOptions {
        env: vec!["FOO=override".into(), "NEW=1".into()],
        ..args(&[
            "sh",
            "-c",
            "echo $FOO $NEW $KEEP $HOSTNAME; hostname; ulimit -n",
        ])
    };
    let (code, out, err) = run("env", &image(&["FOO=image", "KEEP=k"]), &opts);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines[0], format!("override 1 k {}", lines[1]));
    assert_eq!(lines[1].len(), 12, "hostname is the short id: {out}");
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    assert_eq!(lines[2], spec::nofile_limit(hard).to_string());
}

#[test]
fn runc_isolation_defaults() {
    if runnable("runc_isolation_defaults").is_none() {
        return;
    }
    // Read-only root; masked /proc/timer_list; loopback-only network; default capabilities;
    // writable /dev/shm; read-only /proc/sys.
    let opts = RunOptions {
        read_only: true,
        ..args(&[
            "sh",
            "-c",
            "touch /x 2>/dev/null && echo rw || echo ro; \
             wc -c < /proc/timer_list; ls /sys/class/net | tr '\\n' ' '; echo; \
             grep CapEff /proc/self/status; echo ok > /dev/shm/x && cat /dev/shm/x; \
             awk '$2 == \"/proc/sys\" { print substr($4, 1, 2) }' /proc/mounts",
        ])
    };
    let (code, out, err) = run("iso", &image(&[]), &opts);
    assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines[0], "ro", "{out}");
    assert_eq!(lines[1].trim(), "0", "/proc/timer_list is masked: {out}");
    assert_eq!(lines[2].trim(), "lo", "{out}");
    // Docker's 14 default capabilities.
    assert_eq!(lines[3], "CapEff:\t00000000a80425fb", "{out}");
    assert_eq!(lines[4], "ok", "{out}");
    assert_eq!(lines[5], "ro", "{out}");
}

#[test]
fn runc_missing_binary_is_nonzero() {
    if runnable("runc_missing_binary_is_nonzero").is_none() {
        return;
    }
    let (code, _, err) = run("missing", &image(&[]), &args(&["/no/such/binary"]));
    assert_ne!(code, 0, "stderr: {err}");
}

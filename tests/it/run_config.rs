//! `strata run` / `bundle` configuration flags with the real runc: volumes, tmpfs, mount
//! targets confined to the rootfs, `--network none|host`, `--read-only`, `--hostname`,
//! `--env-file`, capabilities, seccomp, no-new-privileges and `--privileged`.

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;

use serde_json::Value;

use crate::support::image::{self, Compression, Entry, Flavor, ImageBuilder, Layer};
use crate::support::image::{Image, Pusher};
use crate::support::registry::Registry;
use crate::support::strata::{Output, Strata};
use crate::support::{self};

/// A registry with the Alpine test image (plus `extra` entries in a second layer) pushed as
/// `t/alpine:1`, and a strata root. Containers are removed on drop.
struct Env {
    _reg: Registry,
    strata: Strata,
    reference: String,
}

impl Env {
    fn new(extra: &[Entry]) -> Env {
        support::preflight();
        support::require_tool("runc");
        let reg = Registry::start();
        let push = Pusher::new(&reg);
        let arch = support::host_alpine_arch();
        let (os_arch, variant) = image::alpine_platform(arch);
        let mut b = ImageBuilder::new(Flavor::Oci)
            .platform("linux", os_arch, variant)
            .layer(
                Layer::from_tar_gz(&support::alpine_tarball(arch)),
                Compression::Gzip,
            );
        if !extra.is_empty() {
            b = b.entries(extra, Compression::Gzip);
        }
        let img: Image = b.build();
        push.image("t/alpine", Some("1"), &img);
        Env {
            reference: format!("{}/t/alpine:1", reg.addr()),
            _reg: reg,
            strata: Strata::new(),
        }
    }

    /// `strata run --rm FLAGS... IMAGE sh -c SCRIPT`.
    fn sh(&self, flags: &[&str], script: &str) -> Output {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend([self.reference.as_str(), "sh", "-c", script]);
        self.strata.run(&args)
    }

    /// As [`Env::sh`], which must succeed; returns stdout.
    #[track_caller]
    fn sh_ok(&self, flags: &[&str], script: &str) -> String {
        self.sh(flags, script).ok().stdout
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.strata.remove_all_containers();
    }
}

/// A failed run whose stderr mentions every needle.
#[track_caller]
fn assert_refused(out: &Output, needles: &[&str]) {
    assert!(
        !out.status.success(),
        "expected a failure:\n{}",
        out.describe()
    );
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "stderr lacks {n:?}:\n{}",
            out.describe()
        );
    }
}

fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .trim()
        .to_string()
}

/// Bind mounts read-only and read-write, tmpfs with a size, a read-only rootfs with writable
/// mounts, and the errors for relative, named and missing sources.
#[test]
fn volumes_tmpfs_and_read_only_root() {
    let env = Env::new(&[]);
    let tmp = support::tempdir("runcfg-vol");
    let ws = tmp.path().join("ws");
    fs::create_dir(&ws).unwrap();
    fs::write(ws.join("input"), "data\n").unwrap();
    let wsv = ws.display().to_string();

    // Read-only: readable, a write fails.
    let out = env.sh_ok(
        &["-v", &format!("{wsv}:/work:ro")],
        "cat /work/input; touch /work/x 2>/dev/null && echo wrote || echo refused",
    );
    assert_eq!(out, "data\nrefused\n");
    assert!(!ws.join("x").exists());
    // --mount readonly, same.
    let out = env.sh_ok(
        &[
            "--mount",
            &format!("type=bind,source={wsv},target=/work,readonly"),
        ],
        "touch /work/x 2>/dev/null && echo wrote || echo refused",
    );
    assert_eq!(out, "refused\n");

    // A single file, read-only, at a path the image lacks.
    let out = env.sh_ok(
        &["-v", &format!("{wsv}/input:/etc/app/input.conf:ro")],
        "cat /etc/app/input.conf; echo x >> /etc/app/input.conf 2>/dev/null && echo wrote || echo refused",
    );
    assert_eq!(out, "data\nrefused\n");
    // Read-write: a file written inside appears on the host.
    env.sh_ok(&["-v", &format!("{wsv}:/work")], "echo result > /work/out");
    assert_eq!(fs::read_to_string(ws.join("out")).unwrap(), "result\n");

    // -v creates a missing host directory (as Docker does); --mount refuses it.
    let fresh = tmp.path().join("fresh/dir");
    env.sh_ok(
        &["-v", &format!("{}:/new", fresh.display())],
        "touch /new/f",
    );
    assert!(fresh.join("f").is_file());
    let missing = tmp.path().join("missing");
    let out = env.sh(
        &[
            "--mount",
            &format!("type=bind,src={},dst=/m", missing.display()),
        ],
        "true",
    );
    assert_refused(&out, &["bind source path", "missing"]);
    assert!(!missing.exists());
    let out = env.sh(&["-v", "cache:/cache"], "true");
    assert_refused(&out, &["named volumes"]);
    let out = env.sh(&["-v", &format!("{wsv}:work")], "true");
    assert_refused(&out, &["absolute"]);

    // tmpfs: mounted, writable, with the size asked for.
    let out = env.sh_ok(
        &[
            "--mount",
            "type=tmpfs,destination=/t1,tmpfs-size=1m",
            "--tmpfs",
            "/t2:size=2m,mode=1770",
        ],
        "echo x > /t1/f && cat /t1/f; awk '$2 ~ /^\\/t[12]$/ { print $2, $3, $4 }' /proc/mounts",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "x", "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("/t1 tmpfs") && l.contains("size=1024k")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("/t2 tmpfs")
            && l.contains("size=2048k")
            && l.contains("mode=1770")),
        "{out}"
    );

    // --read-only: the rootfs refuses writes, volumes and tmpfs stay writable.
    let out = env.sh_ok(
        &[
            "--read-only",
            "-v",
            &format!("{wsv}:/work"),
            "--tmpfs",
            "/scratch",
        ],
        "touch /root/x 2>/dev/null && echo root-rw || echo root-ro; \
         touch /work/ro-test && echo work-rw; touch /scratch/y && echo tmpfs-rw",
    );
    assert_eq!(out, "root-ro\nwork-rw\ntmpfs-rw\n");
    assert!(ws.join("ro-test").is_file());
}

/// A symlink in the image cannot send a mount point out of the rootfs: `/mnt/x ->
/// /../../../../etc` and `/mnt/abs -> <an absolute host dir>` resolve inside the container.
#[test]
fn mount_targets_stay_in_the_rootfs() {
    let tmp = support::tempdir("runcfg-escape");
    let host_dir = tmp.path().join("hostdir");
    fs::create_dir(&host_dir).unwrap();
    let host_abs = host_dir.display().to_string();
    let env = Env::new(&[
        Entry::symlink("mnt/x", "/../../../../etc"),
        Entry::symlink("mnt/abs", &host_abs),
    ]);
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("marker"), "inside\n").unwrap();
    let srcv = src.display().to_string();
    let host_etc_before: Vec<_> = fs::read_dir("/etc")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    // /mnt/x is the container's /etc: the marker shows there, not in the host's /etc.
    let out = env.sh_ok(&["-v", &format!("{srcv}:/mnt/x")], "cat /etc/marker");
    assert_eq!(out, "inside\n");
    assert!(!Path::new("/etc/marker").exists());
    // /mnt/abs/sub is <host_dir>/sub inside the container; nothing is created on the host.
    let out = env.sh_ok(
        &[
            "-v",
            &format!("{srcv}:/mnt/abs/sub"),
            "--tmpfs",
            "/mnt/x/../../tmpfs-here",
        ],
        &format!(
            "cat {host_abs}/sub/marker; awk '$2 == \"/tmpfs-here\" {{ print $3 }}' /proc/mounts"
        ),
    );
    assert_eq!(out, "inside\ntmpfs\n");
    assert_eq!(
        fs::read_dir(&host_dir).unwrap().count(),
        0,
        "created on the host"
    );
    let host_etc_after: Vec<_> = fs::read_dir("/etc")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(host_etc_before, host_etc_after);
    assert!(!Path::new("/tmpfs-here").exists());

    // bundle writes the resolved in-root paths into config.json.
    env.strata
        .run(&["pull-and-mount", "--name", "b", &env.reference])
        .ok();
    let dir = tmp.path().join("bundle");
    let dirs = dir.display().to_string();
    env.strata
        .run(&[
            "bundle",
            "-v",
            &format!("{srcv}:/mnt/x:ro"),
            "-v",
            &format!("{srcv}:/mnt/abs/sub"),
            "b",
            &dirs,
            "--",
            "true",
        ])
        .ok();
    let config: Value =
        serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    let binds: Vec<(String, Vec<String>)> = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "bind")
        .map(|m| {
            let opts = m["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect();
            (m["destination"].as_str().unwrap().to_string(), opts)
        })
        .collect();
    assert_eq!(binds.len(), 2, "{binds:?}");
    assert_eq!(binds[0].0, "/etc");
    assert!(binds[0].1.contains(&"ro".to_string()), "{binds:?}");
    assert_eq!(binds[1].0, format!("{host_abs}/sub"));
}

/// `--network host` reaches a server on the host's loopback and sees the host's resolver
/// files; the default (`none`) cannot reach it. `--hostname` sets the name.
#[test]
fn network_host_versus_none_and_hostname() {
    let env = Env::new(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // One connection: the host-network run's.
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = conn.write_all(b"hello from the host\n");
        }
    });

    let out = env.sh(
        &["--network", "none"],
        &format!(
            "nc 127.0.0.1 {port} </dev/null && echo reached || echo unreachable; ls /sys/class/net"
        ),
    );
    let out = out.ok().stdout;
    assert!(
        out.contains("unreachable") && !out.contains("hello"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.trim() == "lo"), "{out}");

    let out = env.sh_ok(
        &["--network", "host"],
        &format!("nc 127.0.0.1 {port} </dev/null"),
    );
    assert_eq!(out, "hello from the host\n");
    server.join().unwrap();
    let resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if Path::new("/etc/resolv.conf").exists() {
        let out = env.sh_ok(
            &["--network", "host"],
            "cat /etc/resolv.conf; touch /etc/resolv.conf 2>/dev/null && echo rw || echo ro",
        );
        assert_eq!(out, format!("{resolv}ro\n"));
    }
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = env.sh_ok(&["--network", "host"], "hostname");
    assert_eq!(out, host_name, "host network: the host's name");

    let out = env.sh_ok(&["--hostname", "smoke-1"], "hostname; echo $HOSTNAME");
    assert_eq!(out, "smoke-1\nsmoke-1\n");
    let out = env.sh(&["--network", "bridge"], "true");
    assert_refused(&out, &["bridge"]);
}

/// `--env-file` in Docker's format, with `-e` winning.
#[test]
fn env_file() {
    let env = Env::new(&[]);
    let tmp = support::tempdir("runcfg-env");
    let file = tmp.path().join("job.env");
    fs::write(
        &file,
        "# CI settings\nCI=true\n  GREETING=hello world\nOVERRIDDEN=file\n\n",
    )
    .unwrap();
    let f = file.display().to_string();
    let out = env.sh_ok(
        &["--env-file", &f, "-e", "OVERRIDDEN=flag"],
        "echo \"$CI|$GREETING|$OVERRIDDEN\"",
    );
    assert_eq!(out, "true|hello world|flag\n");
    fs::write(&file, "BAD KEY=1\n").unwrap();
    let out = env.sh(&["--env-file", &f], "true");
    assert_refused(&out, &["job.env", "line 1"]);
}

/// Default confinement (seccomp filter on, namespaces blocked, default capabilities) and the
/// flags that change it.
#[test]
fn seccomp_capabilities_and_privileges() {
    let env = Env::new(&[]);
    let status = "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status";

    // Default: filter mode 2, unshare refused by the filter (EPERM), no_new_privs off.
    let out = env.sh_ok(
        &[],
        &format!("{status}; unshare -U true 2>&1 && echo unshared || true"),
    );
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0", "{out}");
    assert_eq!(status_field(&out, "CapEff"), "00000000a80425fb", "{out}");
    assert!(
        out.contains("Operation not permitted") && !out.contains("unshared"),
        "{out}"
    );
    // Docker's masked /proc paths read empty.
    let out = env.sh_ok(&[], "wc -c < /proc/interrupts; wc -c < /proc/timer_list");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0"],
        "{out}"
    );
    // mount is blocked too (no CAP_SYS_ADMIN).
    let out = env.sh_ok(&[], "mount -t tmpfs none /mnt 2>&1 && echo mounted || true");
    assert!(
        out.contains("denied") || out.contains("not permitted"),
        "{out}"
    );

    // seccomp=unconfined lifts the filter: unshare of a user namespace works.
    let out = env.sh_ok(
        &["--security-opt", "seccomp=unconfined"],
        &format!("{status}; unshare -U true && echo unshared"),
    );
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    assert!(out.contains("unshared"), "{out}");

    // A profile file: allow everything but mkdir (EACCES).
    let tmp = support::tempdir("runcfg-seccomp");
    let profile = tmp.path().join("p.json");
    fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let out = env.sh_ok(
        &["--security-opt", &format!("seccomp={}", profile.display())],
        "mkdir /tmp/d 2>&1 || true; unshare -U true && echo unshared",
    );
    assert!(
        out.contains("Permission denied") && out.contains("unshared"),
        "{out}"
    );

    // no-new-privileges.
    let out = env.sh_ok(&["--security-opt", "no-new-privileges"], status);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");

    // --cap-drop CHOWN: chown fails; by default it works.
    let script = "touch /tmp/f && chown nobody /tmp/f 2>&1 && echo chowned || true";
    assert_eq!(env.sh_ok(&[], script), "chowned\n");
    let out = env.sh_ok(&["--cap-drop", "CHOWN"], script);
    assert!(out.contains("Operation not permitted"), "{out}");
    let out = env.sh_ok(&["--cap-drop", "ALL", "--cap-add", "cap_kill"], status);
    assert_eq!(status_field(&out, "CapEff"), "0000000000000020", "{out}");
    // --cap-add SYS_ADMIN lifts the mount rule of the filter as well.
    let out = env.sh_ok(
        &["--cap-add", "SYS_ADMIN"],
        "mount -t tmpfs none /mnt && echo mounted",
    );
    assert_eq!(out, "mounted\n");
    let out = env.sh(&["--cap-add", "NOT_A_CAP"], "true");
    assert_refused(&out, &["NOT_A_CAP"]);

    // --privileged: every capability, no filter, /proc unmasked, host devices, mount works.
    let out = env.sh_ok(
        &["--privileged"],
        &format!(
            "{status}; wc -c < /proc/timer_list; mount -t tmpfs none /mnt && echo mounted; \
             test -c /dev/null && ls /dev | wc -l"
        ),
    );
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    let cap_eff = u64::from_str_radix(&status_field(&out, "CapEff"), 16).unwrap();
    assert!(cap_eff.count_ones() >= 38, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[3].trim(), "0", "/proc/timer_list unmasked: {out}");
    assert_eq!(lines[4], "mounted", "{out}");
    let host_devs = fs::read_dir("/dev").unwrap().count();
    let seen: usize = lines[5].trim().parse().unwrap();
    assert!(
        seen + 10 >= host_devs.min(30),
        "host devices: {seen} of {host_devs}: {out}"
    );

    let out = env.sh(&["--security-opt", "apparmor=docker-default"], "true");
    assert_refused(&out, &["apparmor"]);
}

/// The README's CI smoke-test recipe: a read-only workspace, an output dir, a tmpfs /tmp on a
/// read-only rootfs, an env file, no network, reduced privileges; the test's exit code and
/// output come back.
#[test]
fn readme_ci_smoke_recipe() {
    let env = Env::new(&[]);
    let tmp = support::tempdir("runcfg-ci");
    let ws = tmp.path().join("ws");
    fs::create_dir(&ws).unwrap();
    fs::write(
        ws.join("smoke-test.sh"),
        "#!/bin/sh\nset -e\necho \"ci=$CI job=$JOB host=$(hostname) pwd=$PWD\" > /out/report\n\
         echo tmp > /tmp/t\n! touch /workspace/x 2>/dev/null\n! touch /etc/x 2>/dev/null\nexit 3\n",
    )
    .unwrap();
    fs::set_permissions(
        ws.join("smoke-test.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    fs::write(ws.join("ci.env"), "# job settings\nJOB=smoke\n").unwrap();
    let wsv = ws.display().to_string();
    let out = env.strata.run(&[
        "run",
        "--rm",
        "-v",
        &format!("{wsv}:/workspace:ro"),
        "-v",
        &format!("{wsv}/out:/out"),
        "-w",
        "/workspace",
        "--tmpfs",
        "/tmp:size=256m",
        "--read-only",
        "--env-file",
        &format!("{wsv}/ci.env"),
        "-e",
        "CI=true",
        "--network",
        "none",
        "--hostname",
        "smoke",
        "--cap-drop",
        "NET_RAW",
        "--security-opt",
        "no-new-privileges",
        &env.reference,
        "./smoke-test.sh",
    ]);
    assert_eq!(out.code(), Some(3), "{}", out.describe());
    assert_eq!(
        fs::read_to_string(ws.join("out/report")).unwrap(),
        "ci=true job=smoke host=smoke pwd=/workspace\n"
    );
    assert!(!ws.join("x").exists());
}

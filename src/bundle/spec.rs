//! Building an OCI runtime spec (`config.json`) from an image config and `docker run`-style
//! options, with the defaults Docker and containerd use.
//!
//! Deliberate differences from Docker:
//! - No AppArmor/SELinux labels (the capability set, masked paths, namespaces and the effect
//!   of the default seccomp profile are Docker's; the profile is strata's own, see
//!   [`super::seccomp`]).
//! - No bridge: the container gets a fresh network namespace with loopback only
//!   (`--network none`, the default) or the host's (`--network host`, see [`super::network`]).
//!   With `none` the image's `/etc/hosts` and `/etc/resolv.conf` are left as they are.
//! - `linux.cgroupsPath` is left unset, so runc places the container in a cgroup named after
//!   the container id below the caller's own cgroup, and removes it on exit.
//! - `RLIMIT_NOFILE` is Docker's 1048576 capped at the caller's hard limit: without
//!   `CAP_SYS_RESOURCE` a runtime cannot raise a hard limit and would fail to start.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Linux, LinuxCapabilities, LinuxDeviceCgroup, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, LinuxSeccomp, Mount, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec,
    User,
};

use super::caps::capability_set;
use super::mounts::spec_mounts;
use super::network::{Network, host_file_mounts, host_name};
use super::privileged::host_devices;
use super::seccomp::{DEFAULT_PROFILE, HostArch, SeccompChoice, linux_seccomp};
use super::user::lookup_user;
use super::{BundleError, RunOptions};
use crate::image::{ContainerConfig, ImageConfig};

/// `PATH` given to containers whose image sets none (Docker's default).
pub const DEFAULT_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default `RLIMIT_NOFILE` (soft and hard), before capping at the host hard limit.
pub const DEFAULT_NOFILE: u64 = 1_048_576;

/// Length of the default hostname taken from the container id (Docker's short id).
pub const HOSTNAME_LEN: usize = 12;

pub use super::caps::DEFAULT_CAPABILITIES;

/// Paths masked inside the container (Docker's defaults, `/proc/interrupts` since Docker 28).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths mounted read-only inside the container (Docker's defaults).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Builds the runtime spec for running `image` with `opts` on the mounted `rootfs`.
///
/// `rootfs` becomes `root.path` (made absolute, not canonicalised); a user given by name is
/// looked up in the container's `/etc/passwd` and `/etc/group`, read confined to `rootfs`.
/// See the module docs for what differs from Docker.
pub fn build_spec(
    image: &ImageConfig,
    rootfs: &Path,
    container_id: &str,
    opts: &RunOptions,
) -> Result<Spec, BundleError> {
    let empty = ContainerConfig::default();
    let cfg = image.config.as_ref().unwrap_or(&empty);
    let rootfs = std::path::absolute(rootfs).map_err(|source| BundleError::Io {
        action: "resolve the rootfs path",
        path: rootfs.to_path_buf(),
        source,
    })?;

    let args = command(cfg, opts)?;
    let cwd = working_dir(cfg, opts)?;
    let hostname = opts
        .hostname
        .clone()
        .or_else(|| (opts.network == Network::Host).then(host_name).flatten())
        .unwrap_or_else(|| container_id.chars().take(HOSTNAME_LEN).collect());
    let env = environment(
        cfg.env.as_deref().unwrap_or_default(),
        &hostname,
        opts,
        &|key| std::env::var(key).ok(),
    );
    let user_spec = opts.user.as_deref().or(cfg.user.as_deref()).unwrap_or("");
    let resolved = lookup_user(&rootfs, user_spec)?;
    let mut user = User::default();
    user.set_uid(resolved.uid);
    user.set_gid(resolved.gid);
    if !resolved.additional_gids.is_empty() {
        user.set_additional_gids(Some(resolved.additional_gids));
    }

    let caps = capability_set(&opts.cap_add, &opts.cap_drop, opts.privileged)?;
    let seccomp = seccomp_for(opts, &caps)?;
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps.clone()))
        .set_inheritable(None)
        .set_ambient(None);

    let nofile =
        nofile_limit(rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum);
    let rlimit = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(nofile)
        .hard(nofile)
        .build()
        .map_err(|e| BundleError::Spec(e.to_string()))?;

    let mut process = Process::default();
    process
        .set_terminal(Some(opts.tty))
        .set_user(user)
        .set_args(Some(args))
        .set_env(Some(env))
        .set_cwd(PathBuf::from(cwd))
        .set_capabilities(Some(capabilities))
        .set_rlimits(Some(vec![rlimit]))
        .set_no_new_privileges(Some(opts.no_new_privileges))
        .set_oom_score_adj(None)
        .set_apparmor_profile(None)
        .set_selinux_label(None);

    let mut root = Root::default();
    root.set_path(rootfs.clone())
        .set_readonly(Some(opts.read_only));

    let mut requests = opts.mounts.clone();
    if opts.network == Network::Host {
        requests.extend(host_file_mounts(&opts.mounts));
    }
    let user_mounts = spec_mounts(&rootfs, &requests)?;
    // A user mount replaces a default one at the same place (e.g. `--tmpfs /dev/shm:size=1g`).
    let mut mounts: Vec<Mount> = default_mounts()
        .into_iter()
        .filter(|d| {
            !user_mounts
                .iter()
                .any(|u| u.destination() == d.destination())
        })
        .collect();
    if opts.privileged {
        for m in &mut mounts {
            if matches!(m.typ().as_deref(), Some("sysfs" | "cgroup")) {
                let rw = m
                    .options()
                    .iter()
                    .flatten()
                    .map(|o| {
                        if o == "ro" {
                            "rw".to_string()
                        } else {
                            o.clone()
                        }
                    })
                    .collect();
                m.set_options(Some(rw));
            }
        }
    }
    mounts.extend(user_mounts);

    let mut linux = default_linux();
    if opts.network == Network::Host {
        let kept = linux
            .namespaces()
            .iter()
            .flatten()
            .filter(|n| n.typ() != LinuxNamespaceType::Network)
            .cloned()
            .collect();
        linux.set_namespaces(Some(kept));
    }
    if opts.privileged {
        let mut allow_all = LinuxDeviceCgroup::default();
        allow_all
            .set_allow(true)
            .set_access(Some("rwm".to_string()));
        let mut resources = LinuxResources::default();
        resources.set_devices(Some(vec![allow_all]));
        linux
            .set_masked_paths(None)
            .set_readonly_paths(None)
            .set_devices(Some(host_devices(Path::new("/dev"))))
            .set_resources(Some(resources));
    }
    linux.set_seccomp(seccomp);

    let mut spec = Spec::default();
    spec.set_process(Some(process))
        .set_root(Some(root))
        .set_hostname((!hostname.is_empty()).then_some(hostname))
        .set_mounts(Some(mounts))
        .set_annotations(None)
        .set_linux(Some(linux));
    Ok(spec)
}

/// Largest seccomp profile file read (Docker's default profile is under 20 KiB).
const MAX_PROFILE_SIZE: u64 = 4 << 20;

/// The seccomp filter for `opts` and the capability set `caps`: none when privileged or
/// unconfined, else the chosen profile made for this host and `caps`.
fn seccomp_for(
    opts: &RunOptions,
    caps: &Capabilities,
) -> Result<Option<LinuxSeccomp>, BundleError> {
    if opts.privileged {
        return Ok(None);
    }
    let (path, text) = match &opts.seccomp {
        SeccompChoice::Unconfined => return Ok(None),
        SeccompChoice::Default => (PathBuf::from("<default>"), DEFAULT_PROFILE.to_string()),
        SeccompChoice::Profile(path) => {
            let fail = |reason: String| BundleError::SeccompProfile {
                path: path.clone(),
                reason,
            };
            let mut text = String::new();
            let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
            std::io::Read::read_to_string(
                &mut std::io::Read::take(file, MAX_PROFILE_SIZE + 1),
                &mut text,
            )
            .map_err(|e| fail(e.to_string()))?;
            if text.len() as u64 > MAX_PROFILE_SIZE {
                return Err(fail(format!("larger than {MAX_PROFILE_SIZE} bytes")));
            }
            (path.clone(), text)
        }
    };
    linux_seccomp(&text, caps, HostArch::current())
        .map(Some)
        .map_err(|reason| BundleError::SeccompProfile { path, reason })
}

/// The process argv: Entrypoint + Cmd with `docker run` overrides.
///
/// - `opts.args`, when non-empty, replace Cmd;
/// - `opts.entrypoint` replaces Entrypoint (`""` clears it) and drops the image's Cmd, so only
///   `opts.args` follow it;
/// - an empty result is [`BundleError::NoCommand`].
pub fn command(cfg: &ContainerConfig, opts: &RunOptions) -> Result<Vec<String>, BundleError> {
    let image_cmd = cfg.cmd.as_deref().unwrap_or_default();
    let (entrypoint, cmd): (Vec<String>, &[String]) = match &opts.entrypoint {
        Some(ep) => (
            if ep.is_empty() {
                Vec::new()
            } else {
                vec![ep.clone()]
            },
            &opts.args,
        ),
        None => (
            cfg.entrypoint.clone().unwrap_or_default(),
            if opts.args.is_empty() {
                image_cmd
            } else {
                &opts.args
            },
        ),
    };
    let mut argv = entrypoint;
    argv.extend(cmd.iter().cloned());
    if argv.is_empty() {
        return Err(BundleError::NoCommand);
    }
    Ok(argv)
}

/// The working directory: `opts.workdir`, else the image's WorkingDir, else `/`.
///
/// `-w` must be absolute (as in Docker); a relative image WorkingDir is taken from `/`.
pub fn working_dir(cfg: &ContainerConfig, opts: &RunOptions) -> Result<String, BundleError> {
    if let Some(dir) = &opts.workdir {
        if !dir.starts_with('/') {
            return Err(BundleError::InvalidWorkdir { dir: dir.clone() });
        }
        return Ok(dir.clone());
    }
    Ok(match cfg.working_dir.as_deref() {
        None | Some("") => "/".to_string(),
        Some(d) if d.starts_with('/') => d.to_string(),
        Some(d) => format!("/{d}"),
    })
}

/// The name part of a `KEY=value` entry (all of it when there is no `=`).
fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// Applies `overrides` to `env` by key: `KEY=value` replaces the first entry with that key in
/// place (dropping later duplicates) or is appended; a bare `KEY` removes the key.
pub fn replace_or_append_env(env: &mut Vec<String>, overrides: impl IntoIterator<Item = String>) {
    for entry in overrides {
        if entry.is_empty() {
            continue;
        }
        let key = env_key(&entry).to_string();
        let first = env.iter().position(|e| env_key(e) == key);
        let mut i = 0;
        env.retain(|e| {
            let keep = Some(i) == first || env_key(e) != key;
            i += 1;
            keep
        });
        match (first, entry.contains('=')) {
            (Some(pos), true) => env[pos] = entry,
            (Some(pos), false) => {
                env.remove(pos);
            }
            (None, true) => env.push(entry),
            (None, false) => {}
        }
    }
}

/// The process environment, as Docker builds it.
///
/// Starts from `PATH=<default>`, `HOSTNAME=<hostname>` and (with a tty) `TERM=xterm`; then the
/// image's Env replaces or appends by key; then `opts.env` does the same. A bare `-e KEY` takes
/// `KEY` from `host_env` when set there, and otherwise removes `KEY`, as `docker run` does.
pub fn environment(
    image_env: &[String],
    hostname: &str,
    opts: &RunOptions,
    host_env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut env = vec![
        format!("PATH={DEFAULT_PATH_ENV}"),
        format!("HOSTNAME={hostname}"),
    ];
    if opts.tty {
        env.push("TERM=xterm".to_string());
    }
    replace_or_append_env(&mut env, image_env.iter().cloned());
    replace_or_append_env(
        &mut env,
        opts.env.iter().map(|e| {
            if e.contains('=') {
                e.clone()
            } else {
                host_env(e).map_or_else(|| e.clone(), |v| format!("{e}={v}"))
            }
        }),
    );
    env
}

/// `RLIMIT_NOFILE` for the container: Docker's 1048576, never above the caller's hard limit
/// (`None` = unlimited).
pub fn nofile_limit(host_hard: Option<u64>) -> u64 {
    host_hard.map_or(DEFAULT_NOFILE, |h| h.min(DEFAULT_NOFILE))
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination))
        .set_typ(Some(typ.to_string()))
        .set_source(Some(PathBuf::from(source)))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

/// Docker's default mounts (with its default 64 MiB `/dev/shm`).
pub fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ]
}

/// Docker's default Linux section: namespaces (pid, ipc, uts, mount, network, cgroup), masked
/// and read-only paths, and a deny-all device cgroup (the runtime adds its default devices).
pub fn default_linux() -> Linux {
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|t| {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(t);
        ns
    })
    .collect();
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all
        .set_allow(false)
        .set_access(Some("rwm".to_string()));
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(vec![deny_all]));

    let mut linux = Linux::default();
    linux
        .set_namespaces(Some(namespaces))
        .set_masked_paths(Some(MASKED_PATHS.map(String::from).to_vec()))
        .set_readonly_paths(Some(READONLY_PATHS.map(String::from).to_vec()))
        .set_resources(Some(resources))
        .set_devices(None)
        .set_seccomp(None)
        .set_cgroups_path(None);
    linux
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::RootFs;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn cfg(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ContainerConfig {
        ContainerConfig {
            entrypoint: entrypoint.map(strings),
            cmd: cmd.map(strings),
            ..ContainerConfig::default()
        }
    }

    fn opts(args: &[&str], entrypoint: Option<&str>) -> RunOptions {
        RunOptions {
            args: strings(args),
            entrypoint: entrypoint.map(String::from),
            ..RunOptions::default()
        }
    }

    fn image(c: ContainerConfig) -> ImageConfig {
        ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            created: None,
            author: None,
            config: Some(c),
            rootfs: RootFs {
                r#type: "layers".into(),
                diff_ids: vec![],
            },
            history: None,
        }
    }

    #[test]
    fn command_matrix_as_docker_run() {
        let ep: &[&str] = &["/entry", "-x"];
        let cmd: &[&str] = &["serve", "--port=80"];
        // (image Entrypoint, image Cmd, run args, --entrypoint, expected argv or NoCommand)
        type Case<'a> = (
            Option<&'a [&'a str]>,
            Option<&'a [&'a str]>,
            &'a [&'a str],
            Option<&'a str>,
            Option<&'a [&'a str]>,
        );
        let cases: &[Case] = &[
            // image ENTRYPOINT + CMD
            (
                Some(ep),
                Some(cmd),
                &[],
                None,
                Some(&["/entry", "-x", "serve", "--port=80"]),
            ),
            // run IMAGE args: args replace CMD, ENTRYPOINT kept
            (
                Some(ep),
                Some(cmd),
                &["a", "b"],
                None,
                Some(&["/entry", "-x", "a", "b"]),
            ),
            // --entrypoint X: CMD dropped
            (
                Some(ep),
                Some(cmd),
                &[],
                Some("/bin/sh"),
                Some(&["/bin/sh"]),
            ),
            // --entrypoint X IMAGE args
            (
                Some(ep),
                Some(cmd),
                &["-c", "id"],
                Some("/bin/sh"),
                Some(&["/bin/sh", "-c", "id"]),
            ),
            // --entrypoint "" IMAGE args: args alone
            (
                Some(ep),
                Some(cmd),
                &["ls", "/"],
                Some(""),
                Some(&["ls", "/"]),
            ),
            // --entrypoint "" and no args: nothing to run
            (Some(ep), Some(cmd), &[], Some(""), None),
            // only CMD
            (None, Some(cmd), &[], None, Some(&["serve", "--port=80"])),
            (None, Some(cmd), &["sh"], None, Some(&["sh"])),
            // only ENTRYPOINT
            (Some(ep), None, &[], None, Some(&["/entry", "-x"])),
            (
                Some(ep),
                Some(&[]),
                &["y"],
                None,
                Some(&["/entry", "-x", "y"]),
            ),
            // nothing at all
            (None, None, &[], None, None),
            (Some(&[]), Some(&[]), &[], None, None),
            (None, None, &["true"], None, Some(&["true"])),
        ];
        for (i, (e, c, args, run_ep, want)) in cases.iter().enumerate() {
            let got = command(&cfg(*e, *c), &opts(args, *run_ep));
            match want {
                Some(w) => assert_eq!(got.unwrap(), strings(w), "case {i}"),
                None => {
                    let err = got.unwrap_err();
                    assert!(matches!(err, BundleError::NoCommand), "case {i}: {err:?}");
                    assert!(err.to_string().contains("no command specified"));
                }
            }
        }
    }

    #[test]
    fn env_defaults_and_overrides() {
        let host = |k: &str| (k == "FROM_HOST").then(|| "hostval".to_string());
        // No image env: PATH default and HOSTNAME.
        let env = environment(&[], "abc", &RunOptions::default(), &host);
        assert_eq!(
            env,
            strings(&[&format!("PATH={DEFAULT_PATH_ENV}"), "HOSTNAME=abc"])
        );
        // Image PATH replaces the default in place; tty adds TERM.
        let image_env = strings(&["PATH=/opt/bin", "LANG=C.UTF-8", "KEEP=1", "DUP=a", "DUP=b"]);
        let o = RunOptions {
            tty: true,
            env: strings(&[
                "LANG=en_US.UTF-8",
                "NEW=x",
                "FROM_HOST",
                "KEEP",
                "NOTSET",
                "DUP=c",
                "EMPTY=",
            ]),
            ..RunOptions::default()
        };
        let env = environment(&image_env, "h", &o, &host);
        assert_eq!(
            env,
            strings(&[
                "PATH=/opt/bin",
                "HOSTNAME=h",
                "TERM=xterm",
                "LANG=en_US.UTF-8",
                "DUP=c",
                "NEW=x",
                "FROM_HOST=hostval",
                "EMPTY=",
            ])
        );
        // -e PATH=... overrides the image's PATH too; values may contain '='.
        let o = RunOptions {
            env: strings(&["PATH=/x", "A=b=c"]),
            ..RunOptions::default()
        };
        let env = environment(&image_env, "h", &o, &host);
        assert_eq!(env[0], "PATH=/x");
        assert!(env.contains(&"A=b=c".to_string()));
    }

    #[test]
    fn workdir() {
        let c = ContainerConfig {
            working_dir: Some("/srv".into()),
            ..ContainerConfig::default()
        };
        assert_eq!(working_dir(&c, &RunOptions::default()).unwrap(), "/srv");
        assert_eq!(
            working_dir(&ContainerConfig::default(), &RunOptions::default()).unwrap(),
            "/"
        );
        let w = RunOptions {
            workdir: Some("/tmp".into()),
            ..RunOptions::default()
        };
        assert_eq!(working_dir(&c, &w).unwrap(), "/tmp");
        let rel = RunOptions {
            workdir: Some("tmp".into()),
            ..RunOptions::default()
        };
        assert!(matches!(
            working_dir(&c, &rel).unwrap_err(),
            BundleError::InvalidWorkdir { .. }
        ));
        let c = ContainerConfig {
            working_dir: Some("app".into()),
            ..ContainerConfig::default()
        };
        assert_eq!(working_dir(&c, &RunOptions::default()).unwrap(), "/app");
    }

    #[test]
    fn nofile_never_above_host_hard_limit() {
        assert_eq!(nofile_limit(None), DEFAULT_NOFILE);
        assert_eq!(nofile_limit(Some(20_000)), 20_000);
        assert_eq!(nofile_limit(Some(u64::MAX)), DEFAULT_NOFILE);
        assert_eq!(nofile_limit(Some(DEFAULT_NOFILE)), DEFAULT_NOFILE);

        let tmp = tempfile::tempdir().unwrap();
        let spec = build_spec(
            &image(cfg(None, Some(&["true"]))),
            tmp.path(),
            "x",
            &RunOptions::default(),
        )
        .unwrap();
        let rl = spec.process().as_ref().unwrap().rlimits().as_ref().unwrap();
        assert_eq!(rl.len(), 1);
        assert_eq!(rl[0].typ(), PosixRlimitType::RlimitNofile);
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        if let Some(hard) = hard {
            assert!(
                rl[0].hard() <= hard && rl[0].soft() <= hard,
                "{rl:?} vs {hard}"
            );
        }
        assert_eq!(rl[0].hard(), nofile_limit(hard));
        assert_eq!(rl[0].soft(), rl[0].hard());
    }

    #[test]
    fn full_spec() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path();
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "app:x:1000:\nstaff:x:50:app\n").unwrap();
        let c = ContainerConfig {
            user: Some("app".into()),
            env: Some(strings(&["FOO=bar"])),
            cmd: Some(strings(&["/bin/sh"])),
            working_dir: Some("/home/app".into()),
            ..ContainerConfig::default()
        };
        let id = "0123456789abcdef0123";
        let spec = build_spec(&image(c), rootfs, id, &RunOptions::default()).unwrap();
        assert_eq!(spec.version(), &Spec::default().version().clone());
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path(), rootfs);
        assert_eq!(root.readonly(), Some(false));
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["/bin/sh"]);
        assert_eq!(p.cwd(), Path::new("/home/app"));
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.no_new_privileges(), Some(false));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[50][..]));
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"HOSTNAME=0123456789ab".to_string()));
        assert!(env.contains(&"FOO=bar".to_string()));
        assert!(env.iter().any(|e| e.starts_with("PATH=")));
        let caps = p.capabilities().as_ref().unwrap();
        let want: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(caps.bounding().as_ref(), Some(&want));
        assert_eq!(caps.effective().as_ref(), Some(&want));
        assert_eq!(caps.permitted().as_ref(), Some(&want));
        assert!(caps.inheritable().is_none() && caps.ambient().is_none());
        assert!(!want.contains(&oci_spec::runtime::Capability::SysAdmin));

        let dests: Vec<_> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ]
        );
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert_eq!(ns.len(), 6);
        assert!(ns.contains(&LinuxNamespaceType::Network));
        assert!(ns.contains(&LinuxNamespaceType::Cgroup));
        assert!(!ns.contains(&LinuxNamespaceType::User));
        let seccomp = linux.seccomp().as_ref().expect("default seccomp profile");
        assert_eq!(seccomp.default_errno_ret(), Some(1));
        assert!(
            linux
                .masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_string())
        );
        assert!(
            linux
                .readonly_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/sys".to_string())
        );

        // Overrides: user, hostname, tty, read-only.
        let o = RunOptions {
            user: Some("0:50".into()),
            hostname: Some("web".into()),
            tty: true,
            read_only: true,
            ..RunOptions::default()
        };
        let c = ContainerConfig {
            user: Some("ghost".into()),
            cmd: Some(strings(&["sh"])),
            ..ContainerConfig::default()
        };
        let spec = build_spec(&image(c.clone()), rootfs, id, &o).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 50));
        assert!(p.user().additional_gids().is_none());
        assert_eq!(p.terminal(), Some(true));
        assert!(
            p.env()
                .as_ref()
                .unwrap()
                .contains(&"TERM=xterm".to_string())
        );
        assert_eq!(spec.hostname().as_deref(), Some("web"));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        // Without the override the image's unknown user is an error naming it.
        let err = build_spec(&image(c), rootfs, id, &RunOptions::default()).unwrap_err();
        assert!(err.to_string().contains("ghost"), "{err}");

        // An image without a config section and no args has nothing to run.
        let mut bare = image(ContainerConfig::default());
        bare.config = None;
        assert!(matches!(
            build_spec(&bare, rootfs, id, &RunOptions::default()).unwrap_err(),
            BundleError::NoCommand
        ));
    }

    #[test]
    fn configuration_flags_in_the_spec() {
        use crate::bundle::mounts::{parse_tmpfs, parse_volume};
        use crate::bundle::{Network, SeccompChoice};
        use oci_spec::runtime::Capability;
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        let c = cfg(None, Some(&["true"]));
        let host = tmp.path().join("ws");
        let o = RunOptions {
            mounts: vec![
                parse_volume(&format!("{}:/work:ro", host.display())).unwrap(),
                parse_tmpfs("/dev/shm:size=1g").unwrap(),
            ],
            network: Network::Host,
            cap_drop: vec!["chown".into()],
            cap_add: vec!["CAP_SYS_ADMIN".into()],
            no_new_privileges: true,
            ..RunOptions::default()
        };
        let spec = build_spec(&image(c.clone()), &rootfs, "abc", &o).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.no_new_privileges(), Some(true));
        let caps = p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert!(caps.contains(&Capability::SysAdmin) && !caps.contains(&Capability::Chown));
        let linux = spec.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        assert!(ns.iter().all(|n| n.typ() != LinuxNamespaceType::Network));
        // CAP_SYS_ADMIN lifts the filter's mount rule.
        let seccomp = linux.seccomp().as_ref().unwrap();
        assert!(
            seccomp
                .syscalls()
                .iter()
                .flatten()
                .any(|r| r.names().iter().any(|n| n == "mount"))
        );
        let mounts = spec.mounts().as_ref().unwrap();
        let at = |d: &str| {
            mounts
                .iter()
                .filter(|m| m.destination() == Path::new(d))
                .count()
        };
        assert_eq!(at("/work"), 1);
        assert_eq!(at("/dev/shm"), 1, "the user's tmpfs replaces the default");
        let shm = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/dev/shm"))
            .unwrap();
        assert!(shm.options().iter().flatten().any(|o| o == "size=1g"));
        if Path::new("/etc/resolv.conf").exists() {
            assert_eq!(
                at("/etc/resolv.conf"),
                1,
                "host network: the host's resolv.conf"
            );
        }
        assert!(host.is_dir(), "-v created the host dir");

        // Unconfined; privileged: everything, no filter, no masked paths, host devices.
        let o = RunOptions {
            seccomp: SeccompChoice::Unconfined,
            ..RunOptions::default()
        };
        let spec = build_spec(&image(c.clone()), &rootfs, "abc", &o).unwrap();
        assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
        let o = RunOptions {
            privileged: true,
            ..RunOptions::default()
        };
        let spec = build_spec(&image(c.clone()), &rootfs, "abc", &o).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none() && linux.masked_paths().is_none());
        assert!(linux.readonly_paths().is_none());
        assert!(
            linux
                .devices()
                .iter()
                .flatten()
                .any(|d| d.path() == Path::new("/dev/null"))
        );
        let sys = spec
            .mounts()
            .iter()
            .flatten()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert!(sys.options().iter().flatten().any(|o| o == "rw"));
        // A missing profile file is an error naming it.
        let o = RunOptions {
            seccomp: SeccompChoice::Profile(tmp.path().join("nope.json")),
            ..RunOptions::default()
        };
        let err = build_spec(&image(c), &rootfs, "abc", &o).unwrap_err();
        assert!(err.to_string().contains("nope.json"), "{err}");
    }
}

//! Seccomp profiles in Docker's profile format (`defaultAction`, `archMap`, `syscalls` with
//! `includes`/`excludes` on capabilities and architectures), turned into the runtime spec's
//! `linux.seccomp` for the host architecture and the container's capabilities.
//!
//! [`DEFAULT_PROFILE`] is strata's own profile, kept as data in `seccomp/default.json`: an
//! allow-list where any other system call fails with `EPERM`. It blocks what Docker's default
//! profile blocks (namespaces and mounts, kexec, keyrings, bpf, perf, modules, clock setting,
//! swap, reboot, obsolete calls, `clone` with namespace flags; `clone3` gets `ENOSYS` so libc
//! falls back to `clone`); capabilities lift the rules their kernel checks guard (e.g.
//! `CAP_SYS_ADMIN` allows `mount`, `unshare`, `setns`, `clone3`). `ptrace` is allowed: the
//! kernels it was blocked for (before 4.8) cannot run strata (openat2 needs 5.6). `io_uring`
//! is never allowed. A profile in the runtime spec's own format (an OCI `linux.seccomp`
//! object) is read by the same code: it is the same format without the extensions.

use std::collections::HashSet;
use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, Capabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSyscall,
};
use serde::Deserialize;

/// strata's default profile (Docker's profile format, strata's own content).
pub const DEFAULT_PROFILE: &str = include_str!("seccomp/default.json");

/// Which seccomp profile a container gets (`--security-opt seccomp=...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompChoice {
    /// [`DEFAULT_PROFILE`].
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile file in Docker's (or the runtime spec's) format.
    Profile(PathBuf),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<Arch>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Default, Deserialize)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

/// The host architecture as seccomp names it, and the names profiles use for it (Rust's and
/// Go's).
#[derive(Debug, Clone, Copy)]
pub struct HostArch {
    /// The native seccomp architecture.
    pub arch: Arch,
    /// Names matched in a rule's `includes.arches` / `excludes.arches`.
    pub names: &'static [&'static str],
}

impl HostArch {
    /// The architecture strata was built for.
    pub fn current() -> Self {
        match std::env::consts::ARCH {
            "x86_64" => Self::X86_64,
            "aarch64" => Self::AARCH64,
            "riscv64" => HostArch {
                arch: Arch::ScmpArchRiscv64,
                names: &["riscv64"],
            },
            "powerpc64" if cfg!(target_endian = "little") => HostArch {
                arch: Arch::ScmpArchPpc64le,
                names: &["powerpc64", "ppc64le"],
            },
            "s390x" => HostArch {
                arch: Arch::ScmpArchS390x,
                names: &["s390x"],
            },
            _ => HostArch {
                arch: Arch::ScmpArchNative,
                names: &[],
            },
        }
    }

    /// x86_64 (amd64).
    pub const X86_64: HostArch = HostArch {
        arch: Arch::ScmpArchX86_64,
        names: &["x86_64", "amd64"],
    };

    /// aarch64 (arm64).
    pub const AARCH64: HostArch = HostArch {
        arch: Arch::ScmpArchAarch64,
        names: &["aarch64", "arm64"],
    };
}

/// `CAP_X` for `x`, `X`, `cap_x` or `CAP_X`.
fn cap_name(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(_) => upper,
        None => format!("CAP_{upper}"),
    }
}

/// The names of `caps` as `CAP_X` strings.
fn cap_names(caps: &Capabilities) -> Result<HashSet<String>, String> {
    caps.iter()
        .map(|c| match serde_json::to_value(c) {
            Ok(serde_json::Value::String(s)) => Ok(s),
            other => Err(format!("unnamed capability {c:?}: {other:?}")),
        })
        .collect()
}

/// Turns a profile (JSON in Docker's or the runtime spec's format) into `linux.seccomp` for a
/// container on `host` whose bounding set is `caps`.
///
/// A rule applies when the container has all of its `includes.caps`, none of its
/// `excludes.caps`, and the host matches its `includes.arches` (if any) and none of its
/// `excludes.arches`. The architectures are the host's `archMap` entry (native and its
/// sub-architectures), else the profile's `architectures`. Other keys (`comment`,
/// `minKernel`) are ignored. Errors are the JSON parser's message.
pub fn linux_seccomp(
    profile: &str,
    caps: &Capabilities,
    host: HostArch,
) -> Result<LinuxSeccomp, String> {
    let profile: Profile = serde_json::from_str(profile).map_err(|e| e.to_string())?;
    let have = cap_names(caps)?;
    let arch_matches = |arches: &[String]| {
        arches
            .iter()
            .any(|a| host.names.contains(&a.to_ascii_lowercase().as_str()))
    };
    let mut syscalls = Vec::new();
    for rule in profile.syscalls {
        let included = rule
            .includes
            .caps
            .iter()
            .all(|c| have.contains(&cap_name(c)))
            && (rule.includes.arches.is_empty() || arch_matches(&rule.includes.arches));
        let excluded = rule
            .excludes
            .caps
            .iter()
            .any(|c| have.contains(&cap_name(c)))
            || arch_matches(&rule.excludes.arches);
        if !included || excluded {
            continue;
        }
        let mut names = rule.names;
        names.extend(rule.name);
        if names.is_empty() {
            continue;
        }
        let mut call = LinuxSyscall::default();
        call.set_names(names)
            .set_action(rule.action)
            .set_errno_ret(rule.errno_ret)
            .set_args(rule.args);
        syscalls.push(call);
    }
    let architectures = match profile
        .arch_map
        .as_ref()
        .and_then(|m| m.iter().find(|e| e.architecture == host.arch))
    {
        Some(entry) => Some(
            std::iter::once(entry.architecture)
                .chain(entry.sub_architectures.iter().copied())
                .collect(),
        ),
        None => profile.architectures,
    };
    let mut seccomp = LinuxSeccomp::default();
    seccomp
        .set_default_action(profile.default_action)
        .set_default_errno_ret(profile.default_errno_ret)
        .set_architectures(architectures)
        .set_flags(profile.flags)
        .set_syscalls(Some(syscalls));
    Ok(seccomp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::caps::DEFAULT_CAPABILITIES;
    use oci_spec::runtime::{Capability, LinuxSeccompOperator};

    fn default_caps() -> Capabilities {
        DEFAULT_CAPABILITIES.into_iter().collect()
    }

    fn rules_for<'a>(s: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        s.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.names().iter().any(|n| n == name))
            .collect()
    }

    /// Allowed whatever the arguments.
    fn always_allowed(s: &LinuxSeccomp, name: &str) -> bool {
        rules_for(s, name)
            .iter()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
    }

    /// Docker's documentation's list of calls its default profile blocks (ptrace aside).
    const BLOCKED: &[&str] = &[
        "acct",
        "add_key",
        "bpf",
        "clock_adjtime",
        "clock_settime",
        "create_module",
        "delete_module",
        "finit_module",
        "get_kernel_syms",
        "get_mempolicy",
        "init_module",
        "ioperm",
        "iopl",
        "kcmp",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "mbind",
        "mount",
        "move_pages",
        "name_to_handle_at",
        "nfsservctl",
        "open_by_handle_at",
        "perf_event_open",
        "pivot_root",
        "process_vm_readv",
        "process_vm_writev",
        "query_module",
        "quotactl",
        "reboot",
        "request_key",
        "set_mempolicy",
        "setns",
        "settimeofday",
        "stime",
        "swapon",
        "swapoff",
        "sysfs",
        "_sysctl",
        "umount",
        "umount2",
        "unshare",
        "uselib",
        "userfaultfd",
        "ustat",
        "vm86",
        "vm86old",
        "io_uring_setup",
        "io_uring_enter",
        "fanotify_init",
        "syslog",
        "vhangup",
    ];

    #[test]
    fn default_profile_blocks_what_docker_blocks() {
        let s = linux_seccomp(DEFAULT_PROFILE, &default_caps(), HostArch::X86_64).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1), "EPERM");
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        for name in BLOCKED {
            assert!(
                rules_for(&s, name)
                    .iter()
                    .all(|r| r.action() != LinuxSeccompAction::ScmpActAllow),
                "{name} is allowed by default"
            );
        }
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "clone",
            "ptrace",
            "chroot",
            "fchownat",
            "socket",
            "arch_prctl",
        ] {
            assert!(!rules_for(&s, name).is_empty(), "{name} is not allowed");
        }
        // clone only without namespace flags; clone3 gets ENOSYS.
        let clone = rules_for(&s, "clone");
        assert_eq!(clone.len(), 1);
        let arg = clone[0].args().as_ref().unwrap()[0];
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(
            (arg.index(), arg.value(), arg.value_two()),
            (0, 0x7E02_0000, Some(0))
        );
        let clone3 = rules_for(&s, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38), "ENOSYS");
        // personality with the usual arguments only.
        let personas: Vec<u64> = rules_for(&s, "personality")
            .iter()
            .map(|r| r.args().as_ref().unwrap()[0].value())
            .collect();
        assert_eq!(personas, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
        // The arm-only names are not in the x86 filter.
        assert!(rules_for(&s, "set_tls").is_empty());
        // Each name is in at most one unconditional rule (no duplicated lists).
        let mut seen = HashSet::new();
        for r in s.syscalls().as_ref().unwrap() {
            if r.args().is_none() {
                for n in r.names() {
                    assert!(seen.insert(n.clone()), "{n} twice");
                }
            }
        }
    }

    #[test]
    fn capabilities_lift_their_rules() {
        let mut caps = default_caps();
        caps.insert(Capability::SysAdmin);
        let s = linux_seccomp(DEFAULT_PROFILE, &caps, HostArch::X86_64).unwrap();
        for name in [
            "mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf",
        ] {
            assert!(always_allowed(&s, name), "{name} with CAP_SYS_ADMIN");
        }
        assert!(
            rules_for(&s, "clone3")
                .iter()
                .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow),
            "no ENOSYS rule with CAP_SYS_ADMIN"
        );
        for name in ["keyctl", "add_key", "reboot", "init_module"] {
            assert!(!always_allowed(&s, name), "{name}");
        }
        caps.insert(Capability::SysTime);
        caps.insert(Capability::SysBoot);
        caps.remove(&Capability::SysChroot);
        let s = linux_seccomp(DEFAULT_PROFILE, &caps, HostArch::X86_64).unwrap();
        assert!(always_allowed(&s, "settimeofday") && always_allowed(&s, "reboot"));
        assert!(!always_allowed(&s, "chroot"), "chroot needs CAP_SYS_CHROOT");
    }

    #[test]
    fn architectures_follow_the_host() {
        let s = linux_seccomp(DEFAULT_PROFILE, &default_caps(), HostArch::AARCH64).unwrap();
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert!(always_allowed(&s, "set_tls"));
        assert!(rules_for(&s, "arch_prctl").is_empty());
        // The build host's own architecture is known to the profile.
        let s = linux_seccomp(DEFAULT_PROFILE, &default_caps(), HostArch::current()).unwrap();
        assert!(s.architectures().is_some());
    }

    #[test]
    fn runtime_spec_format_and_errors() {
        let oci = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                        {"name":"chmod","action":"SCMP_ACT_KILL",
                         "excludes":{"caps":["fowner"]}}]}"#;
        let s = linux_seccomp(oci, &default_caps(), HostArch::X86_64).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
        let calls = s.syscalls().as_ref().unwrap();
        assert_eq!(calls.len(), 1, "chmod excluded: the default set has FOWNER");
        assert_eq!(calls[0].errno_ret(), Some(13));
        let err =
            linux_seccomp("{\"syscalls\":[]}", &default_caps(), HostArch::X86_64).unwrap_err();
        assert!(err.contains("defaultAction"), "{err}");
    }
}

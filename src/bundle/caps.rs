//! The container's capability set from `--cap-add`, `--cap-drop` and `--privileged`, as
//! `docker run` computes it.

use oci_spec::runtime::{Capabilities, Capability};

use super::BundleError;

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability oci-spec knows, in the kernel's order: the index is the capability's
/// number (its bit in `/proc/<pid>/status` masks).
pub const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// The capabilities this process may pass on (its bounding set, from `/proc/self/status`):
/// what `--privileged` and `--cap-add ALL` give, since a runtime cannot grant more. Every
/// capability when the set cannot be read.
pub fn available_capabilities() -> Capabilities {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPABILITIES
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, c)| c)
        .collect()
}

/// A capability name (`CHOWN`, `chown`, `CAP_CHOWN`); `None` for `ALL`.
fn parse(name: &str) -> Result<Option<Capability>, BundleError> {
    if name.eq_ignore_ascii_case("ALL") {
        return Ok(None);
    }
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map(Some)
        .map_err(|_| BundleError::InvalidFlag {
            flag: "capability",
            value: name.to_string(),
            reason: "unknown capability (see capabilities(7); names with or without CAP_)"
                .to_string(),
        })
}

/// The capability set for `--cap-add add`, `--cap-drop drop` and `--privileged`.
///
/// As `docker run`: privileged gives every capability (of [`available_capabilities`]);
/// `--cap-add ALL` starts from every capability, `--cap-drop ALL` from none, otherwise from Docker's default set; then the
/// named drops are removed and the named adds added (an add wins over a drop of the same one).
pub fn capability_set(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Capabilities, BundleError> {
    capability_set_within(add, drop, privileged, available_capabilities())
}

/// [`capability_set`] with `all` as "every capability".
fn capability_set_within(
    add: &[String],
    drop: &[String],
    privileged: bool,
    all: Capabilities,
) -> Result<Capabilities, BundleError> {
    if privileged {
        return Ok(all);
    }
    let (mut adds, mut add_all) = (Vec::new(), false);
    for name in add {
        match parse(name)? {
            Some(c) => adds.push(c),
            None => add_all = true,
        }
    }
    let (mut drops, mut drop_all) = (Vec::new(), false);
    for name in drop {
        match parse(name)? {
            Some(c) => drops.push(c),
            None => drop_all = true,
        }
    }
    let mut caps: Capabilities = if add_all {
        all
    } else if drop_all {
        Capabilities::new()
    } else {
        DEFAULT_CAPABILITIES.into_iter().collect()
    };
    for c in &drops {
        caps.remove(c);
    }
    caps.extend(adds);
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn set(add: &[String], drop: &[String], privileged: bool) -> Result<Capabilities, BundleError> {
        capability_set_within(
            add,
            drop,
            privileged,
            ALL_CAPABILITIES.into_iter().collect(),
        )
    }

    #[test]
    fn kernel_numbers_and_bounding_set() {
        assert_eq!(ALL_CAPABILITIES[0], Capability::Chown);
        assert_eq!(ALL_CAPABILITIES[21], Capability::SysAdmin);
        assert_eq!(ALL_CAPABILITIES[40], Capability::CheckpointRestore);
        let mask: u64 = DEFAULT_CAPABILITIES
            .iter()
            .map(|c| 1u64 << ALL_CAPABILITIES.iter().position(|a| a == c).unwrap())
            .sum();
        assert_eq!(mask, 0xa80425fb, "Docker's default CapEff");
        let avail = available_capabilities();
        assert!(avail.contains(&Capability::Chown), "{avail:?}");
    }

    #[test]
    fn docker_semantics() {
        let default: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(set(&[], &[], false).unwrap(), default);
        let c = set(&s(&["sys_admin", "CAP_NET_ADMIN"]), &s(&["CHOWN"]), false).unwrap();
        assert!(c.contains(&Capability::SysAdmin) && c.contains(&Capability::NetAdmin));
        assert!(!c.contains(&Capability::Chown));
        assert_eq!(c.len(), default.len() + 1);
        let c = set(&s(&["NET_BIND_SERVICE"]), &s(&["all"]), false).unwrap();
        assert_eq!(c, [Capability::NetBindService].into_iter().collect());
        let c = set(&s(&["ALL"]), &s(&["SYS_ADMIN"]), false).unwrap();
        assert_eq!(c.len(), ALL_CAPABILITIES.len() - 1);
        let c = set(&[], &s(&["ALL"]), true).unwrap();
        assert_eq!(c.len(), ALL_CAPABILITIES.len(), "privileged");
        let c = set(&s(&["KILL"]), &s(&["KILL"]), false).unwrap();
        assert!(c.contains(&Capability::Kill), "add wins");
        let err = set(&s(&["NOPE"]), &[], false).unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
    }
}

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

/// Every capability oci-spec knows (what `--privileged` and `--cap-add ALL` give; a runtime
/// skips those the running kernel lacks).
pub const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

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
/// As `docker run`: privileged gives every capability; `--cap-add ALL` starts from every
/// capability, `--cap-drop ALL` from none, otherwise from Docker's default set; then the
/// named drops are removed and the named adds added (an add wins over a drop of the same one).
pub fn capability_set(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Capabilities, BundleError> {
    let all: Capabilities = ALL_CAPABILITIES.into_iter().collect();
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

    #[test]
    fn docker_semantics() {
        let default: Capabilities = DEFAULT_CAPABILITIES.into_iter().collect();
        assert_eq!(capability_set(&[], &[], false).unwrap(), default);
        let c = capability_set(&s(&["sys_admin", "CAP_NET_ADMIN"]), &s(&["CHOWN"]), false).unwrap();
        assert!(c.contains(&Capability::SysAdmin) && c.contains(&Capability::NetAdmin));
        assert!(!c.contains(&Capability::Chown));
        assert_eq!(c.len(), default.len() + 1);
        let c = capability_set(&s(&["NET_BIND_SERVICE"]), &s(&["all"]), false).unwrap();
        assert_eq!(c, [Capability::NetBindService].into_iter().collect());
        let c = capability_set(&s(&["ALL"]), &s(&["SYS_ADMIN"]), false).unwrap();
        assert_eq!(c.len(), ALL_CAPABILITIES.len() - 1);
        let c = capability_set(&[], &s(&["ALL"]), true).unwrap();
        assert_eq!(c.len(), ALL_CAPABILITIES.len(), "privileged");
        let c = capability_set(&s(&["KILL"]), &s(&["KILL"]), false).unwrap();
        assert!(c.contains(&Capability::Kill), "add wins");
        let err = capability_set(&s(&["NOPE"]), &[], false).unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
    }
}

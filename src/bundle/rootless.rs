//! Rootless bundles: the runtime runs inside strata's user and mount namespaces (where the
//! rootfs is mounted and the image's owners are the namespace's ids), as rootless podman runs
//! it inside its own, so the spec asks for no namespace or cgroup the user cannot have.

use std::ffi::OsString;

use oci_spec::runtime::Spec;

use crate::rootless;

/// Adjusts a spec built by [`super::build_spec`] for a rootless strata; nothing as root. The
/// container then shares strata's user namespace (its uid 0 is the user, its other ids their
/// subordinate ones), and gets no cgroup limits: the device rules and any limit need a cgroup
/// the user was delegated, and runc's rootless cgroup manager only tolerates the lack of one
/// when nothing is asked.
pub fn adjust(spec: &mut Spec) {
    if !rootless::is_rootless() {
        return;
    }
    if let Some(linux) = spec.linux_mut() {
        if let Some(r) = linux.resources() {
            let limits = r.memory().is_some()
                || r.cpu().is_some()
                || r.pids().is_some()
                || r.block_io().is_some()
                || r.hugepage_limits().is_some();
            if limits {
                tracing::warn!(
                    "ignoring the container's cgroup limits: a rootless container gets no cgroup of its own"
                );
            }
        }
        linux.set_resources(None).set_cgroups_path(None);
    }
}

/// The runtime's global arguments for a rootless strata: its state directory under strata's
/// (`--root $XDG_RUNTIME_DIR/strata/runc`): in the namespace the runtime runs as uid 0 and
/// would pick the host's `/run/runc`. Empty as root.
pub fn runtime_args() -> Vec<OsString> {
    match rootless::current_state_dir() {
        Ok(Some(dir)) => vec!["--root".into(), dir.join("runc").into_os_string()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_root_the_spec_is_left_alone() {
        let mut spec = Spec::default();
        let before = serde_json::to_value(&spec).unwrap();
        if !rootless::is_rootless() {
            adjust(&mut spec);
            assert_eq!(serde_json::to_value(&spec).unwrap(), before);
            assert!(runtime_args().is_empty());
        }
    }
}

//! What to do about container and mount errors, in terms of strata's commands: the library's
//! errors say what is wrong, the command line adds which command helps.

use strata::container::ContainerError;
use strata::mount::MountError;

/// The hint for the first error in `e`'s chain that has one, to append to its message.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<ContainerError>() {
            container_hint(e)
        } else {
            cause.downcast_ref::<MountError>().and_then(mount_hint)
        }
    })
}

fn container_hint(e: &ContainerError) -> Option<String> {
    match e {
        ContainerError::Mounted { name, .. } => Some(format!(
            ": run `strata umount {name}` first or use `strata rm -f`"
        )),
        ContainerError::Mount(e) => mount_hint(e),
        _ => None,
    }
}

fn mount_hint(e: &MountError) -> Option<String> {
    match e {
        MountError::NotPermitted { .. } => Some(
            "; without privileges use `strata export` to unpack an image into a plain \
             directory instead"
                .into(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::describe::describe;
    use super::*;

    #[test]
    fn mounted_names_umount_and_rm_force() {
        let e = ContainerError::Mounted {
            name: "web".into(),
            merged: PathBuf::from("/s/overlay2/c/merged"),
        };
        assert_eq!(
            describe(&e.into()),
            "container web is mounted at /s/overlay2/c/merged: run `strata umount web` first \
             or use `strata rm -f`"
        );
    }

    #[test]
    fn not_permitted_names_export() {
        let e = ContainerError::Mount(MountError::NotPermitted {
            reason: "mounting an overlay needs root (CAP_SYS_ADMIN), which this process lacks"
                .into(),
        });
        let msg = describe(&e.into());
        assert!(
            msg.contains("CAP_SYS_ADMIN") && msg.contains("strata export"),
            "{msg}"
        );
        assert_eq!(
            msg,
            "mounting an overlay needs root (CAP_SYS_ADMIN), which this process lacks; without \
             privileges use `strata export` to unpack an image into a plain directory instead"
        );
        let context = anyhow::Error::from(MountError::NotPermitted {
            reason: "no".into(),
        })
        .context("mounting web");
        assert!(describe(&context).ends_with("no; without privileges use `strata export` to unpack an image into a plain directory instead"));
    }

    #[test]
    fn other_errors_have_none() {
        let e = ContainerError::Store(strata::store::StoreError::NoSuchContainer("x".into()));
        assert_eq!(hint(&e.into()), None);
    }
}

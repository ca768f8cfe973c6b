//! Hints for what privileges refused a pull: overlayfs marks opaque directories with
//! `trusted.*` xattrs, which only root may set; a rootless store's user namespace maps only
//! the user's subordinate ids, so a layer owned by another id cannot be stored.

use strata::archive::ArchiveError;
use strata::rootless::{self, IdMaps, Mode};

/// What to do about a `trusted.*` xattr refused to an unprivileged pull, or an owner outside
/// the ids of the rootless namespace, if `e` is one.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let refused = e
        .chain()
        .find_map(|cause| match cause.downcast_ref::<ArchiveError>() {
            Some(ArchiveError::Fs { op, source, .. }) => Some((op.as_str(), source.raw_os_error())),
            _ => None,
        })?;
    match refused {
        (op, Some(libc::EPERM)) if op.starts_with("setting trusted.") => Some(
            "; the image has an opaque directory, which overlayfs marks with a trusted.* xattr \
             that only root (CAP_SYS_ADMIN) may set: pull as root, or use `strata export` to \
             unpack the image into a plain directory without a store"
                .to_string(),
        ),
        (op, Some(libc::EINVAL)) if op.starts_with("chown") => match rootless::mode() {
            Mode::Rootless { uid, gid, .. } => Some(unmapped_owner(uid, gid)),
            Mode::Root => None,
        },
        _ => None,
    }
}

fn unmapped_owner(uid: u32, gid: u32) -> String {
    let count = |map: &[rootless::IdRange]| map.iter().map(|r| u64::from(r.len)).sum::<u64>();
    let (uids, gids) = IdMaps::for_user(uid, gid)
        .map(|m| (count(&m.uids), count(&m.gids)))
        .unwrap_or((1, 1));
    let user = rootless::ids::user_name(uid).unwrap_or_else(|| uid.to_string());
    format!(
        "; the layer has an owner outside the ids of strata's rootless user namespace (uids \
         0..{uids} and gids 0..{gids}: 0 is {user}, the others come from {} and {}): give \
         {user} a larger range there, then stop the namespace's pause process (pid in \
         $XDG_RUNTIME_DIR/strata/{}) so the next command maps it",
        rootless::ids::SUBUID_FILE,
        rootless::ids::SUBGID_FILE,
        rootless::PID_FILE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_trusted_xattr_gets_the_hint() {
        let refused = |op: &str, errno| {
            anyhow::Error::from(ArchiveError::Fs {
                path: "etc/.wh..wh..opq".into(),
                op: op.into(),
                source: std::io::Error::from_raw_os_error(errno),
            })
            .context("pulling x")
        };
        let hint = hint(&refused("setting trusted.overlay.opaque", libc::EPERM));
        assert!(hint.is_some_and(|h| h.contains("pull as root") && h.contains("strata export")));
        assert_eq!(
            super::hint(&refused("setting trusted.overlay.opaque", libc::ENOSPC)),
            None
        );
        assert_eq!(super::hint(&refused("setting user.x", libc::EPERM)), None);
    }
}

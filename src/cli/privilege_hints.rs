//! The hint for a rootless pull refused a layer's owner: strata's user namespace maps only the
//! user and their subordinate ids, so a file owned by another id cannot be stored.

use strata::archive::ArchiveError;
use strata::rootless::{self, IdMaps, Mode};

/// What to do about an owner outside the ids of the rootless namespace, if `e` is one (chown
/// fails with EINVAL for an id the namespace does not map).
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let unmapped = e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ArchiveError>(),
            Some(ArchiveError::Fs { op, source, .. })
                if op.starts_with("chown") && source.raw_os_error() == Some(libc::EINVAL)
        )
    });
    let Mode::Rootless { uid, gid, .. } = rootless::mode() else {
        return None;
    };
    if !unmapped {
        return None;
    }
    let count = |map: &[rootless::IdRange]| map.iter().map(|r| u64::from(r.len)).sum::<u64>();
    let (uids, gids) = IdMaps::for_user(uid, gid)
        .map(|m| (count(&m.uids), count(&m.gids)))
        .unwrap_or((1, 1));
    let user = rootless::ids::user_name(uid).unwrap_or_else(|| uid.to_string());
    Some(unmapped_owner(&user, uids, gids))
}

fn unmapped_owner(user: &str, uids: u64, gids: u64) -> String {
    format!(
        "; the layer has an owner outside the ids of strata's rootless user namespace (uids \
         0..{uids} and gids 0..{gids}: 0 is {user}, the others come from {} and {}): give \
         {user} a larger range there, then stop the namespace's pause process (its pid is in \
         $XDG_RUNTIME_DIR/strata/{}) so that the next command maps it",
        rootless::ids::SUBUID_FILE,
        rootless::ids::SUBGID_FILE,
        rootless::PID_FILE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_names_the_range_and_the_files() {
        let h = unmapped_owner("alice", 65537, 65537);
        assert!(
            h.contains("uids 0..65537") && h.contains("0 is alice"),
            "{h}"
        );
        assert!(
            h.contains("/etc/subuid and /etc/subgid") && h.contains("pause.pid"),
            "{h}"
        );
    }

    #[test]
    fn as_root_there_is_no_hint() {
        let e = anyhow::Error::from(ArchiveError::Fs {
            path: "far".into(),
            op: "chown to 70000:0".into(),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
        if rootless::mode() == Mode::Root {
            assert_eq!(hint(&e), None);
        }
    }
}

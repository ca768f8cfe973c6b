//! Is this strata rootless, and is it inside its user namespace already?

use std::sync::OnceLock;

/// The variable `strata unshare` sets for its command: the host uid of the rootless user, so
/// that a strata started inside the namespace (where it runs as uid 0) knows it is rootless.
pub const ROOTLESS_UID_ENV: &str = "STRATA_ROOTLESS_UID";
/// The user's host gid, set with [`ROOTLESS_UID_ENV`].
pub const ROOTLESS_GID_ENV: &str = "STRATA_ROOTLESS_GID";

/// How this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Real root: the host's store and mounts.
    Root,
    /// An unprivileged user (`uid` on the host), in its user namespace (`inside`) or not yet.
    Rootless {
        /// The user's host uid.
        uid: u32,
        /// The user's host gid.
        gid: u32,
        /// In strata's user namespace already (joined, or started there by `strata unshare`).
        inside: bool,
    },
}

static JOINED: OnceLock<(u32, u32)> = OnceLock::new();

/// Records that this process joined the namespace as host `uid:gid`.
pub(crate) fn set_joined(uid: u32, gid: u32) {
    let _ = JOINED.set((uid, gid));
}

/// How this process runs (see [`Mode`]).
pub fn mode() -> Mode {
    if let Some(&(uid, gid)) = JOINED.get() {
        return Mode::Rootless {
            uid,
            gid,
            inside: true,
        };
    }
    let euid = rustix::process::geteuid().as_raw();
    if euid != 0 {
        return Mode::Rootless {
            uid: euid,
            gid: rustix::process::getegid().as_raw(),
            inside: false,
        };
    }
    let from_env = std::env::var(ROOTLESS_UID_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    match from_env {
        Some(uid) if !in_initial_user_namespace() => Mode::Rootless {
            uid,
            gid: std::env::var(ROOTLESS_GID_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(uid),
            inside: true,
        },
        _ => Mode::Root,
    }
}

/// True unless this process runs as root on the host: its store is the user's, its overlay
/// xattrs are `user.overlay.*`.
pub fn is_rootless() -> bool {
    mode() != Mode::Root
}

/// The initial user namespace maps every id to itself: `0 0 4294967295`.
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|map| is_identity_map(&map))
        .unwrap_or(true)
}

fn is_identity_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_full_identity_map_is_the_initial_namespace() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("0 1000 1\n1 100000 65536\n"));
    }
}

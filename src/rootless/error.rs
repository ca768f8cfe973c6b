//! [`RootlessError`]: why strata could not enter its user namespace.

use std::io;
use std::path::PathBuf;

/// Why the user namespace of a rootless strata could not be set up or joined.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// The user has no subordinate ids in `/etc/subuid` or `/etc/subgid`.
    #[error(
        "{user} (uid {uid}) has no subordinate {kind}s in {}: rootless strata maps them into \
         its user namespace; add a range for {user} to /etc/subuid and /etc/subgid, e.g. the \
         line `{user}:100000:65536` in both (or, as root, `usermod --add-subuids \
         100000-165535 --add-subgids 100000-165535 {user}`)",
        file.display()
    )]
    NoSubordinateIds {
        /// The user's name (their uid when `/etc/passwd` has none).
        user: String,
        /// The user's uid.
        uid: u32,
        /// `uid` or `gid`.
        kind: &'static str,
        /// `/etc/subuid` or `/etc/subgid`.
        file: PathBuf,
    },
    /// `newuidmap` or `newgidmap` could not be started.
    #[error(
        "cannot run {tool}: {source} (rootless strata needs newuidmap and newgidmap: install \
         the uidmap package)"
    )]
    MapToolMissing {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `newuidmap` or `newgidmap` refused the mapping.
    #[error("{tool} {args} failed ({status}): {stderr}")]
    MapToolFailed {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// Its arguments.
        args: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The directory for strata's rootless state cannot be used.
    #[error("rootless state directory {}: {reason}", path.display())]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The process keeping the namespace alive failed to start or stopped answering.
    #[error("starting the process that keeps strata's user namespace: {reason}")]
    Pause {
        /// What went wrong.
        reason: String,
    },
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// [`RootlessError::Io`] for `what`.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> RootlessError {
    let what = what.into();
    move |source| RootlessError::Io { what, source }
}

//! [`ArchiveError`] and the constructors the applier, the reader and the differ share.

use std::io;
use std::path::PathBuf;

use super::fsops::FsError;

/// Why a layer could not be applied. Every variant about a member names it.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The destination directory could not be opened.
    #[error("opening layer directory {}: {source}", path.display())]
    Dest {
        /// The destination given.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Reading the tar stream itself failed: a read error, a corrupt header, or data cut short.
    #[error("reading the layer tar stream{}: {source}", at_entry(entry))]
    Io {
        /// The member whose data was being read, if any (lossy UTF-8).
        entry: Option<String>,
        /// The error (`UnexpectedEof` when the stream ends inside a member).
        #[source]
        source: io::Error,
    },
    /// A member that must not be applied: a name escaping the layer, an unsupported type, a
    /// malformed field or PAX record, an invalid whiteout, a missing hardlink target, ...
    #[error("entry {path:?}: {reason}")]
    Invalid {
        /// The member name as found in the archive (lossy UTF-8).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A filesystem operation for a member failed.
    #[error("entry {path:?}: {op}: {source}")]
    Fs {
        /// The member name as found in the archive (lossy UTF-8).
        path: String,
        /// What was being done.
        op: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn at_entry(entry: &Option<String>) -> String {
    entry
        .as_ref()
        .map(|e| format!(" (entry {e:?})"))
        .unwrap_or_default()
}

impl ArchiveError {
    /// The member the error is about, if any.
    pub fn entry(&self) -> Option<&str> {
        match self {
            Self::Dest { .. } => None,
            Self::Io { entry, .. } => entry.as_deref(),
            Self::Invalid { path, .. } | Self::Fs { path, .. } => Some(path),
        }
    }
}

/// A member name (or any raw bytes) as shown in errors: lossy UTF-8.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// [`ArchiveError::Invalid`] for the member `shown`.
pub(crate) fn invalid(shown: &str, reason: impl ToString) -> ArchiveError {
    ArchiveError::Invalid {
        path: shown.to_string(),
        reason: reason.to_string(),
    }
}

/// [`ArchiveError::Fs`] for the member `shown`: `op` failed with `source`.
pub(crate) fn fs_err(
    shown: &str,
    op: impl Into<String>,
    source: impl Into<std::io::Error>,
) -> ArchiveError {
    ArchiveError::Fs {
        path: shown.to_string(),
        op: op.into(),
        source: source.into(),
    }
}

/// [`ArchiveError::Fs`] for the member `shown` from a failed [`super::fsops::Root`] operation.
pub(crate) fn from_fs(shown: &str, e: FsError) -> ArchiveError {
    fs_err(shown, e.op, e.source)
}

//! The store's error type.

use std::io;
use std::path::{Path, PathBuf};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A metadata file could not be parsed.
    #[error("corrupt metadata {}: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A command that only reads found no store at the root it was given.
    #[error("no strata store at {} (check --root)", .0.display())]
    NoStore(PathBuf),
    /// overlay2 cannot use the filesystem the store is on.
    #[error("the store {} is on {filesystem}, which overlay2 cannot use: {reason}", root.display())]
    UnsupportedFilesystem {
        /// The store's root.
        root: std::path::PathBuf,
        /// The filesystem's name (`xfs`, `overlayfs`, ...).
        filesystem: String,
        /// Why not.
        reason: &'static str,
    },
    /// No image matched a name or id.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// An id prefix matched several images or containers.
    #[error("id prefix {0} is ambiguous")]
    Ambiguous(String),
    /// No container matched a name or id.
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// A container name breaks Docker's naming rule.
    #[error(
        "invalid container name {0:?}: use 1-128 characters [a-zA-Z0-9_.-], starting with a letter or digit"
    )]
    InvalidName(String),
    /// A container name is taken.
    #[error("the container name {0:?} is already in use")]
    NameInUse(String),
    /// Removing an image that containers use, without force.
    #[error(
        "unable to remove image {reference} (must force) - image is being used by container {containers}"
    )]
    ImageInUse {
        /// The image as the command named it.
        reference: String,
        /// The names of the containers, comma-separated.
        containers: String,
    },
    /// Removing an image that is mounted (`mount --image`), with or without force.
    #[error(
        "unable to remove image {reference} - it is mounted at {} (strata umount --image first)", target.display()
    )]
    ImageMounted {
        /// The image as the command named it.
        reference: String,
        /// Its mount point.
        target: PathBuf,
    },
    /// Removing by id an image tagged in several repositories, without force.
    #[error(
        "conflict: unable to delete {0} (must be forced) - image is referenced in multiple repositories"
    )]
    MultipleRepositories(String),
    /// The store was made by the other kind of strata (root or rootless).
    #[error(
        "the store {} was made by {} strata and this strata runs {}: the two record owners and \
         opaque directories differently (root: the image's ids, trusted.overlay.*; rootless: ids \
         shifted into the user's subordinate range, user.overlay.*); use another --root",
        root.display(),
        match store { super::kind::StoreKind::Root => "a root", super::kind::StoreKind::Rootless => "a rootless" },
        match process { super::kind::StoreKind::Root => "as root", super::kind::StoreKind::Rootless => "rootless" }
    )]
    KindMismatch {
        /// The store's root.
        root: PathBuf,
        /// Its recorded kind.
        store: super::kind::StoreKind,
        /// This process's.
        process: super::kind::StoreKind,
    },
    /// The store's kind file holds something else than `root` or `rootless`.
    #[error("{}: unknown store kind {content:?} (expected \"root\" or \"rootless\")", path.display())]
    BadKind {
        /// The file.
        path: PathBuf,
        /// The start of what it holds.
        content: String,
    },
    /// The image went away between its lookup and its use (another process removed it).
    #[error("image {0} was removed by another strata process meanwhile: pull it again")]
    ImageRemoved(String),
}

/// For `map_err`: an I/O error while doing `what` on `path`.
pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

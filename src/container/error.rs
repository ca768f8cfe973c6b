//! Errors of container operations.

use std::path::PathBuf;

use crate::bundle::BundleError;
use crate::image::ManifestError;
use crate::mount::MountError;
use crate::store::StoreError;

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Mounting or unmounting failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// Removing a mounted container without force.
    #[error("container {name} is mounted at {}", merged.display())]
    Mounted {
        /// The container's name.
        name: String,
        /// Its mount point.
        merged: PathBuf,
    },
    /// A layer of the container's image is gone (discarded after a crash, see `store::durable`).
    #[error(
        "container {name}: layer {} of its image is missing (a layer pulled with --no-sync is discarded when the machine went down before it was synced): pull {image} again", layer.display()
    )]
    LayerMissing {
        /// The container's name.
        name: String,
        /// Its image reference.
        image: String,
        /// The missing layer directory.
        layer: PathBuf,
    },
    /// The stored image config could not be parsed.
    #[error(transparent)]
    Config(#[from] ManifestError),
    /// Building, writing or running the runtime bundle failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The bundle directory could not be created.
    #[error("creating bundle dir {}", dir.display())]
    BundleDir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The command is not in the container (not found on its `PATH`, or a path that does not
    /// exist): Docker's exit code 127.
    #[error("exec: {command:?}: {reason}")]
    CommandNotFound {
        /// The command as given.
        command: String,
        /// Docker's wording: "executable file not found in $PATH", "no such file or directory".
        reason: String,
    },
    /// The command exists but cannot be executed (a directory, no execute permission, a bad
    /// format): Docker's exit code 126.
    #[error("exec: {command:?}: {reason}")]
    CommandNotExecutable {
        /// The command as given.
        command: String,
        /// "permission denied", "is a directory", ...
        reason: String,
    },
    /// The OCI runtime failed before the container's command ran (its own message).
    #[error("the OCI runtime failed: {message}")]
    RuntimeFailed {
        /// The runtime's error message.
        message: String,
        /// Docker's exit code for it: 126 or 127 when the command could not be executed,
        /// else 125.
        exit_code: i32,
    },
    /// An operation a running container refuses (removing it without force).
    #[error("container {name} is running: stop it first, or remove it with -f")]
    Running {
        /// The container's name.
        name: String,
    },
    /// Signalling a container that does not run.
    #[error("container {name} is not running")]
    NotRunning {
        /// The container's name.
        name: String,
    },
    /// The container's run state file could not be read or written.
    #[error("cannot {action} the run state {}: {source}", path.display())]
    State {
        /// "read" or "write".
        action: &'static str,
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

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
}

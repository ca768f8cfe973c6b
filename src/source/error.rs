//! The errors of the sources.

use std::io;
use std::path::PathBuf;

use crate::digest::DigestError;
use crate::registry::RegistryError;

/// Why a source could not deliver a manifest or blob. The text is the source's own.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The registry failed.
    #[error("{0}")]
    Registry(#[from] RegistryError),
    /// The OCI image layout failed.
    #[error("{0}")]
    Layout(#[from] LayoutError),
}

/// Why an OCI image layout or an image archive could not be read. Every variant names the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Reading a file failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// An archive is not a tar this reader accepts (truncated, links, duplicates, paths out).
    #[error("{}: {reason}", path.display())]
    BadArchive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file a manifest names is not in the archive or layout.
    #[error("{}: no member {name:?}", path.display())]
    Missing {
        /// The archive or layout.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// `manifest.json` of a `docker save` archive is not usable.
    #[error("{}: manifest.json: {reason}", path.display())]
    DockerManifest {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The directory has no `oci-layout` file.
    #[error("{}: not an OCI image layout (no oci-layout file)", dir.display())]
    NotLayout {
        /// The directory.
        dir: PathBuf,
    },
    /// A file or a directory on its path is a symlink.
    #[error("{}: is or passes through a symlink (refused: a layout's files must be its own)", path.display())]
    Symlink {
        /// The file.
        path: PathBuf,
    },
    /// A file is not a regular file.
    #[error("{}: not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
    },
    /// A file has other hard links, which may be outside the layout.
    #[error("{}: has {links} hard links (refused: a layout's files must be its own)", path.display())]
    HardLinked {
        /// The file.
        path: PathBuf,
        /// Its link count.
        links: u64,
    },
    /// A JSON file or small blob is larger than allowed.
    #[error("{}: larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// `index.json` is not valid.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A blob does not match its descriptor.
    #[error("{}: {source}", path.display())]
    Blob {
        /// The blob file.
        path: PathBuf,
        /// The mismatch.
        source: DigestError,
    },
    /// No image in `index.json` has the asked name.
    #[error("{}: no image named {wanted:?} in index.json (names: {available})", dir.display())]
    NoSuchRef {
        /// The layout.
        dir: PathBuf,
        /// The name asked for.
        wanted: String,
        /// The names it has.
        available: String,
    },
    /// `index.json` has several images (or none) and none was named.
    #[error("{}: index.json lists {count} images; name one as oci:DIR:REF (names: {available})", dir.display())]
    Ambiguous {
        /// The layout.
        dir: PathBuf,
        /// How many it lists.
        count: usize,
        /// The names it has.
        available: String,
    },
}

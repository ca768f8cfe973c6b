//! Why a layer or a whole image could not be brought in.

use std::io;

use crate::archive::ArchiveError;
use crate::compression::CompressionError;
use crate::digest::DigestError;
use crate::id::BlobDigest;
use crate::image::ManifestError;
use crate::image::PlatformError;
use crate::source::SourceError;
use crate::store::StoreError;

/// Why a layer could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The blob's bytes do not match its digest or size.
    #[error("blob verification failed: {0}")]
    Blob(DigestError),
    /// The uncompressed content does not match the config's diff_id.
    #[error("diff_id verification failed (uncompressed content): {0}")]
    DiffId(DigestError),
    /// The download failed.
    #[error("download failed: {0}")]
    Download(#[source] SourceError),
    /// The blob stream broke off or was longer than declared.
    #[error("reading blob: {0}")]
    Stream(io::Error),
    /// Decompression failed.
    #[error("decompressing: {0}")]
    Decompress(io::Error),
    /// The media type is unknown or disagrees with the content.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The layer's media type is not a known layer type.
    #[error(transparent)]
    MediaType(ManifestError),
    /// The tar stream could not be applied.
    #[error("unpacking: {0}")]
    Archive(#[from] ArchiveError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Giving one of the layer's implicit parent directories the metadata of the same
    /// directory in the lower layers failed.
    #[error("implicit directory {:?}: {op}: {source}", path.display().to_string())]
    ImplicitDir {
        /// The directory, relative to the layer.
        path: std::path::PathBuf,
        /// What was being done.
        op: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A layer below this one (of the same pull) failed, so this one cannot be completed;
    /// that layer's own error says why.
    #[error("a lower layer of the image failed")]
    LowerLayerFailed,
}

impl LayerError {
    /// A blocking task that panicked or was cancelled.
    pub(crate) fn join(e: tokio::task::JoinError) -> Self {
        LayerError::Stream(io::Error::other(format!("unpack task failed: {e}")))
    }
}

/// Why a pull (or export) failed; every variant names the image.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The source (the registry) failed.
    #[error("{image}: {source}")]
    Source {
        /// The image.
        image: String,
        /// What failed.
        source: SourceError,
    },
    /// A manifest or config was invalid.
    #[error("{image}: {source}")]
    Manifest {
        /// The image.
        image: String,
        /// What was wrong.
        source: ManifestError,
    },
    /// No manifest for the wanted platform.
    #[error("{image}: {source}")]
    Platform {
        /// The image.
        image: String,
        /// The platforms on offer.
        source: PlatformError,
    },
    /// Something else about the image is inconsistent.
    #[error("{image}: {message}")]
    Invalid {
        /// The image.
        image: String,
        /// What is wrong.
        message: String,
    },
    /// A layer failed.
    #[error("{image}: layer {layer}: {source}")]
    Layer {
        /// The image.
        image: String,
        /// The layer's blob digest.
        layer: BlobDigest,
        /// What failed.
        source: LayerError,
    },
    /// The store failed.
    #[error("{image}: {source}")]
    Store {
        /// The image.
        image: String,
        /// What failed.
        source: StoreError,
    },
}

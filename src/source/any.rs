//! One source type for every transport, so callers that take any image location (the CLI)
//! run one generic pipeline.

use bytes::Bytes;

use super::{BlobChunks, ImageSource, LayoutBlob, OciLayoutSource, RegistrySource, SourceError};
use crate::digest::Digest;
use crate::image::Descriptor;
use crate::registry::{BlobStream, FetchedManifest};

/// The source of some transport.
#[derive(Debug, Clone)]
pub enum AnySource {
    /// A registry.
    Registry(RegistrySource),
    /// An OCI image layout.
    Layout(OciLayoutSource),
}

/// A layer blob of an [`AnySource`].
#[derive(Debug)]
pub enum AnyBlob {
    /// From a registry (boxed: the stream is large, the enum moves).
    Registry(Box<BlobStream>),
    /// From an OCI image layout.
    Layout(LayoutBlob),
}

impl ImageSource for AnySource {
    type Blob = AnyBlob;

    async fn manifest(&self) -> Result<FetchedManifest, SourceError> {
        match self {
            AnySource::Registry(s) => s.manifest().await,
            AnySource::Layout(s) => s.manifest().await,
        }
    }

    async fn manifest_by_digest(&self, digest: &Digest) -> Result<FetchedManifest, SourceError> {
        match self {
            AnySource::Registry(s) => s.manifest_by_digest(digest).await,
            AnySource::Layout(s) => s.manifest_by_digest(digest).await,
        }
    }

    fn manifest_digest_is_real(&self) -> bool {
        match self {
            AnySource::Registry(s) => s.manifest_digest_is_real(),
            AnySource::Layout(s) => s.manifest_digest_is_real(),
        }
    }

    async fn blob_bytes(&self, blob: &Descriptor, max: u64) -> Result<Vec<u8>, SourceError> {
        match self {
            AnySource::Registry(s) => s.blob_bytes(blob, max).await,
            AnySource::Layout(s) => s.blob_bytes(blob, max).await,
        }
    }

    async fn open_blob(&self, blob: &Descriptor) -> Result<AnyBlob, SourceError> {
        Ok(match self {
            AnySource::Registry(s) => AnyBlob::Registry(Box::new(s.open_blob(blob).await?)),
            AnySource::Layout(s) => AnyBlob::Layout(s.open_blob(blob).await?),
        })
    }
}

impl BlobChunks for AnyBlob {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, SourceError>> {
        match self {
            AnyBlob::Registry(b) => BlobChunks::next_chunk(b.as_mut()).await,
            AnyBlob::Layout(b) => b.next_chunk().await,
        }
    }
}

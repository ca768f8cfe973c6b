//! The seam between where an image comes from and the pipeline that stores it.

use std::future::Future;

use bytes::Bytes;

use super::SourceError;
use crate::digest::Digest;
use crate::image::Descriptor;
use crate::registry::FetchedManifest;

/// Something that holds one image (or a multi-platform index): it hands out manifests,
/// small blobs and layer blob streams. Manifests and small blobs come back verified against
/// their digests; layer streams are verified by the pipeline as they are consumed.
pub trait ImageSource: Send + Sync + 'static {
    /// A layer blob being read.
    type Blob: BlobChunks;

    /// The manifest or index the source's reference names.
    fn manifest(&self) -> impl Future<Output = Result<FetchedManifest, SourceError>> + Send;

    /// A manifest named by an index, by digest.
    fn manifest_by_digest(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<FetchedManifest, SourceError>> + Send;

    /// A small blob (an image config) read whole, verified, at most `max` bytes.
    fn blob_bytes(
        &self,
        blob: &Descriptor,
        max: u64,
    ) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send;

    /// Whether the manifest's digest names the image beyond this source (a registry's or a
    /// layout's manifest); `false` for a manifest the source made (a `docker save` archive
    /// has none), which is then not recorded as a repo digest, as `docker load` records none.
    fn manifest_digest_is_real(&self) -> bool {
        true
    }

    /// Opens a layer blob as a stream of chunks.
    fn open_blob(
        &self,
        blob: &Descriptor,
    ) -> impl Future<Output = Result<Self::Blob, SourceError>> + Send;
}

/// A layer blob's bytes, in order.
pub trait BlobChunks: Send {
    /// The next chunk; `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Option<Result<Bytes, SourceError>>> + Send;
}

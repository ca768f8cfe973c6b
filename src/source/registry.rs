//! The registry as an image source.

use bytes::Bytes;

use super::{BlobChunks, ImageSource, SourceError};
use crate::digest::Digest;
use crate::image::Descriptor;
use crate::reference::Reference;
use crate::registry::{BlobStream, FetchedManifest, RegistryClient};

/// An image in a registry (or its mirrors), named by a reference.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    client: RegistryClient,
    reference: Reference,
}

impl RegistrySource {
    /// The image `reference` as `client` reaches it.
    pub fn new(client: RegistryClient, reference: Reference) -> Self {
        Self { client, reference }
    }

    /// The reference this source reads.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }
}

impl ImageSource for RegistrySource {
    type Blob = BlobStream;

    async fn manifest(&self) -> Result<FetchedManifest, SourceError> {
        // The pull's first request: the connections its next ones need are opened meanwhile.
        self.client.warm_up(&self.reference);
        Ok(self.client.fetch_manifest(&self.reference).await?)
    }

    async fn manifest_by_digest(&self, digest: &Digest) -> Result<FetchedManifest, SourceError> {
        Ok(self
            .client
            .fetch_manifest_by_digest(&self.reference, digest)
            .await?)
    }

    async fn blob_bytes(&self, blob: &Descriptor, max: u64) -> Result<Vec<u8>, SourceError> {
        Ok(self
            .client
            .fetch_blob_bytes(&self.reference, &blob.digest, blob.size, max)
            .await?)
    }

    async fn open_blob(&self, blob: &Descriptor) -> Result<BlobStream, SourceError> {
        Ok(self
            .client
            .fetch_blob_sized(&self.reference, &blob.digest, blob.size)
            .await?)
    }
}

impl BlobChunks for BlobStream {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, SourceError>> {
        Some(
            BlobStream::next_chunk(self)
                .await?
                .map_err(SourceError::from),
        )
    }
}

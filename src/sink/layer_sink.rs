//! The seam between the verifying pipeline and where layers are written.

use std::io::Read;

use crate::archive::{ApplyStats, ArchiveError};
use crate::id::{BlobDigest, ChainId, DiffId};
use crate::image::Compression;
use crate::image::Descriptor;
use crate::pipeline::LayerError;

/// One layer of an image, as the pipeline hands it to a sink.
#[derive(Debug, Clone)]
pub struct LayerJob {
    /// The blob's descriptor from the manifest.
    pub blob: Descriptor,
    /// Its compression.
    pub compression: Compression,
    /// The config's diff_id for it.
    pub diff_id: DiffId,
    /// Its chain ID.
    pub chain_id: ChainId,
    /// Chain IDs below this layer, nearest first.
    pub ancestors: Vec<ChainId>,
}

impl LayerJob {
    /// The blob digest that names this layer (in events and errors).
    pub fn blob_digest(&self) -> BlobDigest {
        BlobDigest::new(self.blob.digest.clone())
    }
}

/// What [`LayerSink::begin`] found.
#[derive(Debug)]
pub enum Begun<P, D> {
    /// The layer is there already: nothing to fetch.
    Present(D),
    /// The layer is to be written.
    Write(P),
}

/// Where verified layers go. The blocking methods run on blocking threads; several layers may
/// be between `begin` and `commit` at once unless [`LayerSink::in_order`] says otherwise.
pub trait LayerSink: Send + Sync + 'static {
    /// A layer being written, between `begin` and `commit`.
    type Pending: Send + 'static;
    /// A layer written (or found present).
    type Done: Send + 'static;

    /// Whether layers must be written one at a time, bottom first (a flattened tree); otherwise
    /// they go concurrently, largest first.
    fn in_order(&self) -> bool;

    /// A quick look (no locks) whether the layer is present, for planning the pull.
    fn has(&self, job: &LayerJob) -> bool;

    /// The layer if it is present (possibly after waiting for another process that writes
    /// it), else a pending write. Blocking.
    fn begin(&self, job: &LayerJob) -> Result<Begun<Self::Pending, Self::Done>, LayerError>;

    /// Writes the layer's tar stream (trailing bytes are drained by the caller). What it wrote
    /// is thrown away unless `commit` follows. Blocking.
    fn apply(
        &self,
        pending: &mut Self::Pending,
        tar: &mut dyn Read,
    ) -> Result<ApplyStats, ArchiveError>;

    /// Whether `commit` needs the layers below this one in place first.
    fn needs_lowers(&self, job: &LayerJob, stats: &ApplyStats) -> bool;

    /// Makes the verified layer (its stats and diff_id checked) durable and visible. Blocking.
    fn commit(
        &self,
        pending: Self::Pending,
        job: &LayerJob,
        stats: ApplyStats,
        diff_id: DiffId,
    ) -> Result<Self::Done, LayerError>;
}

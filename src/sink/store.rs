//! The overlay2 store as a layer sink: each layer unpacked into `staging/<id>/`, verified,
//! then committed into `overlay2/<id>` (synced, or marked unsynced).
//!
//! A layer whose tar left out parent directories (the applier reports them as implicit) and
//! that has layers below it commits only once those layers are in the store, and gives those
//! directories the metadata of the same directories there (see `archive::copy_up`).

use std::io::Read;
use std::path::PathBuf;

use super::{Begun, LayerJob, LayerSink};
use crate::archive::{self, ApplyOptions, ApplyStats, ArchiveError, TreeListing};
use crate::id::DiffId;
use crate::pipeline::LayerError;
use crate::store::{LayerRecord, LockGuard, Staging, Store};

/// Commits layers into a store.
#[derive(Debug, Clone)]
pub struct StoreSink {
    store: Store,
    apply: ApplyOptions,
    sync: bool,
}

/// A layer of a [`StoreSink`] being unpacked.
#[derive(Debug)]
pub struct StoreLayer {
    staging: Staging,
    diff_dir: PathBuf,
    /// Held until the layer is committed: another process wanting it waits.
    _lock: LockGuard,
}

impl StoreSink {
    /// Layers go into `store`, written with `apply`; `sync`: one `syncfs` before each commit
    /// (else an unsynced marker, see `store::durable`).
    pub fn new(store: Store, apply: &ApplyOptions, sync: bool) -> Self {
        let apply = ApplyOptions {
            // Early writeback only pays off before a syncfs.
            writeback: apply.writeback && sync,
            ..apply.clone()
        };
        Self { store, apply, sync }
    }
}

impl LayerSink for StoreSink {
    type Pending = StoreLayer;
    type Done = LayerRecord;

    fn in_order(&self) -> bool {
        false
    }

    fn has(&self, job: &LayerJob) -> bool {
        matches!(self.store.layer(&job.chain_id), Ok(Some(_)))
    }

    fn begin(&self, job: &LayerJob) -> Result<Begun<StoreLayer, LayerRecord>, LayerError> {
        if let Some(record) = self.store.layer(&job.chain_id)? {
            return Ok(Begun::Present(record));
        }
        // Another process may be unpacking the same layer: wait for it, then look again.
        let lock = self.store.lock_layer(&job.chain_id)?;
        if let Some(record) = self.store.layer(&job.chain_id)? {
            return Ok(Begun::Present(record));
        }
        let staging = self.store.begin_layer(&job.chain_id, &job.ancestors)?;
        Ok(Begun::Write(StoreLayer {
            diff_dir: staging.diff_dir(),
            staging,
            _lock: lock,
        }))
    }

    fn apply(
        &self,
        pending: &mut StoreLayer,
        tar: &mut dyn Read,
    ) -> Result<ApplyStats, ArchiveError> {
        archive::apply_layer(tar, &pending.diff_dir, &self.apply)
    }

    fn needs_lowers(&self, job: &LayerJob, stats: &ApplyStats) -> bool {
        !job.ancestors.is_empty() && !stats.implicit_dirs.is_empty()
    }

    fn commit(
        &self,
        pending: StoreLayer,
        job: &LayerJob,
        stats: ApplyStats,
        diff_id: DiffId,
    ) -> Result<LayerRecord, LayerError> {
        if self.needs_lowers(job, &stats) {
            let lowers: Vec<PathBuf> = job
                .ancestors
                .iter()
                .map(|chain| self.store.layer_dir(chain).join("diff"))
                .collect();
            archive::copy_up(
                &pending.diff_dir,
                &stats.implicit_dirs,
                &lowers,
                &self.apply,
            )
            .map_err(|e| LayerError::ImplicitDir {
                path: e.path,
                op: e.op,
                source: e.source,
            })?;
        }
        // The tree is final now: list it, with the hashes taken while writing the files.
        let listing = if self.apply.hash_files {
            let listing = TreeListing::of_dir(&pending.diff_dir, Some(&stats.file_hashes))?;
            pending.staging.put_listing(&listing)?;
            Some(listing)
        } else {
            None
        };
        let record = LayerRecord {
            chain_id: job.chain_id.clone(),
            diff_id,
            parent: job.ancestors.first().cloned(),
            blob_digest: job.blob_digest(),
            blob_size: job.blob.size,
            compression: job.compression,
            link: pending.staging.link().to_string(),
            size: stats.bytes,
            entries: stats.entries,
            content_digest: listing.as_ref().map(TreeListing::digest),
        };
        if self.sync {
            pending.staging.commit(&record)?;
        } else {
            pending.staging.commit_unsynced(&record)?;
        }
        Ok(record)
    }
}

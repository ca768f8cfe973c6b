//! One plain directory as a layer sink: the layers applied bottom first into one tree
//! ([flatten mode](crate::archive#flatten-mode)), as export writes it.

use std::io::Read;
use std::sync::Mutex;

use super::{Begun, LayerJob, LayerSink};
use crate::archive::{ApplyStats, ArchiveError, Flattener};
use crate::id::DiffId;
use crate::pipeline::LayerError;

/// Applies layers, one at a time and bottom first, into one directory.
#[derive(Debug)]
pub struct FlattenSink {
    // Layers come one at a time (`in_order`): the lock is never contended.
    flattener: Mutex<Flattener>,
}

impl FlattenSink {
    /// Flattens with `flattener`.
    pub fn new(flattener: Flattener) -> Self {
        Self {
            flattener: Mutex::new(flattener),
        }
    }

    /// The flattener, to finish the tree once every layer is in.
    pub fn into_flattener(self) -> Flattener {
        self.flattener
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LayerSink for FlattenSink {
    type Pending = ();
    type Done = ApplyStats;

    fn in_order(&self) -> bool {
        true
    }

    fn has(&self, _: &LayerJob) -> bool {
        false
    }

    fn begin(&self, _: &LayerJob) -> Result<Begun<(), ApplyStats>, LayerError> {
        Ok(Begun::Write(()))
    }

    fn apply(&self, _: &mut (), tar: &mut dyn Read) -> Result<ApplyStats, ArchiveError> {
        let mut flattener = self
            .flattener
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        flattener.apply_layer(tar)
    }

    fn needs_lowers(&self, _: &LayerJob, _: &ApplyStats) -> bool {
        false
    }

    fn commit(
        &self,
        _: (),
        _: &LayerJob,
        stats: ApplyStats,
        _: DiffId,
    ) -> Result<ApplyStats, LayerError> {
        Ok(stats)
    }
}

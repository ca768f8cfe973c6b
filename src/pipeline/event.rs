//! Progress of a pull or export, for display.

use crate::id::BlobDigest;
use crate::reference::Reference;

/// Progress of a pull, for display. Layers are named by their blob digest.
#[derive(Debug, Clone)]
pub enum PullEvent {
    /// The reference resolved; layers follow.
    Resolved {
        /// What is pulled.
        reference: Reference,
        /// The image manifest's layers, bottom first, with their blob sizes.
        layers: Vec<(BlobDigest, u64)>,
    },
    /// The layer is in the store already.
    LayerExists {
        /// Blob digest.
        layer: BlobDigest,
    },
    /// Bytes of the blob arrived.
    Downloading {
        /// Blob digest.
        layer: BlobDigest,
        /// Bytes so far.
        done: u64,
        /// The blob's size.
        total: u64,
    },
    /// The download ended; unpacking and verification finish.
    Extracting {
        /// Blob digest.
        layer: BlobDigest,
    },
    /// The layer is verified and in the store.
    LayerDone {
        /// Blob digest.
        layer: BlobDigest,
    },
}

/// Receives [`PullEvent`]s (from several tasks at once).
pub trait Observer: Send + Sync {
    /// Called for each event.
    fn event(&self, event: PullEvent);
}

/// An observer that ignores everything.
#[derive(Debug)]
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: PullEvent) {}
}

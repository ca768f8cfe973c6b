//! The pipeline every image goes through, whatever its [source](crate::source) and
//! [sink](crate::sink): resolve the platform and check the config ([`resolve`]), then per layer
//! stream the blob through sha256 and size, decompression and the diff_id's sha256 into the
//! sink's tar applier, commit only what verified, and run the layers under one scheduler
//! ([`run_layers`]: bounded concurrency, largest first, first failure cancels).
//!
//! `pull` (registry -> store) and `export` (registry -> flattened directory) are this pipeline
//! with different ends.

mod channel;
mod error;
mod event;
mod pipe;
mod prefetch;
mod resolve;
mod schedule;
mod stream;

pub use error::{LayerError, PullError};
pub use event::{Observer, PullEvent, Silent};
pub use prefetch::{Prefetch, pick_prefetch};
pub use resolve::{
    ResolvedImage, ResolvedLayer, ResolvedManifest, resolve, resolve_config, resolve_manifest,
};
pub use schedule::{Scheduled, run_layers, run_layers_prefetched};

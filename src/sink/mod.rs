//! Layer sinks: where a pull's verified layers go.
//!
//! [`StoreSink`] commits each layer into its own overlay2 directory of a [`crate::store::Store`]
//! (concurrently, in any order); [`FlattenSink`] applies the layers one after the other, bottom
//! first, into one plain directory (export). The pipeline ([`crate::pipeline`]) drives either
//! from any [`crate::source::ImageSource`].

mod flatten;
mod layer_sink;
mod store;

pub use flatten::FlattenSink;
pub use layer_sink::{Begun, LayerJob, LayerSink};
pub use store::StoreSink;

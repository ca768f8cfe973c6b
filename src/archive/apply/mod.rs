//! Applying one layer: a member loop shared by both modes ([`applier`]), generic over the
//! [`mode::ApplyMode`] where they differ: [`overlay`] (an empty directory, whiteouts and opaque
//! markers recorded for overlayfs) and [`flatten`] (on top of the lower layers, what they hide
//! deleted), which [`Flattener`] drives for a whole image.

mod applier;
pub(crate) mod flatten;
mod flattener;
mod mode;
pub(crate) mod overlay;

pub use flattener::Flattener;

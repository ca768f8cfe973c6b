//! Image sources: where a pull's manifests, config and layer blobs come from.
//!
//! A source only fetches; [`crate::pipeline`] resolves the platform, checks the config against
//! the manifest and verifies every layer as it streams, whatever the source. The registry
//! ([`RegistrySource`]) is the first source; OCI layouts and archives plug in the same way.

mod error;
mod image_source;
mod registry;

pub use error::SourceError;
pub use image_source::{BlobChunks, ImageSource};
pub use registry::RegistrySource;

//! Image sources: where a pull's manifests, config and layer blobs come from.
//!
//! A source only fetches; [`crate::pipeline`] resolves the platform, checks the config against
//! the manifest and verifies every layer as it streams, whatever the source. The registry
//! ([`RegistrySource`]) and OCI image layouts ([`OciLayoutSource`]) are sources.

mod any;
mod direct;
mod docker_archive;
mod error;
mod files;
mod image_source;
mod layout;
mod registry;
mod spool;
mod tar_index;

pub use any::{AnyBlob, AnySource};
pub use docker_archive::SavedImage;
pub(crate) use docker_archive::saved_images;
pub use error::{LayoutError, SourceError};
pub(crate) use files::Files;
pub use image_source::{BlobChunks, ImageSource};
pub use layout::{LayoutBlob, OciLayoutSource, REF_NAME_ANNOTATION};
pub(crate) use layout::{read_index, ref_name};
pub use registry::RegistrySource;
pub(crate) use spool::shown_name;
pub use spool::{ArchiveCompression, SpooledArchive, is_compressed, spool_archive};

//! The image model (OCI image spec and Docker schema 2): media types, descriptors, manifests
//! and indexes, image configs, platforms and layer compression.
//!
//! Pure data and parsing: no network and no filesystem I/O. The registry client fetches the
//! bytes, [`crate::pull`] and [`crate::export`] interpret them with these types, and
//! [`crate::bundle`] reads an image config without depending on the client.

pub mod compression;
pub mod config;
pub mod descriptor;
pub mod error;
pub mod manifest;
pub mod media_type;
pub mod platform;
pub mod select;

pub use self::compression::{Compression, layer_compression};
pub use self::config::{ContainerConfig, ImageConfig, RootFs, parse_config};
pub use self::descriptor::Descriptor;
pub use self::error::ManifestError;
pub use self::manifest::{ImageIndex, ImageManifest, MAX_MANIFEST_SIZE, Manifest, parse_manifest};
pub use self::media_type::MANIFEST_ACCEPT;
pub use self::platform::{Platform, PlatformError};
pub use self::select::select;

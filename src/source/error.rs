//! The error of every source.

use crate::registry::RegistryError;

/// Why a source could not deliver a manifest or blob. The text is the source's own.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The registry failed.
    #[error("{0}")]
    Registry(#[from] RegistryError),
}

//! Errors from parsing manifests, configs and media types.

/// Errors from parsing manifests, configs and media types.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not the JSON the media type promises.
    #[error("invalid {what}: {source}")]
    Json {
        /// "manifest", "image index", "image config", ...
        what: &'static str,
        /// The parse error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A manifest format strata does not pull.
    #[error("unsupported manifest: {0}")]
    Unsupported(String),
    /// A layer media type with no known compression.
    #[error("unsupported layer media type {0:?}")]
    UnknownLayerType(String),
    /// The content is JSON but breaks the spec.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// "manifest", "image index", "image config", ...
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

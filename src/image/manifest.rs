//! Manifest and index types (OCI image spec and Docker schema 2), and parsing them.
//!
//! Types keep only what strata uses; unknown fields are ignored. Keep the verified raw bytes
//! around: re-serialising these types does not reproduce the original digest.

use serde::{Deserialize, Serialize};

use super::descriptor::Descriptor;
use super::error::ManifestError;
use super::media_type::{base_media_type, is_image_manifest_type, is_index_type, is_schema1_type};

/// Largest manifest or index accepted, as in Docker's distribution code.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The body's own media type, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One entry per platform (plus attestations and such).
    pub manifests: Vec<Descriptor>,
}

/// An OCI image manifest or Docker schema 2 manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The body's own media type, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// Layers, bottom first.
    pub layers: Vec<Descriptor>,
}

/// A parsed manifest: either a multi-platform index or a single image.
// Parsed once per pull; boxing would only complicate matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// OCI index / Docker manifest list.
    Index(ImageIndex),
    /// OCI manifest / Docker schema 2 manifest.
    Image(ImageManifest),
}

/// Just enough of any manifest to decide what it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    layers: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
    fs_layers: Option<serde::de::IgnoredAny>,
}

/// Parses a manifest or index.
///
/// The kind is decided by the body's `mediaType`, else by `content_type` (the HTTP
/// `Content-Type`), else by shape (`manifests` vs `layers`). Docker schema 1 is refused.
pub fn parse_manifest(bytes: &[u8], content_type: &str) -> Result<Manifest, ManifestError> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        what: "manifest",
        source,
    })?;
    let content_type = base_media_type(content_type);
    let schema1 = || {
        ManifestError::Unsupported(
            "Docker schema 1 manifests are deprecated and unsupported; push the image again with a current Docker or BuildKit".to_string(),
        )
    };
    if probe.schema_version.as_ref().and_then(|v| v.as_u64()) == Some(1)
        || probe.media_type.as_deref().is_some_and(is_schema1_type)
        || (probe.media_type.is_none() && is_schema1_type(content_type))
        || (probe.fs_layers.is_some() && probe.layers.is_none())
    {
        return Err(schema1());
    }
    match &probe.schema_version {
        Some(v) if v.as_u64() == Some(2) => {}
        Some(v) => {
            return Err(ManifestError::Unsupported(format!(
                "schemaVersion {v} (expected 2)"
            )));
        }
        None => {
            return Err(ManifestError::Invalid {
                what: "manifest",
                reason: "missing schemaVersion".into(),
            });
        }
    }

    let is_index = match probe.media_type.as_deref() {
        Some(mt) if is_index_type(mt) => true,
        Some(mt) if is_image_manifest_type(mt) => false,
        Some(mt) => {
            return Err(ManifestError::Unsupported(format!(
                "media type {mt:?} is neither an image manifest nor an index"
            )));
        }
        None if is_index_type(content_type) => true,
        None if is_image_manifest_type(content_type) => false,
        None => match (
            probe.manifests.is_some(),
            probe.layers.is_some() || probe.config.is_some(),
        ) {
            (true, false) => true,
            (false, true) => false,
            (true, true) => {
                return Err(ManifestError::Invalid {
                    what: "manifest",
                    reason: "has both `manifests` and `layers`; cannot tell an index from an image manifest".into(),
                });
            }
            (false, false) => {
                return Err(ManifestError::Invalid {
                    what: "manifest",
                    reason: format!(
                        "neither `manifests` nor `layers` found, and no known media type (Content-Type {content_type:?})"
                    ),
                });
            }
        },
    };
    if is_index {
        serde_json::from_slice(bytes)
            .map(Manifest::Index)
            .map_err(|source| ManifestError::Json {
                what: "image index",
                source,
            })
    } else {
        serde_json::from_slice(bytes)
            .map(Manifest::Image)
            .map_err(|source| ManifestError::Json {
                what: "image manifest",
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::compression::{Compression, layer_compression};
    use crate::image::media_type::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn docker_v2() -> String {
        format!(
            r#"{{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {{"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1472, "digest": "{D1}"}},
   "layers": [
      {{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 3408729, "digest": "{D2}"}},
      {{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 10, "digest": "{D3}",
        "urls": ["https://example.com/layer"]}}
   ]
}}"#
        )
    }

    fn oci_index() -> String {
        format!(
            r#"{{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "{D1}", "size": 1013,
      "platform": {{"architecture": "amd64", "os": "linux"}}}},
    {{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "{D2}", "size": 1013,
      "platform": {{"architecture": "arm64", "os": "linux", "variant": "v8", "os.features": ["x"]}}}},
    {{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "{D3}", "size": 566,
      "annotations": {{"vnd.docker.reference.digest": "{D1}", "vnd.docker.reference.type": "attestation-manifest"}},
      "platform": {{"architecture": "unknown", "os": "unknown"}}}}
  ],
  "annotations": {{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}}
}}"#
        )
    }

    #[test]
    fn parses_docker_schema2() {
        let Manifest::Image(m) = parse_manifest(docker_v2().as_bytes(), "").unwrap() else {
            panic!("not an image")
        };
        assert_eq!(m.schema_version, 2);
        assert_eq!(m.config.media_type, DOCKER_CONFIG);
        assert_eq!(m.config.digest.to_string(), D1);
        assert_eq!(m.config.size, 1472);
        assert_eq!(m.layers.len(), 2);
        assert_eq!(
            layer_compression(&m.layers[0].media_type).unwrap(),
            Compression::Gzip
        );
        assert!(is_non_distributable(&m.layers[1].media_type));
        assert_eq!(
            m.layers[1].urls.as_deref(),
            Some(&["https://example.com/layer".to_string()][..])
        );
    }

    #[test]
    fn parses_oci_index() {
        let Manifest::Index(i) = parse_manifest(oci_index().as_bytes(), OCI_INDEX).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(i.manifests.len(), 3);
        let p = i.manifests[1].platform.as_ref().unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(p.os_features.as_deref(), Some(&["x".to_string()][..]));
        assert!(
            i.manifests[2]
                .annotations
                .as_ref()
                .unwrap()
                .contains_key("vnd.docker.reference.type")
        );
    }

    #[test]
    fn decides_by_content_type_then_shape() {
        let no_mt = docker_v2().replace(
            r#""mediaType": "application/vnd.docker.distribution.manifest.v2+json","#,
            "",
        );
        assert!(matches!(
            parse_manifest(no_mt.as_bytes(), OCI_MANIFEST).unwrap(),
            Manifest::Image(_)
        ));
        assert!(matches!(
            parse_manifest(no_mt.as_bytes(), "application/json").unwrap(),
            Manifest::Image(_)
        ));
        let idx = oci_index().replace(
            r#""mediaType": "application/vnd.oci.image.index.v1+json","#,
            "",
        );
        assert!(matches!(
            parse_manifest(
                idx.as_bytes(),
                "application/vnd.oci.image.index.v1+json; charset=utf-8"
            )
            .unwrap(),
            Manifest::Index(_)
        ));
        assert!(matches!(
            parse_manifest(idx.as_bytes(), "text/plain").unwrap(),
            Manifest::Index(_)
        ));
        // The body's media type wins over the header.
        assert!(matches!(
            parse_manifest(oci_index().as_bytes(), OCI_MANIFEST).unwrap(),
            Manifest::Index(_)
        ));
        let err = parse_manifest(br#"{"schemaVersion":2}"#, "").unwrap_err();
        assert!(
            err.to_string().contains("neither `manifests` nor `layers`"),
            "{err}"
        );
    }

    #[test]
    fn refuses_schema1_and_oddities() {
        let schema1 = br#"{"schemaVersion":1,"name":"library/x","tag":"latest","fsLayers":[{"blobSum":"sha256:00"}]}"#;
        let err = parse_manifest(schema1, DOCKER_SCHEMA1_SIGNED_MANIFEST).unwrap_err();
        assert!(err.to_string().contains("Docker schema 1"), "{err}");
        assert!(
            parse_manifest(schema1, "application/json")
                .unwrap_err()
                .to_string()
                .contains("schema 1")
        );
        let err = parse_manifest(b"<html>", "").unwrap_err();
        assert!(err.to_string().starts_with("invalid manifest"), "{err}");
        let err = parse_manifest(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}"#,
            "",
        )
        .unwrap_err();
        assert!(err.to_string().contains("artifact"), "{err}");
        let err = parse_manifest(br#"{"schemaVersion":3,"layers":[]}"#, "").unwrap_err();
        assert!(err.to_string().contains("schemaVersion 3"), "{err}");
        // A manifest with a bad digest fails with a clear message.
        let bad = docker_v2().replace(D2, "sha256:nothex");
        let err = parse_manifest(bad.as_bytes(), "").unwrap_err();
        assert!(err.to_string().contains("invalid digest"), "{err}");
        // Index media type but manifest shape.
        let wrong = docker_v2().replace(DOCKER_MANIFEST, DOCKER_MANIFEST_LIST);
        assert!(
            parse_manifest(wrong.as_bytes(), "")
                .unwrap_err()
                .to_string()
                .contains("manifests")
        );
    }
}

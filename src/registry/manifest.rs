//! Manifest, index and image-config types (OCI image spec and Docker schema 2), and parsing.
//!
//! Types keep only what strata uses; unknown fields are ignored. Keep the verified raw bytes
//! around: re-serialising these types does not reproduce the original digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::platform::Platform;
use crate::compression::Compression;
use crate::digest::Digest;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, plain tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd.
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer, plain tar (deprecated in the spec, still found).
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip.
pub const OCI_LAYER_NONDIST_TAR_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd.
pub const OCI_LAYER_NONDIST_TAR_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, plain tar (written by BuildKit for uncompressed layers).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker layer, zstd (BuildKit/containerd).
pub const DOCKER_LAYER_TAR_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign layer (e.g. Windows base layers), gzip.
pub const DOCKER_FOREIGN_LAYER_TAR_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker foreign layer, plain tar.
pub const DOCKER_FOREIGN_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// Docker schema 1 manifest (unsupported; only detected).
pub const DOCKER_SCHEMA1_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker schema 1 manifest (unsupported; only detected).
pub const DOCKER_SCHEMA1_SIGNED_MANIFEST: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Largest manifest or index accepted, as in Docker's distribution code.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

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

/// A content descriptor: a typed, sized, digested pointer to a blob or manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Platform of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Alternative download locations (foreign / non-distributable layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

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

/// The media type without parameters (`; charset=utf-8`), trimmed.
pub fn base_media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// True for index / manifest-list media types.
pub fn is_index_type(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// True for single-image manifest media types.
pub fn is_image_manifest_type(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST)
}

/// True for the Docker schema 1 media types.
pub fn is_schema1_type(media_type: &str) -> bool {
    matches!(
        media_type,
        DOCKER_SCHEMA1_MANIFEST | DOCKER_SCHEMA1_SIGNED_MANIFEST
    )
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

/// The compression of a layer, from its media type.
///
/// Knows the OCI and Docker tar / gzip / zstd types, including non-distributable and foreign
/// layers. Anything else (encrypted layers, artifacts, ...) is an error naming the type.
pub fn layer_compression(media_type: &str) -> Result<Compression, ManifestError> {
    Ok(match base_media_type(media_type) {
        OCI_LAYER_TAR | OCI_LAYER_NONDIST_TAR | DOCKER_LAYER_TAR | DOCKER_FOREIGN_LAYER_TAR => {
            Compression::None
        }
        OCI_LAYER_TAR_GZIP
        | OCI_LAYER_NONDIST_TAR_GZIP
        | DOCKER_LAYER_TAR_GZIP
        | DOCKER_FOREIGN_LAYER_TAR_GZIP => Compression::Gzip,
        OCI_LAYER_TAR_ZSTD | OCI_LAYER_NONDIST_TAR_ZSTD | DOCKER_LAYER_TAR_ZSTD => {
            Compression::Zstd
        }
        _ => return Err(ManifestError::UnknownLayerType(media_type.to_string())),
    })
}

/// True for layers that registries may not serve (they carry `urls` instead).
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        base_media_type(media_type),
        OCI_LAYER_NONDIST_TAR
            | OCI_LAYER_NONDIST_TAR_GZIP
            | OCI_LAYER_NONDIST_TAR_ZSTD
            | DOCKER_FOREIGN_LAYER_TAR
            | DOCKER_FOREIGN_LAYER_TAR_GZIP
    )
}

/// An image config (OCI `application/vnd.oci.image.config.v1+json` or Docker's equivalent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// Architecture variant (`v8`, `v7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Defaults for containers run from the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// Layer diff IDs (digests of the uncompressed tars), bottom first.
    pub rootfs: RootFs,
    /// Build history, kept as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<serde_json::Value>>,
}

impl ImageConfig {
    /// The platform as Docker shows it: `os/architecture`, plus `/variant` when there is one.
    pub fn platform(&self) -> String {
        match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// The `rootfs` section of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    pub r#type: String,
    /// Digests of the uncompressed layer tars, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// Container defaults of an image config, in Docker's PascalCase field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `user:group`, `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `KEY=value` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or command, without an entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `port/proto` -> `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// Volume paths -> `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Signal to stop the container (`SIGTERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Every other field (Healthcheck, ArgsEscaped, OnBuild, ...), kept as JSON.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Parses an image config; `rootfs.type` must be `layers`.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
    let config: ImageConfig =
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image config",
            source,
        })?;
    if config.rootfs.r#type != "layers" {
        return Err(ManifestError::Invalid {
            what: "image config",
            reason: format!(
                "rootfs.type is {:?}, expected \"layers\"",
                config.rootfs.r#type
            ),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn layer_types() {
        use Compression::*;
        for (mt, c) in [
            (OCI_LAYER_TAR, None),
            (OCI_LAYER_TAR_GZIP, Gzip),
            (OCI_LAYER_TAR_ZSTD, Zstd),
            (OCI_LAYER_NONDIST_TAR, None),
            (OCI_LAYER_NONDIST_TAR_GZIP, Gzip),
            (OCI_LAYER_NONDIST_TAR_ZSTD, Zstd),
            (DOCKER_LAYER_TAR_GZIP, Gzip),
            (DOCKER_LAYER_TAR, None),
            (DOCKER_LAYER_TAR_ZSTD, Zstd),
            (DOCKER_FOREIGN_LAYER_TAR_GZIP, Gzip),
            (DOCKER_FOREIGN_LAYER_TAR, None),
        ] {
            assert_eq!(layer_compression(mt).unwrap(), c, "{mt}");
        }
        let err =
            layer_compression("application/vnd.oci.image.layer.v1.tar+gzip+encrypted").unwrap_err();
        assert!(err.to_string().contains("tar+gzip+encrypted"), "{err}");
        assert!(layer_compression("application/octet-stream").is_err());
        assert!(!is_non_distributable(OCI_LAYER_TAR_GZIP));
    }

    const CONFIG: &str = r#"{
  "architecture": "amd64",
  "config": {
    "Hostname": "",
    "User": "nobody",
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["/bin/sh"],
    "Entrypoint": null,
    "WorkingDir": "/srv",
    "Labels": {"org.opencontainers.image.title": "x"},
    "ExposedPorts": {"80/tcp": {}},
    "Volumes": {"/data": {}},
    "StopSignal": "SIGQUIT",
    "ArgsEscaped": true,
    "OnBuild": null
  },
  "created": "2024-01-26T23:44:46.0Z",
  "history": [{"created": "2024-01-26T23:44:45Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "}],
  "os": "linux",
  "rootfs": {
    "type": "layers",
    "diff_ids": ["sha256:d4fc045c9e3a848011de66f34b81f052d4f2c15a17bb196d637e526349601820"]
  }
}"#;

    #[test]
    fn parses_image_config() {
        let c = parse_config(CONFIG.as_bytes()).unwrap();
        assert_eq!(
            (c.os.as_str(), c.architecture.as_str(), c.variant.as_deref()),
            ("linux", "amd64", None)
        );
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert_eq!(c.history.as_ref().map(Vec::len), Some(1));
        let cc = c.config.unwrap();
        assert_eq!(cc.user.as_deref(), Some("nobody"));
        assert_eq!(cc.cmd, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(cc.entrypoint, None);
        assert_eq!(cc.working_dir.as_deref(), Some("/srv"));
        assert!(cc.exposed_ports.unwrap().contains_key("80/tcp"));
        assert!(cc.volumes.unwrap().contains_key("/data"));
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(cc.labels.unwrap()["org.opencontainers.image.title"], "x");
        assert_eq!(
            cc.extra.get("ArgsEscaped"),
            Some(&serde_json::Value::Bool(true))
        );
        assert!(cc.extra.contains_key("Hostname"));
    }

    #[test]
    fn refuses_bad_configs() {
        let err = parse_config(b"\x1f\x8b\x08\x00").unwrap_err();
        assert!(err.to_string().starts_with("invalid image config"), "{err}");
        let err = parse_config(
            CONFIG
                .replace(r#""type": "layers""#, r#""type": "snapshots""#)
                .as_bytes(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("rootfs.type"), "{err}");
        let err = parse_config(br#"{"architecture":"amd64","os":"linux"}"#).unwrap_err();
        assert!(err.to_string().contains("rootfs"), "{err}");
        // A minimal config without a container section is fine.
        let c = parse_config(br#"{"architecture":"arm","os":"linux","variant":"v7","rootfs":{"type":"layers","diff_ids":[]}}"#)
            .unwrap();
        assert_eq!(c.variant.as_deref(), Some("v7"));
        assert!(c.config.is_none());
        assert_eq!(c.platform(), "linux/arm/v7");
        let plain = |variant: &str| {
            let json = format!(
                r#"{{"architecture":"amd64","os":"linux"{variant},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            );
            parse_config(json.as_bytes()).unwrap().platform()
        };
        assert_eq!(plain(""), "linux/amd64");
        assert_eq!(plain(r#","variant":"""#), "linux/amd64");
    }
}

//! Media types of OCI and Docker manifests, configs and layers, and the manifest `Accept`
//! list.

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

/// Media types sent in `Accept` for manifests: OCI index and manifest, Docker list and
/// schema 2, and schema 1 (only so that it can be recognised and refused clearly).
pub const MANIFEST_ACCEPT: &str = concat!(
    "application/vnd.oci.image.index.v1+json, ",
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json, ",
    "application/vnd.docker.distribution.manifest.v2+json, ",
    "application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, ",
    "application/vnd.docker.distribution.manifest.v1+json;q=0.5"
);

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

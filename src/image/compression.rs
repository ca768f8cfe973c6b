//! Layer compression as the image describes it: from the layer's media type, confirmed by
//! the blob's magic bytes.

use super::error::ManifestError;
use super::media_type::{
    DOCKER_FOREIGN_LAYER_TAR, DOCKER_FOREIGN_LAYER_TAR_GZIP, DOCKER_LAYER_TAR,
    DOCKER_LAYER_TAR_GZIP, DOCKER_LAYER_TAR_ZSTD, OCI_LAYER_NONDIST_TAR,
    OCI_LAYER_NONDIST_TAR_GZIP, OCI_LAYER_NONDIST_TAR_ZSTD, OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP,
    OCI_LAYER_TAR_ZSTD, base_media_type,
};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// What the first bytes of a blob say it is.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Lower-case name, as in media types.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media_type::is_non_distributable;

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
}

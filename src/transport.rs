//! Where an image reference points: skopeo's transport names. `docker://REF` and a bare
//! reference are the registry; `oci:DIR[:REF]` is an OCI image layout directory.

use std::path::PathBuf;

use crate::reference::{Reference, ReferenceError};
use crate::registry::RegistryClient;
use crate::source::{AnySource, LayoutError, OciLayoutSource, RegistrySource};

/// A parsed image location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// An image in a registry.
    Registry(Reference),
    /// An image in an OCI image layout directory.
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` of the image; `None`: the only one.
        ref_name: Option<String>,
    },
}

/// Why an image location could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The registry reference is invalid.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A layout location without a directory.
    #[error("{0:?}: no directory given (expected oci:DIR[:REF])")]
    NoDirectory(String),
}

impl Transport {
    /// Parses `docker://REF`, `oci:DIR[:REF]`, or a bare registry reference. In `oci:`, the
    /// first `:` after the directory starts REF (skopeo's rule), so DIR cannot hold one.
    pub fn parse(s: &str) -> Result<Self, TransportError> {
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(Transport::Registry(Reference::parse(rest)?));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, ref_name) = match rest.split_once(':') {
                Some((dir, name)) if !name.is_empty() => (dir, Some(name.to_string())),
                Some((dir, _)) => (dir, None),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(TransportError::NoDirectory(s.to_string()));
            }
            return Ok(Transport::OciLayout {
                dir: PathBuf::from(dir),
                ref_name,
            });
        }
        Ok(Transport::Registry(Reference::parse(s)?))
    }

    /// The source that reads this location (`client` for a registry). Opening a layout reads
    /// its `index.json` (blocking).
    pub fn open(&self, client: &RegistryClient) -> Result<AnySource, LayoutError> {
        Ok(match self {
            Transport::Registry(r) => {
                AnySource::Registry(RegistrySource::new(client.clone(), r.clone()))
            }
            Transport::OciLayout { dir, ref_name } => {
                AnySource::Layout(OciLayoutSource::open(dir, ref_name.as_deref())?)
            }
        })
    }

    /// The reference the image is stored and tagged under. A registry image keeps its own; a
    /// layout image whose REF is a full name (it has a `/`: `example.com/app:1`) gets that
    /// name, else `localhost/<directory name>:<REF or latest>` (a REF that is a tag, as
    /// skopeo writes it).
    pub fn name(&self) -> Result<Reference, TransportError> {
        match self {
            Transport::Registry(r) => Ok(r.clone()),
            Transport::OciLayout { dir, ref_name } => {
                if let Some(name) = ref_name.as_deref().filter(|n| n.contains('/')) {
                    return Ok(Reference::parse(name)?);
                }
                let base = dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_default();
                let repo: String = base
                    .to_lowercase()
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "._-".contains(c) {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                let repo = repo.trim_matches(|c: char| !c.is_ascii_alphanumeric());
                let repo = if repo.is_empty() { "oci-layout" } else { repo };
                let tag = ref_name.as_deref().unwrap_or("latest");
                Ok(Reference::parse(&format!("localhost/{repo}:{tag}"))?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_and_docker_references_are_the_registry() {
        let bare = Transport::parse("alpine:3.20").unwrap();
        let explicit = Transport::parse("docker://alpine:3.20").unwrap();
        assert_eq!(bare, explicit);
        assert!(matches!(bare, Transport::Registry(r) if r.repository == "library/alpine"));
    }

    #[test]
    fn oci_layouts_take_an_optional_ref_name() {
        assert_eq!(
            Transport::parse("oci:/tmp/lay:v1").unwrap(),
            Transport::OciLayout {
                dir: "/tmp/lay".into(),
                ref_name: Some("v1".into())
            }
        );
        assert_eq!(
            Transport::parse("oci:./lay").unwrap(),
            Transport::OciLayout {
                dir: "./lay".into(),
                ref_name: None
            }
        );
        assert!(Transport::parse("oci::v1").is_err());
    }

    #[test]
    fn layout_images_are_named_by_full_ref_names_or_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("My App");
        std::fs::create_dir(&dir).unwrap();
        let tagged = Transport::OciLayout {
            dir: dir.clone(),
            ref_name: Some("v1".into()),
        };
        assert_eq!(tagged.name().unwrap().to_string(), "localhost/my-app:v1");
        let named = Transport::OciLayout {
            dir,
            ref_name: Some("example.com/app:2".into()),
        };
        assert_eq!(named.name().unwrap().to_string(), "example.com/app:2");
    }
}

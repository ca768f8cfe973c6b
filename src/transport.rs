//! Where an image reference points: skopeo's transport names. `docker://REF` and a bare
//! reference are the registry; `oci:DIR[:REF]` is an OCI image layout directory,
//! `oci-archive:FILE[:REF]` a tar of one, `docker-archive:FILE[:NAME:TAG]` a `docker save`
//! archive.

use std::path::PathBuf;

use crate::reference::{Reference, ReferenceError};
use crate::registry::RegistryClient;
use crate::source::{
    AnySource, Files, LayoutError, OciLayoutSource, RegistrySource, read_index, ref_name,
    saved_images,
};

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
    /// An image in a tar of an OCI image layout.
    OciArchive {
        /// The tar file.
        file: PathBuf,
        /// As in [`Transport::OciLayout`].
        ref_name: Option<String>,
    },
    /// An image in a `docker save` archive.
    DockerArchive {
        /// The tar file.
        file: PathBuf,
        /// The `NAME:TAG` it was saved under; `None`: the only one.
        name: Option<String>,
    },
}

/// Why an image location could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The registry reference is invalid (the reference error is its source, so that callers
    /// walking the chain find it).
    #[error("{0}")]
    Reference(#[from] ReferenceError),
    /// A layout or archive location without a path.
    #[error(
        "{0:?}: no path given (expected oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:NAME:TAG])"
    )]
    NoDirectory(String),
    /// The layout or archive cannot be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

impl Transport {
    /// Parses `docker://REF`, `oci:DIR[:REF]`, or a bare registry reference. In `oci:`, the
    /// first `:` after the directory starts REF (skopeo's rule), so DIR cannot hold one.
    pub fn parse(s: &str) -> Result<Self, TransportError> {
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(Transport::Registry(Reference::parse(rest)?));
        }
        for (prefix, kind) in [("oci:", 0), ("oci-archive:", 1), ("docker-archive:", 2)] {
            let Some(rest) = s.strip_prefix(prefix) else {
                continue;
            };
            let (path, name) = match rest.split_once(':') {
                Some((path, name)) if !name.is_empty() => (path, Some(name.to_string())),
                Some((path, _)) => (path, None),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(TransportError::NoDirectory(s.to_string()));
            }
            let path = PathBuf::from(path);
            return Ok(match kind {
                0 => Transport::OciLayout {
                    dir: path,
                    ref_name: name,
                },
                1 => Transport::OciArchive {
                    file: path,
                    ref_name: name,
                },
                _ => Transport::DockerArchive { file: path, name },
            });
        }
        Ok(Transport::Registry(Reference::parse(s)?))
    }

    /// The source that reads this location (`client` for a registry). Opening a layout or an
    /// archive reads its index (blocking).
    pub fn open(&self, client: &RegistryClient) -> Result<AnySource, LayoutError> {
        Ok(match self {
            Transport::Registry(r) => {
                AnySource::Registry(RegistrySource::new(client.clone(), r.clone()))
            }
            Transport::OciLayout { dir, ref_name } => {
                AnySource::Layout(OciLayoutSource::open(dir, ref_name.as_deref())?)
            }
            Transport::OciArchive { file, ref_name } => {
                AnySource::Layout(OciLayoutSource::open_archive(file, ref_name.as_deref())?)
            }
            Transport::DockerArchive { file, name } => {
                AnySource::Layout(OciLayoutSource::open_docker_archive(file, name.as_deref())?.0)
            }
        })
    }

    /// The reference the image is stored and tagged under. A registry image keeps its own; a
    /// layout image whose REF (given, else the chosen image's: blocking) is a full name (it
    /// has a `/`: `example.com/app:1`) gets that name, else `localhost/<directory or file
    /// name>:<REF or latest>` (a REF that is a tag, as skopeo writes it); a `docker save` image its NAME:TAG, else the first name it was
    /// saved under (read from the archive: blocking), else `localhost/<file name>:latest`.
    pub fn name(&self) -> Result<Reference, TransportError> {
        match self {
            Transport::Registry(r) => Ok(r.clone()),
            Transport::DockerArchive { file, name } => {
                let saved = match name {
                    Some(name) => Some(name.clone()),
                    None => OciLayoutSource::open_docker_archive(file, None)?
                        .1
                        .into_iter()
                        .next(),
                };
                match saved {
                    Some(saved) => Ok(Reference::parse(&saved)?),
                    None => local_name(file, None),
                }
            }
            Transport::OciLayout {
                dir: path,
                ref_name,
            }
            | Transport::OciArchive {
                file: path,
                ref_name,
            } => {
                let ref_name = match ref_name {
                    Some(name) => Some(name.clone()),
                    None if matches!(self, Transport::OciLayout { .. }) => {
                        OciLayoutSource::open(path, None)?.ref_name()
                    }
                    None => OciLayoutSource::open_archive(path, None)?.ref_name(),
                };
                if let Some(name) = ref_name.as_deref().filter(|n| n.contains('/')) {
                    return Ok(Reference::parse(name)?);
                }
                local_name(path, ref_name.as_deref())
            }
        }
    }
}

/// The images of the archive `file` (`docker save`, `podman save` or `oci-archive`), one
/// location per name to load it under, as `docker load` does: a `docker save` archive (it has
/// `manifest.json`) gives each saved NAME:TAG (an image saved without a name: the archive's
/// only image), a tar of an OCI layout each `index.json` entry by its ref name (an unnamed
/// entry: the layout's only image). Blocking (indexes the archive).
pub fn archive_images(file: &std::path::Path) -> Result<Vec<Transport>, TransportError> {
    let files = Files::tar(file)?;
    let mut found = Vec::new();
    if files.has("manifest.json") {
        for saved in saved_images(&files)? {
            let tags = saved.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                found.push(Transport::DockerArchive {
                    file: file.to_path_buf(),
                    name: None,
                });
            }
            found.extend(tags.into_iter().map(|tag| Transport::DockerArchive {
                file: file.to_path_buf(),
                name: Some(tag),
            }));
        }
    } else {
        for entry in read_index(&files)?.manifests {
            found.push(Transport::OciArchive {
                file: file.to_path_buf(),
                ref_name: ref_name(&entry),
            });
        }
    }
    Ok(found)
}

/// `localhost/<name of path, without .tar>:<tag or latest>`, the name made a valid repository.
fn local_name(path: &std::path::Path, tag: Option<&str>) -> Result<Reference, TransportError> {
    // A spooled copy (`/proc/self/fd/N`) is named by its archive: `stdin`, `app.tar.gz`.
    let shown = crate::source::shown_name(path);
    let base = shown
        .canonicalize()
        .unwrap_or(shown)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = [".gz", ".zst", ".xz"]
        .iter()
        .find_map(|s| base.strip_suffix(s))
        .unwrap_or(&base);
    let base = base.strip_suffix(".tar").unwrap_or(base);
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
    let repo = if repo.is_empty() { "image" } else { repo };
    Ok(Reference::parse(&format!(
        "localhost/{repo}:{}",
        tag.unwrap_or("latest")
    ))?)
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

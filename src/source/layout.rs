//! An OCI image layout (`oci:DIR[:REF]`, or a tar of one: `oci-archive:FILE[:REF]`) as an
//! image source; also the source a `docker save` archive becomes (see `docker_archive`).
//!
//! The layout is untrusted input: in a directory every file is opened beneath it with no
//! symlink followed (`openat2`) and must be a regular file with one link; a tar is indexed
//! once and only its regular files are read (see `tar_index`). JSON is read up to
//! [`MAX_MANIFEST_SIZE`]. Blob paths come from parsed digests (`blobs/sha256/<64 hex>`), so
//! no `../` can reach them. Manifests and the config are verified here; layer blobs by the
//! pipeline as they stream.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::files::{Files, Slice};
use super::{BlobChunks, ImageSource, LayoutError, SourceError};
use crate::digest::{Digest, DigestError};
use crate::image::{Descriptor, ImageIndex, MAX_MANIFEST_SIZE};
use crate::registry::FetchedManifest;

/// The annotation that names an image in a layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// An image in an OCI image layout (a directory or a tar), chosen by its
/// `org.opencontainers.image.ref.name`.
#[derive(Debug, Clone)]
pub struct OciLayoutSource {
    files: Arc<Files>,
    top: Top,
    /// Blobs stored under other names than `blobs/sha256/<hex>` (`docker save`'s).
    paths: Arc<HashMap<Digest, String>>,
}

/// What the source's reference names.
#[derive(Debug, Clone)]
enum Top {
    /// A manifest or index blob of the layout.
    Blob(Box<Descriptor>),
    /// A manifest made from `docker save`'s `manifest.json`.
    Made(Arc<FetchedManifest>),
}

impl OciLayoutSource {
    /// Opens the layout at `dir` and picks the image named `ref_name` in its `index.json` (or
    /// its only image when `None`). Blocking (reads `oci-layout` and `index.json`).
    pub fn open(dir: &Path, ref_name: Option<&str>) -> Result<Self, LayoutError> {
        Self::of(Files::dir(dir)?, ref_name)
    }

    /// Opens the tar of a layout at `file` (read in place: its members are indexed once) and
    /// picks the image as [`OciLayoutSource::open`]. Blocking.
    pub fn open_archive(file: &Path, ref_name: Option<&str>) -> Result<Self, LayoutError> {
        Self::of(Files::tar(file)?, ref_name)
    }

    /// The layout in `files`, the image named `ref_name`.
    pub(crate) fn of(files: Files, ref_name: Option<&str>) -> Result<Self, LayoutError> {
        if !files.has("oci-layout") {
            return Err(LayoutError::NotLayout {
                dir: files.path().to_path_buf(),
            });
        }
        let index = read_index(&files)?;
        let chosen = choose(&index.manifests, ref_name, files.path())?;
        Ok(Self {
            files: Arc::new(files),
            top: Top::Blob(Box::new(chosen)),
            paths: Arc::default(),
        })
    }

    /// The `org.opencontainers.image.ref.name` of the chosen image, if it has one.
    pub fn ref_name(&self) -> Option<String> {
        match &self.top {
            Top::Blob(d) => ref_name(d),
            Top::Made(_) => None,
        }
    }

    /// A source whose top manifest is `manifest` (made, not read) and whose blobs are the
    /// members `paths` names.
    pub(crate) fn made(
        files: Files,
        manifest: FetchedManifest,
        paths: HashMap<Digest, String>,
    ) -> Self {
        Self {
            files: Arc::new(files),
            top: Top::Made(Arc::new(manifest)),
            paths: Arc::new(paths),
        }
    }

    /// Where blob `digest` is.
    fn blob_path(&self, digest: &Digest) -> String {
        self.paths
            .get(digest)
            .cloned()
            .unwrap_or_else(|| blob_path(digest))
    }

    /// Reads the blob `digest`, at most `max` bytes, verified against `digest` (and `size`
    /// when known), off the async workers.
    async fn verified_blob(
        &self,
        digest: &Digest,
        size: Option<u64>,
        max: u64,
    ) -> Result<Vec<u8>, LayoutError> {
        let (files, digest, rel) = (self.files.clone(), digest.clone(), self.blob_path(digest));
        let shown = self.files.path().join(&rel);
        tokio::task::spawn_blocking(move || {
            let bytes = files.read(&rel, max)?;
            let mismatch = |source| LayoutError::Blob {
                path: files.path().join(&rel),
                source,
            };
            if let Some(expected) = size.filter(|s| *s != bytes.len() as u64) {
                return Err(mismatch(DigestError::SizeMismatch {
                    expected,
                    actual: bytes.len() as u64,
                }));
            }
            Digest::of(&bytes).verify(&digest).map_err(mismatch)?;
            Ok(bytes)
        })
        .await
        .map_err(|e| LayoutError::Io {
            path: shown,
            op: "reading",
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

/// The layout's `index.json`.
pub(crate) fn read_index(files: &Files) -> Result<ImageIndex, LayoutError> {
    let bytes = files.read("index.json", MAX_MANIFEST_SIZE)?;
    serde_json::from_slice(&bytes).map_err(|source| LayoutError::Json {
        path: files.path().join("index.json"),
        source,
    })
}

/// The `org.opencontainers.image.ref.name` of an index entry.
pub(crate) fn ref_name(d: &Descriptor) -> Option<String> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME_ANNOTATION))
        .cloned()
}

/// The descriptor in `manifests` named `wanted`, or the only one.
fn choose(
    manifests: &[Descriptor],
    wanted: Option<&str>,
    dir: &Path,
) -> Result<Descriptor, LayoutError> {
    let available = || {
        let names: Vec<String> = manifests.iter().filter_map(ref_name).collect();
        if names.is_empty() {
            "no named images".to_string()
        } else {
            names.join(", ")
        }
    };
    let found: Vec<&Descriptor> = match wanted {
        Some(wanted) => manifests
            .iter()
            .filter(|d| ref_name(d).as_deref() == Some(wanted))
            .collect(),
        None => manifests.iter().collect(),
    };
    match (found.as_slice(), wanted) {
        ([one], _) => Ok((*one).clone()),
        ([], Some(wanted)) => Err(LayoutError::NoSuchRef {
            dir: dir.to_path_buf(),
            wanted: wanted.to_string(),
            available: available(),
        }),
        (found, _) => Err(LayoutError::Ambiguous {
            dir: dir.to_path_buf(),
            count: found.len(),
            available: available(),
        }),
    }
}

/// `blobs/sha256/<hex>`: built from a parsed digest, so it cannot climb out.
pub(crate) fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

impl ImageSource for OciLayoutSource {
    type Blob = LayoutBlob;

    async fn manifest(&self) -> Result<FetchedManifest, SourceError> {
        match &self.top {
            Top::Made(m) => Ok(m.as_ref().clone()),
            Top::Blob(d) => {
                let bytes = self
                    .verified_blob(&d.digest, Some(d.size), MAX_MANIFEST_SIZE)
                    .await?;
                Ok(FetchedManifest {
                    bytes,
                    media_type: d.media_type.clone(),
                    digest: d.digest.clone(),
                })
            }
        }
    }

    fn manifest_digest_is_real(&self) -> bool {
        matches!(self.top, Top::Blob(_))
    }

    async fn manifest_by_digest(&self, digest: &Digest) -> Result<FetchedManifest, SourceError> {
        let bytes = self.verified_blob(digest, None, MAX_MANIFEST_SIZE).await?;
        // The body's mediaType decides (see `parse_manifest`).
        Ok(FetchedManifest {
            bytes,
            media_type: String::new(),
            digest: digest.clone(),
        })
    }

    async fn blob_bytes(&self, blob: &Descriptor, max: u64) -> Result<Vec<u8>, SourceError> {
        Ok(self
            .verified_blob(&blob.digest, Some(blob.size), max)
            .await?)
    }

    async fn open_blob(&self, blob: &Descriptor) -> Result<LayoutBlob, SourceError> {
        let (files, rel) = (self.files.clone(), self.blob_path(&blob.digest));
        let path = self.files.path().join(&rel);
        let slice = tokio::task::spawn_blocking(move || files.slice(&rel))
            .await
            .map_err(|e| LayoutError::Io {
                path: path.clone(),
                op: "opening",
                source: std::io::Error::other(e.to_string()),
            })??;
        Ok(LayoutBlob {
            slice: Some(slice),
            path,
        })
    }
}

/// A layer blob of a layout, read in chunks off the async workers.
#[derive(Debug)]
pub struct LayoutBlob {
    /// `None` once the end was reached or a read failed.
    slice: Option<Slice>,
    path: std::path::PathBuf,
}

impl BlobChunks for LayoutBlob {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, SourceError>> {
        let mut slice = self.slice.take()?;
        let read = tokio::task::spawn_blocking(move || {
            let chunk = slice.read_chunk()?;
            Ok::<_, std::io::Error>((slice, chunk))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match read {
            Ok((_, chunk)) if chunk.is_empty() => None,
            Ok((slice, chunk)) => {
                self.slice = Some(slice);
                Some(Ok(chunk))
            }
            Err(source) => Some(Err(LayoutError::Io {
                path: self.path.clone(),
                op: "reading",
                source,
            }
            .into())),
        }
    }
}

#[cfg(test)]
mod tests;

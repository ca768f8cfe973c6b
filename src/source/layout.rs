//! An OCI image layout directory (`oci:DIR[:REF]`) as an image source.
//!
//! The layout is untrusted input: every file is opened beneath the layout directory with no
//! symlink followed (`openat2`), must be a regular file with one link, and JSON is read up to
//! [`MAX_MANIFEST_SIZE`]. Blob paths come from parsed digests (`blobs/sha256/<64 hex>`), so
//! no `../` can reach them. Manifests and the config are verified here; layer blobs by the
//! pipeline as they stream.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rustix::fs::{FileType, OFlags, ResolveFlags};

use super::{BlobChunks, ImageSource, LayoutError, SourceError};
use crate::digest::{Digest, DigestError};
use crate::image::{Descriptor, ImageIndex, MAX_MANIFEST_SIZE};
use crate::registry::FetchedManifest;

/// The annotation that names an image in a layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Bytes read from a layer blob file at once.
const CHUNK: usize = 256 * 1024;

/// An image in an OCI image layout, chosen by its `org.opencontainers.image.ref.name`.
#[derive(Debug, Clone)]
pub struct OciLayoutSource {
    dir: Arc<Layout>,
    chosen: Descriptor,
}

/// The opened layout directory.
#[derive(Debug)]
struct Layout {
    path: PathBuf,
    fd: OwnedFd,
}

impl OciLayoutSource {
    /// Opens the layout at `dir` and picks the image named `ref_name` in its `index.json` (or
    /// its only image when `None`). Blocking (reads `oci-layout` and `index.json`).
    pub fn open(dir: &Path, ref_name: Option<&str>) -> Result<Self, LayoutError> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| LayoutError::Io {
            path: dir.to_path_buf(),
            op: "opening the layout",
            source: e.into(),
        })?;
        let layout = Layout {
            path: dir.to_path_buf(),
            fd,
        };
        layout.check_marker()?;
        let index_bytes = layout.read("index.json", MAX_MANIFEST_SIZE)?;
        let index: ImageIndex =
            serde_json::from_slice(&index_bytes).map_err(|source| LayoutError::Json {
                path: layout.path.join("index.json"),
                source,
            })?;
        let chosen = choose(&index.manifests, ref_name, &layout.path)?;
        Ok(Self {
            dir: Arc::new(layout),
            chosen,
        })
    }

    /// The descriptor of the image (or index) chosen in `index.json`.
    pub fn descriptor(&self) -> &Descriptor {
        &self.chosen
    }

    /// Reads the blob `digest`, at most `max` bytes, verified against `digest` (and `size`
    /// when known), off the async workers.
    async fn verified_blob(
        &self,
        digest: &Digest,
        size: Option<u64>,
        max: u64,
    ) -> Result<Vec<u8>, LayoutError> {
        let (dir, digest) = (self.dir.clone(), digest.clone());
        tokio::task::spawn_blocking(move || {
            let rel = blob_path(&digest);
            let bytes = dir.read(&rel, max)?;
            let mismatch = |source| LayoutError::Blob {
                path: dir.path.join(&rel),
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
            path: self.dir.path.clone(),
            op: "reading a blob",
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

/// The descriptor in `manifests` named `ref_name`, or the only one.
fn choose(
    manifests: &[Descriptor],
    ref_name: Option<&str>,
    dir: &Path,
) -> Result<Descriptor, LayoutError> {
    let name_of = |d: &Descriptor| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get(REF_NAME_ANNOTATION))
            .cloned()
    };
    let available = || {
        let names: Vec<String> = manifests.iter().filter_map(name_of).collect();
        if names.is_empty() {
            "no named images".to_string()
        } else {
            names.join(", ")
        }
    };
    let found: Vec<&Descriptor> = match ref_name {
        Some(wanted) => manifests
            .iter()
            .filter(|d| name_of(d).as_deref() == Some(wanted))
            .collect(),
        None => manifests.iter().collect(),
    };
    match (found.as_slice(), ref_name) {
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
fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

impl Layout {
    /// The `oci-layout` marker file must be there.
    fn check_marker(&self) -> Result<(), LayoutError> {
        self.read("oci-layout", 4096)
            .map(drop)
            .map_err(|e| match e {
                LayoutError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    LayoutError::NotLayout {
                        dir: self.path.clone(),
                    }
                }
                e => e,
            })
    }

    /// Opens `rel` beneath the layout: no symlink anywhere on the way, a regular file with one
    /// link (a hard link may be a file outside the layout).
    fn open(&self, rel: &str) -> Result<(File, u64), LayoutError> {
        let path = self.path.join(rel);
        let io_err = |op, source: std::io::Error| LayoutError::Io {
            path: path.clone(),
            op,
            source,
        };
        let fd = crate::sys::openat2::openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => LayoutError::Symlink { path: path.clone() },
            e => io_err("opening", e.into()),
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| io_err("stat", e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(LayoutError::NotRegular { path });
        }
        if stat.st_nlink != 1 {
            return Err(LayoutError::HardLinked {
                path,
                links: stat.st_nlink as u64,
            });
        }
        Ok((File::from(fd), stat.st_size as u64))
    }

    /// Reads `rel` whole, refusing more than `max` bytes.
    fn read(&self, rel: &str, max: u64) -> Result<Vec<u8>, LayoutError> {
        let (file, size) = self.open(rel)?;
        let path = self.path.join(rel);
        if size > max {
            return Err(LayoutError::TooLarge { path, limit: max });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| LayoutError::Io {
                path: path.clone(),
                op: "reading",
                source,
            })?;
        if bytes.len() as u64 > max {
            return Err(LayoutError::TooLarge { path, limit: max });
        }
        Ok(bytes)
    }
}

impl ImageSource for OciLayoutSource {
    type Blob = LayoutBlob;

    async fn manifest(&self) -> Result<FetchedManifest, SourceError> {
        let d = &self.chosen;
        let bytes = self
            .verified_blob(&d.digest, Some(d.size), MAX_MANIFEST_SIZE)
            .await?;
        Ok(FetchedManifest {
            bytes,
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
        })
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
        let (dir, rel) = (self.dir.clone(), blob_path(&blob.digest));
        let path = self.dir.path.join(&rel);
        let opened = tokio::task::spawn_blocking(move || dir.open(&rel))
            .await
            .map_err(|e| LayoutError::Io {
                path: path.clone(),
                op: "opening",
                source: std::io::Error::other(e.to_string()),
            })??;
        Ok(LayoutBlob {
            file: Some(opened.0),
            path,
        })
    }
}

/// A layer blob file of a layout, read in chunks off the async workers.
#[derive(Debug)]
pub struct LayoutBlob {
    /// `None` once the end was reached or a read failed.
    file: Option<File>,
    path: PathBuf,
}

impl BlobChunks for LayoutBlob {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, SourceError>> {
        let mut file = self.file.take()?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = BytesMut::zeroed(CHUNK);
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((file, buf.freeze()))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match read {
            Ok((_, chunk)) if chunk.is_empty() => None,
            Ok((file, chunk)) => {
                self.file = Some(file);
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

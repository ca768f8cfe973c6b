//! The files of a layout, in a directory or in a tar read in place, and slices of them read
//! at their offsets (several at once, from one shared file).

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rustix::fs::{FileType, OFlags, ResolveFlags};

use super::LayoutError;
use super::shown_name;
use super::tar_index::TarIndex;

/// Bytes read from a blob at once.
const CHUNK: u64 = 256 * 1024;

/// Where a layout's files are.
#[derive(Debug)]
pub(crate) enum Files {
    /// A directory, opened once; files are opened beneath it.
    Dir {
        /// The directory as given.
        path: PathBuf,
        /// It, opened `O_PATH`.
        fd: OwnedFd,
    },
    /// A tar file, indexed once.
    Tar {
        /// The archive.
        file: Arc<File>,
        /// Its members.
        index: TarIndex,
    },
}

/// A byte range of a file.
#[derive(Debug)]
pub(crate) struct Slice {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl Files {
    /// Opens the directory `dir`.
    pub(crate) fn dir(dir: &Path) -> Result<Self, LayoutError> {
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
        Ok(Files::Dir {
            path: dir.to_path_buf(),
            fd,
        })
    }

    /// Opens and indexes the tar file `path` (named in errors as [`shown_name`] says: a
    /// spooled copy by the archive's own name).
    pub(crate) fn tar(path: &Path) -> Result<Self, LayoutError> {
        let shown = shown_name(path);
        let file = File::open(path).map_err(|source| LayoutError::Io {
            path: shown.clone(),
            op: "opening the archive",
            source,
        })?;
        let index = TarIndex::build(&file, &shown)?;
        Ok(Files::Tar {
            file: Arc::new(file),
            index,
        })
    }

    /// The directory or archive.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Files::Dir { path, .. } => path,
            Files::Tar { index, .. } => &index.path,
        }
    }

    /// Whether `rel` is there (for a directory: whether it can be opened as a file).
    pub(crate) fn has(&self, rel: &str) -> bool {
        match self {
            Files::Dir { .. } => self.slice(rel).is_ok(),
            Files::Tar { index, .. } => index.files.contains_key(rel),
        }
    }

    /// The bytes of `rel`. In a directory it is opened beneath it with no symlink followed
    /// and must be a regular file with one link (a hard link may be a file outside).
    pub(crate) fn slice(&self, rel: &str) -> Result<Slice, LayoutError> {
        match self {
            Files::Tar { file, index } => {
                let span = index.files.get(rel).ok_or_else(|| LayoutError::Missing {
                    path: index.path.clone(),
                    name: rel.to_string(),
                })?;
                Ok(Slice {
                    file: file.clone(),
                    offset: span.offset,
                    len: span.size,
                })
            }
            Files::Dir { path, fd } => {
                let path = path.join(rel);
                let io_err = |op, source: io::Error| LayoutError::Io {
                    path: path.clone(),
                    op,
                    source,
                };
                let fd = crate::sys::openat2::openat2(
                    fd,
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
                Ok(Slice {
                    file: Arc::new(File::from(fd)),
                    offset: 0,
                    len: stat.st_size as u64,
                })
            }
        }
    }

    /// The size of `rel`.
    pub(crate) fn size(&self, rel: &str) -> Result<u64, LayoutError> {
        Ok(self.slice(rel)?.len)
    }

    /// Reads `rel` whole, refusing more than `max` bytes.
    pub(crate) fn read(&self, rel: &str, max: u64) -> Result<Vec<u8>, LayoutError> {
        let slice = self.slice(rel)?;
        let path = self.path().join(rel);
        if slice.len > max {
            return Err(LayoutError::TooLarge { path, limit: max });
        }
        let mut bytes = vec![0u8; slice.len as usize];
        slice
            .file
            .read_exact_at(&mut bytes, slice.offset)
            .map_err(|source| LayoutError::Io {
                path,
                op: "reading",
                source,
            })?;
        Ok(bytes)
    }
}

impl Slice {
    /// The next chunk (empty at the end). Blocking.
    pub(crate) fn read_chunk(&mut self) -> io::Result<Bytes> {
        let want = self.len.min(CHUNK) as usize;
        let mut buf = BytesMut::zeroed(want);
        let n = self.file.read_at(&mut buf, self.offset)?;
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends before the blob does",
            ));
        }
        buf.truncate(n);
        self.offset += n as u64;
        self.len -= n as u64;
        Ok(buf.freeze())
    }
}

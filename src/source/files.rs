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
use super::direct::{self, Direct};
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
        /// It again, for reading cold blobs with `O_DIRECT` (`None`: not supported there).
        direct: Option<Arc<Direct>>,
        /// Its members.
        index: TarIndex,
    },
}

/// A byte range of a file.
#[derive(Debug)]
pub(crate) struct Slice {
    file: Arc<File>,
    /// Set when the slice is read with `O_DIRECT`.
    direct: Option<Arc<Direct>>,
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
        let direct = Direct::open(path, &file).map(Arc::new);
        Ok(Files::Tar {
            file: Arc::new(file),
            direct,
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
            Files::Tar {
                file,
                direct,
                index,
            } => {
                let span = index.files.get(rel).ok_or_else(|| LayoutError::Missing {
                    path: index.path.clone(),
                    name: rel.to_string(),
                })?;
                let cold = || Direct::worth_it(file.as_ref(), span.offset, span.size);
                Ok(Slice {
                    file: file.clone(),
                    direct: direct.clone().filter(|_| cold()),
                    offset: span.offset,
                    len: span.size,
                })
            }
            Files::Dir { path, fd: dir } => {
                let path = path.join(rel);
                let io_err = |op, source: io::Error| LayoutError::Io {
                    path: path.clone(),
                    op,
                    source,
                };
                let fd = crate::sys::openat2::openat2(
                    dir,
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
                let file = File::from(fd);
                let len = stat.st_size as u64;
                let direct = Direct::worth_it(&file, 0, len)
                    .then(|| Direct::open_beneath(dir, rel, &file))
                    .flatten()
                    .map(Arc::new);
                Ok(Slice {
                    file: Arc::new(file),
                    direct,
                    offset: 0,
                    len,
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
        if let Some(d) = &self.direct {
            let want = self.len.min(direct::CHUNK) as usize;
            match d.read(self.offset, want) {
                Ok(chunk) => return self.advance(chunk, want),
                // The filesystem refused the alignment after all: through the cache.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        let want = self.len.min(CHUNK) as usize;
        let mut buf = BytesMut::zeroed(want);
        let n = self.file.read_at(&mut buf, self.offset)?;
        buf.truncate(n);
        self.advance(buf.freeze(), want)
    }

    /// Moves past `chunk`, read where `want` bytes were asked for.
    fn advance(&mut self, chunk: Bytes, want: usize) -> io::Result<Bytes> {
        if chunk.is_empty() && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends before the blob does",
            ));
        }
        self.offset += chunk.len() as u64;
        self.len -= chunk.len() as u64;
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Every chunk of `slice`, joined.
    fn read_all(mut slice: Slice) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let chunk = slice.read_chunk().unwrap();
            if chunk.is_empty() {
                return all;
            }
            all.extend_from_slice(&chunk);
        }
    }

    #[test]
    fn a_cold_blob_is_read_with_o_direct_and_a_cached_one_through_the_cache() {
        // A small member first, so the blob's data starts at no multiple of 4096.
        let blob: Vec<u8> = (0..6 * 1024 * 1024 + 777)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("small", &b"x"[..]), ("blob", &blob[..])] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, name, data).unwrap();
        }
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&builder.into_inner().unwrap()).unwrap();
        f.as_file().sync_all().unwrap();

        let files = Files::tar(f.path()).unwrap();
        let cached = files.slice("blob").unwrap();
        assert!(cached.direct.is_none(), "just written: cached");
        assert_eq!(read_all(cached), blob);

        rustix::fs::fadvise(f.as_file(), 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let files = Files::tar(f.path()).unwrap();
        let cold = files.slice("blob").unwrap();
        let supported = crate::sys::cachestat::cached(f.as_file(), 0, 0).is_ok()
            && matches!(
                &files,
                Files::Tar {
                    direct: Some(_),
                    ..
                }
            );
        assert_eq!(cold.direct.is_some(), supported);
        assert_eq!(read_all(cold), blob);
        assert_eq!(files.read("small", 10).unwrap(), b"x");
    }

    #[test]
    fn a_cold_file_of_a_directory_is_read_with_o_direct() {
        let blob: Vec<u8> = (0..5 * 1024 * 1024 + 3).map(|i| (i % 241) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut f = File::create(&path).unwrap();
        f.write_all(&blob).unwrap();
        f.sync_all().unwrap();
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();

        let files = Files::dir(dir.path()).unwrap();
        let cold = files.slice("blob").unwrap();
        let supported =
            crate::sys::cachestat::cached(&f, 0, 0).is_ok() && Direct::open(&path, &f).is_some();
        assert_eq!(cold.direct.is_some(), supported);
        assert_eq!(read_all(cold), blob);
    }
}

//! Reading the cold part of an archive, or a layout's cold blob files, with `O_DIRECT`: the
//! disk then writes a layer's bytes straight into the buffer that is hashed and unpacked,
//! instead of into the page cache and from there, by a copy, into that buffer (in a cold `load`
//! of 800 MB that copy took 2-13% of the CPU samples, and made the system time vary with the
//! machine's memory traffic). A blob that is (mostly) cached already, such as one just written
//! by `docker save`, is read through the cache as before: reading it from disk would be
//! slower, and its unwritten pages would first have to be written.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use bytes::Bytes;
use rustix::fs::{AtFlags, OFlags, ResolveFlags, StatxFlags};

use crate::sys::cachestat;

/// Bytes read at once with `O_DIRECT` (the pipeline holds up to 16 chunks per layer).
pub(crate) const CHUNK: u64 = 512 * 1024;
/// Smaller blobs are read through the cache: too few reads to matter.
const MIN_BLOB: u64 = 4 * 1024 * 1024;

/// A second descriptor of an archive, opened `O_DIRECT`, with the alignment its filesystem
/// asks for.
#[derive(Debug)]
pub(crate) struct Direct {
    file: File,
    /// Buffers start at a multiple of this.
    mem_align: usize,
    /// Reads start and end at multiples of this.
    offset_align: u64,
}

impl Direct {
    /// Opens `path` again with `O_DIRECT`, if its filesystem supports it and it is still the
    /// file `opened` (not replaced since).
    pub(crate) fn open(path: &Path, opened: &File) -> Option<Direct> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()?;
        Self::same(file, opened)
    }

    /// Opens `rel` beneath the directory `dir` again with `O_DIRECT`, confined as the layout's
    /// files are (no symlink followed), if it is still the file `opened`.
    pub(crate) fn open_beneath(dir: impl AsFd, rel: &str, opened: &File) -> Option<Direct> {
        let fd = crate::sys::openat2::openat2(
            dir,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::DIRECT,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .ok()?;
        Self::same(File::from(fd), opened)
    }

    /// `file` as a [`Direct`], if it is the file `opened` and its filesystem does direct I/O.
    fn same(file: File, opened: &File) -> Option<Direct> {
        let (a, b) = (file.metadata().ok()?, opened.metadata().ok()?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return None;
        }
        let stx = rustix::fs::statx(&file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
        // A filesystem without direct I/O says 0.
        if !StatxFlags::from_bits_retain(stx.stx_mask).contains(StatxFlags::DIOALIGN)
            || stx.stx_dio_mem_align == 0
            || stx.stx_dio_offset_align == 0
        {
            return None;
        }
        Some(Direct {
            file,
            mem_align: stx.stx_dio_mem_align as usize,
            offset_align: u64::from(stx.stx_dio_offset_align),
        })
    }

    /// Whether the `len` bytes at `offset` of `file` are worth reading with `O_DIRECT`: a
    /// large blob with less than half of its pages cached and none unwritten. Unknown (before
    /// Linux 6.5): no.
    pub(crate) fn worth_it(file: impl AsFd, offset: u64, len: u64) -> bool {
        if len < MIN_BLOB {
            return false;
        }
        let page = crate::sys::page::page_size().unwrap_or(4096) as u64;
        match cachestat::cached(file, offset, len) {
            Ok(c) => c.unwritten == 0 && c.pages * 2 < len.div_ceil(page),
            Err(_) => false,
        }
    }

    /// The `want` bytes at `offset`; fewer only at the end of the file. Fails with `EINVAL`
    /// where the filesystem refuses the alignment after all.
    pub(crate) fn read(&self, offset: u64, want: usize) -> io::Result<Bytes> {
        let start = offset - offset % self.offset_align;
        let end = (offset + want as u64).div_ceil(self.offset_align) * self.offset_align;
        let head = (offset - start) as usize;
        let span = (end - start) as usize;
        let mut buf = vec![0u8; span + self.mem_align];
        let misaligned = buf.as_ptr() as usize % self.mem_align;
        let at = if misaligned == 0 {
            0
        } else {
            self.mem_align - misaligned
        };
        let mut got = 0;
        while got < head + want {
            match self
                .file
                .read_at(&mut buf[at + got..at + span], start + got as u64)
            {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    // Only the end of the file cuts a read short of the alignment.
                    if !(n as u64).is_multiple_of(self.offset_align) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let have = got.saturating_sub(head).min(want);
        Ok(Bytes::from(buf).slice(at + head..at + head + have))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A file of `len` bytes, each its offset mod 251, written to disk.
    fn sample(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        f.as_file().sync_all().unwrap();
        (f, bytes)
    }

    #[test]
    fn reads_unaligned_ranges_and_stops_at_the_end() {
        let (f, bytes) = sample(3 * 1024 * 1024 + 123);
        let Some(direct) = Direct::open(f.path(), f.as_file()) else {
            eprintln!("no direct I/O here");
            return;
        };
        for (offset, want) in [(0, 4096), (512, 1000), (7, 700_001), (1 << 20, 1 << 20)] {
            let got = direct.read(offset as u64, want).unwrap();
            assert_eq!(
                &got[..],
                &bytes[offset..offset + want],
                "at {offset}+{want}"
            );
        }
        let tail = bytes.len() - 100;
        let got = direct.read(tail as u64, 4096).unwrap();
        assert_eq!(&got[..], &bytes[tail..], "short at the end");
        assert!(direct.read(bytes.len() as u64, 10).unwrap().is_empty());
    }

    #[test]
    fn a_replaced_file_is_refused() {
        let (a, _) = sample(4096);
        let (b, _) = sample(4096);
        assert!(Direct::open(a.path(), b.as_file()).is_none());
        let dir = a.path().parent().unwrap();
        let dir = File::open(dir).unwrap();
        let name = a.path().file_name().unwrap().to_str().unwrap();
        assert!(Direct::open_beneath(&dir, name, b.as_file()).is_none());
        // The same file beneath the directory is taken, where direct I/O is supported.
        let here = Direct::open(a.path(), a.as_file()).is_some();
        assert_eq!(
            Direct::open_beneath(&dir, name, a.as_file()).is_some(),
            here
        );
    }

    #[test]
    fn small_or_cached_blobs_are_read_through_the_cache() {
        let (f, bytes) = sample(8 * 1024 * 1024);
        assert!(!Direct::worth_it(f.as_file(), 0, 1024 * 1024), "small");
        let len = bytes.len() as u64;
        assert!(!Direct::worth_it(f.as_file(), 0, len), "cached");
        if cachestat::cached(f.as_file(), 0, 0).is_err() {
            return; // before Linux 6.5: never worth it, as asserted
        }
        // Written, then dropped from the cache: cold.
        rustix::fs::fadvise(f.as_file(), 0, None, rustix::fs::Advice::DontNeed).unwrap();
        assert!(Direct::worth_it(f.as_file(), 0, len), "cold");
    }
}

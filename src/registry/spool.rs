//! An unnamed temporary file holding the bytes of a blob's later segments until the reader
//! gets to them: page cache, not the process's memory, and gone with its last descriptor
//! (`O_TMPFILE`; where the filesystem lacks it, a file unlinked at once).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A blob-sized scratch file written and read at offsets.
#[derive(Debug)]
pub(super) struct Spool {
    file: File,
}

impl Spool {
    /// An unnamed file private to this process, in `$TMPDIR` (else `/tmp`): off the store's
    /// filesystem, whose per-layer `syncfs` would write spooled bytes to disk that are read back
    /// and freed moments later. When `$TMPDIR` is a tmpfs (memory), in `store_dir` instead, if
    /// given and there.
    pub(super) fn create(store_dir: Option<&Path>) -> io::Result<Spool> {
        let tmp = std::env::temp_dir();
        if is_tmpfs(&tmp)
            && let Some(dir) = store_dir
            && dir.is_dir()
        {
            match Self::create_in(dir) {
                Ok(spool) => return Ok(spool),
                Err(e) => tracing::debug!("no spool file in {}: {e}", dir.display()),
            }
        }
        Self::create_in(&tmp)
    }

    fn create_in(dir: &Path) -> io::Result<Spool> {
        let unnamed = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir);
        match unnamed {
            Ok(file) => Ok(Spool { file }),
            // No O_TMPFILE on this filesystem (or kernel): a named file, unlinked at once.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                let path = scratch_name(dir);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)?;
                std::fs::remove_file(&path)?;
                Ok(Spool { file })
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `bytes` at `offset`.
    pub(super) fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }

    /// Reads `len` bytes from `offset`, then frees them on disk and in the page cache (they
    /// are read once).
    pub(super) fn take(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, offset)?;
        // Only an optimisation: filesystems without hole punching keep the bytes until the
        // file is closed.
        let _ = rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
            offset,
            len as u64,
        );
        Ok(bytes)
    }
}

/// Whether `dir` is on a tmpfs (its pages are memory, swap at best).
// `f_type`'s integer type differs between architectures.
#[allow(clippy::useless_conversion)]
fn is_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    rustix::fs::statfs(dir).is_ok_and(|s| i64::from(s.f_type) == TMPFS_MAGIC)
}

/// A name for the fallback file that no other process picks.
fn scratch_name(dir: &Path) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(".strata-spool-{}-{nanos}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_is_told_apart() {
        assert!(is_tmpfs(Path::new("/dev/shm")), "/dev/shm is a tmpfs");
        assert!(!is_tmpfs(Path::new("/proc")));
    }

    #[test]
    fn bytes_come_back_from_their_offsets_and_leave_no_name() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::create_in(dir.path()).unwrap();
        spool.write_at(5000, b"later").unwrap();
        spool.write_at(0, b"first").unwrap();
        assert_eq!(spool.take(0, 5).unwrap(), b"first");
        assert_eq!(spool.take(5000, 5).unwrap(), b"later");
        assert!(spool.take(5003, 10).is_err(), "past the end");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

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
    /// An unnamed file in `dir` when given and there, else in `$TMPDIR` (else `/tmp`),
    /// private to this process.
    pub(super) fn create(dir: Option<&Path>) -> io::Result<Spool> {
        if let Some(dir) = dir
            && dir.is_dir()
        {
            match Self::create_in(dir) {
                Ok(spool) => return Ok(spool),
                Err(e) => tracing::debug!("no spool file in {}: {e}", dir.display()),
            }
        }
        Self::create_in(&std::env::temp_dir())
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
    fn the_given_directory_is_used_when_it_is_there() {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
        // A directory on another filesystem than $TMPDIR (tmpfs here), to tell them apart.
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        assert_ne!(
            dev(dir.path()),
            dev(&std::env::temp_dir()),
            "same filesystem"
        );
        let spool = Spool::create(Some(dir.path())).unwrap();
        spool.write_at(0, b"x").unwrap();
        assert_eq!(spool.file.metadata().unwrap().dev(), dev(dir.path()));
        // Not there (a store without staging/ yet): $TMPDIR.
        let fallback = Spool::create(Some(&dir.path().join("missing"))).unwrap();
        assert_eq!(
            fallback.file.metadata().unwrap().dev(),
            dev(&std::env::temp_dir())
        );
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

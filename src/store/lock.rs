//! Advisory file locks (flock) that serialise strata processes sharing one root.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::{StoreError, io_err};

/// Holds a lock (exclusive, or shared with [`LockGuard::acquire_shared`]) until dropped.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl LockGuard {
    /// Blocks until the lock file at `path` is exclusively locked.
    pub fn acquire(path: &Path) -> Result<Self, StoreError> {
        let file = open(path)?;
        file.lock().map_err(io_err("locking", path))?;
        Ok(LockGuard { file })
    }

    /// Blocks until the lock file at `path` is locked shared (other sharers may hold it too).
    pub fn acquire_shared(path: &Path) -> Result<Self, StoreError> {
        let file = open(path)?;
        file.lock_shared().map_err(io_err("locking", path))?;
        Ok(LockGuard { file })
    }

    /// Locks `path` shared if no exclusive holder has it; `Ok(None)` when it is busy.
    pub fn try_acquire_shared(path: &Path) -> Result<Option<Self>, StoreError> {
        let file = open(path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(LockGuard { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err("locking", path)(e)),
        }
    }

    /// Locks `path` if nobody holds it; `Ok(None)` when it is busy.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, StoreError> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err("locking", path)(e)),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

fn open(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("opening lock", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_busy_until_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = LockGuard::acquire(&path).unwrap();
        assert!(LockGuard::try_acquire(&path).unwrap().is_none());
        drop(first);
        assert!(LockGuard::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let a = LockGuard::acquire_shared(&path).unwrap();
        let b = LockGuard::try_acquire_shared(&path).unwrap();
        assert!(b.is_some());
        assert!(LockGuard::try_acquire(&path).unwrap().is_none());
        drop((a, b));
        let held = LockGuard::acquire(&path).unwrap();
        assert!(LockGuard::try_acquire_shared(&path).unwrap().is_none());
        drop(held);
    }
}

//! The trash, `<root>/trash/`: what a delete takes out of the visible store is renamed here
//! first (one atomic step on the same filesystem), and its files are removed later, outside the
//! store lock. A kill at any point leaves a trash entry, never a half-removed layer in place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{LockGuard, Store, StoreError, fsutil, io_err};

impl Store {
    /// `<root>/trash`.
    pub(super) fn trash_dir(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// Renames `path` to `trash/<name>-<random>`; `Ok(false)` when `path` does not exist.
    pub(super) fn move_to_trash(&self, path: &Path, name: &str) -> Result<bool, StoreError> {
        let dest = self
            .trash_dir()
            .join(format!("{name}-{:016x}", fastrand::u64(..)));
        match fs::rename(path, &dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("moving into the trash", path)(e)),
        }
    }

    /// Removes everything in the trash; returns how many entries. Another process emptying it
    /// already is left to it (`Ok(0)`).
    pub fn empty_trash(&self) -> Result<usize, StoreError> {
        let Some(_emptying) = LockGuard::try_acquire(&self.locks_dir().join("trash.lock"))? else {
            return Ok(0);
        };
        let dir = self.trash_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fsutil::remove_tree(&path)?;
            } else {
                fsutil::remove_file(&path)?;
            }
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trashed_trees_leave_at_once_and_go_when_emptied() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let dir = root.path().join("overlay2/x");
        fs::create_dir_all(dir.join("diff/a/b")).unwrap();
        fs::write(dir.join("diff/a/b/f"), b"x").unwrap();
        assert!(store.move_to_trash(&dir, "x").unwrap());
        assert!(!dir.exists());
        assert!(!store.move_to_trash(&dir, "x").unwrap());
        assert_eq!(fs::read_dir(store.trash_dir()).unwrap().count(), 1);
        assert_eq!(store.empty_trash().unwrap(), 1);
        assert_eq!(fs::read_dir(store.trash_dir()).unwrap().count(), 0);
    }
}

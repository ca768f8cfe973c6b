//! Intent markers, `<root>/intents/`: which commands may have left orphans.
//!
//! A command that changes the store holds a marker, `intents/<pid>-<random>`, flock'd for as
//! long as it runs, and removes it when it ends. A marker whose lock is free belongs to a
//! command that was killed (or failed half-way and kept it on purpose, [`Store::mark_dirty`]):
//! only then does recovery scan the whole store for orphans, and it removes the markers it saw
//! once the scan is done. A scan that cannot run (the store is busy) leaves them for the next
//! command. `intents/dirty` is such a marker owned by nobody: a store made before markers
//! existed gets one with the directory, so that its first recovery scans it once.
//!
//! Markers are created and inspected under `locks/intents.lock`, so no one sees a new marker
//! before its lock is taken; a marker is removed while still locked. A marker is created before
//! its command's first change, and metadata changes of one filesystem reach the disk in order
//! (a journal), so what a crash keeps of a command's work comes with its marker.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::sync::PoisonError;

use super::{LockGuard, Store, StoreError, fsutil, io_err};

/// The marker nobody holds: the store must be scanned.
const DIRTY: &str = "dirty";

/// This process's marker, removed on drop (unless kept).
#[derive(Debug)]
pub(crate) struct Intent {
    path: PathBuf,
    /// Holds the lock; closed after the file is removed.
    _file: File,
    keep: bool,
}

impl Drop for Intent {
    fn drop(&mut self) {
        // A panic may have stopped a change half-way: left, the marker gets the store scanned.
        if !self.keep && !std::thread::panicking() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Store {
    fn intents_dir(&self) -> PathBuf {
        self.root.join("intents")
    }

    fn intents_lock(&self) -> Result<LockGuard, StoreError> {
        LockGuard::acquire(&self.locks_dir().join("intents.lock"))
    }

    /// Marks this process as one that changes the store, until the last clone of this
    /// [`Store`] value is dropped. Called before a command's first change (by recovery and by
    /// taking the store lease or the metadata lock); once per value.
    pub(super) fn intend(&self) -> Result<(), StoreError> {
        let mut held = self.intent.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_some() {
            return Ok(());
        }
        let _lock = self.intents_lock()?;
        let dir = self.intents_dir();
        if !dir.is_dir() {
            self.make_intents_dir()?;
        }
        let path = dir.join(format!("{}-{:016x}", std::process::id(), fastrand::u64(..)));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("creating", &path))?;
        file.lock().map_err(io_err("locking", &path))?;
        *held = Some(Intent {
            path,
            _file: file,
            keep: false,
        });
        Ok(())
    }

    /// Creates `intents/` holding the dirty marker, in one rename (a kill leaves the
    /// temporary directory, which the next try replaces). Under `intents.lock`.
    fn make_intents_dir(&self) -> Result<(), StoreError> {
        let tmp = self.root.join("intents.tmp");
        fsutil::remove_tree(&tmp)?;
        fsutil::mkdir_mode(&tmp, 0o700)?;
        let dirty = tmp.join(DIRTY);
        File::create(&dirty).map_err(io_err("creating", &dirty))?;
        let dir = self.intents_dir();
        fs::rename(&tmp, &dir).map_err(io_err("creating", &dir))
    }

    /// Leaves this process's marker in place when it ends, so that the next command scans the
    /// store: for a failure that may have left orphans which it could not remove.
    pub(super) fn mark_dirty(&self) {
        let mut held = self.intent.lock().unwrap_or_else(PoisonError::into_inner);
        match held.as_mut() {
            Some(intent) => intent.keep = true,
            None => {
                let path = self.intents_dir().join(DIRTY);
                if let Err(e) = File::create(&path) {
                    tracing::warn!("cannot mark {} for a scan: {e}", self.root.display());
                }
            }
        }
    }

    /// The markers no running command holds: left by killed commands (empty when every
    /// command ended cleanly, then no scan is needed).
    pub(super) fn stale_intents(&self) -> Result<Vec<PathBuf>, StoreError> {
        let own = self
            .intent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|i| i.path.clone());
        let _lock = self.intents_lock()?;
        let dir = self.intents_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let mut stale = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err("listing", &dir))?.path();
            if own.as_ref() == Some(&path) {
                continue;
            }
            let file = match OpenOptions::new().write(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("opening", &path)(e)),
            };
            match file.try_lock() {
                Ok(()) => stale.push(path),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => return Err(io_err("locking", &path)(e)),
            }
        }
        stale.sort();
        Ok(stale)
    }

    /// Removes markers found stale before a scan that has now finished (their commands are
    /// gone, so nobody takes them again).
    pub(super) fn clear_intents(&self, stale: &[PathBuf]) -> Result<(), StoreError> {
        let _lock = self.intents_lock()?;
        stale.iter().try_for_each(|p| fsutil::remove_file(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(store.intents_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_new_store_is_dirty_once_and_a_clean_end_leaves_no_marker() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        store.intend().unwrap();
        store.intend().unwrap();
        assert_eq!(names(&store).len(), 2, "dirty + this one");
        let stale = store.stale_intents().unwrap();
        assert_eq!(stale, vec![store.intents_dir().join(DIRTY)]);
        store.clear_intents(&stale).unwrap();
        assert!(store.stale_intents().unwrap().is_empty());
        // Another process (another value here) sees this one's marker held.
        let other = Store::open(root.path()).unwrap();
        other.intend().unwrap();
        assert!(other.stale_intents().unwrap().is_empty());
        drop(store);
        drop(other);
        assert!(names(&Store::open(root.path()).unwrap()).is_empty());
    }

    #[test]
    fn a_killed_or_failed_command_leaves_a_marker_that_is_stale() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        store.intend().unwrap();
        let dirty = store.stale_intents().unwrap();
        store.clear_intents(&dirty).unwrap();
        // A killed command: its file is there, nobody holds its lock.
        let killed = store.intents_dir().join("999999999-00000000deadbeef");
        File::create(&killed).unwrap();
        // A command that failed half-way keeps its own.
        let failed = Store::open(root.path()).unwrap();
        failed.intend().unwrap();
        failed.mark_dirty();
        drop(failed);
        let stale = store.stale_intents().unwrap();
        assert_eq!(stale.len(), 2, "{stale:?}");
        assert!(stale.contains(&killed));
        store.clear_intents(&stale).unwrap();
        assert_eq!(names(&store).len(), 1, "this one's only");
    }
}

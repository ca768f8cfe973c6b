//! The trash, `<root>/trash/`: what a delete takes out of the visible store is renamed here
//! first (one atomic step on the same filesystem), and its files are removed later, outside the
//! store lock. A kill at any point leaves a trash entry, never a half-removed layer in place.
//!
//! Several processes may empty the trash at once. Each claims an entry by renaming it to
//! `.emptying-<pid>-<entry>` before removing its files: a rename that finds nothing means
//! another one took it (done, not an error), and a claimed entry is only removed by its
//! claimer, so no two processes remove one tree. A claim whose process is gone (killed while
//! removing) is claimed again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{Store, StoreError, fsutil, io_err};

/// The prefix of a trash entry being removed.
const CLAIMED: &str = ".emptying-";

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

    /// Removes everything in the trash but what another live process is removing; returns how
    /// many entries this call removed. Safe to run in several processes at once.
    pub fn empty_trash(&self) -> Result<usize, StoreError> {
        let dir = self.trash_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if claimed_by_live_process(&name) {
                continue;
            }
            let original = unclaimed(&name);
            let claim = dir.join(format!("{CLAIMED}{}-{original}", std::process::id()));
            match fs::rename(entry.path(), &claim) {
                Ok(()) => {}
                // Another emptier took it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("claiming", &entry.path())(e)),
            }
            remove_entry(&claim)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Removes one trash entry, a tree or a file; one already gone is done.
pub(crate) fn remove_entry(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fsutil::remove_tree(path),
        Ok(_) => fsutil::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspecting", path)(e)),
    }
}

/// Whether trash entry `name` is being removed by a process that is still running (this one
/// included): then it is that process's to finish.
pub(crate) fn claimed_by_live_process(name: &str) -> bool {
    claimer(name).is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// The pid in a claimed entry's name.
fn claimer(name: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix(CLAIMED)?.split_once('-')?;
    pid.parse().ok()
}

/// The entry's name before any claim.
fn unclaimed(name: &str) -> &str {
    match name
        .strip_prefix(CLAIMED)
        .and_then(|rest| rest.split_once('-'))
    {
        Some((pid, original)) if pid.parse::<u32>().is_ok() => original,
        _ => name,
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

    #[test]
    fn emptiers_running_at_once_remove_everything_without_failing() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        // Each thread trashes its own trees and empties the trash while the others do.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut removed = 0;
                    for i in 0..40 {
                        let name = format!("t{t}-{i}");
                        let dir = store.overlay_dir().join(&name);
                        for j in 0..5 {
                            fs::create_dir_all(dir.join(format!("diff/d{j}/e"))).unwrap();
                            fs::write(dir.join(format!("diff/d{j}/f")), b"x").unwrap();
                        }
                        assert!(store.move_to_trash(&dir, &name).unwrap());
                        removed += store.empty_trash().unwrap();
                    }
                    removed
                })
            })
            .collect();
        let removed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(removed, 160);
        assert_eq!(fs::read_dir(store.trash_dir()).unwrap().count(), 0);
    }

    #[test]
    fn an_entry_claimed_by_a_killed_emptier_is_claimed_again() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let dead = store.trash_dir().join(format!("{CLAIMED}999999999-x-00ff"));
        fs::create_dir_all(dead.join("diff/a")).unwrap();
        let live = store
            .trash_dir()
            .join(format!("{CLAIMED}{}-y-00ff", std::process::id()));
        fs::create_dir_all(&live).unwrap();
        assert_eq!(store.empty_trash().unwrap(), 1);
        assert!(!dead.exists());
        // A live claimer's entry is its own to remove.
        assert!(live.exists());
        assert_eq!(unclaimed(&format!("{CLAIMED}12-x-00ff")), "x-00ff");
        assert_eq!(unclaimed("x-00ff"), "x-00ff");
    }
}

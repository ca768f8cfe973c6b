//! Layers committed without a `syncfs` (`--no-sync`, for hosts whose store need not outlive a
//! crash, such as CI machines): a pull without syncs is as fast as containerd's and dockerd's,
//! which never sync, and is still never read torn after a crash.
//!
//! Such a layer gets an `unsynced/<chain hex>` marker holding the boot id, made *before* its
//! rename into place; journaling filesystems (ext4, xfs, btrfs) keep metadata operations in
//! order, so a layer whose rename survived a crash also has its marker.
//! [`Store::repair_unsynced`] runs before a pull or a container uses layers: a marker from an
//! earlier boot means the machine went down before anything synced the layer, so it may have
//! lost data and is removed (the next pull fetches it again); a marker from this boot only
//! needs a `syncfs` (its data is in the page cache), unless the command itself runs without
//! syncs.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use super::{Store, StoreError, fsutil, io_err};
use crate::id::ChainId;

/// Where the kernel publishes the id of the current boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The current boot id (empty when the kernel does not say: then every marker looks current,
/// which only costs a `syncfs`).
pub(super) fn boot_id() -> String {
    fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// What [`Store::repair_unsynced`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Layers of this boot made durable.
    pub synced: usize,
    /// Layers of an earlier boot removed.
    pub removed: Vec<ChainId>,
}

impl Store {
    pub(super) fn unsynced_dir(&self) -> PathBuf {
        self.root.join("unsynced")
    }

    pub(super) fn unsynced_marker(&self, chain: &ChainId) -> PathBuf {
        self.unsynced_dir().join(chain.hex())
    }

    /// Records that `chain` is about to become visible before its data is known to be on disk.
    pub(super) fn mark_unsynced(&self, chain: &ChainId) -> Result<(), StoreError> {
        fsutil::write_atomic(&self.unsynced_marker(chain), boot_id().as_bytes(), 0o600)
    }

    /// One `syncfs` for the store's filesystem.
    pub fn sync(&self) -> Result<(), StoreError> {
        let dir = fs::File::open(&self.root).map_err(io_err("opening", &self.root))?;
        rustix::fs::syncfs(dir.as_fd()).map_err(|e| io_err("syncing", &self.root)(e.into()))
    }

    /// Deals with the markers that pulls left (see the module docs): removes earlier boots'
    /// layers whose lock nobody holds, and (`sync`) syncs this boot's. Removing a layer needs
    /// the exclusive store lease: [`Store::recover`] takes it when there is such a layer.
    pub fn repair_unsynced(&self, sync: bool) -> Result<Repair, StoreError> {
        self.repair_unsynced_with(sync, true)
    }

    /// Whether a marker of an earlier boot is there (a layer [`Store::repair_unsynced`] would
    /// remove).
    pub(super) fn has_stale_unsynced(&self) -> Result<bool, StoreError> {
        let dir = self.unsynced_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let current = boot_id();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            if fs::read_to_string(entry.path()).is_ok_and(|boot| boot.trim() != current) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// [`Store::repair_unsynced`], leaving earlier boots' layers alone unless `remove_stale`.
    pub(super) fn repair_unsynced_with(
        &self,
        sync: bool,
        remove_stale: bool,
    ) -> Result<Repair, StoreError> {
        let dir = self.unsynced_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Repair::default()),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let current = boot_id();
        let mut repair = Repair::default();
        let mut this_boot = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let Some(chain) = entry.file_name().to_str().and_then(ChainId::from_hex) else {
                continue;
            };
            let marker = entry.path();
            let boot = match fs::read_to_string(&marker) {
                Ok(boot) => boot,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("reading", &marker)(e)),
            };
            if boot.trim() == current {
                this_boot.push(marker);
                continue;
            }
            if !remove_stale {
                continue;
            }
            // A pull of this layer in progress replaces it anyway.
            let Some(_guard) = self.try_lock_layer(&chain)? else {
                continue;
            };
            self.remove_layer(&chain)?;
            fsutil::remove_file(&marker)?;
            repair.removed.push(chain);
        }
        if sync && !this_boot.is_empty() {
            self.sync()?;
            for marker in &this_boot {
                fsutil::remove_file(marker)?;
            }
            repair.synced = this_boot.len();
        }
        Ok(repair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layer::tests::{chain_id, record};

    fn commit(store: &Store, name: &[u8]) -> ChainId {
        let chain = chain_id(name);
        let staging = store.begin_layer(&chain, &[]).unwrap();
        fs::write(staging.diff_dir().join("f"), name).unwrap();
        let record = record(&chain, staging.link());
        staging.commit_unsynced(&record).unwrap();
        chain
    }

    #[test]
    fn unsynced_commit_is_visible_and_marked_with_the_boot_id() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let a = commit(&store, b"a");
        assert!(store.layer(&a).unwrap().is_some());
        assert_eq!(
            fs::read_to_string(store.unsynced_marker(&a)).unwrap(),
            boot_id()
        );
        assert!(!boot_id().is_empty(), "no boot id on this kernel");
    }

    #[test]
    fn repair_syncs_this_boot_and_removes_earlier_boots() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let current = commit(&store, b"current");
        let crashed = commit(&store, b"crashed");
        let locked = commit(&store, b"locked");
        for chain in [&crashed, &locked] {
            fs::write(store.unsynced_marker(chain), "another-boot").unwrap();
        }
        let link = store.layer(&crashed).unwrap().unwrap().link;
        let held = store.lock_layer(&locked).unwrap();

        // Without syncs, this boot's layers stay as they are.
        let repair = store.repair_unsynced(false).unwrap();
        assert_eq!(repair.synced, 0);
        assert_eq!(repair.removed, vec![crashed.clone()]);
        assert!(store.unsynced_marker(&current).exists());
        let repair = store.repair_unsynced(true).unwrap();
        assert_eq!(repair.synced, 1);
        assert!(repair.removed.is_empty());
        assert!(store.layer(&current).unwrap().is_some());
        assert!(!store.unsynced_marker(&current).exists());
        assert!(store.layer(&crashed).unwrap().is_none());
        assert!(!store.layer_dir(&crashed).exists());
        assert!(fs::symlink_metadata(store.links_dir().join(link)).is_err());
        assert!(!store.unsynced_marker(&crashed).exists());
        // Its lock is held: left for whoever holds it.
        assert!(store.unsynced_marker(&locked).exists());
        drop(held);
        assert_eq!(store.repair_unsynced(true).unwrap().removed, vec![locked]);
        assert_eq!(store.repair_unsynced(true).unwrap(), Repair::default());
    }
}

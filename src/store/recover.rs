//! Recovery in one place: what killed runs and crashes leave, cleaned up by the first mutating
//! operation of a command ([`Store::recover`]); read-only commands never call it.
//!
//! Every write to the store is ordered so that a kill leaves at worst an orphan, never
//! something that looks present but is not whole: a staging dir, a layer directory without its
//! record, a dangling short link, an image directory without `image.json`, a container's
//! layers or state without its record, a name index entry without its container, the
//! temporary file of an atomic write, a trash entry. Staging and the trash are swept by every
//! recovery (they are small); the rest needs a scan of the whole store, which runs only when
//! an intent marker says a command was killed (see `intent`), under the exclusive store lease
//! (which no creation in progress can hold at the same time), taken only when it is free at
//! once, so a command never waits for recovery's sake, except after a crash left unsynced
//! layers of an earlier boot, which must go before anything uses them.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{LeaseKind, Repair, Store, StoreError, fsutil, io_err};
use crate::id::{ChainId, ImageId};

/// What [`Store::recover`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Staging directories of killed runs removed.
    pub staging: usize,
    /// What happened to layers committed without a sync.
    pub repair: Repair,
    /// Orphans removed, relative to the root.
    pub orphans: Vec<PathBuf>,
    /// Trash entries removed.
    pub trash: usize,
}

/// `recovered` levels: not yet, done without syncing this boot's layers, done with.
const UNSYNCED_LEFT: u8 = 1;
const SYNCED: u8 = 2;

impl Store {
    /// Cleans up after killed runs, once per [`Store`] value (its clones share it): sweeps
    /// staging, repairs unsynced layers (`sync`: this boot's are synced too, see `durable`),
    /// removes orphans when an intent marker says a command was killed and nobody else holds
    /// the store (else the marker stays for the next command), and empties the trash. Call it before
    /// taking the store lease, never while holding it.
    pub fn recover(&self, sync: bool) -> Result<Recovery, StoreError> {
        let level = if sync { SYNCED } else { UNSYNCED_LEFT };
        if self.recovered.load(Ordering::Acquire) >= level {
            return Ok(Recovery::default());
        }
        // Ours first: from here a kill of this process gets the store scanned.
        self.intend()?;
        let mut recovery = Recovery {
            staging: self.sweep_staging()?,
            ..Recovery::default()
        };
        let stale = self.stale_intents()?;
        let reboot = self.has_stale_unsynced()?;
        let lease = if reboot {
            Some(self.lease(LeaseKind::Exclusive)?)
        } else if !stale.is_empty() {
            self.try_lease_exclusive()?
        } else {
            None
        };
        recovery.repair = self.repair_unsynced_with(sync, lease.is_some())?;
        if lease.is_some() && (reboot || !stale.is_empty()) {
            recovery.orphans = self.remove_orphans()?;
            self.clear_intents(&stale)?;
        }
        drop(lease);
        recovery.trash = self.empty_trash()?;
        self.recovered.fetch_max(level, Ordering::AcqRel);
        Ok(recovery)
    }

    /// Moves what no record accounts for into the trash (the caller holds the exclusive
    /// lease); returns the removed paths relative to the root.
    ///
    /// It runs before most mutating commands, so it works from directory listings and looks
    /// into single entries only where a listing cannot tell (with 1,000 images and containers
    /// a stat of every layer and link cost a warm `pull-and-mount` ten times its own work).
    fn remove_orphans(&self) -> Result<Vec<PathBuf>, StoreError> {
        let mut removed = Vec::new();
        let overlay = self.overlay_dir();
        let mut overlay_names: BTreeSet<String> = dir_names(&overlay)?.into_iter().collect();
        // A layer directory arrives whole (renamed from staging with its diff) before its
        // record is written, so a record whose directory is listed has its diff.
        let mut layers = BTreeSet::new();
        for chain in self.layer_records()? {
            if overlay_names.contains(chain.hex()) {
                layers.insert(chain);
            } else {
                let record = self.layers_dir().join(format!("{}.json", chain.hex()));
                fsutil::remove_file(&record)?;
                removed.push(PathBuf::from("layers").join(format!("{}.json", chain.hex())));
            }
        }
        // A container's id names its record: the records need not be read.
        let states = self.containers_dir();
        let state_names = dir_names(&states)?;
        let ids: BTreeSet<&str> = state_names
            .iter()
            .filter_map(|n| n.strip_suffix(".json"))
            .collect();
        let mut known: BTreeSet<String> = layers.iter().map(|c| c.hex().to_string()).collect();
        for id in &ids {
            known.insert(id.to_string());
            known.insert(format!("{id}-init"));
        }
        overlay_names.remove("l");
        let orphan_dirs: Vec<String> = overlay_names
            .iter()
            .filter(|name| !known.contains(*name) && !is_mounted_under(&overlay.join(name)))
            .cloned()
            .collect();
        for name in orphan_dirs {
            self.move_to_trash(&overlay.join(&name), &name)?;
            overlay_names.remove(&name);
            removed.push(PathBuf::from("overlay2").join(name));
        }
        removed.extend(self.remove_dangling_links(overlay_names.len())?);
        let images = self.images_dir();
        // Atomic writes killed before their rename (repositories.json, layer and image
        // records), by processes that are gone: a running one may still rename its own.
        let mut temp_dirs = vec![
            (self.root.clone(), PathBuf::new()),
            (self.layers_dir(), PathBuf::from("layers")),
        ];
        for name in dir_names(&images)? {
            let whole = ImageId::from_hex(&name)
                .is_some_and(|id| self.image_dir(&id).join("image.json").is_file());
            if whole {
                temp_dirs.push((images.join(&name), PathBuf::from("images").join(&name)));
            } else {
                self.move_to_trash(&images.join(&name), &name)?;
                removed.push(PathBuf::from("images").join(name));
            }
        }
        for name in &state_names {
            if name.ends_with(".json") || ids.contains(name.as_str()) || is_temp(name) {
                continue;
            }
            self.move_to_trash(&states.join(name), name)?;
            removed.push(PathBuf::from("containers").join(name));
        }
        temp_dirs.push((states.clone(), PathBuf::from("containers")));
        for (dir, shown) in temp_dirs {
            for name in dir_names(&dir)? {
                if crate::sys::atomic::is_stale_temp(&name) {
                    fsutil::remove_file(&dir.join(&name))?;
                    removed.push(shown.join(name));
                }
            }
        }
        removed.extend(self.reconcile_names(&ids)?);
        let unsynced = self.unsynced_dir();
        for name in dir_names(&unsynced)? {
            if !ChainId::from_hex(&name).is_some_and(|c| layers.contains(&c)) {
                fsutil::remove_file(&unsynced.join(&name))?;
                removed.push(PathBuf::from("unsynced").join(name));
            }
        }
        Ok(removed)
    }

    /// Removes the short links whose directory is gone; returns them relative to the root.
    /// Every directory left in overlay2 has exactly one link, installed before its record, so
    /// as many links as directories means none dangles: then no link is looked at.
    fn remove_dangling_links(&self, dirs: usize) -> Result<Vec<PathBuf>, StoreError> {
        let links = self.links_dir();
        let names = dir_names(&links)?;
        if names.len() == dirs {
            return Ok(Vec::new());
        }
        let mut removed = Vec::new();
        for name in names {
            let link = links.join(&name);
            if fs::metadata(&link).is_err() {
                fsutil::remove_file(&link)?;
                removed.push(PathBuf::from("overlay2/l").join(name));
            }
        }
        Ok(removed)
    }
}

/// The names in `dir` (none when it does not exist).
fn dir_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether `name` is the temporary file of an atomic write (`.<name>.tmp-<pid>-<n>-<random>`).
fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Whether `dir/merged` is a mount point (another device than `dir`): such a directory is left
/// alone, removing it would reach into the mount.
fn is_mounted_under(dir: &Path) -> bool {
    match (fs::metadata(dir), fs::metadata(dir.join("merged"))) {
        (Ok(outer), Ok(inner)) => outer.dev() != inner.dev(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layer::tests::{chain_id, record};

    #[test]
    fn orphans_go_and_whole_things_stay() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let kept = chain_id(b"kept");
        let staging = store.begin_layer(&kept, &[]).unwrap();
        let link = staging.link().to_string();
        staging.commit(&record(&kept, &link)).unwrap();

        let overlay = store.overlay_dir();
        fs::create_dir_all(overlay.join(chain_id(b"half").hex()).join("diff")).unwrap();
        std::os::unix::fs::symlink("../gone/diff", store.links_dir().join("DANGLING")).unwrap();
        fs::create_dir_all(store.images_dir().join(chain_id(b"img").hex())).unwrap();
        fs::create_dir_all(store.containers_dir().join("c0ffee")).unwrap();
        fs::create_dir_all(store.trash_dir().join("x-1/y")).unwrap();
        // Atomic writes of a process killed before the rename.
        let temp = ".repositories.json.tmp-999999999-3-0badf00d";
        fs::write(root.path().join(temp), b"{").unwrap();
        fs::write(
            store.layers_dir().join(".x.json.tmp-999999999-4-0badf00d"),
            b"{",
        )
        .unwrap();

        let recovery = store.recover(false).unwrap();
        assert_eq!(recovery.orphans.len(), 6, "{recovery:?}");
        assert!(!root.path().join(temp).exists());
        assert!(
            dir_names(&store.layers_dir())
                .unwrap()
                .iter()
                .all(|n| !n.starts_with('.'))
        );
        assert!(recovery.trash >= 1);
        assert!(store.layer(&kept).unwrap().is_some());
        assert!(store.links_dir().join(&link).exists());
        assert_eq!(
            dir_names(&overlay).unwrap(),
            vec![kept.hex().to_string(), "l".into()]
        );
        assert!(dir_names(&store.trash_dir()).unwrap().is_empty());
        // Once per store value.
        fs::create_dir_all(overlay.join("again")).unwrap();
        killed_command(&store);
        assert_eq!(store.recover(false).unwrap(), Recovery::default());
        assert!(!store.recover(true).unwrap().orphans.is_empty());
    }

    /// The marker a command killed while changing the store leaves.
    fn killed_command(store: &Store) {
        fs::write(store.root().join("intents/999999999-00000000deadbeef"), b"").unwrap();
    }

    #[test]
    fn temporary_files_of_gone_writers_go_and_those_of_running_ones_stay() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let img = crate::store::containers::tests::image(&store, &[chain_id(b"base")]);
        let image_dir = store.image_dir(&img.id);
        let gone = ".image.json.tmp-999999999-1-0badf00d";
        fs::write(image_dir.join(gone), b"{").unwrap();
        fs::create_dir_all(store.containers_dir()).unwrap();
        let running = format!(
            ".{}.json.tmp-{}-1-0badf00d",
            "ab".repeat(32),
            std::process::id()
        );
        fs::write(store.containers_dir().join(&running), b"{").unwrap();
        let orphans = store.recover(false).unwrap().orphans;
        assert_eq!(
            orphans,
            vec![PathBuf::from("images").join(img.id.hex()).join(gone)]
        );
        assert!(store.image(&img.id).unwrap().is_some());
        assert!(store.containers_dir().join(running).exists());
    }

    #[test]
    fn the_store_is_scanned_only_after_a_killed_command() {
        let root = tempfile::tempdir().unwrap();
        Store::open(root.path()).unwrap().recover(false).unwrap();
        let orphan = root.path().join("overlay2/orphan");
        fs::create_dir_all(&orphan).unwrap();
        // Every command before ended cleanly: nothing is scanned.
        let clean = Store::open(root.path()).unwrap();
        assert!(clean.recover(false).unwrap().orphans.is_empty());
        assert!(orphan.exists());
        drop(clean);
        // A killed one's marker makes the next command scan, once.
        let next = Store::open(root.path()).unwrap();
        killed_command(&next);
        assert_eq!(
            next.recover(false).unwrap().orphans,
            vec![PathBuf::from("overlay2/orphan")]
        );
        assert!(!orphan.exists());
        drop(next);
        assert_eq!(dir_names(&root.path().join("intents")).unwrap().len(), 0);
    }

    #[test]
    fn a_killed_commands_marker_stays_until_a_scan_could_run() {
        let root = tempfile::tempdir().unwrap();
        Store::open(root.path()).unwrap().recover(false).unwrap();
        let busy = Store::open(root.path()).unwrap();
        killed_command(&busy);
        let held = busy.lease(LeaseKind::Shared).unwrap();
        let orphan = root.path().join("overlay2/orphan");
        fs::create_dir_all(&orphan).unwrap();
        let first = Store::open(root.path()).unwrap();
        assert!(first.recover(false).unwrap().orphans.is_empty());
        drop((held, busy, first));
        let second = Store::open(root.path()).unwrap();
        assert_eq!(second.recover(false).unwrap().orphans.len(), 1);
        assert!(!orphan.exists());
    }

    #[test]
    fn a_layer_record_whose_directory_is_gone_goes_with_its_link() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let (kept, gone) = (chain_id(b"kept"), chain_id(b"gone"));
        let mut links = Vec::new();
        for chain in [&kept, &gone] {
            let staging = store.begin_layer(chain, &[]).unwrap();
            let link = staging.link().to_string();
            staging.commit(&record(chain, &link)).unwrap();
            links.push(link);
        }
        fs::remove_dir_all(store.layer_dir(&gone)).unwrap();

        let mut orphans = store.recover(false).unwrap().orphans;
        orphans.sort();
        assert_eq!(
            orphans,
            vec![
                PathBuf::from(format!("layers/{}.json", gone.hex())),
                PathBuf::from(format!("overlay2/l/{}", links[1])),
            ]
        );
        assert!(store.layer(&kept).unwrap().is_some());
        assert!(store.layer(&gone).unwrap().is_none());
        assert_eq!(
            dir_names(&store.links_dir()).unwrap(),
            vec![links[0].clone()]
        );
    }

    #[test]
    fn a_whole_store_has_no_orphans() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        for name in [&b"a"[..], b"b", b"c"] {
            let chain = chain_id(name);
            let staging = store.begin_layer(&chain, &[]).unwrap();
            let link = staging.link().to_string();
            staging.commit(&record(&chain, &link)).unwrap();
        }
        assert!(store.recover(true).unwrap().orphans.is_empty());
        assert_eq!(dir_names(&store.links_dir()).unwrap().len(), 3);
        assert_eq!(store.layer_records().unwrap().len(), 3);
    }

    #[test]
    fn orphans_stay_while_another_process_holds_the_store() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let other = Store::open(root.path()).unwrap();
        let _held = other.lease(LeaseKind::Shared).unwrap();
        fs::create_dir_all(store.overlay_dir().join("creating")).unwrap();
        assert!(store.recover(true).unwrap().orphans.is_empty());
        assert!(store.overlay_dir().join("creating").exists());
    }
}

//! The container name index, `<root>/container-names/<name>`: a symlink to the container's id,
//! so that creating a container checks its name, and finding one by name reads one record,
//! whatever the number of containers.
//!
//! The entry is the claim: `symlink` fails when the name exists, atomically, and is made
//! before the container's record (and removed after it), all under the metadata lock, so a
//! record always has its entry. A kill between the two leaves an entry whose record is
//! missing: such an entry is stale (no creation holding the metadata lock can be half-way),
//! replaced by the next claim of the name and removed by recovery's scan. Stores made before
//! the index get it built from their records by the first container creation.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use super::containers::is_container_id;
use super::{ContainerRecord, Store, StoreError, fsutil, io_err};

impl Store {
    /// `<root>/container-names`.
    pub(super) fn names_dir(&self) -> PathBuf {
        self.root.join("container-names")
    }

    /// The id the index names `name` with, if any (the record may be gone: see the module).
    pub(super) fn named(&self, name: &str) -> Result<Option<String>, StoreError> {
        let entry = self.names_dir().join(name);
        match fs::read_link(&entry) {
            Ok(target) => Ok(target
                .to_str()
                .filter(|id| is_container_id(id))
                .map(str::to_string)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(io_err("reading", &entry)(e)),
        }
    }

    /// Claims `name` for container `id` (under the metadata lock; the name is valid).
    pub(super) fn claim_name(&self, name: &str, id: &str) -> Result<(), StoreError> {
        let dir = self.name_index()?;
        let entry = dir.join(name);
        for _ in 0..2 {
            match symlink(id, &entry) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("claiming the container name", &entry)(e)),
            }
            match self.named(name)? {
                Some(owner) if self.container_record_path(&owner).exists() => {
                    return Err(StoreError::NameInUse(name.to_string()));
                }
                // Left by a killed creation or removal.
                _ => fsutil::remove_file(&entry)?,
            }
        }
        Err(StoreError::NameInUse(name.to_string()))
    }

    /// Removes `record`'s name entry if it is still its own (under the metadata lock).
    pub(super) fn release_name(&self, record: &ContainerRecord) -> Result<(), StoreError> {
        if self.named(&record.name)?.as_deref() == Some(record.id.as_str()) {
            fsutil::remove_file(&self.names_dir().join(&record.name))?;
        }
        Ok(())
    }

    /// The index directory, built from the records if the store has none yet (under the
    /// metadata lock): filled beside it, then renamed into place whole.
    fn name_index(&self) -> Result<PathBuf, StoreError> {
        let dir = self.names_dir();
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self.root.join("container-names.tmp");
        fsutil::remove_tree(&tmp)?;
        fsutil::mkdir_mode(&tmp, 0o700)?;
        for record in self.containers()? {
            let entry = tmp.join(&record.name);
            match symlink(&record.id, &entry) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(io_err("building the name index", &entry)(e));
                }
                _ => {}
            }
        }
        fs::rename(&tmp, &dir).map_err(io_err("building the name index", &dir))?;
        Ok(dir)
    }

    /// Makes the index agree with the records `ids` (under the exclusive lease: no creation
    /// or removal is half-way): removes entries naming no record, adds the entries of records
    /// without one. Returns the removed entries relative to the root.
    pub(super) fn reconcile_names(&self, ids: &BTreeSet<&str>) -> Result<Vec<PathBuf>, StoreError> {
        let dir = self.names_dir();
        fsutil::remove_tree(&self.root.join("container-names.tmp"))?;
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut removed = Vec::new();
        let mut named = BTreeSet::new();
        let entries = fs::read_dir(&dir).map_err(io_err("listing", &dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match self.named(&name)? {
                Some(id) if ids.contains(id.as_str()) => {
                    named.insert(id);
                }
                _ => {
                    fsutil::remove_file(&entry.path())?;
                    removed.push(PathBuf::from("container-names").join(name));
                }
            }
        }
        for id in ids.iter().filter(|id| !named.contains(**id)) {
            if let Some(record) =
                fsutil::read_json::<ContainerRecord>(&self.container_record_path(id))?
            {
                match symlink(&record.id, dir.join(&record.name)) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(io_err("repairing the name index", &dir)(e));
                    }
                    _ => {}
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::containers::tests::image;
    use crate::store::layer::tests::chain_id;

    #[test]
    fn a_name_is_claimed_once_and_free_again_after_rm_or_a_killed_creation() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let img = image(&store, &[chain_id(b"base")]);
        let web = store.create_container(&img, "x", Some("web")).unwrap();
        assert_eq!(store.named("web").unwrap(), Some(web.id.clone()));
        assert!(matches!(
            store.create_container(&img, "x", Some("web")),
            Err(StoreError::NameInUse(_))
        ));
        store.remove_container(&web).unwrap();
        assert_eq!(store.named("web").unwrap(), None);
        // A creation killed after its claim: the entry names no record.
        symlink("ab".repeat(32), store.names_dir().join("db")).unwrap();
        let db = store.create_container(&img, "x", Some("db")).unwrap();
        assert_eq!(store.container("db").unwrap(), db);
    }

    #[test]
    fn a_store_without_an_index_gets_one_from_its_records() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let img = image(&store, &[chain_id(b"base")]);
        let old = store.create_container(&img, "x", Some("old")).unwrap();
        fs::remove_dir_all(store.names_dir()).unwrap();
        // Found by scanning the records meanwhile.
        assert_eq!(store.container("old").unwrap(), old);
        assert!(matches!(
            store.create_container(&img, "x", Some("old")),
            Err(StoreError::NameInUse(_))
        ));
        assert_eq!(store.named("old").unwrap(), Some(old.id.clone()));
        assert_eq!(store.container(&old.id[..8]).unwrap(), old);
        assert_eq!(store.container(&old.id).unwrap(), old);
    }

    #[test]
    fn recovery_reconciles_the_index_with_the_records() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let img = image(&store, &[chain_id(b"base")]);
        let kept = store.create_container(&img, "x", Some("kept")).unwrap();
        let dir = store.names_dir();
        fs::remove_file(dir.join("kept")).unwrap();
        symlink("cd".repeat(32), dir.join("ghost")).unwrap();
        let ids: BTreeSet<&str> = [kept.id.as_str()].into_iter().collect();
        assert_eq!(
            store.reconcile_names(&ids).unwrap(),
            vec![PathBuf::from("container-names/ghost")]
        );
        assert_eq!(store.named("kept").unwrap(), Some(kept.id.clone()));
        assert_eq!(store.named("ghost").unwrap(), None);
    }
}

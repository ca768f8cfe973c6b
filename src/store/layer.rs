//! Layer records and staging: a layer becomes visible only when complete and verified.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{LockGuard, Store, StoreError, fsutil, io_err, layout};
use crate::digest::Digest;
use crate::id::{BlobDigest, ChainId, DiffId};
use crate::image::Compression;

/// What the store knows about a present layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    /// The chain ID, which also names the layer's directory.
    pub chain_id: ChainId,
    /// The uncompressed content digest.
    pub diff_id: DiffId,
    /// The parent's chain ID; none for a bottom layer.
    pub parent: Option<ChainId>,
    /// The compressed blob this layer was unpacked from.
    pub blob_digest: BlobDigest,
    /// The blob's size in bytes.
    pub blob_size: u64,
    /// The blob's compression.
    pub compression: Compression,
    /// The 26-char short link.
    pub link: String,
    /// Bytes of regular-file content.
    pub size: u64,
    /// Number of tar entries applied.
    pub entries: u64,
    /// The digest of the unpacked tree's listing (see [`crate::archive::TreeListing`]), for
    /// `check --content`; none in records of an older strata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<Digest>,
}

impl Store {
    pub(super) fn layer_record_path(&self, chain: &ChainId) -> PathBuf {
        self.layers_dir().join(format!("{}.json", chain.hex()))
    }

    /// The record of a present layer (its record written and its `diff/` in place).
    pub fn layer(&self, chain: &ChainId) -> Result<Option<LayerRecord>, StoreError> {
        let Some(record) = fsutil::read_json::<LayerRecord>(&self.layer_record_path(chain))? else {
            return Ok(None);
        };
        Ok(self
            .layer_dir(chain)
            .join("diff")
            .is_dir()
            .then_some(record))
    }

    /// Takes the exclusive per-layer lock that guards unpacking `chain` (blocks).
    pub fn lock_layer(&self, chain: &ChainId) -> Result<LockGuard, StoreError> {
        LockGuard::acquire(&self.layer_lock_path(chain))
    }

    /// Takes the layer's lock if nobody holds it.
    pub(super) fn try_lock_layer(&self, chain: &ChainId) -> Result<Option<LockGuard>, StoreError> {
        LockGuard::try_acquire(&self.layer_lock_path(chain))
    }

    fn layer_lock_path(&self, chain: &ChainId) -> PathBuf {
        self.locks_dir().join(format!("layer-{}.lock", chain.hex()))
    }

    /// Starts unpacking a layer: clears what a killed run left for it and prepares
    /// `staging/<id>/` with `diff/`, `link`, and `lower` + `work/` for non-bottom layers.
    /// The caller must hold [`Store::lock_layer`] for `chain`.
    pub fn begin_layer(
        &self,
        chain: &ChainId,
        ancestors_nearest_first: &[ChainId],
    ) -> Result<Staging, StoreError> {
        let _ = fs::remove_file(self.layer_record_path(chain));
        fsutil::remove_tree(&self.layer_dir(chain))?;
        let dir = self.staging_dir().join(chain.hex());
        fsutil::remove_tree(&dir)?;
        let link = layout::short_link(chain);
        let lower = (!ancestors_nearest_first.is_empty())
            .then(|| layout::lower_value(ancestors_nearest_first));
        let staging = Staging {
            store: self.clone(),
            chain: chain.clone(),
            dir,
            link,
            done: false,
        };
        layout::init_layer_dir(&staging.dir, &staging.link, lower.as_deref())?;
        Ok(staging)
    }

    /// Takes a layer out of the store, in an order a kill cannot turn into a half-deleted
    /// layer that looks present: its record (it is no longer present), its directory renamed
    /// into the trash, then its short link. The trashed files are removed by
    /// [`Store::empty_trash`]. The caller holds the exclusive store lease.
    pub(crate) fn remove_layer(&self, chain: &ChainId) -> Result<(), StoreError> {
        fsutil::remove_file(&self.layer_record_path(chain))?;
        self.move_to_trash(&self.layer_dir(chain), chain.hex())?;
        let link = self.links_dir().join(layout::short_link(chain));
        if fs::read_link(&link).is_ok_and(|t| t == Path::new(&format!("../{}/diff", chain.hex()))) {
            fsutil::remove_file(&link)?;
        }
        Ok(())
    }

    /// The chain IDs of every layer with a record, present or not.
    pub(crate) fn layer_records(&self) -> Result<Vec<ChainId>, StoreError> {
        let dir = self.layers_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name();
            if let Some(chain) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(ChainId::from_hex)
            {
                out.push(chain);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes staging directories of killed runs (those whose layer lock nobody holds).
    pub fn sweep_staging(&self) -> Result<usize, StoreError> {
        let dir = self.staging_dir();
        let entries = fs::read_dir(&dir).map_err(io_err("listing", &dir))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name();
            let Some(chain) = name.to_str().and_then(ChainId::from_hex) else {
                continue;
            };
            if let Some(_guard) = self.try_lock_layer(&chain)? {
                fsutil::remove_tree(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A layer being unpacked in `staging/<id>/`; removed on drop unless committed.
#[derive(Debug)]
pub struct Staging {
    store: Store,
    chain: ChainId,
    dir: PathBuf,
    link: String,
    done: bool,
}

impl Staging {
    /// Where the layer's files go.
    pub fn diff_dir(&self) -> PathBuf {
        self.dir.join("diff")
    }

    /// The short link this layer will get.
    pub fn link(&self) -> &str {
        &self.link
    }

    /// Makes the verified layer visible: one `syncfs`, rename into `overlay2/<id>`, short link,
    /// record.
    pub fn commit(self, record: &LayerRecord) -> Result<(), StoreError> {
        let dir = fs::File::open(&self.dir).map_err(io_err("opening", &self.dir))?;
        rustix::fs::syncfs(dir.as_fd()).map_err(|e| io_err("syncing", &self.dir)(e.into()))?;
        self.install(record)
    }

    /// Like [`Staging::commit`] without the `syncfs`: the layer is marked unsynced instead
    /// (see `durable`).
    pub fn commit_unsynced(self, record: &LayerRecord) -> Result<(), StoreError> {
        self.store.mark_unsynced(&self.chain)?;
        self.install(record)
    }

    fn install(mut self, record: &LayerRecord) -> Result<(), StoreError> {
        let dest = self.store.layer_dir(&self.chain);
        fs::rename(&self.dir, &dest).map_err(io_err("moving layer into", &dest))?;
        self.done = true;
        layout::install_short_link(&self.store.links_dir(), &self.link, self.chain.hex())?;
        fsutil::write_json(&self.store.layer_record_path(&self.chain), record)
    }

    /// The staging directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fsutil::remove_tree(&self.dir);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A chain ID for tests: the digest of `name`.
    pub(crate) fn chain_id(name: &[u8]) -> ChainId {
        ChainId::new(Digest::of(name))
    }

    /// A record of a layer with nothing in it, for tests that commit layers by hand.
    pub(crate) fn record(chain: &ChainId, link: &str) -> LayerRecord {
        LayerRecord {
            chain_id: chain.clone(),
            diff_id: DiffId::new(chain.digest().clone()),
            parent: None,
            blob_digest: BlobDigest::new(chain.digest().clone()),
            blob_size: 1,
            compression: Compression::Gzip,
            link: link.to_string(),
            size: 0,
            entries: 0,
            content_digest: None,
        }
    }

    #[test]
    fn staging_is_invisible_until_commit_and_removed_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let chain = chain_id(b"layer");
        let _lock = store.lock_layer(&chain).unwrap();

        let staging = store.begin_layer(&chain, &[]).unwrap();
        let staged = staging.path().to_path_buf();
        assert!(staged.join("diff").is_dir());
        assert!(!staged.join("lower").exists() && !staged.join("work").exists());
        drop(staging);
        assert!(!staged.exists());
        assert!(store.layer(&chain).unwrap().is_none());

        let parent = chain_id(b"parent");
        let staging = store
            .begin_layer(&chain, std::slice::from_ref(&parent))
            .unwrap();
        fs::write(staging.diff_dir().join("f"), b"x").unwrap();
        let link = staging.link().to_string();
        staging.commit(&record(&chain, &link)).unwrap();

        let dir = store.layer_dir(&chain);
        assert_eq!(fs::read_to_string(dir.join("link")).unwrap(), link);
        assert_eq!(
            fs::read_to_string(dir.join("lower")).unwrap(),
            format!("l/{}", layout::short_link(&parent))
        );
        assert!(dir.join("work").is_dir());
        assert_eq!(
            fs::read_link(store.links_dir().join(&link)).unwrap(),
            Path::new(&format!("../{}/diff", chain.hex()))
        );
        assert_eq!(
            fs::read(store.links_dir().join(&link).join("f")).unwrap(),
            b"x"
        );
        assert_eq!(store.layer(&chain).unwrap(), Some(record(&chain, &link)));
    }

    #[test]
    fn sweep_removes_unlocked_leftovers_only() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let (a, b) = (chain_id(b"a"), chain_id(b"b"));
        let staging_a = store.begin_layer(&a, &[]).unwrap();
        std::mem::forget(staging_a); // a killed run: no cleanup
        let _held = store.lock_layer(&b).unwrap();
        let staging_b = store.begin_layer(&b, &[]).unwrap();
        assert_eq!(store.sweep_staging().unwrap(), 1);
        assert!(!store.staging_dir().join(a.hex()).exists());
        assert!(staging_b.path().exists());
    }
}

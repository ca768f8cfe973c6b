//! The on-disk store: Docker's overlay2 layout plus strata's own metadata.
//!
//! ```text
//! <root>/overlay2/<chain hex>/{diff,link,lower,work}   layers, keyed by chain ID
//! <root>/overlay2/<chain hex>/content.gz                their content listing (`check --content`)
//! <root>/overlay2/l/<26 chars>  -> ../<chain hex>/diff  short links
//! <root>/layers/<chain hex>.json                        a layer is present once its record is
//! <root>/images/<config hex>/{image,manifest,config}.json
//! <root>/overlay2/<cid>-init, <cid>/                 container layers (init files; upper, work, merged)
//! <root>/containers/<cid>.json                      container records
//! <root>/repositories.json                             references -> image ids
//! <root>/image-mounts/<id hex>/                    read-only image mounts (`mount --image`)
//! <root>/staging/<chain hex>/                          layers being unpacked (never visible)
//! <root>/locks/                                        flock files (store.lock, store.turnstile, ...)
//! <root>/unsynced/<chain hex>                          layers not yet known to be on disk
//! <root>/trash/<name>-<random>                         deleted trees, removed outside the lock
//! <root>/intents/<pid>-<random>                        flock'd by each command changing the store
//! <root>/container-names/<name> -> <cid>              the container name index
//! <root>/kind                                          `root` or `rootless`: who made it
//! ```
//!
//! Lifecycle: [`lease`] (the store-wide reader/writer lock), [`trash`] (deletes that a kill
//! cannot tear), `intent` (which commands were killed), [`recover`] (cleaning up after killed
//! runs, in one place), `gc` (rmi and image prune).

mod check;
mod containers;
mod content;
mod durable;
mod error;
mod fsutil;
mod gc;
mod image;
mod image_mount;
mod intent;
pub mod kind;
mod layer;
mod layout;
pub mod lease;
mod lock;
mod names;
pub mod preflight;
pub mod recover;
pub mod trash;

use std::fs;
use std::path::{Path, PathBuf};

pub use check::{Outcome, Problem, ProblemKind};
pub use containers::{ContainerDirs, ContainerRecord};
pub use durable::Repair;
pub use error::StoreError;
pub(crate) use error::io_err;
pub use gc::{Deletion, PruneImages, Removal};
pub use image::{ImageRecord, LayerRef, Repositories, now_rfc3339, pick_platform};
pub use image_mount::ImageMountError;
pub(crate) use intent::Intent;
pub use kind::StoreKind;
pub use layer::{LayerRecord, Staging};
pub use layout::short_link;
pub use lease::{LeaseKind, StoreLease};
pub use lock::LockGuard;
pub use recover::Recovery;

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};

use crate::id::ChainId;

/// A store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// How far [`Store::recover`] has run for this value and its clones.
    recovered: Arc<AtomicU8>,
    /// This process's intent marker once it changes the store (see `intent`).
    intent: Arc<Mutex<Option<Intent>>>,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, after checking that overlay2 can use its
    /// filesystem ([`preflight`]).
    ///
    /// ```no_run
    /// use strata::store::Store;
    ///
    /// # fn main() -> Result<(), strata::store::StoreError> {
    /// let store = Store::open(std::path::Path::new("/var/lib/strata"))?;
    /// for image in store.images()? {
    ///     println!("{}", image.id);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let store = Store {
            root: root.to_path_buf(),
            recovered: Arc::new(AtomicU8::new(0)),
            intent: Arc::new(Mutex::new(None)),
        };
        fsutil::mkdir_mode_as(&store.root, 0o711, "cannot create store directory")?;
        kind::settle(&store.root, StoreKind::current())?;
        fsutil::mkdir_mode(&store.overlay_dir(), 0o710)?;
        fsutil::mkdir_mode(&store.links_dir(), 0o700)?;
        for dir in [
            store.layers_dir(),
            store.images_dir(),
            store.staging_dir(),
            store.locks_dir(),
            store.unsynced_dir(),
            store.trash_dir(),
        ] {
            fsutil::mkdir_mode(&dir, 0o700)?;
        }
        fsutil::spread_subdirs(&store.staging_dir());
        preflight::check(&store.root)?;
        Ok(store)
    }

    /// Opens the store at `root` for commands that only read: when one is there (its
    /// `overlay2/`, the first thing [`Store::open`] makes in it) or `root` is an empty
    /// directory made for it. A missing root, or a directory holding something else, is
    /// [`StoreError::NoStore`]: a mistyped root must not get a store made.
    pub fn open_existing(root: &Path) -> Result<Self, StoreError> {
        // Only a `kind` file: a store killed while being made.
        let empty = fs::read_dir(root)
            .is_ok_and(|entries| entries.flatten().all(|e| e.file_name() == kind::KIND_FILE));
        if !(empty || root.join("overlay2").is_dir()) {
            return Err(StoreError::NoStore(root.to_path_buf()));
        }
        Self::open(root)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Who made this (opened) store: root or rootless ([`kind`]).
    pub fn kind(&self) -> Result<StoreKind, StoreError> {
        Ok(kind::recorded(&self.root)?.unwrap_or(StoreKind::Root))
    }

    /// `<root>/overlay2`.
    pub fn overlay_dir(&self) -> PathBuf {
        self.root.join("overlay2")
    }

    /// `<root>/overlay2/l`.
    pub fn links_dir(&self) -> PathBuf {
        self.overlay_dir().join("l")
    }

    /// `<root>/overlay2/<id>`: a layer's directory, named by its chain ID.
    ///
    /// ```no_run
    /// use strata::id::{ChainId, DiffId};
    /// use strata::store::Store;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Store::open(std::path::Path::new("/var/lib/strata"))?;
    /// let diff_ids: Vec<DiffId> = vec![format!("sha256:{}", "ab".repeat(32)).parse()?];
    /// let chains = ChainId::of_stack(&diff_ids);
    /// println!("{}", store.layer_dir(&chains[0]).display());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// A diff_id names the layer's content, not its directory (the two differ for every layer
    /// but the bottom one), so looking a directory up by one does not compile:
    ///
    /// ```compile_fail,E0308
    /// use strata::id::DiffId;
    /// use strata::store::Store;
    ///
    /// fn dir_of(store: &Store, diff_id: &DiffId) -> std::path::PathBuf {
    ///     store.layer_dir(diff_id)
    /// }
    /// ```
    pub fn layer_dir(&self, chain: &ChainId) -> PathBuf {
        self.overlay_dir().join(chain.hex())
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    /// `<root>/staging`: work in progress, on the store's filesystem.
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }

    fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }
}

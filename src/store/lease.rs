//! The store-wide reader/writer lock, `locks/store.lock`, with writer preference.
//!
//! Commands that add references to layers or rely on layers being present (a pull, creating
//! or mounting a container, tagging) hold it shared; commands that delete image layers (rmi,
//! the prunes, the orphan sweep of recovery) hold it exclusive while they decide what is garbage
//! and move it into the trash. flock alone lets a stream of sharers starve a deleter, so a
//! second lock, `locks/store.turnstile`, goes first: a deleter holds it exclusive until it has
//! `store.lock`; a sharer passes through it (takes and drops it) before taking `store.lock`
//! shared, and so queues behind a waiting deleter.
//!
//! Lock order, always: turnstile, store.lock, metadata, per-layer. A process never takes the
//! store lock twice (a second shared request would queue behind a deleter waiting for the
//! first one: a deadlock).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{LockGuard, Store, StoreError};

/// How long a command waits quietly before it says that it waits.
const QUIET_WAIT: Duration = Duration::from_secs(1);

/// How often a waiting command tries the lock again during [`QUIET_WAIT`].
const POLL: Duration = Duration::from_millis(20);

/// Whether this process has said already that it waits (said once per process).
static ANNOUNCED: AtomicBool = AtomicBool::new(false);

/// How a [`StoreLease`] holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// Layers in use stay: taken by pulls, container creation and mounts.
    Shared,
    /// Nobody relies on any layer: taken by commands that delete image layers.
    Exclusive,
}

/// The store lock, held until dropped.
#[derive(Debug)]
pub struct StoreLease {
    _lock: LockGuard,
    kind: LeaseKind,
}

impl StoreLease {
    /// Shared or exclusive.
    pub fn kind(&self) -> LeaseKind {
        self.kind
    }
}

impl Store {
    fn store_lock_path(&self) -> PathBuf {
        self.locks_dir().join("store.lock")
    }

    fn turnstile_path(&self) -> PathBuf {
        self.locks_dir().join("store.turnstile")
    }

    /// Takes the store lock (blocks; after about a second of waiting, a warning `waiting for
    /// other strata processes on <root>` goes to `tracing`, once per process).
    pub fn lease(&self, kind: LeaseKind) -> Result<StoreLease, StoreError> {
        self.intend()?;
        let started = Instant::now();
        let turnstile = self.wait_for(started, &self.turnstile_path(), LeaseKind::Exclusive)?;
        if kind == LeaseKind::Shared {
            drop(turnstile);
            let lock = self.wait_for(started, &self.store_lock_path(), kind)?;
            return Ok(StoreLease { _lock: lock, kind });
        }
        let lock = self.wait_for(started, &self.store_lock_path(), kind)?;
        drop(turnstile);
        Ok(StoreLease { _lock: lock, kind })
    }

    /// The exclusive store lock if it is free now (no turnstile: not waiting, nobody starves).
    pub(super) fn try_lease_exclusive(&self) -> Result<Option<StoreLease>, StoreError> {
        self.intend()?;
        Ok(
            LockGuard::try_acquire(&self.store_lock_path())?.map(|lock| StoreLease {
                _lock: lock,
                kind: LeaseKind::Exclusive,
            }),
        )
    }

    /// Locks `path` as `kind` says: tries until [`QUIET_WAIT`] has passed since `started`,
    /// then says it waits and blocks.
    fn wait_for(
        &self,
        started: Instant,
        path: &Path,
        kind: LeaseKind,
    ) -> Result<LockGuard, StoreError> {
        loop {
            let held = match kind {
                LeaseKind::Shared => LockGuard::try_acquire_shared(path)?,
                LeaseKind::Exclusive => LockGuard::try_acquire(path)?,
            };
            if let Some(guard) = held {
                return Ok(guard);
            }
            if started.elapsed() >= QUIET_WAIT {
                break;
            }
            std::thread::sleep(POLL);
        }
        if !ANNOUNCED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "waiting for other strata processes on {}",
                self.root.display()
            );
        }
        match kind {
            LeaseKind::Shared => LockGuard::acquire_shared(path),
            LeaseKind::Exclusive => LockGuard::acquire(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharers_coexist_and_a_deleter_excludes_them() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let a = store.lease(LeaseKind::Shared).unwrap();
        let b = store.lease(LeaseKind::Shared).unwrap();
        assert_eq!(a.kind(), LeaseKind::Shared);
        assert!(store.try_lease_exclusive().unwrap().is_none());
        drop((a, b));
        let ex = store.lease(LeaseKind::Exclusive).unwrap();
        assert!(store.try_lease_exclusive().unwrap().is_none());
        assert!(
            LockGuard::try_acquire_shared(&store.store_lock_path())
                .unwrap()
                .is_none()
        );
        drop(ex);
        assert!(store.try_lease_exclusive().unwrap().is_some());
    }

    #[test]
    fn a_waiting_deleter_goes_before_later_sharers() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let first = store.lease(LeaseKind::Shared).unwrap();
        let deleter = {
            let store = store.clone();
            std::thread::spawn(move || store.lease(LeaseKind::Exclusive).map(|_| Instant::now()))
        };
        // The deleter now holds the turnstile: a new sharer cannot pass.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            LockGuard::try_acquire(&store.turnstile_path())
                .unwrap()
                .is_none()
        );
        let sharer = {
            let store = store.clone();
            std::thread::spawn(move || store.lease(LeaseKind::Shared).map(|_| Instant::now()))
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        let deleted_at = deleter.join().unwrap().unwrap();
        let shared_at = sharer.join().unwrap().unwrap();
        assert!(deleted_at <= shared_at);
    }
}

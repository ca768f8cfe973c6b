//! What killed commands left: staging directories nobody unpacks into, layers of an earlier
//! boot never synced, trash entries.

use std::fs;

use super::inventory::{Inventory, busy, names};
use super::problem::{Fix, Problem, ProblemKind};
use crate::id::ChainId;
use crate::store::{Store, StoreError, io_err};

/// What killed commands left: staging directories nobody unpacks into, layers of an earlier
/// boot never synced, trash entries.
pub(crate) fn leftovers(
    store: &Store,
    inv: &Inventory,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    for name in names(&store.staging_dir())? {
        let Some(chain) = ChainId::from_hex(&name) else {
            continue;
        };
        if !busy(store, &chain)? {
            problems.push(
                Problem::new(
                    ProblemKind::Staging,
                    format!("staging/{name}"),
                    "left by a killed pull",
                )
                .fix(Fix::RemoveStaging(chain)),
            );
        }
    }
    let current = crate::store::durable::boot_id();
    let dir = store.unsynced_dir();
    for name in names(&dir)? {
        let Some(chain) = ChainId::from_hex(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let boot = match fs::read_to_string(&path) {
            Ok(boot) => boot,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        if boot.trim() != current && !busy(store, &chain)? {
            let mut p = Problem::new(
                ProblemKind::Unsynced,
                chain.to_string(),
                "committed without a sync before a reboot: it may be torn",
            )
            .fix(Fix::RemoveUnsynced(chain.clone()));
            p.affects = inv.layer_users(&chain);
            problems.push(p);
        }
    }
    let trash = store.root().join("trash");
    for name in names(&trash)? {
        // Being removed by a running strata process.
        if crate::store::trash::claimed_by_live_process(&name) {
            continue;
        }
        problems.push(
            Problem::new(
                ProblemKind::Trash,
                format!("trash/{name}"),
                "left by an interrupted removal",
            )
            .fix(Fix::RemoveTrash(trash.join(&name))),
        );
    }
    Ok(())
}

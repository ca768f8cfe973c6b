//! What killed commands left: staging directories nobody unpacks into, layers of an earlier
//! boot never synced, trash entries, temporary files of atomic writes.

use std::fs;
use std::path::{Path, PathBuf};

use super::inventory::{Inventory, busy, names};
use super::problem::{Fix, Problem, ProblemKind};
use crate::id::ChainId;
use crate::store::{Store, StoreError, io_err};

/// What killed commands left: staging directories nobody unpacks into, layers of an earlier
/// boot never synced, trash entries, temporary files of atomic writes.
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
    temp_files(store, problems)
}

/// Temporary files of atomic writes whose process is gone, where records are written.
fn temp_files(store: &Store, problems: &mut Vec<Problem>) -> Result<(), StoreError> {
    let root = store.root();
    let mut dirs = vec![
        PathBuf::new(),
        PathBuf::from("layers"),
        PathBuf::from("containers"),
    ];
    for name in names(&root.join("images"))? {
        let dir = Path::new("images").join(name);
        if root.join(&dir).is_dir() {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        for name in names(&root.join(&dir))? {
            if crate::sys::atomic::is_stale_temp(&name) {
                let path = dir.join(&name);
                problems.push(
                    Problem::new(
                        ProblemKind::TempFile,
                        path.display().to_string(),
                        "the temporary file of a write killed before it completed",
                    )
                    .fix(Fix::RemoveTempFile(root.join(path))),
                );
            }
        }
    }
    Ok(())
}

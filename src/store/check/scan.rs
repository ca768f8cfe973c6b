//! The structural check: every layer, directory of `overlay2/` and short link here; images,
//! containers and leftovers of killed commands in their own modules.

use std::fs;
use std::path::Path;

use super::inventory::{Inventory, busy, names};
use super::layers::layer_problems;
use super::problem::{Fix, Problem, ProblemKind};
use super::{containers, images, leftovers};
use crate::id::ChainId;
use crate::store::{Store, StoreError};

/// Runs every structural check; `inv` is loaded and its load problems are in `problems`.
/// The caller holds the metadata lock.
pub(crate) fn scan(
    store: &Store,
    inv: &Inventory,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    for record in inv.layers.values() {
        if busy(store, &record.chain_id)? {
            continue;
        }
        let users = inv.layer_users(&record.chain_id);
        for mut p in layer_problems(store, record, &inv.layers) {
            p.affects.clone_from(&users);
            problems.push(p);
        }
    }
    overlay_dirs(store, inv, problems)?;
    short_links(store, inv, problems)?;
    images::images(store, inv, problems)?;
    containers::containers(store, inv, problems);
    leftovers::leftovers(store, inv, problems)?;
    super::names::name_index(store, inv, problems)?;
    Ok(())
}

/// Whether `name` in `overlay2/` belongs to a container record (`<cid>` or `<cid>-init`).
fn container_dir(inv: &Inventory, name: &str) -> bool {
    inv.container_ids
        .contains(name.strip_suffix("-init").unwrap_or(name))
}

fn overlay_dirs(
    store: &Store,
    inv: &Inventory,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    for name in names(&store.overlay_dir())? {
        if name == "l" || container_dir(inv, &name) {
            continue;
        }
        let chain = ChainId::from_hex(&name);
        if let Some(chain) = &chain
            && (inv.layers.contains_key(chain) || busy(store, chain)?)
        {
            continue;
        }
        let detail = match &chain {
            Some(_) => "a layer directory without a record (an interrupted pull or removal)",
            None => "neither a layer nor a container",
        };
        let mut p = Problem::new(ProblemKind::OrphanDir, format!("overlay2/{name}"), detail)
            .fix(Fix::RemoveOrphanDir(store.overlay_dir().join(&name)));
        if let Some(chain) = &chain {
            p.affects = inv.layer_users(chain);
        }
        problems.push(p);
    }
    Ok(())
}

/// The `l/` entries that are no layer's or container's short link.
fn short_links(
    store: &Store,
    inv: &Inventory,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    for name in names(&store.links_dir())? {
        if let Some(p) = link_problem(store, inv, &name)? {
            problems.push(p);
        }
    }
    Ok(())
}

/// The problem of `l/<name>`, if it is dangling or nobody's short link (a link whose layer a
/// pull is committing is not judged: it gets its link before its record).
pub(crate) fn link_problem(
    store: &Store,
    inv: &Inventory,
    name: &str,
) -> Result<Option<Problem>, StoreError> {
    let dir = store.links_dir();
    let path = dir.join(name);
    let target = match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => fs::read_link(&path).ok(),
    };
    let owner = inv
        .layers
        .values()
        .find(|r| r.link == name)
        .map(|r| r.chain_id.hex().to_string())
        .or_else(|| {
            inv.containers.iter().find_map(|c| {
                (c.link == name)
                    .then(|| c.id.clone())
                    .or_else(|| (c.init_link == name).then(|| format!("{}-init", c.id)))
            })
        });
    if let (Some(owner), Some(t)) = (&owner, &target)
        && *t == Path::new(&format!("../{owner}/diff"))
    {
        // Its owner's checks say whether the target is there.
        return Ok(None);
    }
    let target_chain = target
        .as_deref()
        .and_then(|t| t.to_str())
        .and_then(|t| t.strip_prefix("../")?.strip_suffix("/diff"))
        .and_then(ChainId::from_hex);
    if let Some(chain) = &target_chain
        && !inv.layers.contains_key(chain)
        && busy(store, chain)?
    {
        return Ok(None);
    }
    let (kind, detail) = match &target {
        None => (ProblemKind::ForeignLink, "not a symlink".to_string()),
        Some(t) if !dir.join(t).exists() => (
            ProblemKind::DanglingLink,
            format!("points at {}, which does not exist", t.display()),
        ),
        Some(t) => (
            ProblemKind::ForeignLink,
            format!(
                "points at {}, but is not the short link of a layer or container",
                t.display()
            ),
        ),
    };
    let mut p = Problem::new(kind, format!("l/{name}"), detail).fix(Fix::RemoveLink(path));
    if let Some(chain) = &target_chain {
        p.affects = inv.layer_users(chain);
    }
    Ok(Some(p))
}

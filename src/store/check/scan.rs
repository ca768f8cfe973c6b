//! The structural check: every layer, directory of `overlay2/`, short link, image, reference
//! and container, and what killed commands left.

use std::fs;
use std::path::Path;

use super::inventory::{Inventory, names};
use super::layers::layer_problems;
use super::problem::{Fix, Problem, ProblemKind};
use crate::digest::Digest;
use crate::id::{ChainId, ImageId};
use crate::store::{ImageRecord, Store, StoreError, io_err};

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
    images(store, inv, problems)?;
    containers(store, inv, problems);
    leftovers(store, inv, problems)?;
    Ok(())
}

/// Whether a pull holds the layer's lock (then its files are in flux: not judged).
fn busy(store: &Store, chain: &ChainId) -> Result<bool, StoreError> {
    Ok(store.try_lock_layer(chain)?.is_none())
}

/// Whether the layer has a record and its `diff/`.
pub(crate) fn present(store: &Store, inv: &Inventory, chain: &ChainId) -> bool {
    inv.layers.contains_key(chain) && store.layer_dir(chain).join("diff").is_dir()
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

/// Images: manifest and config match their digests, layers are present; references point at
/// images.
fn images(store: &Store, inv: &Inventory, problems: &mut Vec<Problem>) -> Result<(), StoreError> {
    for image in inv.images.values() {
        let users = inv.image_users(&image.id);
        for detail in image_file_problems(store, image) {
            let mut p = Problem::new(ProblemKind::Image, image.id.to_string(), detail)
                .fix(Fix::RemoveImage(image.id.clone()));
            p.affects.clone_from(&users);
            problems.push(p);
        }
        for layer in &image.layers {
            if inv.layers.contains_key(&layer.chain_id) {
                // A present but broken layer is reported as such.
                continue;
            }
            let mut p = Problem::new(
                ProblemKind::ImageLayer,
                image.id.to_string(),
                format!(
                    "layer {} is missing: the next pull of the image fetches it again",
                    layer.chain_id
                ),
            );
            p.affects.clone_from(&users);
            problems.push(p);
        }
    }
    for (name, id) in &inv.refs {
        if !inv.images.contains_key(id) && !image_being_fixed(problems, id) {
            problems.push(Problem::new(
                ProblemKind::Tag,
                name.clone(),
                format!("points at image {id}, which is not in the store: pull {name} again"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with an image's manifest and config files: missing, or not matching their
/// digests.
pub(crate) fn image_file_problems(store: &Store, image: &ImageRecord) -> Vec<String> {
    let dir = store.image_dir(&image.id);
    let mut out = Vec::new();
    for (file, expected) in [
        ("manifest.json", &image.manifest_digest),
        ("config.json", image.id.digest()),
    ] {
        match fs::read(dir.join(file)) {
            Ok(bytes) if Digest::of(&bytes) == *expected => {}
            Ok(bytes) => out.push(format!(
                "{file} has digest {}, not {expected}",
                Digest::of(&bytes)
            )),
            Err(e) => out.push(format!("{file}: {e}")),
        }
    }
    out
}

/// Whether an image record problem already covers `id` (its references are not reported again).
fn image_being_fixed(problems: &[Problem], id: &ImageId) -> bool {
    problems
        .iter()
        .any(|p| p.kind == ProblemKind::Image && p.object == id.to_string())
}

/// Containers: their image, its layers and their own layers are there.
fn containers(store: &Store, inv: &Inventory, problems: &mut Vec<Problem>) {
    for c in &inv.containers {
        let me = vec![format!("container {}", c.name)];
        let mut report = |kind, detail: String| {
            let mut p = Problem::new(kind, c.name.clone(), detail);
            p.affects.clone_from(&me);
            problems.push(p);
        };
        match inv.images.get(&c.image_id) {
            None => report(
                ProblemKind::Container,
                format!(
                    "its image {} is missing: pull {} again",
                    c.image_id, c.image_ref
                ),
            ),
            Some(image) => {
                for layer in &image.layers {
                    if !present(store, inv, &layer.chain_id) {
                        report(
                            ProblemKind::ContainerLayer,
                            format!(
                                "layer {} is missing: pull {} to fetch it again",
                                layer.chain_id, c.image_ref
                            ),
                        );
                    }
                }
            }
        }
        for (dir, link) in [
            (c.id.clone(), &c.link),
            (format!("{}-init", c.id), &c.init_link),
        ] {
            let path = store.overlay_dir().join(&dir);
            let expected = format!("../{dir}/diff");
            let link_ok = fs::read_link(store.links_dir().join(link))
                .is_ok_and(|t| t == Path::new(&expected));
            if !path.join("diff").is_dir() || !link_ok {
                report(
                    ProblemKind::Container,
                    format!(
                        "overlay2/{dir} or its short link l/{link} is missing or wrong: it cannot \
                         be repaired; remove the container (strata rm -f {})",
                        c.name
                    ),
                );
            }
        }
    }
}

/// What killed commands left: staging directories nobody unpacks into, layers of an earlier
/// boot never synced, trash entries.
fn leftovers(
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

//! What the store holds, read tolerantly: records that cannot be parsed become problems
//! instead of failing the whole check.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;

use super::problem::{Fix, Problem, ProblemKind};
use crate::id::{ChainId, ImageId};
use crate::store::{ContainerRecord, ImageRecord, LayerRecord, Store, StoreError, fsutil, io_err};

/// Everything `check` looks at, loaded once.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    /// Layer records that parse and name their own file.
    pub(crate) layers: BTreeMap<ChainId, LayerRecord>,
    /// Image records that parse.
    pub(crate) images: BTreeMap<ImageId, ImageRecord>,
    /// Container records that parse.
    pub(crate) containers: Vec<ContainerRecord>,
    /// Ids of every container record file, parsed or not (their directories are no orphans).
    pub(crate) container_ids: BTreeSet<String>,
    /// References to image ids.
    pub(crate) refs: BTreeMap<String, ImageId>,
}

/// The entries of `dir` by name (none when it does not exist).
pub(crate) fn names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

/// Whether a pull holds the layer's lock (then its files are in flux: not judged).
pub(crate) fn busy(store: &Store, chain: &ChainId) -> Result<bool, StoreError> {
    Ok(store.try_lock_layer(chain)?.is_none())
}

/// Reads a JSON record; a parse error becomes `Err(detail)`.
fn read_record<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Result<Option<T>, String>, StoreError> {
    match fsutil::read_json::<T>(path) {
        Ok(record) => Ok(Ok(record)),
        Err(StoreError::Corrupt { source, .. }) => Ok(Err(format!("unreadable record: {source}"))),
        Err(e) => Err(e),
    }
}

/// One layer's record, tolerantly: `Err(detail)` when it cannot be used.
pub(crate) fn layer_record(
    store: &Store,
    chain: &ChainId,
) -> Result<Result<Option<LayerRecord>, String>, StoreError> {
    Ok(
        read_record::<LayerRecord>(&store.layer_record_path(chain))?.and_then(
            |record| match record {
                Some(r) if r.chain_id != *chain => {
                    Err(format!("the record names another layer, {}", r.chain_id))
                }
                r => Ok(r),
            },
        ),
    )
}

impl Inventory {
    /// Loads the records; unusable ones are reported in `problems`.
    pub(crate) fn load(store: &Store, problems: &mut Vec<Problem>) -> Result<Self, StoreError> {
        let mut inv = Inventory::default();
        for name in names(&store.layers_dir())? {
            let Some(chain) = name.strip_suffix(".json").and_then(ChainId::from_hex) else {
                continue;
            };
            match layer_record(store, &chain)? {
                Ok(Some(record)) => {
                    inv.layers.insert(chain, record);
                }
                Ok(None) => {}
                Err(detail) => problems.push(
                    Problem::new(ProblemKind::LayerRecord, chain.to_string(), detail)
                        .fix(Fix::RemoveLayer(chain)),
                ),
            }
        }
        for name in names(&store.images_dir())? {
            let Some(id) = ImageId::from_hex(&name) else {
                continue;
            };
            let path = store.image_dir(&id).join("image.json");
            match read_record::<ImageRecord>(&path)? {
                Ok(Some(record)) if record.id == id => {
                    inv.images.insert(id, record);
                }
                Ok(Some(record)) => problems.push(
                    Problem::new(
                        ProblemKind::Image,
                        id.to_string(),
                        format!("the record names another image, {}", record.id),
                    )
                    .fix(Fix::RemoveImage(id)),
                ),
                // A pull writes image.json last: this may be one in progress, which a repair
                // must not undo; the next pull of the image completes it.
                Ok(None) => problems.push(Problem::new(
                    ProblemKind::Image,
                    id.to_string(),
                    "an image directory without image.json (an interrupted pull: pulling the \
                     image again completes it)",
                )),
                Err(detail) => problems.push(
                    Problem::new(ProblemKind::Image, id.to_string(), detail)
                        .fix(Fix::RemoveImage(id)),
                ),
            }
        }
        let dir = store.containers_dir();
        for name in names(&dir)? {
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            inv.container_ids.insert(id.to_string());
            match read_record::<ContainerRecord>(&dir.join(&name))? {
                Ok(Some(record)) => inv.containers.push(record),
                Ok(None) => {}
                Err(detail) => problems.push(Problem::new(
                    ProblemKind::Container,
                    id,
                    format!("{detail}; remove the container's files by hand"),
                )),
            }
        }
        inv.refs = store.repositories()?.refs;
        Ok(inv)
    }

    /// Whether the layer has a record and its `diff/`.
    pub(crate) fn present(&self, store: &Store, chain: &ChainId) -> bool {
        self.layers.contains_key(chain) && store.layer_dir(chain).join("diff").is_dir()
    }

    /// How an image is named in `affects`: its references, else its id.
    pub(crate) fn image_names(&self, id: &ImageId) -> Vec<String> {
        let mut names: Vec<String> = self
            .refs
            .iter()
            .filter(|(_, target)| *target == id)
            .map(|(name, _)| format!("image {name}"))
            .collect();
        if names.is_empty() {
            names.push(format!("image {}", id.short()));
        }
        names
    }

    /// The containers created from image `id`.
    pub(crate) fn container_names(&self, id: &ImageId) -> Vec<String> {
        self.containers
            .iter()
            .filter(|c| c.image_id == *id)
            .map(|c| format!("container {}", c.name))
            .collect()
    }

    /// The images using layer `chain` and the containers created from them.
    pub(crate) fn layer_users(&self, chain: &ChainId) -> Vec<String> {
        let mut out = Vec::new();
        let mut containers = Vec::new();
        for image in self.images.values() {
            if image.layers.iter().any(|l| l.chain_id == *chain) {
                out.extend(self.image_names(&image.id));
                containers.extend(self.container_names(&image.id));
            }
        }
        out.extend(containers);
        out
    }

    /// An image's names and the containers created from it.
    pub(crate) fn image_users(&self, id: &ImageId) -> Vec<String> {
        let mut out = self.image_names(id);
        out.extend(self.container_names(id));
        out
    }
}

//! `--repair`: removes what is broken so that the next pull fetches it again. Every removal is
//! decided again under the locks that a pull or container command takes, so that nothing a
//! concurrent command is making, and no layer that passes every check, is touched.

use std::collections::BTreeSet;

use super::images::image_file_problems;
use super::inventory::{Inventory, layer_record};
use super::layers::layer_problems;
use super::problem::{Fix, Problem};
use super::scan::link_problem;
use crate::id::ChainId;
use crate::store::{ContainerRecord, LeaseKind, Store, StoreError, fsutil};

/// What `--repair` did about one problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Removed; the next pull fetches what is needed again.
    Removed,
    /// Nothing to remove: the detail says what to do.
    Left,
    /// Another strata process is working on it: left alone.
    Busy,
    /// Fine by the time it was looked at again.
    Passes,
}

impl Store {
    /// Repairs what [`Store::check`] found, in its order; returns what was done about each
    /// problem. Run [`Store::check`] again to see what remains. Holds the exclusive store
    /// lease (see `lease`): no pull or container creation relies on a layer it removes.
    pub fn repair(&self, problems: &[Problem]) -> Result<Vec<Outcome>, StoreError> {
        let out = {
            let _lease = self.lease(LeaseKind::Exclusive)?;
            let _lock = self.metadata_lock()?;
            let mut done = BTreeSet::new();
            let mut out = Vec::with_capacity(problems.len());
            for p in problems {
                let outcome = if done.contains(&p.fix) {
                    Outcome::Removed
                } else {
                    let outcome = self.fix(&p.fix)?;
                    if outcome == Outcome::Removed {
                        done.insert(p.fix.clone());
                    }
                    outcome
                };
                out.push(outcome);
            }
            out
        };
        // What the removals moved into the trash goes once the store is free again.
        self.empty_trash()?;
        Ok(out)
    }

    fn fix(&self, fix: &Fix) -> Result<Outcome, StoreError> {
        match fix {
            Fix::None => Ok(Outcome::Left),
            Fix::RemoveLayer(chain) => {
                let Some(_guard) = self.try_lock_layer(chain)? else {
                    return Ok(Outcome::Busy);
                };
                if !self.layer_fails(chain)? {
                    return Ok(Outcome::Passes);
                }
                self.remove_layer(chain)?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveChangedLayer(chain) => {
                let Some(_guard) = self.try_lock_layer(chain)? else {
                    return Ok(Outcome::Busy);
                };
                if !self.content_fails(chain)? {
                    return Ok(Outcome::Passes);
                }
                self.remove_layer(chain)?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveOrphanDir(path) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let _guard = match ChainId::from_hex(&name) {
                    Some(chain) => match self.try_lock_layer(&chain)? {
                        Some(guard) => Some(guard),
                        None => return Ok(Outcome::Busy),
                    },
                    None => None,
                };
                let inv = Inventory::load(self, &mut Vec::new())?;
                let base = name.strip_suffix("-init").unwrap_or(&name);
                let owned = inv.container_ids.contains(base)
                    || ChainId::from_hex(&name).is_some_and(|c| inv.layers.contains_key(&c));
                if owned {
                    return Ok(Outcome::Passes);
                }
                fsutil::remove_tree(path)?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveLink(path) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let inv = Inventory::load(self, &mut Vec::new())?;
                if link_problem(self, &inv, &name)?.is_none() {
                    return Ok(Outcome::Passes);
                }
                fsutil::remove_file(path)?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveNameEntry(name) => {
                let Some(name) = name.to_str() else {
                    return Ok(Outcome::Left);
                };
                // Under the metadata lock no creation is half-way: decided again here.
                let owned = match self.named(name)? {
                    Some(id) => {
                        fsutil::read_json::<ContainerRecord>(&self.container_record_path(&id))?
                            .is_some_and(|c| c.name == name)
                    }
                    None => false,
                };
                if owned {
                    return Ok(Outcome::Passes);
                }
                fsutil::remove_file(&self.names_dir().join(name))?;
                Ok(Outcome::Removed)
            }
            Fix::AddNameEntry(name, id) => {
                if self.named(name)?.is_some() {
                    return Ok(Outcome::Left);
                }
                let entry = self.names_dir().join(name);
                std::os::unix::fs::symlink(id, &entry)
                    .map_err(crate::store::io_err("repairing the name index", &entry))?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveTempFile(path) => {
                fsutil::remove_file(path)?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveTrash(path) => {
                crate::store::trash::remove_entry(path)?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveImage(id) => {
                let mut problems = Vec::new();
                let inv = Inventory::load(self, &mut problems)?;
                let fails = problems.iter().any(|p| p.fix == *fix)
                    || inv
                        .images
                        .get(id)
                        .is_some_and(|image| !image_file_problems(self, image).is_empty());
                if !fails {
                    return Ok(Outcome::Passes);
                }
                fsutil::remove_tree(&self.image_dir(id))?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveStaging(chain) => {
                let Some(_guard) = self.try_lock_layer(chain)? else {
                    return Ok(Outcome::Busy);
                };
                fsutil::remove_tree(&self.staging_dir().join(chain.hex()))?;
                Ok(Outcome::Removed)
            }
            Fix::RemoveUnsynced(chain) => {
                let Some(_guard) = self.try_lock_layer(chain)? else {
                    return Ok(Outcome::Busy);
                };
                self.remove_layer(chain)?;
                fsutil::remove_file(&self.unsynced_marker(chain))?;
                Ok(Outcome::Removed)
            }
        }
    }

    /// Whether the layer `chain` fails a check that removing it fixes (its record read again).
    fn layer_fails(&self, chain: &ChainId) -> Result<bool, StoreError> {
        let record = match layer_record(self, chain)? {
            Err(_) => return Ok(true),
            Ok(None) => return Ok(self.layer_dir(chain).exists()),
            Ok(Some(record)) => record,
        };
        let inv = Inventory::load(self, &mut Vec::new())?;
        Ok(layer_problems(self, &record, &inv.layers)
            .iter()
            .any(|p| p.fix != Fix::None))
    }
}

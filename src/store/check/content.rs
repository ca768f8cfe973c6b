//! `check --content`: each layer's tree walked again (every file read) and compared with the
//! content digest recorded when it was unpacked; what changed is named from the listing kept
//! next to the record.

use super::inventory::{Inventory, layer_record};
use super::problem::{Fix, Problem, ProblemKind};
use crate::archive::TreeListing;
use crate::id::ChainId;
use crate::store::{LayerRecord, Store, StoreError};

/// At most this many changed paths are named in a problem's detail.
const SHOWN: usize = 10;

impl Store {
    /// Compares every present layer's files with its recorded content digest (see the module
    /// documentation): a problem for each changed layer, a notice for each layer pulled by an
    /// older strata (no digest). Layers a pull holds are skipped.
    pub fn check_content(&self) -> Result<Vec<Problem>, StoreError> {
        let inv = Inventory::load(self, &mut Vec::new())?;
        let mut problems = Vec::new();
        for record in inv.layers.values() {
            let Some(_guard) = self.try_lock_layer(&record.chain_id)? else {
                continue;
            };
            if !self.layer_dir(&record.chain_id).join("diff").is_dir() {
                // The structural check reports it.
                continue;
            }
            if let Some(mut p) = self.content_problem(record)? {
                p.affects = inv.layer_users(&record.chain_id);
                problems.push(p);
            }
        }
        Ok(problems)
    }

    /// The content problem of one layer, if any.
    fn content_problem(&self, record: &LayerRecord) -> Result<Option<Problem>, StoreError> {
        let chain = &record.chain_id;
        let Some(expected) = &record.content_digest else {
            return Ok(Some(Problem::new(
                ProblemKind::NoContentDigest,
                chain.to_string(),
                "no content digest recorded (pulled by an older strata, or without --content-digest)",
            )));
        };
        let changed = |detail: String| {
            Some(
                Problem::new(ProblemKind::Content, chain.to_string(), detail)
                    .fix(Fix::RemoveChangedLayer(chain.clone())),
            )
        };
        let now = match TreeListing::of_dir(&self.layer_dir(chain).join("diff"), None) {
            Ok(now) => now,
            Err(e) => return Ok(changed(format!("its files cannot be read: {e}"))),
        };
        if now.digest() == *expected {
            return Ok(None);
        }
        let detail = match self.layer_listing(chain)? {
            Some(recorded) if recorded.digest() == *expected => {
                let changes = recorded.changes(&now);
                let mut shown: Vec<String> = changes
                    .iter()
                    .take(SHOWN)
                    .map(ToString::to_string)
                    .collect();
                if changes.len() > SHOWN {
                    shown.push(format!("and {} more", changes.len() - SHOWN));
                }
                format!("files changed since it was unpacked: {}", shown.join(", "))
            }
            _ => "files changed since it was unpacked (which ones is not known: its listing \
                  is missing)"
                .to_string(),
        };
        Ok(changed(detail))
    }

    /// Whether layer `chain` still fails its content check (for `--repair`, under its lock).
    pub(super) fn content_fails(&self, chain: &ChainId) -> Result<bool, StoreError> {
        match layer_record(self, chain)? {
            Ok(Some(record)) => Ok(self
                .content_problem(&record)?
                .is_some_and(|p| p.kind == ProblemKind::Content)),
            _ => Ok(false),
        }
    }
}

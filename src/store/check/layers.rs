//! The checks of one layer: record, `link`, `l/` link, `lower`, parent and `work/` agree.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::problem::{Fix, Problem, ProblemKind};
use crate::id::ChainId;
use crate::store::{LayerRecord, Store, layout};

/// The problems of the layer of `record`, each fixed by removing the layer, except a missing
/// parent (the next pull of an image using this layer fetches the parent again).
pub(crate) fn layer_problems(
    store: &Store,
    record: &LayerRecord,
    records: &BTreeMap<ChainId, LayerRecord>,
) -> Vec<Problem> {
    let chain = &record.chain_id;
    let dir = store.layer_dir(chain);
    let broken = |kind, detail: String| {
        Problem::new(kind, chain.to_string(), detail).fix(Fix::RemoveLayer(chain.clone()))
    };
    if !dir.join("diff").is_dir() {
        let what = if dir.is_dir() {
            "its diff/"
        } else {
            "its directory"
        };
        return vec![broken(
            ProblemKind::OrphanRecord,
            format!("the record is there but {what} is missing"),
        )];
    }
    let mut out = Vec::new();
    let expected_link = layout::short_link(chain);
    if record.link != expected_link {
        out.push(broken(
            ProblemKind::LayerRecord,
            format!("the record's link {} is not {expected_link}", record.link),
        ));
    }
    match fs::read_to_string(dir.join("link")) {
        Ok(link) if link == record.link => {}
        Ok(link) => out.push(broken(
            ProblemKind::LinkFile,
            format!("link file holds {link:?}, the record {:?}", record.link),
        )),
        Err(e) => out.push(broken(ProblemKind::LinkFile, format!("link file: {e}"))),
    }
    let short = store.links_dir().join(&record.link);
    let target = format!("../{}/diff", chain.hex());
    match fs::read_link(&short) {
        Ok(t) if t == Path::new(&target) => {}
        Ok(t) => out.push(broken(
            ProblemKind::ShortLink,
            format!("l/{} points at {}, not {target}", record.link, t.display()),
        )),
        Err(e) => out.push(broken(
            ProblemKind::ShortLink,
            format!("l/{}: {e}", record.link),
        )),
    }
    let lower = fs::read_to_string(dir.join("lower")).ok();
    match &record.parent {
        None => {
            if lower.is_some() {
                out.push(broken(
                    ProblemKind::Lower,
                    "a bottom layer has a lower file".to_string(),
                ));
            }
        }
        Some(parent) => {
            if !dir.join("work").is_dir() {
                out.push(broken(ProblemKind::Work, "work/ is missing".to_string()));
            }
            match ancestors(parent, records) {
                Some(ancestors) => {
                    let expected = layout::lower_value(&ancestors);
                    if lower.as_deref() != Some(expected.as_str()) {
                        out.push(broken(
                            ProblemKind::Lower,
                            format!("lower holds {lower:?}, expected {expected:?}"),
                        ));
                    }
                }
                None => out.push(Problem::new(
                    ProblemKind::Parent,
                    chain.to_string(),
                    format!(
                        "parent layer {parent} (or one below it) has no record: the next pull \
                         of an image using this layer fetches it again"
                    ),
                )),
            }
        }
    }
    out
}

/// `parent` and its ancestors, nearest first; none when a record on the way is missing.
fn ancestors(parent: &ChainId, records: &BTreeMap<ChainId, LayerRecord>) -> Option<Vec<ChainId>> {
    let mut out = vec![parent.clone()];
    let mut next = records.get(parent)?.parent.clone();
    while let Some(chain) = next {
        // A loop of parents: the records are broken.
        if out.len() > records.len() {
            return None;
        }
        next = records.get(&chain)?.parent.clone();
        out.push(chain);
    }
    Some(out)
}

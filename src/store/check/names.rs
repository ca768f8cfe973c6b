//! The container name index agrees with the container records: every entry names a
//! container that has that name, and every container has its entry (a store without the
//! index yet has nothing to check).

use std::path::PathBuf;

use super::inventory::{Inventory, names};
use super::problem::{Fix, Problem, ProblemKind};
use crate::store::{Store, StoreError};

/// Entries of no container (a killed creation or removal), containers without their entry.
pub(crate) fn name_index(
    store: &Store,
    inv: &Inventory,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    let dir = store.names_dir();
    if !dir.is_dir() {
        return Ok(());
    }
    for name in names(&dir)? {
        let owner = store.named(&name)?;
        let owned = owner.as_deref().is_some_and(|id| {
            inv.container_ids.contains(id)
                && inv.containers.iter().all(|c| c.id != id || c.name == name)
        });
        if !owned {
            problems.push(
                Problem::new(
                    ProblemKind::NameIndex,
                    format!("container-names/{name}"),
                    "a name index entry of no container (left by a killed creation or \
                     removal)",
                )
                .fix(Fix::RemoveNameEntry(PathBuf::from(&name))),
            );
        }
    }
    for c in &inv.containers {
        if store.named(&c.name)?.as_deref() != Some(c.id.as_str()) {
            let mut p = Problem::new(
                ProblemKind::NameIndex,
                format!("container-names/{}", c.name),
                "the container's name is missing from the name index",
            )
            .fix(Fix::AddNameEntry(c.name.clone(), c.id.clone()));
            p.affects = vec![format!("container {}", c.name)];
            problems.push(p);
        }
    }
    Ok(())
}

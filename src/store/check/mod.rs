//! `strata check`: whether the store is consistent, as `podman system check` does for its
//! store, and `--repair`, which removes what is broken so that the next pull fetches it again.
//!
//! Checked (`scan` runs them): every layer record, `link` file, `l/` link, `lower` file,
//! parent and `diff/` agree (`layers`); no directory of `overlay2/` belongs to nothing, no `l/`
//! entry dangles or is nobody's short link (`scan`); images' manifests and configs match their
//! digests and their layers are present, references point at images (`images`); containers'
//! images and layers are present (`containers`); leftovers of killed commands: staging
//! directories nobody unpacks into, layers of an earlier boot never synced, trash entries,
//! temporary files of atomic writes (`leftovers`); the container name index agrees with the
//! records (`names`). Records that cannot be read are problems too (`inventory`). Each [`Problem`]
//! names the images and containers it affects.
//!
//! Layers whose lock a pull holds are not judged (their files are in flux); the check holds
//! the metadata lock, so no container is created or removed meanwhile. `--repair` decides each
//! removal again under the same locks and never removes a layer that passes every check.
//! A container whose layers are gone cannot be repaired: the problem says so.
//!
//! [`Store::check_content`] (`--content`) goes beyond Docker, which never looks at a layer
//! again once unpacked: it reads every layer's files and compares them with the content
//! digest recorded when the layer was unpacked (`content`).

mod containers;
mod content;
mod images;
mod inventory;
mod layers;
mod leftovers;
mod names;
mod problem;
mod repair;
mod scan;

pub use problem::{Problem, ProblemKind};
pub use repair::Outcome;

use crate::store::{Store, StoreError};

impl Store {
    /// Checks the store (see the module documentation); no problems when it is consistent.
    pub fn check(&self) -> Result<Vec<Problem>, StoreError> {
        let _lock = self.metadata_lock()?;
        let mut problems = Vec::new();
        let inv = inventory::Inventory::load(self, &mut problems)?;
        scan::scan(self, &inv, &mut problems)?;
        Ok(problems)
    }
}

#[cfg(test)]
mod tests;

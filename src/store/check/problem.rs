//! What `check` finds: one [`Problem`] per broken object, with what it affects and what
//! `--repair` does about it.

use std::path::PathBuf;

use serde::Serialize;

use crate::id::{ChainId, ImageId};

/// The kinds of problems `check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A layer record that cannot be read, or names another layer than its file.
    LayerRecord,
    /// A layer record whose directory or `diff/` is missing.
    OrphanRecord,
    /// A layer's `link` file is missing or differs from its record.
    LinkFile,
    /// A layer's `l/<link>` is missing or points elsewhere.
    ShortLink,
    /// A layer's `lower` file differs from its parents' short links, nearest first.
    Lower,
    /// A layer's parent record is missing.
    Parent,
    /// A non-bottom layer without `work/`.
    Work,
    /// A directory in `overlay2/` that is neither a layer with a record nor a container's.
    OrphanDir,
    /// An `l/` entry whose target does not exist.
    DanglingLink,
    /// An `l/` entry that is not the short link of a layer or container.
    ForeignLink,
    /// An image record that cannot be read, or whose manifest or config is missing or does
    /// not match its digest.
    Image,
    /// An image that uses a layer that is not present.
    ImageLayer,
    /// A reference that points at no image.
    Tag,
    /// A container whose image or own layers are missing.
    Container,
    /// A container that uses a layer that is not present.
    ContainerLayer,
    /// A staging directory left by a killed pull.
    Staging,
    /// A layer committed without a sync in an earlier boot: it may be torn.
    Unsynced,
    /// An entry of the trash area left by a killed removal.
    Trash,
    /// The temporary file of an atomic write whose process is gone.
    TempFile,
    /// A container name index entry of no container, or a container without its entry.
    NameIndex,
    /// A layer whose files changed since it was unpacked (`--content`).
    Content,
    /// A layer pulled by an older strata, without a content digest (`--content`; a notice, not
    /// a failure).
    NoContentDigest,
}

impl ProblemKind {
    /// Whether this kind makes `check` fail (all but notices).
    pub fn is_failure(self) -> bool {
        self != Self::NoContentDigest
    }
}

/// One problem found by `check` (JSON: Docker's capitalised key style, as all of strata's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The object: a layer's chain ID, an image, a container, a path below the root.
    pub object: String,
    /// What exactly is wrong, and what to do when `--repair` cannot fix it.
    pub detail: String,
    /// The images and containers that use the object (`image NAME`, `container NAME`).
    pub affects: Vec<String>,
    /// What `--repair` does about it.
    #[serde(skip)]
    pub(crate) fix: Fix,
}

/// What `--repair` does about a problem.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Fix {
    /// Nothing it can do (the detail says what to do), or nothing needed until the next pull.
    None,
    /// Remove the layer (record, short link, directory) so that the next pull fetches it
    /// again; done only if it still fails a check under its lock.
    RemoveLayer(ChainId),
    /// Remove a layer whose files changed since it was unpacked; done only if they still
    /// differ under its lock.
    RemoveChangedLayer(ChainId),
    /// Remove a directory of `overlay2/` that belongs to nothing (under the metadata lock;
    /// under the layer's lock too when it is named like a layer).
    RemoveOrphanDir(PathBuf),
    /// Remove an `l/` entry that is no layer's or container's short link.
    RemoveLink(PathBuf),
    /// Remove an image's record and files (its references stay, for the next pull).
    RemoveImage(ImageId),
    /// Remove a staging directory whose layer lock nobody holds.
    RemoveStaging(ChainId),
    /// Remove a layer of an earlier boot that was never synced, with its marker.
    RemoveUnsynced(ChainId),
    /// Remove a trash entry (finishing a removal).
    RemoveTrash(PathBuf),
    /// Remove the temporary file of an atomic write whose process is gone.
    RemoveTempFile(PathBuf),
    /// Remove `container-names/<name>` if it still names no container of that name.
    RemoveNameEntry(PathBuf),
    /// Add the entry of container (name, id) if the name is still free.
    AddNameEntry(String, String),
}

impl Problem {
    /// A problem that `--repair` leaves alone (until [`Problem::fix`] says otherwise).
    pub(crate) fn new(
        kind: ProblemKind,
        object: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            object: object.into(),
            detail: detail.into(),
            affects: Vec::new(),
            fix: Fix::None,
        }
    }

    /// The problem, with what `--repair` does about it.
    pub(crate) fn fix(mut self, fix: Fix) -> Self {
        self.fix = fix;
        self
    }

    /// Whether `--repair` can do something about it.
    pub fn repairable(&self) -> bool {
        self.fix != Fix::None
    }
}

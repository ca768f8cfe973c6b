//! Which kind of strata made a store: root, or rootless (in a user namespace).
//!
//! The two record a layer differently: root stores the image's owners as they are and marks
//! opaque directories with `trusted.overlay.opaque`; rootless stores owners shifted into the
//! user's subordinate range and uses `user.overlay.opaque` (overlays mounted `userxattr`). A
//! store read by the other kind would be misread, so the kind is written in `<root>/kind`
//! when the store is created (before `overlay2/`, so a store killed while being made is
//! never taken for an old one) and every open compares it with this process's. A store from
//! before the file existed has `overlay2/` and no `kind`: root made it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{StoreError, io_err};
use super::fsutil;

/// The file, in the store's root.
pub const KIND_FILE: &str = "kind";

/// Who made a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Real root: owners as in the image, `trusted.overlay.*` markers.
    Root,
    /// A user in its user namespace: owners shifted, `user.overlay.*` markers.
    Rootless,
}

impl StoreKind {
    /// The kind this process makes and reads.
    pub fn current() -> StoreKind {
        if crate::rootless::is_rootless() {
            StoreKind::Rootless
        } else {
            StoreKind::Root
        }
    }

    /// The word written in the file and shown: `root` or `rootless`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Root => "root",
            StoreKind::Rootless => "rootless",
        }
    }

    fn parse(text: &str) -> Option<StoreKind> {
        match text.trim_end_matches('\n') {
            "root" => Some(StoreKind::Root),
            "rootless" => Some(StoreKind::Rootless),
            _ => None,
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind recorded in the store at `root`: its file, else root for a store that has
/// `overlay2/` (made before the file existed), else `None` (no store yet).
pub fn recorded(root: &Path) -> Result<Option<StoreKind>, StoreError> {
    let path = root.join(KIND_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => StoreKind::parse(&text)
            .map(Some)
            .ok_or_else(|| StoreError::BadKind {
                path,
                content: text.trim_end().chars().take(40).collect(),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Ok(root.join("overlay2").is_dir().then_some(StoreKind::Root))
        }
        Err(e) => Err(io_err("reading", &path)(e)),
    }
}

/// Makes sure the store at `root` (an existing directory) is of kind `want`: records it in a
/// new store, refuses a store of the other kind.
pub(super) fn settle(root: &Path, want: StoreKind) -> Result<(), StoreError> {
    match recorded(root)? {
        Some(kind) if kind == want => Ok(()),
        Some(kind) => Err(StoreError::KindMismatch {
            root: root.to_path_buf(),
            store: kind,
            process: want,
        }),
        None => {
            let line = format!("{want}\n");
            fsutil::write_atomic(&root.join(KIND_FILE), line.as_bytes(), 0o644)
        }
    }
}

/// The path of the kind file of the store at `root`.
pub fn kind_path(root: &Path) -> PathBuf {
    root.join(KIND_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_records_its_kind_and_keeps_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert_eq!(recorded(root).unwrap(), None);
        settle(root, StoreKind::Rootless).unwrap();
        assert_eq!(
            std::fs::read_to_string(kind_path(root)).unwrap(),
            "rootless\n"
        );
        std::fs::create_dir(root.join("overlay2")).unwrap();
        settle(root, StoreKind::Rootless).unwrap();
        assert_eq!(recorded(root).unwrap(), Some(StoreKind::Rootless));
    }

    #[test]
    fn the_other_kind_is_refused_naming_both() {
        let tmp = tempfile::tempdir().unwrap();
        settle(tmp.path(), StoreKind::Root).unwrap();
        let err = settle(tmp.path(), StoreKind::Rootless)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("made by a root strata") && err.contains("this strata runs rootless"),
            "{err}"
        );
    }

    #[test]
    fn an_old_store_without_the_file_is_roots() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("overlay2")).unwrap();
        assert_eq!(recorded(tmp.path()).unwrap(), Some(StoreKind::Root));
        settle(tmp.path(), StoreKind::Root).unwrap();
        assert!(
            !kind_path(tmp.path()).exists(),
            "an old store is left as it is"
        );
        assert!(settle(tmp.path(), StoreKind::Rootless).is_err());
    }

    #[test]
    fn an_unknown_kind_is_an_error_not_a_guess() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(kind_path(tmp.path()), "podman\n").unwrap();
        let err = recorded(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("\"podman\""), "{err}");
        assert!(settle(tmp.path(), StoreKind::Root).is_err());
    }
}

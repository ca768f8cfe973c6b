//! The check of the store's backing filesystem, made when a root is opened (as dockerd does at
//! start): overlay2 needs directory entries that carry their type (d_type; xfs made with
//! `ftype=0` has none) and cannot put its upper layer on overlayfs itself (strata run inside a
//! container on its root filesystem). Failing here names the filesystem instead of leaving a
//! mount error for later.

use std::path::Path;

use rustix::fs::{Dir, FileType, Mode, OFlags};

use super::error::StoreError;

/// `statfs` magic numbers of the filesystems given a name (Docker's names, `extfs` for ext2-4).
const NAMES: [(i64, &str); 12] = [
    (0xEF53, "extfs"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x794C_7630, "overlayfs"),
    (0x2FC1_2FC1, "zfs"),
    (0x6969, "nfs"),
    (0xF2F5_2010, "f2fs"),
    (0x6573_5546, "fuse"),
    (0x7275, "romfs"),
    (0x7371_7368, "squashfs"),
    (0xF15F, "ecryptfs"),
];

/// The name [`BackingFilesystem::name`] has for overlayfs.
const OVERLAYFS: &str = "overlayfs";

/// The filesystem a store's root is on, as `strata info` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingFilesystem {
    /// Docker's name for it (`extfs`, `xfs`, `btrfs`, `tmpfs`, `overlayfs`, ...), else
    /// `unknown (0x<magic>)`.
    pub name: String,
    /// Whether its directory entries carry their file type (d_type).
    pub supports_d_type: bool,
}

impl BackingFilesystem {
    /// Why overlay2 cannot use it, if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        if self.name == OVERLAYFS {
            Some("overlayfs cannot be the upper layer of another overlay mount")
        } else if !self.supports_d_type {
            Some(
                "it does not record file types in directory entries (d_type; xfs needs ftype=1, ext4 the filetype feature)",
            )
        } else {
            None
        }
    }
}

/// What `root` (an existing directory with subdirectories, as [`super::Store::open`] leaves
/// it) is on. d_type is read from the entries `root` already has, so nothing is written.
pub fn backing_filesystem(root: &Path) -> Result<BackingFilesystem, StoreError> {
    let io_err = |source: rustix::io::Errno| StoreError::Io {
        what: "cannot examine the store's filesystem at",
        path: root.to_path_buf(),
        source: source.into(),
    };
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    let magic = rustix::fs::fstatfs(&fd).map_err(io_err)?.f_type as i64;
    let name = NAMES.iter().find(|(m, _)| *m == magic).map_or_else(
        || format!("unknown (0x{magic:x})"),
        |(_, n)| (*n).to_string(),
    );
    let mut supports_d_type = true;
    for entry in Dir::read_from(&fd).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if entry.file_name().to_bytes().starts_with(b".") {
            continue;
        }
        if entry.file_type() == FileType::Unknown {
            supports_d_type = false;
            break;
        }
    }
    Ok(BackingFilesystem {
        name,
        supports_d_type,
    })
}

/// Fails with [`StoreError::UnsupportedFilesystem`] when overlay2 cannot use `root`'s
/// filesystem.
pub(crate) fn check(root: &Path) -> Result<(), StoreError> {
    let fs = backing_filesystem(root)?;
    match fs.problem() {
        Some(reason) => Err(StoreError::UnsupportedFilesystem {
            root: root.to_path_buf(),
            filesystem: fs.name,
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_s_filesystem_is_named_and_has_d_type() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let fs = backing_filesystem(dir.path()).unwrap();
        assert!(!fs.name.is_empty());
        assert!(fs.supports_d_type, "{fs:?}");
        assert_eq!(fs.problem(), None);
    }

    #[test]
    fn overlayfs_and_missing_d_type_are_refused_with_a_reason() {
        let overlay = BackingFilesystem {
            name: OVERLAYFS.into(),
            supports_d_type: true,
        };
        assert!(overlay.problem().is_some_and(|r| r.contains("overlayfs")));
        let no_d_type = BackingFilesystem {
            name: "xfs".into(),
            supports_d_type: false,
        };
        assert!(no_d_type.problem().is_some_and(|r| r.contains("ftype=1")));
    }
}

//! Small filesystem helpers: directories with exact modes, atomic writes.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::error::{StoreError, io_err};
use crate::sys;
use crate::sys::atomic::Durability;
use crate::sys::inode_flags;

/// Creates `path` (and parents) if missing and sets its mode exactly (umask-free).
pub(crate) fn mkdir_mode(path: &Path, mode: u32) -> Result<(), StoreError> {
    mkdir_mode_as(path, mode, "creating")
}

/// [`mkdir_mode`], with `what` saying what failed (`cannot create store directory`).
pub(crate) fn mkdir_mode_as(path: &Path, mode: u32, what: &'static str) -> Result<(), StoreError> {
    let create = || fs::DirBuilder::new().mode(mode).create(path);
    let created = match create() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Parents first, then one more try only: a filesystem may refuse the directory
            // itself with ENOENT (procfs does), which must fail here rather than loop.
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err(what, parent))?;
            }
            create()
        }
        r => r,
    };
    match created {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => return Ok(()),
        Err(e) => return Err(io_err(what, path)(e)),
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(what, path))
}

/// Writes `bytes` to `path` atomically (see [`sys::atomic`]) with mode `mode` exactly. No fsync:
/// the store's files are made durable by the pull's `syncfs` (or knowingly not, `--no-sync`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    sys::atomic::write_file(path, bytes, mode, Durability::NoSync)
        .map_err(|e| io_err(e.step.as_str(), &e.path)(e.source))
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes, 0o600)
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading", path)(e)),
    }
}

/// Removes a file (or symlink) if it exists.
pub(crate) fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", path)(e)),
        _ => Ok(()),
    }
}

/// Removes a directory tree if it exists (std's remove_dir_all does not follow symlinks).
pub(crate) fn remove_tree(path: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path)(e)),
    }
}

/// Asks ext2/3/4 to spread the subdirectories of `dir` over block groups (`FS_TOPDIR_FL`, as
/// for the filesystem's root): each layer unpacked in `dir` then gets inodes of its own group.
/// Layers unpacked side by side in one group share inode-table blocks, and ext4 reads such a
/// block from disk when another layer's new inode is in it: 10 ms a read while the writeback of
/// a synced pull keeps the disk busy, with every unpacking thread waiting. A hint only: other
/// filesystems refuse the flag, and nothing depends on it.
pub(crate) fn spread_subdirs(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = inode_flags::set_topdir(&handle);
    }
}

#[cfg(test)]
mod tests {
    use rustix::fs::{IFlags, ioctl_getflags};

    use super::*;
    use crate::store::Store;

    /// ext2, ext3 and ext4 share this magic number.
    const EXT_MAGIC: i64 = 0xEF53;

    #[test]
    fn staging_spreads_layers_over_block_groups_on_ext4() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let staging = fs::File::open(store.staging_dir()).unwrap();
        let on_ext = rustix::fs::fstatfs(&staging).unwrap().f_type as i64 == EXT_MAGIC;
        if on_ext {
            let flags = ioctl_getflags(&staging).unwrap();
            assert!(flags.contains(IFlags::TOPDIR), "{flags:?}");
        }
        // Opening again keeps the flag and fails on no filesystem.
        Store::open(root.path()).unwrap();
        if on_ext {
            assert!(ioctl_getflags(&staging).unwrap().contains(IFlags::TOPDIR));
        }
    }

    #[test]
    fn mkdir_creates_parents_with_the_exact_mode() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/c");
        mkdir_mode(&dir, 0o710).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
            0o710
        );
        mkdir_mode(&dir, 0o710).unwrap();
    }

    #[test]
    fn mkdir_where_the_filesystem_refuses_fails_clearly() {
        // procfs answers ENOENT to mkdir although the parent exists: this recursed forever.
        if !Path::new("/proc/self").is_dir() {
            return;
        }
        let err = mkdir_mode_as(
            Path::new("/proc/strata-test"),
            0o711,
            "cannot create store directory",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot create store directory /proc/strata-test: "),
            "{text}"
        );
        let err = Store::open(Path::new("/proc/strata-test/store")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot create store directory /proc/strata-test: "),
            "{err}"
        );
    }

    #[test]
    fn spreading_a_missing_dir_is_a_no_op() {
        let root = tempfile::tempdir().unwrap();
        spread_subdirs(&root.path().join("missing"));
        assert!(!root.path().join("missing").exists());
    }
}

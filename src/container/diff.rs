//! What a container changed (`docker diff`): the paths of its writable layer (the upper dir),
//! as `A` (added), `C` (changed) or `D` (deleted), by the rules of dockerd 20.10's overlay2
//! differ, so that strata prints what `docker diff` prints for the same layers:
//!
//! - The upper dir is walked depth first, names in byte order (Go's `filepath.Walk`).
//! - A whiteout (0/0 character device) is `D`; so is a directory marked opaque
//!   (`trusted.overlay.opaque=y`): what the lower layers had there is gone. Its own entries
//!   follow as `A`, or `C` where a lower layer has the same path.
//! - Any other path is `C` when a lower layer (the init layer included) has it, else `A`. A
//!   directory whose size, mode and mtime equal the nearest lower one's is not listed (it was
//!   only copied up), but its entries are.
//! - Before an `A` or `D`, its parent directory is listed as `C` unless it was listed already
//!   (the root never is).
//!
//! Differences from Docker, both for confinement: lower layers are looked up without following
//! any symlink (Docker's `os.Stat` follows them, out of the layer), and the init layer's own
//! files (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/etc/mtab`, `/dev/console`,
//! `/.dockerenv`), which Docker bind-mounts so that they never reach the upper dir, are not
//! listed when a container wrote them. The walk uses directory fds only and never follows a
//! symlink of the container.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use serde::Serialize;

use super::Container;
use crate::store::StoreError;
use crate::sys::openat2::openat2;
use crate::sys::xattr::{self, Target};

/// The init layer's files: a container's writes to them are not its changes (see the module
/// documentation).
pub const HIDDEN_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev/console",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
];

/// A directory opened for listing and for its xattrs, never through a symlink.
const DIR_READ: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How a path changed, with Docker's numbers (`Kind` in the API's JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "u8")]
pub enum ChangeKind {
    /// `C` (0): there before, changed.
    Modified,
    /// `A` (1): new.
    Added,
    /// `D` (2): removed.
    Deleted,
}

impl ChangeKind {
    /// Docker's letter: `C`, `A` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

impl From<ChangeKind> for u8 {
    fn from(kind: ChangeKind) -> u8 {
        match kind {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

/// One changed path, as Docker's API returns it (`{"Path": "/etc", "Kind": 0}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Change {
    /// Absolute path in the container (`/etc/passwd`); bytes that are not UTF-8 are replaced.
    pub path: String,
    /// How it changed.
    pub kind: ChangeKind,
}

/// Why the changes could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The container's directories could not be found.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the upper dir or a lower layer failed.
    #[error("container {name}: {op} {}: {source}", path.display())]
    Io {
        /// The container's name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The path concerned (in the container).
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl Container {
    /// The changes of the container's writable layer against its image, in Docker's order
    /// (see the module documentation). Works mounted or not: only the layer directories are
    /// read.
    pub fn changes(&self) -> Result<Vec<Change>, DiffError> {
        let dirs = self.store().container_dirs(self.record())?;
        let err = |op: &'static str, path: &[u8], source: Errno| DiffError::Io {
            name: self.name().to_string(),
            op,
            path: PathBuf::from(show(path)),
            source: source.into(),
        };
        let lowers = dirs
            .lower
            .iter()
            .map(|dir| rfs::open(dir, DIR_READ, Mode::empty()).map_err(|e| err("opening", b"", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let root =
            rfs::open(&dirs.upper, DIR_READ, Mode::empty()).map_err(|e| err("opening", b"/", e))?;
        let mut differ = Differ {
            lowers,
            changes: Vec::new(),
            changed_dirs: std::collections::HashSet::new(),
        };
        differ
            .walk(root)
            .map_err(|(op, path, e)| err(op, &path, e))?;
        let hidden = |c: &Change| HIDDEN_PATHS.contains(&c.path.as_str());
        Ok(differ.changes.into_iter().filter(|c| !hidden(c)).collect())
    }
}

/// A failure: what was being done, the path (absolute in the container), the errno.
type WalkError = (&'static str, Vec<u8>, Errno);

struct Differ {
    /// The lower layers' roots, nearest first.
    lowers: Vec<OwnedFd>,
    changes: Vec<Change>,
    /// Directories listed already, or whose entries were (Docker's `changedDirs`).
    changed_dirs: std::collections::HashSet<Vec<u8>>,
}

/// A directory being walked: its fd, its absolute path, its entries still to visit (sorted,
/// last first).
struct Level {
    fd: OwnedFd,
    path: Vec<u8>,
    todo: Vec<Vec<u8>>,
}

impl Differ {
    fn walk(&mut self, root: OwnedFd) -> Result<(), WalkError> {
        let mut stack = vec![level(root, b"/".to_vec())?];
        while let Some(top) = stack.last_mut() {
            let Some(name) = top.todo.pop() else {
                stack.pop();
                continue;
            };
            let path = join(&top.path, &name);
            if let Some(fd) = self.visit(top.fd.as_fd(), &name, &path)? {
                stack.push(level(fd, path)?);
            }
        }
        Ok(())
    }

    /// Records the change of one entry; returns the fd of a directory to walk into.
    fn visit(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
    ) -> Result<Option<OwnedFd>, WalkError> {
        let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| ("inspecting", path.to_vec(), e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let dir = if ft == FileType::Directory {
            Some(
                rfs::openat(parent, name, DIR_READ, Mode::empty())
                    .map_err(|e| ("opening", path.to_vec(), e))?,
            )
        } else {
            None
        };
        let deleted = match &dir {
            Some(fd) => {
                is_opaque(fd.as_fd()).map_err(|e| ("reading xattrs of", path.to_vec(), e))?
            }
            None => ft == FileType::CharacterDevice && st.st_rdev == 0,
        };
        let kind = if deleted {
            ChangeKind::Deleted
        } else {
            match self.lower_stat(path)? {
                None => ChangeKind::Added,
                Some(lower) if dir.is_some() && same_dir(&st, &lower) => return Ok(dir),
                Some(_) => ChangeKind::Modified,
            }
        };
        if dir.is_some() {
            self.changed_dirs.insert(path.to_vec());
        }
        if kind != ChangeKind::Modified {
            let parent = parent_of(path);
            if parent != b"/" && self.changed_dirs.insert(parent.to_vec()) {
                self.push(parent, ChangeKind::Modified);
            }
        }
        self.push(path, kind);
        Ok(dir)
    }

    fn push(&mut self, path: &[u8], kind: ChangeKind) {
        self.changes.push(Change {
            path: show(path),
            kind,
        });
    }

    /// The path in the nearest lower layer that has it (no symlink followed on the way).
    fn lower_stat(&self, path: &[u8]) -> Result<Option<Stat>, WalkError> {
        let rel = &path[1..];
        for layer in &self.lowers {
            let found = openat2(
                layer,
                rel,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
            );
            match found {
                Ok(fd) => {
                    let st = rfs::fstat(&fd).map_err(|e| ("inspecting", path.to_vec(), e))?;
                    return Ok(Some(st));
                }
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => {}
                Err(e) => return Err(("looking up in a lower layer", path.to_vec(), e)),
            }
        }
        Ok(None)
    }
}

/// A directory's level: its entries sorted by name bytes, to be popped first to last.
fn level(fd: OwnedFd, path: Vec<u8>) -> Result<Level, WalkError> {
    let mut todo = Vec::new();
    for entry in Dir::read_from(&fd).map_err(|e| ("listing", path.clone(), e))? {
        let entry = entry.map_err(|e| ("listing", path.clone(), e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            todo.push(name.to_vec());
        }
    }
    todo.sort_unstable_by(|a, b| b.cmp(a));
    Ok(Level { fd, path, todo })
}

fn is_opaque(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    let value = xattr::get(Target::Fd(fd), c"trusted.overlay.opaque")?;
    Ok(value.as_deref() == Some(&b"y"[..]))
}

/// Docker's test for a directory only copied up: same size, mode and mtime (nanoseconds
/// ignored when either side has none).
fn same_dir(upper: &Stat, lower: &Stat) -> bool {
    FileType::from_raw_mode(lower.st_mode) == FileType::Directory
        && upper.st_size == lower.st_size
        && upper.st_mode == lower.st_mode
        && upper.st_mtime == lower.st_mtime
        && (upper.st_mtime_nsec == lower.st_mtime_nsec
            || upper.st_mtime_nsec == 0
            || lower.st_mtime_nsec == 0)
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = parent.to_vec();
    if path != b"/" {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"/",
        Some(i) => &path[..i],
    }
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_joins() {
        assert_eq!(parent_of(b"/etc"), b"/");
        assert_eq!(parent_of(b"/etc/passwd"), b"/etc");
        assert_eq!(join(b"/", b"etc"), b"/etc");
        assert_eq!(join(b"/etc", b"x"), b"/etc/x");
        assert_eq!(
            serde_json::to_string(&Change {
                path: "/etc".into(),
                kind: ChangeKind::Deleted
            })
            .unwrap(),
            r#"{"Path":"/etc","Kind":2}"#
        );
    }

    #[test]
    fn unchanged_dirs_compare_times_as_docker() {
        let tmp = tempfile::tempdir().unwrap();
        let a = rfs::stat(tmp.path()).unwrap();
        let mut b = rfs::stat(tmp.path()).unwrap();
        assert!(same_dir(&a, &b));
        b.st_mtime_nsec = 0;
        assert!(same_dir(&a, &b));
        b.st_mtime += 1;
        assert!(!same_dir(&a, &b));
    }
}

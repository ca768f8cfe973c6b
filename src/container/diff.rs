//! What a container changed (`docker diff`): the paths of its writable layer (the upper dir)
//! compared with its image (the lower layers, the init layer included), as `A` (added), `C`
//! (changed) or `D` (deleted). The set is what dockerd 20.10 lists on Debian (its "naive" differ,
//! which compares the image's tree with the container's; checked against a real dockerd in the
//! tests), computed from the layer directories without mounting anything:
//!
//! - A path the image does not have is `A` (and so is everything below a new directory).
//! - A path it has is `C` when its type, mode, owner or device numbers differ, or, for a
//!   non-directory, its size or mtime, or its `security.capability`. A directory whose
//!   entries changed is `C` too, listed before them.
//! - What the image had and the container removed is `D`: behind a whiteout, or, in an opaque
//!   directory (one removed and made again), every entry of the image's directory the
//!   container did not make again. Below a deleted directory nothing more is listed.
//!
//! Order: dockerd lists in Go's map order, which varies from run to run; strata lists depth
//! first in name order, each directory's `D`s after its other changes. Lower layers are looked
//! up as overlayfs does (a whiteout, or an opaque or non-directory ancestor, hides the layers
//! below) without following any symlink. The init layer's own files (`/etc/hosts`,
//! `/etc/hostname`, `/etc/resolv.conf`, `/etc/mtab`, `/dev/console`, `/.dockerenv`), which
//! Docker bind-mounts so that they never reach the upper dir, are not listed when a container
//! wrote them. The upper dir is read through directory fds only, never following a symlink of
//! the container.

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
    /// The changes of the container's writable layer against its image, in a fixed order
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
        };
        differ
            .walk(root)
            .map_err(|(op, path, e)| err(op, &path, e))?;
        Ok(differ.changes)
    }
}

/// A path as the image has it: its metadata and `security.capability`.
type Lower = (Stat, Option<Vec<u8>>);

/// A failure: what was being done, the path (absolute in the container), the errno.
type WalkError = (&'static str, Vec<u8>, Errno);

struct Differ {
    /// The lower layers' roots, nearest first.
    lowers: Vec<OwnedFd>,
    changes: Vec<Change>,
}

/// A directory of the upper dir being walked.
struct Level {
    fd: OwnedFd,
    path: Vec<u8>,
    /// Its entries still to visit (sorted, last first).
    todo: Vec<Vec<u8>>,
    /// Listed already (as `A` or `C`), or the root (never listed).
    listed: bool,
    /// The image's view of it is a directory: what it had there can be deleted.
    had_dir: bool,
    /// Opaque, or below an opaque or new directory: none of the image's entries show through.
    hides: bool,
}

impl Differ {
    fn walk(&mut self, root: OwnedFd) -> Result<(), WalkError> {
        let mut stack = vec![level(root, b"/".to_vec(), true, true, false)?];
        while let Some(top) = stack.last_mut() {
            let Some(name) = top.todo.pop() else {
                if let Some(done) = stack.pop() {
                    self.deleted(&mut stack, &done)?;
                }
                continue;
            };
            let path = join(&top.path, &name);
            let (hides, parent_had_dir) = (top.hides, top.had_dir);
            if HIDDEN_PATHS.contains(&show(&path).as_str()) {
                continue;
            }
            let parent = top.fd.as_fd();
            let st = rfs::statat(parent, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| ("inspecting", path.clone(), e))?;
            let ft = FileType::from_raw_mode(st.st_mode);
            if ft == FileType::CharacterDevice && st.st_rdev == 0 {
                // A whiteout: its `D` comes with its directory's deletions.
                continue;
            }
            let handle = rfs::openat(
                parent,
                name.as_slice(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| ("opening", path.clone(), e))?;
            let dir = if ft == FileType::Directory {
                Some(
                    rfs::openat(parent, name.as_slice(), DIR_READ, Mode::empty())
                        .map_err(|e| ("opening", path.clone(), e))?,
                )
            } else {
                None
            };
            let old = if parent_had_dir {
                self.lower_stat(&path)?
            } else {
                None
            };
            let kind = match &old {
                None => Some(ChangeKind::Added),
                Some((old_st, old_caps)) => {
                    let caps = capability(handle.as_fd())
                        .map_err(|e| ("reading xattrs of", path.clone(), e))?;
                    (stat_different(old_st, &st) || *old_caps != caps)
                        .then_some(ChangeKind::Modified)
                }
            };
            if let Some(kind) = kind {
                self.push_in(&mut stack, &path, kind);
            }
            let Some(fd) = dir else {
                continue;
            };
            let opaque =
                is_opaque(fd.as_fd()).map_err(|e| ("reading xattrs of", path.clone(), e))?;
            let had_dir = old
                .as_ref()
                .is_some_and(|(o, _)| FileType::from_raw_mode(o.st_mode) == FileType::Directory);
            let hides = hides || opaque || old.is_none();
            stack.push(level(fd, path, kind.is_some(), had_dir, hides)?);
        }
        Ok(())
    }

    /// Pushes a change, after a `C` for each directory above it not listed yet.
    fn push_in(&mut self, stack: &mut [Level], path: &[u8], kind: ChangeKind) {
        for level in stack.iter_mut().filter(|l| !l.listed) {
            level.listed = true;
            self.changes.push(Change {
                path: show(&level.path),
                kind: ChangeKind::Modified,
            });
        }
        self.changes.push(Change {
            path: show(path),
            kind,
        });
    }

    /// The `D`s of a directory walked, after its other changes: what the image had there that
    /// is gone (behind a whiteout, or hidden by an opaque directory).
    fn deleted(&mut self, stack: &mut [Level], done: &Level) -> Result<(), WalkError> {
        if !done.had_dir {
            return Ok(());
        }
        let upper = names(done.fd.as_fd(), &done.path)?;
        let mut gone = Vec::new();
        for name in self.lower_names(&done.path)? {
            let path = join(&done.path, &name);
            if HIDDEN_PATHS.contains(&show(&path).as_str()) {
                continue;
            }
            let removed = match upper.iter().find(|(n, _)| *n == name) {
                Some((_, whiteout)) => *whiteout,
                None => done.hides,
            };
            if removed && self.lower_stat(&path)?.is_some() {
                gone.push(path);
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        if !done.listed {
            self.push_in(stack, &done.path, ChangeKind::Modified);
        }
        for path in gone {
            self.changes.push(Change {
                path: show(&path),
                kind: ChangeKind::Deleted,
            });
        }
        Ok(())
    }

    /// The path as the image shows it (the lower layers merged, nearest first, as overlayfs
    /// looks it up: a whiteout, or an opaque or non-directory ancestor, hides the layers
    /// below), with its `security.capability`; `None` when the image has no such path.
    fn lower_stat(&self, path: &[u8]) -> Result<Option<Lower>, WalkError> {
        for layer in &self.lowers {
            match lookup(layer, path)? {
                Some(fd) => {
                    let st = rfs::fstat(&fd).map_err(|e| ("inspecting", path.to_vec(), e))?;
                    if FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                        && st.st_rdev == 0
                    {
                        return Ok(None);
                    }
                    let caps = capability(fd.as_fd())
                        .map_err(|e| ("reading xattrs of", path.to_vec(), e))?;
                    return Ok(Some((st, caps)));
                }
                None => {
                    // An ancestor of this layer that is opaque, a whiteout or no directory
                    // hides the layers below.
                    let mut dir = parent_of(path);
                    while dir != b"/" {
                        if let Some(fd) = lookup(layer, dir)? {
                            let st =
                                rfs::fstat(&fd).map_err(|e| ("inspecting", dir.to_vec(), e))?;
                            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                                return Ok(None);
                            }
                            let opened = openat2(
                                layer,
                                &dir[1..],
                                DIR_READ,
                                ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
                            )
                            .map_err(|e| ("opening", dir.to_vec(), e))?;
                            if is_opaque(opened.as_fd())
                                .map_err(|e| ("reading xattrs of", dir.to_vec(), e))?
                            {
                                return Ok(None);
                            }
                        }
                        dir = parent_of(dir);
                    }
                }
            }
        }
        Ok(None)
    }

    /// The names any lower layer has in the directory `path` (sorted; whether the image shows
    /// each is for [`Differ::lower_stat`] to say).
    fn lower_names(&self, path: &[u8]) -> Result<Vec<Vec<u8>>, WalkError> {
        let mut all = std::collections::BTreeSet::new();
        for layer in &self.lowers {
            let dir = if path == b"/" {
                openat2(layer, ".", DIR_READ, ResolveFlags::BENEATH)
            } else {
                openat2(
                    layer,
                    &path[1..],
                    DIR_READ,
                    ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
                )
            };
            let dir = match dir {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => continue,
                Err(e) => return Err(("opening a lower layer's", path.to_vec(), e)),
            };
            for (name, _) in names(dir.as_fd(), path)? {
                all.insert(name);
            }
        }
        Ok(all.into_iter().collect())
    }
}

/// `path` (absolute) in one layer, not following any symlink; `None` when it has none.
fn lookup(layer: &OwnedFd, path: &[u8]) -> Result<Option<OwnedFd>, WalkError> {
    match openat2(
        layer,
        &path[1..],
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => Ok(None),
        Err(e) => Err(("looking up in a lower layer", path.to_vec(), e)),
    }
}

/// The entries of a directory, each with whether it is a whiteout.
fn names(dir: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<(Vec<u8>, bool)>, WalkError> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir).map_err(|e| ("listing", path.to_vec(), e))? {
        let entry = entry.map_err(|e| ("listing", path.to_vec(), e))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| ("inspecting", join(path, name), e))?;
        let whiteout =
            FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0;
        out.push((name.to_vec(), whiteout));
    }
    Ok(out)
}

/// A directory's level: its entries sorted by name bytes, to be popped first to last.
fn level(
    fd: OwnedFd,
    path: Vec<u8>,
    listed: bool,
    had_dir: bool,
    hides: bool,
) -> Result<Level, WalkError> {
    let mut todo: Vec<Vec<u8>> = names(fd.as_fd(), &path)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    todo.sort_unstable_by(|a, b| b.cmp(a));
    Ok(Level {
        fd,
        path,
        todo,
        listed,
        had_dir,
        hides,
    })
}

/// `security.capability` of an `O_PATH` handle (Docker compares it too).
fn capability(fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>, Errno> {
    xattr::get(Target::ProcFd(fd), c"security.capability")
}

/// Docker's `statDifferent`: type and mode, owner, device numbers; for a non-directory also
/// size and mtime (nanoseconds ignored when either side has none). A directory's size and
/// mtime are no measure of change.
fn stat_different(old: &Stat, new: &Stat) -> bool {
    let dir = FileType::from_raw_mode(old.st_mode) == FileType::Directory;
    old.st_mode != new.st_mode
        || old.st_uid != new.st_uid
        || old.st_gid != new.st_gid
        || old.st_rdev != new.st_rdev
        || (!dir
            && (old.st_size != new.st_size
                || old.st_mtime != new.st_mtime
                || !(old.st_mtime_nsec == new.st_mtime_nsec
                    || old.st_mtime_nsec == 0
                    || new.st_mtime_nsec == 0)))
}

fn is_opaque(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    // Rootless stores mark opaque directories in the `userxattr` namespace.
    crate::archive::overlay_xattr::is_opaque(fd, crate::rootless::is_rootless())
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
    fn stat_differences_as_docker() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = rfs::stat(tmp.path()).unwrap();
        let mut later = dir;
        later.st_mtime += 1;
        assert!(
            !stat_different(&dir, &later),
            "a directory's mtime is no change"
        );
        later.st_mode &= !0o7;
        assert!(stat_different(&dir, &later));
        std::fs::write(tmp.path().join("f"), "x").unwrap();
        let file = rfs::stat(tmp.path().join("f")).unwrap();
        let mut touched = file;
        touched.st_mtime_nsec = 0;
        assert!(!stat_different(&file, &touched));
        touched.st_mtime += 1;
        assert!(stat_different(&file, &touched));
    }
}

//! Flatten mode: a layer applied on top of a directory that holds the layers below it (as
//! `umoci unpack` and containerd do), for `strata export`. What its whiteouts and opaque
//! markers hide is deleted at the end of the layer, sparing what the layer itself created.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Timespec};
use rustix::io::Errno;

use super::applier::{self, open_root};
use super::mode::{ApplyMode, DirMeta};
use crate::archive::error::{ArchiveError, from_fs, fs_err, lossy};
use crate::archive::fsops::{self, Root, timestamps};
use crate::archive::options::{ApplyOptions, ApplyStats};
use crate::archive::path;

/// Modes of directories kept owner-writable while later layers are flattened onto them, by
/// real path (see [`crate::archive::Flattener`]).
pub(crate) type DeferredModes = HashMap<Vec<u8>, u32>;

/// Applies the tar stream `reader` in flatten mode onto `dest`, which holds the lower layers.
/// With `deferred`, directory modes without owner rwx are recorded there and the directories
/// kept owner-accessible.
pub(crate) fn apply<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ApplyOptions,
    deferred: Option<&mut DeferredModes>,
) -> Result<ApplyStats, ArchiveError> {
    let mut root = open_root(dest)?;
    root.track_real_paths();
    let mode = Flatten {
        touched: HashSet::new(),
        removals: Vec::new(),
        times: HashMap::new(),
        deferred,
    };
    applier::run(root, opts, mode, reader)
}

/// Flatten mode's bookkeeping for one layer.
struct Flatten<'d> {
    /// Real paths (symlinks resolved) this layer created, directories its opaque markers and
    /// whiteouts name as parents, and all their ancestors: what its whiteouts and opaque
    /// markers must not remove.
    touched: HashSet<Vec<u8>>,
    /// Whiteouts and opaque markers, carried out in order at the end of the layer, once
    /// everything the layer creates is known (a layer's own entries win in any order).
    removals: Vec<Removal>,
    /// Times of the directories this layer changes, by real path, from before the change:
    /// those that are not members of the layer get them back at its end (as umoci does), so
    /// that a directory keeps the times of the layer that last listed it.
    times: HashMap<Vec<u8>, (Timespec, Timespec)>,
    /// Where restrictive directory modes go instead of onto the directories.
    deferred: Option<&'d mut DeferredModes>,
}

/// A whiteout or opaque marker, carried out at the end of the layer.
enum Removal {
    /// `PARENT/.wh.NAME`: remove NAME.
    Whiteout {
        parent: Vec<u8>,
        name: Vec<u8>,
        shown: String,
    },
    /// `DIR/.wh..wh..opq`: remove what is below DIR.
    Opaque { dir: Vec<u8>, shown: String },
}

/// Records the times of the directory `fd` at `real` unless known already.
fn note_times(
    times: &mut HashMap<Vec<u8>, (Timespec, Timespec)>,
    real: &[u8],
    fd: BorrowedFd<'_>,
) -> Result<(), Errno> {
    if !times.contains_key(real) {
        let st = rfs::fstat(fd)?;
        let ts = |sec, nsec| Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        };
        times.insert(
            real.to_vec(),
            (
                ts(st.st_atime, st.st_atime_nsec),
                ts(st.st_mtime, st.st_mtime_nsec),
            ),
        );
    }
    Ok(())
}

/// Adds `path` and its ancestors to `touched`.
fn touch(touched: &mut HashSet<Vec<u8>>, mut path: &[u8]) {
    while !path.is_empty() && touched.insert(path.to_vec()) {
        path = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => &path[..i],
            None => &[],
        };
    }
}

impl Flatten<'_> {
    /// The whiteouts and opaque markers, in order, removing nothing this layer created. A
    /// whiteout of a directory this layer created (or needed as a parent) removes what is
    /// below it as an opaque marker does: the lower directory is deleted, so none of its
    /// content may remain in the layer's (an overlay-mode layer makes that directory opaque).
    /// A whiteout whose parent goes through a symlink or is not a directory is ignored; one of
    /// a missing name is fine.
    fn carry_out_removals(&mut self, root: &mut Root) -> Result<(), ArchiveError> {
        for removal in &self.removals {
            match removal {
                Removal::Whiteout {
                    parent,
                    name,
                    shown,
                } => {
                    let path = path::join(parent, name);
                    if self.touched.contains(&path) {
                        // Nothing happens unless it is a directory (not through a symlink).
                        clear_below(root, &path, &self.touched, &mut self.times, shown)?;
                        continue;
                    }
                    let dir = match root.existing_dir_nofollow(parent) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                        Err(e) => return Err(fs_err(shown, "resolving whiteout parent", e)),
                    };
                    note_times(&mut self.times, parent, dir.as_fd())
                        .map_err(|e| fs_err(shown, "inspecting whiteout parent", e))?;
                    root.remove(dir.as_fd(), name)
                        .map_err(|e| fs_err(shown, format!("removing {}", fsops::show(name)), e))?;
                }
                Removal::Opaque { dir, shown } => {
                    clear_below(root, dir, &self.touched, &mut self.times, shown)?
                }
            }
        }
        Ok(())
    }

    /// The directories this layer changed without listing them (not in `dirs`) get their
    /// times back.
    fn restore_times(
        &self,
        root: &Root,
        dirs: &HashMap<Vec<u8>, DirMeta>,
    ) -> Result<(), ArchiveError> {
        let listed: HashSet<&[u8]> = dirs.values().filter_map(|m| m.real.as_deref()).collect();
        for (real, (atime, mtime)) in &self.times {
            if listed.contains(&real[..]) {
                continue;
            }
            let shown = if real.is_empty() {
                ".".to_string()
            } else {
                lossy(real)
            };
            let fd = match root.existing_dir_nofollow(real) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(fs_err(&shown, "opening directory", e)),
            };
            rfs::futimens(&fd, &timestamps(*atime, *mtime))
                .map_err(|e| fs_err(&shown, "restoring times", e))?;
        }
        Ok(())
    }
}

impl ApplyMode for Flatten<'_> {
    const ON_LOWER_LAYERS: bool = true;
    const DEVICES_REQUIRED: bool = true;
    const HASHES_FILES: bool = false;

    /// Records the parent's times before the layer changes it.
    fn parent(
        &mut self,
        fd: BorrowedFd<'_>,
        real: Option<&[u8]>,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        if let Some(real) = real {
            note_times(&mut self.times, real, fd)
                .map_err(|e| fs_err(shown, "inspecting parent directory", e))?;
        }
        Ok(())
    }

    /// Records that this layer created `name` in the directory at `real`.
    fn created(&mut self, real: Option<&[u8]>, name: &[u8]) {
        if let Some(real) = real {
            touch(&mut self.touched, &path::join(real, name));
        }
    }

    fn dir_replaced(&mut self, _: BorrowedFd<'_>, _: &[u8], _: &str) -> Result<(), ArchiveError> {
        Ok(())
    }

    /// Carried out at the end; the parent counts as this layer's (as in overlay mode, where
    /// the whiteout's parent is a directory of the layer).
    fn whiteout(
        &mut self,
        _: &mut Root,
        parent: &[u8],
        name: &[u8],
        _: (u32, u32),
        shown: &str,
    ) -> Result<(), ArchiveError> {
        touch(&mut self.touched, parent);
        self.removals.push(Removal::Whiteout {
            parent: parent.to_vec(),
            name: name.to_vec(),
            shown: shown.to_string(),
        });
        Ok(())
    }

    /// DIR (created when missing, as overlay mode does) becomes this layer's, and what is
    /// below it goes at the end. Ignored when DIR goes through a symlink or is not a directory
    /// (nothing to hide below it).
    fn opaque(
        &mut self,
        root: &mut Root,
        dir_path: &[u8],
        shown: &str,
    ) -> Result<(), ArchiveError> {
        match root.existing_dir_nofollow(dir_path) {
            Ok(_) => {}
            Err(Errno::NOENT) => {
                if root
                    .dir(dir_path, false)
                    .map_err(|e| from_fs(shown, e))?
                    .is_none()
                {
                    return Ok(());
                }
            }
            Err(Errno::LOOP | Errno::NOTDIR) => return Ok(()),
            Err(e) => return Err(fs_err(shown, "resolving opaque directory", e)),
        }
        touch(&mut self.touched, dir_path);
        self.removals.push(Removal::Opaque {
            dir: dir_path.to_vec(),
            shown: shown.to_string(),
        });
        Ok(())
    }

    /// The removals, then the times of the directories they (and the members) changed.
    fn end_of_layer(
        &mut self,
        root: &mut Root,
        dirs: &HashMap<Vec<u8>, DirMeta>,
    ) -> Result<(), ArchiveError> {
        self.carry_out_removals(root)?;
        self.restore_times(root, dirs)
    }

    /// With `deferred`, a mode without owner rwx is given owner rwx for now and recorded.
    fn dir_mode(&mut self, real: Option<&[u8]>, mode: u32) -> u32 {
        if let (Some(deferred), Some(real)) = (&mut self.deferred, real) {
            if mode & 0o700 == 0o700 {
                deferred.remove(real);
            } else {
                deferred.insert(real.to_vec(), mode);
                return mode | 0o700;
            }
        }
        mode
    }
}

/// Removes everything below the directory `top` that is not in `touched`, descending into
/// the directories that are (iteratively, not following symlinks).
fn clear_below(
    root: &mut Root,
    top: &[u8],
    touched: &HashSet<Vec<u8>>,
    times: &mut HashMap<Vec<u8>, (Timespec, Timespec)>,
    shown: &str,
) -> Result<(), ArchiveError> {
    let mut todo = vec![top.to_vec()];
    while let Some(dir_path) = todo.pop() {
        let fd = match root.existing_dir_nofollow(&dir_path) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
            Err(e) => {
                return Err(fs_err(
                    shown,
                    format!("opening {}", fsops::show(&dir_path)),
                    e,
                ));
            }
        };
        let listing = |e: Errno| fs_err(shown, format!("listing {}", fsops::show(&dir_path)), e);
        let mut children = Vec::new();
        let mut dir = rfs::Dir::read_from(&fd).map_err(listing)?;
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(listing)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                children.push((name.to_vec(), entry.file_type()));
            }
        }
        for (name, file_type) in children {
            let child = path::join(&dir_path, &name);
            if !touched.contains(&child) {
                note_times(times, &dir_path, fd.as_fd()).map_err(|e| {
                    fs_err(shown, format!("inspecting {}", fsops::show(&dir_path)), e)
                })?;
                root.remove(fd.as_fd(), &name)
                    .map_err(|e| fs_err(shown, format!("removing {}", fsops::show(&child)), e))?;
                continue;
            }
            let is_dir = match file_type {
                FileType::Directory => true,
                FileType::Unknown => rfs::statat(&fd, &name[..], AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
                _ => false,
            };
            if is_dir {
                todo.push(child);
            }
        }
    }
    Ok(())
}

//! Overlay mode: a layer applied into an empty directory in Docker's overlay2 format, its
//! whiteouts as 0/0 character devices and its opaque markers as the opaque xattr, so that an
//! overlay mount of the layers shows the image.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::applier::{self, open_root};
use super::mode::{ApplyMode, DirMeta};
use crate::archive::error::{ArchiveError, from_fs, fs_err};
use crate::archive::fsops::{self, Root};
use crate::archive::options::{ApplyOptions, ApplyStats};
use crate::archive::overlay_xattr;

/// Applies the tar stream `reader` in overlay mode to the empty directory `dest`.
pub(crate) fn apply<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ArchiveError> {
    let mut root = open_root(dest)?;
    root.track_implicit_dirs();
    let mode = Overlay {
        opaque_xattr: overlay_xattr::opaque(opts.userxattr),
        same_owner: opts.same_owner,
        marks: Vec::new(),
    };
    applier::run(root, opts, mode, reader)
}

/// A whiteout or opaque marker, applied again at the end of the layer against what the layer
/// then holds (see [`Overlay::end_of_layer`]).
enum Mark {
    /// `PARENT/.wh.NAME`, with the owner its device gets.
    Whiteout {
        parent: Vec<u8>,
        name: Vec<u8>,
        owner: (u32, u32),
        shown: String,
    },
    /// `DIR/.wh..wh..opq`.
    Opaque { dir: Vec<u8>, shown: String },
}

/// Overlay mode's state for one layer.
struct Overlay {
    /// The xattr that makes a directory opaque, in the namespace asked for.
    opaque_xattr: &'static CStr,
    /// Whether whiteout devices are given their member's owner.
    same_owner: bool,
    /// The layer's whiteouts and opaque markers, in order.
    marks: Vec<Mark>,
}

impl Overlay {
    /// Makes the whiteout device `name` in `dir`, owned by `owner`, unless `name` exists.
    fn whiteout_device(
        &self,
        root: &Root,
        dir: BorrowedFd<'_>,
        name: &[u8],
        (uid, gid): (u32, u32),
        shown: &str,
    ) -> Result<(), ArchiveError> {
        match rfs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(()),
            Err(e) => {
                return Err(fs_err(
                    shown,
                    format!("creating whiteout device {}", fsops::show(name)),
                    e,
                ));
            }
        }
        if self.same_owner && root.needs_chown(uid, gid) {
            fsops::lchownat(dir, name, uid, gid)
                .map_err(|e| fs_err(shown, format!("chown whiteout to {uid}:{gid}"), e))?;
        }
        Ok(())
    }

    /// Sets the opaque xattr on the directory `fd` (opened for reading).
    fn set_opaque(&self, fd: BorrowedFd<'_>, shown: &str) -> Result<(), ArchiveError> {
        let xattr = self.opaque_xattr;
        fsops::fsetxattr(fd, xattr, b"y")
            .map_err(|e| fs_err(shown, format!("setting {}", xattr.to_string_lossy()), e))
    }
}

impl ApplyMode for Overlay {
    const ON_LOWER_LAYERS: bool = false;
    const DEVICES_REQUIRED: bool = false;
    const HASHES_FILES: bool = true;

    fn parent(&mut self, _: BorrowedFd<'_>, _: Option<&[u8]>, _: &str) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn created(&mut self, _: Option<&[u8]>, _: &[u8]) {}

    /// What the directory replaces replaced the lower directory (entries apply in order), so
    /// nothing of that may show through this one: it is made opaque.
    fn dir_replaced(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(dir, name, flags, Mode::empty())
            .map_err(|e| fs_err(shown, "opening directory", e))?;
        self.set_opaque(fd.as_fd(), shown)
    }

    /// A 0/0 character device NAME, unless NAME exists (this layer made it: its own entry
    /// wins) or PARENT goes through a symlink or a non-directory (nothing to hide there).
    /// Applied again at the end of the layer.
    fn whiteout(
        &mut self,
        root: &mut Root,
        parent: &[u8],
        name: &[u8],
        owner: (u32, u32),
        shown: &str,
    ) -> Result<(), ArchiveError> {
        self.marks.push(Mark::Whiteout {
            parent: parent.to_vec(),
            name: name.to_vec(),
            owner,
            shown: shown.to_string(),
        });
        let Some(dir) = root.dir(parent, false).map_err(|e| from_fs(shown, e))? else {
            return Ok(());
        };
        self.whiteout_device(root, dir.as_fd(), name, owner, shown)
    }

    /// Marks DIR opaque (creating it if missing), unless DIR goes through a symlink or a
    /// non-directory. Applied again at the end of the layer.
    fn opaque(
        &mut self,
        root: &mut Root,
        dir_path: &[u8],
        shown: &str,
    ) -> Result<(), ArchiveError> {
        self.marks.push(Mark::Opaque {
            dir: dir_path.to_vec(),
            shown: shown.to_string(),
        });
        let Some(dir) = root.dir(dir_path, false).map_err(|e| from_fs(shown, e))? else {
            return Ok(());
        };
        // The handle is O_PATH (fsetxattr refuses those): reopen it for reading.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::openat(dir.as_fd(), c".", flags, Mode::empty())
            .map_err(|e| fs_err(shown, "opening directory", e))?;
        self.set_opaque(fd.as_fd(), shown)
    }

    /// The whiteouts and opaque markers once more, against what the layer holds now, since
    /// later members may have replaced what they applied to. They hide lower content whatever
    /// their position in the layer and never the layer's own entries (the OCI meaning), so: a
    /// whiteout of a name that is now a directory of the layer makes it opaque (the lower one
    /// is deleted: none of its content may show through the layer's directory); one of a
    /// missing name in a directory gets its device (again: a later member may have replaced
    /// its parent, device included, by a new directory); one of anything else does nothing
    /// (the layer's entry replaces the lower one anyway). An opaque marker's directory that is
    /// still one is made opaque. Paths are resolved without following symlinks and creating
    /// nothing: below a symlink or a non-directory, nothing is hidden.
    fn end_of_layer(
        &mut self,
        root: &mut Root,
        _: &HashMap<Vec<u8>, DirMeta>,
    ) -> Result<(), ArchiveError> {
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for mark in std::mem::take(&mut self.marks) {
            match mark {
                Mark::Whiteout {
                    parent,
                    name,
                    owner,
                    shown,
                } => {
                    let dir = match root.existing_dir_nofollow(&parent) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                        Err(e) => return Err(fs_err(&shown, "resolving whiteout parent", e)),
                    };
                    match rfs::statat(&dir, &name[..], AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                            let fd = rfs::openat(&dir, &name[..], dir_flags, Mode::empty())
                                .map_err(|e| fs_err(&shown, "opening directory", e))?;
                            self.set_opaque(fd.as_fd(), &shown)?;
                        }
                        Ok(_) => {}
                        Err(Errno::NOENT) => {
                            self.whiteout_device(root, dir.as_fd(), &name, owner, &shown)?
                        }
                        Err(e) => return Err(fs_err(&shown, "inspecting whiteout target", e)),
                    }
                }
                Mark::Opaque { dir, shown } => match root.existing_dir_nofollow(&dir) {
                    Ok(fd) => self.set_opaque(fd.as_fd(), &shown)?,
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                    Err(e) => return Err(fs_err(&shown, "resolving opaque directory", e)),
                },
            }
        }
        Ok(())
    }

    fn dir_mode(&mut self, _: Option<&[u8]>, mode: u32) -> u32 {
        mode
    }
}

//! The member loop shared by both modes: one handler per member kind, all filesystem work
//! through [`Root`]; where the modes differ, it calls its [`ApplyMode`].

use std::collections::HashMap;
use std::ffi::CStr;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::mode::{ApplyMode, DirMeta};
use crate::archive::data::{self, CopyError, Layout};
use crate::archive::error::{ArchiveError, from_fs, fs_err, invalid, lossy};
use crate::archive::fsops::{self, DirFd, IMPLICIT_DIR_MODE, RealPath, Root, timestamps};
use crate::archive::meta::{self, Meta};
use crate::archive::options::{ApplyOptions, ApplyStats};
use crate::archive::path::{self, MemberPath};
use crate::archive::reader::{Member, Reader};
use crate::archive::whiteout::{self, Kind as Name};
use crate::archive::writeback::Writeback;

/// File data is copied through a buffer of this size, allocated once per layer.
const BUF_SIZE: usize = 256 * 1024;
/// Files at least this large have their writeback started as soon as they are written (see
/// `writeback`); smaller ones are left to the final `syncfs`.
const WRITEBACK_MIN: u64 = 128 * 1024;

/// What a member creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::File => "regular file",
            Self::Dir => "directory",
            Self::Symlink => "symlink",
            Self::Hardlink => "hardlink",
            Self::Char => "character device",
            Self::Block => "block device",
            Self::Fifo => "fifo",
        }
    }
}

/// Applies one layer's members in mode `M`.
struct Applier<'o, M> {
    root: Root,
    opts: &'o ApplyOptions,
    /// Directory members by normalised path (later members of the same name win).
    dirs: HashMap<Vec<u8>, DirMeta>,
    buf: Vec<u8>,
    stats: ApplyStats,
    /// What the mode does where the modes differ, with its bookkeeping.
    mode: M,
    /// Large files, once written, go here to have their writeback started.
    writeback: Writeback,
}

/// Opens the destination `dest` as the [`Root`] a layer is applied to.
pub(crate) fn open_root(dest: &Path) -> Result<Root, ArchiveError> {
    Root::open(dest).map_err(|source| ArchiveError::Dest {
        path: dest.to_path_buf(),
        source,
    })
}

/// Applies the tar stream `reader` to `root` (set up for `mode`) in `mode`, up to the
/// end-of-archive marker.
pub(crate) fn run<M: ApplyMode, R: Read>(
    root: Root,
    opts: &ApplyOptions,
    mode: M,
    reader: R,
) -> Result<ApplyStats, ArchiveError> {
    let mut applier = Applier {
        root,
        opts,
        dirs: HashMap::new(),
        buf: Vec::new(),
        stats: ApplyStats::default(),
        mode,
        writeback: Writeback::default(),
    };
    let mut tar = Reader::new(reader);
    while let Some(member) = tar.next()? {
        applier.entry(&member, &mut tar)?;
    }
    applier.finish()?;
    let mut stats = applier.stats;
    stats.implicit_dirs = applier
        .root
        .implicit_dirs()
        .map_err(|e| from_fs(".", e))?
        .into_iter()
        .map(|p| PathBuf::from(OsString::from_vec(p)))
        .collect();
    Ok(stats)
}

fn kind_of(raw: u8, name: &[u8]) -> Result<Kind, String> {
    Ok(match EntryType::new(raw) {
        // Pre-POSIX archives mark directories with a trailing slash on an old-style ('\0') file.
        EntryType::Regular if raw == 0 && name.ends_with(b"/") => Kind::Dir,
        // POSIX allows treating contiguous files ('7') as regular files.
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => Kind::Symlink,
        EntryType::Link => Kind::Hardlink,
        EntryType::Char => Kind::Char,
        EntryType::Block => Kind::Block,
        EntryType::Fifo => Kind::Fifo,
        _ => return Err(format!("unsupported entry type {:?}", char::from(raw))),
    })
}

impl<M: ApplyMode> Applier<'_, M> {
    /// Applies one member; its data, if any, is read from `data` (the reader skips what is
    /// left).
    fn entry(&mut self, member: &Member, data: &mut impl Read) -> Result<(), ArchiveError> {
        // A GNU volume label: nothing to apply (Docker ignores it). (Global PAX headers never
        // get here: the reader drops them.)
        if member.typeflag == b'V' {
            return Ok(());
        }
        let meta = meta::read(member).map_err(|reason| invalid(&lossy(&member.name), reason))?;
        let shown = lossy(&meta.name);
        // The name before `GNU.sparse.name`: Go decides on old-style directories before that.
        let kind = kind_of(member.typeflag, &member.name).map_err(|r| invalid(&shown, r))?;
        // Go's archive/tar reads no data for these types whatever the size says: refuse rather
        // than take a size that some other reader may frame the stream by.
        if kind != Kind::File && meta.size != 0 {
            return Err(invalid(
                &shown,
                format!(
                    "a {} member must not carry data ({} bytes)",
                    kind.name(),
                    meta.size
                ),
            ));
        }
        if meta.sparse.is_some() && kind != Kind::File {
            return Err(invalid(
                &shown,
                "GNU.sparse PAX records on a member that is not a regular file",
            ));
        }
        let path = MemberPath::parse(&meta.name).map_err(|e| invalid(&shown, e))?;
        self.stats.entries += 1;
        let Some((parent, name)) = path.split_last() else {
            return match kind {
                Kind::Dir => self.root_dir(&meta, &shown),
                _ => Err(invalid(
                    &shown,
                    format!(
                        "the layer root may only be a directory, not a {}",
                        kind.name()
                    ),
                )),
            };
        };
        match whiteout::classify(name).map_err(|e| invalid(&shown, e))? {
            Name::Opaque => self.mode.opaque(&mut self.root, parent, &shown),
            Name::Whiteout(target) => {
                let owner = (meta.uid, meta.gid);
                self.mode
                    .whiteout(&mut self.root, parent, target, owner, &shown)
            }
            Name::Ordinary => match kind {
                Kind::File => self.file(data, &path, parent, name, &meta, &shown),
                Kind::Dir => self.directory(&path, parent, name, &meta, &shown),
                Kind::Symlink => self.symlink(&path, parent, name, &meta, &shown),
                Kind::Hardlink => self.hardlink(&path, parent, name, &meta, &shown),
                Kind::Char | Kind::Block | Kind::Fifo => {
                    self.node(&path, parent, name, &meta, kind, &shown)
                }
            },
        }
    }

    /// The parent directory of a member (symlinks followed inside the root, missing
    /// directories created), and its real path when the root tracks them.
    fn parent(
        &mut self,
        parent: &[u8],
        shown: &str,
    ) -> Result<(DirFd, Option<RealPath>), ArchiveError> {
        let (fd, real) = self
            .root
            .dir_real(parent, true)
            .map_err(|e| from_fs(shown, e))?
            .ok_or_else(|| invalid(shown, "parent directory could not be resolved"))?;
        self.mode.parent(fd.as_fd(), real.as_deref(), shown)?;
        Ok((fd, real))
    }

    /// Bookkeeping after `create_replacing` removed something at `path`.
    fn removed(&mut self, path: &MemberPath, removed: Option<FileType>) {
        if removed == Some(FileType::Directory) {
            self.dirs
                .retain(|k, _| !path::is_within(k, path.as_bytes()));
        }
    }

    fn chown_wanted(&self, meta: &Meta) -> bool {
        self.opts.same_owner && self.root.needs_chown(meta.uid, meta.gid)
    }

    /// Owner (when `chown`), then mode (when `chmod` and needed), then xattrs, on an open fd.
    fn fd_metadata(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        chown: bool,
        chmod: bool,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        if chown {
            fsops::fchown(fd, meta.uid, meta.gid)
                .map_err(|e| fs_err(shown, format!("chown to {}:{}", meta.uid, meta.gid), e))?;
        }
        if chmod && self.root.needs_chmod(meta.mode) {
            rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| fs_err(shown, format!("chmod to {:o}", meta.mode), e))?;
        }
        for (name, value) in &meta.xattrs {
            self.xattr_result(fsops::fsetxattr(fd, name, value), name, false, shown)?;
        }
        Ok(())
    }

    /// Xattrs the filesystem cannot store are skipped, as Docker does; so are those an
    /// unprivileged process may not set (also in a rootless store's user namespace:
    /// `trusted.*`), and (`lenient`) those the kernel refuses on device nodes and fifos
    /// (`user.*`).
    fn xattr_result(
        &self,
        r: Result<(), Errno>,
        name: &CStr,
        lenient: bool,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        match r {
            Ok(()) | Err(Errno::OPNOTSUPP) => Ok(()),
            Err(Errno::PERM | Errno::ACCESS)
                if lenient || !self.opts.same_owner || self.opts.userxattr =>
            {
                Ok(())
            }
            Err(e) => Err(fs_err(
                shown,
                format!("setting xattr {:?}", name.to_string_lossy()),
                e,
            )),
        }
    }

    fn file(
        &mut self,
        data: &mut impl Read,
        path: &MemberPath,
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let (dir, real) = self.parent(parent, shown)?;
        let perm = Mode::from_raw_mode(meta.mode & 0o777);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // O_EXCL after removing whatever was there: never write through an existing name (a
        // hardlink or a symlink).
        let (fd, removed) = self
            .root
            .create_replacing(dir.as_fd(), name, || {
                rfs::openat(dir.as_fd(), name, flags, perm)
            })
            .map_err(|e| fs_err(shown, "creating file", e))?;
        self.removed(path, removed);
        self.mode.created(real.as_deref(), name);
        let file = File::from(fd);
        let layout = match &meta.sparse {
            Some(sparse) => Layout::Sparse(sparse),
            None => Layout::Plain,
        };
        if self.buf.is_empty() {
            self.buf = vec![0; BUF_SIZE];
        }
        let mut sha = (M::HASHES_FILES && self.opts.hash_files).then(Sha256::new);
        let logical = data::copy(data, meta.size, &file, layout, &mut self.buf, sha.as_mut())
            .map_err(|e| match e {
                CopyError::Read(source) => ArchiveError::Io {
                    entry: Some(shown.to_string()),
                    source,
                },
                CopyError::Write(source) => fs_err(shown, "writing file data", source),
                CopyError::Invalid(reason) => invalid(shown, reason),
            })?;
        self.stats.bytes += logical;
        if let Some(sha) = sha {
            let st = rfs::fstat(&file).map_err(|e| fs_err(shown, "inspecting file", e))?;
            self.stats
                .file_hashes
                .insert(st.st_ino, sha.finalize().into());
        }
        self.fd_metadata(file.as_fd(), meta, self.chown_wanted(meta), true, shown)?;
        rfs::futimens(&file, &timestamps(meta.atime, meta.mtime))
            .map_err(|e| fs_err(shown, "setting times", e))?;
        if self.opts.writeback && logical >= WRITEBACK_MIN {
            self.writeback.submit(file);
        }
        Ok(())
    }

    fn directory(
        &mut self,
        path: &MemberPath,
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let (dir, real) = self.parent(parent, shown)?;
        let mkdir = || rfs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(IMPLICIT_DIR_MODE));
        // The owner of a directory that was already there (None: we just made it).
        let mut existing_owner = None;
        // Whether a new directory was made (which may reuse the inode number of an implicit
        // directory removed earlier).
        let mut made = true;
        // Whether it replaced a non-directory of this layer.
        let mut replaced = false;
        match mkdir() {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rfs::statat(dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fs_err(shown, "inspecting existing entry", e))?;
                // An existing directory is kept (only its metadata changes); anything else goes.
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    existing_owner = Some((st.st_uid, st.st_gid));
                    made = false;
                    // Listed now: no longer implicit.
                    self.root.forget_implicit(st.st_ino);
                } else {
                    let removed = self
                        .root
                        .remove(dir.as_fd(), name)
                        .map_err(|e| fs_err(shown, "removing existing entry", e))?;
                    self.removed(path, removed);
                    mkdir().map_err(|e| fs_err(shown, "creating directory", e))?;
                    replaced = true;
                }
            }
            Err(e) => return Err(fs_err(shown, "creating directory", e)),
        }
        if replaced {
            self.mode.dir_replaced(dir.as_fd(), name, shown)?;
        }
        if made && self.root.has_implicit_dirs() {
            let st = rfs::statat(dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| fs_err(shown, "inspecting directory", e))?;
            self.root.forget_implicit(st.st_ino);
        }
        self.mode.created(real.as_deref(), name);
        // Owner and xattrs now; mode and times at the end.
        let chown = match existing_owner {
            Some(owner) => self.opts.same_owner && owner != (meta.uid, meta.gid),
            None => self.chown_wanted(meta),
        };
        // On the lower layers: a directory over a directory (from a lower layer) has this
        // member's xattrs only, as in an overlay mount (and as umoci does).
        let clear = M::ON_LOWER_LAYERS && existing_owner.is_some();
        if clear || !meta.xattrs.is_empty() {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rfs::openat(dir.as_fd(), name, flags, Mode::empty())
                .map_err(|e| fs_err(shown, "opening directory", e))?;
            if clear {
                fsops::clear_xattrs(fd.as_fd())
                    .map_err(|e| fs_err(shown, "clearing the xattrs of a lower directory", e))?;
            }
            self.fd_metadata(fd.as_fd(), meta, chown, false, shown)?;
        } else if chown {
            fsops::lchownat(dir.as_fd(), name, meta.uid, meta.gid)
                .map_err(|e| fs_err(shown, format!("chown to {}:{}", meta.uid, meta.gid), e))?;
        }
        let real = real.map(|r| RealPath::from(path::join(&r, name)));
        self.dirs.insert(
            path.as_bytes().to_vec(),
            DirMeta {
                mode: meta.mode,
                atime: meta.atime,
                mtime: meta.mtime,
                real,
            },
        );
        Ok(())
    }

    fn root_dir(&mut self, meta: &Meta, shown: &str) -> Result<(), ArchiveError> {
        if M::ON_LOWER_LAYERS {
            // The lower layers' root takes this member's xattrs only.
            fsops::clear_xattrs(self.root.root_fd())
                .map_err(|e| fs_err(shown, "clearing the xattrs of the root", e))?;
        }
        // The destination's owner is whatever the caller made it: always chown.
        let chown = self.opts.same_owner;
        self.fd_metadata(self.root.root_fd(), meta, chown, false, shown)?;
        self.dirs.insert(
            Vec::new(),
            DirMeta {
                mode: meta.mode,
                atime: meta.atime,
                mtime: meta.mtime,
                real: M::ON_LOWER_LAYERS.then(|| RealPath::from(&[][..])),
            },
        );
        Ok(())
    }

    fn symlink(
        &mut self,
        path: &MemberPath,
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let target = meta
            .link
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid(shown, "symlink without a target"))?;
        if target.contains(&0) {
            return Err(invalid(shown, "symlink target contains a NUL byte"));
        }
        let (dir, real) = self.parent(parent, shown)?;
        // The target is stored as is: symlinks are only ever resolved inside the root.
        let (_, removed) = self
            .root
            .create_replacing(dir.as_fd(), name, || {
                rfs::symlinkat(target, dir.as_fd(), name)
            })
            .map_err(|e| fs_err(shown, "creating symlink", e))?;
        self.removed(path, removed);
        self.mode.created(real.as_deref(), name);
        if self.chown_wanted(meta) {
            fsops::lchownat(dir.as_fd(), name, meta.uid, meta.gid)
                .map_err(|e| fs_err(shown, format!("chown to {}:{}", meta.uid, meta.gid), e))?;
        }
        fsops::lutimesat(dir.as_fd(), name, &timestamps(meta.atime, meta.mtime))
            .map_err(|e| fs_err(shown, "setting times", e))
    }

    fn hardlink(
        &mut self,
        path: &MemberPath,
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let raw = meta.link.as_deref().unwrap_or_default();
        let tshown = lossy(raw);
        let target = MemberPath::parse(raw)
            .map_err(|e| invalid(shown, format!("hardlink target {tshown:?}: {e}")))?;
        let Some((tparent, tname)) = target.split_last() else {
            return Err(invalid(shown, "hardlink target is the layer root"));
        };
        let not_found = || {
            let hint = if M::ON_LOWER_LAYERS {
                ""
            } else {
                " (it must be an earlier member of this layer)"
            };
            invalid(
                shown,
                format!("hardlink target {tshown:?} does not exist{hint}"),
            )
        };
        let tdir = match self.root.existing_dir(tparent) {
            Ok(d) => d,
            Err(Errno::NOENT | Errno::NOTDIR) => return Err(not_found()),
            Err(e) => {
                return Err(fs_err(
                    shown,
                    format!("resolving hardlink target {tshown:?}"),
                    e,
                ));
            }
        };
        if target == *path {
            // Linked to itself: nothing to do, provided it exists.
            return match rfs::statat(tdir.as_fd(), tname, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => Ok(()),
                Err(_) => Err(not_found()),
            };
        }
        let (dir, real) = self.parent(parent, shown)?;
        // Flags 0: a symlink target is linked itself, never followed.
        match self.root.create_replacing(dir.as_fd(), name, || {
            rfs::linkat(tdir.as_fd(), tname, dir.as_fd(), name, AtFlags::empty())
        }) {
            Ok((_, removed)) => {
                self.removed(path, removed);
                self.mode.created(real.as_deref(), name);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => Err(not_found()),
            Err(e)
                if e.raw_os_error() == Some(Errno::PERM.raw_os_error())
                    && rfs::statat(tdir.as_fd(), tname, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(
                        |st| FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                    ) =>
            {
                Err(invalid(
                    shown,
                    format!("hardlink target {tshown:?} is a directory"),
                ))
            }
            Err(e) => Err(fs_err(shown, format!("linking to {tshown:?}"), e)),
        }
    }

    fn node(
        &mut self,
        path: &MemberPath,
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        kind: Kind,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let (file_type, dev) = match kind {
            Kind::Char => (
                FileType::CharacterDevice,
                rfs::makedev(meta.device.0, meta.device.1),
            ),
            Kind::Block => (
                FileType::BlockDevice,
                rfs::makedev(meta.device.0, meta.device.1),
            ),
            _ => (FileType::Fifo, 0),
        };
        let (dir, real) = self.parent(parent, shown)?;
        let perm = Mode::from_raw_mode(meta.mode & 0o777);
        match self.root.create_replacing(dir.as_fd(), name, || {
            rfs::mknodat(dir.as_fd(), name, file_type, perm, dev)
        }) {
            Ok((_, removed)) => {
                self.removed(path, removed);
                self.mode.created(real.as_deref(), name);
            }
            // Flattening must not silently drop a device the image has.
            Err(e)
                if e.raw_os_error() == Some(Errno::PERM.raw_os_error())
                    && M::DEVICES_REQUIRED
                    && kind != Kind::Fifo =>
            {
                return Err(invalid(
                    shown,
                    format!(
                        "creating a {} is not permitted: exporting images with device nodes needs root",
                        kind.name()
                    ),
                ));
            }
            // Unprivileged: devices cannot be made; Docker skips them too.
            Err(e)
                if e.raw_os_error() == Some(Errno::PERM.raw_os_error())
                    && !self.opts.same_owner
                    && kind != Kind::Fifo =>
            {
                return Ok(());
            }
            // In a rootless store's user namespace (its marker: `userxattr`) only 0/0
            // whiteouts can be made; podman skips devices there too, we say so.
            Err(e)
                if e.raw_os_error() == Some(Errno::PERM.raw_os_error())
                    && self.opts.userxattr
                    && kind != Kind::Fifo =>
            {
                tracing::warn!(
                    "skipping {} {shown}: device nodes cannot be created in a user namespace",
                    kind.name()
                );
                return Ok(());
            }
            Err(e) => return Err(fs_err(shown, format!("creating {}", kind.name()), e)),
        }
        if self.chown_wanted(meta) {
            fsops::lchownat(dir.as_fd(), name, meta.uid, meta.gid)
                .map_err(|e| fs_err(shown, format!("chown to {}:{}", meta.uid, meta.gid), e))?;
        }
        if self.root.needs_chmod(meta.mode) {
            // fchmodat has no working NOFOLLOW; the name is the node just made by mknodat in a
            // directory only this process writes to.
            rfs::chmodat(
                dir.as_fd(),
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(|e| fs_err(shown, format!("chmod to {:o}", meta.mode), e))?;
        }
        for (xname, value) in &meta.xattrs {
            self.xattr_result(
                fsops::setxattr_at(dir.as_fd(), name, xname, value),
                xname,
                true,
                shown,
            )?;
        }
        fsops::lutimesat(dir.as_fd(), name, &timestamps(meta.atime, meta.mtime))
            .map_err(|e| fs_err(shown, "setting times", e))
    }

    /// After the mode's end of the layer, directory modes and times, deepest first.
    fn finish(&mut self) -> Result<(), ArchiveError> {
        self.mode.end_of_layer(&mut self.root, &self.dirs)?;
        let mut dirs: Vec<(Vec<u8>, DirMeta)> = self.dirs.drain().collect();
        dirs.sort_unstable_by_key(|(p, _)| std::cmp::Reverse(path::depth(p)));
        let created_mode = self.root.created_dir_mode();
        for (p, m) in dirs {
            let shown = if p.is_empty() {
                ".".to_string()
            } else {
                lossy(&p)
            };
            let opened;
            let fd = if p.is_empty() {
                self.root.root_fd()
            } else {
                match self.root.final_dir(&p) {
                    Ok(fd) => {
                        opened = fd;
                        opened.as_fd()
                    }
                    // Gone or replaced since (by a later member through a symlink): nothing to do.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                    Err(e) => return Err(fs_err(&shown, "opening directory", e)),
                }
            };
            let mode = self.mode.dir_mode(m.real.as_deref(), m.mode);
            // On the lower layers, the directory may come from one of them, with any mode.
            if M::ON_LOWER_LAYERS || p.is_empty() || created_mode != Some(mode) {
                rfs::fchmod(fd, Mode::from_raw_mode(mode))
                    .map_err(|e| fs_err(&shown, format!("chmod to {:o}", mode), e))?;
            }
            rfs::futimens(fd, &timestamps(m.atime, m.mtime))
                .map_err(|e| fs_err(&shown, "setting times", e))?;
        }
        Ok(())
    }
}

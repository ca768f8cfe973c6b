//! The member loop: one handler per member kind, all filesystem work through [`Root`].

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec};
use rustix::io::Errno;
use tar::EntryType;

use super::data::{self, CopyError, Layout};
use super::error::{ArchiveError, from_fs, fs_err, invalid, lossy};
use super::fsops::{self, DirFd, IMPLICIT_DIR_MODE, RealPath, Root, timestamps};
use super::meta::{self, Meta};
use super::options::{ApplyOptions, ApplyStats};
use super::overlay_xattr;
use super::path::{self, MemberPath};
use super::reader::{Member, Reader};
use super::whiteout::{self, Kind as Name};
use super::writeback::Writeback;

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

/// A directory's mode and times, applied at the end.
struct DirMeta {
    mode: u32,
    atime: Timespec,
    mtime: Timespec,
    /// Its real path (flatten mode only).
    real: Option<RealPath>,
}

/// Modes of directories kept owner-writable while later layers are flattened onto them, by
/// real path (see [`super::Flattener`]).
pub(crate) type DeferredModes = HashMap<Vec<u8>, u32>;

/// Flatten mode's bookkeeping for one layer.
#[derive(Default)]
struct Flat {
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

/// Overlay mode: a whiteout or opaque marker, applied again at the end of the layer against
/// what the layer then holds (see [`Applier::overlay_marks`]).
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

/// Adds `path` and its ancestors to `touched`.
fn touch(touched: &mut HashSet<Vec<u8>>, mut path: &[u8]) {
    while !path.is_empty() && touched.insert(path.to_vec()) {
        path = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => &path[..i],
            None => &[],
        };
    }
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

struct Applier<'o> {
    root: Root,
    opts: &'o ApplyOptions,
    /// Directory members by normalised path (later members of the same name win).
    dirs: HashMap<Vec<u8>, DirMeta>,
    buf: Vec<u8>,
    stats: ApplyStats,
    /// Flatten mode's bookkeeping (`None` in overlay mode).
    flat: Option<Flat>,
    /// Overlay mode: the layer's whiteouts and opaque markers, in order.
    marks: Vec<Mark>,
    /// Where restrictive directory modes go instead of onto the directories (flatten only).
    deferred: Option<&'o mut DeferredModes>,
    /// Large files, once written, go here to have their writeback started.
    writeback: Writeback,
}

pub(crate) fn apply<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ApplyOptions,
    deferred: Option<&mut DeferredModes>,
) -> Result<ApplyStats, ArchiveError> {
    let mut root = Root::open(dest).map_err(|source| ArchiveError::Dest {
        path: dest.to_path_buf(),
        source,
    })?;
    if opts.flatten {
        root.track_real_paths();
    } else {
        root.track_implicit_dirs();
    }
    let mut applier = Applier {
        root,
        opts,
        dirs: HashMap::new(),
        buf: Vec::new(),
        stats: ApplyStats::default(),
        flat: opts.flatten.then(Flat::default),
        marks: Vec::new(),
        deferred: if opts.flatten { deferred } else { None },
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

impl Applier<'_> {
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
            Name::Opaque => self.opaque(parent, &shown),
            Name::Whiteout(target) => self.whiteout(parent, target, &meta, &shown),
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
    /// directories created), and its real path in flatten mode.
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
        if let (Some(flat), Some(real)) = (&mut self.flat, &real) {
            note_times(&mut flat.times, real, fd.as_fd())
                .map_err(|e| fs_err(shown, "inspecting parent directory", e))?;
        }
        Ok((fd, real))
    }

    /// Flatten mode: records that this layer created `name` in the directory at `real`.
    fn created(&mut self, real: Option<&[u8]>, name: &[u8]) {
        if let (Some(flat), Some(real)) = (&mut self.flat, real) {
            touch(&mut flat.touched, &join(real, name));
        }
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
    /// unprivileged process may not set, and (`lenient`) those the kernel refuses on device
    /// nodes and fifos (`user.*`).
    fn xattr_result(
        &self,
        r: Result<(), Errno>,
        name: &CStr,
        lenient: bool,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        match r {
            Ok(()) | Err(Errno::OPNOTSUPP) => Ok(()),
            Err(Errno::PERM | Errno::ACCESS) if lenient || !self.opts.same_owner => Ok(()),
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
        self.created(real.as_deref(), name);
        let file = File::from(fd);
        let layout = match &meta.sparse {
            Some(sparse) => Layout::Sparse(sparse),
            None => Layout::Plain,
        };
        if self.buf.is_empty() {
            self.buf = vec![0; BUF_SIZE];
        }
        let logical =
            data::copy(data, meta.size, &file, layout, &mut self.buf).map_err(|e| match e {
                CopyError::Read(source) => ArchiveError::Io {
                    entry: Some(shown.to_string()),
                    source,
                },
                CopyError::Write(source) => fs_err(shown, "writing file data", source),
                CopyError::Invalid(reason) => invalid(shown, reason),
            })?;
        self.stats.bytes += logical;
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
        if replaced && self.flat.is_none() {
            // Overlay mode: what it replaces replaced the lower directory (entries apply in
            // order), so nothing of that may show through this one.
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rfs::openat(dir.as_fd(), name, flags, Mode::empty())
                .map_err(|e| fs_err(shown, "opening directory", e))?;
            self.set_opaque(fd.as_fd(), shown)?;
        }
        if made && self.root.has_implicit_dirs() {
            let st = rfs::statat(dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| fs_err(shown, "inspecting directory", e))?;
            self.root.forget_implicit(st.st_ino);
        }
        self.created(real.as_deref(), name);
        // Owner and xattrs now; mode and times at the end.
        let chown = match existing_owner {
            Some(owner) => self.opts.same_owner && owner != (meta.uid, meta.gid),
            None => self.chown_wanted(meta),
        };
        // Flatten mode: a directory over a directory (from a lower layer) has this member's
        // xattrs only, as in an overlay mount (and as umoci does).
        let clear = self.flat.is_some() && existing_owner.is_some();
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
        let real = real.map(|r| RealPath::from(join(&r, name)));
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
        if self.flat.is_some() {
            // Flatten mode: the lower layers' root takes this member's xattrs only.
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
                real: self.flat.is_some().then(|| RealPath::from(&[][..])),
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
        self.created(real.as_deref(), name);
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
        let flatten = self.flat.is_some();
        let not_found = || {
            let hint = if flatten {
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
                self.created(real.as_deref(), name);
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
                self.created(real.as_deref(), name);
            }
            // Flattening must not silently drop a device the image has.
            Err(e)
                if e.raw_os_error() == Some(Errno::PERM.raw_os_error())
                    && self.flat.is_some()
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
            // Unprivileged (e.g. in a user namespace): devices cannot be made; Docker skips them too.
            Err(e)
                if e.raw_os_error() == Some(Errno::PERM.raw_os_error())
                    && !self.opts.same_owner
                    && kind != Kind::Fifo =>
            {
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

    /// `DIR/.wh.NAME`: a 0/0 character device NAME, unless NAME exists (this layer made it:
    /// its own entry wins) or DIR goes through a symlink or a non-directory (nothing to hide
    /// there). Applied again at the end of the layer (see [`Applier::overlay_marks`]).
    fn whiteout(
        &mut self,
        parent: &[u8],
        target: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        if let Some(flat) = &mut self.flat {
            // Carried out at the end; the parent counts as this layer's (as in overlay mode,
            // where the whiteout's parent is a directory of the layer).
            touch(&mut flat.touched, parent);
            flat.removals.push(Removal::Whiteout {
                parent: parent.to_vec(),
                name: target.to_vec(),
                shown: shown.to_string(),
            });
            return Ok(());
        }
        self.marks.push(Mark::Whiteout {
            parent: parent.to_vec(),
            name: target.to_vec(),
            owner: (meta.uid, meta.gid),
            shown: shown.to_string(),
        });
        let Some(dir) = self
            .root
            .dir(parent, false)
            .map_err(|e| from_fs(shown, e))?
        else {
            return Ok(());
        };
        self.whiteout_device(dir.as_fd(), target, (meta.uid, meta.gid), shown)
    }

    /// Makes the whiteout device `name` in `dir`, owned by `owner`, unless `name` exists.
    fn whiteout_device(
        &self,
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
        if self.opts.same_owner && self.root.needs_chown(uid, gid) {
            fsops::lchownat(dir, name, uid, gid)
                .map_err(|e| fs_err(shown, format!("chown whiteout to {uid}:{gid}"), e))?;
        }
        Ok(())
    }

    /// Sets the opaque xattr on the directory `fd` (opened for reading).
    fn set_opaque(&self, fd: BorrowedFd<'_>, shown: &str) -> Result<(), ArchiveError> {
        let xattr = overlay_xattr::opaque(self.opts.userxattr);
        fsops::fsetxattr(fd, xattr, b"y")
            .map_err(|e| fs_err(shown, format!("setting {}", xattr.to_string_lossy()), e))
    }

    /// `DIR/.wh..wh..opq`: mark DIR opaque (creating it if missing), unless DIR goes through a
    /// symlink or a non-directory. Applied again at the end of the layer (see
    /// [`Applier::overlay_marks`]).
    fn opaque(&mut self, dir_path: &[u8], shown: &str) -> Result<(), ArchiveError> {
        if self.flat.is_some() {
            return self.flat_opaque(dir_path, shown);
        }
        self.marks.push(Mark::Opaque {
            dir: dir_path.to_vec(),
            shown: shown.to_string(),
        });
        let Some(dir) = self
            .root
            .dir(dir_path, false)
            .map_err(|e| from_fs(shown, e))?
        else {
            return Ok(());
        };
        // The handle is O_PATH (fsetxattr refuses those): reopen it for reading.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::openat(dir.as_fd(), c".", flags, Mode::empty())
            .map_err(|e| fs_err(shown, "opening directory", e))?;
        self.set_opaque(fd.as_fd(), shown)
    }

    /// Overlay mode, end of a layer: the whiteouts and opaque markers once more, against what
    /// the layer holds now, since later members may have replaced what they applied to. They
    /// hide lower content whatever their position in the layer and never the layer's own
    /// entries (the OCI meaning), so: a whiteout of a name that is now a directory of the
    /// layer makes it opaque (the lower one is deleted: none of its content may show through
    /// the layer's directory); one of a missing name in a directory gets its device (again: a
    /// later member may have replaced its parent, device included, by a new directory); one of
    /// anything else does nothing (the layer's entry replaces the lower one anyway). An opaque
    /// marker's directory that is still one is made opaque. Paths are resolved without
    /// following symlinks and creating nothing: below a symlink or a non-directory, nothing is
    /// hidden.
    fn overlay_marks(&mut self) -> Result<(), ArchiveError> {
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for mark in std::mem::take(&mut self.marks) {
            match mark {
                Mark::Whiteout {
                    parent,
                    name,
                    owner,
                    shown,
                } => {
                    let dir = match self.root.existing_dir_nofollow(&parent) {
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
                            self.whiteout_device(dir.as_fd(), &name, owner, &shown)?
                        }
                        Err(e) => return Err(fs_err(&shown, "inspecting whiteout target", e)),
                    }
                }
                Mark::Opaque { dir, shown } => match self.root.existing_dir_nofollow(&dir) {
                    Ok(fd) => self.set_opaque(fd.as_fd(), &shown)?,
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                    Err(e) => return Err(fs_err(&shown, "resolving opaque directory", e)),
                },
            }
        }
        Ok(())
    }

    /// Flatten mode's opaque marker: DIR (created when missing, as overlay mode does) becomes
    /// this layer's, and what is below it goes at the end. Ignored when DIR goes through a
    /// symlink or is not a directory (nothing to hide below it).
    fn flat_opaque(&mut self, dir_path: &[u8], shown: &str) -> Result<(), ArchiveError> {
        match self.root.existing_dir_nofollow(dir_path) {
            Ok(_) => {}
            Err(Errno::NOENT) => {
                if self
                    .root
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
        if let Some(flat) = &mut self.flat {
            touch(&mut flat.touched, dir_path);
            flat.removals.push(Removal::Opaque {
                dir: dir_path.to_vec(),
                shown: shown.to_string(),
            });
        }
        Ok(())
    }

    /// Flatten mode, end of a layer: the whiteouts and opaque markers, in order, removing
    /// nothing this layer created. A whiteout of a directory this layer created (or needed as
    /// a parent) removes what is below it as an opaque marker does: the lower directory is
    /// deleted, so none of its content may remain in the layer's (an overlay-mode layer makes
    /// that directory opaque). A whiteout whose parent goes through a symlink or is not a
    /// directory is ignored; one of a missing name is fine.
    fn flat_removals(&mut self, flat: &mut Flat) -> Result<(), ArchiveError> {
        for removal in &flat.removals {
            match removal {
                Removal::Whiteout {
                    parent,
                    name,
                    shown,
                } => {
                    let path = join(parent, name);
                    if flat.touched.contains(&path) {
                        // Nothing happens unless it is a directory (not through a symlink).
                        self.clear_below(&path, &flat.touched, &mut flat.times, shown)?;
                        continue;
                    }
                    let dir = match self.root.existing_dir_nofollow(parent) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                        Err(e) => return Err(fs_err(shown, "resolving whiteout parent", e)),
                    };
                    note_times(&mut flat.times, parent, dir.as_fd())
                        .map_err(|e| fs_err(shown, "inspecting whiteout parent", e))?;
                    self.root
                        .remove(dir.as_fd(), name)
                        .map_err(|e| fs_err(shown, format!("removing {}", fsops::show(name)), e))?;
                }
                Removal::Opaque { dir, shown } => {
                    self.clear_below(dir, &flat.touched, &mut flat.times, shown)?
                }
            }
        }
        Ok(())
    }

    /// Removes everything below the directory `top` that is not in `touched`, descending into
    /// the directories that are (iteratively, not following symlinks).
    fn clear_below(
        &mut self,
        top: &[u8],
        touched: &HashSet<Vec<u8>>,
        times: &mut HashMap<Vec<u8>, (Timespec, Timespec)>,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let mut todo = vec![top.to_vec()];
        while let Some(dir_path) = todo.pop() {
            let fd = match self.root.existing_dir_nofollow(&dir_path) {
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
            let listing =
                |e: Errno| fs_err(shown, format!("listing {}", fsops::show(&dir_path)), e);
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
                let child = join(&dir_path, &name);
                if !touched.contains(&child) {
                    note_times(times, &dir_path, fd.as_fd()).map_err(|e| {
                        fs_err(shown, format!("inspecting {}", fsops::show(&dir_path)), e)
                    })?;
                    self.root.remove(fd.as_fd(), &name).map_err(|e| {
                        fs_err(shown, format!("removing {}", fsops::show(&child)), e)
                    })?;
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

    /// Flatten mode: the directories this layer changed without listing them get their times
    /// back.
    fn restore_times(&self, flat: &Flat) -> Result<(), ArchiveError> {
        let listed: HashSet<&[u8]> = self
            .dirs
            .values()
            .filter_map(|m| m.real.as_deref())
            .collect();
        for (real, (atime, mtime)) in &flat.times {
            if listed.contains(&real[..]) {
                continue;
            }
            let shown = if real.is_empty() {
                ".".to_string()
            } else {
                lossy(real)
            };
            let fd = match self.root.existing_dir_nofollow(real) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(fs_err(&shown, "opening directory", e)),
            };
            rfs::futimens(&fd, &timestamps(*atime, *mtime))
                .map_err(|e| fs_err(&shown, "restoring times", e))?;
        }
        Ok(())
    }

    /// Directory modes and times, deepest first (after flatten mode's removals and overlay
    /// mode's marks). With
    /// `deferred`, a mode without owner rwx is given owner rwx for now and recorded.
    fn finish(&mut self) -> Result<(), ArchiveError> {
        if let Some(mut flat) = self.flat.take() {
            self.flat_removals(&mut flat)?;
            self.restore_times(&flat)?;
        }
        self.overlay_marks()?;
        let flatten = self.opts.flatten;
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
            let mut mode = m.mode;
            if let (Some(deferred), Some(real)) = (&mut self.deferred, &m.real) {
                if mode & 0o700 == 0o700 {
                    deferred.remove(&real[..]);
                } else {
                    deferred.insert(real.to_vec(), mode);
                    mode |= 0o700;
                }
            }
            // Flatten mode: the directory may come from a lower layer, with any mode.
            if flatten || p.is_empty() || created_mode != Some(mode) {
                rfs::fchmod(fd, Mode::from_raw_mode(mode))
                    .map_err(|e| fs_err(&shown, format!("chmod to {:o}", mode), e))?;
            }
            rfs::futimens(fd, &timestamps(m.atime, m.mtime))
                .map_err(|e| fs_err(&shown, "setting times", e))?;
        }
        Ok(())
    }
}

/// Gives the directories recorded in `deferred` (by real path) their modes, deepest first;
/// those gone or replaced since are skipped.
pub(crate) fn restore_modes(dest: &Path, deferred: &DeferredModes) -> Result<(), ArchiveError> {
    let root = Root::open(dest).map_err(|source| ArchiveError::Dest {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut dirs: Vec<(&Vec<u8>, &u32)> = deferred.iter().collect();
    dirs.sort_unstable_by_key(|(p, _)| std::cmp::Reverse(path::depth(p)));
    for (p, &mode) in dirs {
        let shown = if p.is_empty() {
            ".".to_string()
        } else {
            lossy(p)
        };
        let fd = match root.existing_dir_nofollow(p) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
            Err(e) => return Err(fs_err(&shown, "opening directory", e)),
        };
        rfs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| fs_err(&shown, format!("chmod to {mode:o}"), e))?;
    }
    Ok(())
}

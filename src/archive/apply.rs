//! The member loop: one handler per member kind, all filesystem work through [`Root`].

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec};
use rustix::io::Errno;
use tar::EntryType;

use super::data::{self, CopyError, Layout};
use super::fsops::{self, DirFd, FsError, IMPLICIT_DIR_MODE, Root, timestamps};
use super::meta::{self, Meta};
use super::path::{self, MemberPath};
use super::whiteout::{self, Kind as Name};
use super::{ApplyOptions, ApplyStats, ArchiveError};

/// File data is copied through a buffer of this size, allocated once per layer.
const BUF_SIZE: usize = 256 * 1024;

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
}

struct Applier<'o> {
    root: Root,
    opts: &'o ApplyOptions,
    /// Directory members by normalised path (later members of the same name win).
    dirs: HashMap<Vec<u8>, DirMeta>,
    buf: Vec<u8>,
    stats: ApplyStats,
}

pub(crate) fn apply<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ArchiveError> {
    let root = Root::open(dest).map_err(|source| ArchiveError::Dest {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut applier = Applier {
        root,
        opts,
        dirs: HashMap::new(),
        buf: Vec::new(),
        stats: ApplyStats::default(),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_ignore_zeros(false);
    let entries = archive.entries().map_err(|source| ArchiveError::Io {
        entry: None,
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| ArchiveError::Io {
            entry: None,
            source,
        })?;
        applier.entry(&mut entry)?;
    }
    applier.finish()?;
    Ok(applier.stats)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn invalid(shown: &str, reason: impl ToString) -> ArchiveError {
    ArchiveError::Invalid {
        path: shown.to_string(),
        reason: reason.to_string(),
    }
}

fn fs_err(shown: &str, op: impl Into<String>, source: impl Into<std::io::Error>) -> ArchiveError {
    ArchiveError::Fs {
        path: shown.to_string(),
        op: op.into(),
        source: source.into(),
    }
}

fn from_fs(shown: &str, e: FsError) -> ArchiveError {
    fs_err(shown, e.op, e.source)
}

fn kind_of(et: EntryType, raw: u8, name: &[u8]) -> Result<Kind, String> {
    Ok(match et {
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
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let header = entry.header();
        let raw_type = header.as_old().linkflag[0];
        let entry_type = header.entry_type();
        // A global PAX header or a GNU volume label: nothing to apply (Docker ignores both).
        if matches!(raw_type, b'g' | b'V') {
            return Ok(());
        }
        let meta =
            meta::read(entry).map_err(|reason| invalid(&lossy(&entry.path_bytes()), reason))?;
        let shown = lossy(&meta.name);
        let kind = kind_of(entry_type, raw_type, &meta.name).map_err(|r| invalid(&shown, r))?;
        // Go's archive/tar reads no data for these types whatever the size says, the tar crate
        // skips `size` bytes: refuse rather than read such a layer differently from Docker.
        if kind != Kind::File && entry.size() != 0 {
            return Err(invalid(
                &shown,
                format!(
                    "a {} member must not carry data ({} bytes)",
                    kind.name(),
                    entry.size()
                ),
            ));
        }
        if meta.sparse.is_some() && (kind != Kind::File || entry_type.is_gnu_sparse()) {
            return Err(invalid(
                &shown,
                "GNU.sparse PAX records on a member that is not a plain regular file",
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
                Kind::File => self.file(entry, &path, parent, name, &meta, &shown),
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
    /// directories created).
    fn parent(&mut self, parent: &[u8], shown: &str) -> Result<DirFd, ArchiveError> {
        self.root
            .dir(parent, true)
            .map_err(|e| from_fs(shown, e))?
            .ok_or_else(|| invalid(shown, "parent directory could not be resolved"))
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

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &MemberPath,
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let dir = self.parent(parent, shown)?;
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
        let file = File::from(fd);
        let layout = match &meta.sparse {
            Some(sparse) => Layout::Pax(sparse),
            None if entry.header().entry_type().is_gnu_sparse() => Layout::ZeroSkip,
            None => Layout::Plain,
        };
        if self.buf.is_empty() {
            self.buf = vec![0; BUF_SIZE];
        }
        let size = entry.size();
        let logical =
            data::copy(entry, size, &file, layout, &mut self.buf).map_err(|e| match e {
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
            .map_err(|e| fs_err(shown, "setting times", e))
    }

    fn directory(
        &mut self,
        path: &MemberPath,
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let dir = self.parent(parent, shown)?;
        let mkdir = || rfs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(IMPLICIT_DIR_MODE));
        // The owner of a directory that was already there (None: we just made it).
        let mut existing_owner = None;
        match mkdir() {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rfs::statat(dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fs_err(shown, "inspecting existing entry", e))?;
                // An existing directory is kept (only its metadata changes); anything else goes.
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    existing_owner = Some((st.st_uid, st.st_gid));
                } else {
                    let removed = self
                        .root
                        .remove(dir.as_fd(), name)
                        .map_err(|e| fs_err(shown, "removing existing entry", e))?;
                    self.removed(path, removed);
                    mkdir().map_err(|e| fs_err(shown, "creating directory", e))?;
                }
            }
            Err(e) => return Err(fs_err(shown, "creating directory", e)),
        }
        // Owner and xattrs now; mode and times at the end.
        let chown = match existing_owner {
            Some(owner) => self.opts.same_owner && owner != (meta.uid, meta.gid),
            None => self.chown_wanted(meta),
        };
        if !meta.xattrs.is_empty() {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rfs::openat(dir.as_fd(), name, flags, Mode::empty())
                .map_err(|e| fs_err(shown, "opening directory", e))?;
            self.fd_metadata(fd.as_fd(), meta, chown, false, shown)?;
        } else if chown {
            fsops::lchownat(dir.as_fd(), name, meta.uid, meta.gid)
                .map_err(|e| fs_err(shown, format!("chown to {}:{}", meta.uid, meta.gid), e))?;
        }
        self.dirs.insert(
            path.as_bytes().to_vec(),
            DirMeta {
                mode: meta.mode,
                atime: meta.atime,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    fn root_dir(&mut self, meta: &Meta, shown: &str) -> Result<(), ArchiveError> {
        // The destination's owner is whatever the caller made it: always chown.
        let chown = self.opts.same_owner;
        self.fd_metadata(self.root.root_fd(), meta, chown, false, shown)?;
        self.dirs.insert(
            Vec::new(),
            DirMeta {
                mode: meta.mode,
                atime: meta.atime,
                mtime: meta.mtime,
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
        let dir = self.parent(parent, shown)?;
        // The target is stored as is: symlinks are only ever resolved inside the root.
        let (_, removed) = self
            .root
            .create_replacing(dir.as_fd(), name, || {
                rfs::symlinkat(target, dir.as_fd(), name)
            })
            .map_err(|e| fs_err(shown, "creating symlink", e))?;
        self.removed(path, removed);
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
            invalid(
                shown,
                format!(
                    "hardlink target {tshown:?} does not exist (it must be an earlier member of this layer)"
                ),
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
        let dir = self.parent(parent, shown)?;
        // Flags 0: a symlink target is linked itself, never followed.
        match self.root.create_replacing(dir.as_fd(), name, || {
            rfs::linkat(tdir.as_fd(), tname, dir.as_fd(), name, AtFlags::empty())
        }) {
            Ok((_, removed)) => {
                self.removed(path, removed);
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
        let dir = self.parent(parent, shown)?;
        let perm = Mode::from_raw_mode(meta.mode & 0o777);
        match self.root.create_replacing(dir.as_fd(), name, || {
            rfs::mknodat(dir.as_fd(), name, file_type, perm, dev)
        }) {
            Ok((_, removed)) => self.removed(path, removed),
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
    /// its own entry wins) or DIR goes through a symlink (nothing to hide there).
    fn whiteout(
        &mut self,
        parent: &[u8],
        target: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        let Some(dir) = self
            .root
            .dir(parent, false)
            .map_err(|e| from_fs(shown, e))?
        else {
            return Ok(());
        };
        match rfs::mknodat(
            dir.as_fd(),
            target,
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        ) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(()),
            Err(e) => {
                return Err(fs_err(
                    shown,
                    format!("creating whiteout device {}", fsops::show(target)),
                    e,
                ));
            }
        }
        if self.chown_wanted(meta) {
            fsops::lchownat(dir.as_fd(), target, meta.uid, meta.gid).map_err(|e| {
                fs_err(
                    shown,
                    format!("chown whiteout to {}:{}", meta.uid, meta.gid),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// `DIR/.wh..wh..opq`: mark DIR opaque (creating it if missing), unless DIR goes through a
    /// symlink.
    fn opaque(&mut self, dir_path: &[u8], shown: &str) -> Result<(), ArchiveError> {
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
        let xattr: &CStr = if self.opts.userxattr {
            c"user.overlay.opaque"
        } else {
            c"trusted.overlay.opaque"
        };
        fsops::fsetxattr(&fd, xattr, b"y")
            .map_err(|e| fs_err(shown, format!("setting {}", xattr.to_string_lossy()), e))
    }

    /// Directory modes and times, deepest first.
    fn finish(&mut self) -> Result<(), ArchiveError> {
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
            if p.is_empty() || created_mode != Some(m.mode) {
                rfs::fchmod(fd, Mode::from_raw_mode(m.mode))
                    .map_err(|e| fs_err(&shown, format!("chmod to {:o}", m.mode), e))?;
            }
            rfs::futimens(fd, &timestamps(m.atime, m.mtime))
                .map_err(|e| fs_err(&shown, "setting times", e))?;
        }
        Ok(())
    }
}

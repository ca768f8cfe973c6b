//! Confined filesystem operations relative to one directory fd, the layer root.
//!
//! Every parent directory is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! relative to the root fd, so symlinks created by the layer resolve inside the root the way a
//! container sees them (`var/run -> /run` makes `var/run/x` land at `<root>/run/x`) and the
//! kernel guarantees nothing outside the root is reached. The final component is then handled
//! with `*at()` calls that never follow it. No host path is ever built from a member name.
//! Paths the kernel refuses as too long (PATH_MAX) are walked one name at a time instead, with
//! symlinks resolved the same way in user space (`open_long`).
//!
//! The most recently used parent directory is cached (members come grouped by directory). Any
//! removal of a directory or symlink may change what a path resolves to, so it drops the cache;
//! handles are reference-counted so a caller's handle stays valid across such a drop.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::sys;
use crate::sys::xattr::{self, Target};

/// Mode of directories created implicitly (missing parents) and of every directory until its
/// own metadata is applied at the end.
pub(crate) const IMPLICIT_DIR_MODE: u32 = 0o755;

const RESOLVE_NOSYM: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_SYMLINKS);
const RESOLVE_FOLLOW: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
const DIR_PATH: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
const DIR_READ: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A failed filesystem operation: what was being done, and the error.
#[derive(Debug)]
pub(crate) struct FsError {
    pub op: String,
    pub source: io::Error,
}

impl FsError {
    pub(crate) fn new(op: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Self {
            op: op.into(),
            source: source.into(),
        }
    }
}

/// Shows a path for messages.
pub(crate) fn show(path: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(path))
}

/// A directory handle (`O_PATH` for parents; the root's is readable).
pub(crate) type DirFd = Rc<OwnedFd>;

struct Cached {
    path: Vec<u8>,
    fd: DirFd,
    via_symlink: bool,
    /// The directory's path from the root with every symlink resolved (only when tracked).
    real: Option<RealPath>,
}

/// A directory's path from the root with every symlink resolved ("" is the root).
pub(crate) type RealPath = Rc<[u8]>;

/// The layer root and what applying a layer needs to know about the process.
pub(crate) struct Root {
    fd: DirFd,
    cache: Option<Cached>,
    /// Owner of what we create (the effective uid).
    pub creator_uid: u32,
    /// Group of what we create (the effective gid, or the root's gid when it is setgid).
    pub creator_gid: u32,
    /// The process umask, when /proc says it.
    pub umask: Option<u32>,
    /// True when the root directory is setgid (new directories inherit the bit).
    pub setgid_root: bool,
    /// Whether [`Root::dir_real`] computes real paths (flatten mode needs them).
    track_real: bool,
    /// Directories created implicitly; `None` unless [`Root::track_implicit_dirs`] was called.
    implicit: Option<Implicit>,
}

/// At most this many implicit directories are recorded ...
const MAX_IMPLICIT_DIRS: usize = 16 * 1024;
/// ... with at most this many bytes of paths in all: a hostile layer (one member 100,000
/// directories deep) must not make strata build (and later look up) paths of quadratic total
/// size. Beyond that, the remaining ones are not reported (and keep their defaults).
const MAX_IMPLICIT_BYTES: usize = 1 << 20;

/// Directories created implicitly (missing parents, whiteouts replaced by parents).
#[derive(Default)]
struct Implicit {
    /// Real paths by inode number (a directory named by a member later is removed by its
    /// number, wherever it is).
    by_ino: HashMap<u64, Vec<u8>>,
    /// Bytes of paths built so far.
    bytes: usize,
    /// A limit was reached: nothing more is recorded.
    full: bool,
}

impl Root {
    /// Opens `dest`, which must be a directory.
    pub(crate) fn open(dest: &Path) -> io::Result<Self> {
        // The destination is the caller's choice: a symlink there is followed.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::open(dest, flags, Mode::empty())?;
        let st = rfs::fstat(&fd)?;
        let setgid_root = st.st_mode & 0o2000 != 0;
        let creator_gid = if setgid_root {
            st.st_gid
        } else {
            rustix::process::getegid().as_raw()
        };
        Ok(Self {
            fd: Rc::new(fd),
            cache: None,
            creator_uid: rustix::process::geteuid().as_raw(),
            creator_gid,
            umask: read_umask(),
            setgid_root,
            track_real: false,
            implicit: None,
        })
    }

    /// Makes the root record the directories it creates implicitly (see
    /// [`Root::implicit_dirs`]).
    pub(crate) fn track_implicit_dirs(&mut self) {
        self.implicit = Some(Implicit::default());
    }

    /// True when implicit directories are tracked and some were recorded.
    pub(crate) fn has_implicit_dirs(&self) -> bool {
        self.implicit.as_ref().is_some_and(|i| !i.by_ino.is_empty())
    }

    /// Forgets the implicit directory with inode number `ino`, if any: a member of the layer
    /// names it (or it is gone and the number was reused).
    pub(crate) fn forget_implicit(&mut self, ino: u64) {
        if let Some(implicit) = &mut self.implicit {
            implicit.by_ino.remove(&ino);
        }
    }

    /// The implicitly created directories that are still there, unchanged, at their real
    /// paths (a directory removed since, or replaced by anything else, is left out), sorted
    /// (parents before children). Empty unless tracked; at most [`MAX_IMPLICIT_DIRS`] with
    /// [`MAX_IMPLICIT_BYTES`] of paths.
    pub(crate) fn implicit_dirs(&self) -> Result<Vec<Vec<u8>>, FsError> {
        let Some(implicit) = &self.implicit else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (&ino, path) in &implicit.by_ino {
            let err = |e: Errno| FsError::new(format!("inspecting directory {}", show(path)), e);
            let fd = match openat2(&self.fd, path, DIR_PATH, RESOLVE_NOSYM) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(err(e)),
            };
            if rfs::fstat(&fd).map_err(err)?.st_ino == ino {
                out.push(path.clone());
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Records the directory `fd`, just created implicitly at the real path `walked` +
    /// `name`, when tracking and within the limits.
    fn note_implicit(
        &mut self,
        walked: &[Vec<u8>],
        name: &[u8],
        fd: BorrowedFd<'_>,
    ) -> Result<(), Errno> {
        let Some(implicit) = &mut self.implicit else {
            return Ok(());
        };
        if implicit.full {
            return Ok(());
        }
        let mut real = walked.join(&b'/');
        if !real.is_empty() {
            real.push(b'/');
        }
        real.extend_from_slice(name);
        implicit.bytes += real.len();
        if implicit.bytes > MAX_IMPLICIT_BYTES || implicit.by_ino.len() >= MAX_IMPLICIT_DIRS {
            implicit.full = true;
            return Ok(());
        }
        let ino = rfs::fstat(fd)?.st_ino;
        implicit.by_ino.insert(ino, real);
        Ok(())
    }

    /// Makes [`Root::dir_real`] return real paths (at the cost of resolving paths that go
    /// through symlinks component by component).
    pub(crate) fn track_real_paths(&mut self) {
        self.track_real = true;
        self.cache = None;
    }

    /// The root directory (opened read-only, usable for fchown/fsetxattr/futimens).
    pub(crate) fn root_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Drops the cached parent directory.
    pub(crate) fn invalidate(&mut self) {
        self.cache = None;
    }

    /// The directory at the normalised path `path` ("" is the root), creating missing
    /// components as [`IMPLICIT_DIR_MODE`] directories owned by the creator. A component that is
    /// a whiteout (a 0/0 character device) is replaced by a directory.
    ///
    /// Without `follow`, symlinks are not followed anywhere in `path` and `None` is returned
    /// when the path goes through one or through anything else that is not a directory.
    pub(crate) fn dir(&mut self, path: &[u8], follow: bool) -> Result<Option<DirFd>, FsError> {
        Ok(self.dir_real(path, follow)?.map(|(fd, _)| fd))
    }

    /// Like [`Root::dir`], also returning the directory's real path (every symlink resolved)
    /// when [`Root::track_real_paths`] was called.
    pub(crate) fn dir_real(
        &mut self,
        path: &[u8],
        follow: bool,
    ) -> Result<Option<(DirFd, Option<RealPath>)>, FsError> {
        if path.is_empty() {
            let real = self.track_real.then(|| RealPath::from(&[][..]));
            return Ok(Some((self.fd.clone(), real)));
        }
        if let Some(c) = &self.cache
            && c.path == path
            && (follow || !c.via_symlink)
        {
            return Ok(Some((c.fd.clone(), c.real.clone())));
        }
        let Some((fd, via_symlink, real)) = self.resolve(path, follow)? else {
            return Ok(None);
        };
        let fd = Rc::new(fd);
        match &mut self.cache {
            Some(c) => {
                c.path.clear();
                c.path.extend_from_slice(path);
                c.fd = fd.clone();
                c.via_symlink = via_symlink;
                c.real = real.clone();
            }
            None => {
                self.cache = Some(Cached {
                    path: path.to_vec(),
                    fd: fd.clone(),
                    via_symlink,
                    real: real.clone(),
                })
            }
        }
        Ok(Some((fd, real)))
    }

    /// The directory, whether a symlink was followed, and its real path when tracked.
    fn resolve(
        &mut self,
        path: &[u8],
        follow: bool,
    ) -> Result<Option<(OwnedFd, bool, Option<RealPath>)>, FsError> {
        let err = |e: Errno| FsError::new(format!("resolving directory {}", show(path)), e);
        match openat2(&self.fd, path, DIR_PATH, RESOLVE_NOSYM) {
            // No symlink on the way: the path is the real path.
            Ok(fd) => {
                let real = self.track_real.then(|| RealPath::from(path));
                return Ok(Some((fd, false, real)));
            }
            Err(Errno::LOOP) if !follow => return Ok(None),
            // Where a symlink leads is only known to the slow walk.
            Err(Errno::LOOP) if self.track_real => {}
            Err(Errno::LOOP) => match openat2(&self.fd, path, DIR_PATH, RESOLVE_FOLLOW) {
                Ok(fd) => return Ok(Some((fd, true, None))),
                Err(Errno::NOENT | Errno::NOTDIR) => {}
                Err(e) => return Err(err(e)),
            },
            Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(e) => return Err(err(e)),
        }
        Ok(self.resolve_slow(path, follow)?.map(|(fd, via, walked)| {
            let real = self.track_real.then(|| RealPath::from(walked));
            (fd, via, real)
        }))
    }

    /// Component by component, creating what is missing. Symlinks are resolved here in user
    /// space the way `RESOLVE_IN_ROOT` does (absolute targets restart at the root, `..` never
    /// goes above it), which also lets a missing symlink target be created: `var/run -> /run`
    /// with no `run` yet makes `var/run/x` create `<root>/run`. Only child names without `/`
    /// are ever opened, with `O_NOFOLLOW`, relative to a handle reached from the root, and `..`
    /// goes back to the directory walked through (see [`climb`]), so nothing outside the root
    /// is reachable. Only one handle is held at a time, however deep the path.
    /// Returns the handle, whether a symlink was followed, and the real path walked.
    fn resolve_slow(
        &mut self,
        path: &[u8],
        follow: bool,
    ) -> Result<Option<(OwnedFd, bool, Vec<u8>)>, FsError> {
        let err = |what: String, e: Errno| {
            FsError::new(format!("resolving directory {}: {what}", show(path)), e)
        };
        // The real directories walked from the root (no symlinks among them), and a handle on
        // the last (None: the root).
        let mut walked: Vec<Vec<u8>> = Vec::new();
        let mut cur_fd: Option<OwnedFd> = None;
        // Their identities.
        let mut ids: Vec<DirId> = Vec::new();
        // Components still to walk, last first.
        let mut todo: Vec<Vec<u8>> = path
            .split(|&b| b == b'/')
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut via = false;
        let mut links = 0;
        while let Some(comp) = todo.pop() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    walked.pop();
                    ids.pop();
                    if let Some(cur) = &cur_fd {
                        cur_fd = climb(self.fd.as_fd(), cur.as_fd(), &walked, &ids)
                            .map_err(|e| err("going up".into(), e))?;
                    }
                    continue;
                }
                _ => {}
            }
            let root = self.fd.clone();
            let cur = cur_fd.as_ref().map_or(root.as_fd(), |f| f.as_fd());
            let next = match rfs::openat(
                cur,
                &comp[..],
                DIR_PATH.union(OFlags::NOFOLLOW),
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    let fd = make_dir(cur, &comp)
                        .map_err(|e| err(format!("creating {}", show(&comp)), e))?;
                    self.note_implicit(&walked, &comp, fd.as_fd())
                        .map_err(|e| err(format!("inspecting {}", show(&comp)), e))?;
                    fd
                }
                // O_PATH | O_NOFOLLOW opens a symlink itself, which O_DIRECTORY then refuses.
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    let st = rfs::statat(cur, &comp[..], AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| err(show(&comp), e))?;
                    match FileType::from_raw_mode(st.st_mode) {
                        FileType::Symlink if !follow => return Ok(None),
                        FileType::Symlink => {
                            links += 1;
                            if links > 40 {
                                return Err(err("too many symlinks".into(), Errno::LOOP));
                            }
                            via = true;
                            let target = rfs::readlinkat(cur, &comp[..], Vec::new())
                                .map_err(|e| err(show(&comp), e))?;
                            let target = target.into_bytes();
                            if target.starts_with(b"/") {
                                walked.clear();
                                ids.clear();
                                cur_fd = None;
                            }
                            todo.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                            continue;
                        }
                        _ if is_whiteout(&st) => {
                            rfs::unlinkat(cur, &comp[..], AtFlags::empty())
                                .map_err(|e| err(show(&comp), e))?;
                            let fd = make_dir(cur, &comp).map_err(|e| {
                                err(format!("replacing whiteout {}", show(&comp)), e)
                            })?;
                            self.note_implicit(&walked, &comp, fd.as_fd())
                                .map_err(|e| err(format!("inspecting {}", show(&comp)), e))?;
                            fd
                        }
                        // Without `follow` (whiteouts, opaque markers): nothing to hide below
                        // a non-directory, as below a symlink.
                        _ if !follow => return Ok(None),
                        _ => {
                            return Err(err(
                                format!("{} is not a directory", show(&comp)),
                                Errno::NOTDIR,
                            ));
                        }
                    }
                }
                Err(e) => return Err(err(show(&comp), e)),
            };
            ids.push(dir_id(next.as_fd()).map_err(|e| err(show(&comp), e))?);
            walked.push(comp);
            cur_fd = Some(next);
        }
        let fd = match cur_fd {
            Some(fd) => fd,
            None => rfs::openat(self.fd.as_fd(), c".", DIR_PATH, Mode::empty())
                .map_err(|e| err("the root".into(), e))?,
        };
        Ok(Some((fd, via, walked.join(&b'/'))))
    }

    /// Opens an existing directory (following symlinks inside the root), creating nothing.
    pub(crate) fn existing_dir(&self, path: &[u8]) -> Result<DirFd, Errno> {
        if path.is_empty() {
            return Ok(self.fd.clone());
        }
        openat2(&self.fd, path, DIR_PATH, RESOLVE_FOLLOW).map(Rc::new)
    }

    /// Opens the existing directory at `path` for reading, following no symlink anywhere in
    /// it and creating nothing ("" is the root).
    pub(crate) fn existing_dir_nofollow(&self, path: &[u8]) -> Result<OwnedFd, Errno> {
        if path.is_empty() {
            return rfs::openat(self.fd.as_fd(), c".", DIR_READ, Mode::empty());
        }
        openat2(&self.fd, path, DIR_READ, RESOLVE_NOSYM)
    }

    /// Opens the directory at `path` for metadata changes; its final component is not followed.
    pub(crate) fn final_dir(&self, path: &[u8]) -> Result<OwnedFd, Errno> {
        openat2(&self.fd, path, DIR_READ, RESOLVE_FOLLOW)
    }

    /// Removes whatever is at `name` in `parent` (a directory with its whole tree); returns the
    /// type removed, `None` if nothing was there.
    pub(crate) fn remove(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
    ) -> io::Result<Option<FileType>> {
        let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        match ft {
            FileType::Directory => {
                self.invalidate();
                remove_tree(parent, name)?;
            }
            FileType::Symlink => {
                self.invalidate();
                rfs::unlinkat(parent, name, AtFlags::empty())?;
            }
            _ => rfs::unlinkat(parent, name, AtFlags::empty())?,
        }
        Ok(Some(ft))
    }

    /// Runs `create` (which makes `name` in `parent` and fails with EEXIST when the name is
    /// taken); when taken, removes what is there and runs it once more. Returns its result and
    /// the type of what was removed.
    pub(crate) fn create_replacing<T>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        mut create: impl FnMut() -> Result<T, Errno>,
    ) -> io::Result<(T, Option<FileType>)> {
        match create() {
            Ok(t) => Ok((t, None)),
            Err(Errno::EXIST) => {
                let removed = self.remove(parent, name)?;
                Ok((create()?, removed))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// True when an object owned by `uid:gid` needs a chown after we create it.
    pub(crate) fn needs_chown(&self, uid: u32, gid: u32) -> bool {
        uid != self.creator_uid || gid != self.creator_gid
    }

    /// True when an object created with `mode & 0o777` needs a chmod to get `mode` (the umask
    /// took bits, or setuid/setgid/sticky are wanted, which creation never sets reliably and
    /// chown clears).
    pub(crate) fn needs_chmod(&self, mode: u32) -> bool {
        mode & 0o7000 != 0 || self.umask.is_none_or(|u| mode & u & 0o777 != 0)
    }

    /// The mode a directory we created has until its metadata is applied, when known.
    pub(crate) fn created_dir_mode(&self) -> Option<u32> {
        if self.setgid_root {
            return None;
        }
        self.umask.map(|u| IMPLICIT_DIR_MODE & !u)
    }
}

/// `openat2` of a directory below the root `dirfd` (`resolve` has `RESOLVE_IN_ROOT`), with
/// [`sys::openat2`]'s retries. A path too long for one call (PATH_MAX is 4096 bytes, and a
/// layer may nest deeper) is walked one component at a time by [`open_long`] instead.
fn openat2(
    dirfd: impl AsFd,
    path: &[u8],
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    match sys::openat2::openat2(dirfd.as_fd(), path, flags, resolve) {
        Err(Errno::NAMETOOLONG) => open_long(dirfd.as_fd(), path, flags, resolve),
        r => r,
    }
}

/// What `openat2(root, path, flags, resolve)` opens, for a directory path too long for the
/// kernel: walked one name at a time with `O_NOFOLLOW`, symlinks (unless `resolve` has
/// `RESOLVE_NO_SYMLINKS`, which makes them `ELOOP`) resolved in user space the way
/// `RESOLVE_IN_ROOT` does: absolute targets restart at `root`, `..` never goes above it and
/// goes back to the directory walked through (see [`climb`]), at most 40 links; the final
/// component is followed unless `flags` has `O_NOFOLLOW`. Only single names are opened,
/// relative to a handle reached from `root`, one handle held at a time.
fn open_long(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    debug_assert!(resolve.contains(ResolveFlags::IN_ROOT) && flags.contains(OFlags::DIRECTORY));
    let follow = !resolve.contains(ResolveFlags::NO_SYMLINKS);
    let follow_last = follow && !flags.contains(OFlags::NOFOLLOW);
    // Components still to walk, last first.
    let push = |todo: &mut Vec<Vec<u8>>, p: &[u8]| {
        let comps = p
            .split(|&b| b == b'/')
            .filter(|c| !matches!(*c, b"" | b"."));
        todo.extend(comps.rev().map(<[u8]>::to_vec));
    };
    let mut todo = Vec::new();
    push(&mut todo, path);
    let mut walked: Vec<Vec<u8>> = Vec::new();
    let mut ids: Vec<DirId> = Vec::new();
    let mut cur: Option<OwnedFd> = None;
    let mut links = 0;
    let step_flags = DIR_PATH.union(OFlags::NOFOLLOW);
    while let Some(comp) = todo.pop() {
        if comp == b".." {
            walked.pop();
            ids.pop();
            if let Some(fd) = &cur {
                cur = climb(root, fd.as_fd(), &walked, &ids)?;
            }
            continue;
        }
        let at = cur.as_ref().map_or(root, |f| f.as_fd());
        match rfs::openat(at, &comp[..], step_flags, Mode::empty()) {
            Ok(fd) => {
                ids.push(dir_id(fd.as_fd())?);
                walked.push(comp);
                cur = Some(fd);
            }
            // O_PATH | O_NOFOLLOW opens a symlink itself, which O_DIRECTORY then refuses.
            Err(Errno::NOTDIR | Errno::LOOP) => {
                let st = rfs::statat(at, &comp[..], AtFlags::SYMLINK_NOFOLLOW)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                    return Err(Errno::NOTDIR);
                }
                links += 1;
                if !follow || (todo.is_empty() && !follow_last) || links > 40 {
                    return Err(Errno::LOOP);
                }
                let target = rfs::readlinkat(at, &comp[..], Vec::new())?.into_bytes();
                if target.starts_with(b"/") {
                    walked.clear();
                    ids.clear();
                    cur = None;
                }
                push(&mut todo, &target);
            }
            Err(e) => return Err(e),
        }
    }
    let at = cur.as_ref().map_or(root, |f| f.as_fd());
    rfs::openat(at, c".", flags, Mode::empty())
}

/// A directory's identity: device and inode number.
type DirId = (u64, u64);

fn dir_id(fd: BorrowedFd<'_>) -> Result<DirId, Errno> {
    let st = rfs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// `..` in a walk from `root`: the directory above `cur`, which was reached from `root` by
/// the symlink-free names `walked` and one more (already dropped), `ids` being the identities
/// of the directories `walked` names; `None` for the root itself. In constant time however
/// deep the walk: opens `cur/..` and checks that it is the directory walked through; if it is
/// not (something moved `cur` meanwhile), opens `walked` from `root` again, name by name.
fn climb(
    root: BorrowedFd<'_>,
    cur: BorrowedFd<'_>,
    walked: &[Vec<u8>],
    ids: &[DirId],
) -> Result<Option<OwnedFd>, Errno> {
    if walked.is_empty() {
        return Ok(None);
    }
    let flags = DIR_PATH.union(OFlags::NOFOLLOW);
    let up = rfs::openat(cur, c"..", flags, Mode::empty())?;
    if ids.last() == Some(&dir_id(up.as_fd())?) {
        return Ok(Some(up));
    }
    let mut fd: Option<OwnedFd> = None;
    for name in walked {
        let at = fd.as_ref().map_or(root, |f| f.as_fd());
        fd = Some(rfs::openat(at, &name[..], flags, Mode::empty())?);
    }
    Ok(fd)
}

/// A 0/0 character device: an overlay whiteout.
pub(crate) fn is_whiteout(st: &rfs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn make_dir(parent: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rfs::mkdirat(parent, name, Mode::from_raw_mode(IMPLICIT_DIR_MODE))?;
    rfs::openat(
        parent,
        name,
        DIR_PATH.union(OFlags::NOFOLLOW),
        Mode::empty(),
    )
}

/// Removes the directory `name` in `parent` and everything below it, without following any
/// symlink. Iterative, so deep trees cannot overflow the stack.
fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let fd = rfs::openat(parent, name, DIR_READ, Mode::empty())?;
    let name = std::ffi::CString::new(name).map_err(|_| io::Error::from(Errno::INVAL))?;
    let mut stack: Vec<(Dir, std::ffi::CString)> = vec![(Dir::new(fd)?, name)];
    while let Some((dir, _)) = stack.last_mut() {
        let descend = match dir.read() {
            Some(entry) => {
                let entry = entry?;
                let child = entry.file_name();
                if child == c"." || child == c".." {
                    continue;
                }
                let dfd = dir.fd()?;
                let is_dir = match entry.file_type() {
                    FileType::Directory => true,
                    FileType::Unknown => {
                        let st = rfs::statat(dfd, child, AtFlags::SYMLINK_NOFOLLOW)?;
                        FileType::from_raw_mode(st.st_mode) == FileType::Directory
                    }
                    _ => false,
                };
                if is_dir {
                    let fd = rfs::openat(dfd, child, DIR_READ, Mode::empty())?;
                    Some((Dir::new(fd)?, child.to_owned()))
                } else {
                    rfs::unlinkat(dfd, child, AtFlags::empty())?;
                    None
                }
            }
            None => {
                if let Some((_, done)) = stack.pop() {
                    match stack.last() {
                        Some((up, _)) => {
                            rfs::unlinkat(up.fd()?, done.as_c_str(), AtFlags::REMOVEDIR)?
                        }
                        None => rfs::unlinkat(parent, done.as_c_str(), AtFlags::REMOVEDIR)?,
                    }
                }
                None
            }
        };
        if let Some(next) = descend {
            stack.push(next);
        }
    }
    Ok(())
}

/// Starts writing a file's dirty pages to disk without waiting (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`): the writeback then overlaps the rest of the unpacking, and the
/// pull's one `syncfs` has little left to wait for. No journal commit, so unlike `fsync` it
/// stalls nobody. A hint: errors (a filesystem without it) are ignored.
pub(crate) fn start_writeback(fd: impl AsFd) {
    let _ = sys::writeback::start_writeback(fd);
}

/// Chowns `fd`.
pub(crate) fn fchown(fd: impl AsFd, uid: u32, gid: u32) -> Result<(), Errno> {
    rfs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
}

/// Chowns `name` in `parent`, not following a symlink.
pub(crate) fn lchownat(
    parent: BorrowedFd<'_>,
    name: &[u8],
    uid: u32,
    gid: u32,
) -> Result<(), Errno> {
    rfs::chownat(
        parent,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// The timestamps to set.
pub(crate) fn timestamps(atime: Timespec, mtime: Timespec) -> Timestamps {
    Timestamps {
        last_access: atime,
        last_modification: mtime,
    }
}

/// Sets `name` in `parent`'s times, not following a symlink.
pub(crate) fn lutimesat(parent: BorrowedFd<'_>, name: &[u8], ts: &Timestamps) -> Result<(), Errno> {
    rfs::utimensat(parent, name, ts, AtFlags::SYMLINK_NOFOLLOW)
}

/// Removes every xattr of an open (non-`O_PATH`) fd that this process may remove; the others
/// (e.g. `trusted.*` for an unprivileged process, which cannot even list them) stay.
pub(crate) fn clear_xattrs(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    for name in xattr::list(Target::Fd(fd))? {
        match xattr::remove(Target::Fd(fd), &name) {
            Ok(()) | Err(Errno::NODATA | Errno::PERM | Errno::ACCESS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sets one xattr on an open (non-`O_PATH`) fd.
pub(crate) fn fsetxattr(fd: impl AsFd, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    xattr::set(Target::Fd(fd.as_fd()), name, value)
}

/// Sets one xattr on `name` in `parent` (a device or fifo, which must not be opened), through
/// an `O_PATH | O_NOFOLLOW` handle and its `/proc/self/fd` link.
pub(crate) fn setxattr_at(
    parent: BorrowedFd<'_>,
    name: &[u8],
    xname: &CStr,
    value: &[u8],
) -> Result<(), Errno> {
    let fd = rfs::openat(
        parent,
        name,
        OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC),
        Mode::empty(),
    )?;
    xattr::set(Target::ProcFd(fd.as_fd()), xname, value)
}

/// The process umask from /proc/self/status (reading it with umask(2) would race with other
/// threads creating files).
fn read_umask() -> Option<u32> {
    let mut s = String::new();
    File::open("/proc/self/status")
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    let line = s.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_is_readable() {
        let m = read_umask().expect("/proc/self/status has Umask");
        assert!(m <= 0o777);
    }

    #[test]
    fn remove_tree_removes_deep_trees_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let mut p = tmp.path().join("t");
        for _ in 0..200 {
            p = p.join("d");
        }
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, p.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, tmp.path().join("t/l2")).unwrap();
        let mut root = Root::open(tmp.path()).unwrap();
        let removed = root.remove(root.fd.clone().as_fd(), b"t").unwrap();
        assert_eq!(removed, Some(FileType::Directory));
        assert!(!tmp.path().join("t").exists());
        assert!(outside.join("keep").exists());
    }

    #[test]
    fn dir_creates_confined_and_replaces_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        let mut root = Root::open(tmp.path()).unwrap();
        std::os::unix::fs::symlink("/elsewhere", tmp.path().join("l")).unwrap();
        // Follows the absolute symlink inside the root.
        root.dir(b"l/x/y", true).unwrap().unwrap();
        assert!(tmp.path().join("elsewhere/x/y").is_dir());
        // Without following, a path through the symlink is refused.
        assert!(root.dir(b"l/x", false).unwrap().is_none());
        // A whiteout device as a parent becomes a directory.
        rfs::mknodat(
            root.root_fd(),
            "w",
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        root.dir(b"w/z", true).unwrap().unwrap();
        assert!(tmp.path().join("w/z").is_dir());
        // A regular file as a parent is an error.
        std::fs::write(tmp.path().join("f"), b"").unwrap();
        let e = root.dir(b"f/z", true).unwrap_err();
        assert!(e.op.contains("not a directory"), "{}", e.op);
        // Without following (whiteouts), it is nothing to resolve, like a symlink.
        assert!(root.dir(b"f/z", false).unwrap().is_none());
        assert!(!tmp.path().join("f/z").exists());
    }

    #[test]
    fn paths_longer_than_path_max_are_walked() {
        let tmp = tempfile::tempdir().unwrap();
        let mut root = Root::open(tmp.path()).unwrap();
        let comps = vec!["d".repeat(200); 30];
        let deep = comps.join("/").into_bytes();
        assert!(deep.len() > 4096);
        let with = |tail: &str| [&deep[..], tail.as_bytes()].concat();
        let ino = |fd: &OwnedFd| rfs::fstat(fd).unwrap().st_ino;
        // Created, then found by every kind of lookup.
        let made = root.dir(&deep, true).unwrap().unwrap();
        root.invalidate();
        let found = root.dir(&deep, false).unwrap().unwrap();
        assert_eq!(ino(&made), ino(&found));
        assert_eq!(ino(&root.existing_dir(&deep).unwrap()), ino(&made));
        assert_eq!(ino(&root.existing_dir_nofollow(&deep).unwrap()), ino(&made));
        assert_eq!(ino(&root.final_dir(&deep).unwrap()), ino(&made));
        assert_eq!(root.existing_dir(&with("/nope")).unwrap_err(), Errno::NOENT);
        // Symlinks down there resolve inside the root: absolute, relative with "..", loops.
        rfs::mkdirat(root.root_fd(), "t", Mode::from_raw_mode(0o755)).unwrap();
        rfs::mkdirat(root.root_fd(), "t/x", Mode::from_raw_mode(0o755)).unwrap();
        rfs::symlinkat("/t", &made, "abs").unwrap();
        rfs::symlinkat("../..", &made, "up").unwrap();
        rfs::symlinkat("loop", &made, "loop").unwrap();
        let tx = rfs::open(tmp.path().join("t/x"), DIR_PATH, Mode::empty()).unwrap();
        assert_eq!(ino(&root.existing_dir(&with("/abs/x")).unwrap()), ino(&tx));
        let two_up = comps[..28].join("/").into_bytes();
        assert_eq!(
            ino(&root.existing_dir(&with("/up")).unwrap()),
            ino(&root.existing_dir(&two_up).unwrap())
        );
        assert_eq!(root.existing_dir(&with("/loop")).unwrap_err(), Errno::LOOP);
        assert_eq!(
            root.existing_dir_nofollow(&with("/abs/x")).unwrap_err(),
            Errno::LOOP
        );
        assert!(root.final_dir(&with("/abs")).is_err());
        assert_eq!(ino(&root.final_dir(&with("/abs/x")).unwrap()), ino(&tx));
        // Creating through the symlink lands inside the root.
        root.dir(&with("/abs/new"), true).unwrap().unwrap();
        assert!(tmp.path().join("t/new").is_dir());
        assert!(root.dir(&with("/abs/new2"), false).unwrap().is_none());
    }

    #[test]
    fn climbing_checks_the_directory_walked_through() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::create_dir(tmp.path().join("c")).unwrap();
        let root = rfs::open(tmp.path(), DIR_PATH, Mode::empty()).unwrap();
        let a = rfs::openat(&root, "a", DIR_PATH, Mode::empty()).unwrap();
        let b = rfs::openat(&a, "b", DIR_PATH, Mode::empty()).unwrap();
        let ids = [dir_id(a.as_fd()).unwrap()];
        let walked = [b"a".to_vec()];
        let up = climb(root.as_fd(), b.as_fd(), &walked, &ids)
            .unwrap()
            .unwrap();
        assert_eq!(dir_id(up.as_fd()).unwrap(), ids[0]);
        assert!(climb(root.as_fd(), a.as_fd(), &[], &[]).unwrap().is_none());
        // b moved elsewhere: its ".." is not `a` any more; a is found again from the root.
        std::fs::rename(tmp.path().join("a/b"), tmp.path().join("c/b")).unwrap();
        let up = climb(root.as_fd(), b.as_fd(), &walked, &ids)
            .unwrap()
            .unwrap();
        assert_eq!(dir_id(up.as_fd()).unwrap(), ids[0]);
    }

    #[test]
    fn many_dotdots_deep_down_stay_cheap() {
        // 3000 levels (longer than PATH_MAX), a symlink at the bottom going 1000 levels up, 40
        // times over: linear work, not a walk from the root for each "..".
        let tmp = tempfile::tempdir().unwrap();
        let mut root = Root::open(tmp.path()).unwrap();
        let deep = vec!["d"; 3000].join("/").into_bytes();
        let bottom = root.dir(&deep, true).unwrap().unwrap();
        let up = "../".repeat(1000);
        rfs::symlinkat(format!("{up}x"), &bottom, "l0").unwrap();
        for i in 1..40 {
            rfs::symlinkat(format!("l{}/{up}", i - 1), &bottom, format!("l{i}")).unwrap();
        }
        let started = std::time::Instant::now();
        let mut p = deep.clone();
        p.extend_from_slice(b"/l39/y");
        root.invalidate();
        root.dir(&p, true).unwrap().unwrap();
        assert!(root.existing_dir(&p).is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}

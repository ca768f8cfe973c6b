//! Confined filesystem operations relative to one directory fd, the layer root.
//!
//! Every parent directory is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! relative to the root fd, so symlinks created by the layer resolve inside the root the way a
//! container sees them (`var/run -> /run` makes `var/run/x` land at `<root>/run/x`) and the
//! kernel guarantees nothing outside the root is reached. The final component is then handled
//! with `*at()` calls that never follow it. No host path is ever built from a member name.
//!
//! The most recently used parent directory is cached (members come grouped by directory). Any
//! removal of a directory or symlink may change what a path resolves to, so it drops the cache;
//! handles are reference-counted so a caller's handle stays valid across such a drop.

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
        })
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
    /// when the path goes through one.
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
        &self,
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
    /// reopens the parent from the root by the (symlink-free) names walked, so nothing outside
    /// the root is reachable. Only one handle is held at a time, however deep the path.
    /// Returns the handle, whether a symlink was followed, and the real path walked.
    fn resolve_slow(
        &self,
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
                    cur_fd = if walked.is_empty() {
                        None
                    } else {
                        let up = walked.join(&b'/');
                        Some(
                            openat2(&self.fd, &up, DIR_PATH, RESOLVE_NOSYM)
                                .map_err(|e| err(format!("reopening {}", show(&up)), e))?,
                        )
                    };
                    continue;
                }
                _ => {}
            }
            let cur = cur_fd.as_ref().map_or(self.fd.as_fd(), |f| f.as_fd());
            let next = match rfs::openat(
                cur,
                &comp[..],
                DIR_PATH.union(OFlags::NOFOLLOW),
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    make_dir(cur, &comp).map_err(|e| err(format!("creating {}", show(&comp)), e))?
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
                                cur_fd = None;
                            }
                            todo.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                            continue;
                        }
                        _ if is_whiteout(&st) => {
                            rfs::unlinkat(cur, &comp[..], AtFlags::empty())
                                .map_err(|e| err(show(&comp), e))?;
                            make_dir(cur, &comp).map_err(|e| {
                                err(format!("replacing whiteout {}", show(&comp)), e)
                            })?
                        }
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

/// `openat2`, retrying EAGAIN (a concurrent rename made the kernel unsure; harmless to retry)
/// and EINTR.
fn openat2(
    dirfd: impl AsFd,
    path: &[u8],
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match rfs::openat2(dirfd.as_fd(), path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN | Errno::INTR) if tries < 16 => tries += 1,
            Err(Errno::NOSYS) => return Err(Errno::NOSYS),
            r => return r,
        }
    }
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
    let names = loop {
        let len = match rfs::flistxattr_query(fd) {
            Ok(len) => len,
            Err(Errno::OPNOTSUPP) => return Ok(()),
            Err(e) => return Err(e),
        };
        if len == 0 {
            return Ok(());
        }
        let mut buf = vec![0u8; len];
        match rfs::flistxattr(fd, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            // Grew in between.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        match rfs::fremovexattr(fd, name) {
            Ok(()) | Err(Errno::NODATA | Errno::PERM | Errno::ACCESS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sets one xattr on an open (non-`O_PATH`) fd.
pub(crate) fn fsetxattr(fd: impl AsFd, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    rfs::fsetxattr(fd, name, value, rfs::XattrFlags::empty())
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
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    rfs::setxattr(link.as_str(), xname, value, rfs::XattrFlags::empty())
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
    }
}

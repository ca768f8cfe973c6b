//! Implicit parent directories of a layer take the metadata of the same directory in the lower
//! layers, as overlay copy-up would give it (see "Missing parent directories" in the `archive`
//! module documentation): a layer with `usr/local/bin/x` but no `usr/` entry must not make `/usr` of
//! the mounted image 0755, root-owned and new, when the base layer's `/usr` is something else.
//!
//! [`lookup`] is the overlay lookup of one path in a list of lower layer directories, nearest
//! first; [`copy_up`] applies what it finds to the implicit directories of a layer's staging
//! directory. Both work relative to directory handles and never follow a symlink.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::options::ApplyOptions;
use super::overlay_xattr;
use crate::sys::xattr::{self, Target};

/// What [`lookup`] copies from a lower layer's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirMeta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits, including setuid/setgid/sticky.
    pub mode: u32,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Xattrs by name, except the overlay ones (`trusted.overlay.*`, `user.overlay.*`), which
    /// describe the lower directory's place in its layer, not the directory.
    pub xattrs: Vec<(CString, Vec<u8>)>,
}

/// A failed operation on an implicit directory or a lower layer (`pull` reports it as
/// `LayerError::ImplicitDir`).
#[derive(Debug)]
pub(crate) struct CopyUpError {
    /// The implicit directory (relative to the layer).
    pub path: PathBuf,
    /// What was being done.
    pub op: String,
    /// The error.
    pub source: io::Error,
}

/// An `O_PATH` handle on a name itself (a symlink is not followed).
const PATH_FLAGS: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Gives every directory of `dirs` (relative, normalised paths below `diff`, a layer's
/// staging directory, as [`super::ApplyStats::implicit_dirs`] lists them) the
/// metadata [`lookup`] finds in `lowers` (the image's lower layer directories, nearest first):
/// owner (only with [`ApplyOptions::same_owner`]), mode, xattrs, times. A directory no lower
/// layer has keeps its metadata; one that is no longer a directory (or is reached through a
/// symlink) is skipped. Looked up parents first (a directory whose parent is in no lower layer
/// is in none either, which keeps deep chains linear), applied deepest first (so that a
/// restrictive mode cannot block its children).
pub(crate) fn copy_up(
    diff: &Path,
    dirs: &[PathBuf],
    lowers: &[PathBuf],
    opts: &ApplyOptions,
) -> Result<(), CopyUpError> {
    if dirs.is_empty() || lowers.is_empty() {
        return Ok(());
    }
    let root = rfs::open(
        diff,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(Path::new("."), format!("opening {}", diff.display()), e))?;
    let mut order: Vec<&PathBuf> = dirs.iter().collect();
    order.sort();
    let mut absent: HashSet<&Path> = HashSet::new();
    let mut found = Vec::new();
    for path in order {
        if path.parent().is_some_and(|p| absent.contains(p)) {
            absent.insert(path);
            continue;
        }
        match lookup(lowers, path, opts.userxattr)? {
            Some(meta) => found.push((path, meta)),
            None => {
                absent.insert(path);
            }
        }
    }
    found.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, meta) in found {
        let fd = match open_dir(&root, &components(path)?) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
            Err(e) => return Err(fail(path, "opening", e)),
        };
        apply(&fd, &meta, opts).map_err(|(op, e)| fail(path, op, e))?;
    }
    Ok(())
}

/// Opens the directory `comps` below `root` for reading, one name at a time, following no
/// symlink (`ENOTDIR` or `ELOOP` when one is on the way). Paths longer than `PATH_MAX` work.
fn open_dir(root: &OwnedFd, comps: &[&[u8]]) -> Result<OwnedFd, Errno> {
    let Some((last, parents)) = comps.split_last() else {
        return Err(Errno::INVAL);
    };
    let mut cur: Option<OwnedFd> = None;
    for comp in parents {
        let at = cur.as_ref().unwrap_or(root);
        cur = Some(rfs::openat(
            at,
            *comp,
            PATH_FLAGS | OFlags::DIRECTORY,
            Mode::empty(),
        )?);
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rfs::openat(cur.as_ref().unwrap_or(root), *last, flags, Mode::empty())
}

/// The components of a relative, normalised path: none empty, `.` or `..` (so that opening
/// them one by one stays below the directory they start from).
fn components(path: &Path) -> Result<Vec<&[u8]>, CopyUpError> {
    let comps: Vec<&[u8]> = path.as_os_str().as_bytes().split(|&b| b == b'/').collect();
    if comps.iter().any(|c| matches!(*c, b"" | b"." | b"..")) {
        return Err(fail(
            path,
            "looking it up",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a normalised relative path",
            ),
        ));
    }
    Ok(comps)
}

/// Owner, mode, xattrs, then times (which the others do not change).
fn apply(fd: &OwnedFd, meta: &DirMeta, opts: &ApplyOptions) -> Result<(), (String, Errno)> {
    if opts.same_owner {
        rfs::fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(|e| (format!("chown to {}:{}", meta.uid, meta.gid), e))?;
    }
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))
        .map_err(|e| (format!("chmod to {:o}", meta.mode), e))?;
    for (name, value) in &meta.xattrs {
        match xattr::set(Target::Fd(fd.as_fd()), name.as_c_str(), value) {
            // As the applier does: what the filesystem cannot store is skipped, and so is what
            // an unprivileged process may not set.
            Ok(()) | Err(Errno::OPNOTSUPP) => {}
            Err(Errno::PERM | Errno::ACCESS) if !opts.same_owner => {}
            Err(e) => return Err((format!("setting xattr {:?}", name.to_string_lossy()), e)),
        }
    }
    let times = Timestamps {
        last_access: meta.atime,
        last_modification: meta.mtime,
    };
    rfs::futimens(fd, &times).map_err(|e| ("setting times".to_string(), e))
}

/// Looks `path` (relative, normalised) up in `lowers` (layer directories, nearest first) the
/// way an overlay mount does, and returns the metadata of the directory found there, if any.
///
/// In each layer the components of `path` are walked one by one without following symlinks.
/// A component that is a whiteout (a 0/0 character device) or anything but a directory (a
/// symlink included) hides `path` in every layer below: `None`. A layer where `path` is a
/// directory gives its metadata. A layer where `path` is missing passes the lookup on to the
/// next one, unless one of the directories walked in it is opaque (`trusted.overlay.opaque`,
/// or `user.overlay.opaque` with `userxattr`, set to `y`), which hides the layers below.
pub(crate) fn lookup(
    lowers: &[PathBuf],
    path: &Path,
    userxattr: bool,
) -> Result<Option<DirMeta>, CopyUpError> {
    let comps = components(path)?;
    let opaque = overlay_xattr::opaque(userxattr);
    for layer in lowers {
        let root = rfs::open(
            layer,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(path, format!("opening lower layer {}", layer.display()), e))?;
        let found = walk(&root, &comps, opaque)
            .map_err(|e| fail(path, format!("looking it up in {}", layer.display()), e))?;
        match found {
            Walk::Dir(fd, st) => {
                let xattrs = read_xattrs(fd.as_fd()).map_err(|e| {
                    fail(
                        path,
                        format!("reading its xattrs in {}", layer.display()),
                        e,
                    )
                })?;
                let ts = |sec, nsec| Timespec {
                    tv_sec: sec,
                    tv_nsec: nsec as _,
                };
                return Ok(Some(DirMeta {
                    uid: st.st_uid,
                    gid: st.st_gid,
                    mode: st.st_mode & 0o7777,
                    atime: ts(st.st_atime, st.st_atime_nsec),
                    mtime: ts(st.st_mtime, st.st_mtime_nsec),
                    xattrs,
                }));
            }
            Walk::Hidden | Walk::Missing { opaque: true } => return Ok(None),
            Walk::Missing { opaque: false } => {}
        }
    }
    Ok(None)
}

/// What one layer says about a path.
enum Walk {
    /// A directory: its handle (`O_PATH`) and status.
    Dir(OwnedFd, rfs::Stat),
    /// A whiteout or a non-directory on the way (or at the path): hidden below.
    Hidden,
    /// Not in this layer; `opaque` when a directory walked hides the layers below.
    Missing { opaque: bool },
}

/// Walks `comps` in the layer directory `root`, one name at a time (see [`lookup`]);
/// `opaque_name` is the xattr that marks opaque directories.
fn walk(root: &OwnedFd, comps: &[&[u8]], opaque_name: &CStr) -> Result<Walk, Errno> {
    let mut cur: Option<OwnedFd> = None;
    let mut opaque = false;
    for (i, comp) in comps.iter().enumerate() {
        let dir = cur.as_ref().unwrap_or(root);
        // One name without `/`, never `.` or `..`, not followed: confined to the layer.
        let fd = match rfs::openat(dir, *comp, PATH_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Walk::Missing { opaque }),
            Err(e) => return Err(e),
        };
        let st = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            // A whiteout, or a non-directory that hides whatever is below it.
            return Ok(Walk::Hidden);
        }
        if i + 1 == comps.len() {
            return Ok(Walk::Dir(fd, st));
        }
        opaque |= is_opaque(fd.as_fd(), opaque_name)?;
        cur = Some(fd);
    }
    Ok(Walk::Missing { opaque })
}

/// Whether the directory `fd` (`O_PATH`) has the xattr `name` set to `y`. Read through
/// `/proc/self/fd` (the `f*` calls refuse `O_PATH` handles, and opening the directory for
/// reading may not be allowed).
fn is_opaque(fd: BorrowedFd<'_>, name: &CStr) -> Result<bool, Errno> {
    match xattr::get(Target::ProcFd(fd), name) {
        Ok(value) => Ok(value.as_deref() == Some(&b"y"[..])),
        // Not readable (trusted.* unprivileged).
        Err(Errno::PERM | Errno::ACCESS) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The xattrs of the directory `fd` (`O_PATH`, read as in [`is_opaque`]) except the overlay
/// ones; those this process cannot read (`trusted.*` unprivileged) are not listed to it.
fn read_xattrs(fd: BorrowedFd<'_>) -> Result<Vec<(CString, Vec<u8>)>, Errno> {
    let mut out = Vec::new();
    for name in xattr::list(Target::ProcFd(fd))? {
        if overlay_xattr::is_overlay(name.as_bytes()) {
            continue;
        }
        if let Some(value) = xattr::get(Target::ProcFd(fd), &name)? {
            out.push((name, value));
        }
    }
    Ok(out)
}

fn fail(path: &Path, op: impl Into<String>, source: impl Into<io::Error>) -> CopyUpError {
    CopyUpError {
        path: path.to_path_buf(),
        op: op.into(),
        source: source.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn root_opts() -> ApplyOptions {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests run as root (whiteout devices, trusted.* xattrs)"
        );
        ApplyOptions {
            userxattr: false,
            same_owner: true,
            flatten: false,
            writeback: true,
            hash_files: false,
        }
    }

    /// `n` empty layer directories in a temp dir, nearest first.
    struct Layers {
        _tmp: tempfile::TempDir,
        dirs: Vec<PathBuf>,
    }

    impl Layers {
        fn new(n: usize) -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let dirs = (0..n)
                .map(|i| {
                    let d = tmp.path().join(format!("l{i}"));
                    fs::create_dir(&d).unwrap();
                    d
                })
                .collect();
            Self { _tmp: tmp, dirs }
        }

        /// A directory `rel` in layer `i` with its parents; the last one gets the metadata.
        fn dir(&self, i: usize, rel: &str, mode: u32, owner: (u32, u32), mtime: i64) -> PathBuf {
            let p = self.dirs[i].join(rel);
            fs::create_dir_all(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(owner.0), Some(owner.1)).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            set_mtime(&p, mtime);
            p
        }

        fn whiteout(&self, i: usize, rel: &str) {
            let p = self.dirs[i].join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            rfs::mknodat(rfs::CWD, &p, FileType::CharacterDevice, Mode::empty(), 0).unwrap();
        }

        fn lookup(&self, rel: &str) -> Option<DirMeta> {
            lookup(&self.dirs, Path::new(rel), false).unwrap()
        }
    }

    fn set_mtime(p: &Path, mtime: i64) {
        let t = Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        rfs::utimensat(
            rfs::CWD,
            p,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            rfs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }

    fn setx(p: &Path, name: &str, value: &[u8]) {
        let name = CString::new(name).unwrap();
        xattr::set(Target::NoFollow(p), &name, value).unwrap();
    }

    fn found(m: Option<DirMeta>) -> (u32, (u32, u32), i64) {
        let m = m.expect("found");
        (m.mode, (m.uid, m.gid), m.mtime.tv_sec)
    }

    #[test]
    fn nearest_layer_wins_with_owner_mode_times_and_xattrs() {
        let _ = root_opts();
        let l = Layers::new(3);
        // Layer 0 (nearest) lacks usr; layer 1 has it; layer 2 too, differently.
        fs::write(l.dirs[0].join("unrelated"), b"").unwrap();
        let usr = l.dir(1, "usr", 0o2750, (5, 6), 1_000_000_000);
        setx(&usr, "user.x", b"1");
        setx(&usr, "trusted.overlay.opaque", b"y");
        setx(&usr, "user.overlay.origin", b"z");
        l.dir(2, "usr", 0o755, (0, 0), 7);
        let m = l.lookup("usr").unwrap();
        assert_eq!(found(Some(m.clone())), (0o2750, (5, 6), 1_000_000_000));
        assert_eq!(m.xattrs, vec![(c"user.x".to_owned(), b"1".to_vec())]);
        // Deeper: only layer 2 has usr/share; layer 1's usr is opaque, so it is hidden.
        l.dir(2, "usr/share", 0o700, (1, 1), 8);
        assert_eq!(l.lookup("usr/share"), None);
        // Nothing anywhere.
        assert_eq!(l.lookup("opt"), None);
    }

    #[test]
    fn whiteouts_and_non_directories_end_the_lookup() {
        let _ = root_opts();
        let l = Layers::new(2);
        l.dir(1, "a/b", 0o700, (3, 3), 9);
        l.dir(1, "c/d", 0o700, (3, 3), 9);
        l.dir(1, "e/f", 0o700, (3, 3), 9);
        // The path itself whited out in the nearer layer.
        l.whiteout(0, "a");
        assert_eq!(l.lookup("a"), None);
        // A prefix whited out.
        assert_eq!(l.lookup("a/b"), None);
        // A prefix that is a file.
        fs::write(l.dirs[0].join("c"), b"").unwrap();
        assert_eq!(l.lookup("c/d"), None);
        // Another character device (not a whiteout) is a non-directory too.
        rfs::mknodat(
            rfs::CWD,
            l.dirs[0].join("e"),
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(1, 3),
        )
        .unwrap();
        assert_eq!(l.lookup("e/f"), None);
        // The path itself a file.
        l.dir(1, "g", 0o700, (3, 3), 9);
        fs::write(l.dirs[0].join("g"), b"").unwrap();
        assert_eq!(l.lookup("g"), None);
        // Without the nearer layer, the lower layer's directories.
        let lower = &l.dirs[1..];
        for p in ["a/b", "c/d", "e/f", "g"] {
            assert_eq!(
                found(lookup(lower, Path::new(p), false).unwrap()),
                (0o700, (3, 3), 9),
                "{p}"
            );
        }
    }

    #[test]
    fn opaque_directories_stop_after_their_layer() {
        let _ = root_opts();
        let l = Layers::new(2);
        l.dir(1, "o/x", 0o711, (2, 2), 10);
        l.dir(1, "o/y", 0o711, (2, 2), 10);
        let o = l.dir(0, "o", 0o755, (0, 0), 11);
        setx(&o, "trusted.overlay.opaque", b"y");
        l.dir(0, "o/y", 0o750, (4, 4), 12);
        // Below an opaque directory, a path missing in its layer is missing.
        assert_eq!(l.lookup("o/x"), None);
        // ... and one present there comes from there.
        assert_eq!(found(l.lookup("o/y")), (0o750, (4, 4), 12));
        // The opaque directory itself is found, its overlay xattrs left out.
        let m = l.lookup("o").unwrap();
        assert!(m.xattrs.is_empty(), "{:?}", m.xattrs);
        // Opaque deeper down: o2/p is opaque and lacks q.
        l.dir(1, "o2/p/q", 0o700, (1, 1), 13);
        let p = l.dir(0, "o2/p", 0o755, (0, 0), 14);
        setx(&p, "trusted.overlay.opaque", b"y");
        assert_eq!(l.lookup("o2/p/q"), None);
        // A value other than "y" is not opaque.
        setx(&p, "trusted.overlay.opaque", b"x");
        assert_eq!(found(l.lookup("o2/p/q")), (0o700, (1, 1), 13));
        // userxattr mode looks at user.overlay.opaque instead.
        setx(&p, "user.overlay.opaque", b"y");
        assert_eq!(lookup(&l.dirs, Path::new("o2/p/q"), true).unwrap(), None);
    }

    #[test]
    fn symlinks_are_not_followed() {
        let _ = root_opts();
        let l = Layers::new(2);
        l.dir(0, "real/b", 0o700, (8, 8), 15);
        symlink("real", l.dirs[0].join("a")).unwrap();
        symlink("/", l.dirs[0].join("abs")).unwrap();
        l.dir(1, "a/b", 0o750, (9, 9), 16);
        l.dir(1, "abs/tmp", 0o750, (9, 9), 16);
        // The symlink in the nearer layer is a non-directory: hides a/b of the lower one.
        assert_eq!(l.lookup("a/b"), None);
        assert_eq!(l.lookup("a"), None);
        // Never outside the layer (the host's /tmp exists).
        assert_eq!(l.lookup("abs/tmp"), None);
        // Bad paths are refused.
        for bad in ["", "../x", "a/./b", "/etc", "a//b"] {
            assert!(lookup(&l.dirs, Path::new(bad), false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn copy_up_sets_metadata_deepest_first_and_skips_the_rest() {
        let opts = root_opts();
        let l = Layers::new(1);
        // Children first: making them would change the parent's mtime.
        l.dir(0, "usr/local", 0o500, (7, 7), 1_100_000_000);
        let usr = l.dir(0, "usr", 0o2700, (5, 6), 1_000_000_000);
        setx(&usr, "user.x", b"v");
        setx(&usr, "trusted.overlay.opaque", b"y");
        l.dir(0, "gone", 0o700, (1, 1), 1);
        l.dir(0, "link", 0o700, (1, 1), 1);

        let tmp = tempfile::tempdir().unwrap();
        let diff = tmp.path();
        fs::create_dir_all(diff.join("usr/local/bin")).unwrap();
        fs::create_dir(diff.join("real")).unwrap();
        symlink("real", diff.join("link")).unwrap();
        let bin_before = fs::symlink_metadata(diff.join("usr/local/bin")).unwrap();
        let dirs: Vec<PathBuf> = ["gone", "link", "usr", "usr/local", "usr/local/bin"]
            .iter()
            .map(PathBuf::from)
            .collect();
        copy_up(diff, &dirs, &l.dirs, &opts).unwrap();

        let md = fs::symlink_metadata(diff.join("usr")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o2700);
        assert_eq!((md.uid(), md.gid(), md.mtime()), (5, 6, 1_000_000_000));
        assert_eq!(
            tree_xattr(&diff.join("usr"), "user.x").as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            tree_xattr(&diff.join("usr"), "trusted.overlay.opaque"),
            None
        );
        let md = fs::symlink_metadata(diff.join("usr/local")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o500);
        assert_eq!((md.uid(), md.mtime()), (7, 1_100_000_000));
        // Not below: unchanged.
        let md = fs::symlink_metadata(diff.join("usr/local/bin")).unwrap();
        assert_eq!(
            (md.uid(), md.mode(), md.mtime()),
            (bin_before.uid(), bin_before.mode(), bin_before.mtime())
        );
        // A symlink now: skipped, its target untouched.
        let md = fs::symlink_metadata(diff.join("real")).unwrap();
        assert_ne!(md.uid(), 1);
        // Nothing to do without lower layers or directories.
        copy_up(diff, &dirs, &[], &opts).unwrap();
        copy_up(diff, &[], &l.dirs, &opts).unwrap();
    }

    /// Makes the directories `comps` below `root` one by one (deeper than `PATH_MAX`).
    fn mkdirs(root: &Path, comps: &[String]) -> OwnedFd {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut fd = rfs::open(root, flags, Mode::empty()).unwrap();
        for c in comps {
            match rfs::mkdirat(&fd, c.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => panic!("mkdir {c}: {e}"),
            }
            fd = rfs::openat(&fd, c.as_str(), flags, Mode::empty()).unwrap();
        }
        fd
    }

    #[test]
    fn deep_paths_and_missing_chains() {
        let opts = root_opts();
        let l = Layers::new(1);
        let comps: Vec<String> = (0..300)
            .map(|i| format!("d{i:03}-{}", "x".repeat(15)))
            .collect();
        let rel = |n: usize| PathBuf::from(comps[..n].join("/"));
        assert!(rel(300).as_os_str().len() > 4096);
        // The lower layer has the chain, its deepest directory 0711 owned by 3.
        let deepest = mkdirs(&l.dirs[0], &comps);
        let rw = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let deepest = rfs::openat(&deepest, c".", rw, Mode::empty()).unwrap();
        rfs::fchmod(&deepest, Mode::from_raw_mode(0o711)).unwrap();
        rfs::fchown(&deepest, Some(Uid::from_raw(3)), None).unwrap();
        // The layer has the chain too, and a chain no lower layer has.
        let tmp = tempfile::tempdir().unwrap();
        mkdirs(tmp.path(), &comps);
        let other: Vec<String> = (0..300).map(|i| format!("o{i}")).collect();
        mkdirs(tmp.path(), &other);
        let mut dirs: Vec<PathBuf> = (1..=300).map(rel).collect();
        dirs.extend((1..=300).map(|n| PathBuf::from(other[..n].join("/"))));
        copy_up(tmp.path(), &dirs, &l.dirs, &opts).unwrap();
        let got = rfs::fstat(mkdirs(tmp.path(), &comps)).unwrap();
        assert_eq!((got.st_mode & 0o7777, got.st_uid), (0o711, 3));
        assert_eq!(
            lookup(&l.dirs, &rel(300), false).unwrap().map(|m| m.mode),
            Some(0o711)
        );
    }

    fn tree_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
        let name = CString::new(name).unwrap();
        xattr::get(Target::NoFollow(p), &name).ok().flatten()
    }
}

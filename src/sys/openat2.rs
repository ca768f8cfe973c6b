//! `openat2` with the one retry policy strata uses.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::{Errno, Result};
use rustix::path::Arg;

/// How many times a call failing with `EAGAIN` or `EINTR` is tried again (see [`openat2`]).
const RETRIES: u32 = 64;

/// `openat2(dirfd, path, flags, 0, resolve)`; no file is created. `ENOSYS` before Linux 5.6.
///
/// `EAGAIN` and `EINTR` are retried up to 64 times. `EAGAIN`: with `RESOLVE_IN_ROOT` or
/// `RESOLVE_BENEATH`, a `..` lookup fails so whenever a rename or mount anywhere on the
/// system raced it (the kernel cannot then prove the walk stayed inside); a fresh lookup
/// almost always succeeds. `EINTR`: a signal interrupted a lookup that waited (on a network or
/// FUSE filesystem). Both are transient, hence the retries; bounded, because a steady stream
/// of renames elsewhere could otherwise keep a lookup failing forever. One retry is usually
/// enough; 64 leave a wide margin, after which the error is returned.
pub fn openat2<P: Arg>(
    dirfd: impl AsFd,
    path: P,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd> {
    let dirfd = dirfd.as_fd();
    path.into_with_c_str(|path| {
        let mut tries = 0;
        loop {
            match rfs::openat2(dirfd, path, flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN | Errno::INTR) if tries < RETRIES => tries += 1,
                r => return r,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const CONFINED: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

    /// The inode `openat2` opens for `path` below `root`.
    fn ino(root: &OwnedFd, path: &str) -> u64 {
        let fd = openat2(root, path, OFlags::PATH | OFlags::CLOEXEC, CONFINED).unwrap();
        rfs::fstat(&fd).unwrap().st_ino
    }

    #[test]
    fn dot_dot_and_absolute_symlinks_stay_in_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        // <tmp>/etc/passwd outside the root, <tmp>/root/etc/passwd inside.
        fs::create_dir_all(tmp.path().join("etc")).unwrap();
        fs::write(tmp.path().join("etc/passwd"), "outside").unwrap();
        let rootdir = tmp.path().join("root");
        fs::create_dir_all(rootdir.join("etc")).unwrap();
        fs::create_dir_all(rootdir.join("a/b")).unwrap();
        fs::write(rootdir.join("etc/passwd"), "inside").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", rootdir.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", rootdir.join("a/b/up")).unwrap();
        let root = rfs::open(&rootdir, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();

        let inside = fs::metadata(rootdir.join("etc/passwd")).unwrap();
        let inside = std::os::unix::fs::MetadataExt::ino(&inside);
        for path in [
            "etc/passwd",
            "/etc/passwd",
            "../etc/passwd",
            "a/b/../../../../etc/passwd",
            "abs",
            "a/b/up/passwd",
        ] {
            assert_eq!(ino(&root, path), inside, "{path}");
        }
        // Opening for reading gives the content inside too.
        let fd = openat2(&root, "abs", OFlags::RDONLY | OFlags::CLOEXEC, CONFINED).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut fs::File::from(fd), &mut text).unwrap();
        assert_eq!(text, "inside");
    }

    #[test]
    fn no_symlinks_refuses_a_symlink_on_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        std::os::unix::fs::symlink("d", tmp.path().join("l")).unwrap();
        let root = rfs::open(tmp.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let nosym = CONFINED.union(ResolveFlags::NO_SYMLINKS);
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        assert!(openat2(&root, "d", flags, nosym).is_ok());
        assert_eq!(openat2(&root, "l", flags, nosym).unwrap_err(), Errno::LOOP);
        assert_eq!(
            openat2(&root, "missing", flags, nosym).unwrap_err(),
            Errno::NOENT
        );
    }
}

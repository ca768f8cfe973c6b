//! Extended attributes: list names, get a value of any size, set, remove; on an open fd, on a
//! path (last component not followed), or on an `O_PATH` handle through `/proc/self/fd`.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, XattrFlags};
use rustix::io::{Errno, Result};

/// What an xattr call acts on.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// An open fd, not `O_PATH` (the `f*xattr` calls refuse those).
    Fd(BorrowedFd<'a>),
    /// A path whose last component is not followed (the `l*xattr` calls).
    NoFollow(&'a Path),
    /// An `O_PATH` handle, through its `/proc/self/fd` link: the handle's own inode, which
    /// need not be opened for reading (a device, a fifo, a directory the process may not read).
    ProcFd(BorrowedFd<'a>),
}

/// A [`Target`] ready for the calls (the `/proc/self/fd` path built once).
enum At<'a> {
    Fd(BorrowedFd<'a>),
    NoFollow(&'a Path),
    Proc(String),
}

impl<'a> From<Target<'a>> for At<'a> {
    fn from(t: Target<'a>) -> Self {
        match t {
            Target::Fd(fd) => At::Fd(fd),
            Target::NoFollow(p) => At::NoFollow(p),
            Target::ProcFd(fd) => At::Proc(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        }
    }
}

impl At<'_> {
    fn list_len(&self) -> Result<usize> {
        match self {
            At::Fd(fd) => rfs::flistxattr_query(fd),
            At::NoFollow(p) => rfs::llistxattr_query(*p),
            At::Proc(p) => rfs::listxattr_query(p.as_str()),
        }
    }

    fn list(&self, buf: &mut [u8]) -> Result<usize> {
        match self {
            At::Fd(fd) => rfs::flistxattr(fd, buf),
            At::NoFollow(p) => rfs::llistxattr(*p, buf),
            At::Proc(p) => rfs::listxattr(p.as_str(), buf),
        }
    }

    fn get_len(&self, name: &CStr) -> Result<usize> {
        match self {
            At::Fd(fd) => rfs::fgetxattr_query(fd, name),
            At::NoFollow(p) => rfs::lgetxattr_query(*p, name),
            At::Proc(p) => rfs::getxattr_query(p.as_str(), name),
        }
    }

    fn get(&self, name: &CStr, buf: &mut [u8]) -> Result<usize> {
        match self {
            At::Fd(fd) => rfs::fgetxattr(fd, name, buf),
            At::NoFollow(p) => rfs::lgetxattr(*p, name, buf),
            At::Proc(p) => rfs::getxattr(p.as_str(), name, buf),
        }
    }
}

/// The size of the first read of a value: most values (opaque markers, capabilities, ACLs of
/// a few entries) fit, and then one call does.
const FIRST_READ: usize = 256;

/// The names of the xattrs of `target` that this process can see (`trusted.*` only as root),
/// in the kernel's order; none when the filesystem has no xattrs.
pub fn list(target: Target<'_>) -> Result<Vec<CString>> {
    let at = At::from(target);
    let names = loop {
        let len = match at.list_len() {
            Ok(len) => len,
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; len];
        match at.list(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            // The list grew in between.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    };
    // NUL-separated: no name holds a NUL, so CString::new takes every one.
    Ok(names
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| CString::new(n).ok())
        .collect())
}

/// The value of the xattr `name` of `target`, whatever its size; `None` when there is no such
/// xattr or the filesystem has no xattrs.
pub fn get(target: Target<'_>, name: &CStr) -> Result<Option<Vec<u8>>> {
    let at = At::from(target);
    let mut buf = vec![0u8; FIRST_READ];
    loop {
        match at.get(name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA | Errno::OPNOTSUPP) => return Ok(None),
            // Larger than the buffer: ask for the size (the value may change again before
            // the next read, hence the loop).
            Err(Errno::RANGE) => match at.get_len(name) {
                Ok(len) => buf = vec![0u8; len],
                Err(Errno::NODATA) => return Ok(None),
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

/// Sets the xattr `name` of `target` to `value`, creating or replacing it.
pub fn set(target: Target<'_>, name: &CStr, value: &[u8]) -> Result<()> {
    let flags = XattrFlags::empty();
    match At::from(target) {
        At::Fd(fd) => rfs::fsetxattr(fd, name, value, flags),
        At::NoFollow(p) => rfs::lsetxattr(p, name, value, flags),
        At::Proc(p) => rfs::setxattr(p.as_str(), name, value, flags),
    }
}

/// Removes the xattr `name` of `target`.
pub fn remove(target: Target<'_>, name: &CStr) -> Result<()> {
    match At::from(target) {
        At::Fd(fd) => rfs::fremovexattr(fd, name),
        At::NoFollow(p) => rfs::lremovexattr(p, name),
        At::Proc(p) => rfs::removexattr(p.as_str(), name),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::fd::AsFd;

    use rustix::fs::{Mode, OFlags};

    use super::*;

    fn targets<'a>(
        path: &'a Path,
        file: &'a File,
        opath: &'a rustix::fd::OwnedFd,
    ) -> [Target<'a>; 3] {
        [
            Target::Fd(file.as_fd()),
            Target::NoFollow(path),
            Target::ProcFd(opath.as_fd()),
        ]
    }

    #[test]
    fn list_get_set_remove_round_trip_on_fd_path_and_proc_fd() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        let file = File::create(&path).unwrap();
        let opath = rfs::open(&path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let big: Vec<u8> = (0..FIRST_READ * 3 + 7).map(|i| i as u8).collect();
        for target in targets(&path, &file, &opath) {
            assert_eq!(get(target, c"user.small").unwrap(), None);
            set(target, c"user.small", b"y").unwrap();
            set(target, c"user.big", &big).unwrap();
            set(target, c"user.empty", b"").unwrap();
            let mut names = list(target).unwrap();
            names.sort();
            assert_eq!(names, [c"user.big", c"user.empty", c"user.small"]);
            assert_eq!(
                get(target, c"user.small").unwrap().as_deref(),
                Some(&b"y"[..])
            );
            assert_eq!(get(target, c"user.big").unwrap(), Some(big.clone()));
            assert_eq!(get(target, c"user.empty").unwrap(), Some(Vec::new()));
            for name in names {
                remove(target, &name).unwrap();
            }
            assert!(list(target).unwrap().is_empty());
            assert_eq!(remove(target, c"user.small"), Err(Errno::NODATA));
        }
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        File::create(&file).unwrap();
        set(Target::NoFollow(&file), c"user.x", b"1").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        // Symlinks have no user.* xattrs; the target's are not reported for them.
        assert_eq!(get(Target::NoFollow(&link), c"user.x").unwrap(), None);
        assert!(list(Target::NoFollow(&link)).unwrap().is_empty());
    }
}

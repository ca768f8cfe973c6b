//! Mount points inside a container's root, created and resolved confined to it.
//!
//! A mount target names a path as the container sees it, so symlinks in the image resolve
//! against the rootfs (absolute targets restart at the root, `..` stops there), the way
//! `RESOLVE_IN_ROOT` resolves them. The walk is done here in user space, creating what is
//! missing, so the result is the real in-root path with no symlink left for the runtime to
//! follow: it goes into `config.json`. Only single names are opened, with `O_NOFOLLOW`,
//! from a handle reached from the root by real directories only, so nothing outside the
//! root is reached or created.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Symlinks followed at most while resolving one target (the kernel's limit).
const MAX_LINKS: u32 = 40;

const DIR_PATH: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What the mount point must be when it does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountPointKind {
    /// A directory (for a directory or a filesystem mounted there).
    Dir,
    /// An empty regular file (for a bind mount of a file).
    File,
}

fn push_components(todo: &mut Vec<Vec<u8>>, path: &[u8]) {
    let comps = path
        .split(|&b| b == b'/')
        .filter(|c| !matches!(*c, b"" | b"."));
    todo.extend(comps.rev().map(<[u8]>::to_vec));
}

/// `path` with `.` and `..` removed by name, as Docker cleans a mount target before anything
/// resolves it (`/a/link/../b` is `/a/b`, whatever `link` points to).
fn lexical_clean(path: &[u8]) -> Vec<u8> {
    let mut kept: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                kept.pop();
            }
            name => kept.push(name),
        }
    }
    kept.join(&b'/')
}

/// Opens the directory the real names `walked` lead to from `root`, one name at a time.
fn open_walked(root: &OwnedFd, walked: &[Vec<u8>]) -> io::Result<OwnedFd> {
    let mut cur = rfs::openat(root, c".", DIR_PATH, Mode::empty())?;
    for name in walked {
        cur = rfs::openat(&cur, &name[..], DIR_PATH, Mode::empty())?;
    }
    Ok(cur)
}

/// Resolves `target` (a path as seen inside the container, cleaned by name first) in `rootfs`,
/// creating missing
/// directories (mode 0755) and, when missing, the final component as `kind`. Returns the
/// resolved absolute in-root path (no symlinks in it).
///
/// A non-directory on the way is `ENOTDIR`; more than 40 symlinks `ELOOP`. An existing final
/// component is used as it is, whatever its type (the runtime reports a mismatch).
pub fn prepare_mount_point(
    rootfs: &Path,
    target: &str,
    kind: MountPointKind,
) -> io::Result<PathBuf> {
    let root = rfs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut todo = Vec::new();
    push_components(&mut todo, &lexical_clean(target.as_bytes()));
    let mut walked: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == b".." {
            walked.pop();
            continue;
        }
        let parent = open_walked(&root, &walked)?;
        let last = todo.is_empty();
        match rfs::statat(&parent, &name[..], AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let link = rfs::readlinkat(&parent, &name[..], Vec::new())?.into_bytes();
                    if link.starts_with(b"/") {
                        walked.clear();
                    }
                    push_components(&mut todo, &link);
                }
                FileType::Directory => walked.push(name),
                _ if last => walked.push(name),
                _ => return Err(Errno::NOTDIR.into()),
            },
            Err(Errno::NOENT) => {
                let created = if last && kind == MountPointKind::File {
                    rfs::openat(
                        &parent,
                        &name[..],
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    )
                    .map(drop)
                } else {
                    rfs::mkdirat(&parent, &name[..], Mode::from_raw_mode(0o755))
                };
                match created {
                    // Created meanwhile by someone else: look again.
                    Err(Errno::EXIST) => todo.push(name),
                    Err(e) => return Err(e.into()),
                    Ok(()) => walked.push(name),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut path = OsString::from("/");
    path.push(OsString::from_vec(walked.join(&b'/')));
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("etc");
        fs::create_dir(&outside).unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("mnt")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/../../../../etc", root.join("mnt/x")).unwrap();
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../../..", root.join("mnt/up")).unwrap();

        let got = prepare_mount_point(&root, "/mnt/x", MountPointKind::Dir).unwrap();
        assert_eq!(got, Path::new("/etc"));
        let got = prepare_mount_point(&root, "/mnt/x/sub/dir", MountPointKind::Dir).unwrap();
        assert_eq!(got, Path::new("/etc/sub/dir"));
        assert!(root.join("etc/sub/dir").is_dir());
        // An absolute host path in a link names a path inside the root.
        let got = prepare_mount_point(&root, "abs/f", MountPointKind::File).unwrap();
        let want = PathBuf::from(format!("{}/f", outside.display()));
        assert_eq!(got, want);
        assert!(root.join(want.strip_prefix("/").unwrap()).is_file());
        let got = prepare_mount_point(&root, "/mnt/up/../../work", MountPointKind::Dir).unwrap();
        assert_eq!(got, Path::new("/work"));
        // `..` in the target is taken by name (as Docker cleans it), `..` in a link target
        // after resolving (as the kernel does).
        let got = prepare_mount_point(&root, "/mnt/x/../y", MountPointKind::Dir).unwrap();
        assert_eq!(got, Path::new("/mnt/y"));
        let got = prepare_mount_point(&root, "/mnt/up/work", MountPointKind::Dir).unwrap();
        assert_eq!(got, Path::new("/work"));
        // Nothing was created outside the root.
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn existing_files_loops_and_non_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::write(root.join("file"), "").unwrap();
        assert_eq!(
            prepare_mount_point(root, "/file", MountPointKind::Dir).unwrap(),
            Path::new("/file")
        );
        let err = prepare_mount_point(root, "/file/x", MountPointKind::Dir).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
        symlink("loop", root.join("loop")).unwrap();
        let err = prepare_mount_point(root, "/loop/x", MountPointKind::Dir).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        assert_eq!(
            prepare_mount_point(root, "/", MountPointKind::Dir).unwrap(),
            Path::new("/")
        );
    }
}

//! Listing a layer directory: every path's metadata, and each regular file's hash taken from
//! what the applier recorded or else read from the file. All calls are relative to directory
//! fds, so paths deeper than PATH_MAX are listed too, and no symlink is followed.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

use super::hashes::FileHashes;
use super::listing::{TreeListing, escape};
use crate::archive::error::ArchiveError;
use crate::archive::fsops::show;
use crate::sys::xattr::{self, Target};

/// A directory opened for listing and for its xattrs.
const DIR_READ: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn fs_err(path: &[u8], op: &str, source: impl Into<io::Error>) -> ArchiveError {
    ArchiveError::Fs {
        path: if path.is_empty() {
            ".".to_string()
        } else {
            show(path)
        },
        op: op.to_string(),
        source: source.into(),
    }
}

impl TreeListing {
    /// Lists the layer directory `dir` (see the `content` module documentation), never
    /// following a symlink. A regular file's hash comes from `hashes` (by inode) when it is
    /// there, else from reading the file.
    pub fn of_dir(dir: &Path, hashes: Option<&FileHashes>) -> Result<Self, ArchiveError> {
        let root =
            rfs::open(dir, DIR_READ, Mode::empty()).map_err(|e| fs_err(b"", "opening", e))?;
        let st = rfs::fstat(&root).map_err(|e| fs_err(b"", "inspecting", e))?;
        let mut lines: Vec<(Vec<u8>, String)> = vec![(
            Vec::new(),
            line(b"", &st, "-".into(), xattrs(Target::Fd(root.as_fd()), b"")?),
        )];
        // Open directories, deepest last: as many fds as the tree is deep.
        let mut stack = vec![(
            Dir::new(root).map_err(|e| fs_err(b"", "listing", e))?,
            Vec::new(),
        )];
        while let Some((dir, rel)) = stack.last_mut() {
            let Some(entry) = dir.read() else {
                stack.pop();
                continue;
            };
            let entry = entry.map_err(|e| fs_err(rel, "listing", e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let path = if rel.is_empty() {
                name.to_vec()
            } else {
                [rel.as_slice(), b"/", name].concat()
            };
            let parent = dir.fd().map_err(|e| fs_err(&path, "listing", e))?;
            let (text, subdir) = entry_line(parent, name, &path, hashes)?;
            lines.push((path.clone(), text));
            if let Some(fd) = subdir {
                let sub = Dir::new(fd).map_err(|e| fs_err(&path, "listing", e))?;
                stack.push((sub, path));
            }
        }
        lines.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Self::from_sorted_lines(
            lines.into_iter().map(|(_, l)| l).collect(),
        ))
    }
}

/// The line of `name` in `parent`, and for a directory its fd to list next.
fn entry_line(
    parent: BorrowedFd<'_>,
    name: &[u8],
    path: &[u8],
    hashes: Option<&FileHashes>,
) -> Result<(String, Option<rustix::fd::OwnedFd>), ArchiveError> {
    let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| fs_err(path, "inspecting", e))?;
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft == FileType::Directory {
        let fd = rfs::openat(parent, name, DIR_READ, Mode::empty())
            .map_err(|e| fs_err(path, "opening", e))?;
        let x = xattrs(Target::Fd(fd.as_fd()), path)?;
        return Ok((line(path, &st, "-".into(), x), Some(fd)));
    }
    if ft == FileType::Symlink {
        // Symlinks carry no xattrs in a layer (the applier sets none).
        let target = rfs::readlinkat(parent, name, Vec::new())
            .map_err(|e| fs_err(path, "reading link", e))?;
        return Ok((line(path, &st, escape(target.as_bytes()), "-".into()), None));
    }
    let handle = rfs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fs_err(path, "opening", e))?;
    let x = xattrs(Target::ProcFd(handle.as_fd()), path)?;
    let content = match ft {
        FileType::RegularFile => {
            let hash = match hashes.and_then(|h| h.get(st.st_ino)) {
                Some(hash) => *hash,
                None => hash_file(parent, name).map_err(|e| fs_err(path, "reading", e))?,
            };
            format!("{} {}", st.st_size, hex::encode(hash))
        }
        FileType::CharacterDevice | FileType::BlockDevice => {
            let rdev = st.st_rdev;
            format!("{},{}", rfs::major(rdev), rfs::minor(rdev))
        }
        _ => "-".into(),
    };
    Ok((line(path, &st, content, x), None))
}

/// `PATH\tTYPE\tMODE\tUID:GID\tCONTENT\tXATTRS`.
fn line(path: &[u8], st: &Stat, content: String, xattrs: String) -> String {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => "f",
        FileType::Directory => "d",
        FileType::Symlink => "l",
        FileType::CharacterDevice => "c",
        FileType::BlockDevice => "b",
        FileType::Fifo => "p",
        _ => "s",
    };
    let path = if path.is_empty() {
        ".".to_string()
    } else {
        escape(path)
    };
    format!(
        "{path}\t{kind}\t{:o}\t{}:{}\t{content}\t{xattrs}",
        st.st_mode & 0o7777,
        st.st_uid,
        st.st_gid
    )
}

/// The sha256 of the bytes of the regular file `name` in `parent`.
fn hash_file(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<[u8; 32]> {
    let fd = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut file = File::from(fd);
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(sha.finalize().into());
        }
        sha.update(&buf[..n]);
    }
}

/// `name=HEXVALUE` of every xattr, sorted by name, comma-separated; `-` for none.
fn xattrs(target: Target<'_>, path: &[u8]) -> Result<String, ArchiveError> {
    let err = |e: Errno| fs_err(path, "reading xattrs", e);
    let mut out: Vec<String> = Vec::new();
    for name in xattr::list(target).map_err(err)? {
        if let Some(value) = xattr::get(target, &name).map_err(err)? {
            out.push(format!(
                "{}={}",
                escape(name.as_bytes()),
                hex::encode(value)
            ));
        }
    }
    if out.is_empty() {
        return Ok("-".to_string());
    }
    out.sort();
    Ok(out.join(","))
}

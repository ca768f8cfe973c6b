//! Listing a layer directory: every path's metadata, and each regular file's hash taken from
//! what the applier recorded or else read from the file.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::hashes::FileHashes;
use super::listing::{TreeListing, escape};
use crate::archive::error::ArchiveError;
use crate::sys::xattr::{self, Target};

fn fs_err(path: &Path, op: &str, source: io::Error) -> ArchiveError {
    ArchiveError::Fs {
        path: path.display().to_string(),
        op: op.to_string(),
        source,
    }
}

impl TreeListing {
    /// Lists the layer directory `dir` (see the `content` module documentation), never
    /// following a symlink. A regular file's hash comes from `hashes` (by inode) when it is
    /// there, else from reading the file.
    pub fn of_dir(dir: &Path, hashes: Option<&FileHashes>) -> Result<Self, ArchiveError> {
        let mut lines: Vec<(Vec<u8>, String)> = Vec::new();
        let md = fs::symlink_metadata(dir).map_err(|e| fs_err(dir, "inspecting", e))?;
        lines.push((Vec::new(), line(b".", dir, &md, hashes)?));
        let mut todo: Vec<PathBuf> = vec![PathBuf::new()];
        while let Some(rel) = todo.pop() {
            let abs = dir.join(&rel);
            for entry in fs::read_dir(&abs).map_err(|e| fs_err(&abs, "listing", e))? {
                let entry = entry.map_err(|e| fs_err(&abs, "listing", e))?;
                let child_rel = rel.join(entry.file_name());
                let child_abs = abs.join(entry.file_name());
                let md = fs::symlink_metadata(&child_abs)
                    .map_err(|e| fs_err(&child_abs, "inspecting", e))?;
                let path = child_rel.as_os_str().as_bytes().to_vec();
                lines.push((path.clone(), line(&path, &child_abs, &md, hashes)?));
                if md.is_dir() {
                    todo.push(child_rel);
                }
            }
        }
        lines.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Self::from_sorted_lines(
            lines.into_iter().map(|(_, l)| l).collect(),
        ))
    }
}

/// The listing line of one path.
fn line(
    path: &[u8],
    abs: &Path,
    md: &fs::Metadata,
    hashes: Option<&FileHashes>,
) -> Result<String, ArchiveError> {
    let ft = md.file_type();
    let (kind, content) = if ft.is_file() {
        let hash = match hashes.and_then(|h| h.get(md.ino())) {
            Some(hash) => *hash,
            None => hash_file(abs).map_err(|e| fs_err(abs, "reading", e))?,
        };
        ("f", format!("{} {}", md.len(), hex::encode(hash)))
    } else if ft.is_dir() {
        ("d", "-".to_string())
    } else if ft.is_symlink() {
        let target = fs::read_link(abs).map_err(|e| fs_err(abs, "reading link", e))?;
        ("l", escape(target.as_os_str().as_bytes()))
    } else if ft.is_char_device() || ft.is_block_device() {
        let kind = if ft.is_char_device() { "c" } else { "b" };
        let (major, minor) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
        (kind, format!("{major},{minor}"))
    } else if ft.is_fifo() {
        ("p", "-".to_string())
    } else {
        ("s", "-".to_string())
    };
    Ok(format!(
        "{}\t{kind}\t{:o}\t{}:{}\t{content}\t{}",
        escape(path),
        md.mode() & 0o7777,
        md.uid(),
        md.gid(),
        xattrs(abs).map_err(|e| fs_err(abs, "reading xattrs", e))?
    ))
}

/// The sha256 of a file's bytes.
fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = fs::File::open(path)?;
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
fn xattrs(path: &Path) -> io::Result<String> {
    let target = Target::NoFollow(path);
    let mut out: Vec<String> = Vec::new();
    for name in xattr::list(target)? {
        if let Some(value) = xattr::get(target, &name)? {
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

//! The reverse of overlay mode: one layer directory in Docker's overlay2 format written back as
//! a layer tar stream (as Docker's overlay2 differ does), so that stored layers can be
//! flattened by the same applier as downloaded ones.
//!
//! Whiteouts (0/0 character devices) become empty `.wh.NAME` files and opaque directories
//! (`trusted.overlay.opaque=y` or `user.overlay.opaque=y`) get a `.wh..wh..opq` member right
//! after their own; overlay xattrs are never written. Members come in name order, each
//! directory before its children; a file with several links is written once and then as
//! hardlinks to its first name. Times are written with their nanoseconds (PAX `mtime`); the
//! root directory is written only when asked for (a layer tar has a `./` member or not, and the
//! layer directory cannot tell).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::error::ArchiveError;
use super::overlay_xattr;
use super::whiteout::OPAQUE_MARKER;
use crate::sys::xattr::{self, Target};

/// Writes the layer directory `dir` as a tar stream to `out` (see the module documentation);
/// with `root_entry` the directory itself is written first as `./`. Returns the number of
/// members written.
pub(crate) fn write<W: Write>(dir: &Path, out: W, root_entry: bool) -> Result<u64, ArchiveError> {
    let mut writer = Writer {
        dir,
        builder: tar::Builder::new(out),
        links: HashMap::new(),
        members: 0,
    };
    writer.walk(root_entry)?;
    writer
        .builder
        .finish()
        .map_err(|e| fs_err(dir, "writing the end of the tar stream", e))?;
    Ok(writer.members)
}

fn fs_err(path: &Path, op: &str, source: io::Error) -> ArchiveError {
    ArchiveError::Fs {
        path: path.display().to_string(),
        op: op.to_string(),
        source,
    }
}

struct Writer<'a, W: Write> {
    dir: &'a Path,
    builder: tar::Builder<W>,
    /// First name (relative) of each multiply-linked file written, by (dev, ino).
    links: HashMap<(u64, u64), PathBuf>,
    members: u64,
}

impl<W: Write> Writer<'_, W> {
    /// Every path below the directory, depth first in name order, never following symlinks.
    fn walk(&mut self, root_entry: bool) -> Result<(), ArchiveError> {
        let root_md =
            fs::symlink_metadata(self.dir).map_err(|e| fs_err(self.dir, "inspecting", e))?;
        if root_entry {
            self.member(Path::new("."), self.dir, &root_md)?;
        }
        self.opaque_marker(Path::new(""), self.dir)?;
        // Directories still to list (relative), last first.
        let mut todo: Vec<PathBuf> = vec![PathBuf::new()];
        while let Some(rel) = todo.pop() {
            let abs = self.dir.join(&rel);
            let mut names: Vec<OsString> = fs::read_dir(&abs)
                .map_err(|e| fs_err(&abs, "listing", e))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(|e| fs_err(&abs, "listing", e))?;
            names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut subdirs = Vec::new();
            for name in names {
                let child_rel = rel.join(&name);
                let child_abs = abs.join(&name);
                let md = fs::symlink_metadata(&child_abs)
                    .map_err(|e| fs_err(&child_abs, "inspecting", e))?;
                let ft = md.file_type();
                if ft.is_char_device() && md.rdev() == 0 {
                    let mut wh = OsString::from(".wh.");
                    wh.push(&name);
                    self.empty_file(&rel.join(wh), &md)?;
                    continue;
                }
                self.member(&child_rel, &child_abs, &md)?;
                if ft.is_dir() {
                    self.opaque_marker(&child_rel, &child_abs)?;
                    subdirs.push(child_rel);
                }
            }
            // Depth first, in name order: push in reverse.
            todo.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// `.wh..wh..opq` in `rel` when the directory at `abs` is opaque.
    fn opaque_marker(&mut self, rel: &Path, abs: &Path) -> Result<(), ArchiveError> {
        let mut opaque = false;
        for name in [overlay_xattr::TRUSTED_OPAQUE, overlay_xattr::USER_OPAQUE] {
            let value = xattr::get(Target::NoFollow(abs), name)
                .map_err(|e| fs_err(abs, "reading xattrs", io::Error::from(e)))?;
            opaque |= value.as_deref() == Some(&b"y"[..]);
        }
        if opaque {
            let md = fs::symlink_metadata(abs).map_err(|e| fs_err(abs, "inspecting", e))?;
            let marker = rel.join(OsString::from_vec(OPAQUE_MARKER.to_vec()));
            self.empty_file(&marker, &md)?;
        }
        Ok(())
    }

    /// An empty regular file (whiteout or marker) with the owner and time of `md`.
    fn empty_file(&mut self, rel: &Path, md: &fs::Metadata) -> Result<(), ArchiveError> {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(u64::from(md.uid()));
        h.set_gid(u64::from(md.gid()));
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        self.members += 1;
        self.builder
            .append_data(&mut h, rel, io::empty())
            .map_err(|e| fs_err(rel, "writing tar member", e))
    }

    /// One file, directory, symlink, hardlink, device or fifo.
    fn member(&mut self, rel: &Path, abs: &Path, md: &fs::Metadata) -> Result<(), ArchiveError> {
        let ft = md.file_type();
        let mut h = Header::new_gnu();
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(u64::from(md.uid()));
        h.set_gid(u64::from(md.gid()));
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if md.mtime_nsec() != 0 && md.mtime() >= 0 {
            pax.push((
                "mtime".into(),
                format!("{}.{:09}", md.mtime(), md.mtime_nsec()).into_bytes(),
            ));
        }
        if !ft.is_symlink() {
            let xattrs = list_xattrs(abs).map_err(|e| fs_err(abs, "reading xattrs", e))?;
            for (name, value) in xattrs {
                if !overlay_xattr::is_overlay(&name) {
                    let mut key = b"SCHILY.xattr.".to_vec();
                    key.extend_from_slice(&name);
                    match String::from_utf8(key) {
                        Ok(key) => pax.push((key, value)),
                        Err(_) => continue,
                    }
                }
            }
        }
        let write_err = |e| fs_err(rel, "writing tar member", e);
        if ft.is_file() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                h.set_entry_type(EntryType::Link);
                self.members += 1;
                return self
                    .builder
                    .append_link(&mut h, rel, &first)
                    .map_err(write_err);
            }
            self.links.insert(key, rel.to_path_buf());
        }
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(write_err)?;
        }
        self.members += 1;
        if ft.is_file() {
            h.set_entry_type(EntryType::Regular);
            h.set_size(md.len());
            let file = fs::File::open(abs).map_err(|e| fs_err(abs, "opening", e))?;
            // A file that changed size while being read would corrupt the stream: take
            // exactly the size announced (the layer directory is not written to anyway).
            let mut data = io::Read::take(file, md.len());
            return self
                .builder
                .append_data(&mut h, rel, &mut data)
                .map_err(write_err);
        }
        if ft.is_symlink() {
            h.set_entry_type(EntryType::Symlink);
            let target = fs::read_link(abs).map_err(|e| fs_err(abs, "reading link", e))?;
            return self
                .builder
                .append_link(&mut h, rel, &target)
                .map_err(write_err);
        }
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            });
            let (major, minor) = (rustix::fs::major(md.rdev()), rustix::fs::minor(md.rdev()));
            h.set_device_major(major).map_err(write_err)?;
            h.set_device_minor(minor).map_err(write_err)?;
        } else if ft.is_fifo() {
            h.set_entry_type(EntryType::Fifo);
        } else {
            return Err(ArchiveError::Invalid {
                path: rel.display().to_string(),
                reason: "a socket or other file type that a layer cannot hold".into(),
            });
        }
        self.builder
            .append_data(&mut h, rel, io::empty())
            .map_err(write_err)
    }
}

/// The xattrs of `path` this process can see (not following symlinks), by name.
fn list_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let target = Target::NoFollow(path);
    let mut out = Vec::new();
    for name in xattr::list(target)? {
        // A PAX key must be UTF-8.
        if std::str::from_utf8(name.as_bytes()).is_err() {
            continue;
        }
        if let Some(value) = xattr::get(target, &name)? {
            out.push((name.into_bytes(), value));
        }
    }
    out.sort();
    Ok(out)
}

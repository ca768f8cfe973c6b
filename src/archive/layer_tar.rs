//! A layer directory in overlay2 form written back as a layer tar stream, as Docker's overlay2
//! differ writes one: a container's writable layer (an overlay upper dir) for `commit`, a
//! stored layer for `export`. Confined, since a container's upper dir is the container's to
//! shape (it may still be running).
//!
//! - Confinement: every call is relative to a directory fd opened with `O_NOFOLLOW`; names are
//!   single components read from the directory itself, so no symlink the container made is
//!   ever followed, and a directory swapped for a symlink meanwhile fails the open instead of
//!   leading out of the layer. A regular file is opened `O_NOFOLLOW` and must be the inode
//!   just inspected; its data is exactly the size announced (a file that shrank meanwhile is
//!   padded with zeros, one that grew is cut), so the stream stays a valid tar.
//! - Overlay's conventions back to the OCI ones: a whiteout (0/0 character device) becomes an
//!   empty `.wh.NAME`, an opaque directory (`trusted.overlay.opaque=y`, `user.overlay.opaque` rootless) gets a `.wh..wh..opq`
//!   member right after its own; overlay's xattrs are never written, the others are PAX
//!   `SCHILY.xattr.*` records (symlinks carry none).
//! - Members in name order, each directory before its entries; a file with several links is
//!   written once, then as hard links to its first name; owners, modes (with
//!   setuid/setgid/sticky), mtimes with nanoseconds (PAX `mtime`), devices and fifos as they
//!   are. Sockets are left out (a tar cannot hold them; Docker skips them too), as are the
//!   paths the caller names (the init layer's files). The directory itself is written as
//!   `./` only when asked for (a layer tar has that member or not; the directory cannot tell).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use tar::{EntryType, Header};

use crate::sys::xattr::{self, Target};

/// A directory opened for listing and for its xattrs, never through a symlink.
const DIR_READ: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Why the layer could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct LayerTarError {
    /// What was being done.
    pub op: &'static str,
    /// The path in the layer (`/etc/passwd`).
    pub path: String,
    /// The error.
    #[source]
    pub source: io::Error,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerTarStats {
    /// Tar members written.
    pub members: u64,
    /// Sockets left out.
    pub sockets: u64,
}

/// How a layer directory is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Write the directory itself first, as `./`.
    pub root_entry: bool,
    /// Absolute paths left out (`/etc/hosts`).
    pub skip: &'a [&'a str],
}

/// Writes the layer directory `dir` as a layer tar to `out` (see the module documentation).
pub fn write<W: Write>(
    dir: &Path,
    out: W,
    options: &Options<'_>,
) -> Result<LayerTarStats, LayerTarError> {
    let root = rfs::open(dir, DIR_READ, Mode::empty()).map_err(|e| err("opening", b"", e))?;
    let mut writer = Writer {
        builder: tar::Builder::new(out),
        links: HashMap::new(),
        stats: LayerTarStats::default(),
        skip: options.skip,
    };
    if options.root_entry {
        let st = rfs::fstat(&root).map_err(|e| err("inspecting", b"", e))?;
        let pax = xattr_records(Target::Fd(root.as_fd()), b"")?;
        writer.header_only(b".", &st, EntryType::Directory, pax)?;
    }
    writer.opaque_marker(root.as_fd(), b"")?;
    let mut stack = vec![level(root, Vec::new())?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.todo.pop() else {
            stack.pop();
            continue;
        };
        let rel = if top.rel.is_empty() {
            name.clone()
        } else {
            [top.rel.as_slice(), b"/", &name].concat()
        };
        if let Some(fd) = writer.entry(top.fd.as_fd(), &name, &rel)? {
            stack.push(level(fd, rel)?);
        }
    }
    writer.builder.finish().map_err(|e| LayerTarError {
        op: "writing the end of the tar stream",
        path: "/".into(),
        source: e,
    })?;
    Ok(writer.stats)
}

fn err(op: &'static str, rel: &[u8], source: impl Into<io::Error>) -> LayerTarError {
    LayerTarError {
        op,
        path: format!("/{}", String::from_utf8_lossy(rel)),
        source: source.into(),
    }
}

/// A directory being written: its fd, its path in the layer, its entries still to write
/// (sorted, last first).
struct Level {
    fd: OwnedFd,
    rel: Vec<u8>,
    todo: Vec<Vec<u8>>,
}

fn level(fd: OwnedFd, rel: Vec<u8>) -> Result<Level, LayerTarError> {
    let mut todo = Vec::new();
    for entry in Dir::read_from(&fd).map_err(|e| err("listing", &rel, e))? {
        let entry = entry.map_err(|e| err("listing", &rel, e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            todo.push(name.to_vec());
        }
    }
    todo.sort_unstable_by(|a, b| b.cmp(a));
    Ok(Level { fd, rel, todo })
}

struct Writer<'a, W: Write> {
    builder: tar::Builder<W>,
    /// First name of each multiply-linked file written, by (dev, ino).
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: LayerTarStats,
    skip: &'a [&'a str],
}

impl<W: Write> Writer<'_, W> {
    /// Writes one entry of `parent`; returns the fd of a directory to descend into.
    fn entry(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
    ) -> Result<Option<OwnedFd>, LayerTarError> {
        let absolute = format!("/{}", String::from_utf8_lossy(rel));
        if self.skip.contains(&absolute.as_str()) {
            return Ok(None);
        }
        let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| err("inspecting", rel, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice if st.st_rdev == 0 => {
                let (dir, base) = match rel.iter().rposition(|&b| b == b'/') {
                    Some(i) => (&rel[..=i], &rel[i + 1..]),
                    None => (&b""[..], rel),
                };
                let whiteout = [dir, b".wh.", base].concat();
                self.empty_file(&whiteout, &st)?;
                Ok(None)
            }
            FileType::Directory => {
                let fd = rfs::openat(parent, name, DIR_READ, Mode::empty())
                    .map_err(|e| err("opening", rel, e))?;
                same_inode(&fd, &st).map_err(|e| err("opening", rel, e))?;
                let pax = xattr_records(Target::Fd(fd.as_fd()), rel)?;
                self.header_only(rel, &st, EntryType::Directory, pax)?;
                self.opaque_marker(fd.as_fd(), rel)?;
                Ok(Some(fd))
            }
            FileType::RegularFile => {
                self.file(parent, name, rel, &st)?;
                Ok(None)
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(parent, name, Vec::new())
                    .map_err(|e| err("reading link", rel, e))?;
                let mut h = header(&st, EntryType::Symlink);
                self.pax(mtime_record(&st), rel)?;
                self.stats.members += 1;
                self.builder
                    .append_link(&mut h, path(rel), path(target.as_bytes()))
                    .map_err(|e| err("writing", rel, e))?;
                Ok(None)
            }
            FileType::Socket => {
                tracing::warn!("/{} is a socket, left out of the layer tar", show(rel));
                self.stats.sockets += 1;
                Ok(None)
            }
            kind => {
                let handle = rfs::openat(
                    parent,
                    name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err("opening", rel, e))?;
                same_inode(&handle, &st).map_err(|e| err("opening", rel, e))?;
                let pax = xattr_records(Target::ProcFd(handle.as_fd()), rel)?;
                let entry_type = match kind {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                self.header_only(rel, &st, entry_type, pax)?;
                Ok(None)
            }
        }
    }

    /// A regular file: its data, or a hard link to its first name.
    fn file(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
        st: &Stat,
    ) -> Result<(), LayerTarError> {
        let fd = rfs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| err("opening", rel, e))?;
        same_inode(&fd, st).map_err(|e| err("opening", rel, e))?;
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = header(st, EntryType::Link);
                self.stats.members += 1;
                return self
                    .builder
                    .append_link(&mut h, path(rel), path(&first))
                    .map_err(|e| err("writing", rel, e));
            }
            self.links.insert(key, rel.to_vec());
        }
        let mut pax = mtime_record(st);
        pax.extend(xattr_records(Target::Fd(fd.as_fd()), rel)?);
        self.pax(pax, rel)?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        let mut h = header(st, EntryType::Regular);
        h.set_size(size);
        // Exactly `size` bytes whatever the file does meanwhile.
        let data = File::from(fd).take(size).chain(io::repeat(0)).take(size);
        self.stats.members += 1;
        self.builder
            .append_data(&mut h, path(rel), data)
            .map_err(|e| err("writing", rel, e))
    }

    /// A directory, device or fifo: a header (and its PAX records).
    fn header_only(
        &mut self,
        rel: &[u8],
        st: &Stat,
        entry_type: EntryType,
        xattrs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), LayerTarError> {
        let mut h = header(st, entry_type);
        if matches!(entry_type, EntryType::Char | EntryType::Block) {
            h.set_device_major(rfs::major(st.st_rdev))
                .and_then(|()| h.set_device_minor(rfs::minor(st.st_rdev)))
                .map_err(|e| err("writing", rel, e))?;
        }
        let mut pax = mtime_record(st);
        pax.extend(xattrs);
        self.pax(pax, rel)?;
        self.stats.members += 1;
        self.builder
            .append_data(&mut h, path(rel), io::empty())
            .map_err(|e| err("writing", rel, e))
    }

    /// `.wh..wh..opq` in `rel` when the directory `fd` is opaque.
    fn opaque_marker(&mut self, fd: BorrowedFd<'_>, rel: &[u8]) -> Result<(), LayerTarError> {
        // Rootless stores mark opaque directories in the `userxattr` namespace.
        let opaque = crate::archive::overlay_xattr::is_opaque(fd, crate::rootless::is_rootless())
            .map_err(|e| err("reading xattrs of", rel, e))?;
        if !opaque {
            return Ok(());
        }
        let st = rfs::fstat(fd).map_err(|e| err("inspecting", rel, e))?;
        let marker = if rel.is_empty() {
            b".wh..wh..opq".to_vec()
        } else {
            [rel, b"/.wh..wh..opq"].concat()
        };
        self.empty_file(&marker, &st)
    }

    /// An empty regular file (whiteout or marker) with the owner and time of `st`.
    fn empty_file(&mut self, rel: &[u8], st: &Stat) -> Result<(), LayerTarError> {
        let mut h = header(st, EntryType::Regular);
        h.set_mode(0o644);
        self.stats.members += 1;
        self.builder
            .append_data(&mut h, path(rel), io::empty())
            .map_err(|e| err("writing", rel, e))
    }

    fn pax(&mut self, records: Vec<(String, Vec<u8>)>, rel: &[u8]) -> Result<(), LayerTarError> {
        if records.is_empty() {
            return Ok(());
        }
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(|e| err("writing", rel, e))
    }
}

/// The header fields every member shares: mode, owner, mtime (seconds), type.
fn header(st: &Stat, entry_type: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(entry_type);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// PAX `mtime` with nanoseconds, when there are any.
fn mtime_record(st: &Stat) -> Vec<(String, Vec<u8>)> {
    if st.st_mtime_nsec == 0 || st.st_mtime < 0 {
        return Vec::new();
    }
    vec![(
        "mtime".into(),
        format!("{}.{:09}", st.st_mtime, st.st_mtime_nsec).into_bytes(),
    )]
}

/// `SCHILY.xattr.NAME` records of every xattr but overlay's (names that are not UTF-8 cannot
/// be PAX keys and are left out).
fn xattr_records(target: Target<'_>, rel: &[u8]) -> Result<Vec<(String, Vec<u8>)>, LayerTarError> {
    let mut out = Vec::new();
    let names = xattr::list(target).map_err(|e| err("listing xattrs of", rel, e))?;
    for name in names {
        let bytes = name.as_bytes();
        if crate::archive::overlay_xattr::is_overlay(bytes) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            continue;
        };
        if let Some(value) =
            xattr::get(target, &name).map_err(|e| err("reading xattrs of", rel, e))?
        {
            out.push((format!("SCHILY.xattr.{text}"), value));
        }
    }
    out.sort();
    Ok(out)
}

/// The opened file must be the one inspected (not swapped in between).
fn same_inode(fd: &OwnedFd, st: &Stat) -> Result<(), Errno> {
    let now = rfs::fstat(fd)?;
    if now.st_dev == st.st_dev && now.st_ino == st.st_ino {
        Ok(())
    } else {
        Err(Errno::AGAIN)
    }
}

fn path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn members(tar: &[u8]) -> Vec<(String, EntryType)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn order_links_symlinks_and_skips() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::create_dir_all(d.join("etc/sub")).unwrap();
        fs::write(d.join("etc/b"), "b").unwrap();
        fs::hard_link(d.join("etc/b"), d.join("etc/a")).unwrap();
        fs::write(d.join("etc/hosts"), "skip me").unwrap();
        symlink("/etc/shadow", d.join("link")).unwrap();
        let mut out = Vec::new();
        let options = Options {
            root_entry: false,
            skip: &["/etc/hosts"],
        };
        let stats = write(d, &mut out, &options).unwrap();
        assert_eq!(
            members(&out),
            vec![
                ("etc".to_string(), EntryType::Directory),
                ("etc/a".to_string(), EntryType::Regular),
                ("etc/b".to_string(), EntryType::Link),
                ("etc/sub".to_string(), EntryType::Directory),
                ("link".to_string(), EntryType::Symlink),
            ]
        );
        assert_eq!(stats.members, 5);
    }
}

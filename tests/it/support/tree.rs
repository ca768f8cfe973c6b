//! Compare two directory trees file by file, without following symlinks: type, mode
//! (including setuid/setgid/sticky), owner, size and content, symlink target, device
//! numbers, xattrs, mtime (whole seconds) and hard-link groups.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Options {
    /// Xattrs whose name starts with one of these are ignored (default: `trusted.overlay.`,
    /// overlayfs' own, which a merged view hides or an upper layer carries).
    pub ignore_xattr_prefixes: Vec<String>,
    /// Compare mtimes at all.
    pub mtime: bool,
    /// Relative paths (`.` is the root) whose mtime is not compared, each with the reason.
    pub ignore_mtime_of: Vec<(PathBuf, &'static str)>,
    /// Compare hard-link groups (paths sharing an inode).
    pub hardlinks: bool,
    /// Relative paths whose owner, mode and xattrs are not compared (type still is), with the
    /// reason: directories a layer only implies take their metadata from lower layers.
    pub ignore_meta_of: Vec<(PathBuf, &'static str)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ignore_xattr_prefixes: vec!["trusted.overlay.".into()],
            mtime: true,
            ignore_mtime_of: Vec::new(),
            hardlinks: true,
            ignore_meta_of: Vec::new(),
        }
    }
}

impl Options {
    pub fn ignore_mtime(mut self, rel: &str, why: &'static str) -> Options {
        self.ignore_mtime_of.push((PathBuf::from(rel), why));
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub sha256: Option<String>,
    pub target: Option<PathBuf>,
    pub rdev: Option<(u32, u32)>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub mtime: i64,
    /// Other paths of the same tree sharing this regular file's inode.
    pub links: Vec<PathBuf>,
    dev_ino: (u64, u64),
}

/// Every path under `root` (relative, the root itself as `.`) with its attributes.
pub fn scan(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    walk(root, Path::new("."), &mut out);
    // Hard-link groups.
    let mut by_inode: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    for (p, n) in &out {
        if n.kind == "file" {
            by_inode.entry(n.dev_ino).or_default().push(p.clone());
        }
    }
    for paths in by_inode.values().filter(|v| v.len() > 1) {
        for p in paths {
            let others = paths.iter().filter(|q| *q != p).cloned().collect();
            if let Some(n) = out.get_mut(p) {
                n.links = others;
            }
        }
    }
    out
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    let abs = if rel == Path::new(".") {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let md = fs::symlink_metadata(&abs).unwrap_or_else(|e| panic!("lstat {}: {e}", abs.display()));
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else {
        "unknown"
    };
    let node = Node {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if ft.is_file() || ft.is_symlink() {
            md.size()
        } else {
            0
        },
        sha256: ft.is_file().then(|| file_sha256(&abs)),
        target: ft.is_symlink().then(|| {
            fs::read_link(&abs).unwrap_or_else(|e| panic!("readlink {}: {e}", abs.display()))
        }),
        rdev: (ft.is_char_device() || ft.is_block_device())
            .then(|| (libc::major(md.rdev()), libc::minor(md.rdev()))),
        xattrs: xattrs(&abs),
        mtime: md.mtime(),
        links: Vec::new(),
        dev_ino: (md.dev(), md.ino()),
    };
    out.insert(rel.to_path_buf(), node);
    if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(&abs)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", abs.display()))
            .map(|e| e.expect("dir entry").file_name())
            .collect();
        names.sort();
        for name in names {
            let child = if rel == Path::new(".") {
                PathBuf::from(&name)
            } else {
                rel.join(&name)
            };
            walk(root, &child, out);
        }
    }
}

fn file_sha256(p: &Path) -> String {
    use sha2::Digest as _;
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// All xattrs of a path, not following symlinks.
pub fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let c = cpath(p);
    let mut out = BTreeMap::new();
    let names = loop {
        // SAFETY: c is a valid C string; a null buffer with size 0 asks for the length.
        let len = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOTSUP) {
                return out;
            }
            panic!("llistxattr {}: {err}", p.display());
        }
        let mut buf = vec![0u8; len as usize];
        // SAFETY: buf has buf.len() writable bytes.
        let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ERANGE) {
                continue; // grew in between
            }
            panic!("llistxattr {}: {err}", p.display());
        }
        buf.truncate(n as usize);
        break buf;
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("xattr name");
        if let Some(v) = lgetxattr(&c, &cname) {
            out.insert(String::from_utf8_lossy(name).into_owned(), v);
        }
    }
    out
}

/// One xattr of a path (not following symlinks); None when absent.
pub fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    lgetxattr(&cpath(p), &CString::new(name).expect("xattr name"))
}

fn lgetxattr(path: &CString, name: &CString) -> Option<Vec<u8>> {
    loop {
        // SAFETY: valid C strings; null buffer with size 0 asks for the length.
        let len = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            return None;
        }
        let mut buf = vec![0u8; len as usize];
        // SAFETY: buf has buf.len() writable bytes.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return None;
        }
        buf.truncate(n as usize);
        return Some(buf);
    }
}

fn show_bytes(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.contains('\0') => format!("{s:?}"),
        _ => format!("0x{}", hex::encode(v)),
    }
}

/// Human-readable differences between the trees at `a` and `b` (empty when equal).
pub fn diff(a_label: &str, a: &Path, b_label: &str, b: &Path, opts: &Options) -> Vec<String> {
    diff_scans(a_label, &scan(a), b_label, &scan(b), opts)
}

pub fn diff_scans(
    a_label: &str,
    a: &BTreeMap<PathBuf, Node>,
    b_label: &str,
    b: &BTreeMap<PathBuf, Node>,
    opts: &Options,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, na) in a {
        let Some(nb) = b.get(p) else {
            out.push(format!("{}: only in {a_label} ({})", p.display(), na.kind));
            continue;
        };
        let mut d = |what: String| out.push(format!("{}: {what}", p.display()));
        if na.kind != nb.kind {
            d(format!(
                "type {} ({a_label}) != {} ({b_label})",
                na.kind, nb.kind
            ));
            continue;
        }
        let meta = !opts.ignore_meta_of.iter().any(|(q, _)| q == p);
        // Symlink permission bits are meaningless on Linux.
        if meta && na.mode != nb.mode && na.kind != "symlink" {
            d(format!(
                "mode {:04o} ({a_label}) != {:04o} ({b_label})",
                na.mode, nb.mode
            ));
        }
        if meta && (na.uid, na.gid) != (nb.uid, nb.gid) {
            d(format!(
                "owner {}:{} ({a_label}) != {}:{} ({b_label})",
                na.uid, na.gid, nb.uid, nb.gid
            ));
        }
        if na.kind == "file" && (na.size != nb.size || na.sha256 != nb.sha256) {
            d(format!(
                "content differs: {} bytes sha256 {} ({a_label}) != {} bytes sha256 {} ({b_label})",
                na.size,
                na.sha256.as_deref().unwrap_or("-"),
                nb.size,
                nb.sha256.as_deref().unwrap_or("-")
            ));
        }
        if na.target != nb.target {
            d(format!(
                "symlink target {:?} ({a_label}) != {:?} ({b_label})",
                na.target, nb.target
            ));
        }
        if na.rdev != nb.rdev {
            d(format!(
                "device {:?} ({a_label}) != {:?} ({b_label})",
                na.rdev, nb.rdev
            ));
        }
        let keep = |k: &String| {
            !opts
                .ignore_xattr_prefixes
                .iter()
                .any(|pre| k.starts_with(pre.as_str()))
        };
        let xa: BTreeMap<_, _> = na.xattrs.iter().filter(|(k, _)| keep(k)).collect();
        let xb: BTreeMap<_, _> = nb.xattrs.iter().filter(|(k, _)| keep(k)).collect();
        if meta && xa != xb {
            let fmt = |m: &BTreeMap<&String, &Vec<u8>>| {
                let mut s = String::new();
                for (k, v) in m {
                    let _ = write!(s, "{k}={} ", show_bytes(v));
                }
                if s.is_empty() {
                    "none".to_string()
                } else {
                    s.trim_end().to_string()
                }
            };
            d(format!(
                "xattrs [{}] ({a_label}) != [{}] ({b_label})",
                fmt(&xa),
                fmt(&xb)
            ));
        }
        let mtime_ignored = opts.ignore_mtime_of.iter().any(|(q, _)| q == p);
        if opts.mtime && !mtime_ignored && na.mtime != nb.mtime {
            d(format!(
                "mtime {} ({a_label}) != {} ({b_label})",
                na.mtime, nb.mtime
            ));
        }
        if opts.hardlinks && na.links != nb.links {
            d(format!(
                "hard links {:?} ({a_label}) != {:?} ({b_label})",
                na.links, nb.links
            ));
        }
    }
    for (p, nb) in b {
        if !a.contains_key(p) {
            out.push(format!("{}: only in {b_label} ({})", p.display(), nb.kind));
        }
    }
    out
}

/// Panic listing every difference when the trees differ.
pub fn assert_same(a_label: &str, a: &Path, b_label: &str, b: &Path, opts: &Options) {
    let diffs = diff(a_label, a, b_label, b, opts);
    assert_no_diffs(a_label, a, b_label, b, &diffs);
}

pub fn assert_no_diffs(a_label: &str, a: &Path, b_label: &str, b: &Path, diffs: &[String]) {
    if diffs.is_empty() {
        return;
    }
    let mut msg = format!(
        "{} difference(s) between {a_label} ({}) and {b_label} ({}):\n",
        diffs.len(),
        a.display(),
        b.display()
    );
    for d in diffs {
        msg.push_str("  ");
        msg.push_str(d);
        msg.push('\n');
    }
    panic!("{msg}");
}

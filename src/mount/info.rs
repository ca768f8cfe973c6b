//! What is mounted where: the kernel's answer for one path (`statx`), else
//! `/proc/self/mountinfo`.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::{LinuxMount, MountError, MountRoot, MountSyscalls};

/// One mountinfo line, the fields strata needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub(crate) mount_point: PathBuf,
    pub(crate) fs_type: String,
    pub(crate) source: String,
}

/// Parses mountinfo text; malformed lines are skipped. Order is kept (later mounts later).
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let source = right.next().unwrap_or("");
    Some(MountEntry {
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        fs_type: String::from_utf8_lossy(&unescape(fs_type)).into_owned(),
        source: String::from_utf8_lossy(&unescape(source)).into_owned(),
    })
}

/// Undoes the kernel's `\ooo` octal escapes (space, tab, newline, backslash).
pub(crate) fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) if b[i] == b'\\' => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// mountinfo shows resolved paths; a target that cannot be resolved is compared as given.
pub(crate) fn resolve(target: &Path) -> PathBuf {
    std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf())
}

/// The topmost mount at exactly `target` (already resolved), if any.
pub(crate) fn top_mount_at<S: MountSyscalls>(
    sys: &S,
    target: &Path,
) -> Result<Option<MountEntry>, MountError> {
    let text = sys.mountinfo().map_err(|source| MountError::Io {
        what: "reading /proc/self/mountinfo".into(),
        source,
    })?;
    Ok(parse_mountinfo(&text)
        .into_iter()
        .rev()
        .find(|e| e.mount_point == target))
}

/// What has its root exactly at `target` (symlinks in it resolved): asked of the kernel for
/// that path, or found in `/proc/self/mountinfo` where the kernel cannot say. A missing target
/// has nothing mounted on it.
pub(crate) fn mount_root_at<S: MountSyscalls>(
    sys: &S,
    target: &Path,
) -> Result<MountRoot, MountError> {
    match sys.mount_root(target) {
        Ok(root) => Ok(root),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MountRoot::NotMounted),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            Ok(match top_mount_at(sys, &resolve(target))? {
                None => MountRoot::NotMounted,
                Some(e) if e.fs_type == "overlay" => MountRoot::Overlay,
                Some(_) => MountRoot::Other,
            })
        }
        Err(source) => Err(MountError::Io {
            what: format!("looking for a mount at {}", target.display()),
            source,
        }),
    }
}

/// Whether anything is mounted exactly at `target` (symlinks in it resolved).
pub fn is_mounted(target: &Path) -> Result<bool, MountError> {
    is_mounted_with(&LinuxMount::default(), target)
}

/// [`is_mounted`] over given system calls.
pub fn is_mounted_with<S: MountSyscalls>(sys: &S, target: &Path) -> Result<bool, MountError> {
    Ok(mount_root_at(sys, target)? != MountRoot::NotMounted)
}

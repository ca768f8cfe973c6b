//! The members of a tar file, indexed once (names, offsets, sizes) so that blobs can be read
//! in place at their offsets, concurrently. Directories, regular files and links to regular
//! files of the same archive (skopeo's `docker-archive` links `<id>/layer.tar` to
//! `../<digest>.tar`) are accepted; links that leave the archive or lead nowhere, devices,
//! duplicate names, absolute names and names that climb out (`..`) are refused, and a member
//! that runs past the end of the file is a truncated archive.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::LayoutError;

/// Tar block size.
const BLOCK: u64 = 512;
/// Most members indexed (a layout has a few per layer).
const MAX_MEMBERS: usize = 100_000;
/// Most links followed from one name.
const MAX_HOPS: usize = 16;
/// Largest PAX or GNU long-name header read.
const MAX_EXTENSION: u64 = 64 * 1024;

/// Where a regular file's bytes are in the tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Offset of the first data byte.
    pub offset: u64,
    /// Data bytes.
    pub size: u64,
}

/// The regular files of a tar, by normalised name (`blobs/sha256/...`, no `./`).
#[derive(Debug)]
pub(crate) struct TarIndex {
    /// The archive, for errors.
    pub path: PathBuf,
    /// Regular files.
    pub files: HashMap<String, Span>,
}

/// `name` without `./` and trailing `/`; `None` when absolute, empty or climbing out.
pub(crate) fn normalise(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A link target joined to its directory, `..` resolved; `None` when absolute or above the
/// archive's top.
fn resolve(joined: &str) -> Option<String> {
    if joined.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A numeric header field: octal, or base-256 when the top bit of the first byte is set.
fn numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .filter(|b| *b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

/// A NUL-terminated header string.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

/// The `path` record of a PAX extended header's data.
fn pax_path(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut path = None;
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        if len <= space || len > data.len() {
            return None;
        }
        let record = &data[space + 1..len];
        let record = record.strip_suffix(b"\n")?;
        if let Some(v) = record.strip_prefix(b"path=") {
            path = Some(v.to_vec());
        }
        data = &data[len..];
    }
    path
}

impl TarIndex {
    /// Indexes `file` (the archive at `path`), reading only its headers.
    pub(crate) fn build(file: &File, path: &Path) -> Result<Self, LayoutError> {
        let bad = |reason: String| LayoutError::BadArchive {
            path: path.to_path_buf(),
            reason,
        };
        let io_err = |source| LayoutError::Io {
            path: path.to_path_buf(),
            op: "reading the archive",
            source,
        };
        let len = file.metadata().map_err(io_err)?.len();
        let mut files = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut pos = 0u64;
        let mut long_name: Option<Vec<u8>> = None;
        // Link name -> the member it names (archive-relative, normalised).
        let mut links: HashMap<String, String> = HashMap::new();
        let mut block = [0u8; BLOCK as usize];
        loop {
            if pos + BLOCK > len {
                return Err(bad(format!(
                    "ends early at byte {pos} (no end-of-archive marker)"
                )));
            }
            file.read_exact_at(&mut block, pos).map_err(io_err)?;
            if block.iter().all(|b| *b == 0) {
                break;
            }
            let sum: u64 = block
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(*b)
                    }
                })
                .sum();
            if numeric(&block[148..156]) != Some(sum) {
                return Err(bad(format!("bad header checksum at byte {pos}")));
            }
            let size = numeric(&block[124..136])
                .ok_or_else(|| bad(format!("invalid size field at byte {pos}")))?;
            let typeflag = block[156];
            // Links, devices, directories and fifos carry no data whatever the size field
            // says (as Go's archive/tar reads them).
            let size = if matches!(typeflag, b'1'..=b'6') {
                0
            } else {
                size
            };
            let data = pos + BLOCK;
            let next = size
                .div_ceil(BLOCK)
                .checked_mul(BLOCK)
                .and_then(|s| s.checked_add(data))
                .ok_or_else(|| bad(format!("invalid size field at byte {pos}")))?;
            if data + size > len {
                return Err(bad(format!(
                    "ends early: a member at byte {pos} needs {size} bytes"
                )));
            }
            let mut raw_name = cstr(&block[..100]).to_vec();
            if &block[257..263] == b"ustar\0" {
                let prefix = cstr(&block[345..500]);
                if !prefix.is_empty() {
                    raw_name = [prefix, b"/", &raw_name].concat();
                }
            }
            let name = long_name.take().unwrap_or(raw_name);
            let shown = String::from_utf8_lossy(&name).into_owned();
            match typeflag {
                b'x' | b'L' => {
                    if size > MAX_EXTENSION {
                        return Err(bad(format!("extension header {shown:?} is too large")));
                    }
                    let mut ext = vec![0u8; size as usize];
                    file.read_exact_at(&mut ext, data).map_err(io_err)?;
                    long_name = if typeflag == b'L' {
                        Some(cstr(&ext).to_vec())
                    } else {
                        pax_path(&ext)
                    };
                    pos = next;
                    continue;
                }
                b'g' => {
                    pos = next;
                    continue;
                }
                _ => {}
            }
            let normal = std::str::from_utf8(&name)
                .ok()
                .and_then(normalise)
                .ok_or_else(|| bad(format!("member {shown:?}: absolute or climbs out")))?;
            if !seen.insert(normal.clone()) {
                return Err(bad(format!("member {normal:?} appears twice")));
            }
            if seen.len() > MAX_MEMBERS {
                return Err(bad(format!("more than {MAX_MEMBERS} members")));
            }
            match typeflag {
                b'0' | 0 | b'7' => {
                    files.insert(normal, Span { offset: data, size });
                }
                b'5' => {}
                b'1' | b'2' => {
                    let target = String::from_utf8_lossy(cstr(&block[157..257])).into_owned();
                    // A symlink is relative to its directory; a hard link to the archive.
                    let joined = match (typeflag, normal.rsplit_once('/')) {
                        (b'2', Some((dir, _))) if !target.starts_with('/') => {
                            format!("{dir}/{target}")
                        }
                        _ => target.clone(),
                    };
                    let resolved = resolve(&joined).ok_or_else(|| {
                        bad(format!(
                            "member {normal:?} links to {target:?}, outside the archive"
                        ))
                    })?;
                    links.insert(normal, resolved);
                }
                other => {
                    return Err(bad(format!(
                        "member {normal:?} has type {:?} (only files and directories)",
                        char::from(other)
                    )));
                }
            }
            pos = next;
        }
        for (name, first) in &links {
            let mut target = first;
            let mut hops = 0;
            let span = loop {
                if let Some(span) = files.get(target) {
                    break *span;
                }
                hops += 1;
                match links.get(target) {
                    Some(next) if hops < MAX_HOPS => target = next,
                    _ => {
                        return Err(bad(format!(
                            "member {name:?} links to {first:?}, which is no file of the archive"
                        )));
                    }
                }
            };
            files.insert(name.clone(), span);
        }
        Ok(Self {
            path: path.to_path_buf(),
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header block for `name`.
    fn header(name: &str, typeflag: u8, size: u64, link: &str) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK as usize];
        b[..name.len()].copy_from_slice(name.as_bytes());
        b[100..108].copy_from_slice(b"0000644\0");
        b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        b[156] = typeflag;
        b[157..157 + link.len()].copy_from_slice(link.as_bytes());
        b[257..263].copy_from_slice(b"ustar\0");
        b[148..156].fill(b' ');
        let sum: u64 = b.iter().map(|x| u64::from(*x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    /// A tar of `members` (name, typeflag, data, link target), ended when `end`.
    fn tar(members: &[(&str, u8, &[u8], &str)], end: bool) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, typeflag, data, link) in members {
            t.extend(header(name, *typeflag, data.len() as u64, link));
            t.extend(*data);
            t.resize(t.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
        }
        if end {
            t.resize(t.len() + 2 * BLOCK as usize, 0);
        }
        t
    }

    fn index(bytes: &[u8]) -> Result<TarIndex, LayoutError> {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), bytes).unwrap();
        TarIndex::build(tmp.as_file(), tmp.path())
    }

    #[test]
    fn files_and_links_inside_the_archive_are_indexed() {
        let t = tar(
            &[
                ("./blobs/", b'5', b"", ""),
                ("blobs/a", b'0', b"hello", ""),
                ("id/layer.tar", b'2', b"", "../blobs/a"),
                ("hard", b'1', b"", "blobs/a"),
            ],
            true,
        );
        let idx = index(&t).unwrap();
        let a = idx.files["blobs/a"];
        assert_eq!((a.offset, a.size), (2 * BLOCK, 5));
        assert_eq!(idx.files["id/layer.tar"], a);
        assert_eq!(idx.files["hard"], a);
    }

    #[test]
    fn hostile_tars_are_refused() {
        let cases: [(Vec<u8>, &str); 5] = [
            (tar(&[("a", b'0', b"x", "")], false), "ends early"),
            (
                tar(&[("a", b'0', b"x", ""), ("./a", b'0', b"y", "")], true),
                "appears twice",
            ),
            (tar(&[("../a", b'0', b"x", "")], true), "climbs out"),
            (tar(&[("l", b'2', b"", "/etc/passwd")], true), "outside"),
            (tar(&[("l", b'2', b"", "nowhere")], true), "no file"),
        ];
        for (bytes, needle) in cases {
            let err = index(&bytes).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let mut t = tar(&[("a", b'0', &[7u8; 600], "")], true);
        t.truncate(BLOCK as usize + 100);
        let err = index(&t).unwrap_err().to_string();
        assert!(err.contains("ends early"), "{err}");
    }

    #[test]
    fn names_are_normalised_or_refused() {
        assert_eq!(
            normalise("./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(normalise("blobs/").as_deref(), Some("blobs"));
        assert_eq!(normalise("/etc/passwd"), None);
        assert_eq!(normalise("a/../../b"), None);
        assert_eq!(normalise("./"), None);
    }

    #[test]
    fn link_targets_resolve_inside_the_archive_only() {
        assert_eq!(resolve("id/../ab.tar").as_deref(), Some("ab.tar"));
        assert_eq!(resolve("id/../../ab.tar"), None);
        assert_eq!(resolve("/etc/passwd"), None);
    }

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(numeric(b"0000644\0"), Some(0o644));
        assert_eq!(numeric(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(numeric(b"9\0"), None);
    }

    #[test]
    fn pax_path_record() {
        assert_eq!(pax_path(b"12 path=a/b\n").as_deref(), Some(&b"a/b"[..]));
        assert_eq!(pax_path(b"99 path=a\n"), None);
    }
}

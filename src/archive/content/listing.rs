//! The listing of a layer tree: its canonical text, digest, stored form and differences.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::digest::Digest;

/// The fields of a line after the path, by name (see the `content` module documentation).
const FIELDS: [&str; 5] = ["type", "mode", "owner", "content", "xattrs"];

/// One line per path of a layer tree, sorted by path bytes: `PATH\tTYPE\tMODE\tUID:GID\t
/// CONTENT\tXATTRS`, with bytes outside printable ASCII, `%` and tabs in the path, link target
/// and xattr names written as `%XX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeListing {
    lines: Vec<String>,
}

/// How a path differs between a recorded listing and the tree now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// The path is new.
    Added,
    /// The path is gone.
    Removed,
    /// These fields differ (`type`, `mode`, `owner`, `content`, `xattrs`).
    Changed(Vec<&'static str>),
}

/// A path that differs, as written in the listing (escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The path relative to the layer directory (`.` for the directory itself).
    pub path: String,
    /// What differs.
    pub kind: ChangeKind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ChangeKind::Added => write!(f, "{} added", self.path),
            ChangeKind::Removed => write!(f, "{} removed", self.path),
            ChangeKind::Changed(fields) => {
                write!(f, "{} changed ({})", self.path, fields.join(", "))
            }
        }
    }
}

impl TreeListing {
    /// A listing of lines already sorted by path bytes.
    pub(crate) fn from_sorted_lines(lines: Vec<String>) -> Self {
        Self { lines }
    }

    /// The number of paths.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether it lists nothing (not even the directory itself).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The content digest: the sha256 of the lines, each ended by a newline.
    pub fn digest(&self) -> Digest {
        let mut hasher = crate::digest::Hasher::new();
        for line in &self.lines {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        hasher.finish()
    }

    /// The stored form: the lines, gzip-compressed (the hashes make up most of it).
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        for line in &self.lines {
            gz.write_all(line.as_bytes())?;
            gz.write_all(b"\n")?;
        }
        gz.finish()
    }

    /// Reads the stored form back.
    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        let mut text = String::new();
        GzDecoder::new(bytes).read_to_string(&mut text)?;
        Ok(Self {
            lines: text.lines().map(str::to_string).collect(),
        })
    }

    /// What differs in `now` from this (recorded) listing, in path order.
    pub fn changes(&self, now: &TreeListing) -> Vec<Change> {
        let before = by_path(&self.lines);
        let after = by_path(&now.lines);
        let mut out = Vec::new();
        for (path, fields) in &before {
            let kind = match after.get(path) {
                None => ChangeKind::Removed,
                Some(now) if now == fields => continue,
                Some(now) => ChangeKind::Changed(
                    FIELDS
                        .iter()
                        .zip(fields.iter().zip(now))
                        .filter(|(_, (a, b))| a != b)
                        .map(|(name, _)| *name)
                        .collect(),
                ),
            };
            out.push(Change {
                path: path.to_string(),
                kind,
            });
        }
        for path in after.keys().filter(|p| !before.contains_key(*p)) {
            out.push(Change {
                path: path.to_string(),
                kind: ChangeKind::Added,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// The lines by (escaped) path, each split into its fields.
fn by_path(lines: &[String]) -> BTreeMap<&str, Vec<&str>> {
    lines
        .iter()
        .map(|line| {
            let mut fields = line.split('\t');
            let path = fields.next().unwrap_or_default();
            (path, fields.collect())
        })
        .collect()
}

/// Writes `bytes` with bytes outside printable ASCII, `%` and tabs as `%XX`.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(lines: &[&str]) -> TreeListing {
        TreeListing::from_sorted_lines(lines.iter().map(|l| l.to_string()).collect())
    }

    #[test]
    fn escapes_what_is_not_printable() {
        assert_eq!(escape(b"a b%\t\n\xffz"), "a%20b%25%09%0A%FFz");
    }

    #[test]
    fn changes_name_paths_and_fields() {
        let before = listing(&[
            ".\td\t755\t0:0\t-\t-",
            "a\tf\t644\t0:0\t1 aa\t-",
            "b\tf\t644\t0:0\t1 bb\t-",
        ]);
        let now = listing(&[
            ".\td\t755\t0:0\t-\t-",
            "a\tf\t600\t0:0\t2 cc\t-",
            "c\tl\t777\t0:0\tb\t-",
        ]);
        let changes = before.changes(&now);
        assert_eq!(
            changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["a changed (mode, content)", "b removed", "c added"]
        );
        assert!(before.changes(&before).is_empty());
        assert_ne!(before.digest(), now.digest());
        let stored = before.encode().unwrap();
        assert_eq!(TreeListing::decode(&stored).unwrap(), before);
    }
}

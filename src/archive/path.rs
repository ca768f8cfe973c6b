//! Normalising tar member names (and hardlink targets) into safe relative paths.
//!
//! A member name is split on `/`; empty and `.` components are dropped (so leading `/`, `./`,
//! `//` and trailing `/` disappear) and any `..` component is refused outright rather than
//! resolved: a layer has no business naming its parent, and refusing keeps the meaning of a
//! name independent of what the layer created before it. What is left is a `/`-joined path
//! relative to the layer root; the empty path is the root itself (`.`, `./`, `/`).

use std::fmt;

/// A normalised member path: `/`-separated components, none of them empty, `.` or `..`, and no
/// NUL byte anywhere. The empty path is the layer root.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct MemberPath(Vec<u8>);

/// Why a member name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// A zero-length name.
    #[error("empty name")]
    Empty,
    /// A NUL byte inside the name.
    #[error("name contains a NUL byte")]
    Nul,
    /// A `..` component.
    #[error("path escapes the layer (\"..\")")]
    DotDot,
}

impl MemberPath {
    /// Normalises a raw member name (see the module documentation).
    pub(crate) fn parse(raw: &[u8]) -> Result<Self, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.contains(&0) {
            return Err(PathError::Nul);
        }
        let mut out = Vec::with_capacity(raw.len());
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => return Err(PathError::DotDot),
                _ => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(comp);
                }
            }
        }
        Ok(Self(out))
    }

    /// True for the layer root (`.`, `./`, `/`).
    #[cfg(test)]
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The normalised bytes (`a/b/c`; empty for the root).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Splits into the parent path (empty for the root) and the final component; `None` for the
    /// root itself.
    pub(crate) fn split_last(&self) -> Option<(&[u8], &[u8])> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => (&self.0[..i], &self.0[i + 1..]),
            None => (&[][..], &self.0[..]),
        })
    }

    /// Consumes the path, returning its bytes.
    #[cfg(test)]
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Number of components of a normalised path given as bytes.
pub(crate) fn depth(path: &[u8]) -> usize {
    if path.is_empty() {
        0
    } else {
        1 + path.iter().filter(|&&b| b == b'/').count()
    }
}

/// `parent/name`, or `name` when `parent` is the root (empty).
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// True when `path` is `ancestor` or lies below it (both normalised; the root is everyone's
/// ancestor).
pub(crate) fn is_within(path: &[u8], ancestor: &[u8]) -> bool {
    ancestor.is_empty()
        || (path.starts_with(ancestor)
            && (path.len() == ancestor.len() || path[ancestor.len()] == b'/'))
}

impl fmt::Debug for MemberPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, PathError> {
        MemberPath::parse(s.as_bytes()).map(|p| String::from_utf8(p.into_bytes()).unwrap())
    }

    #[test]
    fn strips_and_collapses() {
        assert_eq!(norm("a/b/c").unwrap(), "a/b/c");
        assert_eq!(norm("/a/b").unwrap(), "a/b");
        assert_eq!(norm("./a/./b/").unwrap(), "a/b");
        assert_eq!(norm("a//b///c").unwrap(), "a/b/c");
        assert_eq!(norm("//./a").unwrap(), "a");
        assert_eq!(norm("...").unwrap(), "...");
        assert_eq!(norm("a/..b/c..").unwrap(), "a/..b/c..");
    }

    #[test]
    fn root_forms() {
        for s in [".", "./", "/", "//", "./.", "/./"] {
            assert!(MemberPath::parse(s.as_bytes()).unwrap().is_root(), "{s}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(norm(""), Err(PathError::Empty));
        assert_eq!(norm(".."), Err(PathError::DotDot));
        assert_eq!(norm("a/../b"), Err(PathError::DotDot));
        assert_eq!(norm("/../etc"), Err(PathError::DotDot));
        assert_eq!(norm("a/.."), Err(PathError::DotDot));
        assert_eq!(norm("a\0b"), Err(PathError::Nul));
        assert_eq!(
            PathError::DotDot.to_string(),
            "path escapes the layer (\"..\")"
        );
    }

    #[test]
    fn split_and_depth() {
        let p = MemberPath::parse(b"a/b/c").unwrap();
        assert_eq!(p.split_last(), Some((&b"a/b"[..], &b"c"[..])));
        assert_eq!(depth(p.as_bytes()), 3);
        let p = MemberPath::parse(b"c").unwrap();
        assert_eq!(p.split_last(), Some((&b""[..], &b"c"[..])));
        assert_eq!(depth(p.as_bytes()), 1);
        let p = MemberPath::parse(b".").unwrap();
        assert_eq!(p.split_last(), None);
        assert_eq!(depth(p.as_bytes()), 0);
    }

    #[test]
    fn within() {
        assert!(is_within(b"a/b", b"a"));
        assert!(is_within(b"a", b"a"));
        assert!(!is_within(b"ab", b"a"));
        assert!(is_within(b"x", b""));
    }
}

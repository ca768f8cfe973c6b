//! Classifying the final component of a member name: the AUFS-style whiteout names used in image
//! layers (`.wh.NAME`, `.wh..wh..opq`) versus ordinary names.
//!
//! Only the final component counts, as in Docker's overlay2 converter: a directory component
//! named `.wh.x` is an ordinary directory. Names that merely look similar (`.wh`, `a.wh.b`,
//! `..wh..opq`) are ordinary.

/// The marker that makes its directory opaque.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The prefix of a whiteout name.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// What a final component means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind<'a> {
    /// An ordinary name.
    Ordinary,
    /// `.wh..wh..opq`: the containing directory hides everything below it in lower layers.
    Opaque,
    /// `.wh.NAME`: `NAME` in the containing directory is deleted.
    Whiteout(&'a [u8]),
}

/// Why a whiteout name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WhiteoutError {
    /// `.wh.` alone.
    #[error("whiteout \".wh.\" names no file")]
    Empty,
    /// `.wh..` or `.wh...`.
    #[error("whiteout names \".\" or \"..\"")]
    Dots,
    /// A `/` in the whited-out name (cannot come from a split path; refused defensively).
    #[error("whiteout name contains '/'")]
    Slash,
}

/// Classifies one final path component.
pub(crate) fn classify(name: &[u8]) -> Result<Kind<'_>, WhiteoutError> {
    if name == OPAQUE_MARKER {
        return Ok(Kind::Opaque);
    }
    let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(Kind::Ordinary);
    };
    match target {
        b"" => Err(WhiteoutError::Empty),
        b"." | b".." => Err(WhiteoutError::Dots),
        _ if target.contains(&b'/') => Err(WhiteoutError::Slash),
        _ => Ok(Kind::Whiteout(target)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(classify(b".wh..wh..opq"), Ok(Kind::Opaque));
        assert_eq!(classify(b".wh.foo"), Ok(Kind::Whiteout(b"foo")));
        assert_eq!(classify(b".wh..hidden"), Ok(Kind::Whiteout(b".hidden")));
        // Docker's converter treats other `.wh..wh.` names as whiteouts of `.wh.`-names too.
        assert_eq!(classify(b".wh..wh.plnk"), Ok(Kind::Whiteout(b".wh.plnk")));
        assert_eq!(classify(b".wh..wh..opqx"), Ok(Kind::Whiteout(b".wh..opqx")));
    }

    #[test]
    fn look_alikes_are_ordinary() {
        for name in [
            &b".wh"[..],
            b"a.wh.b",
            b"..wh..opq",
            b"wh.foo",
            b".WH.foo",
            b"x.wh.",
        ] {
            assert_eq!(
                classify(name),
                Ok(Kind::Ordinary),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn refused() {
        assert_eq!(classify(b".wh."), Err(WhiteoutError::Empty));
        assert_eq!(classify(b".wh.."), Err(WhiteoutError::Dots));
        assert_eq!(classify(b".wh..."), Err(WhiteoutError::Dots));
        assert_eq!(classify(b".wh.a/b"), Err(WhiteoutError::Slash));
    }
}

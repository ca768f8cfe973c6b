//! The names of the xattrs overlayfs reads from its layers, in its two namespaces:
//! `trusted.overlay.*` (the default; only root may set or read them) and `user.overlay.*`
//! (mounts with `userxattr`, rootless). Layers never carry them: only the whiteout conversion
//! writes them, and they describe a directory's place in its layer, not the directory.

use std::ffi::CStr;

/// The prefix of the overlay xattrs in the default namespace.
pub(crate) const TRUSTED_PREFIX: &[u8] = b"trusted.overlay.";
/// The prefix of the overlay xattrs in the `userxattr` namespace.
pub(crate) const USER_PREFIX: &[u8] = b"user.overlay.";
/// Marks a directory opaque (value `y`) in the default namespace.
pub(crate) const TRUSTED_OPAQUE: &CStr = c"trusted.overlay.opaque";
/// Marks a directory opaque (value `y`) in the `userxattr` namespace.
pub(crate) const USER_OPAQUE: &CStr = c"user.overlay.opaque";

/// Whether the xattr `name` is an overlay one, in either namespace.
pub(crate) fn is_overlay(name: &[u8]) -> bool {
    name.starts_with(TRUSTED_PREFIX) || name.starts_with(USER_PREFIX)
}

/// The opaque xattr of the namespace `userxattr` selects.
pub(crate) fn opaque(userxattr: bool) -> &'static CStr {
    if userxattr {
        USER_OPAQUE
    } else {
        TRUSTED_OPAQUE
    }
}

/// Whether the directory `fd` is marked opaque (`y`) in the namespace `userxattr` selects.
pub(crate) fn is_opaque(
    fd: std::os::fd::BorrowedFd<'_>,
    userxattr: bool,
) -> rustix::io::Result<bool> {
    let value = crate::sys::xattr::get(crate::sys::xattr::Target::Fd(fd), opaque(userxattr))?;
    Ok(value.as_deref() == Some(&b"y"[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(opaque(false).to_bytes(), b"trusted.overlay.opaque");
        assert_eq!(opaque(true).to_bytes(), b"user.overlay.opaque");
        assert!(is_overlay(TRUSTED_OPAQUE.to_bytes()));
        assert!(is_overlay(USER_OPAQUE.to_bytes()));
        assert!(is_overlay(b"trusted.overlay.redirect"));
        assert!(is_overlay(b"user.overlay.origin"));
        assert!(!is_overlay(b"trusted.overlay"));
        assert!(!is_overlay(b"security.overlay.opaque"));
        assert!(!is_overlay(b"user.overlayfoo"));
    }
}

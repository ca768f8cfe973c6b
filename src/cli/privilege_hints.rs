//! The hint for a pull that needs root to store what it met: overlayfs marks opaque
//! directories with `trusted.*` xattrs, which only root may set.

use strata::archive::ArchiveError;

/// What to do about a `trusted.*` xattr refused to an unprivileged pull, if `e` is one.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let refused = e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ArchiveError>(),
            Some(ArchiveError::Fs { op, source, .. })
                if op.starts_with("setting trusted.")
                    && source.raw_os_error() == Some(libc::EPERM)
        )
    });
    refused.then(|| {
        "; the image has an opaque directory, which overlayfs marks with a trusted.* xattr \
         that only root (CAP_SYS_ADMIN) may set: pull as root, or use `strata export` to \
         unpack the image into a plain directory without a store"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_trusted_xattr_gets_the_hint() {
        let refused = |op: &str, errno| {
            anyhow::Error::from(ArchiveError::Fs {
                path: "etc/.wh..wh..opq".into(),
                op: op.into(),
                source: std::io::Error::from_raw_os_error(errno),
            })
            .context("pulling x")
        };
        let hint = hint(&refused("setting trusted.overlay.opaque", libc::EPERM));
        assert!(hint.is_some_and(|h| h.contains("pull as root") && h.contains("strata export")));
        assert_eq!(
            super::hint(&refused("setting trusted.overlay.opaque", libc::ENOSPC)),
            None
        );
        assert_eq!(super::hint(&refused("setting user.x", libc::EPERM)), None);
    }
}

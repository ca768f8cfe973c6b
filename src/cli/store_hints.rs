//! What to do about a store whose filesystem overlay2 cannot use, in terms of strata's
//! options and commands; and how a full filesystem is reported.

use std::error::Error;

use strata::archive::ArchiveError;
use strata::pull::LayerError;
use strata::store::StoreError;

/// The hint for an unsupported store filesystem in `e`'s chain, to append to its message.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    e.chain()
        .find_map(|cause| match cause.downcast_ref::<StoreError>() {
            Some(StoreError::UnsupportedFilesystem { .. }) => Some(
                "; put the store on another filesystem (ext4, xfs with ftype=1, btrfs, a volume \
             when in a container) with --root, or use `strata export`, which needs no store"
                    .to_string(),
            ),
            _ => None,
        })
}

/// `message` (the description of `e`) with a full filesystem said as the issue asks: what was
/// being written, after the layer that failed, e.g. `layer sha256:...: no space left on device
/// (entry "usr/lib/x.so": writing file data)`, instead of the steps down to the OS's text.
/// Unchanged when `e` is no ENOSPC.
pub fn no_space(message: String, e: &anyhow::Error) -> String {
    let full = e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
    });
    if !full {
        return message;
    }
    // What was being done: the deepest cause that says it.
    let doing = e.chain().filter_map(doing_of).last();
    let said = match &doing {
        Some(doing) => format!("no space left on device ({doing})"),
        None => "no space left on device".to_string(),
    };
    // The steps from the layer (or, without one, from what was being done) down are replaced.
    let steps = e
        .chain()
        .find(|cause| cause.downcast_ref::<LayerError>().is_some())
        .or_else(|| e.chain().filter(|c| doing_of(*c).is_some()).last())
        .map(|cause| cause.to_string());
    match steps.filter(|s| message.contains(s.as_str())) {
        Some(steps) => message.replacen(&steps, &said, 1),
        None => match message.find(&os_text()) {
            Some(_) => message.replacen(&os_text(), &said, 1),
            None => format!("{message}: {said}"),
        },
    }
}

/// The OS's text for ENOSPC.
fn os_text() -> String {
    std::io::Error::from_raw_os_error(libc::ENOSPC).to_string()
}

/// What a cause says was being done, if it is one that says so.
fn doing_of(cause: &(dyn Error + 'static)) -> Option<String> {
    if let Some(ArchiveError::Fs { path, op, .. }) = cause.downcast_ref::<ArchiveError>() {
        return Some(format!("entry {path:?}: {op}"));
    }
    if let Some(ArchiveError::Io {
        entry: Some(entry), ..
    }) = cause.downcast_ref::<ArchiveError>()
    {
        return Some(format!("entry {entry:?}"));
    }
    if let Some(StoreError::Io { what, path, .. }) = cause.downcast_ref::<StoreError>() {
        return Some(format!("{what} {}", path.display()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::describe::describe;

    fn enospc() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::ENOSPC)
    }

    #[test]
    fn a_full_filesystem_names_the_layer_and_what_was_written() {
        let e = anyhow::Error::from(LayerError::Archive(ArchiveError::Fs {
            path: "usr/lib/x.so".into(),
            op: "writing file data".into(),
            source: enospc(),
        }))
        .context("r/x:1: layer sha256:ab");
        assert_eq!(
            describe(&e),
            "r/x:1: layer sha256:ab: no space left on device (entry \"usr/lib/x.so\": writing \
             file data)"
        );
        let e = anyhow::Error::from(StoreError::Io {
            what: "writing",
            path: "/s/layers/a.json".into(),
            source: enospc(),
        })
        .context("saving");
        assert_eq!(
            describe(&e),
            "saving: no space left on device (writing /s/layers/a.json)"
        );
        let e = anyhow::Error::from(enospc()).context("writing the archive");
        assert_eq!(describe(&e), "writing the archive: no space left on device");
        let other = anyhow::Error::from(std::io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(no_space("x".into(), &other), "x");
    }
}

//! Docker overlay2 layout details: short link ids and the `link`/`lower`/`work` entries of a layer.

use std::fs;
use std::path::Path;

use data_encoding::BASE32_NOPAD;

use super::{StoreError, fsutil, io_err};
use crate::id::ChainId;

/// The 26-char `[A-Z2-7]` short id of a layer, derived from its chain ID.
///
/// Docker draws these at random; deriving them lets a layer write its `lower` file before its
/// parents exist, so layers unpack in parallel.
pub fn short_link(chain: &ChainId) -> String {
    BASE32_NOPAD.encode(&chain.digest().bytes()[..16])
}

/// The content of a layer's `lower` file: `l/<parent>:l/<grandparent>:...`, nearest first.
pub(crate) fn lower_value(ancestors_nearest_first: &[ChainId]) -> String {
    ancestors_nearest_first
        .iter()
        .map(|c| format!("l/{}", short_link(c)))
        .collect::<Vec<_>>()
        .join(":")
}

/// Fills a fresh layer directory: `diff/`, `link`, and for non-bottom layers `lower` and `work/`.
pub(crate) fn init_layer_dir(
    dir: &Path,
    link: &str,
    lower: Option<&str>,
) -> Result<(), StoreError> {
    fsutil::mkdir_mode(dir, 0o710)?;
    fsutil::mkdir_mode(&dir.join("diff"), 0o755)?;
    fsutil::write_atomic(&dir.join("link"), link.as_bytes(), 0o644)?;
    if let Some(lower) = lower {
        fsutil::write_atomic(&dir.join("lower"), lower.as_bytes(), 0o644)?;
        fsutil::mkdir_mode(&dir.join("work"), 0o700)?;
    }
    Ok(())
}

/// Points `l/<link>` at `../<id>/diff`, replacing a stale link of the same name.
pub(crate) fn install_short_link(links_dir: &Path, link: &str, id: &str) -> Result<(), StoreError> {
    let path = links_dir.join(link);
    let target = format!("../{id}/diff");
    if let Ok(existing) = fs::read_link(&path) {
        if existing == Path::new(&target) {
            return Ok(());
        }
        fs::remove_file(&path).map_err(io_err("removing stale link", &path))?;
    }
    match std::os::unix::fs::symlink(&target, &path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        r => r.map_err(io_err("creating short link", &path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn chain_id(name: &[u8]) -> ChainId {
        ChainId::new(Digest::of(name))
    }

    #[test]
    fn short_links_are_26_base32_chars() {
        let link = short_link(&chain_id(b"layer"));
        assert_eq!(link.len(), 26);
        assert!(
            link.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_ne!(link, short_link(&chain_id(b"other")));
    }

    #[test]
    fn lower_lists_nearest_first() {
        let (a, b) = (chain_id(b"a"), chain_id(b"b"));
        assert_eq!(
            lower_value(&[b.clone(), a.clone()]),
            format!("l/{}:l/{}", short_link(&b), short_link(&a))
        );
    }
}

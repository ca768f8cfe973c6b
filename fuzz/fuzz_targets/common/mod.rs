//! What the archive and layout targets share: splitting an input into files, writing a tar of
//! named members, fixing tar header checksums, and running an image source through the
//! pipeline's resolution (manifests, index, config, as a pull does before any layer).

#![allow(dead_code)]

use std::sync::OnceLock;

use strata::image::Platform;
use strata::source::ImageSource;

/// The input's parts, split at NUL bytes (JSON holds none), at most `n`.
pub fn parts(input: &[u8], n: usize) -> Vec<&[u8]> {
    input.splitn(n, |b| *b == 0).collect()
}

/// The sha256 hex of `data`, as strata computes digests.
pub fn sha256_hex(data: &[u8]) -> String {
    strata::digest::Digest::of(data).hex().to_string()
}

/// A tar of `members`: (name, Some(data)) a regular file, (name, None) a directory; a name
/// starting with `@` is a symlink `name[1..]` to the data (as text).
pub fn tar_of(members: &[(String, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        match (name.strip_prefix('@'), data) {
            (Some(link), Some(target)) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let target = String::from_utf8_lossy(target).into_owned();
                let _ = b.append_link(&mut h, link, target);
            }
            (_, Some(data)) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                let _ = b.append_data(&mut h, name, *data);
            }
            (_, None) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                let _ = b.append_data(&mut h, name, &[][..]);
            }
        }
    }
    b.into_inner().unwrap_or_default()
}

fn octal(field: &[u8]) -> Option<u64> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

/// Sets the checksum of every header, walking the stream as a tar reader would.
pub fn fix_checksums(data: &mut [u8]) {
    let mut off = 0usize;
    while off + 512 <= data.len() {
        let block = &mut data[off..off + 512];
        if block.iter().all(|b| *b == 0) {
            off += 512;
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = if block[124] & 0x80 != 0 {
            block[125..136].iter().fold(0u64, |acc, b| {
                acc.saturating_mul(256).saturating_add(u64::from(*b))
            })
        } else {
            match octal(&block[124..136]) {
                Some(s) => s,
                None => return,
            }
        };
        let size = if matches!(block[156], b'1'..=b'6') { 0 } else { size };
        let Some(next) = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(511))
            .map(|s| s / 512 * 512)
            .and_then(|s| s.checked_add(off + 512))
        else {
            return;
        };
        off = next;
    }
}

/// Resolves the source's image as a pull does (manifest or index, platform, config), on a
/// current-thread runtime. Errors are expected; panics are bugs.
pub fn resolve<S: ImageSource>(source: &S) {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    });
    let _ = rt.block_on(strata::pipeline::resolve(source, "fuzz", &Platform::host()));
}

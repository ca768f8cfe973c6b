//! Arbitrary bytes as a layer tar stream, applied by `strata::archive::apply_layer` into a
//! fresh directory. Errors are fine; what must never happen is a panic, or anything created,
//! changed or removed outside the destination.
//!
//! Input: the first byte picks a mode, the rest is the tar stream.
//! - even: the bytes as they are;
//! - odd: the checksum of every header is fixed up first (walking the stream the way a tar
//!   reader does: header, data rounded up to 512 bytes, next header), so that the fuzzer spends
//!   its time on what members mean rather than on checksums.
//!
//! Layout of each run, in a fresh temp dir T:
//!   T/a/b/dest/            the destination (`../..` from it reaches T)
//!   T/a/canary, T/canary   files with known content, T/a/c/ a directory with a file,
//!   T/a/link -> canary     a symlink
//! After applying, everything in T except `a/b/dest` must be exactly as before, and the
//! listing of `/` must not have changed (an absolute name or symlink target escaping the
//! destination would most likely land there or in T).

#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata::archive::{ApplyOptions, apply_layer};

fn root_listing() -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = fs::read_dir("/")
        .expect("read /")
        .map(|e| e.expect("entry of /").file_name())
        .collect();
    v.sort();
    v
}

static ROOT_BEFORE: OnceLock<Vec<std::ffi::OsString>> = OnceLock::new();

/// (type, mode, uid, gid, size, mtime, content or link target) of every path under `dir`,
/// skipping `skip`, never following symlinks.
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p == skip {
                continue;
            }
            let md = fs::symlink_metadata(&p).expect("lstat");
            let ft = md.file_type();
            let what = if ft.is_symlink() {
                format!("link {:?}", fs::read_link(&p).expect("readlink"))
            } else if ft.is_file() {
                format!("file {:?}", fs::read(&p).expect("read"))
            } else if ft.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                "other".to_string()
            };
            let desc = format!(
                "{what} mode={:o} owner={}:{} size={} mtime={}.{} nlink={}",
                md.mode(),
                md.uid(),
                md.gid(),
                md.size(),
                md.mtime(),
                md.mtime_nsec(),
                md.nlink()
            );
            out.insert(p, desc);
        }
    }
    let md = fs::symlink_metadata(dir).expect("lstat T");
    out.insert(
        dir.to_path_buf(),
        format!("root mode={:o} mtime={}", md.mode(), md.mtime()),
    );
    out
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
fn fix_checksums(data: &mut [u8]) {
    let mut off = 0usize;
    while off + 512 <= data.len() {
        let block = &mut data[off..off + 512];
        if block.iter().all(|b| *b == 0) {
            off += 512;
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        let cks = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(cks.as_bytes());
        let size = if block[124] & 0x80 != 0 {
            // base-256
            block[125..136].iter().fold(0u64, |acc, b| {
                acc.saturating_mul(256).saturating_add(u64::from(*b))
            })
        } else {
            match octal(&block[124..136]) {
                Some(s) => s,
                None => return,
            }
        };
        // Header-only types carry no data whatever the size says (for the walk only).
        let typeflag = block[156];
        let size = if matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6') {
            0
        } else {
            size
        };
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

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut tar = rest.to_vec();
    if mode & 1 == 1 {
        fix_checksums(&mut tar);
    }
    let root_before = ROOT_BEFORE.get_or_init(root_listing);

    let t = tempfile::Builder::new()
        .prefix("strata-fuzz-")
        .tempdir()
        .expect("temp dir");
    let base = t.path();
    let dest = base.join("a/b/dest");
    fs::create_dir_all(&dest).expect("mkdir dest");
    fs::write(base.join("canary"), b"outside the layer").expect("canary");
    fs::write(base.join("a/canary"), b"next to the layer").expect("canary");
    fs::create_dir(base.join("a/c")).expect("mkdir");
    fs::write(base.join("a/c/f"), b"keep").expect("canary");
    std::os::unix::fs::symlink("canary", base.join("a/link")).expect("symlink");
    let before = snapshot(base, &dest);

    let _ = apply_layer(&tar[..], &dest, &ApplyOptions::default());

    let after = snapshot(base, &dest);
    assert_eq!(before, after, "something outside the destination changed");
    assert_eq!(
        &root_listing(),
        root_before,
        "the listing of / changed while applying a layer"
    );
    // `t` removes the whole tree on drop.
});

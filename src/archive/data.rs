//! Copying a regular file's content from the tar stream into the newly created file.
//!
//! Two layouts: plain data; and sparse members (PAX formats 0.x with the map in PAX records,
//! 1.0 with the map at the start of the data, and old GNU sparse members with the map in their
//! headers), whose data fragments are written at their offsets, the rest left as holes.
//!
//! In plain data, 4 KiB blocks (aligned in the file) that are all zero are not written but
//! left as holes, and the file gets its size at the end: a layer of mostly zeros (a
//! decompression bomb: 4 MB of gzip make 4 GiB of zeros) costs little disk. Docker writes
//! zeros out; reading the file gives the same bytes either way, only the disk use (and `du`)
//! differs. The check is a memcmp against a zero block per 4 KiB, cheap next to
//! decompression.

use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::os::unix::fs::FileExt;

use sha2::{Digest as _, Sha256};

use super::content::hash_zeros;
use super::pax::{PaxSparse, parse_u64};

/// Holes are detected in blocks of this size (aligned in the file).
const HOLE_BLOCK: usize = 4096;

/// What a hole reads as.
static ZERO_BLOCK: [u8; HOLE_BLOCK] = [0; HOLE_BLOCK];

/// How the member's data maps onto the file.
pub(crate) enum Layout<'a> {
    /// Data is the file.
    Plain,
    /// Sparse: data fragments (PAX 0.x/1.0 or old GNU).
    Sparse(&'a PaxSparse),
}

/// What went wrong while copying.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Reading the tar stream (including truncation).
    Read(io::Error),
    /// Writing the file.
    Write(io::Error),
    /// An invalid sparse map.
    Invalid(String),
}

/// Copies `size` bytes of member data from `src` into `file` (a fresh, empty file) and returns
/// the file's logical size. `buf`'s length must be a multiple of 4 KiB. With `sha`, the file's
/// logical content (holes as zeros) is hashed on the way, from the bytes in hand.
pub(crate) fn copy(
    src: &mut impl Read,
    size: u64,
    file: &File,
    layout: Layout<'_>,
    buf: &mut [u8],
    sha: Option<&mut Sha256>,
) -> Result<u64, CopyError> {
    match layout {
        Layout::Plain => {
            zero_skip(src, size, file, buf, sha)?;
            Ok(size)
        }
        Layout::Sparse(sparse) => {
            let (map, map_len) = match &sparse.map {
                Some(map) => (map.clone(), 0),
                None => read_map_1x0(src, size)?,
            };
            fragments(src, size - map_len, &map, sparse.real_size, file, buf, sha)?;
            Ok(sparse.real_size)
        }
    }
}

fn truncated(expected: u64, got: u64) -> CopyError {
    CopyError::Read(io::Error::new(
        ErrorKind::UnexpectedEof,
        format!("member data ends after {got} of {expected} bytes"),
    ))
}

/// Reads until `buf` is full or the source ends; returns the count.
fn fill(src: &mut impl Read, buf: &mut [u8]) -> Result<usize, CopyError> {
    super::reader::fill(src, buf).map_err(CopyError::Read)
}

/// Reads exactly `buf.len()` bytes of a member that should have `expected` bytes, `done`
/// already read.
fn fill_exact(
    src: &mut impl Read,
    buf: &mut [u8],
    expected: u64,
    done: u64,
) -> Result<(), CopyError> {
    let n = fill(src, buf)?;
    if n < buf.len() {
        return Err(truncated(expected, done + n as u64));
    }
    Ok(())
}

fn chunk(remaining: u64, buf: &[u8]) -> usize {
    usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()))
}

/// Copies the data, leaving all-zero blocks as holes (see the module documentation).
fn zero_skip(
    src: &mut impl Read,
    size: u64,
    file: &File,
    buf: &mut [u8],
    mut sha: Option<&mut Sha256>,
) -> Result<(), CopyError> {
    debug_assert!(buf.len().is_multiple_of(HOLE_BLOCK));
    let mut done = 0;
    // Where the data written so far ends.
    let mut written = 0;
    while done < size {
        let want = chunk(size - done, buf);
        fill_exact(src, &mut buf[..want], size, done)?;
        let data = &buf[..want];
        if let Some(sha) = sha.as_deref_mut() {
            sha.update(data);
        }
        // Write maximal runs of blocks that are not all zero.
        let mut start = None;
        for (i, block) in data.chunks(HOLE_BLOCK).enumerate() {
            let zero = block == &ZERO_BLOCK[..block.len()];
            match (zero, start) {
                (false, None) => start = Some(i * HOLE_BLOCK),
                (true, Some(s)) => {
                    file.write_all_at(&data[s..i * HOLE_BLOCK], done + s as u64)
                        .map_err(CopyError::Write)?;
                    written = done + (i * HOLE_BLOCK) as u64;
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            file.write_all_at(&data[s..], done + s as u64)
                .map_err(CopyError::Write)?;
            written = done + want as u64;
        }
        done += want as u64;
    }
    if written < size {
        file.set_len(size).map_err(CopyError::Write)?;
    }
    Ok(())
}

/// Writes the data fragments of a sparse file: `physical` bytes of data follow in `src`.
fn fragments(
    src: &mut impl Read,
    physical: u64,
    map: &[(u64, u64)],
    real_size: u64,
    file: &File,
    buf: &mut [u8],
    mut sha: Option<&mut Sha256>,
) -> Result<(), CopyError> {
    // Validate first (Go's validateSparseEntries plus "no unreferenced/missing data").
    let mut end = 0u64;
    let mut total = 0u64;
    for &(offset, len) in map {
        let frag_end = offset
            .checked_add(len)
            .ok_or_else(|| CopyError::Invalid("sparse map overflows".into()))?;
        if offset < end || frag_end > real_size {
            return Err(CopyError::Invalid(
                "sparse map fragments overlap, are out of order or exceed the file size".into(),
            ));
        }
        end = frag_end;
        total += len;
    }
    if total != physical {
        return Err(CopyError::Invalid(format!(
            "sparse map describes {total} bytes of data but the member holds {physical}"
        )));
    }
    let mut done = 0;
    // Where the hashed content ends.
    let mut hashed = 0;
    for &(offset, len) in map {
        if let Some(sha) = sha.as_deref_mut() {
            hash_zeros(sha, offset - hashed);
            hashed = offset + len;
        }
        let mut written = 0;
        while written < len {
            let want = chunk(len - written, buf);
            fill_exact(src, &mut buf[..want], physical, done)?;
            file.write_all_at(&buf[..want], offset + written)
                .map_err(CopyError::Write)?;
            if let Some(sha) = sha.as_deref_mut() {
                sha.update(&buf[..want]);
            }
            written += want as u64;
            done += want as u64;
        }
    }
    if let Some(sha) = sha {
        hash_zeros(sha, real_size - hashed);
    }
    file.set_len(real_size).map_err(CopyError::Write)
}

/// Reads the sparse map that starts the data of a PAX 1.0 sparse member: decimal numbers, one a
/// line (count, then offset/length pairs), padded with zeros to a 512-byte boundary. Returns the
/// map and the bytes it took.
fn read_map_1x0(src: &mut impl Read, size: u64) -> Result<(Vec<(u64, u64)>, u64), CopyError> {
    let invalid = || CopyError::Invalid("invalid GNU sparse 1.0 map".into());
    let mut block = [0u8; 512];
    let mut consumed = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut numbers: Vec<u64> = Vec::new();
    let mut wanted: Option<u64> = None;
    loop {
        if let Some(n) = wanted
            && numbers.len() as u64 == 1 + 2 * n
        {
            break;
        }
        if consumed + 512 > size {
            return Err(invalid());
        }
        fill_exact(src, &mut block, size, consumed)?;
        consumed += 512;
        for &b in &block {
            if wanted.is_some_and(|n| numbers.len() as u64 == 1 + 2 * n) {
                break;
            }
            if b == b'\n' {
                numbers.push(parse_u64(&pending).ok_or_else(invalid)?);
                pending.clear();
                if numbers.len() == 1 {
                    // Each pair needs at least 4 bytes ("0\n0\n"): bounds the allocation.
                    let n = numbers[0];
                    if n > size / 4 {
                        return Err(invalid());
                    }
                    wanted = Some(n);
                }
            } else {
                if pending.len() >= 20 {
                    return Err(invalid());
                }
                pending.push(b);
            }
        }
    }
    let map = numbers[1..].chunks_exact(2).map(|c| (c[0], c[1])).collect();
    Ok((map, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn run(data: &[u8], size: u64, layout: Layout<'_>) -> (Result<u64, CopyError>, Vec<u8>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut buf = vec![0u8; 8192];
        let mut sha = Sha256::new();
        let r = copy(
            &mut &data[..],
            size,
            &file,
            layout,
            &mut buf,
            Some(&mut sha),
        );
        drop(file);
        let content = std::fs::read(&path).unwrap();
        let blocks = std::fs::metadata(&path).unwrap().blocks();
        if r.is_ok() {
            // The hash taken on the way is the hash of what reading the file gives.
            assert_eq!(
                <[u8; 32]>::from(sha.finalize()),
                <[u8; 32]>::from(Sha256::digest(&content))
            );
        }
        (r, content, blocks)
    }

    #[test]
    fn plain_copy_and_truncation() {
        let data: Vec<u8> = (0..20000u32).map(|i| i as u8).collect();
        let (r, content, _) = run(&data, 20000, Layout::Plain);
        assert_eq!(r.unwrap(), 20000);
        assert_eq!(content, data);
        let (r, _, _) = run(&data[..100], 20000, Layout::Plain);
        match r {
            Err(CopyError::Read(e)) => {
                assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
                assert!(e.to_string().contains("100 of 20000"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zero_blocks_become_holes() {
        // Plain files too.
        let mut data = vec![0u8; 100_000];
        data[5000] = 7;
        data[99_999] = 9;
        let (r, content, blocks) = run(&data, 100_000, Layout::Plain);
        assert_eq!(r.unwrap(), 100_000);
        assert_eq!(content, data);
        assert!(blocks <= 16, "{blocks} blocks: not sparse");
        // A short tail of zeros after data: the size comes from set_len.
        let mut data = vec![1u8; 9000];
        data[8192..].fill(0);
        let (_, content, _) = run(&data, 9000, Layout::Plain);
        assert_eq!(content, data);
        let mut data = vec![0u8; 1 << 20];
        data[0] = 1;
        data[(1 << 20) - 1] = 2;
        let (r, content, blocks) = run(&data, 1 << 20, Layout::Plain);
        assert_eq!(r.unwrap(), 1 << 20);
        assert_eq!(content, data);
        assert!(blocks < 64, "{blocks} blocks: not sparse");
        // All zeros: only the size.
        let (_, content, blocks) = run(&vec![0u8; 100_000], 100_000, Layout::Plain);
        assert_eq!(content.len(), 100_000);
        assert_eq!(blocks, 0);
    }

    #[test]
    fn pax_0x_fragments() {
        let sparse = PaxSparse {
            real_size: 20,
            map: Some(vec![(2, 3), (10, 2)]),
        };
        let (r, content, _) = run(b"abcde", 5, Layout::Sparse(&sparse));
        assert_eq!(r.unwrap(), 20);
        assert_eq!(content, b"\0\0abc\0\0\0\0\0de\0\0\0\0\0\0\0\0");
        // Map describing more data than the member holds.
        let (r, _, _) = run(b"abcd", 4, Layout::Sparse(&sparse));
        assert!(matches!(r, Err(CopyError::Invalid(_))));
        // Overlap.
        let bad = PaxSparse {
            real_size: 20,
            map: Some(vec![(2, 3), (4, 2)]),
        };
        assert!(matches!(
            run(b"abcde", 5, Layout::Sparse(&bad)).0,
            Err(CopyError::Invalid(_))
        ));
        // Beyond the real size.
        let bad = PaxSparse {
            real_size: 4,
            map: Some(vec![(2, 3)]),
        };
        assert!(matches!(
            run(b"abc", 3, Layout::Sparse(&bad)).0,
            Err(CopyError::Invalid(_))
        ));
    }

    #[test]
    fn pax_1x0_map_in_data() {
        let mut data = b"2\n1\n2\n6\n1\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"xyz");
        let sparse = PaxSparse {
            real_size: 8,
            map: None,
        };
        let (r, content, _) = run(&data, data.len() as u64, Layout::Sparse(&sparse));
        assert_eq!(r.unwrap(), 8);
        assert_eq!(content, b"\0xy\0\0\0z\0");
        // Garbage map.
        let mut bad = b"2\nx\n".to_vec();
        bad.resize(512, 0);
        assert!(matches!(
            run(&bad, 512, Layout::Sparse(&sparse)).0,
            Err(CopyError::Invalid(_))
        ));
        // Absurd count.
        let mut bad = b"99999999\n".to_vec();
        bad.resize(512, 0);
        assert!(matches!(
            run(&bad, 512, Layout::Sparse(&sparse)).0,
            Err(CopyError::Invalid(_))
        ));
    }
}

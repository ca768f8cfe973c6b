//! [`unpack_verified`] on uncompressed blobs, whose tar is the blob: one hash verifies both the
//! blob and the diff_id, in either form (one thread or pipelined).

use super::*;

/// A tar-like payload (the applier here does not parse it).
fn payload() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

fn descriptor(digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: String::new(),
        digest,
        size,
        platform: None,
        urls: None,
        annotations: None,
    }
}

/// Runs `unpack_verified` on `blob`, with an applier that reads `read` bytes at most.
fn unpack(
    blob: &[u8],
    descriptor: &Descriptor,
    diff_id: &Digest,
    pipelined: bool,
    read: u64,
) -> Result<(ApplyStats, DiffId), LayerError> {
    let diff_id = DiffId::new(diff_id.clone());
    unpack_verified(
        blob,
        descriptor,
        Compression::None,
        &diff_id,
        pipelined,
        |tar| {
            let n = io::copy(&mut tar.take(read), &mut io::sink()).map_err(|source| {
                ArchiveError::Io {
                    entry: None,
                    source,
                }
            })?;
            Ok(ApplyStats {
                bytes: n,
                ..ApplyStats::default()
            })
        },
    )
}

#[test]
fn an_uncompressed_blob_s_digest_is_its_diff_id() {
    let blob = payload();
    let digest = Digest::of(&blob);
    let desc = descriptor(digest.clone(), blob.len() as u64);
    for pipelined in [false, true] {
        // The applier reads all of it, or stops early (the rest is still hashed).
        for read in [u64::MAX, 1000] {
            let (stats, diff_id) = unpack(&blob, &desc, &digest, pipelined, read).unwrap();
            assert_eq!(diff_id.digest(), &digest);
            assert_eq!(stats.bytes, read.min(blob.len() as u64));
        }
    }
}

#[test]
fn a_corrupt_uncompressed_blob_fails_as_a_blob() {
    let blob = payload();
    let digest = Digest::of(&blob);
    let desc = descriptor(digest.clone(), blob.len() as u64);
    let mut bad = blob.clone();
    bad[200_000] ^= 1;
    for pipelined in [false, true] {
        for read in [u64::MAX, 1000] {
            let err = unpack(&bad, &desc, &digest, pipelined, read).unwrap_err();
            assert!(matches!(err, LayerError::Blob(_)), "{err:?}");
        }
    }
}

#[test]
fn an_uncompressed_blob_that_is_not_the_diff_id_fails_as_a_diff_id() {
    let blob = payload();
    let desc = descriptor(Digest::of(&blob), blob.len() as u64);
    let other = Digest::of(b"another layer");
    for pipelined in [false, true] {
        let err = unpack(&blob, &desc, &other, pipelined, u64::MAX).unwrap_err();
        assert!(matches!(err, LayerError::DiffId(_)), "{err:?}");
    }
}

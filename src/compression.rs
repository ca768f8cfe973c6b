//! Layer decompression: the decoder for the compression a layer's media type declares
//! ([`Compression`], from the image model), once the magic bytes confirm it.

use std::io::{self, BufRead, BufReader, Read};

use crate::image::Compression;

/// Errors from setting up decompression.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The media type and the content disagree.
    #[error("media type says {declared} but the content is {found}")]
    Mismatch {
        /// What the media type declared.
        declared: &'static str,
        /// What the magic bytes say.
        found: &'static str,
    },
    /// Reading the first bytes failed.
    #[error("reading layer: {0}")]
    Io(#[from] io::Error),
}

/// Size of the read buffer in front of the decoders: large reads keep syscalls and channel hops few.
const BUF: usize = 256 * 1024;

/// Wraps `reader` in the decoder for `declared`, after checking the magic bytes agree.
///
/// An empty stream is accepted as an empty layer only for plain tar.
pub fn decoder<'a, R: Read + Send + 'a>(
    reader: R,
    declared: Compression,
) -> Result<Box<dyn Read + Send + 'a>, CompressionError> {
    let mut buffered = BufReader::with_capacity(BUF, reader);
    let head = buffered.fill_buf()?;
    let found = Compression::sniff(head);
    if found != declared {
        return Err(CompressionError::Mismatch {
            declared: declared.name(),
            found: found.name(),
        });
    }
    Ok(match declared {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn round_trips_each_kind() {
        let data = vec![7u8; 100_000];
        let z = zstd::encode_all(&data[..], 1).unwrap();
        for (blob, kind) in [
            (data.clone(), Compression::None),
            (gzip(&data), Compression::Gzip),
            (z, Compression::Zstd),
        ] {
            let mut out = Vec::new();
            decoder(&blob[..], kind)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{kind:?}");
        }
    }

    #[test]
    fn refuses_mismatched_magic() {
        let err = decoder(&gzip(b"x")[..], Compression::Zstd).err().unwrap();
        assert!(
            err.to_string().contains("zstd but the content is gzip"),
            "{err}"
        );
        assert!(decoder(&b"plain"[..], Compression::Gzip).is_err());
    }

    #[test]
    fn truncated_gzip_fails() {
        let blob = gzip(&vec![1u8; 50_000]);
        let mut out = Vec::new();
        let res = decoder(&blob[..blob.len() / 2], Compression::Gzip)
            .unwrap()
            .read_to_end(&mut out);
        assert!(res.is_err());
    }
}

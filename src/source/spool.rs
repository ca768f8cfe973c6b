//! An archive that cannot be read in place (stdin, or compressed) copied once, decompressed,
//! into an unnamed temporary file, then read in place from there. `docker save` and its kin
//! write `manifest.json` and `index.json` after the layers, so a one-pass reader would not
//! know what a layer is until it has passed.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::LayoutError;
use crate::compression::decoder;
use crate::image::Compression;

/// The magic bytes of an xz stream.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// Bytes read from the stream at once.
const BUF: usize = 256 * 1024;

/// How an archive is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveCompression {
    /// As a layer can be: none, gzip or zstd.
    Layer(Compression),
    /// xz (`docker save | xz`).
    Xz,
}

impl ArchiveCompression {
    /// What the first bytes of an archive say.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(XZ_MAGIC) {
            ArchiveCompression::Xz
        } else {
            ArchiveCompression::Layer(Compression::sniff(head))
        }
    }
}

/// Whether the file `path` starts with the magic bytes of a compressed stream (gzip, zstd, xz).
pub fn is_compressed(path: &Path) -> Result<bool, LayoutError> {
    let io_err = |op| {
        move |source| LayoutError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let file = File::open(path).map_err(io_err("opening the archive"))?;
    let mut head = Vec::with_capacity(XZ_MAGIC.len());
    file.take(XZ_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(io_err("reading the archive"))?;
    Ok(ArchiveCompression::sniff(&head) != ArchiveCompression::Layer(Compression::None))
}

/// Copies the archive `reader` (named `name` in errors), decompressed if its magic bytes say
/// gzip, zstd or xz, into an unnamed file (`O_TMPFILE`) in `dir`, and returns it rewound. The file
/// has no name, so it goes when closed, whether the load ends, fails or is killed. Blocking;
/// memory stays bounded (one buffer and the decoder's window: for xz, the dictionary size its
/// header declares, 8 MiB at `xz -6`).
pub fn spool_archive(
    reader: impl Read + Send,
    name: &Path,
    dir: &Path,
) -> Result<File, LayoutError> {
    let read_err = |source| LayoutError::Io {
        path: name.to_path_buf(),
        op: "reading the archive",
        source,
    };
    let mut buffered = BufReader::with_capacity(BUF, reader);
    let head = buffered.fill_buf().map_err(read_err)?;
    if head.is_empty() {
        return Err(LayoutError::BadArchive {
            path: name.to_path_buf(),
            reason: "empty (no archive given)".to_string(),
        });
    }
    let compression = ArchiveCompression::sniff(head);
    let temp_err = |op, source| LayoutError::Io {
        path: dir.to_path_buf(),
        op,
        source,
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(|e| temp_err("creating a temporary file (O_TMPFILE)", e.into()))?;
    let mut file = File::from(fd);
    let copied = match compression {
        ArchiveCompression::Layer(c) => {
            let mut decoded = decoder(buffered, c).map_err(|e| read_err(io::Error::other(e)))?;
            copy(&mut decoded, &mut file)
        }
        ArchiveCompression::Xz => unxz(&mut buffered, &mut file),
    };
    copied.map_err(|e| match e {
        Side::Read(e) => read_err(e),
        Side::Write(e) => temp_err("writing the temporary copy", e),
    })?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| temp_err("rewinding the temporary copy", e))?;
    Ok(file)
}

/// Which side of a copy failed.
enum Side {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy`, telling a read error from a write error.
fn copy(from: &mut dyn Read, to: &mut File) -> Result<(), Side> {
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Side::Read(e)),
        };
        io::Write::write_all(to, &buf[..n]).map_err(Side::Write)?;
    }
}

/// Decompresses the xz stream `from` into `to`.
fn unxz(from: &mut impl BufRead, to: &mut File) -> Result<(), Side> {
    let mut out = io::BufWriter::with_capacity(BUF, to);
    lzma_rs::xz_decompress(from, &mut out).map_err(|e| {
        Side::Read(match e {
            lzma_rs::error::Error::IoError(e) | lzma_rs::error::Error::HeaderTooShort(e) => e,
            lzma_rs::error::Error::LzmaError(m) | lzma_rs::error::Error::XzError(m) => {
                io::Error::new(io::ErrorKind::InvalidData, format!("xz: {m}"))
            }
        })
    })?;
    io::Write::flush(&mut out).map_err(Side::Write)
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

    fn spooled(input: &[u8], dir: &Path) -> Result<Vec<u8>, LayoutError> {
        let mut file = spool_archive(input, Path::new("-"), dir)?;
        let mut out = Vec::new();
        file.read_to_end(&mut out).unwrap();
        Ok(out)
    }

    #[test]
    fn copies_plain_gzip_and_zstd_decompressed_leaving_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let z = zstd::encode_all(&data[..], 1).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &data[..], &mut xz).unwrap();
        for input in [data.clone(), gzip(&data), z, xz] {
            assert_eq!(spooled(&input, tmp.path()).unwrap(), data);
        }
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_empty_and_truncated_streams() {
        let tmp = tempfile::tempdir().unwrap();
        let err = spooled(b"", tmp.path()).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let xz = b"\xfd7zXZ\0rest";
        let err = spooled(xz, tmp.path()).unwrap_err().to_string();
        assert!(err.contains("reading the archive"), "{err}");
        let gz = gzip(&vec![3u8; 100_000]);
        let err = spooled(&gz[..gz.len() / 2], tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("reading the archive"), "{err}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}

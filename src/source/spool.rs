//! An archive that cannot be read in place (stdin, or compressed) copied once, decompressed,
//! into an unnamed temporary file, then read in place from there. `docker save` and its kin
//! write `manifest.json` and `index.json` after the layers, so a one-pass reader would not
//! know what a layer is until it has passed.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags};

use super::LayoutError;
use crate::compression::decoder;
use crate::image::Compression;

/// The magic bytes of an xz stream.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// Bytes read from the stream at once.
const BUF: usize = 256 * 1024;

/// Most memory the xz decoder may use: enough for every preset (`xz -9` and `-9e`: 65 MiB),
/// not for a crafted header's dictionary of up to 4 GiB.
pub const XZ_MEMLIMIT: u64 = 96 * 1024 * 1024;

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

/// A spooled copy of an archive: the unnamed file, read at `/proc/self/fd/N` ([`Self::path`]).
/// While it lives, errors about that path and the name an unnamed image falls back to show
/// the archive's own name (`stdin`, the compressed file's) instead of the descriptor's.
#[derive(Debug)]
pub struct SpooledArchive {
    /// Keeps the copy alive (it goes when this closes).
    _file: File,
    path: PathBuf,
}

impl SpooledArchive {
    /// The path to read the copy at (`/proc/self/fd/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpooledArchive {
    fn drop(&mut self) {
        if let Ok(mut shown) = SHOWN.lock() {
            shown.retain(|(path, _)| path != &self.path);
        }
    }
}

/// Descriptor paths of live spooled copies and the names they stand for. A path is the
/// only thing the transports carry, and `/proc/self/fd/N` means nothing to a user.
static SHOWN: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

/// The name to show for the archive at `path`: the spooled archive's own when it is one,
/// else `path`.
pub(crate) fn shown_name(path: &Path) -> PathBuf {
    SHOWN
        .lock()
        .ok()
        .and_then(|shown| {
            shown
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, name)| name.clone())
        })
        .unwrap_or_else(|| path.to_path_buf())
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
/// gzip, zstd or xz, into an unnamed file (`O_TMPFILE`) in `dir`, and returns it rewound, to be
/// read at [`SpooledArchive::path`] and shown as `name`. The file has no name, so it goes when
/// closed, whether the load ends, fails or is killed. Blocking;
/// memory stays bounded: one buffer and the decoder's window (for xz, the dictionary its
/// header declares, 8 MiB at `xz -6`, 64 MiB at `xz -9`; a stream that needs more than
/// [`XZ_MEMLIMIT`] to decode is refused).
pub fn spool_archive(
    reader: impl Read + Send,
    name: &Path,
    dir: &Path,
) -> Result<SpooledArchive, LayoutError> {
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
        ArchiveCompression::Xz => unxz(buffered, &mut file),
    };
    copied.map_err(|e| match e {
        Side::Read(e) if is_xz_memlimit(&e) => LayoutError::BadArchive {
            path: name.to_path_buf(),
            reason: format!(
                "xz: decoding needs more than {} MiB of memory (a dictionary larger than any \
                 xz preset's); decompress it first (xz -d) and load the .tar",
                XZ_MEMLIMIT >> 20
            ),
        },
        Side::Read(e) => read_err(e),
        Side::Write(e) => temp_err("writing the temporary copy", e),
    })?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| temp_err("rewinding the temporary copy", e))?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    if let Ok(mut shown) = SHOWN.lock() {
        shown.push((path.clone(), name.to_path_buf()));
    }
    Ok(SpooledArchive { _file: file, path })
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

/// Decompresses the xz stream `from` (concatenated streams too, as `xz -d` reads them) into
/// `to`, streaming, with liblzma's memory limit at [`XZ_MEMLIMIT`].
fn unxz(from: impl BufRead, to: &mut File) -> Result<(), Side> {
    let stream = xz2::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, xz2::stream::CONCATENATED)
        .map_err(|e| Side::Read(e.into()))?;
    let mut decoded = xz2::bufread::XzDecoder::new_stream(from, stream);
    copy(&mut decoded, to).map_err(|e| match e {
        // The memory limit stays liblzma's error, for `is_xz_memlimit`.
        Side::Read(e) if !is_xz_memlimit(&e) => {
            Side::Read(io::Error::new(e.kind(), format!("xz: {e}")))
        }
        other => other,
    })
}

/// Whether `e` is liblzma's refusal to exceed [`XZ_MEMLIMIT`].
fn is_xz_memlimit(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<xz2::stream::Error>())
        .is_some_and(|inner| matches!(inner, xz2::stream::Error::MemLimit))
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

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn spooled(input: &[u8], dir: &Path) -> Result<Vec<u8>, LayoutError> {
        let copy = spool_archive(input, Path::new("-"), dir)?;
        Ok(std::fs::read(copy.path()).unwrap())
    }

    #[test]
    fn copies_plain_gzip_and_zstd_decompressed_leaving_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let z = zstd::encode_all(&data[..], 1).unwrap();
        let xz = xz(&data);
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

    /// An xz stream made by liblzma with an LZMA2 dictionary of `dict_size` bytes (declared in
    /// its block header), otherwise valid.
    fn xz_with_dictionary(dict_size: u32, data: &[u8]) -> Vec<u8> {
        let mut opts = xz2::stream::LzmaOptions::new_preset(0).unwrap();
        opts.dict_size(dict_size);
        let mut filters = xz2::stream::Filters::new();
        filters.lzma2(&opts);
        let stream =
            xz2::stream::Stream::new_stream_encoder(&filters, xz2::stream::Check::Crc64).unwrap();
        let mut enc = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn refuses_xz_needing_more_memory_than_the_limit_and_names_the_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let data = vec![5u8; 10_000];
        let huge = xz_with_dictionary(1536 << 20, &data);
        let err = spool_archive(&huge[..], Path::new("app.tar.xz"), tmp.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("app.tar.xz: xz: decoding needs more than 96 MiB"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        // xz -9's dictionary (64 MiB) is within the limit.
        assert_eq!(
            spooled(&xz_with_dictionary(64 << 20, &data), tmp.path()).unwrap(),
            data
        );
    }

    #[test]
    fn reads_concatenated_xz_streams() {
        let tmp = tempfile::tempdir().unwrap();
        let both = [xz(b"first "), xz(b"second")].concat();
        assert_eq!(spooled(&both, tmp.path()).unwrap(), b"first second");
        let err = spooled(&[xz(b"ok"), b"garbage".to_vec()].concat(), tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("xz: "), "{err}");
    }

    #[test]
    fn a_spooled_copy_is_shown_by_its_name_while_it_lives() {
        let tmp = tempfile::tempdir().unwrap();
        let copy = spool_archive(&gzip(b"not a tar")[..], Path::new("stdin"), tmp.path()).unwrap();
        let path = copy.path().to_path_buf();
        assert!(path.starts_with("/proc/self/fd"), "{path:?}");
        assert_eq!(shown_name(&path), Path::new("stdin"));
        let err = crate::source::Files::tar(&path).unwrap_err().to_string();
        assert!(err.starts_with("stdin: "), "{err}");
        drop(copy);
        assert_eq!(shown_name(&path), path);
    }
}

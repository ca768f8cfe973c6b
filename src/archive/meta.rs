//! Everything one member says about itself: name, link target, mode, owner, times, extended
//! attributes and sparse maps, gathered from its header and PAX records (as [`reader`] frames
//! them) before any data is read.
//!
//! Numeric header fields are read as Go's archive/tar reads them. PAX records are checked more
//! strictly than Go does: a duplicated record, or one whose value does not parse, refuses the
//! member rather than letting one of two readings win.
//!
//! [`reader`]: super::reader

use std::collections::HashSet;
use std::ffi::CString;

use rustix::fs::Timespec;

use super::overlay_xattr;
use super::pax::{PaxSparse, parse_pax_time, parse_u64};
use super::reader::{self, Format, Member};

/// Metadata of one member.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// The raw member name (PAX `path`, GNU longname, `GNU.sparse.name` or the header's).
    pub name: Vec<u8>,
    /// The raw link target of symlinks and hardlinks.
    pub link: Option<Vec<u8>>,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Modification time (PAX `mtime` with nanoseconds when present).
    pub mtime: Timespec,
    /// Access time: PAX `atime` when present and not before `mtime`, else `mtime` (as Docker).
    pub atime: Timespec,
    /// `SCHILY.xattr.*` records, overlay namespaces removed.
    pub xattrs: Vec<(CString, Vec<u8>)>,
    /// Set for sparse files (PAX formats and old GNU).
    pub sparse: Option<PaxSparse>,
    /// Device numbers of character and block devices.
    pub device: (u32, u32),
    /// The bytes of data in the stream (PAX `size` or the header's; stored bytes of sparse
    /// files).
    pub size: u64,
}

/// Gathers a member's metadata. Errors are reasons, to be prefixed with the member name.
pub(crate) fn read(member: &Member) -> Result<Meta, String> {
    let mut pax = PaxFields::default();
    for (key, value) in &member.records {
        pax.add(key, value)?;
    }
    let raw = member.header.as_bytes();
    // The reader checked that these parse (Go refuses the header otherwise).
    let number = |range: std::ops::Range<usize>, what: &str| {
        reader::parse_numeric(&raw[range]).ok_or_else(|| format!("invalid {what} field"))
    };
    let mode = u32::try_from(number(100..108, "mode")?)
        .map_err(|_| "mode field out of range".to_string())?
        & 0o7777;
    // PAX uid/gid replace the header's (which must still parse, as for Go).
    let uid = id(number(108..116, "uid")?, pax.uid, "uid")?;
    let gid = id(number(116..124, "gid")?, pax.gid, "gid")?;
    let mtime = match pax.mtime {
        Some(t) => t,
        // Base-256 (GNU) may be negative.
        None => Timespec {
            tv_sec: number(136..148, "mtime")?,
            tv_nsec: 0,
        },
    };
    let atime = match pax.atime {
        Some(a) if (a.tv_sec, a.tv_nsec) > (mtime.tv_sec, mtime.tv_nsec) => a,
        _ => mtime,
    };
    // ustar and GNU headers keep devmajor at 329..337 and devminor at 337..345; Go reads
    // them as 0 in v7 headers.
    let device = if matches!(member.typeflag, b'3' | b'4') && reader::format(raw) != Format::V7 {
        let dev = |range, what: &str| {
            u32::try_from(number(range, what)?).map_err(|_| format!("{what} out of range"))
        };
        (
            dev(329..337, "device major")?,
            dev(337..345, "device minor")?,
        )
    } else {
        (0, 0)
    };
    let pax_sparse = pax.sparse()?;
    let name = match pax.sparse_name.take() {
        Some(name) if pax_sparse.is_some() && !name.is_empty() => name,
        _ => member.name.clone(),
    };
    let sparse = match (&member.gnu_sparse, pax_sparse) {
        (Some(_), Some(_)) => {
            return Err("GNU.sparse PAX records on an old GNU sparse member".to_string());
        }
        (Some(old), None) => Some(old.clone()),
        (None, pax_sparse) => pax_sparse,
    };
    Ok(Meta {
        name,
        link: member.link.clone(),
        mode,
        uid,
        gid,
        mtime,
        atime,
        xattrs: pax.xattrs,
        sparse,
        device,
        size: member.size,
    })
}

/// The owner from the header field, or from the PAX record when there is one.
fn id(header: i64, pax: Option<u64>, what: &str) -> Result<u32, String> {
    let value = match pax {
        Some(v) => i128::from(v),
        None => i128::from(header),
    };
    // u32::MAX is -1, "leave unchanged", to chown(2).
    u32::try_from(value)
        .ok()
        .filter(|&v| v != u32::MAX)
        .ok_or_else(|| format!("{what} {value} is out of range"))
}

/// The PAX records strata looks at. `path`, `linkpath` and `size` are applied by the reader;
/// here every record is checked for being unique and, where Go parses it, well-formed.
#[derive(Default)]
struct PaxFields {
    seen: HashSet<Vec<u8>>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<Timespec>,
    atime: Option<Timespec>,
    xattrs: Vec<(CString, Vec<u8>)>,
    sparse_major: Option<Vec<u8>>,
    sparse_minor: Option<Vec<u8>>,
    sparse_name: Option<Vec<u8>>,
    sparse_size: Option<u64>,
    sparse_realsize: Option<u64>,
    sparse_numblocks: Option<u64>,
    sparse_map: Option<Vec<u8>>,
    /// GNU sparse 0.0: repeated `GNU.sparse.offset` / `GNU.sparse.numbytes` records.
    sparse_pairs: Vec<u64>,
    sparse_seen: bool,
}

impl PaxFields {
    fn add(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let shown = || String::from_utf8_lossy(key).into_owned();
        let repeatable = key == b"GNU.sparse.offset" || key == b"GNU.sparse.numbytes";
        if !repeatable && !self.seen.insert(key.to_vec()) {
            return Err(format!("duplicate PAX record {:?}", shown()));
        }
        let number = || parse_u64(value).ok_or_else(|| format!("invalid PAX record {:?}", shown()));
        let time =
            || parse_pax_time(value).ok_or_else(|| format!("invalid PAX record {:?}", shown()));
        // Go keeps the header's value for an empty one (and does not parse it).
        let header_field = matches!(
            key,
            b"path"
                | b"linkpath"
                | b"uname"
                | b"gname"
                | b"uid"
                | b"gid"
                | b"size"
                | b"mtime"
                | b"atime"
                | b"ctime"
        );
        if header_field && value.is_empty() {
            return Ok(());
        }
        if key.starts_with(b"GNU.sparse.") {
            self.sparse_seen = true;
        }
        match key {
            b"mtime" => self.mtime = Some(time()?),
            b"atime" => self.atime = Some(time()?),
            // Not used, but Go refuses the member when it does not parse.
            b"ctime" => {
                time()?;
            }
            b"uid" => self.uid = Some(number()?),
            b"gid" => self.gid = Some(number()?),
            // Framing: the reader has applied it.
            b"size" => {
                number()?;
            }
            // Go refuses these (only) with a NUL.
            b"path" | b"linkpath" | b"uname" | b"gname" if value.contains(&0) => {
                return Err(format!("PAX record {:?} contains a NUL byte", shown()));
            }
            b"GNU.sparse.major" => self.sparse_major = Some(value.to_vec()),
            b"GNU.sparse.minor" => self.sparse_minor = Some(value.to_vec()),
            b"GNU.sparse.name" => self.sparse_name = Some(value.to_vec()),
            b"GNU.sparse.size" => self.sparse_size = Some(number()?),
            b"GNU.sparse.realsize" => self.sparse_realsize = Some(number()?),
            b"GNU.sparse.numblocks" => self.sparse_numblocks = Some(number()?),
            b"GNU.sparse.map" => self.sparse_map = Some(value.to_vec()),
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                // Offsets and sizes must alternate, starting with an offset.
                let expect_offset = self.sparse_pairs.len().is_multiple_of(2);
                if expect_offset != (key == b"GNU.sparse.offset") {
                    return Err("GNU.sparse.offset/numbytes records out of order".to_string());
                }
                self.sparse_pairs.push(number()?);
            }
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    // Never taken from a layer, so that it cannot plant redirect, metacopy
                    // or origin attributes for overlayfs.
                    if overlay_xattr::is_overlay(name) {
                        return Ok(());
                    }
                    let name = CString::new(name)
                        .ok()
                        .filter(|n| !n.as_bytes().is_empty())
                        .ok_or_else(|| format!("invalid xattr name in PAX record {:?}", shown()))?;
                    self.xattrs.push((name, value.to_vec()));
                }
            }
        }
        Ok(())
    }

    /// The sparse layout, following Go's archive/tar: explicit major/minor 0.0, 0.1 or 1.0, or
    /// a bare map (0.0/0.1 wrote no version).
    fn sparse(&self) -> Result<Option<PaxSparse>, String> {
        if !self.sparse_seen {
            return Ok(None);
        }
        let version = (self.sparse_major.as_deref(), self.sparse_minor.as_deref());
        let is_1x0 = match version {
            (Some(b"0"), Some(b"0" | b"1")) => false,
            (Some(b"1"), Some(b"0")) => true,
            (None, None) if self.sparse_map.is_some() || !self.sparse_pairs.is_empty() => false,
            (None, None) => return Err("incomplete GNU.sparse PAX records (no map)".to_string()),
            _ => return Err("unsupported GNU sparse format version".to_string()),
        };
        let real_size = self
            .sparse_size
            .or(self.sparse_realsize)
            .ok_or_else(|| "GNU sparse PAX records without a real size".to_string())?;
        if is_1x0 {
            return Ok(Some(PaxSparse {
                real_size,
                map: None,
            }));
        }
        let numbers: Vec<u64> = match &self.sparse_map {
            Some(_) if !self.sparse_pairs.is_empty() => {
                return Err("both GNU.sparse.map and GNU.sparse.offset records".to_string());
            }
            Some(map) if map.is_empty() => Vec::new(),
            Some(map) => map
                .split(|&b| b == b',')
                .map(parse_u64)
                .collect::<Option<_>>()
                .ok_or_else(|| "invalid GNU.sparse.map".to_string())?,
            None => self.sparse_pairs.clone(),
        };
        if !numbers.len().is_multiple_of(2) {
            return Err("GNU sparse map has an odd number of values".to_string());
        }
        if let Some(n) = self.sparse_numblocks
            && n.checked_mul(2) != Some(numbers.len() as u64)
        {
            return Err("GNU.sparse.numblocks does not match the map".to_string());
        }
        let map = numbers.chunks_exact(2).map(|c| (c[0], c[1])).collect();
        Ok(Some(PaxSparse {
            real_size,
            map: Some(map),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(records: &[(&str, &[u8])]) -> Result<PaxFields, String> {
        let mut f = PaxFields::default();
        for (k, v) in records {
            f.add(k.as_bytes(), v)?;
        }
        Ok(f)
    }

    #[test]
    fn xattrs_filtered() {
        let f = fields(&[
            ("SCHILY.xattr.user.a", b"1"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/x"),
            ("SCHILY.xattr.user.overlay.opaque", b"y"),
            ("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
        ])
        .unwrap();
        let names: Vec<_> = f
            .xattrs
            .iter()
            .map(|(n, _)| n.to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["user.a", "security.capability"]);
    }

    #[test]
    fn duplicates_refused() {
        assert!(fields(&[("path", b"a"), ("path", b"b")]).is_err());
        assert!(fields(&[("size", b"12x")]).is_err());
        assert!(
            fields(&[
                ("GNU.sparse.offset", b"0"),
                ("GNU.sparse.numbytes", b"1"),
                ("GNU.sparse.offset", b"5")
            ])
            .is_ok()
        );
        assert!(fields(&[("GNU.sparse.numbytes", b"1")]).is_err());
    }

    #[test]
    fn sparse_versions() {
        let f = fields(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.realsize", b"100"),
        ])
        .unwrap();
        assert_eq!(
            f.sparse().unwrap(),
            Some(PaxSparse {
                real_size: 100,
                map: None
            })
        );
        let f = fields(&[
            ("GNU.sparse.size", b"100"),
            ("GNU.sparse.numblocks", b"2"),
            ("GNU.sparse.map", b"0,10,50,5"),
        ])
        .unwrap();
        assert_eq!(
            f.sparse().unwrap(),
            Some(PaxSparse {
                real_size: 100,
                map: Some(vec![(0, 10), (50, 5)])
            })
        );
        let f = fields(&[
            ("GNU.sparse.size", b"9"),
            ("GNU.sparse.numblocks", b"1"),
            ("GNU.sparse.offset", b"4"),
            ("GNU.sparse.numbytes", b"2"),
        ])
        .unwrap();
        assert_eq!(
            f.sparse().unwrap(),
            Some(PaxSparse {
                real_size: 9,
                map: Some(vec![(4, 2)])
            })
        );
        let f = fields(&[
            ("GNU.sparse.size", b"9"),
            ("GNU.sparse.numblocks", b"2"),
            ("GNU.sparse.map", b"0,1"),
        ])
        .unwrap();
        assert!(f.sparse().is_err());
        let f = fields(&[
            ("GNU.sparse.major", b"2"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.realsize", b"1"),
        ])
        .unwrap();
        assert!(f.sparse().is_err());
        assert_eq!(fields(&[("mtime", b"1")]).unwrap().sparse().unwrap(), None);
    }
}

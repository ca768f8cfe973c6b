//! Everything one member says about itself: name, link target, mode, owner, times, extended
//! attributes and PAX sparse maps, gathered from the header and its PAX records before any data
//! is read.
//!
//! The tar crate parses PAX records by splitting on newlines, so a record whose value contains a
//! newline (a binary xattr value can) comes out malformed, and it then reads the record's tail as
//! further records. Since the same parser decides the member's `path` and `size`, a member with
//! any malformed or duplicated PAX record is refused instead of being read in a way that another
//! tar reader (Go's archive/tar, used by Docker) would read differently.

use std::ffi::CString;
use std::io::Read;

use rustix::fs::Timespec;

/// The overlay xattr namespaces: never taken from a layer (only the whiteout conversion writes
/// them), so that a layer cannot plant redirect/metacopy/origin attributes for overlayfs.
const OVERLAY_XATTR_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

/// A PAX-format GNU sparse file (formats 0.0, 0.1 and 1.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaxSparse {
    /// The logical file size.
    pub real_size: u64,
    /// `(offset, length)` data fragments for 0.x; `None` for 1.0, whose map starts the data.
    pub map: Option<Vec<(u64, u64)>>,
}

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
    /// Set for PAX-format sparse files.
    pub sparse: Option<PaxSparse>,
    /// Device numbers of character and block devices.
    pub device: (u32, u32),
}

/// Gathers a member's metadata. Errors are reasons, to be prefixed with the member name.
pub(crate) fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, String> {
    let mut pax = PaxFields::default();
    if let Some(records) = entry
        .pax_extensions()
        .map_err(|e| format!("reading PAX records: {e}"))?
    {
        for record in records {
            let record = record.map_err(|_| {
                "malformed PAX extended header record (or a binary value containing a newline, \
                 which cannot be read unambiguously)"
                    .to_string()
            })?;
            pax.add(record.key_bytes(), record.value_bytes())?;
        }
    }
    let header = entry.header();
    let old = header.as_old();
    let mode = blank_or(&old.mode, || header.mode())
        .map_err(|e| format!("invalid mode field: {e}"))?
        & 0o7777;
    let uid = id(blank_or(&old.uid, || header.uid()), "uid")?;
    let gid = id(blank_or(&old.gid, || header.gid()), "gid")?;
    let mtime = match pax.mtime {
        Some(t) => t,
        // Base-256 (GNU) may be negative, which the tar crate's u64 loses.
        None if old.mtime[0] & 0x80 != 0 => Timespec {
            tv_sec: parse_base256(&old.mtime)
                .ok_or("invalid mtime field: base-256 number out of range")?,
            tv_nsec: 0,
        },
        None => {
            let secs = blank_or(&old.mtime, || header.mtime())
                .map_err(|e| format!("invalid mtime field: {e}"))?;
            Timespec {
                tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
                tv_nsec: 0,
            }
        }
    };
    let atime = match pax.atime {
        Some(a) if (a.tv_sec, a.tv_nsec) > (mtime.tv_sec, mtime.tv_nsec) => a,
        _ => mtime,
    };
    let device =
        if header.entry_type().is_character_special() || header.entry_type().is_block_special() {
            // ustar and GNU headers both keep devmajor at 329..337 and devminor at 337..345.
            let raw = header.as_bytes();
            let major = blank_or(&raw[329..337], || header.device_major())
                .map_err(|e| format!("invalid device major: {e}"))?;
            let minor = blank_or(&raw[337..345], || header.device_minor())
                .map_err(|e| format!("invalid device minor: {e}"))?;
            (major.unwrap_or(0), minor.unwrap_or(0))
        } else {
            (0, 0)
        };
    let sparse = pax.sparse()?;
    let name = match pax.sparse_name.take() {
        Some(name) if sparse.is_some() && !name.is_empty() => name,
        _ => entry.path_bytes().into_owned(),
    };
    Ok(Meta {
        name,
        link: entry.link_name_bytes().map(|l| l.into_owned()),
        mode,
        uid,
        gid,
        mtime,
        atime,
        xattrs: pax.xattrs,
        sparse,
        device,
    })
}

/// A numeric header field that is all NULs or spaces reads as 0, as in Go's archive/tar (the
/// tar crate calls it an error; uid/gid are overridden by PAX records before this).
fn blank_or<T: Default>(
    field: &[u8],
    parse: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    if field.iter().all(|&b| b == 0 || b == b' ') {
        Ok(T::default())
    } else {
        parse()
    }
}

fn id(value: std::io::Result<u64>, what: &str) -> Result<u32, String> {
    let value = value.map_err(|e| format!("invalid {what} field: {e}"))?;
    // u32::MAX is -1, "leave unchanged", to chown(2).
    u32::try_from(value)
        .ok()
        .filter(|&v| v != u32::MAX)
        .ok_or_else(|| format!("{what} {value} is out of range"))
}

/// The PAX records strata looks at (the tar crate applies `path`, `linkpath`, `size`, `uid`,
/// `gid` itself; they are checked here only for being well-formed and unique).
#[derive(Default)]
struct PaxFields {
    seen: Vec<Vec<u8>>,
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
        if !repeatable {
            if self.seen.iter().any(|k| k == key) {
                return Err(format!("duplicate PAX record {:?}", shown()));
            }
            self.seen.push(key.to_vec());
        }
        let number = || parse_u64(value).ok_or_else(|| format!("invalid PAX record {:?}", shown()));
        let time =
            || parse_pax_time(value).ok_or_else(|| format!("invalid PAX record {:?}", shown()));
        if key.starts_with(b"GNU.sparse.") {
            self.sparse_seen = true;
        }
        match key {
            b"mtime" => self.mtime = Some(time()?),
            b"atime" => self.atime = Some(time()?),
            // Applied by the tar crate, which ignores them when they do not parse: refuse
            // instead, as Go does, so that both read the same member.
            b"size" | b"uid" | b"gid" => {
                number()?;
            }
            b"path" | b"linkpath" if value.contains(&0) => {
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
                    if OVERLAY_XATTR_PREFIXES.iter().any(|p| name.starts_with(p)) {
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

/// A GNU base-256 number field (first byte's high bit set) as Go's archive/tar reads it: bit
/// 0x40 of the first byte is the sign, negative numbers are two's complement; `None` when the
/// value does not fit in an i64.
fn parse_base256(field: &[u8]) -> Option<i64> {
    let inv = if field.first()? & 0x40 != 0 { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, &b) in field.iter().enumerate() {
        let mut c = b ^ inv;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 != 0 {
            return None;
        }
        x = x << 8 | u64::from(c);
    }
    let x = i64::try_from(x).ok()?;
    Some(if inv == 0xff { !x } else { x })
}

/// A decimal u64 (digits only, as PAX numbers are).
pub(crate) fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX time: `[-]seconds[.fraction]`, fraction truncated to nanoseconds (Go's parsePAXTime).
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let (negative, rest) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match rest.iter().position(|&b| b == b'.') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let secs = i64::try_from(parse_u64(int)?).ok()?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nsec: i64 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    Some(match (negative, nsec) {
        (false, _) => Timespec {
            tv_sec: secs,
            tv_nsec: nsec,
        },
        (true, 0) => Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        },
        (true, _) => Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nsec,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64, n: i64) -> Timespec {
        Timespec {
            tv_sec: s,
            tv_nsec: n,
        }
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some(ts(1_700_000_000, 0)));
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(ts(1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"1.123456789123"), Some(ts(1, 123_456_789)));
        assert_eq!(parse_pax_time(b"1."), Some(ts(1, 0)));
        assert_eq!(parse_pax_time(b"-1.5"), Some(ts(-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"-3"), Some(ts(-3, 0)));
        assert_eq!(parse_pax_time(b""), None);
        assert_eq!(parse_pax_time(b".5"), None);
        assert_eq!(parse_pax_time(b"1.5x"), None);
        assert_eq!(parse_pax_time(b"+1"), None);
    }

    #[test]
    fn base256_numbers() {
        // What GNU tar writes for 1960-01-01 (-315619200) and Go reads back.
        let mut neg = [0xffu8; 12];
        neg[8..].copy_from_slice(&(-315_619_200i32).to_be_bytes());
        assert_eq!(parse_base256(&neg), Some(-315_619_200));
        assert_eq!(parse_base256(&[0xff; 12]), Some(-1));
        let mut pos = [0u8; 12];
        pos[0] = 0x80;
        pos[4..].copy_from_slice(&0x1_0000_0000u64.to_be_bytes());
        assert_eq!(parse_base256(&pos), Some(0x1_0000_0000));
        assert_eq!(parse_base256(&[0x80; 1]), Some(0));
        // The extremes of an i64, and one beyond.
        let mut max = [0u8; 12];
        max[0] = 0x80;
        max[4..].copy_from_slice(&i64::MAX.to_be_bytes());
        assert_eq!(parse_base256(&max), Some(i64::MAX));
        let mut min = [0xffu8; 12];
        min[4..].copy_from_slice(&i64::MIN.to_be_bytes());
        assert_eq!(parse_base256(&min), Some(i64::MIN));
        max[3] = 1;
        assert_eq!(parse_base256(&max), None);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[4] = 0x80;
        assert_eq!(parse_base256(&big), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
    }

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

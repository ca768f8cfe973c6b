//! A streaming tar reader that frames a layer the way Go's archive/tar (used by Docker,
//! containerd and umoci) does, so that strata and those tools find the same members with the
//! same names, sizes and data.
//!
//! Why not the tar crate: it splits PAX records on newlines (a binary xattr value may hold
//! one), stops looking for `size`/`uid`/`gid` at the first record it cannot parse, and its raw
//! mode ignores the PAX `size` and the GNU sparse maps. Here:
//! - Headers are 512-byte blocks whose checksum is the unsigned or the signed byte sum (Go
//!   accepts both). Two zero blocks, a zero block then EOF, or EOF right at a header boundary
//!   end the archive (what follows is left to the caller, which only hashes it); a zero block
//!   followed by a non-zero one is refused, as Go refuses it. EOF inside the last member's
//!   padding also ends it, as in Go (umoci 0.4's `insert` writes such layers, and Docker pulls
//!   them; the member's data is whole and the stream's digest is checked anyway). EOF anywhere
//!   else, or after extension headers with no member following (Go ignores those), is an
//!   error. Numeric fields are read as Go reads them, and a header with one it
//!   cannot read is refused, as Go refuses it.
//! - Names follow Go: the ustar prefix (also with a version other than "00", and the shorter
//!   one of star headers), no prefix in GNU headers (unless their atime/ctime do not parse:
//!   Go's fallback for a pre-1.8 Go writer bug), then a non-empty PAX `path`, then a non-empty
//!   GNU long name. A member with both of the last two is refused as ambiguous (Go would take
//!   the long name); likewise for link targets.
//! - PAX records (`"%d %s=%s\n"`) are split by their length prefix, so values may hold any byte.
//!   The PAX `size` sets how much data follows (Go does; the header says 0 for files over
//!   8 GiB). Extension data over 1 MiB is refused (Go's limit), as are two `x`, two `L` or two
//!   `K` headers for one member. A `g` (global) header is checked and dropped with whatever
//!   extension headers came before it, as Go returns it as a member of its own that Docker
//!   ignores.
//! - Header-only types (links, devices, directories, fifos, and an old-style `\0` member named
//!   with a trailing `/`) have no data, whatever their size says, as in Go; the applier refuses
//!   such members with a non-zero size anyway.
//! - Old GNU sparse members (`S`): the map in the header and the extension blocks after it
//!   becomes a [`PaxSparse`] whose fragments the data holds back to back.
//!
//! Member data is never buffered: [`Reader`] reads it for the applier (as [`Read`]) and skips
//! what is left, with the padding, before the next header. Only headers and extension data
//! (at most 1 MiB) are held in memory.

use std::io::{self, ErrorKind, Read};

use tar::Header;

use super::error::{ArchiveError, invalid, lossy};
use super::pax::{PaxSparse, parse_u64};

const BLOCK: usize = 512;

/// Extension data (PAX records, GNU long names and links) larger than this is refused, as Go's
/// archive/tar does (`maxSpecialFileSize`).
const MAX_EXTENSION: u64 = 1 << 20;

/// Old GNU sparse extension blocks beyond this many are refused: each adds up to 21 map
/// entries to memory (16 MiB of them make ~690,000 fragments).
const MAX_SPARSE_BLOCKS: u64 = (16 << 20) / BLOCK as u64;

/// One PAX record: key and value, as raw bytes.
pub(crate) type Record = (Vec<u8>, Vec<u8>);

/// One member as Go's archive/tar would return it (extension headers folded in).
pub(crate) struct Member {
    /// The member's own header block.
    pub header: Header,
    /// Its raw type flag.
    pub typeflag: u8,
    /// The name: the header's (with the ustar prefix), a PAX `path` or a GNU long name.
    pub name: Vec<u8>,
    /// The link target (header, PAX `linkpath` or GNU long link); `None` when empty.
    pub link: Option<Vec<u8>>,
    /// The data size the member declares (the PAX `size` or the header's); for old GNU sparse
    /// members the bytes stored, not the file's size.
    pub size: u64,
    /// The records of the member's PAX extended header, in order.
    pub records: Vec<Record>,
    /// The map of an old GNU sparse member (type `S`).
    pub gnu_sparse: Option<PaxSparse>,
}

/// The header formats Go's archive/tar tells apart (they differ in where names are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// No magic: name, link and the numeric fields only.
    V7,
    /// `ustar\0`: prefix of 155 bytes, device numbers.
    Ustar,
    /// `ustar\0` with the `tar\0` trailer: prefix of 131 bytes, then atime and ctime.
    Star,
    /// `ustar ` + ` \0`: no prefix (atime, ctime, sparse map instead), device numbers.
    Gnu,
}

/// The format of a header block, as Go's `getFormat` guesses it (checksum aside).
pub(crate) fn format(raw: &[u8; BLOCK]) -> Format {
    match (&raw[257..263], &raw[263..265], &raw[508..512]) {
        (b"ustar\0", _, b"tar\0") => Format::Star,
        (b"ustar\0", _, _) => Format::Ustar,
        (b"ustar ", b" \0", _) => Format::Gnu,
        _ => Format::V7,
    }
}

/// Extension headers seen for the member that follows them.
#[derive(Default)]
struct Pending {
    /// The `x` header's records, or why they do not parse (reported with the member's name).
    pax: Option<Result<Vec<Record>, String>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    /// The name of the last extension header, for errors.
    last: Option<String>,
}

/// Reads members from a tar stream; between [`Reader::next`] calls it is the current member's
/// data (as Go's `tar.Reader`).
pub(crate) struct Reader<R> {
    inner: R,
    /// Data bytes of the current member not read yet.
    remaining: u64,
    /// Padding after the current member's data.
    pad: u64,
    /// The current member's name (lossy), for errors while skipping its data.
    current: Option<String>,
    /// The end of the archive was reached.
    ended: bool,
}

impl<R: Read> Reader<R> {
    /// A reader at the start of a tar stream.
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            pad: 0,
            current: None,
            ended: false,
        }
    }

    /// The next member, after skipping what is left of the current one; `None` at the end of
    /// the archive (nothing after that is read).
    pub(crate) fn next(&mut self) -> Result<Option<Member>, ArchiveError> {
        if self.ended {
            return Ok(None);
        }
        let mut pending = Pending::default();
        loop {
            self.skip_rest()?;
            let Some(header) = self.header()? else {
                if let Some(last) = pending.last {
                    return Err(io_error(
                        Some(last),
                        ErrorKind::UnexpectedEof,
                        "extended header(s) with no member following",
                    ));
                }
                self.ended = true;
                return Ok(None);
            };
            let raw = header.as_bytes();
            let typeflag = raw[156];
            let hname = header_name(raw);
            let shown = lossy(&hname);
            validate_numbers(raw)
                .map_err(|field| invalid(&shown, format!("invalid {field} field")))?;
            let size = parse_numeric(&raw[124..136])
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| invalid(&shown, "invalid size field"))?;
            match typeflag {
                b'x' | b'g' => {
                    if typeflag == b'x' && pending.pax.is_some() {
                        return Err(invalid(&shown, "two PAX extended headers for one member"));
                    }
                    let data = self.extension(size, &shown)?;
                    let records = parse_records(&data);
                    if typeflag == b'g' {
                        // Go stops at a global header (a member of its own, which Docker
                        // ignores): the extension headers before it go with it.
                        records.map_err(|reason| invalid(&shown, reason))?;
                        if let Some(Err(reason)) = pending.pax {
                            return Err(invalid(pending.last.as_deref().unwrap_or(""), reason));
                        }
                        pending = Pending::default();
                        continue;
                    }
                    pending.pax = Some(records);
                }
                b'L' | b'K' => {
                    let slot = if typeflag == b'L' {
                        &mut pending.long_name
                    } else {
                        &mut pending.long_link
                    };
                    if slot.is_some() {
                        return Err(invalid(
                            &shown,
                            format!(
                                "two GNU long {} headers for one member",
                                if typeflag == b'L' { "name" } else { "link" }
                            ),
                        ));
                    }
                    let mut data = self.extension(size, &shown)?;
                    data.truncate(cstr(&data).len());
                    *slot = Some(data);
                }
                _ => return self.member(header, hname, size, pending).map(Some),
            }
            pending.last = Some(shown);
        }
    }

    /// Completes a member from its header and the extension headers before it, and sets up
    /// the reading of its data.
    fn member(
        &mut self,
        header: Header,
        hname: Vec<u8>,
        header_size: u64,
        pending: Pending,
    ) -> Result<Member, ArchiveError> {
        let long_name = pending.long_name.filter(|n| !n.is_empty());
        let long_link = pending.long_link.filter(|n| !n.is_empty());
        let records = match pending.pax {
            None => Vec::new(),
            Some(Ok(records)) => records,
            // The records cannot be trusted for the name either.
            Some(Err(reason)) => {
                return Err(invalid(
                    &lossy(long_name.as_ref().unwrap_or(&hname)),
                    reason,
                ));
            }
        };
        // Go keeps the header's value for a record with an empty value.
        let pax = |key: &[u8]| {
            records
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_slice())
                .filter(|v| !v.is_empty())
        };
        let shown = lossy(long_name.as_deref().or(pax(b"path")).unwrap_or(&hname));
        if long_name.is_some() && pax(b"path").is_some() {
            return Err(invalid(
                &shown,
                "both a GNU long name and a PAX path: ambiguous",
            ));
        }
        if long_link.is_some() && pax(b"linkpath").is_some() {
            return Err(invalid(
                &shown,
                "both a GNU long link and a PAX linkpath: ambiguous",
            ));
        }
        let name = long_name
            .or_else(|| pax(b"path").map(<[u8]>::to_vec))
            .unwrap_or(hname);
        let link = long_link
            .or_else(|| pax(b"linkpath").map(<[u8]>::to_vec))
            .or_else(|| Some(cstr(&header.as_bytes()[157..257]).to_vec()))
            .filter(|l| !l.is_empty());
        // The size decides where the next header is: refuse anything doubtful.
        let size = match records.iter().filter(|(k, _)| k == b"size").count() {
            0 => header_size,
            1 => match pax(b"size") {
                None => header_size,
                Some(v) => parse_u64(v)
                    .filter(|&s| i64::try_from(s).is_ok())
                    .ok_or_else(|| invalid(&shown, "invalid PAX record \"size\""))?,
            },
            _ => return Err(invalid(&shown, "duplicate PAX record \"size\"")),
        };
        let typeflag = header.as_bytes()[156];
        let header_only =
            matches!(typeflag, b'1'..=b'6') || (typeflag == 0 && name.ends_with(b"/"));
        let gnu_sparse = if typeflag == b'S' {
            Some(self.old_sparse(&header, &shown)?)
        } else {
            None
        };
        let data = if header_only { 0 } else { size };
        self.remaining = data;
        self.pad = padding(data);
        self.current = Some(shown);
        Ok(Member {
            header,
            typeflag,
            name,
            link,
            size,
            records,
            gnu_sparse,
        })
    }

    /// The next header block: `None` at EOF right at its start or for an all-zero block.
    fn header(&mut self) -> Result<Option<Header>, ArchiveError> {
        let mut header = Header::new_old();
        let n = fill(&mut self.inner, header.as_mut_bytes()).map_err(|e| io(None, e))?;
        if n == 0 {
            return Ok(None);
        }
        if n < BLOCK {
            return Err(io_error(
                None,
                ErrorKind::UnexpectedEof,
                "truncated: the stream ends inside a member header",
            ));
        }
        if header.as_bytes().iter().all(|&b| b == 0) {
            // As Go: a second zero block (or EOF) ends the archive; anything else after a zero
            // block is an error (Docker refuses such a layer, so strata does too).
            let n = fill(&mut self.inner, header.as_mut_bytes()).map_err(|e| io(None, e))?;
            if n == 0 || header.as_bytes().iter().all(|&b| b == 0) {
                return Ok(None);
            }
            return Err(io_error(
                None,
                ErrorKind::InvalidData,
                "a zero block followed by a non-zero block (an archive ends with two zero blocks)",
            ));
        }
        if !checksum_ok(header.as_bytes()) {
            return Err(io_error(
                None,
                ErrorKind::InvalidData,
                "archive header checksum mismatch",
            ));
        }
        Ok(Some(header))
    }

    /// Reads the data of an extension header (`size` bytes, at most 1 MiB).
    fn extension(&mut self, size: u64, shown: &str) -> Result<Vec<u8>, ArchiveError> {
        if size > MAX_EXTENSION {
            return Err(invalid(
                shown,
                format!("extended header of {size} bytes (more than 1 MiB)"),
            ));
        }
        // At most 1 MiB: fits.
        let mut data = vec![0; size as usize];
        let n = fill(&mut self.inner, &mut data).map_err(|e| io(Some(shown.to_string()), e))?;
        if n < data.len() {
            return Err(io_error(
                Some(shown.to_string()),
                ErrorKind::UnexpectedEof,
                "truncated: the stream ends inside an extended header",
            ));
        }
        self.pad = padding(size);
        self.current = Some(shown.to_string());
        Ok(data)
    }

    /// The map of an old GNU sparse member: 4 entries in the header, then blocks of 21 while
    /// the "is extended" byte is set (Go's `readOldGNUSparseMap`).
    fn old_sparse(&mut self, header: &Header, shown: &str) -> Result<PaxSparse, ArchiveError> {
        let raw = header.as_bytes();
        if format(raw) != Format::Gnu {
            return Err(invalid(
                shown,
                "old GNU sparse member (type 'S') without a GNU header",
            ));
        }
        let number = |field: &[u8], what: &str| {
            parse_numeric(field)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| invalid(shown, format!("invalid {what} in the old GNU sparse map")))
        };
        let real_size = number(&raw[483..495], "real size")?;
        let mut map = Vec::new();
        let mut block = *raw;
        let (mut start, mut entries, mut extended_at) = (386, 4, 482);
        let mut blocks = 0;
        loop {
            for entry in block[start..start + 24 * entries].chunks_exact(24) {
                // As GNU and BSD tar (and Go): an entry whose offset starts with NUL ends the
                // block's list.
                if entry[0] == 0 {
                    break;
                }
                map.push((
                    number(&entry[..12], "offset")?,
                    number(&entry[12..], "length")?,
                ));
            }
            if block[extended_at] == 0 {
                break;
            }
            blocks += 1;
            if blocks > MAX_SPARSE_BLOCKS {
                return Err(invalid(shown, "old GNU sparse map too large"));
            }
            let n =
                fill(&mut self.inner, &mut block).map_err(|e| io(Some(shown.to_string()), e))?;
            if n < BLOCK {
                return Err(io_error(
                    Some(shown.to_string()),
                    ErrorKind::UnexpectedEof,
                    "truncated: the stream ends inside an old GNU sparse map",
                ));
            }
            (start, entries, extended_at) = (0, 21, 504);
        }
        Ok(PaxSparse {
            real_size,
            map: Some(map),
        })
    }

    /// Skips what is left of the current member's data, and its padding.
    fn skip_rest(&mut self) -> Result<(), ArchiveError> {
        let total = self.remaining + self.pad;
        if total == 0 {
            return Ok(());
        }
        let skipped = io::copy(&mut (&mut self.inner).take(total), &mut io::sink())
            .map_err(|e| io(self.current.clone(), e))?;
        // Short inside the padding only: the end of the archive, as Go reads it (the next
        // header read meets EOF at once).
        if skipped < self.remaining {
            return Err(io_error(
                self.current.clone(),
                ErrorKind::UnexpectedEof,
                "truncated: the stream ends inside the member's data",
            ));
        }
        self.remaining = 0;
        self.pad = 0;
        Ok(())
    }
}

/// The current member's data (nothing more: reads stop at its end). An early end of the
/// stream reads as the end of the data, which the caller, knowing the size, reports.
impl<R: Read> Read for Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Splits PAX extended header data into records, by their length prefixes (Go's
/// `parsePAXRecord`): `"%d %s=%s\n"`, where the length counts the whole record. Keys must be
/// non-empty and hold no NUL; values may hold any byte (whether `path` and the like may hold
/// a NUL is for the caller to say).
pub(crate) fn parse_records(mut data: &[u8]) -> Result<Vec<Record>, String> {
    let malformed = |why: &str| format!("malformed PAX extended header record: {why}");
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("no length"))?;
        // Decimal digits, counting the whole record. Leading zeros are fine, as in Go; a sign
        // (Go's ParseInt takes one) is refused: no writer writes one.
        let len = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| malformed("invalid length"))?;
        if len > data.len() || len < space + 3 {
            return Err(malformed("length out of range"));
        }
        if data[len - 1] != b'\n' {
            return Err(malformed("no newline at the end"));
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| malformed("no '='"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key.is_empty() || key.contains(&0) {
            return Err(malformed("empty key or NUL in the key"));
        }
        records.push((key.to_vec(), value.to_vec()));
        data = &data[len..];
    }
    Ok(records)
}

/// A numeric header field as Go's archive/tar reads it: base-256 when the first byte's high
/// bit is set, else octal between optional spaces and NULs (blank is 0); `None` when invalid.
pub(crate) fn parse_numeric(field: &[u8]) -> Option<i64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        parse_base256(field)
    } else {
        parse_octal(field).and_then(|v| i64::try_from(v).ok())
    }
}

/// Go's `parseOctal`: trims spaces and NULs, stops at a NUL, octal digits only.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let blank = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !blank(b)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    let digits = cstr(&field[start..end]);
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()
}

/// A GNU base-256 number field (first byte's high bit set) as Go's archive/tar reads it: bit
/// 0x40 of the first byte is the sign, negative numbers are two's complement; `None` when the
/// value does not fit in an i64.
pub(crate) fn parse_base256(field: &[u8]) -> Option<i64> {
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

/// The numeric fields Go's `readHeader` parses, by name, for checking: a header with one that
/// does not parse is an invalid header to Go.
fn validate_numbers(raw: &[u8; BLOCK]) -> Result<(), &'static str> {
    let mut fields: Vec<(&str, std::ops::Range<usize>)> = vec![
        ("mode", 100..108),
        ("uid", 108..116),
        ("gid", 116..124),
        ("size", 124..136),
        ("mtime", 136..148),
    ];
    let format = format(raw);
    if format != Format::V7 {
        fields.extend([("devmajor", 329..337), ("devminor", 337..345)]);
    }
    if format == Format::Star {
        fields.extend([("atime", 476..488), ("ctime", 488..500)]);
    }
    match fields
        .into_iter()
        .find(|(_, r)| parse_numeric(&raw[r.clone()]).is_none())
    {
        Some((name, _)) => Err(name),
        None => Ok(()),
    }
}

/// Go accepts the checksum as the unsigned or the signed sum of the header's bytes, the
/// checksum field counted as spaces.
fn checksum_ok(raw: &[u8; BLOCK]) -> bool {
    let Some(stored) = parse_octal(&raw[148..156]).and_then(|v| i64::try_from(v).ok()) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in raw.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || stored == signed
}

/// The name in a header block, as Go's `readHeader` builds it (see the module documentation).
fn header_name(raw: &[u8; BLOCK]) -> Vec<u8> {
    let name = cstr(&raw[..100]);
    let prefix = match format(raw) {
        Format::V7 => &[][..],
        Format::Ustar => cstr(&raw[345..500]),
        Format::Star => cstr(&raw[345..476]),
        Format::Gnu => {
            // A pre-1.8 Go writer put a ustar prefix where GNU has atime and ctime: Go reads
            // it as a prefix when those do not parse and it is ASCII.
            let bad = |f: &[u8]| f[0] != 0 && parse_numeric(f).is_none();
            let prefix = cstr(&raw[345..500]);
            if (bad(&raw[345..357]) || bad(&raw[357..369])) && prefix.is_ascii() {
                prefix
            } else {
                &[]
            }
        }
    };
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

/// The bytes up to the first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

/// Bytes of padding after `size` bytes of data.
fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Reads until `buf` is full or the stream ends; returns the count.
pub(super) fn fill(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn io(entry: Option<String>, source: io::Error) -> ArchiveError {
    ArchiveError::Io { entry, source }
}

fn io_error(entry: Option<String>, kind: ErrorKind, what: &str) -> ArchiveError {
    io(entry, io::Error::new(kind, what))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt as _;
    use std::path::Path;

    use tar::{EntryType, GnuExtSparseHeader};

    use super::*;
    use crate::archive::{ApplyOptions, ApplyStats, apply_layer};
    use crate::sys::xattr;

    const MTIME: u64 = 1_600_000_000;

    /// A ustar header block written by hand (checksum set).
    fn hdr(kind: u8, name: &[u8], size: u64) -> Header {
        let mut h = Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkflag[0] = kind;
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_cksum();
        h
    }

    fn with_link(mut h: Header, link: &[u8]) -> Header {
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        h
    }

    /// A PAX record with its length prefix.
    fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
        let body = 1 + key.len() + 1 + value.len() + 1;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        [format!("{len} ").as_bytes(), key, b"=", value, b"\n"].concat()
    }

    /// A tar stream built block by block.
    #[derive(Default)]
    struct Tar(Vec<u8>);

    impl Tar {
        fn block(&mut self, h: &Header, data: &[u8]) -> &mut Self {
            self.0.extend_from_slice(h.as_bytes());
            self.data(data)
        }
        /// Data, padded to a block boundary.
        fn data(&mut self, data: &[u8]) -> &mut Self {
            self.0.extend_from_slice(data);
            self.0.resize(self.0.len().next_multiple_of(BLOCK), 0);
            self
        }
        fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            self.block(&hdr(b'0', name.as_bytes(), data.len() as u64), data)
        }
        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let data: Vec<u8> = records
                .iter()
                .flat_map(|(k, v)| record(k.as_bytes(), v))
                .collect();
            self.ext(b'x', &data)
        }
        /// An extension header (`x`, `g`, `L`, `K`) with `data`.
        fn ext(&mut self, kind: u8, data: &[u8]) -> &mut Self {
            let mut h = if matches!(kind, b'L' | b'K') {
                let mut h = Header::new_gnu();
                h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
                h
            } else {
                let mut h = Header::new_ustar();
                h.as_old_mut().name[..12].copy_from_slice(b"PaxHeaders/x");
                h
            };
            h.as_old_mut().linkflag[0] = kind;
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            self.block(&h, data)
        }
        fn end(&self) -> Vec<u8> {
            let mut v = self.0.clone();
            v.resize(v.len() + 2 * BLOCK, 0);
            v
        }
    }

    /// (name, link, declared size, data) of every member, read through [`Reader`].
    type Got = (Vec<u8>, Option<Vec<u8>>, u64, Vec<u8>);

    fn members(bytes: &[u8]) -> Result<Vec<Got>, ArchiveError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(m) = r.next()? {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut data).unwrap();
            out.push((m.name, m.link, m.size, data));
        }
        Ok(out)
    }

    fn names(bytes: &[u8]) -> Vec<String> {
        members(bytes)
            .unwrap()
            .into_iter()
            .map(|m| lossy(&m.0))
            .collect()
    }

    /// The stream ended inside member "b"'s data.
    fn assert_eof_in_b(err: ArchiveError) {
        match err {
            ArchiveError::Io {
                entry: Some(e),
                source,
            } => {
                assert_eq!(e, "b");
                assert_eq!(source.kind(), ErrorKind::UnexpectedEof);
            }
            other => panic!("{other:?}"),
        }
    }

    fn apply(bytes: &[u8]) -> (tempfile::TempDir, Result<ApplyStats, ArchiveError>) {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests run as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let opts = ApplyOptions {
            userxattr: false,
            same_owner: true,
            flatten: false,
            writeback: true,
            hash_files: false,
        };
        let r = apply_layer(bytes, dir.path(), &opts);
        (dir, r)
    }

    fn refused(bytes: &[u8]) -> String {
        match apply(bytes).1 {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let name = std::ffi::CString::new(name).ok()?;
        xattr::get(xattr::Target::NoFollow(path), &name).ok()?
    }

    /// `security.capability` v2, effective, permitted: CAP_DAC_OVERRIDE | CAP_FOWNER (0x0a).
    const CAP_0A: [u8; 20] = [
        0x01, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn binary_xattr_values_are_applied_byte_exact() {
        let value = b"\nline\0two\n=\0";
        let mut t = Tar::default();
        t.pax(&[
            ("SCHILY.xattr.user.bin", value),
            ("SCHILY.xattr.security.capability", &CAP_0A),
            ("mtime", b"1600000000.5"),
        ])
        .file("f", b"content\n")
        .file("after", b"framing holds\n");
        let (dir, r) = apply(&t.end());
        assert_eq!(r.unwrap().entries, 2);
        let f = dir.path().join("f");
        assert_eq!(xattr(&f, "user.bin").as_deref(), Some(&value[..]));
        assert_eq!(
            xattr(&f, "security.capability").as_deref(),
            Some(&CAP_0A[..])
        );
        assert_eq!(fs::read(&f).unwrap(), b"content\n");
        assert_eq!(fs::metadata(&f).unwrap().mtime_nsec(), 500_000_000);
        assert_eq!(
            fs::read(dir.path().join("after")).unwrap(),
            b"framing holds\n"
        );
    }

    #[test]
    fn records_split_by_their_length() {
        let data = [
            record(b"a", b"x\ny"),
            record(b"b", b"=\0="),
            b"07 c=d\n".to_vec(),
            record(b"empty", b""),
        ]
        .concat();
        let records = parse_records(&data).unwrap();
        let expect: Vec<Record> = vec![
            (b"a".to_vec(), b"x\ny".to_vec()),
            (b"b".to_vec(), b"=\0=".to_vec()),
            (b"c".to_vec(), b"d".to_vec()),
            (b"empty".to_vec(), b"".to_vec()),
        ];
        assert_eq!(records, expect);
        assert_eq!(parse_records(b"").unwrap(), vec![]);
    }

    #[test]
    fn malformed_records_are_refused() {
        let bad: [&[u8]; 11] = [
            b"x5 a=b\n",    // not a number
            b"+7 a=b\n",    // a sign
            b"0 a=b\n",     // zero
            b"99 a=b\n",    // past the end
            b"4 a=\n",      // shorter than its own prefix and a record
            b"6 abc\n",     // no '='
            b"6 a=bc",      // no newline at the end
            b"5 a=bc\n",    // one short: no newline where it ends
            b"7 =abc\n",    // empty key
            b"9 a\0b=cd\n", // NUL in the key
            b"a=b\n",       // no length
        ];
        for data in bad {
            assert!(parse_records(data).is_err(), "{:?}", lossy(data));
            let mut t = Tar::default();
            t.ext(b'x', data).file("f", b"");
            let msg = refused(&t.end());
            assert!(
                msg.starts_with("entry \"f\": malformed PAX extended header record"),
                "{:?}: {msg}",
                lossy(data)
            );
        }
        // A record after a good one, and trailing garbage.
        let mut t = Tar::default();
        t.ext(b'x', &[record(b"a", b"b"), b"\0\0".to_vec()].concat())
            .file("f", b"");
        assert!(refused(&t.end()).contains("malformed PAX"));
        // NUL in path (Go refuses path, linkpath, uname, gname with one).
        for key in ["path", "linkpath", "uname", "gname"] {
            let mut t = Tar::default();
            t.pax(&[(key, b"a\0b")]).file("f", b"");
            let msg = refused(&t.end());
            assert!(msg.contains("NUL"), "{key}: {msg}");
        }
        // Values that must parse.
        for (key, value) in [
            ("size", &b"12x"[..]),
            ("uid", b"-1"),
            ("mtime", b"soon"),
            ("ctime", b"1.x"),
        ] {
            let mut t = Tar::default();
            t.pax(&[(key, value)]).file("f", b"");
            let msg = refused(&t.end());
            assert!(
                msg.contains(&format!("invalid PAX record \"{key}\"")),
                "{msg}"
            );
        }
    }

    #[test]
    fn pax_size_overrides_the_header_size() {
        // Go writes 0 in the header of files over 8 GiB, the real size in PAX.
        let mut t = Tar::default();
        t.pax(&[("size", b"5")])
            .block(&hdr(b'0', b"big", 0), b"hello")
            .pax(&[("size", b"3")])
            .block(&hdr(b'0', b"smaller", 600), b"abc")
            .file("after", b"after\n");
        let bytes = t.end();
        let m = members(&bytes).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].2, &m[0].3[..]), (5, &b"hello"[..]));
        assert_eq!((m[1].2, &m[1].3[..]), (3, &b"abc"[..]));
        assert_eq!(m[2].3, b"after\n");
        let (dir, r) = apply(&bytes);
        assert_eq!(r.unwrap().bytes, 5 + 3 + 6);
        assert_eq!(fs::read(dir.path().join("big")).unwrap(), b"hello");
        // Two size records: refused whatever they say.
        let mut t = Tar::default();
        t.pax(&[("size", b"5"), ("size", b"5")])
            .block(&hdr(b'0', b"f", 0), b"hello");
        assert!(refused(&t.end()).contains("duplicate PAX record \"size\""));
    }

    #[test]
    fn pax_path_and_linkpath_override_the_header() {
        let long = format!("{}/{}", "d".repeat(150), "f".repeat(200));
        let mut t = Tar::default();
        t.pax(&[("path", long.as_bytes())])
            .file("short", b"x")
            .pax(&[("linkpath", long.as_bytes())])
            .block(&with_link(hdr(b'2', b"sym", 0), b"placeholder"), b"")
            .pax(&[("path", b"hard"), ("linkpath", long.as_bytes())])
            .block(&with_link(hdr(b'1', b"h", 0), b"placeholder"), b"")
            // Empty values keep the header's (Go).
            .pax(&[("path", b""), ("mtime", b"")])
            .file("kept", b"k");
        let bytes = t.end();
        let m = members(&bytes).unwrap();
        let got: Vec<(String, Option<String>)> = m
            .iter()
            .map(|m| (lossy(&m.0), m.1.as_deref().map(lossy)))
            .collect();
        assert_eq!(
            got,
            [
                (long.clone(), None),
                ("sym".into(), Some(long.clone())),
                ("hard".into(), Some(long.clone())),
                ("kept".into(), None),
            ]
        );
        let (dir, r) = apply(&bytes);
        r.unwrap();
        let d = dir.path();
        assert_eq!(fs::read(d.join(&long)).unwrap(), b"x");
        assert_eq!(fs::read_link(d.join("sym")).unwrap(), Path::new(&long));
        assert_eq!(
            fs::metadata(d.join("hard")).unwrap().ino(),
            fs::metadata(d.join(&long)).unwrap().ino()
        );
        assert_eq!(fs::metadata(d.join("kept")).unwrap().mtime(), MTIME as i64);
    }

    #[test]
    fn gnu_long_names_and_links() {
        let long = format!("{}/{}", "d".repeat(150), "n".repeat(150));
        let target = "t/".repeat(600) + "x";
        let mut t = Tar::default();
        t.ext(b'L', format!("{long}\0garbage after the NUL").as_bytes())
            .file("short", b"long named\n")
            .ext(b'K', target.as_bytes())
            .ext(b'L', b"sym\0")
            .block(&with_link(hdr(b'2', b"s", 0), b"placeholder"), b"")
            // An empty long name keeps the header's (Go).
            .ext(b'L', b"\0")
            .file("plain", b"p");
        let bytes = t.end();
        let m = members(&bytes).unwrap();
        assert_eq!(lossy(&m[0].0), long);
        assert_eq!(m[0].3, b"long named\n");
        assert_eq!(lossy(&m[1].0), "sym");
        assert_eq!(m[1].1.as_deref(), Some(target.as_bytes()));
        assert_eq!(lossy(&m[2].0), "plain");
        let (dir, r) = apply(&bytes);
        r.unwrap();
        assert_eq!(fs::read(dir.path().join(&long)).unwrap(), b"long named\n");
        assert_eq!(
            fs::read_link(dir.path().join("sym")).unwrap(),
            Path::new(&target)
        );

        // A long name and a PAX path (Go would take the long name): ambiguous.
        let mut t = Tar::default();
        t.ext(b'L', b"one\0")
            .pax(&[("path", b"two")])
            .file("f", b"");
        let msg = refused(&t.end());
        assert!(
            msg.starts_with("entry \"one\"") && msg.contains("ambiguous"),
            "{msg}"
        );
        let mut t = Tar::default();
        t.pax(&[("linkpath", b"one")])
            .ext(b'K', b"two\0")
            .block(&with_link(hdr(b'2', b"s", 0), b"x"), b"");
        assert!(refused(&t.end()).contains("ambiguous"));
    }

    #[test]
    fn two_extension_headers_of_a_kind_are_refused() {
        for (kind, says) in [
            (b'x', "two PAX extended headers"),
            (b'L', "two GNU long name headers"),
            (b'K', "two GNU long link headers"),
        ] {
            let data = if kind == b'x' {
                record(b"mtime", b"1")
            } else {
                b"name\0".to_vec()
            };
            let mut t = Tar::default();
            t.ext(kind, &data).ext(kind, &data).file("f", b"");
            let msg = refused(&t.end());
            assert!(msg.contains(says), "{msg}");
        }
    }

    #[test]
    fn extension_data_over_1_mib_is_refused() {
        // Exactly 1 MiB of records is fine.
        let value = vec![b'v'; (1 << 20) - "1048576 comment=\n".len()];
        let data = record(b"comment", &value);
        assert_eq!(data.len(), 1 << 20);
        let mut t = Tar::default();
        t.ext(b'x', &data).file("f", b"ok");
        assert_eq!(names(&t.end()), ["f"]);
        // One byte more is not.
        let value = vec![b'v'; value.len() + 1];
        let mut t = Tar::default();
        t.ext(b'x', &record(b"comment", &value)).file("f", b"");
        assert!(refused(&t.end()).contains("more than 1 MiB"));
        let mut t = Tar::default();
        t.ext(b'L', &vec![b'l'; (1 << 20) + 1]).file("f", b"");
        assert!(refused(&t.end()).contains("more than 1 MiB"));
    }

    #[test]
    fn extension_headers_need_a_member() {
        let mut t = Tar::default();
        t.file("f", b"x").pax(&[("mtime", b"1")]);
        // EOF right after the extension header, or the end-of-archive marker.
        for bytes in [t.0.clone(), t.end()] {
            let msg = refused(&bytes);
            assert!(msg.contains("no member following"), "{msg}");
        }
        let mut t = Tar::default();
        t.ext(b'L', b"name\0");
        assert!(refused(&t.0).contains("no member following"));
    }

    #[test]
    fn global_headers_are_checked_and_dropped() {
        // Go returns the global header as a member of its own: the `x` before it applies to
        // nothing, and Docker ignores the global header.
        let mut t = Tar::default();
        t.pax(&[("path", b"elsewhere")])
            .ext(b'g', &record(b"comment", b"global"))
            .file("f", b"x");
        let (dir, r) = apply(&t.end());
        assert_eq!(r.unwrap().entries, 1);
        assert!(dir.path().join("f").exists() && !dir.path().join("elsewhere").exists());
        let mut t = Tar::default();
        t.ext(b'g', b"9 comment").file("f", b"x");
        assert!(refused(&t.end()).contains("malformed PAX"));
    }

    #[test]
    fn end_of_stream() {
        let mut t = Tar::default();
        t.file("a", b"hello").file("b", &[7; 1000]);
        let bytes = t.0.clone();
        // EOF at a header boundary, or one zero block: the end.
        assert_eq!(names(&bytes), ["a", "b"]);
        assert_eq!(names(&[&bytes[..], &[0; BLOCK]].concat()), ["a", "b"]);
        assert_eq!(names(&[&bytes[..], &[0; 2 * BLOCK]].concat()), ["a", "b"]);
        // What follows two zero blocks is not read; a non-zero block after one is refused.
        assert_eq!(
            names(&[&bytes[..], &[0; 2 * BLOCK], &bytes[..]].concat()),
            ["a", "b"]
        );
        let lone = [&bytes[..], &[0; BLOCK], &bytes[..]].concat();
        match apply(&lone).1 {
            Err(ArchiveError::Io { source, .. }) => {
                assert!(
                    source.to_string().contains("zero block followed"),
                    "{source}"
                )
            }
            other => panic!("{other:?}"),
        }
        let (_, r) = apply(&bytes);
        assert_eq!(r.unwrap().bytes, 1005);
        // Inside a header.
        let cut = &bytes[..BLOCK * 2 + 100];
        match apply(cut).1 {
            Err(ArchiveError::Io {
                entry: None,
                source,
            }) => {
                assert_eq!(source.kind(), ErrorKind::UnexpectedEof);
                assert!(source.to_string().contains("truncated"), "{source}");
            }
            other => panic!("{other:?}"),
        }
        // Inside the data, as the applier reads it, and as the reader skips it.
        let cut = &bytes[..BLOCK * 3 + 300];
        assert_eof_in_b(apply(cut).1.unwrap_err());
        let mut r = Reader::new(cut);
        r.next().unwrap().unwrap();
        r.next().unwrap().unwrap();
        match r.next() {
            Err(e) => assert_eof_in_b(e),
            Ok(m) => panic!("{:?}", m.map(|m| m.name)),
        }
        // Inside the padding after the data, or without any: the end of the archive (Go).
        for cut in [&bytes[..BLOCK * 3 + 1000 + 5], &bytes[..BLOCK * 3 + 1000]] {
            let (_, r) = apply(cut);
            assert_eq!(r.unwrap().bytes, 1005);
        }
        // Inside an extension header's data.
        let mut t = Tar::default();
        t.pax(&[("comment", &[b'c'; 600])]).file("f", b"");
        assert!(matches!(
            apply(&t.0[..BLOCK + 100]).1,
            Err(ArchiveError::Io { .. })
        ));
    }

    /// Sets the checksum field to `sum`.
    fn set_checksum(h: &mut Header, sum: i64) {
        h.as_mut_bytes()[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn checksums_signed_or_unsigned() {
        // Bytes >= 0x80 (UTF-8) make the two sums differ.
        let mut h = hdr(b'0', "caf\u{e9}".as_bytes(), 0);
        let (mut unsigned, mut signed) = (0i64, 0i64);
        for (i, &b) in h.as_bytes().iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += i64::from(b);
            signed += i64::from(b as i8);
        }
        assert_ne!(unsigned, signed);
        for sum in [unsigned, signed] {
            set_checksum(&mut h, sum);
            let mut t = Tar::default();
            t.block(&h, b"");
            assert_eq!(names(&t.end()), ["caf\u{e9}"]);
        }
        set_checksum(&mut h, unsigned + 1);
        let mut t = Tar::default();
        t.block(&h, b"");
        match apply(&t.end()).1 {
            Err(ArchiveError::Io { source, .. }) => {
                assert!(source.to_string().contains("checksum"), "{source}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn header_names_follow_go() {
        let mut h = hdr(b'0', b"name", 0);
        h.as_mut_bytes()[345..351].copy_from_slice(b"prefix");
        h.set_cksum();
        assert_eq!(header_name(h.as_bytes()), b"prefix/name");
        // Go does not check the ustar version.
        h.as_mut_bytes()[263..265].copy_from_slice(b"\0\0");
        assert_eq!(header_name(h.as_bytes()), b"prefix/name");
        // Star: a 131-byte prefix (atime and ctime after it).
        let mut star = hdr(b'0', b"name", 0);
        star.as_mut_bytes()[345..476].fill(b'p');
        star.as_mut_bytes()[476..488].copy_from_slice(b"00000000000\0");
        star.as_mut_bytes()[488..500].copy_from_slice(b"00000000000\0");
        star.as_mut_bytes()[508..512].copy_from_slice(b"tar\0");
        assert_eq!(header_name(star.as_bytes()).len(), 131 + 1 + 4);
        // GNU: no prefix, unless atime/ctime do not parse (a pre-1.8 Go writer's prefix).
        let mut gnu = Header::new_gnu();
        gnu.as_old_mut().name[..4].copy_from_slice(b"name");
        gnu.as_mut_bytes()[345..357].copy_from_slice(b"00000000000\0");
        assert_eq!(header_name(gnu.as_bytes()), b"name");
        gnu.as_mut_bytes()[345..357].fill(0);
        gnu.as_mut_bytes()[345..351].copy_from_slice(b"prefix");
        assert_eq!(header_name(gnu.as_bytes()), b"prefix/name");
        // V7: no magic, no prefix.
        let mut v7 = Header::new_old();
        v7.as_old_mut().name[..4].copy_from_slice(b"name");
        v7.as_mut_bytes()[345..351].copy_from_slice(b"prefix");
        assert_eq!(header_name(v7.as_bytes()), b"name");
    }

    #[test]
    fn numeric_fields_as_go_reads_them() {
        assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"  644 \0"), Some(0o644));
        assert_eq!(parse_numeric(b"\0\0 644\0 \0"), Some(0o644));
        assert_eq!(parse_numeric(b"12\0 34"), Some(0o12));
        assert_eq!(parse_numeric(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_numeric(b"        "), Some(0));
        assert_eq!(parse_numeric(b"0008\0"), None);
        assert_eq!(parse_numeric(b"+644\0"), None);
        assert_eq!(parse_numeric(b"6 4\0"), None);
        // A header with a field Go cannot read is refused.
        let mut h = hdr(b'0', b"f", 0);
        h.as_mut_bytes()[329..337].copy_from_slice(b"garbage\0");
        h.set_cksum();
        let mut t = Tar::default();
        t.block(&h, b"");
        assert!(refused(&t.end()).contains("invalid devmajor field"));
        // Base-256 sizes; a negative one is refused.
        let mut h = hdr(b'0', b"f", 0);
        h.as_mut_bytes()[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        h.set_cksum();
        let mut t = Tar::default();
        t.block(&h, b"abc");
        assert_eq!(members(&t.end()).unwrap()[0].3, b"abc");
        h.as_mut_bytes()[124..136].fill(0xff);
        h.set_cksum();
        let mut t = Tar::default();
        t.block(&h, b"");
        assert!(refused(&t.end()).contains("invalid size field"));
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
    fn header_only_members_have_no_data() {
        // Go frames no data for a directory whatever its size says; the applier refuses it.
        let mut t = Tar::default();
        t.pax(&[("size", b"1024")])
            .block(&hdr(b'5', b"d", 0), b"")
            .file("f", b"x");
        let bytes = t.end();
        assert_eq!(names(&bytes), ["d", "f"]);
        assert!(refused(&bytes).contains("must not carry data"));
        // Old-style directories: a '\0' member named with a trailing slash.
        let mut t = Tar::default();
        t.block(&hdr(0, b"d/", 512), b"").file("f", b"x");
        assert_eq!(names(&t.end()), ["d/", "f"]);
    }

    /// An old GNU sparse member: `frags` (offset, data) in the header and extension blocks.
    fn old_sparse(name: &[u8], real: u64, frags: &[(u64, Vec<u8>)]) -> Tar {
        let stored: Vec<u8> = frags.iter().flat_map(|(_, d)| d.clone()).collect();
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(EntryType::GNUSparse);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(stored.len() as u64);
        let mut exts = Vec::new();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.set_real_size(real);
            for (i, (offset, data)) in frags.iter().enumerate() {
                let entry = if i < 4 {
                    &mut gnu.sparse[i]
                } else {
                    if (i - 4) % 21 == 0 {
                        exts.push(GnuExtSparseHeader::new());
                    }
                    &mut exts.last_mut().unwrap().sparse_mut()[(i - 4) % 21]
                };
                entry.set_offset(*offset);
                entry.set_length(data.len() as u64);
            }
            gnu.set_is_extended(!exts.is_empty());
        }
        let n = exts.len();
        for (i, e) in exts.iter_mut().enumerate() {
            e.set_is_extended(i + 1 < n);
        }
        h.set_cksum();
        let mut t = Tar::default();
        t.0.extend_from_slice(h.as_bytes());
        for e in &exts {
            t.0.extend_from_slice(e.as_bytes());
        }
        t.data(&stored);
        t
    }

    #[test]
    fn old_gnu_sparse_with_an_extension_block() {
        const MIB: u64 = 1 << 20;
        let frags: Vec<(u64, Vec<u8>)> = (0..6u8)
            .map(|i| (u64::from(i) * MIB + 100, vec![b'a' + i; 700]))
            .collect();
        let mut t = old_sparse(b"sparse", 8 * MIB, &frags);
        t.file("after", b"framing holds\n");
        let bytes = t.end();
        let m = members(&bytes).unwrap();
        assert_eq!((m[0].2, m[0].3.len()), (6 * 700, 6 * 700));
        assert_eq!(lossy(&m[1].0), "after");
        let (dir, r) = apply(&bytes);
        assert_eq!(r.unwrap().bytes, 8 * MIB + 14);
        let path = dir.path().join("sparse");
        let content = fs::read(&path).unwrap();
        let mut expect = vec![0u8; 8 * MIB as usize];
        for (offset, data) in &frags {
            expect[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
        }
        assert!(content == expect, "content differs");
        let disk = fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            disk <= 6 * 2 * 4096,
            "holes must stay holes: {disk} bytes on disk"
        );
        assert_eq!(
            fs::read(dir.path().join("after")).unwrap(),
            b"framing holds\n"
        );
    }

    #[test]
    fn old_gnu_sparse_maps_are_checked() {
        // Overlapping, beyond the real size, or not adding up to the data.
        for (real, frags) in [
            (100, vec![(0, vec![1; 10]), (5, vec![2; 10])]),
            (100, vec![(95, vec![1; 10])]),
        ] {
            let msg = refused(&old_sparse(b"s", real, &frags).end());
            assert!(msg.starts_with("entry \"s\""), "{msg}");
        }
        let mut t = old_sparse(b"s", 100, &[(0, vec![1; 10])]);
        // Stored data that the map does not cover.
        let h = hdr_size(&t.0[..BLOCK], 20);
        t.0[..BLOCK].copy_from_slice(h.as_bytes());
        t.0.truncate(BLOCK);
        t.data(&[1; 20]);
        assert!(refused(&t.end()).contains("sparse map"));
        // Truncated inside an extension block.
        let frags: Vec<(u64, Vec<u8>)> = (0..6).map(|i| (i * 10, vec![1; 5])).collect();
        let t = old_sparse(b"s", 100, &frags);
        assert!(matches!(
            apply(&t.0[..BLOCK + 100]).1,
            Err(ArchiveError::Io { .. })
        ));
        // Type 'S' in a ustar header: not old GNU sparse.
        let mut t = Tar::default();
        t.block(&hdr(b'S', b"s", 0), b"");
        assert!(refused(&t.end()).contains("without a GNU header"));
        // PAX sparse records on an old GNU sparse member.
        let mut t = Tar::default();
        t.pax(&[("GNU.sparse.size", b"10"), ("GNU.sparse.map", b"0,1")]);
        t.0.extend_from_slice(&old_sparse(b"s", 100, &[(0, vec![1; 1])]).0);
        assert!(refused(&t.end()).contains("old GNU sparse"));
    }

    /// A copy of the header block `raw` with size `size`.
    fn hdr_size(raw: &[u8], size: u64) -> Header {
        let mut h = Header::new_old();
        h.as_mut_bytes().copy_from_slice(raw);
        h.set_size(size);
        h.set_cksum();
        h
    }
}

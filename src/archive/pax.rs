//! Values of PAX records that more than one part of the reader needs: decimal numbers, times,
//! and the layout of sparse files (which the reader, the metadata and the data copy all see).

use rustix::fs::Timespec;

/// A sparse file's layout: PAX formats 0.0, 0.1 and 1.0, and old GNU sparse members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaxSparse {
    /// The logical file size.
    pub real_size: u64,
    /// `(offset, length)` data fragments (PAX 0.x, old GNU); `None` for PAX 1.0, whose map
    /// starts the data.
    pub map: Option<Vec<(u64, u64)>>,
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
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
    }
}

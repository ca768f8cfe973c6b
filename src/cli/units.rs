//! Docker's human units (go-units' rules): sizes in decimal units with a few significant
//! digits (`7.8MB`), and ages (`2 years ago`).

/// `docker images`' size: 3 significant digits (`7.8MB`, `512B`).
pub fn human_size(bytes: u64) -> String {
    size_with_precision(bytes, 3)
}

/// go-units' `HumanSize`, as `docker system df` and the prunes' "Total reclaimed space" print
/// sizes: 4 significant digits (`7.834MB`).
pub fn human_size_precise(bytes: u64) -> String {
    size_with_precision(bytes, 4)
}

fn size_with_precision(bytes: u64, precision: usize) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g(value, precision), UNITS[unit])
}

/// Go's `%.{precision}g` for a non-negative value: that many significant digits, trailing
/// zeros dropped, exponent notation when the exponent is below -4 or not below `precision`.
fn go_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let sci = format!("{:.*e}", precision.saturating_sub(1), value);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim_zeros(mantissa), exp.abs());
    }
    let decimals = (precision as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{value:.decimals$}")).to_string()
}

fn trim_zeros(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// Docker's `CreatedSince`: how long before `now` (seconds since the epoch) an RFC 3339 time
/// was, as `2 years ago`; `N/A` when the time cannot be read.
pub fn age(rfc3339: Option<&str>, now: i64) -> String {
    match rfc3339.and_then(parse_rfc3339) {
        Some(then) => format!("{} ago", human_duration(now - then)),
        None => "N/A".to_string(),
    }
}

/// go-units' `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let minutes = secs / 60;
    // Go rounds the hours half up here.
    let hours = (secs + 1800) / 3600;
    match secs {
        s if s < 1 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".to_string(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
    }
}

/// Seconds since the epoch of an RFC 3339 time (`2024-09-06T11:34:00.5+02:00`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    let bytes = s.as_bytes();
    if seps.iter().any(|&(i, c)| bytes.get(i) != Some(&c))
        || !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
        || !(1..=12).contains(&month)
    {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            let total = h * 3600 + m * 60;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    // Days from the civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// `1 layer`, `2 layers`: `n` with the noun that fits it.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(7_834_000), "7.83MB");
        assert_eq!(human_size(7_800_000), "7.8MB");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(123_456_789), "123MB");
        assert_eq!(human_size(999_999), "1e+03kB");
        assert_eq!(human_size_precise(7_834_567), "7.835MB");
        assert_eq!(human_size_precise(2_000_000_000), "2GB");
        assert_eq!(human_size_precise(1_234), "1.234kB");
        assert_eq!(human_size_precise(999_999), "1000kB");
    }

    #[test]
    fn counts_take_the_singular_for_one() {
        assert_eq!(count(1, "layer", "layers"), "1 layer");
        assert_eq!(count(0, "entry", "entries"), "0 entries");
        assert_eq!(count(3, "entry", "entries"), "3 entries");
    }

    #[test]
    fn ages_as_docker_prints_them() {
        let t = parse_rfc3339("2024-09-06T11:34:00Z").unwrap();
        assert_eq!(t, 1_725_622_440);
        assert_eq!(parse_rfc3339("2024-09-06T13:34:00.123+02:00"), Some(t));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2024-13-06T11:34:00Z"), None);
        let ago = |secs| age(Some("2024-09-06T11:34:00Z"), t + secs);
        assert_eq!(ago(0), "Less than a second ago");
        assert_eq!(ago(1), "1 second ago");
        assert_eq!(ago(59), "59 seconds ago");
        assert_eq!(ago(60), "About a minute ago");
        assert_eq!(ago(59 * 60), "59 minutes ago");
        assert_eq!(ago(3600), "About an hour ago");
        assert_eq!(ago(47 * 3600), "47 hours ago");
        assert_eq!(ago(13 * 86_400), "13 days ago");
        assert_eq!(ago(8 * 7 * 86_400), "8 weeks ago");
        assert_eq!(ago(400 * 86_400), "13 months ago");
        assert_eq!(ago(800 * 86_400), "2 years ago");
        assert_eq!(age(None, t), "N/A");
    }
}

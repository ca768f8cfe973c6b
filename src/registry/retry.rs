//! Retry policy: bounded attempts with exponential backoff and jitter, and the registry's
//! `Retry-After` header (seconds or an HTTP date).

use std::time::{Duration, SystemTime};

/// Default number of retries after the first attempt.
pub const DEFAULT_RETRIES: u32 = 5;
/// Default delay before the first retry (before jitter).
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
/// Default upper bound of one backoff delay.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(15);
/// A `Retry-After` longer than this is not waited for: the request fails with the reset time.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How often and how patiently failed requests are repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: never retry).
    pub retries: u32,
    /// Delay before the first retry; doubles with every further retry.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: DEFAULT_RETRIES,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `retry` (0 for the first retry) with the jitter value
    /// `jitter` in `[0, 1]`: `base * 2^retry`, capped at `max_delay`, then scaled into
    /// `[delay / 2, delay]` so that clients that failed together do not retry together.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = self
            .base_delay
            .checked_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        let jitter = jitter.clamp(0.0, 1.0);
        exp.mul_f64(0.5 + 0.5 * jitter)
    }

    /// The delay before retry number `retry`: the server's `Retry-After` when it sent one
    /// (never longer than [`MAX_RETRY_AFTER`]), else [`RetryPolicy::backoff`] with random
    /// jitter.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(MAX_RETRY_AFTER),
            None => self.backoff(retry, fastrand::f64()),
        }
    }
}

/// A delay as shown in messages: `1.5 s`.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Parses a `Retry-After` value: delay seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, relative to `now`; a date in the past is zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The time a `Retry-After` delay ends, as an HTTP date (for messages).
pub fn reset_time(delay: Duration, now: SystemTime) -> String {
    httpdate::fmt_http_date(now + delay)
}

/// Statuses worth retrying: request timeout, rate limiting and server errors (but not
/// "not implemented" or "HTTP version not supported", which will not change).
pub fn retriable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || ((500..600).contains(&status) && !matches!(status, 501 | 505))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(200));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(400));
        assert_eq!(p.backoff(3, 1.0), Duration::from_millis(800));
        assert_eq!(p.backoff(4, 1.0), Duration::from_secs(1), "capped");
        assert_eq!(p.backoff(200, 1.0), Duration::from_secs(1), "no overflow");
        // Jitter keeps the delay within [delay/2, delay].
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(300));
        assert_eq!(p.backoff(2, 7.0), Duration::from_millis(400), "clamped");
        for _ in 0..100 {
            let d = p.delay(1, None);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(3600))), MAX_RETRY_AFTER);
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            reset_time(Duration::from_secs(60), now),
            "Wed, 21 Oct 2015 07:29:00 GMT"
        );
    }

    #[test]
    fn retriable_statuses() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(retriable_status(s), "{s}");
        }
        for s in [200, 206, 400, 401, 403, 404, 416, 501, 505] {
            assert!(!retriable_status(s), "{s}");
        }
    }
}

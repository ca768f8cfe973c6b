//! Retry policy: bounded attempts with exponential backoff and jitter, and the registry's
//! `Retry-After` header (seconds or an HTTP date); and `retry`, the one loop that applies it.

use std::fmt;
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

/// One attempt's outcome, for [`retry`].
pub(crate) enum Attempt<T, F> {
    /// Final: a success, or a failure another try would not fix.
    Done(T),
    /// A failure worth another try, with the delay the server asked for (`Retry-After`).
    Failed(F, Option<Duration>),
}

/// Where a retry stands, as warnings word it: `in 0.5 s (retry 1 of 5)`.
pub(crate) struct Retrying {
    /// The wait before the retry.
    pub delay: Duration,
    /// The retry's number, from 1.
    pub retry: u32,
    /// Retries allowed in all.
    pub retries: u32,
}

impl fmt::Display for Retrying {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in {} (retry {} of {})",
            seconds(self.delay),
            self.retry,
            self.retries
        )
    }
}

/// Runs `attempt` until it is [`Attempt::Done`] (its value is returned) or a failure finds no
/// retry left (`Err` with that failure). Before each retry it waits [`RetryPolicy::delay`]
/// and emits a warning that `warning` words. `spent` counts the retries made so far, so that
/// several calls can share one budget (the resumptions of one download); it is updated.
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    spent: &mut u32,
    mut attempt: impl FnMut() -> Fut,
    warning: impl Fn(&F, &Retrying) -> String,
) -> Result<T, F>
where
    Fut: Future<Output = Attempt<T, F>>,
{
    loop {
        let (failure, retry_after) = match attempt().await {
            Attempt::Done(done) => return Ok(done),
            Attempt::Failed(failure, retry_after) => (failure, retry_after),
        };
        if *spent >= policy.retries {
            return Err(failure);
        }
        let delay = policy.delay(*spent, retry_after);
        *spent += 1;
        let retrying = Retrying {
            delay,
            retry: *spent,
            retries: policy.retries,
        };
        let message = warning(&failure, &retrying);
        tracing::warn!("{message}");
        tokio::time::sleep(delay).await;
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

    fn quick(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    /// Runs [`retry`] over `outcomes` (one per attempt; `Err` is a retryable failure) and
    /// returns its result, the attempts made, the retries spent and the warnings.
    fn run(
        policy: RetryPolicy,
        spent: u32,
        outcomes: &[Result<&'static str, &'static str>],
    ) -> (Result<&'static str, &'static str>, usize, u32, Vec<String>) {
        let calls = std::cell::Cell::new(0);
        let warnings = std::cell::RefCell::new(Vec::new());
        let mut spent = spent;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let result = rt.block_on(retry(
            &policy,
            &mut spent,
            || {
                let n = calls.get();
                calls.set(n + 1);
                let outcome = outcomes[n];
                async move {
                    match outcome {
                        Ok(v) => Attempt::Done(v),
                        Err(f) => Attempt::Failed(f, None),
                    }
                }
            },
            |failure, r| {
                let text = format!("{failure}; retrying {r}");
                warnings.borrow_mut().push(text.clone());
                text
            },
        ));
        (result, calls.get(), spent, warnings.into_inner())
    }

    #[test]
    fn retry_counts_attempts_until_done() {
        let (result, calls, spent, warnings) = run(quick(5), 0, &[Err("a"), Err("b"), Ok("done")]);
        assert_eq!(result, Ok("done"));
        assert_eq!((calls, spent), (3, 2));
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0].starts_with("a; retrying in 0.0 s (retry 1 of 5)"),
            "{warnings:?}"
        );
        assert!(warnings[1].ends_with("(retry 2 of 5)"), "{warnings:?}");
    }

    #[test]
    fn retry_gives_up_after_the_budget() {
        let fail = [Err("x"); 10];
        let (result, calls, spent, warnings) = run(quick(3), 0, &fail);
        assert_eq!(result, Err("x"), "the last failure is returned");
        assert_eq!(
            (calls, spent, warnings.len()),
            (4, 3, 3),
            "one try and three retries"
        );
        // A budget partly spent by earlier calls leaves fewer retries.
        let (result, calls, spent, _) = run(quick(3), 2, &fail);
        assert_eq!((result, calls, spent), (Err("x"), 2, 3));
        // No retries at all: one attempt.
        let (result, calls, spent, warnings) = run(RetryPolicy::none(), 0, &fail);
        assert_eq!((result, calls, spent), (Err("x"), 1, 0));
        assert!(warnings.is_empty());
    }

    #[test]
    fn retry_stops_at_once_on_a_final_outcome() {
        let (result, calls, spent, warnings) = run(quick(5), 0, &[Ok("final error")]);
        assert_eq!((result, calls, spent), (Ok("final error"), 1, 0));
        assert!(warnings.is_empty());
    }

    #[test]
    fn retry_waits_as_the_server_asks() {
        let policy = RetryPolicy {
            retries: 1,
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut first = true;
        let started = std::time::Instant::now();
        let result: Result<(), ()> = rt.block_on(retry(
            &policy,
            &mut 0,
            || {
                let failed = std::mem::take(&mut first);
                async move {
                    if failed {
                        Attempt::Failed((), Some(Duration::from_millis(20)))
                    } else {
                        Attempt::Done(())
                    }
                }
            },
            |_, r| {
                assert_eq!(r.to_string(), "in 0.0 s (retry 1 of 1)");
                String::new()
            },
        ));
        assert_eq!(result, Ok(()));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(20) && waited < Duration::from_secs(30),
            "Retry-After, not the 60 s backoff: {waited:?}"
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

//! How commands fail and stop: an unreachable registry at once, usage errors with exit 2,
//! interrupts with 130/143 and nothing left behind.

use std::time::{Duration, Instant};

use crate::support::registry::free_port;
use crate::support::strata::Strata;

/// Generous bound for "at once": retries took 10-12 s.
const AT_ONCE: Duration = Duration::from_secs(5);

#[test]
fn an_unreachable_registry_fails_at_once_with_the_reason() {
    let s = Strata::new();
    let port = free_port();
    let started = Instant::now();
    let out = s.pull(&format!("127.0.0.1:{port}/library/alpine:latest"));
    let took = started.elapsed();
    out.assert_error(&["cannot reach registry", "onnection refused"]);
    assert!(took < AT_ONCE, "took {took:?}:\n{}", out.describe());
    assert!(
        !out.stderr.contains("retrying"),
        "no retries:\n{}",
        out.describe()
    );

    let started = Instant::now();
    let out = s.pull("nosuchhost.invalid/library/alpine:latest");
    let took = started.elapsed();
    out.assert_error(&["cannot reach registry nosuchhost.invalid"]);
    assert!(took < AT_ONCE, "took {took:?}:\n{}", out.describe());
    assert!(
        !out.stderr.contains("retrying"),
        "no retries:\n{}",
        out.describe()
    );
}

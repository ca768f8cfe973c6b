//! Client settings: mirrors, insecure registries, certs dirs, retries, timeouts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::retry::RetryPolicy;

/// strata's own certs dir (`--certs-dir` default).
pub const DEFAULT_CERTS_DIR: &str = "/etc/strata/certs.d";
/// Docker's certs dir, also searched.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";
/// Default stall timeout: a download that receives nothing for this long is retried.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `User-Agent` sent when [`RegistryConfig::user_agent`] is not set.
pub(super) const DEFAULT_USER_AGENT: &str = concat!("strata/", env!("CARGO_PKG_VERSION"));
/// How long connecting to an endpoint may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Client settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Registry host (`docker.io`, `127.0.0.1:5000`) -> mirror base URLs
    /// (`http://127.0.0.1:5000`, `https://mirror.example`, or `host[:port]`), tried in order
    /// before the registry itself.
    pub mirrors: HashMap<String, Vec<String>>,
    /// Extra insecure registries: `host[:port]`, `host` (any port) or a CIDR. `localhost`,
    /// `127.0.0.0/8` and `::1` are insecure too (as in Docker) unless a CA certificate for
    /// them is in a certs dir. Insecure means HTTPS without certificate verification first,
    /// then plain HTTP.
    pub insecure: Vec<String>,
    /// Docker config.json to read credentials from (`None`: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`, if present).
    pub docker_config: Option<PathBuf>,
    /// `User-Agent` header (default `strata/<version>`).
    pub user_agent: Option<String>,
    /// Directories holding `HOST[:PORT]/` subdirectories with `*.crt` CA certificates and
    /// `*.cert`/`*.key` client certificates, searched in order; the first is the one named in
    /// messages. Default: [`DEFAULT_CERTS_DIR`], [`DOCKER_CERTS_DIR`].
    pub certs_dirs: Vec<PathBuf>,
    /// Retries of failed requests and of interrupted blob downloads.
    pub retry: RetryPolicy,
    /// A request or download that receives nothing for this long is abandoned and retried.
    pub stall_timeout: Duration,
    /// Directory of the auth cache kept between invocations (see
    /// [`default_auth_cache_dir`](super::default_auth_cache_dir)); `None`: none.
    pub auth_cache_dir: Option<PathBuf>,
    /// Also keep tokens fetched with credentials in the auth cache (else only anonymous ones).
    pub auth_cache_credentials: bool,
    /// Parallel ranged fetch of large blobs.
    pub ranged: RangedFetch,
    /// Where a segmented download keeps later segments (an unnamed file) when `$TMPDIR` is a
    /// tmpfs (memory): the store's `staging/` for a pull; `None`, a directory that is not there
    /// (yet), or a `$TMPDIR` on disk: `$TMPDIR`.
    pub spool_dir: Option<PathBuf>,
}

/// Parallel segmented fetch: a blob of at least `threshold` bytes is cut into equal segments
/// of at most `segment_size` bytes, a multiple of `connections` of them, fetched by
/// `connections` requests at once (one `Range` request per segment, each on its own
/// connection), fed in order to the reader (later segments wait in a temporary file, not in
/// memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangedFetch {
    /// Requests (connections) at once per large blob; 1 or 0 turns ranged fetch off.
    pub connections: usize,
    /// Largest segment, in bytes.
    pub segment_size: u64,
    /// Smallest blob fetched in segments.
    pub threshold: u64,
}

impl RangedFetch {
    /// How a blob of `size` bytes is fetched: requests at once and segments (`(1, 1)`: one
    /// stream).
    pub fn split(&self, size: u64) -> (usize, usize) {
        if self.connections <= 1 || size < self.threshold.max(1) {
            return (1, 1);
        }
        let at_once = self.connections as u64;
        let rounds = size
            .div_ceil(at_once.saturating_mul(self.segment_size.max(1)))
            .max(1);
        let segments = usize::try_from(at_once.saturating_mul(rounds)).unwrap_or(usize::MAX);
        (self.connections, segments)
    }
}

/// Default connections per large blob.
pub const DEFAULT_RANGED_CONNECTIONS: usize = 4;
/// Default largest segment.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;
/// Default smallest blob fetched in segments.
pub const DEFAULT_RANGED_THRESHOLD: u64 = 32 << 20;

impl Default for RangedFetch {
    fn default() -> Self {
        RangedFetch {
            connections: DEFAULT_RANGED_CONNECTIONS,
            segment_size: DEFAULT_SEGMENT_SIZE,
            threshold: DEFAULT_RANGED_THRESHOLD,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mirrors: HashMap::new(),
            insecure: Vec::new(),
            docker_config: None,
            user_agent: None,
            certs_dirs: vec![
                PathBuf::from(DEFAULT_CERTS_DIR),
                PathBuf::from(DOCKER_CERTS_DIR),
            ],
            retry: RetryPolicy::default(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            auth_cache_dir: None,
            auth_cache_credentials: false,
            ranged: RangedFetch::default(),
            spool_dir: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blobs_are_cut_into_rounds_of_equal_segments() {
        let r = RangedFetch::default();
        assert_eq!(r.split(31 << 20), (1, 1), "under the threshold");
        assert_eq!(r.split(32 << 20), (4, 4));
        assert_eq!(r.split(64 << 20), (4, 4));
        assert_eq!(r.split(77 << 20), (4, 8), "segments of at most 16 MiB");
        assert_eq!(r.split(283 << 20), (4, 20));
        let off = RangedFetch {
            connections: 1,
            ..r
        };
        assert_eq!(off.split(1 << 30), (1, 1));
    }
}

//! Registry client (OCI distribution API, pull side): endpoints and mirrors, TLS, auth,
//! retries, manifests, blobs. What the bytes mean (manifests, platforms, configs) is
//! [`crate::image`]'s business.
//!
//! Every request for a registry goes to its configured mirrors first (pull-through caches: same
//! repository path), then to the registry itself; a mirror that fails is logged and the next
//! endpoint tried. Insecure registries are tried over HTTPS without certificate checks and
//! over plain HTTP at once (HTTPS wins when it answers), so that the probe costs no round trip. The endpoint that answered last is tried first next time, so all blobs of
//! a pull go where the manifest came from.
//!
//! TLS: the system roots plus, per registry, the CA and client certificates of the certs dirs
//! (Docker's layout, see [`tls`]). Auth: a 401 is answered with a bearer token (cached per
//! endpoint and scope, one token request at a time, refreshed on expiry or when refused) or
//! basic credentials, from Docker's config.json or its credential helpers (see
//! [`credentials`]). Faults: connection errors, timeouts, 429 and 5xx are retried with
//! exponential backoff and jitter (honouring `Retry-After`, see [`retry`]); a blob download
//! that breaks off or stalls resumes with a `Range` request inside [`BlobStream`], invisibly
//! to its reader; a large blob is fetched as a few large segments at once, fed in order (see
//! `ranged`; later segments wait in an unnamed temporary file, see `spool`). Challenges and anonymous tokens are kept between invocations in a private
//! directory (see `auth_store`). This module touches the filesystem only to read certs dirs
//! and Docker's config.json, for that cache and for the spool, and never prints: warnings (a mirror failed, a request is retried) are
//! `tracing` events at WARN level, shown as the program using the library decides.

pub mod auth;
mod auth_store;
mod blob;
mod client;
mod config;
pub mod credentials;
pub mod endpoint;
mod error;
mod login;
mod manifest;
mod ranged;
#[cfg(test)]
mod ranged_tests;
mod request;
pub mod retry;
mod segment;
mod spool;
#[cfg(test)]
mod tests;
pub mod tls;
mod tls_probe;
mod warm;

pub use self::auth_store::default_dir as default_auth_cache_dir;
pub use self::blob::BlobStream;
pub use self::client::RegistryClient;
pub use self::config::{
    DEFAULT_CERTS_DIR, DEFAULT_RANGED_CONNECTIONS, DEFAULT_RANGED_THRESHOLD, DEFAULT_SEGMENT_SIZE,
    DEFAULT_STALL_TIMEOUT, DOCKER_CERTS_DIR, RangedFetch, RegistryConfig,
};
pub use self::error::{RegistryError, TlsProblem};
pub use self::manifest::FetchedManifest;
pub use self::retry::RetryPolicy;

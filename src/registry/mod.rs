//! Registry client (OCI distribution API, pull side): endpoints and mirrors, TLS, auth,
//! retries, manifests, blobs. What the bytes mean (manifests, platforms, configs) is
//! [`crate::image`]'s business.
//!
//! Every request for a registry goes to its configured mirrors first (pull-through caches: same
//! repository path), then to the registry itself; a mirror that fails is logged and the next
//! endpoint tried. Insecure registries are tried over HTTPS without certificate checks, then
//! over plain HTTP. The endpoint that answered last is tried first next time, so all blobs of
//! a pull go where the manifest came from.
//!
//! TLS: the system roots plus, per registry, the CA and client certificates of the certs dirs
//! (Docker's layout, see [`tls`]). Auth: a 401 is answered with a bearer token (cached per
//! endpoint and scope, one token request at a time, refreshed on expiry or when refused) or
//! basic credentials, from Docker's config.json or its credential helpers (see
//! [`credentials`]). Faults: connection errors, timeouts, 429 and 5xx are retried with
//! exponential backoff and jitter (honouring `Retry-After`, see [`retry`]); a blob download
//! that breaks off or stalls resumes with a `Range` request inside [`BlobStream`], invisibly
//! to its reader. This module touches the filesystem only to read certs dirs and Docker's
//! config.json.

pub mod auth;
pub mod credentials;
pub mod endpoint;
pub mod retry;
#[cfg(test)]
mod tests;
pub mod tls;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, RANGE, RETRY_AFTER, WWW_AUTHENTICATE,
};

use self::credentials::Credentials;
use self::endpoint::Endpoint;
pub use self::retry::RetryPolicy;
use crate::digest::Digest;
use crate::image::MAX_MANIFEST_SIZE;
use crate::image::media_type::{MANIFEST_ACCEPT, base_media_type, is_schema1_type};
use crate::reference::Reference;

/// strata's own certs dir (`--certs-dir` default).
pub const DEFAULT_CERTS_DIR: &str = "/etc/strata/certs.d";
/// Docker's certs dir, also searched.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";
/// Default stall timeout: a download that receives nothing for this long is retried.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

const DEFAULT_USER_AGENT: &str = concat!("strata/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest error body read from a registry.
const MAX_ERROR_BODY: usize = 64 * 1024;

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
        }
    }
}

/// Errors from talking to registries.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The [`RegistryConfig`] is unusable (bad mirror URL, ...).
    #[error("invalid registry configuration: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("creating the HTTP client: {0}")]
    Client(String),
    /// Docker's config.json could not be read, written, or has a bad entry.
    #[error("docker config {}: {reason}", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper {helper} for {registry}: {reason}")]
    CredentialHelper {
        /// `docker-credential-<name>`.
        helper: String,
        /// The registry whose credentials were asked for.
        registry: String,
        /// What went wrong (never the secret).
        reason: String,
    },
    /// A file of a certs dir is unusable.
    #[error("certificate file {}: {reason}", path.display())]
    Certs {
        /// The file (or directory).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// TLS failed: the registry's certificate is not trusted, or it refused ours. The message
    /// names the host and what to do.
    #[error("{message}")]
    Tls {
        /// `host[:port]`.
        registry: String,
        /// The full explanation.
        message: String,
    },
    /// No endpoint of the registry (mirrors included) could be reached.
    #[error("cannot reach registry {registry}: {attempts}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// Each URL tried and why it failed, `; `-separated.
        attempts: String,
    },
    /// The registry does not have this manifest (`MANIFEST_UNKNOWN`, or 404).
    #[error("manifest unknown: {reference} not found{detail}")]
    ManifestUnknown {
        /// The full reference asked for.
        reference: String,
        /// The registry's own error text, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// The registry does not have this blob (`BLOB_UNKNOWN`, or 404).
    #[error("blob unknown: {digest} not found in {repository}{detail}")]
    BlobUnknown {
        /// The blob asked for.
        digest: Digest,
        /// `registry/repository`.
        repository: String,
        /// The registry's own error text, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// The repository does not exist (`NAME_UNKNOWN`).
    #[error("name unknown: repository {repository} not found{detail}")]
    NameUnknown {
        /// `registry/repository`.
        repository: String,
        /// The registry's own error text, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// Authentication failed or is missing (`UNAUTHORIZED`, 401).
    #[error(
        "unauthorized: access to {repository} was refused: {reason}{detail}; log in with `strata login {registry}` (strata reads Docker's config.json and credential helpers)"
    )]
    Unauthorized {
        /// `registry/repository` (or the registry for a login).
        repository: String,
        /// The registry host credentials are kept under.
        registry: String,
        /// Why, in words.
        reason: String,
        /// The registry's own error text, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// Authenticated but not allowed (`DENIED`, 403).
    #[error(
        "denied: the registry refused access to {repository} (the account may lack pull permission, or the repository may not exist){detail}"
    )]
    Denied {
        /// `registry/repository`.
        repository: String,
        /// The registry's own error text, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// Rate limited (`TOOMANYREQUESTS`, 429).
    #[error(
        "too many requests: {registry} is rate-limiting pulls{}; wait and retry, or log in (`strata login`) for a higher limit{detail}",
        retry_after.as_ref().map(|r| format!(" (Retry-After: {r})")).unwrap_or_default()
    )]
    TooManyRequests {
        /// The registry host.
        registry: String,
        /// The `Retry-After` header with the time the limit resets, if sent.
        retry_after: Option<String>,
        /// The registry's own error text, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// Any other unsuccessful HTTP status.
    #[error("{url}: HTTP {status}{detail}")]
    Http {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's own error text, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// The token server did not hand out a token.
    #[error("bearer token request to {realm} failed: {reason}")]
    Token {
        /// The token realm URL (without query).
        realm: String,
        /// Why.
        reason: String,
    },
    /// A 401 whose challenge strata cannot answer.
    #[error("authentication with {registry} failed: {reason}")]
    Challenge {
        /// `registry/repository`.
        registry: String,
        /// Why.
        reason: String,
    },
    /// Content did not hash to the expected digest.
    #[error("{what} from {url} has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// "manifest", "blob".
        what: &'static str,
        /// Where it came from.
        url: String,
        /// The digest asked for (or announced in `Docker-Content-Digest`).
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Content had another length than declared.
    #[error("{what} from {url} is {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// "manifest", "blob".
        what: &'static str,
        /// Where it came from.
        url: String,
        /// The declared size.
        expected: u64,
        /// The size that arrived (a lower bound when too long).
        actual: u64,
    },
    /// Content is larger than strata accepts for its kind.
    #[error("{what} from {url} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// "manifest", "blob".
        what: &'static str,
        /// Where it came from (or would have).
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A manifest format or an operation strata or the registry does not support (Docker
    /// schema 1, `UNSUPPORTED`).
    #[error("{reference}: {reason}")]
    Unsupported {
        /// The reference pulled.
        reference: String,
        /// What is unsupported.
        reason: String,
    },
    /// The connection failed while reading a response body (after the retries).
    #[error("reading {url}: {reason}")]
    Body {
        /// The URL being read.
        url: String,
        /// The error and its causes.
        reason: String,
    },
}

/// A manifest or index as fetched, with its verified digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The exact bytes (keep them: re-serialising changes the digest).
    pub bytes: Vec<u8>,
    /// The body's `mediaType`, else the `Content-Type` header (without parameters).
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

/// Where a response came from: the endpoint and the URL asked (before redirects).
#[derive(Debug, Clone)]
struct Source {
    endpoint: Endpoint,
    url: String,
}

/// A blob being streamed; the caller verifies digest and size.
///
/// When the connection breaks off, or stalls for longer than the stall timeout, the download
/// resumes where it stopped with `Range: bytes=N-` (if the server answers with the whole blob
/// instead, its first N bytes are skipped), after a backoff delay and up to the configured
/// number of retries: the reader sees one uninterrupted byte stream.
pub struct BlobStream {
    client: RegistryClient,
    reference: Reference,
    digest: Digest,
    source: Source,
    response: Option<reqwest::Response>,
    content_length: Option<u64>,
    /// Bytes handed out so far.
    received: u64,
    /// Bytes still to drop from the current response (a server that ignored `Range`).
    skip: u64,
    /// Resumptions so far.
    resumes: u32,
    finished: bool,
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream")
            .field("url", &self.source.url)
            .field("content_length", &self.content_length)
            .field("received", &self.received)
            .field("resumes", &self.resumes)
            .finish()
    }
}

/// Why a resumption did not work.
enum ResumeError {
    /// Worth another try.
    Transient(String),
    /// Final.
    Fatal(RegistryError),
}

impl BlobStream {
    /// The `Content-Length` of the response, when the server sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The URL the blob was requested from (before redirects).
    pub fn url(&self) -> &str {
        &self.source.url
    }

    /// How often the download was resumed so far.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// Next chunk of the body; `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, RegistryError>> {
        let stall = self.client.inner.config.stall_timeout;
        loop {
            if self.finished {
                return None;
            }
            let reason = match self.response.as_mut() {
                None => "no response".to_string(),
                Some(response) => match tokio::time::timeout(stall, response.chunk()).await {
                    Ok(Ok(Some(mut chunk))) => {
                        if self.skip > 0 {
                            let n = usize::try_from(self.skip)
                                .unwrap_or(usize::MAX)
                                .min(chunk.len());
                            let _ = chunk.split_to(n);
                            self.skip -= n as u64;
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        self.received += chunk.len() as u64;
                        return Some(Ok(chunk));
                    }
                    Ok(Ok(None)) => {
                        let complete = self.skip == 0
                            && self
                                .content_length
                                .is_none_or(|total| self.received >= total);
                        if complete {
                            self.finished = true;
                            self.response = None;
                            return None;
                        }
                        "the connection closed early".to_string()
                    }
                    Ok(Err(e)) if e.is_timeout() => {
                        format!("stalled: no data for {}", seconds(stall))
                    }
                    Ok(Err(e)) => error_chain(&e.without_url()),
                    Err(_) => format!("stalled: no data for {}", seconds(stall)),
                },
            };
            self.response = None;
            if let Err(e) = self.resume(reason).await {
                self.finished = true;
                return Some(Err(e));
            }
        }
    }

    /// Reconnects after an interruption (backoff, `Range` request), retrying while attempts
    /// are left.
    async fn resume(&mut self, mut reason: String) -> Result<(), RegistryError> {
        let policy = self.client.inner.config.retry;
        loop {
            if self.resumes >= policy.retries {
                return Err(RegistryError::Body {
                    url: self.source.url.clone(),
                    reason: format!(
                        "{reason} (after {} of {} bytes; gave up after {} attempts)",
                        self.received,
                        self.content_length
                            .map(|l| l.to_string())
                            .unwrap_or_else(|| "?".to_string()),
                        self.resumes + 1
                    ),
                });
            }
            let delay = policy.delay(self.resumes, None);
            self.resumes += 1;
            warn(&format!(
                "download of {} interrupted after {} of {} bytes ({reason}); resuming in {} (retry {} of {})",
                self.digest,
                self.received,
                self.content_length
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "?".to_string()),
                seconds(delay),
                self.resumes,
                policy.retries
            ));
            tokio::time::sleep(delay).await;
            match self.reopen().await {
                Ok(()) => return Ok(()),
                Err(ResumeError::Transient(r)) => reason = r,
                Err(ResumeError::Fatal(e)) => return Err(e),
            }
        }
    }

    /// One `Range: bytes=N-` request to the endpoint that served the blob.
    async fn reopen(&mut self) -> Result<(), ResumeError> {
        let offset = self.received;
        let response = match self
            .client
            .attempt(
                &self.source.endpoint,
                &self.reference,
                &self.source.url,
                None,
                Some(offset),
            )
            .await
        {
            Ok(r) => r,
            Err(AttemptError::Transport { message, .. }) => {
                return Err(ResumeError::Transient(message));
            }
            Err(AttemptError::Registry(e)) => return Err(ResumeError::Fatal(e)),
        };
        let status = response.status().as_u16();
        match status {
            206 => {
                let start = header_str(response.headers(), "content-range")
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(offset) {
                    return Err(ResumeError::Fatal(RegistryError::Body {
                        url: self.source.url.clone(),
                        reason: format!(
                            "asked to resume at byte {offset}, the server sent Content-Range {:?}",
                            header_str(response.headers(), "content-range").unwrap_or("")
                        ),
                    }));
                }
                self.skip = 0;
            }
            200 => self.skip = offset,
            s if retry::retriable_status(s) => {
                return Err(ResumeError::Transient(format!("HTTP {s}")));
            }
            _ => {
                let url = self.source.url.clone();
                let target = Target::Blob {
                    digest: &self.digest,
                };
                let err = error_from_response(response, &url, &self.reference, target).await;
                return Err(ResumeError::Fatal(err));
            }
        }
        self.response = Some(response);
        Ok(())
    }
}

/// A registry client; cheap to clone (shared state inside).
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

/// An HTTP client for one registry authority.
#[derive(Clone)]
struct HttpClient {
    client: reqwest::Client,
    /// The CA files it trusts beyond the system roots.
    ca_files: Arc<Vec<PathBuf>>,
}

struct Inner {
    config: RegistryConfig,
    user_agent: String,
    creds: credentials::DockerConfig,
    /// Registry host -> credentials looked up (a helper runs once per host).
    creds_cache: tokio::sync::Mutex<HashMap<String, Option<Credentials>>>,
    auth: auth::AuthCache,
    /// Registry host -> base URL of the endpoint that answered last.
    preferred: Mutex<HashMap<String, String>>,
    /// (authority, skip verification) -> HTTP client with that authority's TLS files.
    clients: Mutex<HashMap<(String, bool), HttpClient>>,
    /// Authority -> whether a certs dir has a CA for it.
    ca_known: Mutex<HashMap<String, bool>>,
    /// Clients without per-registry TLS files (token realms, fallbacks), made on first use:
    /// loading the system's CA roots takes milliseconds that a command finding its image
    /// present need not spend.
    plain: OnceLock<HttpClient>,
    plain_insecure: OnceLock<HttpClient>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.inner.config)
            .field("creds", &self.inner.creds)
            .finish_non_exhaustive()
    }
}

/// What a request is for, to word errors.
#[derive(Clone, Copy)]
enum Target<'a> {
    Manifest { shown: &'a Reference },
    Blob { digest: &'a Digest },
}

/// Why one endpoint did not answer.
enum AttemptError {
    /// Connection, timeout or protocol failure (already worded, URL included).
    Transport {
        /// What happened.
        message: String,
        /// Worth retrying (connection refused or reset, timeouts).
        retriable: bool,
    },
    /// A failure worth reporting as is (auth, TLS trust).
    Registry(RegistryError),
}

fn warn(message: &str) {
    eprintln!("warning: {message}");
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn pull_scope(reference: &Reference) -> String {
    format!("repository:{}:pull", reference.repository)
}

impl RegistryClient {
    /// Builds a client: checks mirror URLs, reads Docker's config.json, sets up HTTP clients
    /// (rustls with the ring provider; per registry with its certs dir files, created on
    /// first use).
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        // Fails only when a provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        endpoint::validate(&config)?;
        let creds = credentials::DockerConfig::load(config.docker_config.as_deref())?;
        let user_agent = config
            .user_agent
            .clone()
            .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string());
        let mut config = config;
        if config.stall_timeout.is_zero() {
            config.stall_timeout = DEFAULT_STALL_TIMEOUT;
        }
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                config,
                user_agent,
                creds,
                creds_cache: tokio::sync::Mutex::new(HashMap::new()),
                auth: auth::AuthCache::default(),
                preferred: Mutex::new(HashMap::new()),
                clients: Mutex::new(HashMap::new()),
                ca_known: Mutex::new(HashMap::new()),
                plain: OnceLock::new(),
                plain_insecure: OnceLock::new(),
            }),
        })
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// GET `/v2/<repo>/manifests/<reference.manifest_ref()>` accepting OCI index and manifest,
    /// Docker list and schema 2. Verifies the bytes against `reference.digest` when pulling by
    /// digest, else against `Docker-Content-Digest` when the registry sends it. Docker schema 1
    /// is refused.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        self.get_manifest(reference, reference.digest.as_ref(), reference)
            .await
    }

    /// Fetches a child manifest of an index by digest (verified against `digest`).
    pub async fn fetch_manifest_by_digest(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<FetchedManifest, RegistryError> {
        let shown = reference.with_digest(digest.clone());
        self.get_manifest(reference, Some(digest), &shown).await
    }

    /// Fetches a small blob (an image config) whole, verified against `digest` and `size`.
    /// Refuses blobs larger than `max_size` bytes.
    pub async fn fetch_blob_bytes(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        max_size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        if size > max_size {
            return Err(RegistryError::TooLarge {
                what: "blob",
                url: format!("{}/blobs/{digest}", reference.repo_name()),
                limit: max_size,
            });
        }
        let mut stream = self.fetch_blob(reference, digest).await?;
        let url = stream.url().to_string();
        let too_long = |actual| RegistryError::SizeMismatch {
            what: "blob",
            url: url.clone(),
            expected: size,
            actual,
        };
        if let Some(len) = stream.content_length()
            && len > size
        {
            return Err(too_long(len));
        }
        let mut hasher = crate::digest::Hasher::new();
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
        while let Some(chunk) = stream.next_chunk().await {
            let chunk = chunk?;
            if hasher.len() + chunk.len() as u64 > size {
                return Err(too_long(hasher.len() + chunk.len() as u64));
            }
            hasher.update(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        if hasher.len() != size {
            return Err(too_long(hasher.len()));
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                url,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Starts streaming a blob (redirects followed; `Authorization` dropped when a redirect
    /// leaves the host). Interruptions are resumed inside the stream. The caller verifies
    /// digest and size.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        let (response, source) = self
            .get(
                reference,
                &format!("blobs/{digest}"),
                None,
                Target::Blob { digest },
            )
            .await?;
        Ok(BlobStream {
            client: self.clone(),
            reference: reference.clone(),
            digest: digest.clone(),
            content_length: response.content_length(),
            response: Some(response),
            source,
            received: 0,
            skip: 0,
            resumes: 0,
            finished: false,
        })
    }

    /// Checks credentials the way `docker login` does: `GET /v2/` on the registry (not its
    /// mirrors), answering its challenge with `creds` (a bearer token fetched with them, or
    /// basic auth). `registry` is a host (`docker.io`, `host:port`) or a URL.
    pub async fn login(&self, registry: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let registry = credentials::normalize_registry_key(registry);
        if registry.is_empty() {
            return Err(RegistryError::Config(
                "login: no registry given".to_string(),
            ));
        }
        let has_ca = |a: &str| self.has_ca(a);
        let mut attempts = Vec::new();
        for ep in endpoint::registry_endpoints(&self.inner.config, &registry, &has_ca)? {
            let url = format!("{}/v2/", ep.base);
            let http = self.http_client(&ep.authority, ep.skip_verify)?;
            let response = match self.send(&http, &ep, &url, None, None, None).await {
                Ok(r) => r,
                Err(AttemptError::Transport { message, .. }) => {
                    attempts.push(message);
                    continue;
                }
                Err(AttemptError::Registry(e)) => return Err(e),
            };
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                // The registry needs no credentials at all.
                return Ok(());
            }
            if status != 401 {
                return Err(error_for_login(response, &url, &registry).await);
            }
            let challenges = challenges_of(response.headers());
            drop(response);
            let header = self
                .inner
                .auth
                .answer(
                    auth::AuthRequest {
                        challenges: &challenges,
                        authority: &ep.authority,
                        scope: "",
                        rejected: None,
                        creds: Some(creds),
                        registry: &registry,
                        repository: &registry,
                    },
                    |u| self.client_for_url(u),
                )
                .await?;
            let response = match self.send(&http, &ep, &url, None, Some(&header), None).await {
                Ok(r) => r,
                Err(AttemptError::Transport { message, .. }) => {
                    return Err(RegistryError::Unreachable {
                        registry,
                        attempts: message,
                    });
                }
                Err(AttemptError::Registry(e)) => return Err(e),
            };
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(());
            }
            if status == 401 {
                self.inner.auth.forget(&ep.authority, &header);
                let detail = read_error_detail(response).await;
                return Err(auth::refused(&registry, &registry, detail));
            }
            return Err(error_for_login(response, &url, &registry).await);
        }
        Err(RegistryError::Unreachable {
            registry,
            attempts: attempts.join("; "),
        })
    }

    async fn get_manifest(
        &self,
        reference: &Reference,
        expected: Option<&Digest>,
        shown: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        let policy = self.inner.config.retry;
        let mut retry = 0;
        loop {
            match self.get_manifest_once(reference, expected, shown).await {
                Err(RegistryError::Body { url, reason }) if retry < policy.retries => {
                    let delay = policy.delay(retry, None);
                    retry += 1;
                    warn(&format!(
                        "reading {url}: {reason}; retrying in {} (retry {retry} of {})",
                        seconds(delay),
                        policy.retries
                    ));
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    async fn get_manifest_once(
        &self,
        reference: &Reference,
        expected: Option<&Digest>,
        shown: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        let manifest_ref = match expected {
            Some(d) => d.to_string(),
            None => reference.manifest_ref(),
        };
        let path = format!("manifests/{manifest_ref}");
        let (mut response, source) = self
            .get(
                reference,
                &path,
                Some(MANIFEST_ACCEPT),
                Target::Manifest { shown },
            )
            .await?;
        let url = source.url;
        let limit = MAX_MANIFEST_SIZE;
        let too_large = || RegistryError::TooLarge {
            what: "manifest",
            url: url.clone(),
            limit,
        };
        if response.content_length().is_some_and(|l| l > limit) {
            return Err(too_large());
        }
        let content_type = header_str(response.headers(), CONTENT_TYPE.as_str())
            .unwrap_or_default()
            .to_string();
        let announced = header_str(response.headers(), "docker-content-digest").map(str::to_string);
        let mut bytes = Vec::new();
        let stall = self.inner.config.stall_timeout;
        while let Some(chunk) = next_chunk(&mut response, &url, stall).await? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        if let Some(len) = response.content_length()
            && (bytes.len() as u64) < len
        {
            return Err(RegistryError::Body {
                url,
                reason: format!("the connection closed after {} of {len} bytes", bytes.len()),
            });
        }

        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            media_type: Option<String>,
            schema_version: Option<serde_json::Value>,
        }
        let probe: Option<Probe> = serde_json::from_slice(&bytes).ok();
        let body_type = probe
            .as_ref()
            .and_then(|p| p.media_type.clone())
            .filter(|m| !m.is_empty());
        let media_type = body_type.unwrap_or_else(|| base_media_type(&content_type).to_string());
        if is_schema1_type(&media_type)
            || probe
                .as_ref()
                .and_then(|p| p.schema_version.as_ref())
                .and_then(|v| v.as_u64())
                == Some(1)
        {
            return Err(RegistryError::Unsupported {
                reference: shown.to_string(),
                reason: "unsupported manifest format (Docker schema 1); push the image again with a current Docker or BuildKit"
                    .to_string(),
            });
        }

        let digest = Digest::of(&bytes);
        let expected = match expected {
            Some(d) => Some(d.clone()),
            // A header with another algorithm cannot be checked; the content is still hashed.
            None => announced.and_then(|h| Digest::parse(h.trim()).ok()),
        };
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                url,
                expected,
                actual: digest,
            });
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Whether a certs dir has a CA certificate for `authority` (cached).
    fn has_ca(&self, authority: &str) -> bool {
        if let Ok(known) = self.inner.ca_known.lock()
            && let Some(&v) = known.get(authority)
        {
            return v;
        }
        let v = tls::has_ca(&self.inner.config.certs_dirs, authority);
        if let Ok(mut known) = self.inner.ca_known.lock() {
            known.insert(authority.to_string(), v);
        }
        v
    }

    /// The HTTP client for an authority: with its certs dir files, if it has any.
    fn http_client(&self, authority: &str, skip_verify: bool) -> Result<HttpClient, RegistryError> {
        let key = (authority.to_string(), skip_verify);
        if let Ok(clients) = self.inner.clients.lock()
            && let Some(c) = clients.get(&key)
        {
            return Ok(c.clone());
        }
        let files = tls::load(&self.inner.config.certs_dirs, authority)?;
        let client = if files.is_empty() {
            self.plain(skip_verify)?
        } else {
            build_http(
                &self.inner.config,
                &self.inner.user_agent,
                skip_verify,
                Some(files),
            )?
        };
        if let Ok(mut clients) = self.inner.clients.lock() {
            clients.insert(key, client.clone());
        }
        Ok(client)
    }

    /// The endpoints for `registry`, the one that answered last first.
    fn ordered_endpoints(&self, registry: &str) -> Result<Vec<Endpoint>, RegistryError> {
        let has_ca = |a: &str| self.has_ca(a);
        let mut eps = endpoint::endpoints(&self.inner.config, registry, &has_ca)?;
        let preferred = self
            .inner
            .preferred
            .lock()
            .ok()
            .and_then(|p| p.get(registry).cloned());
        if let Some(base) = preferred
            && let Some(pos) = eps.iter().position(|e| e.base == base)
        {
            let ep = eps.remove(pos);
            eps.insert(0, ep);
        }
        Ok(eps)
    }

    /// GET `/v2/<repository>/<path>` on the first endpoint that answers successfully.
    /// Returns the response and where it came from.
    async fn get(
        &self,
        reference: &Reference,
        path: &str,
        accept: Option<&str>,
        target: Target<'_>,
    ) -> Result<(reqwest::Response, Source), RegistryError> {
        let mut attempts: Vec<String> = Vec::new();
        for ep in self.ordered_endpoints(&reference.registry)? {
            let url = format!("{}/v2/{}/{}", ep.base, reference.repository, path);
            match self.request(&ep, reference, &url, accept).await {
                Ok(response) if response.status().is_success() => {
                    if let Ok(mut preferred) = self.inner.preferred.lock() {
                        preferred.insert(reference.registry.clone(), ep.base.clone());
                    }
                    return Ok((response, Source { endpoint: ep, url }));
                }
                Ok(response) => {
                    let err = error_from_response(response, &url, reference, target).await;
                    if !ep.mirror {
                        return Err(err);
                    }
                    warn(&format!(
                        "mirror {} failed: {err}; trying the next endpoint",
                        ep.base
                    ));
                    attempts.push(format!("{url}: {err}"));
                }
                Err(AttemptError::Registry(err)) => {
                    if !ep.mirror {
                        return Err(err);
                    }
                    warn(&format!(
                        "mirror {} failed: {err}; trying the next endpoint",
                        ep.base
                    ));
                    attempts.push(format!("{url}: {err}"));
                }
                Err(AttemptError::Transport { message, .. }) => {
                    if ep.mirror && !ep.probe {
                        warn(&format!(
                            "mirror {} failed: {message}; trying the next endpoint",
                            ep.base
                        ));
                    }
                    attempts.push(message);
                }
            }
        }
        Err(RegistryError::Unreachable {
            registry: reference.registry.clone(),
            attempts: attempts.join("; "),
        })
    }

    /// [`RegistryClient::attempt`] with retries (backoff and jitter, `Retry-After`) on
    /// transport failures, 429 and 5xx. Mirrors and HTTPS probes are not retried: the next
    /// endpoint is.
    async fn request(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        url: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, AttemptError> {
        let policy = if ep.mirror || ep.probe {
            RetryPolicy::none()
        } else {
            self.inner.config.retry
        };
        let mut retry = 0;
        loop {
            let (reason, retry_after) = match self.attempt(ep, reference, url, accept, None).await {
                Ok(response)
                    if retry::retriable_status(response.status().as_u16())
                        && retry < policy.retries =>
                {
                    let retry_after = header_str(response.headers(), RETRY_AFTER.as_str())
                        .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
                    if retry_after.is_some_and(|d| d > retry::MAX_RETRY_AFTER) {
                        return Ok(response);
                    }
                    (format!("HTTP {}", response.status().as_u16()), retry_after)
                }
                Err(AttemptError::Transport {
                    message,
                    retriable: true,
                }) if retry < policy.retries => (message, None),
                other => return other,
            };
            let delay = policy.delay(retry, retry_after);
            retry += 1;
            warn(&format!(
                "{url}: {reason}; retrying in {} (retry {retry} of {})",
                seconds(delay),
                policy.retries
            ));
            tokio::time::sleep(delay).await;
        }
    }

    /// One request to one endpoint (with `Range: bytes=N-` when `range`), answering a 401
    /// once.
    async fn attempt(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        url: &str,
        accept: Option<&str>,
        range: Option<u64>,
    ) -> Result<reqwest::Response, AttemptError> {
        let http = self
            .http_client(&ep.authority, ep.skip_verify)
            .map_err(AttemptError::Registry)?;
        let scope = pull_scope(reference);
        let cached = self.inner.auth.cached(&ep.authority, &scope);
        let response = self
            .send(&http, ep, url, accept, cached.as_deref(), range)
            .await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges = challenges_of(response.headers());
        drop(response);
        let creds = self
            .credentials(&ep.creds_host)
            .await
            .map_err(AttemptError::Registry)?;
        let repository = reference.repo_name();
        let header = self
            .inner
            .auth
            .answer(
                auth::AuthRequest {
                    challenges: &challenges,
                    authority: &ep.authority,
                    scope: &scope,
                    rejected: cached.as_deref(),
                    creds: creds.as_ref(),
                    registry: &ep.creds_host,
                    repository: &repository,
                },
                |u| self.client_for_url(u),
            )
            .await
            .map_err(AttemptError::Registry)?;
        let response = self
            .send(&http, ep, url, accept, Some(&header), range)
            .await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        // Refused with fresh credentials: forget them so the next request asks again.
        self.inner.auth.forget(&ep.authority, &header);
        let detail = read_error_detail(response).await;
        let err = match creds {
            Some(_) => RegistryError::Unauthorized {
                repository: repository.clone(),
                registry: ep.creds_host.clone(),
                reason: format!(
                    "the credentials for {} were refused or do not give access to this repository",
                    ep.creds_host
                ),
                detail,
            },
            None => RegistryError::Unauthorized {
                repository: repository.clone(),
                registry: ep.creds_host.clone(),
                reason: format!(
                    "the repository may not exist, or it needs credentials and none were found for {}",
                    ep.creds_host
                ),
                detail,
            },
        };
        Err(AttemptError::Registry(err))
    }

    /// Sends one GET; failures are worded (TLS trust problems as [`RegistryError::Tls`]).
    async fn send(
        &self,
        http: &HttpClient,
        ep: &Endpoint,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
        range: Option<u64>,
    ) -> Result<reqwest::Response, AttemptError> {
        let mut req = http.client.get(url);
        if let Some(accept) = accept {
            req = req.header(ACCEPT, accept);
        }
        if let Some(authorization) = authorization {
            req = req.header(AUTHORIZATION, authorization);
        }
        if let Some(offset) = range {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        let err = match req.send().await {
            Ok(response) => return Ok(response),
            Err(e) => e,
        };
        let certs_dirs = &self.inner.config.certs_dirs;
        match tls::tls_failure(&err) {
            Some(tls::TlsFailure::Untrusted(reason)) => {
                Err(AttemptError::Registry(RegistryError::Tls {
                    registry: ep.authority.clone(),
                    message: tls::untrusted_message(
                        &ep.authority,
                        &reason,
                        certs_dirs,
                        &http.ca_files,
                    ),
                }))
            }
            Some(tls::TlsFailure::Refused(reason)) => {
                Err(AttemptError::Registry(RegistryError::Tls {
                    registry: ep.authority.clone(),
                    message: tls::handshake_message(&ep.authority, &reason, certs_dirs),
                }))
            }
            Some(tls::TlsFailure::Other(reason)) => Err(AttemptError::Transport {
                message: format!("{url}: TLS: {reason}"),
                retriable: false,
            }),
            None => {
                let retriable = err.is_connect() || err.is_timeout() || err.is_request();
                Err(AttemptError::Transport {
                    message: format!("{url}: {}", error_chain(&err.without_url())),
                    retriable,
                })
            }
        }
    }

    /// Credentials for a registry host (config.json or a credential helper, looked up once).
    async fn credentials(&self, host: &str) -> Result<Option<Credentials>, RegistryError> {
        let mut cache = self.inner.creds_cache.lock().await;
        if let Some(found) = cache.get(host) {
            return Ok(found.clone());
        }
        let inner = self.inner.clone();
        let key = host.to_string();
        let found = tokio::task::spawn_blocking(move || inner.creds.credentials_for(&key))
            .await
            .map_err(|e| RegistryError::CredentialHelper {
                helper: "credential lookup".to_string(),
                registry: host.to_string(),
                reason: e.to_string(),
            })??;
        cache.insert(host.to_string(), found.clone());
        Ok(found)
    }

    /// The client without per-registry TLS files, built on first use.
    fn plain(&self, skip_verify: bool) -> Result<HttpClient, RegistryError> {
        let cell = if skip_verify {
            &self.inner.plain_insecure
        } else {
            &self.inner.plain
        };
        if let Some(client) = cell.get() {
            return Ok(client.clone());
        }
        let built = build_http(
            &self.inner.config,
            &self.inner.user_agent,
            skip_verify,
            None,
        )?;
        Ok(cell.get_or_init(|| built).clone())
    }

    /// The client for a URL outside the endpoint list (token realms).
    fn client_for_url(&self, url: &reqwest::Url) -> Result<reqwest::Client, RegistryError> {
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        let skip_verify = url.scheme() == "https"
            && endpoint::is_insecure(&self.inner.config, &authority, self.has_ca(&authority));
        match self.http_client(&authority, skip_verify) {
            Ok(c) => Ok(c.client),
            // The realm's certs dir files do not load: the system roots may still do.
            Err(_) => Ok(self.plain(skip_verify)?.client),
        }
    }
}

/// Builds an HTTP client: rustls with the system roots plus `files`' CAs and client
/// certificate; no verification at all with `skip_verify`.
fn build_http(
    config: &RegistryConfig,
    user_agent: &str,
    skip_verify: bool,
    files: Option<tls::TlsFiles>,
) -> Result<HttpClient, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(CONNECT_TIMEOUT)
        // Each read (headers or a body chunk) must make progress within the stall timeout.
        .read_timeout(config.stall_timeout)
        // The default policy follows up to 10 redirects and drops Authorization when the
        // host, port or scheme changes (blob downloads from object storage).
        .redirect(reqwest::redirect::Policy::limited(10))
        .tls_danger_accept_invalid_certs(skip_verify);
    let mut ca_files = Vec::new();
    if let Some(files) = files {
        if !skip_verify && !files.roots.is_empty() {
            builder = builder.tls_certs_merge(files.roots);
        }
        if let Some(identity) = files.identity {
            builder = builder.identity(identity);
        }
        ca_files = files.ca_files;
    }
    let client = builder
        .build()
        .map_err(|e| RegistryError::Client(error_chain(&e.without_url())))?;
    Ok(HttpClient {
        client,
        ca_files: Arc::new(ca_files),
    })
}

fn challenges_of(headers: &HeaderMap) -> Vec<auth::Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(auth::parse_challenges)
        .collect()
}

/// Next body chunk, failing when nothing arrives within `stall`.
async fn next_chunk(
    response: &mut reqwest::Response,
    url: &str,
    stall: Duration,
) -> Result<Option<Bytes>, RegistryError> {
    match tokio::time::timeout(stall, response.chunk()).await {
        Ok(Ok(chunk)) => Ok(chunk),
        Ok(Err(e)) => Err(RegistryError::Body {
            url: url.to_string(),
            reason: error_chain(&e.without_url()),
        }),
        Err(_) => Err(RegistryError::Body {
            url: url.to_string(),
            reason: format!("stalled: no data for {}", seconds(stall)),
        }),
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An error and its causes, `: `-joined (reqwest's own message hides the interesting part).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[derive(serde::Deserialize)]
struct ErrorsBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(serde::Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

fn shorten(s: &str, max: usize) -> String {
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match collapsed.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &collapsed[..i]),
        None => collapsed,
    }
}

/// The registry's error body as `: registry says CODE: message (detail: ...)`, or the start of
/// a non-JSON body, or nothing.
pub(crate) fn describe_error_body(body: &[u8]) -> String {
    if let Ok(parsed) = serde_json::from_slice::<ErrorsBody>(body)
        && !parsed.errors.is_empty()
    {
        let items: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| {
                let mut s = format!("{}: {}", e.code, e.message);
                if let Some(detail) = e.detail.as_ref().filter(|d| !d.is_null()) {
                    let d = match detail {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    s.push_str(&format!(" (detail: {})", shorten(&d, 300)));
                }
                s
            })
            .collect();
        return format!(": registry says {}", items.join("; "));
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.trim().is_empty() => format!(": {}", shorten(text, 200)),
        _ => String::new(),
    }
}

fn first_error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorsBody>(body)
        .ok()?
        .errors
        .into_iter()
        .map(|e| e.code)
        .find(|c| !c.is_empty())
}

async fn read_error_body(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_secs(10), response.chunk()).await
    {
        let room = MAX_ERROR_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    body
}

async fn read_error_detail(mut response: reqwest::Response) -> String {
    describe_error_body(&read_error_body(&mut response).await)
}

/// The `Retry-After` of a response as shown in messages: the value and when the limit resets.
fn retry_after_text(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, RETRY_AFTER.as_str())?
        .trim()
        .to_string();
    let now = SystemTime::now();
    Some(match retry::parse_retry_after(&value, now) {
        Some(delay) => format!(
            "{value}; the limit resets at {}",
            retry::reset_time(delay, now)
        ),
        None => value,
    })
}

/// Turns an unsuccessful `GET /v2/` of a login into an error.
async fn error_for_login(
    mut response: reqwest::Response,
    url: &str,
    registry: &str,
) -> RegistryError {
    let status = response.status().as_u16();
    let retry_after = retry_after_text(response.headers());
    let body = read_error_body(&mut response).await;
    let detail = describe_error_body(&body);
    match status {
        403 => RegistryError::Denied {
            repository: registry.to_string(),
            detail,
        },
        429 => RegistryError::TooManyRequests {
            registry: registry.to_string(),
            retry_after,
            detail,
        },
        _ => RegistryError::Http {
            url: url.to_string(),
            status,
            detail,
        },
    }
}

/// Turns an unsuccessful response into the matching error, with the registry's text.
async fn error_from_response(
    mut response: reqwest::Response,
    url: &str,
    reference: &Reference,
    target: Target<'_>,
) -> RegistryError {
    let status = response.status().as_u16();
    let retry_after = retry_after_text(response.headers());
    let body = read_error_body(&mut response).await;
    let detail = describe_error_body(&body);
    let code = first_error_code(&body).unwrap_or_else(|| {
        match (status, target) {
            (401, _) => "UNAUTHORIZED",
            (403, _) => "DENIED",
            (429, _) => "TOOMANYREQUESTS",
            (404, Target::Manifest { .. }) => "MANIFEST_UNKNOWN",
            (404, Target::Blob { .. }) => "BLOB_UNKNOWN",
            _ => "",
        }
        .to_string()
    });
    let repository = reference.repo_name();
    match (code.to_ascii_uppercase().as_str(), target) {
        ("MANIFEST_UNKNOWN", Target::Manifest { shown }) => RegistryError::ManifestUnknown {
            reference: shown.to_string(),
            detail,
        },
        ("BLOB_UNKNOWN", Target::Blob { digest }) => RegistryError::BlobUnknown {
            digest: digest.clone(),
            repository,
            detail,
        },
        ("NAME_UNKNOWN", _) => RegistryError::NameUnknown { repository, detail },
        ("UNAUTHORIZED", _) => RegistryError::Unauthorized {
            repository,
            registry: reference.registry.clone(),
            reason: "authentication required".to_string(),
            detail,
        },
        ("DENIED", _) => RegistryError::Denied { repository, detail },
        ("TOOMANYREQUESTS", _) => RegistryError::TooManyRequests {
            registry: reference.registry.clone(),
            retry_after,
            detail,
        },
        ("UNSUPPORTED", _) => RegistryError::Unsupported {
            reference: match target {
                Target::Manifest { shown } => shown.to_string(),
                _ => repository,
            },
            reason: format!("the registry does not support this operation (HTTP {status}){detail}"),
        },
        _ => RegistryError::Http {
            url: url.to_string(),
            status,
            detail,
        },
    }
}

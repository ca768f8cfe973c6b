//! Registry client (OCI distribution API, pull side): endpoints and mirrors, auth, manifests,
//! platforms, blobs.
//!
//! Every request for a registry goes to its configured mirrors first (pull-through caches: same
//! repository path), then to the registry itself; insecure registries are tried over HTTPS
//! without certificate checks, then over plain HTTP. The endpoint that answered last is tried
//! first next time, so all blobs of a pull go where the manifest came from. A 401 is answered
//! once per request (bearer token or basic credentials from Docker's config.json), and tokens
//! are cached per endpoint and scope. This module never touches the filesystem except to read
//! config.json.

pub mod auth;
pub mod endpoint;
pub mod manifest;
pub mod platform;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE,
};

use self::endpoint::Endpoint;
pub use self::manifest::{
    Descriptor, ImageConfig, ImageIndex, ImageManifest, Manifest, ManifestError, layer_compression,
    parse_config, parse_manifest,
};
pub use self::platform::{Platform, PlatformError, select};
use crate::digest::Digest;
use crate::reference::Reference;

/// Media types sent in `Accept` for manifests: OCI index and manifest, Docker list and
/// schema 2, and schema 1 (only so that it can be recognised and refused clearly).
pub const MANIFEST_ACCEPT: &str = concat!(
    "application/vnd.oci.image.index.v1+json, ",
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json, ",
    "application/vnd.docker.distribution.manifest.v2+json, ",
    "application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, ",
    "application/vnd.docker.distribution.manifest.v1+json;q=0.5"
);

const DEFAULT_USER_AGENT: &str = concat!("strata/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const RETRY_DELAY: Duration = Duration::from_millis(250);
/// Largest error body read from a registry.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Client settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Registry host (`docker.io`, `127.0.0.1:5000`) -> mirror base URLs
    /// (`http://127.0.0.1:5000`, `https://mirror.example`, or `host[:port]`), tried in order
    /// before the registry itself.
    pub mirrors: HashMap<String, Vec<String>>,
    /// Extra insecure registries: `host[:port]`, `host` (any port) or a CIDR. `localhost`,
    /// `127.0.0.0/8` and `::1` are always insecure (as in Docker). Insecure means HTTPS without
    /// certificate verification first, then plain HTTP.
    pub insecure: Vec<String>,
    /// Docker config.json to read credentials from (`None`: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`, if present).
    pub docker_config: Option<PathBuf>,
    /// `User-Agent` header (default `strata/<version>`).
    pub user_agent: Option<String>,
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
    /// Docker's config.json could not be read or has a bad entry.
    #[error("docker config {}: {reason}", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
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
        "unauthorized: pull access to {repository} denied; the repository may not exist or may require credentials (docker login, or an `auths` entry in config.json){detail}"
    )]
    Unauthorized {
        /// `registry/repository`.
        repository: String,
        /// The registry's own error text and hints, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// Authenticated but not allowed (`DENIED`, 403).
    #[error("denied: the registry refused access to {repository}{detail}")]
    Denied {
        /// `registry/repository`.
        repository: String,
        /// The registry's own error text, `: ...`-prefixed, or empty.
        detail: String,
    },
    /// Rate limited (`TOOMANYREQUESTS`, 429).
    #[error(
        "too many requests: {registry} is rate-limiting pulls{}; wait and retry, or log in for a higher limit{detail}",
        retry_after.as_ref().map(|r| format!(" (Retry-After: {r})")).unwrap_or_default()
    )]
    TooManyRequests {
        /// The registry host.
        registry: String,
        /// The `Retry-After` header, if sent.
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
    /// A manifest format strata does not pull (Docker schema 1).
    #[error("{reference}: {reason}")]
    Unsupported {
        /// The reference pulled.
        reference: String,
        /// What is unsupported.
        reason: String,
    },
    /// The connection failed while reading a response body.
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

/// A blob response being streamed; the caller verifies digest and size.
pub struct BlobStream {
    response: reqwest::Response,
    url: String,
    content_length: Option<u64>,
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream")
            .field("url", &self.url)
            .field("content_length", &self.content_length)
            .finish()
    }
}

impl BlobStream {
    /// The `Content-Length` of the response, when the server sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The URL the blob was requested from (before redirects).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Next chunk of the body; `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, RegistryError>> {
        match self.response.chunk().await {
            Ok(Some(chunk)) => Some(Ok(chunk)),
            Ok(None) => None,
            Err(e) => Some(Err(RegistryError::Body {
                url: self.url.clone(),
                reason: error_chain(&e.without_url()),
            })),
        }
    }
}

/// A registry client; cheap to clone (shared state inside).
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: RegistryConfig,
    secure: reqwest::Client,
    insecure: reqwest::Client,
    creds: auth::DockerConfig,
    auth: auth::AuthCache,
    /// Registry host -> base URL of the endpoint that answered last.
    preferred: Mutex<HashMap<String, String>>,
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
    /// Connection, TLS or protocol failure (already worded, URL included).
    Transport(String),
    /// Auth failed in a way worth reporting as is.
    Registry(RegistryError),
}

impl RegistryClient {
    /// Builds a client: checks mirror URLs, reads Docker's config.json, sets up HTTP clients
    /// (rustls with the ring provider; one verifying, one not for insecure registries).
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        // Fails only when a provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        endpoint::validate(&config)?;
        let creds = auth::DockerConfig::load(config.docker_config.as_deref())?;
        let user_agent = config
            .user_agent
            .clone()
            .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string());
        let build = |skip_verify: bool| {
            reqwest::Client::builder()
                .user_agent(user_agent.clone())
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                // The default policy follows up to 10 redirects and drops Authorization when
                // the host, port or scheme changes (blob downloads from a CDN).
                .redirect(reqwest::redirect::Policy::limited(10))
                .tls_danger_accept_invalid_certs(skip_verify)
                .build()
                .map_err(|e| RegistryError::Client(error_chain(&e.without_url())))
        };
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                secure: build(false)?,
                insecure: build(true)?,
                config,
                creds,
                auth: auth::AuthCache::default(),
                preferred: Mutex::new(HashMap::new()),
            }),
        })
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
        let path = format!("blobs/{digest}");
        if size > max_size {
            return Err(RegistryError::TooLarge {
                what: "blob",
                url: format!("{}/{path}", reference.repo_name()),
                limit: max_size,
            });
        }
        let (mut response, url) = self
            .get(reference, &path, None, Target::Blob { digest })
            .await?;
        let too_long = |actual| RegistryError::SizeMismatch {
            what: "blob",
            url: url.clone(),
            expected: size,
            actual,
        };
        if let Some(len) = response.content_length()
            && len > size
        {
            return Err(too_long(len));
        }
        let mut hasher = crate::digest::Hasher::new();
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
        while let Some(chunk) = next_chunk(&mut response, &url).await? {
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
    /// leaves the host). The caller verifies digest and size.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        let (response, url) = self
            .get(
                reference,
                &format!("blobs/{digest}"),
                None,
                Target::Blob { digest },
            )
            .await?;
        Ok(BlobStream {
            content_length: response.content_length(),
            response,
            url,
        })
    }

    async fn get_manifest(
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
        let (mut response, url) = self
            .get(
                reference,
                &path,
                Some(MANIFEST_ACCEPT),
                Target::Manifest { shown },
            )
            .await?;
        let limit = manifest::MAX_MANIFEST_SIZE;
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
        while let Some(chunk) = next_chunk(&mut response, &url).await? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
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
        let media_type =
            body_type.unwrap_or_else(|| manifest::base_media_type(&content_type).to_string());
        if manifest::is_schema1_type(&media_type)
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

    /// The endpoints for `registry`, the one that answered last first.
    fn ordered_endpoints(&self, registry: &str) -> Result<Vec<Endpoint>, RegistryError> {
        let mut eps = endpoint::endpoints(&self.inner.config, registry)?;
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
    /// Returns the response and the URL that served it.
    async fn get(
        &self,
        reference: &Reference,
        path: &str,
        accept: Option<&str>,
        target: Target<'_>,
    ) -> Result<(reqwest::Response, String), RegistryError> {
        let mut attempts: Vec<String> = Vec::new();
        for ep in self.ordered_endpoints(&reference.registry)? {
            let url = format!("{}/v2/{}/{}", ep.base, reference.repository, path);
            match self.attempt(&ep, reference, &url, accept).await {
                Ok(response) if response.status().is_success() => {
                    if let Ok(mut preferred) = self.inner.preferred.lock() {
                        preferred.insert(reference.registry.clone(), ep.base.clone());
                    }
                    return Ok((response, url));
                }
                Ok(response) => {
                    let err = error_from_response(response, &url, reference, target).await;
                    let err = self.with_creds_hint(err, &ep.creds_host);
                    if !ep.mirror {
                        return Err(err);
                    }
                    eprintln!(
                        "warning: mirror {} failed: {err}; trying the next endpoint",
                        ep.base
                    );
                    attempts.push(format!("{url}: {err}"));
                }
                Err(AttemptError::Registry(err)) => {
                    if !ep.mirror {
                        return Err(err);
                    }
                    eprintln!(
                        "warning: mirror {} failed: {err}; trying the next endpoint",
                        ep.base
                    );
                    attempts.push(format!("{url}: {err}"));
                }
                Err(AttemptError::Transport(reason)) => {
                    if ep.mirror && !ep.probe {
                        eprintln!(
                            "warning: mirror {} failed: {reason}; trying the next endpoint",
                            ep.base
                        );
                    }
                    attempts.push(reason);
                }
            }
        }
        Err(RegistryError::Unreachable {
            registry: reference.registry.clone(),
            attempts: attempts.join("; "),
        })
    }

    /// One request to one endpoint, answering a 401 once.
    async fn attempt(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        url: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, AttemptError> {
        let client = if ep.skip_verify {
            &self.inner.insecure
        } else {
            &self.inner.secure
        };
        let retry = !ep.probe && !ep.mirror;
        let scope = format!("repository:{}:pull", reference.repository);
        let cached = self.inner.auth.cached(&ep.authority, &scope);
        let response = send(client, url, accept, cached.as_deref(), retry)
            .await
            .map_err(AttemptError::Transport)?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges: Vec<auth::Challenge> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(auth::parse_challenges)
            .collect();
        drop(response);
        let creds = self
            .inner
            .creds
            .credentials_for(&ep.creds_host)
            .map_err(AttemptError::Registry)?;
        let header = self
            .inner
            .auth
            .answer(
                &challenges,
                &ep.authority,
                &scope,
                creds.as_ref(),
                |u| self.client_for_url(u),
                &reference.repo_name(),
            )
            .await
            .map_err(|e| AttemptError::Registry(self.with_creds_hint(e, &ep.creds_host)))?;
        let response = send(client, url, accept, Some(&header), retry)
            .await
            .map_err(AttemptError::Transport)?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            // Stale or insufficient: forget it so the next request asks again.
            self.inner.auth.forget(&ep.authority, &scope);
        }
        Ok(response)
    }

    /// The client for a URL outside the endpoint list (token realms).
    fn client_for_url(&self, url: &reqwest::Url) -> reqwest::Client {
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        if url.scheme() == "https" && endpoint::is_insecure(&self.inner.config, &authority) {
            self.inner.insecure.clone()
        } else {
            self.inner.secure.clone()
        }
    }

    fn with_creds_hint(&self, err: RegistryError, creds_host: &str) -> RegistryError {
        let Some(hint) = self.inner.creds.unsupported_hint(creds_host) else {
            return err;
        };
        match err {
            RegistryError::Token { realm, reason } => RegistryError::Token {
                realm,
                reason: format!("{reason} ({hint})"),
            },
            RegistryError::Unauthorized { repository, detail } => RegistryError::Unauthorized {
                repository,
                detail: format!("{detail} ({hint})"),
            },
            other => other,
        }
    }
}

/// Sends a GET, retrying once on connection errors when `retry`.
async fn send(
    client: &reqwest::Client,
    url: &str,
    accept: Option<&str>,
    authorization: Option<&str>,
    retry: bool,
) -> Result<reqwest::Response, String> {
    let mut tries_left = if retry { 2 } else { 1 };
    loop {
        tries_left -= 1;
        let mut req = client.get(url);
        if let Some(accept) = accept {
            req = req.header(ACCEPT, accept);
        }
        if let Some(authorization) = authorization {
            req = req.header(AUTHORIZATION, authorization);
        }
        match req.send().await {
            Ok(response) => return Ok(response),
            Err(e) if tries_left > 0 && (e.is_connect() || e.is_timeout()) => {
                tokio::time::sleep(RETRY_DELAY).await
            }
            Err(e) => return Err(format!("{url}: {}", error_chain(&e.without_url()))),
        }
    }
}

async fn next_chunk(
    response: &mut reqwest::Response,
    url: &str,
) -> Result<Option<Bytes>, RegistryError> {
    response.chunk().await.map_err(|e| RegistryError::Body {
        url: url.to_string(),
        reason: error_chain(&e.without_url()),
    })
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

/// Turns an unsuccessful response into the matching error, with the registry's text.
async fn error_from_response(
    mut response: reqwest::Response,
    url: &str,
    reference: &Reference,
    target: Target<'_>,
) -> RegistryError {
    let status = response.status().as_u16();
    let retry_after = header_str(response.headers(), RETRY_AFTER.as_str()).map(str::to_string);
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ERROR_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
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
    match (code.as_str(), target) {
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
        ("UNAUTHORIZED", _) => RegistryError::Unauthorized { repository, detail },
        ("DENIED", _) => RegistryError::Denied { repository, detail },
        ("TOOMANYREQUESTS", _) => RegistryError::TooManyRequests {
            registry: reference.registry.clone(),
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

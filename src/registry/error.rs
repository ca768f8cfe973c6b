//! The registry error type, and its wording: the registry's error bodies described, and
//! unsuccessful responses mapped to errors.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::retry;
use crate::digest::Digest;
use crate::reference::Reference;

/// Largest error body read from a registry.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Errors from talking to registries.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The [`RegistryConfig`](super::RegistryConfig) is unusable (bad mirror URL, ...).
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
    /// names the host and where its certificates go.
    #[error("{message}")]
    Tls {
        /// `host[:port]`.
        registry: String,
        /// Which side refused the connection.
        problem: TlsProblem,
        /// The registry's directory in the first certs dir (`<certs dir>/<host[:port]>`),
        /// where its CA and client certificates go.
        certs_dir: PathBuf,
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
    #[error("unauthorized: access to {repository} was refused: {reason}{detail}")]
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
        "too many requests: {registry} is rate-limiting pulls{}; wait and retry, or log in for a higher limit{detail}",
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

/// What went wrong in a TLS handshake ([`RegistryError::Tls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// strata does not trust the registry's certificate (unknown CA, wrong name, expired).
    Untrusted,
    /// The registry refused the handshake: it wants a client certificate it trusts.
    Refused,
}

/// What a request is for, to word errors.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    /// A manifest, shown in errors as this reference.
    Manifest { shown: &'a Reference },
    /// A blob.
    Blob { digest: &'a Digest },
}

/// A header's value, when it is text.
pub(super) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
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

/// The start of a response body (at most [`MAX_ERROR_BODY`] bytes).
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

/// The registry's error body of a response, described (see [`describe_error_body`]).
pub(super) async fn read_error_detail(mut response: reqwest::Response) -> String {
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
pub(super) async fn error_for_login(
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
pub(super) async fn error_from_response(
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

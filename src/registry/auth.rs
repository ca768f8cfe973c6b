//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens (fetched from the
//! token realm, cached per endpoint and scope until they expire), basic credentials, and
//! credentials from Docker's `config.json` (`auths` entries).
//!
//! Secrets never appear in errors or `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Deserialize;

use super::RegistryError;

/// Token lifetime when the server does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: u64 = 60;
/// Tokens are dropped this long before they expire.
const TOKEN_EXPIRY_SLACK: u64 = 10;
/// Largest token response read.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lower-case scheme: `bearer`, `basic`.
    pub scheme: String,
    /// Parameters with lower-case names.
    pub params: HashMap<String, String>,
}

/// Parses `WWW-Authenticate` values (RFC 7235): one or more challenges, each a scheme and
/// comma-separated `name=value` / `name="quoted value"` parameters.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let s = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t') {
            *i += 1;
        }
    };
    let read_token = |i: &mut usize| -> String {
        let start = *i;
        while *i < s.len() && is_tchar(s[*i]) {
            *i += 1;
        }
        String::from_utf8_lossy(&s[start..*i]).into_owned()
    };
    while i < s.len() {
        while i < s.len() && (s[i] == b',' || s[i] == b' ' || s[i] == b'\t') {
            i += 1;
        }
        let scheme = read_token(&mut i);
        if scheme.is_empty() {
            // Not a token: skip one byte to make progress.
            i += 1;
            continue;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: HashMap::new(),
        };
        loop {
            skip_ws(&mut i);
            let save = i;
            let name = read_token(&mut i);
            skip_ws(&mut i);
            if name.is_empty() || i >= s.len() || s[i] != b'=' {
                // A new challenge (or a token68, which registries do not use).
                i = if name.is_empty() { i.max(save) } else { save };
                break;
            }
            i += 1; // '='
            skip_ws(&mut i);
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1; // closing quote
                String::from_utf8_lossy(&v).into_owned()
            } else {
                let start = i;
                while i < s.len() && s[i] != b',' && s[i] != b' ' && s[i] != b'\t' {
                    i += 1;
                }
                String::from_utf8_lossy(&s[start..i]).into_owned()
            };
            challenge.params.insert(name.to_ascii_lowercase(), value);
            skip_ws(&mut i);
            if i < s.len() && s[i] == b',' {
                i += 1;
            } else {
                break;
            }
        }
        out.push(challenge);
    }
    out
}

/// A username and password (or identity token), never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The `Authorization: Basic ...` value.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default, Clone)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Credentials read from a Docker `config.json`.
#[derive(Default)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    /// Normalised registry host -> entry.
    auths: HashMap<String, AuthEntry>,
    /// Registries whose credentials live in a credential helper (not supported yet).
    helpers: Vec<String>,
    creds_store: Option<String>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .field("registries", &self.auths.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Docker's `ConvertToHostname` plus Hub aliases: `https://index.docker.io/v1/` -> `docker.io`.
pub(crate) fn normalize_registry_key(key: &str) -> String {
    let k = key.trim().to_ascii_lowercase();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(&k);
    let k = k.split('/').next().unwrap_or("").to_string();
    match k.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => k,
    }
}

impl DockerConfig {
    /// Reads `path`, or when `None` `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    /// A missing default file means no credentials; a missing explicit file is an error.
    pub fn load(path: Option<&Path>) -> Result<Self, RegistryError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match default_config_path() {
                Some(p) => (p, false),
                None => return Ok(DockerConfig::default()),
            },
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(DockerConfig::default());
            }
            Err(e) => {
                return Err(RegistryError::DockerConfig {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        Self::from_json(&bytes, Some(path))
    }

    /// Parses config.json content; `path` is only for messages.
    pub fn from_json(bytes: &[u8], path: Option<PathBuf>) -> Result<Self, RegistryError> {
        let file: ConfigFile =
            serde_json::from_slice(bytes).map_err(|e| RegistryError::DockerConfig {
                path: path.clone().unwrap_or_default(),
                reason: format!("invalid JSON: {e}"),
            })?;
        Ok(DockerConfig {
            auths: file
                .auths
                .into_iter()
                .map(|(k, v)| (normalize_registry_key(&k), v))
                .collect(),
            helpers: file
                .cred_helpers
                .keys()
                .map(|k| normalize_registry_key(k))
                .collect(),
            creds_store: file.creds_store,
            path,
        })
    }

    /// Where the credentials came from, for messages.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Credentials for a registry host (`docker.io`, `host:port`), if config.json has any.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let Some(entry) = self.auths.get(&normalize_registry_key(registry)) else {
            return Ok(None);
        };
        let bad = |reason: &str| RegistryError::DockerConfig {
            path: self.path.clone().unwrap_or_default(),
            reason: format!("auths entry for {registry}: {reason}"),
        };
        if let Some(auth) = entry
            .auth
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let decoded = STANDARD
                .decode(auth)
                .or_else(|_| STANDARD_NO_PAD.decode(auth.trim_end_matches('=')))
                .map_err(|_| bad("`auth` is not valid base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("`auth` is not UTF-8"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| bad("`auth` is not base64 of user:password"))?;
            return Ok(Some(Credentials {
                username: user.to_string(),
                password: pass.trim_end_matches('\n').to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password)
            && !u.is_empty()
        {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        Ok(None)
    }

    /// Why credentials for `registry` may be missing: a credential helper or an identity token
    /// that strata cannot use yet. For error messages.
    pub fn unsupported_hint(&self, registry: &str) -> Option<String> {
        let key = normalize_registry_key(registry);
        if self.helpers.contains(&key) {
            return Some(format!(
                "credentials for {registry} are in a credential helper, which strata does not call yet"
            ));
        }
        if self
            .auths
            .get(&key)
            .is_some_and(|e| e.identitytoken.is_some() && e.auth.is_none())
        {
            return Some(format!(
                "config.json has only an identity token for {registry}, which strata does not use yet"
            ));
        }
        if let Some(store) = &self.creds_store
            && self.auths.get(&key).is_none_or(|e| e.auth.is_none())
        {
            return Some(format!(
                "config.json uses the credential store {store:?}, which strata does not call yet"
            ));
        }
        None
    }
}

fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

struct CachedToken {
    header: String,
    expires: Instant,
}

/// Tokens and schemes learnt from challenges, shared by all requests of a client.
#[derive(Default)]
pub(crate) struct AuthCache {
    /// (endpoint authority, scope) -> bearer token.
    tokens: Mutex<HashMap<(String, String), CachedToken>>,
    /// Endpoint authorities that asked for Basic auth -> the header to send.
    basic: Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl AuthCache {
    /// The `Authorization` value to send pre-emptively, if one is known.
    pub fn cached(&self, authority: &str, scope: &str) -> Option<String> {
        if let Ok(mut tokens) = self.tokens.lock() {
            let key = (authority.to_string(), scope.to_string());
            match tokens.get(&key) {
                Some(t) if t.expires > Instant::now() => return Some(t.header.clone()),
                Some(_) => {
                    tokens.remove(&key);
                }
                None => {}
            }
        }
        self.basic
            .lock()
            .ok()
            .and_then(|b| b.get(authority).cloned())
    }

    /// Drops what is cached for an endpoint and scope (after it was refused).
    pub fn forget(&self, authority: &str, scope: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&(authority.to_string(), scope.to_string()));
        }
        if let Ok(mut basic) = self.basic.lock() {
            basic.remove(authority);
        }
    }

    /// Answers the challenges of a 401: fetches a bearer token (with `creds` if any) or
    /// prepares basic auth, caches it, and returns the `Authorization` value to retry with.
    /// `pick_client` chooses the HTTP client for the token realm URL.
    pub async fn answer(
        &self,
        challenges: &[Challenge],
        authority: &str,
        scope: &str,
        creds: Option<&Credentials>,
        pick_client: impl Fn(&reqwest::Url) -> reqwest::Client,
        registry: &str,
    ) -> Result<String, RegistryError> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer
                .params
                .get("realm")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| RegistryError::Challenge {
                    registry: registry.to_string(),
                    reason: "Bearer challenge without realm".into(),
                })?;
            let (header, lifetime) = fetch_token(
                realm,
                bearer.params.get("service"),
                scope,
                creds,
                &pick_client,
            )
            .await?;
            let expires = Instant::now()
                + Duration::from_secs(lifetime.saturating_sub(TOKEN_EXPIRY_SLACK).max(1));
            if let Ok(mut tokens) = self.tokens.lock() {
                tokens.insert(
                    (authority.to_string(), scope.to_string()),
                    CachedToken {
                        header: header.clone(),
                        expires,
                    },
                );
            }
            return Ok(header);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let creds = creds.ok_or_else(|| RegistryError::Unauthorized {
                repository: registry.to_string(),
                detail: ": the registry asks for a user name and password and none were found"
                    .to_string(),
            })?;
            let header = creds.basic_header();
            if let Ok(mut basic) = self.basic.lock() {
                basic.insert(authority.to_string(), header.clone());
            }
            return Ok(header);
        }
        let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        Err(RegistryError::Challenge {
            registry: registry.to_string(),
            reason: if schemes.is_empty() {
                "HTTP 401 without a usable WWW-Authenticate header".to_string()
            } else {
                format!(
                    "unsupported authentication scheme(s): {}",
                    schemes.join(", ")
                )
            },
        })
    }
}

/// GET realm?service=..&scope=.. (with basic credentials when known); returns the
/// `Authorization` value and the token lifetime in seconds.
async fn fetch_token(
    realm: &str,
    service: Option<&String>,
    scope: &str,
    creds: Option<&Credentials>,
    pick_client: &impl Fn(&reqwest::Url) -> reqwest::Client,
) -> Result<(String, u64), RegistryError> {
    let fail = |reason: String| RegistryError::Token {
        realm: realm.to_string(),
        reason,
    };
    let mut url =
        reqwest::Url::parse(realm).map_err(|e| fail(format!("invalid realm URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail("realm is not an http(s) URL".to_string()));
    }
    {
        let mut q = url.query_pairs_mut();
        if let Some(service) = service.filter(|s| !s.is_empty()) {
            q.append_pair("service", service);
        }
        q.append_pair("scope", scope);
    }
    let client = pick_client(&url);
    let mut req = client.get(url.clone());
    if let Some(c) = creds {
        req = req.header(reqwest::header::AUTHORIZATION, c.basic_header());
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| fail(super::error_chain(&e.without_url())))?;
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fail(super::error_chain(&e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
            return Err(fail("token response larger than 1 MiB".to_string()));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let mut reason = format!(
            "HTTP {}{}",
            status.as_u16(),
            super::describe_error_body(&body)
        );
        if matches!(status.as_u16(), 401 | 403) {
            reason.push_str(if creds.is_some() {
                "; the credentials from config.json were refused"
            } else {
                "; no credentials found (log in with docker login or add an auths entry to config.json)"
            });
        }
        return Err(fail(reason));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| fail(format!("token response is not the expected JSON: {e}")))?;
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| fail("token response has neither `token` nor `access_token`".to_string()))?;
    let lifetime = parsed
        .expires_in
        .filter(|&e| e > 0)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
        .max(DEFAULT_TOKEN_LIFETIME);
    Ok((format!("Bearer {token}"), lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        let mut v: Vec<_> = c
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            params(&c[0]),
            [
                ("realm", "https://auth.docker.io/token"),
                ("scope", "repository:library/alpine:pull"),
                ("service", "registry.docker.io")
            ]
        );
    }

    #[test]
    fn parses_several_challenges_and_odd_syntax() {
        let c = parse_challenges(
            r#"Basic realm="Registry Realm", BEARER Realm=https://x/t , service="a \"q\" b",error=insufficient_scope"#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(params(&c[0]), [("realm", "Registry Realm")]);
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(
            params(&c[1]),
            [
                ("error", "insufficient_scope"),
                ("realm", "https://x/t"),
                ("service", "a \"q\" b")
            ]
        );
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("Negotiate")[0].scheme, "negotiate");
        // Garbage does not loop forever.
        let _ = parse_challenges("=,=\"unterminated");
        let _ = parse_challenges(r#"Bearer realm="x\"#);
    }

    #[test]
    fn reads_config_json() {
        let json = br#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNzOndpdGg6Y29sb25z"},
                "localhost:5000": {"auth": "YTpi"},
                "https://quay.io": {"username": "qu", "password": "qp"},
                "ghcr.io": {"auth": ""},
                "bad.example": {"auth": "!!!"},
                "id.example": {"identitytoken": "tok"}
            },
            "credHelpers": {"gcr.io": "gcloud"}
        }"#;
        let cfg = DockerConfig::from_json(json, Some("/x/config.json".into())).unwrap();
        let hub = cfg.credentials_for("docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pass:with:colons")
        );
        assert_eq!(
            cfg.credentials_for("index.docker.io").unwrap(),
            Some(hub.clone())
        );
        let local = cfg.credentials_for("localhost:5000").unwrap().unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("a", "b")
        );
        assert_eq!(cfg.credentials_for("localhost:5001").unwrap(), None);
        assert_eq!(
            cfg.credentials_for("quay.io").unwrap().unwrap().username,
            "qu"
        );
        assert_eq!(cfg.credentials_for("ghcr.io").unwrap(), None);
        let err = cfg.credentials_for("bad.example").unwrap_err().to_string();
        assert!(
            err.contains("/x/config.json") && err.contains("base64"),
            "{err}"
        );
        assert!(
            cfg.unsupported_hint("gcr.io")
                .unwrap()
                .contains("credential helper")
        );
        assert!(
            cfg.unsupported_hint("id.example")
                .unwrap()
                .contains("identity token")
        );
        assert!(cfg.unsupported_hint("quay.io").is_none());
        // Secrets stay out of Debug output.
        let shown = format!("{hub:?} {cfg:?}");
        assert!(
            !shown.contains("pass:with") && !shown.contains("dXNlcjpw"),
            "{shown}"
        );
    }

    #[test]
    fn config_file_errors() {
        assert!(
            DockerConfig::from_json(b"{not json", None)
                .unwrap_err()
                .to_string()
                .contains("invalid JSON")
        );
        assert!(
            DockerConfig::from_json(b"{}", None)
                .unwrap()
                .credentials_for("docker.io")
                .unwrap()
                .is_none()
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        assert!(
            DockerConfig::load(Some(&missing)).is_err(),
            "an explicit path must exist"
        );
        let path = dir.path().join("config.json");
        std::fs::write(&path, br#"{"auths":{"r.example":{"auth":"dTpw"}}}"#).unwrap();
        let cfg = DockerConfig::load(Some(&path)).unwrap();
        assert_eq!(
            cfg.credentials_for("r.example").unwrap().unwrap().password,
            "p"
        );
        assert_eq!(cfg.path(), Some(path.as_path()));
    }

    #[test]
    fn normalises_keys() {
        for k in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
            "HTTPS://Docker.IO",
        ] {
            assert_eq!(normalize_registry_key(k), "docker.io", "{k}");
        }
        assert_eq!(
            normalize_registry_key("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
    }

    #[test]
    fn cache_expires() {
        let cache = AuthCache::default();
        cache.tokens.lock().unwrap().insert(
            ("h".into(), "s".into()),
            CachedToken {
                header: "Bearer a".into(),
                expires: Instant::now() + Duration::from_secs(60),
            },
        );
        cache.tokens.lock().unwrap().insert(
            ("h".into(), "old".into()),
            CachedToken {
                header: "Bearer b".into(),
                expires: Instant::now() - Duration::from_secs(1),
            },
        );
        assert_eq!(cache.cached("h", "s").as_deref(), Some("Bearer a"));
        assert_eq!(cache.cached("h", "old"), None);
        assert_eq!(cache.cached("other", "s"), None);
    }
}

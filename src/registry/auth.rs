//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens (fetched from the
//! token realm with a GET, or with the OAuth2 POST when an identity token is known; cached per
//! endpoint and set of scopes until they expire or are refused; one token request at a time
//! per endpoint), and basic credentials.
//!
//! Secrets never appear in errors or `Debug` output.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::auth_store::{AuthStore, StoredChallenge, StoredToken, unix_now};
use super::error::{RegistryError, describe_error_body, error_chain};

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

pub use super::credentials::Credentials;

struct CachedToken {
    /// The `Authorization` value.
    header: String,
    /// The scopes the token was asked for.
    scopes: BTreeSet<String>,
    expires: Instant,
}

/// How long a remembered blob origin is used to open a connection ahead: a stale one costs two
/// `HEAD`s, and the next redirect records the origin (and the time) again.
const BLOB_ORIGIN_TTL: u64 = 7 * 24 * 3600;

/// Tokens and schemes learnt from challenges, shared by all requests of a client; with a
/// [`AuthStore`], also kept between invocations (challenges, anonymous tokens, and tokens
/// fetched with credentials when allowed).
#[derive(Default)]
pub(crate) struct AuthCache {
    /// The on-disk cache, if enabled.
    store: Option<AuthStore>,
    /// Whether tokens fetched with credentials are written to the store too.
    store_credentialed: bool,
    /// Endpoint authorities whose stored entry was read already.
    loaded: Mutex<HashSet<String>>,
    /// Endpoint authority -> the bearer challenge it answered with last.
    challenges: Mutex<HashMap<String, StoredChallenge>>,
    /// Endpoint authorities reached over plain HTTP last time (from the store).
    plain_http: Mutex<HashSet<String>>,
    /// Endpoint authority -> the origin its blobs were redirected to last (see `warm`).
    blob_origins: Mutex<HashMap<String, String>>,
    /// Endpoint authority -> bearer tokens (each for a set of scopes).
    tokens: Mutex<HashMap<String, Vec<CachedToken>>>,
    /// Endpoint authorities that asked for Basic auth -> the header to send.
    basic: Mutex<HashMap<String, String>>,
    /// Endpoint authority -> lock held while a token is fetched, so that requests that hit
    /// a 401 together share one token request.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a 401 needs answered.
pub(crate) struct AuthRequest<'a> {
    /// The challenges of the 401.
    pub challenges: &'a [Challenge],
    /// The endpoint's `host[:port]` (cache key).
    pub authority: &'a str,
    /// The scope needed (`repository:NAME:pull`), empty for a login check.
    pub scope: &'a str,
    /// The `Authorization` value the 401 answered, if one was sent.
    pub rejected: Option<&'a str>,
    /// Credentials for the registry, if any.
    pub creds: Option<&'a Credentials>,
    /// The registry host credentials are kept under (for messages).
    pub registry: &'a str,
    /// `registry/repository` (for messages).
    pub repository: &'a str,
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
    /// A cache that also reads and writes `store` (tokens fetched with credentials only with
    /// `store_credentialed`).
    pub fn new(store: Option<AuthStore>, store_credentialed: bool) -> AuthCache {
        AuthCache {
            store,
            store_credentialed,
            ..AuthCache::default()
        }
    }

    /// Reads the stored entry of `authority` once per client.
    fn load(&self, authority: &str) {
        let Some(store) = &self.store else {
            return;
        };
        match self.loaded.lock() {
            Ok(mut loaded) if !loaded.contains(authority) => {
                loaded.insert(authority.to_string());
            }
            _ => return,
        }
        let entry = store.load(authority);
        if entry.plain_http
            && let Ok(mut plain) = self.plain_http.lock()
        {
            plain.insert(authority.to_string());
        }
        if let Some(origin) = entry.blob_origin
            && unix_now().saturating_sub(entry.blob_origin_seen) < BLOB_ORIGIN_TTL
            && let Ok(mut origins) = self.blob_origins.lock()
        {
            origins.entry(authority.to_string()).or_insert(origin);
        }
        if let Some(challenge) = entry.challenge
            && let Ok(mut challenges) = self.challenges.lock()
        {
            challenges.entry(authority.to_string()).or_insert(challenge);
        }
        let now = unix_now();
        if let Ok(mut tokens) = self.tokens.lock() {
            let list = tokens.entry(authority.to_string()).or_default();
            for t in entry.tokens {
                let left = t.expires.saturating_sub(now);
                list.push(CachedToken {
                    header: t.header,
                    scopes: t.scopes.into_iter().collect(),
                    expires: Instant::now() + Duration::from_secs(left),
                });
            }
        }
    }

    /// The bearer challenge `authority` answered with before (in this process or, from the
    /// store, an earlier one): a token can be fetched before the first request, saving the
    /// 401.
    pub fn known_challenge(&self, authority: &str) -> Option<Challenge> {
        self.load(authority);
        let known = self.challenges.lock().ok()?.get(authority).cloned()?;
        let mut params = HashMap::from([("realm".to_string(), known.realm)]);
        if let Some(service) = known.service {
            params.insert("service".to_string(), service);
        }
        Some(Challenge {
            scheme: "bearer".to_string(),
            params,
        })
    }

    /// Forgets the challenge of `authority`: it answered a request sent without credentials.
    pub fn no_challenge(&self, authority: &str) {
        let known = self
            .challenges
            .lock()
            .is_ok_and(|mut c| c.remove(authority).is_some());
        if known && let Some(store) = &self.store {
            store.update(authority, |e| {
                e.challenge = None;
                e.tokens.clear();
            });
        }
    }

    /// Whether `authority` was reached over plain HTTP last time (from the store).
    pub fn plain_http(&self, authority: &str) -> bool {
        self.load(authority);
        self.plain_http.lock().is_ok_and(|p| p.contains(authority))
    }

    /// Records whether `authority` answered over plain HTTP (written when it changed).
    pub fn set_plain_http(&self, authority: &str, plain: bool) {
        if self.plain_http(authority) == plain {
            return;
        }
        if let Ok(mut set) = self.plain_http.lock() {
            if plain {
                set.insert(authority.to_string());
            } else {
                set.remove(authority);
            }
        }
        if let Some(store) = &self.store {
            store.update(authority, |e| e.plain_http = plain);
        }
    }

    /// The origin `authority` redirected blob requests to last (in this process or, from the
    /// store, an earlier one).
    pub fn blob_origin(&self, authority: &str) -> Option<String> {
        self.load(authority);
        self.blob_origins.lock().ok()?.get(authority).cloned()
    }

    /// Records the origin `authority` redirected a request to (written when it changed).
    pub fn set_blob_origin(&self, authority: &str, origin: &str) {
        if self.blob_origin(authority).as_deref() == Some(origin) {
            return;
        }
        if let Ok(mut origins) = self.blob_origins.lock() {
            origins.insert(authority.to_string(), origin.to_string());
        }
        if let Some(store) = &self.store {
            store.update(authority, |e| {
                e.blob_origin = Some(origin.to_string());
                e.blob_origin_seen = unix_now();
            });
        }
    }

    /// The `Authorization` value to send pre-emptively, if one is known: a live token whose
    /// scopes include `scope`, else the basic credentials the endpoint asked for before.
    pub fn cached(&self, authority: &str, scope: &str) -> Option<String> {
        self.load(authority);
        if let Ok(mut tokens) = self.tokens.lock()
            && let Some(list) = tokens.get_mut(authority)
        {
            let now = Instant::now();
            list.retain(|t| t.expires > now);
            if let Some(t) = list.iter().find(|t| t.scopes.contains(scope)) {
                return Some(t.header.clone());
            }
        }
        self.basic
            .lock()
            .ok()
            .and_then(|b| b.get(authority).cloned())
    }

    /// A live bearer token of `authority`, whatever its scope: enough for `/v2/`.
    pub fn any_token(&self, authority: &str) -> Option<String> {
        self.load(authority);
        let tokens = self.tokens.lock().ok()?;
        let now = Instant::now();
        tokens
            .get(authority)?
            .iter()
            .find(|t| t.expires > now)
            .map(|t| t.header.clone())
    }

    /// Drops a cached `Authorization` value the endpoint refused (from the store too).
    pub fn forget(&self, authority: &str, header: &str) {
        if let Some(store) = &self.store
            && header.starts_with("Bearer ")
        {
            store.update(authority, |e| e.tokens.retain(|t| t.header != header));
        }
        if let Ok(mut tokens) = self.tokens.lock()
            && let Some(list) = tokens.get_mut(authority)
        {
            list.retain(|t| t.header != header);
        }
        if let Ok(mut basic) = self.basic.lock()
            && basic.get(authority).is_some_and(|h| h == header)
        {
            basic.remove(authority);
        }
    }

    fn flight(&self, authority: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.flights.lock() {
            Ok(mut f) => f.entry(authority.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Answers the challenges of a 401: a bearer token (fetched with the credentials if any,
    /// for the scope needed plus the scopes the challenge names; one fetch at a time per
    /// endpoint, and a token another request fetched meanwhile is reused), or basic auth.
    /// Returns the `Authorization` value to retry with. `pick_client` chooses the HTTP
    /// client for the token realm URL.
    pub async fn answer(
        &self,
        req: AuthRequest<'_>,
        pick_client: impl Fn(&reqwest::Url) -> Result<reqwest::Client, RegistryError>,
    ) -> Result<String, RegistryError> {
        if let Some(bearer) = req.challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = bearer
                .params
                .get("realm")
                .filter(|r| !r.is_empty())
                .ok_or_else(|| RegistryError::Challenge {
                    registry: req.repository.to_string(),
                    reason: "Bearer challenge without realm".into(),
                })?;
            let flight = self.flight(req.authority);
            let _one_at_a_time = flight.lock().await;
            if !req.scope.is_empty()
                && let Some(header) = self.cached(req.authority, req.scope)
                && Some(header.as_str()) != req.rejected
            {
                return Ok(header);
            }
            if let Some(rejected) = req.rejected {
                self.forget(req.authority, rejected);
            }
            let mut scopes: BTreeSet<String> = BTreeSet::new();
            if !req.scope.is_empty() {
                scopes.insert(req.scope.to_string());
            }
            if let Some(extra) = bearer.params.get("scope") {
                scopes.extend(
                    extra
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                );
            }
            let (header, lifetime) = fetch_token(
                &TokenQuery {
                    realm,
                    service: bearer.params.get("service").map(String::as_str),
                    scopes: &scopes,
                    creds: req.creds,
                    registry: req.registry,
                    repository: req.repository,
                },
                &pick_client,
            )
            .await?;
            // The lifetime counts from receipt rather than the server's `issued_at`: no clock
            // skew, and the slack covers the request's latency.
            let lifetime = lifetime.saturating_sub(TOKEN_EXPIRY_SLACK).max(1);
            let expires = Instant::now() + Duration::from_secs(lifetime);
            let challenge = StoredChallenge {
                realm: realm.clone(),
                service: bearer.params.get("service").cloned(),
            };
            let changed = self.challenges.lock().is_ok_and(|mut c| {
                c.insert(req.authority.to_string(), challenge.clone()) != Some(challenge.clone())
            });
            let keep = req.creds.is_none() || self.store_credentialed;
            if let Some(store) = &self.store
                && (keep || changed)
            {
                let stored = StoredToken {
                    header: header.clone(),
                    scopes: scopes.iter().cloned().collect(),
                    expires: unix_now() + lifetime,
                };
                store.update(req.authority, |e| {
                    e.challenge = Some(challenge);
                    if keep {
                        let now = unix_now();
                        e.tokens
                            .retain(|t| t.expires > now && t.scopes != stored.scopes);
                        e.tokens.push(stored);
                    }
                });
            }
            if let Ok(mut tokens) = self.tokens.lock() {
                tokens
                    .entry(req.authority.to_string())
                    .or_default()
                    .push(CachedToken {
                        header: header.clone(),
                        scopes,
                        expires,
                    });
            }
            return Ok(header);
        }
        if req.challenges.iter().any(|c| c.scheme == "basic") {
            let creds = req
                .creds
                .filter(|c| !c.username.is_empty() || !c.password.is_empty())
                .ok_or_else(|| RegistryError::Unauthorized {
                    repository: req.repository.to_string(),
                    registry: req.registry.to_string(),
                    reason: format!(
                        "the registry asks for a user name and password and none were found for {}",
                        req.registry
                    ),
                    detail: String::new(),
                })?;
            let header = creds.basic_header();
            if req.rejected == Some(header.as_str()) {
                return Err(refused(req.registry, req.repository, String::new()));
            }
            if let Ok(mut basic) = self.basic.lock() {
                basic.insert(req.authority.to_string(), header.clone());
            }
            return Ok(header);
        }
        let schemes: Vec<&str> = req.challenges.iter().map(|c| c.scheme.as_str()).collect();
        Err(RegistryError::Challenge {
            registry: req.repository.to_string(),
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

/// The error for credentials the registry or its token server refused.
pub(crate) fn refused(registry: &str, repository: &str, detail: String) -> RegistryError {
    RegistryError::Unauthorized {
        repository: repository.to_string(),
        registry: registry.to_string(),
        reason: format!(
            "the credentials for {registry} were refused (incorrect username or password, or an expired token)"
        ),
        detail,
    }
}

struct TokenQuery<'a> {
    realm: &'a str,
    service: Option<&'a str>,
    scopes: &'a BTreeSet<String>,
    creds: Option<&'a Credentials>,
    registry: &'a str,
    repository: &'a str,
}

/// Form-encodes `pairs` (`a=b&c=d`).
fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn encode(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(&mut out, k);
        out.push('=');
        encode(&mut out, v);
    }
    out
}

/// Fetches a token from the realm: with an identity token the OAuth2 POST
/// (`grant_type=refresh_token`); else a GET (with basic credentials when known), falling back
/// to the OAuth2 POST with `grant_type=password` when the server does not take GETs.
/// Returns the `Authorization` value and the token lifetime in seconds.
async fn fetch_token(
    q: &TokenQuery<'_>,
    pick_client: &impl Fn(&reqwest::Url) -> Result<reqwest::Client, RegistryError>,
) -> Result<(String, u64), RegistryError> {
    let fail = |reason: String| RegistryError::Token {
        realm: q.realm.to_string(),
        reason,
    };
    let url = reqwest::Url::parse(q.realm).map_err(|e| fail(format!("invalid realm URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail("realm is not an http(s) URL".to_string()));
    }
    let client = pick_client(&url)?;
    let scope = q.scopes.iter().cloned().collect::<Vec<_>>().join(" ");
    let mut form: Vec<(&str, &str)> = vec![("client_id", CLIENT_ID)];
    if let Some(service) = q.service.filter(|s| !s.is_empty()) {
        form.push(("service", service));
    }
    if !scope.is_empty() {
        form.push(("scope", &scope));
    }
    let (status, body) = match q.creds {
        Some(creds) if creds.identity_token.is_some() => {
            let token = creds.identity_token.as_deref().unwrap_or_default();
            form.push(("grant_type", "refresh_token"));
            form.push(("refresh_token", token));
            post_form(&client, &url, &form, &fail).await?
        }
        _ => {
            let mut get_url = url.clone();
            {
                let mut query = get_url.query_pairs_mut();
                if let Some(service) = q.service.filter(|s| !s.is_empty()) {
                    query.append_pair("service", service);
                }
                for s in q.scopes {
                    query.append_pair("scope", s);
                }
                if let Some(c) = q.creds.filter(|c| !c.username.is_empty()) {
                    query.append_pair("account", &c.username);
                }
            }
            let mut request = client.get(get_url);
            if let Some(c) = q.creds {
                request = request.header(reqwest::header::AUTHORIZATION, c.basic_header());
            }
            let response = request
                .send()
                .await
                .map_err(|e| fail(error_chain(&e.without_url())))?;
            let (status, body) = read_small(response, &fail).await?;
            match q.creds {
                Some(c) if matches!(status, 404 | 405) && !c.username.is_empty() => {
                    form.push(("grant_type", "password"));
                    form.push(("username", &c.username));
                    form.push(("password", &c.password));
                    post_form(&client, &url, &form, &fail).await?
                }
                _ => (status, body),
            }
        }
    };
    if !(200..300).contains(&status) {
        let detail = format!(
            ": token server {} answered HTTP {status}{}",
            q.realm,
            describe_error_body(&body)
        );
        if matches!(status, 401 | 403) {
            return Err(match q.creds {
                Some(_) => refused(q.registry, q.repository, detail),
                None => RegistryError::Unauthorized {
                    repository: q.repository.to_string(),
                    registry: q.registry.to_string(),
                    reason: format!(
                        "the repository may not exist, or it needs credentials and none were found for {}",
                        q.registry
                    ),
                    detail,
                },
            });
        }
        return Err(fail(format!("HTTP {status}{}", describe_error_body(&body))));
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

/// The OAuth2 client id sent with token requests.
const CLIENT_ID: &str = "strata";

async fn post_form(
    client: &reqwest::Client,
    url: &reqwest::Url,
    form: &[(&str, &str)],
    fail: &impl Fn(String) -> RegistryError,
) -> Result<(u16, Vec<u8>), RegistryError> {
    let response = client
        .post(url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form_encode(form))
        .send()
        .await
        .map_err(|e| fail(error_chain(&e.without_url())))?;
    read_small(response, fail).await
}

async fn read_small(
    mut response: reqwest::Response,
    fail: &impl Fn(String) -> RegistryError,
) -> Result<(u16, Vec<u8>), RegistryError> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fail(error_chain(&e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
            return Err(fail("token response larger than 1 MiB".to_string()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_origin_is_remembered_between_caches_for_a_week() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuthStore::new(dir.path().join("strata").join("auth"));
        let first = AuthCache::new(Some(store.clone()), false);
        first.set_blob_origin("r.example:5000", "https://cdn.example");
        let second = AuthCache::new(Some(store.clone()), false);
        assert_eq!(
            second.blob_origin("r.example:5000").as_deref(),
            Some("https://cdn.example")
        );
        // Recorded more than a week ago, or by a strata that kept no time: not used.
        store.update("r.example:5000", |e| {
            e.blob_origin_seen = unix_now() - BLOB_ORIGIN_TTL - 1;
        });
        let third = AuthCache::new(Some(store), false);
        assert_eq!(third.blob_origin("r.example:5000"), None);
    }

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

    fn challenge(scope: Option<&str>) -> Vec<Challenge> {
        let mut params = HashMap::new();
        params.insert("realm".to_string(), "http://127.0.0.1:1/token".to_string());
        if let Some(s) = scope {
            params.insert("scope".to_string(), s.to_string());
        }
        vec![Challenge {
            scheme: "bearer".to_string(),
            params,
        }]
    }

    #[test]
    fn cache_matches_scopes_and_expires() {
        let cache = AuthCache::default();
        cache.tokens.lock().unwrap().insert(
            "h".into(),
            vec![
                CachedToken {
                    header: "Bearer a".into(),
                    scopes: ["repository:a:pull", "repository:b:pull"]
                        .into_iter()
                        .map(String::from)
                        .collect(),
                    expires: Instant::now() + Duration::from_secs(60),
                },
                CachedToken {
                    header: "Bearer old".into(),
                    scopes: ["repository:c:pull".to_string()].into_iter().collect(),
                    expires: Instant::now() - Duration::from_secs(1),
                },
            ],
        );
        assert_eq!(
            cache.cached("h", "repository:a:pull").as_deref(),
            Some("Bearer a")
        );
        assert_eq!(
            cache.cached("h", "repository:b:pull").as_deref(),
            Some("Bearer a")
        );
        assert_eq!(cache.cached("h", "repository:c:pull"), None, "expired");
        assert_eq!(cache.cached("other", "repository:a:pull"), None);
        cache.forget("h", "Bearer a");
        assert_eq!(cache.cached("h", "repository:a:pull"), None);
    }

    #[tokio::test]
    async fn a_token_fetched_meanwhile_is_reused() {
        let cache = AuthCache::default();
        cache.tokens.lock().unwrap().insert(
            "h".into(),
            vec![CachedToken {
                header: "Bearer fresh".into(),
                scopes: ["repository:a:pull".to_string()].into_iter().collect(),
                expires: Instant::now() + Duration::from_secs(60),
            }],
        );
        let challenges = challenge(Some("repository:a:pull"));
        let req = |rejected| AuthRequest {
            challenges: &challenges,
            authority: "h",
            scope: "repository:a:pull",
            rejected,
            creds: None,
            registry: "h",
            repository: "h/a",
        };
        // The 401 answered an older token: the fresh one is used without a token request
        // (the realm is a dead port, so a request would fail).
        let header = cache
            .answer(req(Some("Bearer stale")), |_| Ok(reqwest::Client::new()))
            .await
            .unwrap();
        assert_eq!(header, "Bearer fresh");
        // The fresh token itself was refused: a new one is fetched (and fails here).
        let _ = rustls::crypto::ring::default_provider().install_default();
        assert!(
            cache
                .answer(req(Some("Bearer fresh")), |_| Ok(reqwest::Client::new()))
                .await
                .is_err()
        );
        assert_eq!(cache.cached("h", "repository:a:pull"), None);
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form_encode(&[
                ("scope", "repository:a/b:pull repository:c:pull"),
                ("x", "&=")
            ]),
            "scope=repository%3Aa%2Fb%3Apull+repository%3Ac%3Apull&x=%26%3D"
        );
    }
}

//! The registry client: its shared state (credentials, tokens, preferred endpoints) and the
//! HTTP clients per registry authority with their TLS files.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use super::auth;
use super::auth_store::AuthStore;
use super::config::{CONNECT_TIMEOUT, DEFAULT_STALL_TIMEOUT, DEFAULT_USER_AGENT, RegistryConfig};
use super::credentials::{self, Credentials};
use super::endpoint;
use super::error::{RegistryError, error_chain};
use super::tls;

/// A registry client; cheap to clone (shared state inside).
#[derive(Clone)]
pub struct RegistryClient {
    /// The state its clones share.
    pub(super) inner: Arc<Inner>,
}

/// An HTTP client for one registry authority.
#[derive(Clone)]
pub(super) struct HttpClient {
    /// The client.
    pub(super) client: reqwest::Client,
    /// The CA files it trusts beyond the system roots.
    pub(super) ca_files: Arc<Vec<PathBuf>>,
    /// Whether it presents a client certificate.
    pub(super) has_identity: bool,
}

/// A client's shared state.
pub(super) struct Inner {
    /// The settings.
    pub(super) config: RegistryConfig,
    user_agent: String,
    creds: credentials::DockerConfig,
    /// Registry host -> credentials looked up (a helper runs once per host).
    creds_cache: tokio::sync::Mutex<HashMap<String, Option<Credentials>>>,
    /// Tokens and basic credentials per endpoint.
    pub(super) auth: auth::AuthCache,
    /// Registry host -> base URL of the endpoint that answered last.
    pub(super) preferred: Mutex<HashMap<String, String>>,
    /// Authorities connections were opened to ahead of a pull's first request (see `warm`).
    pub(super) warmed: Mutex<HashSet<String>>,
    /// Authorities that answered at least once: only their connection failures are retried.
    reached: Mutex<HashSet<String>>,
    /// (authority, skip verification) -> HTTP client with that authority's TLS files.
    clients: Mutex<HashMap<(String, bool), HttpClient>>,
    /// Authority -> whether a certs dir has a CA for it.
    ca_known: Mutex<HashMap<String, bool>>,
    /// Clients without per-registry TLS files (token realms, fallbacks), made on first use:
    /// loading the system's CA roots takes milliseconds that a command finding its image
    /// present need not spend.
    plain: OnceLock<HttpClient>,
    plain_insecure: OnceLock<HttpClient>,
    /// Blobs that may be fetched in ranges at once (the others stream): bounds the chunk
    /// buffers of a pull of several large layers.
    pub(super) ranged_slots: Arc<tokio::sync::Semaphore>,
}

/// Large blobs fetched in ranges at once per client: one, so that the chunk buffers (at most
/// `max_chunks - 1` chunks queued behind the one being read) stay within a pull's memory
/// budget (peak RSS under 64 MiB); other large blobs stream meanwhile.
const RANGED_BLOBS_AT_ONCE: usize = 1;

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.inner.config)
            .field("creds", &self.inner.creds)
            .finish_non_exhaustive()
    }
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
        let auth = auth::AuthCache::new(
            config.auth_cache_dir.clone().map(AuthStore::new),
            config.auth_cache_credentials,
        );
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                config,
                user_agent,
                creds,
                creds_cache: tokio::sync::Mutex::new(HashMap::new()),
                auth,
                preferred: Mutex::new(HashMap::new()),
                warmed: Mutex::new(HashSet::new()),
                reached: Mutex::new(HashSet::new()),
                clients: Mutex::new(HashMap::new()),
                ca_known: Mutex::new(HashMap::new()),
                plain: OnceLock::new(),
                plain_insecure: OnceLock::new(),
                ranged_slots: Arc::new(tokio::sync::Semaphore::new(RANGED_BLOBS_AT_ONCE)),
            }),
        })
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Whether a certs dir has a CA certificate for `authority` (cached).
    pub(super) fn has_ca(&self, authority: &str) -> bool {
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

    /// Records that `authority` answered a request.
    pub(super) fn mark_reached(&self, authority: &str) {
        if let Ok(mut reached) = self.inner.reached.lock()
            && !reached.contains(authority)
        {
            reached.insert(authority.to_string());
        }
    }

    /// Whether `authority` answered a request before: a connection it then refuses is a
    /// fault worth retrying, while one never reached is unreachable (as Docker, fail at once).
    pub(super) fn was_reached(&self, authority: &str) -> bool {
        self.inner
            .reached
            .lock()
            .is_ok_and(|reached| reached.contains(authority))
    }

    /// The HTTP client for an authority: with its certs dir files, if it has any.
    pub(super) fn http_client(
        &self,
        authority: &str,
        skip_verify: bool,
    ) -> Result<HttpClient, RegistryError> {
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

    /// Credentials for a registry host (config.json or a credential helper, looked up once).
    pub(super) async fn credentials(
        &self,
        host: &str,
    ) -> Result<Option<Credentials>, RegistryError> {
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
    pub(super) fn client_for_url(
        &self,
        url: &reqwest::Url,
    ) -> Result<reqwest::Client, RegistryError> {
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
    let mut has_identity = false;
    if let Some(files) = files {
        if !skip_verify && !files.roots.is_empty() {
            builder = builder.tls_certs_merge(files.roots);
        }
        if let Some(identity) = files.identity {
            builder = builder.identity(identity);
            has_identity = true;
        }
        ca_files = files.ca_files;
    }
    let client = builder
        .build()
        .map_err(|e| RegistryError::Client(error_chain(&e.without_url())))?;
    Ok(HttpClient {
        client,
        ca_files: Arc::new(ca_files),
        has_identity,
    })
}

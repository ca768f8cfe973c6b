//! Requests to a registry: endpoints in order (mirrors first), retries, answering 401s, and
//! wording transport and TLS failures.

use std::time::SystemTime;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, RANGE, RETRY_AFTER, WWW_AUTHENTICATE};

use super::auth;
use super::client::{HttpClient, RegistryClient};
use super::endpoint::{self, Endpoint};
use super::error::{
    RegistryError, Target, TlsProblem, error_chain, error_from_response, header_str,
    read_error_detail,
};
use super::retry::{self, Attempt, RetryPolicy};
use super::tls;
use crate::reference::Reference;

/// Where a response came from: the endpoint and the URL asked (before redirects).
#[derive(Debug, Clone)]
pub(super) struct Source {
    /// The endpoint that answered.
    pub(super) endpoint: Endpoint,
    /// The URL asked.
    pub(super) url: String,
}

/// Why one endpoint did not answer.
pub(super) enum AttemptError {
    /// Connection, timeout or protocol failure (already worded, URL included).
    Transport {
        /// What happened.
        message: String,
        /// Worth retrying (timeouts, resets; refusals only by an endpoint that answered before).
        retriable: bool,
    },
    /// A failure worth reporting as is (auth, TLS trust).
    Registry(RegistryError),
}

/// The bytes a request asks for: `Range: bytes=START-` or `bytes=START-END` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ByteRange {
    /// First byte.
    pub(super) start: u64,
    /// Last byte, inclusive (`None`: to the end).
    pub(super) end: Option<u64>,
}

impl ByteRange {
    /// `bytes=START-` (a resumption).
    pub(super) fn from(start: u64) -> ByteRange {
        ByteRange { start, end: None }
    }

    /// The `Range` header's value.
    pub(super) fn header(self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{end}", self.start),
            None => format!("bytes={}-", self.start),
        }
    }
}

/// The token scope for pulling from `reference`'s repository.
pub(super) fn pull_scope(reference: &Reference) -> String {
    format!("repository:{}:pull", reference.repository)
}

impl RegistryClient {
    /// The endpoints for `registry`, the one that answered last first.
    pub(super) fn ordered_endpoints(&self, registry: &str) -> Result<Vec<Endpoint>, RegistryError> {
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
        } else {
            // An insecure registry that answered over plain HTTP last time (auth cache): try
            // that first, as a probe, so that its HTTPS probe costs no round trip.
            for i in 1..eps.len() {
                let (probe, plain) = (&eps[i - 1], &eps[i]);
                if probe.probe
                    && probe.authority == plain.authority
                    && plain.base.starts_with("http://")
                    && self.inner.auth.plain_http(&plain.authority)
                {
                    eps.swap(i - 1, i);
                    eps[i - 1].probe = true;
                    eps[i].probe = false;
                }
            }
        }
        Ok(eps)
    }

    /// GET `/v2/<repository>/<path>` on the first endpoint that answers successfully.
    /// Returns the response and where it came from.
    pub(super) async fn get(
        &self,
        reference: &Reference,
        path: &str,
        accept: Option<&str>,
        target: Target<'_>,
        range: Option<ByteRange>,
    ) -> Result<(reqwest::Response, Source), RegistryError> {
        let mut attempts: Vec<String> = Vec::new();
        let mut eps = self.ordered_endpoints(&reference.registry)?.into_iter();
        let mut outcomes = Vec::new();
        while let Some(ep) = eps.next() {
            let url_of =
                |ep: &Endpoint| format!("{}/v2/{}/{}", ep.base, reference.repository, path);
            let url = url_of(&ep);
            let plain = eps.as_slice().first().filter(|next| {
                ep.probe
                    && ep.base.starts_with("https://")
                    && next.base.starts_with("http://")
                    && next.authority == ep.authority
            });
            if let Some(plain) = plain.cloned() {
                eps.next();
                let plain_url = url_of(&plain);
                outcomes.extend(
                    self.race_schemes((ep, url), (plain, plain_url), reference, accept, range)
                        .await,
                );
            } else {
                let outcome = self
                    .request(&ep, reference, &url, accept, range, false)
                    .await;
                outcomes.push((ep, url, outcome));
            }
            for (ep, url, outcome) in outcomes.drain(..) {
                let err = match outcome {
                    // A range the server refuses is the caller's to handle (no body to waste).
                    Ok(response)
                        if response.status().is_success()
                            || (range.is_some()
                                && response.status()
                                    == reqwest::StatusCode::RANGE_NOT_SATISFIABLE) =>
                    {
                        if let Ok(mut preferred) = self.inner.preferred.lock() {
                            preferred.insert(reference.registry.clone(), ep.base.clone());
                        }
                        if !ep.mirror {
                            let plain = ep.base.starts_with("http://");
                            self.inner.auth.set_plain_http(&ep.authority, plain);
                        }
                        return Ok((response, Source { endpoint: ep, url }));
                    }
                    // Plain HTTP tried first (the auth cache said so) on what is now an HTTPS
                    // port: Go's servers answer 400. On to HTTPS.
                    Ok(response)
                        if ep.probe
                            && ep.base.starts_with("http://")
                            && response.status() == reqwest::StatusCode::BAD_REQUEST =>
                    {
                        self.inner.auth.set_plain_http(&ep.authority, false);
                        attempts.push(format!("{url}: HTTP 400 over plain HTTP"));
                        continue;
                    }
                    Ok(response) => error_from_response(response, &url, reference, target).await,
                    Err(AttemptError::Registry(err)) => err,
                    Err(AttemptError::Transport { message, .. }) => {
                        if ep.mirror && !ep.probe {
                            tracing::warn!(
                                "mirror {} failed: {message}; trying the next endpoint",
                                ep.base
                            );
                        }
                        attempts.push(message);
                        continue;
                    }
                };
                // The registry's answer is final; a mirror's makes way for the next endpoint.
                if !ep.mirror {
                    return Err(err);
                }
                tracing::warn!("mirror {} failed: {err}; trying the next endpoint", ep.base);
                attempts.push(format!("{url}: {err}"));
            }
        }
        Err(RegistryError::Unreachable {
            registry: reference.registry.clone(),
            attempts: attempts.join("; "),
        })
    }

    /// The first contact with an insecure registry: HTTPS (unverified) and plain HTTP asked at
    /// once rather than one after the other, so that the probe costs no round trip. Returns
    /// the outcomes to handle, in the order the sequential probe would have had them: HTTPS
    /// alone when it answered; plain HTTP alone when it answered something other than 400
    /// (what a TLS port says to plain HTTP), the port then speaking plain HTTP; else both.
    async fn race_schemes(
        &self,
        (tls, tls_url): (Endpoint, String),
        (plain, plain_url): (Endpoint, String),
        reference: &Reference,
        accept: Option<&str>,
        range: Option<ByteRange>,
    ) -> Vec<(Endpoint, String, Result<reqwest::Response, AttemptError>)> {
        let conclusive = |r: &Result<reqwest::Response, AttemptError>| {
            r.as_ref()
                .is_ok_and(|r| r.status() != reqwest::StatusCode::BAD_REQUEST)
        };
        // Which outcomes count: HTTPS's, plain HTTP's, or both (HTTPS's first).
        enum Pick<R> {
            Tls(R),
            Plain(R),
            Both(R, R),
        }
        let pick = {
            let tls_fut = self.request(&tls, reference, &tls_url, accept, range, false);
            // Without a cached token: the port may speak TLS, and a token must not cross the
            // network in clear text to find out.
            let plain_fut = self.request(&plain, reference, &plain_url, accept, range, true);
            tokio::pin!(tls_fut, plain_fut);
            tokio::select! {
                t = &mut tls_fut => {
                    if t.is_ok() {
                        Pick::Tls(t)
                    } else {
                        let p = plain_fut.await;
                        if conclusive(&p) { Pick::Plain(p) } else { Pick::Both(t, p) }
                    }
                }
                p = &mut plain_fut => {
                    if conclusive(&p) {
                        Pick::Plain(p)
                    } else {
                        let t = tls_fut.await;
                        if t.is_ok() { Pick::Tls(t) } else { Pick::Both(t, p) }
                    }
                }
            }
        };
        match pick {
            Pick::Tls(t) => vec![(tls, tls_url, t)],
            Pick::Plain(p) => vec![(plain, plain_url, p)],
            Pick::Both(t, p) => vec![(tls, tls_url, t), (plain, plain_url, p)],
        }
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
        range: Option<ByteRange>,
        bare: bool,
    ) -> Result<reqwest::Response, AttemptError> {
        let policy = if ep.mirror || ep.probe {
            RetryPolicy::none()
        } else {
            self.inner.config.retry
        };
        // A failure is the response (429, 5xx) or the transport error, returned as is when no
        // retry is left.
        retry::retry(
            &policy,
            &mut 0,
            || async move {
                match self
                    .attempt_as(ep, reference, url, accept, range, bare)
                    .await
                {
                    Ok(response) if retry::retriable_status(response.status().as_u16()) => {
                        let retry_after = header_str(response.headers(), RETRY_AFTER.as_str())
                            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
                        if retry_after.is_some_and(|d| d > retry::MAX_RETRY_AFTER) {
                            return Attempt::Done(Ok(response));
                        }
                        Attempt::Failed(Ok(response), retry_after)
                    }
                    Err(
                        e @ AttemptError::Transport {
                            retriable: true, ..
                        },
                    ) => Attempt::Failed(Err(e), None),
                    other => Attempt::Done(other),
                }
            },
            |failure, retrying| {
                // A transport message names the URL already.
                match failure {
                    Ok(response) => {
                        format!(
                            "{url}: HTTP {}; retrying {retrying}",
                            response.status().as_u16()
                        )
                    }
                    Err(AttemptError::Transport { message, .. }) => {
                        format!("{message}; retrying {retrying}")
                    }
                    Err(AttemptError::Registry(e)) => format!("{url}: {e}; retrying {retrying}"),
                }
            },
        )
        .await
        .unwrap_or_else(|failure| failure)
    }

    /// One request to one endpoint (with a `Range` header when `range`), answering a 401
    /// once.
    pub(super) async fn attempt(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        url: &str,
        accept: Option<&str>,
        range: Option<ByteRange>,
    ) -> Result<reqwest::Response, AttemptError> {
        self.attempt_as(ep, reference, url, accept, range, false)
            .await
    }

    /// [`RegistryClient::attempt`]; `bare`: the first request goes without any cached or
    /// ahead-fetched `Authorization` (only a 401 is answered).
    async fn attempt_as(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        url: &str,
        accept: Option<&str>,
        range: Option<ByteRange>,
        bare: bool,
    ) -> Result<reqwest::Response, AttemptError> {
        let http = self
            .http_client(&ep.authority, ep.skip_verify)
            .map_err(AttemptError::Registry)?;
        let scope = pull_scope(reference);
        let mut cached = if bare {
            None
        } else {
            self.inner.auth.cached(&ep.authority, &scope)
        };
        if !bare
            && cached.is_none()
            && let Some(challenge) = self.inner.auth.known_challenge(&ep.authority)
        {
            cached = self.token_ahead(ep, reference, &scope, challenge).await;
        }
        let response = self
            .send(&http, ep, url, accept, cached.as_deref(), range)
            .await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            if cached.is_none() && response.status().is_success() {
                self.inner.auth.no_challenge(&ep.authority);
            }
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

    /// A token fetched before the first request, for an endpoint whose bearer challenge is
    /// known (saves the 401's round trip). `None` when it cannot be had: the request then goes
    /// without, and its 401 is answered as usual.
    async fn token_ahead(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        scope: &str,
        challenge: auth::Challenge,
    ) -> Option<String> {
        let creds = self.credentials(&ep.creds_host).await.ok()?;
        let repository = reference.repo_name();
        let answered = self
            .inner
            .auth
            .answer(
                auth::AuthRequest {
                    challenges: &[challenge],
                    authority: &ep.authority,
                    scope,
                    rejected: None,
                    creds: creds.as_ref(),
                    registry: &ep.creds_host,
                    repository: &repository,
                },
                |u| self.client_for_url(u),
            )
            .await;
        match answered {
            Ok(header) => Some(header),
            Err(e) => {
                tracing::debug!("token for {repository} before the first request: {e}");
                None
            }
        }
    }

    /// Sends one GET; failures are worded (TLS trust problems as [`RegistryError::Tls`]).
    pub(super) async fn send(
        &self,
        http: &HttpClient,
        ep: &Endpoint,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
        range: Option<ByteRange>,
    ) -> Result<reqwest::Response, AttemptError> {
        let mut req = http.client.get(url);
        if let Some(accept) = accept {
            req = req.header(ACCEPT, accept);
        }
        if let Some(authorization) = authorization {
            req = req.header(AUTHORIZATION, authorization);
        }
        if let Some(range) = range {
            req = req.header(RANGE, range.header());
        }
        tracing::debug!(
            "GET {url}{}",
            range.map_or(String::new(), |r| format!(" {}", r.header()))
        );
        let err = match req.send().await {
            Ok(response) => {
                self.mark_reached(&ep.authority);
                tracing::debug!("GET {url}: {}", response.status());
                self.note_redirect(ep, url, response.url());
                return Ok(response);
            }
            Err(e) => e,
        };
        let certs_dirs = &self.inner.config.certs_dirs;
        match tls::tls_failure(&err) {
            Some(tls::TlsFailure::Untrusted(reason)) => {
                Err(AttemptError::Registry(RegistryError::Tls {
                    registry: ep.authority.clone(),
                    problem: TlsProblem::Untrusted,
                    certs_dir: tls::registry_dir(certs_dirs, &ep.authority),
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
                    problem: TlsProblem::Refused,
                    certs_dir: tls::registry_dir(certs_dirs, &ep.authority),
                    message: tls::handshake_message(&ep.authority, &reason, certs_dirs),
                }))
            }
            Some(tls::TlsFailure::Other(reason)) => Err(AttemptError::Transport {
                message: format!("{url}: TLS: {reason}"),
                retriable: false,
            }),
            None if !http.has_identity
                && !err.is_connect()
                && !err.is_timeout()
                && url.starts_with("https://")
                && asks_for_client_cert(url).await =>
            {
                Err(AttemptError::Registry(RegistryError::Tls {
                    registry: ep.authority.clone(),
                    problem: TlsProblem::Refused,
                    certs_dir: tls::registry_dir(certs_dirs, &ep.authority),
                    message: tls::handshake_message(
                        &ep.authority,
                        "the registry asks for a client certificate and none is configured (it closed the connection)",
                        certs_dirs,
                    ),
                }))
            }
            None => {
                // Refused, no such host: retrying a registry never reached only delays the
                // error (Docker fails at once); after it answered, a refusal may be a restart.
                let retriable = if err.is_connect() {
                    self.was_reached(&ep.authority)
                } else {
                    err.is_timeout() || err.is_request()
                };
                Err(AttemptError::Transport {
                    message: format!("{url}: {}", error_chain(&err.without_url())),
                    retriable,
                })
            }
        }
    }
}

impl RegistryClient {
    /// Remembers the origin a request to `ep` was redirected to (a blob host, as Docker Hub's
    /// CDN), so that the next pull opens a connection to it ahead (see `warm`).
    fn note_redirect(&self, ep: &Endpoint, asked: &str, answered: &reqwest::Url) {
        let Ok(asked) = reqwest::Url::parse(asked) else {
            return;
        };
        if asked.origin() != answered.origin() && answered.origin().is_tuple() {
            let origin = answered.origin().ascii_serialization();
            self.inner.auth.set_blob_origin(&ep.authority, &origin);
        }
    }
}

/// Whether the HTTPS server of `url` asks for a client certificate (see `tls_probe`): asked
/// only after a request failed without an answer.
async fn asks_for_client_cert(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            super::tls_probe::asks_for_client_cert(host, port).await
        }
        _ => false,
    }
}

/// The challenges of a 401's `WWW-Authenticate` headers.
pub(super) fn challenges_of(headers: &HeaderMap) -> Vec<auth::Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(auth::parse_challenges)
        .collect()
}

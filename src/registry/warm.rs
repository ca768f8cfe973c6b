//! Connections opened ahead of a pull's requests. Over HTTP/1.1 each request in flight needs
//! a connection of its own, and a new one costs the TCP (and TLS) handshake before its first
//! request: opened while the first requests (or the token request they wait for) are under
//! way, they are idle in the pool by the time the config and the first layers are asked for
//! at once. reqwest has no connect-only call, so each is opened by a `HEAD` that needs no
//! token (`/v2/` on the registry, `/` on the blob host it redirected to last time), its
//! answer thrown away.

use super::client::RegistryClient;
use super::config::CONNECT_TIMEOUT;
use super::request::pull_scope;
use crate::reference::Reference;

/// Connections opened ahead to the registry when the first request waits for a token, and
/// to the blob host remembered: one for the config, one for the first layer.
const AHEAD: usize = 2;

impl RegistryClient {
    /// Opens connections to the endpoint `reference`'s first request goes to (once per
    /// authority and client), and to the blob host it redirected to last time; returns at
    /// once. The first request itself opens one connection: one more is opened unless that
    /// request waits for a token first (then two).
    pub fn warm_up(&self, reference: &Reference) {
        let Ok(eps) = self.ordered_endpoints(&reference.registry) else {
            return;
        };
        // The HTTPS probe of an insecure registry races a plain HTTP request: warm that one.
        let race = match eps.as_slice() {
            [tls, plain, ..] => {
                tls.probe
                    && tls.base.starts_with("https://")
                    && plain.base.starts_with("http://")
                    && plain.authority == tls.authority
            }
            _ => false,
        };
        let Some(ep) = eps.get(usize::from(race)) else {
            return;
        };
        let first_contact = self
            .inner
            .warmed
            .lock()
            .is_ok_and(|mut warmed| warmed.insert(ep.authority.clone()));
        if !first_contact {
            return;
        }
        let Ok(http) = self.http_client(&ep.authority, ep.skip_verify) else {
            return;
        };
        let auth = &self.inner.auth;
        let waits_for_token = auth.cached(&ep.authority, &pull_scope(reference)).is_none()
            && auth.known_challenge(&ep.authority).is_some();
        let registry = if waits_for_token { AHEAD } else { 1 };
        // A token of another repository answers `/v2/` (no 401), where requests may carry
        // one (not on the plain HTTP side of a probe, which goes bare).
        let token = (!race).then(|| auth.any_token(&ep.authority)).flatten();
        let stall = self.inner.config.stall_timeout;
        let mut urls = vec![(format!("{}/v2/", ep.base), token); registry];
        if let Some(origin) = auth.blob_origin(&ep.authority) {
            urls.extend(std::iter::repeat_n((format!("{origin}/"), None), AHEAD));
        }
        for (url, token) in urls {
            let mut head = http.client.head(&url);
            if let Some(token) = token {
                head = head.header(reqwest::header::AUTHORIZATION, token);
            }
            tokio::spawn(async move {
                let head = head.send();
                match tokio::time::timeout(CONNECT_TIMEOUT + stall, head).await {
                    Ok(Ok(response)) => {
                        tracing::debug!("HEAD {url} (connection ahead): {}", response.status());
                    }
                    Ok(Err(e)) => tracing::debug!("HEAD {url} (connection ahead): {e}"),
                    Err(_) => tracing::debug!("HEAD {url} (connection ahead): timed out"),
                }
            });
        }
    }
}

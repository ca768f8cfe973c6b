//! Checking credentials against a registry, the way `docker login` does.

use super::auth;
use super::client::RegistryClient;
use super::credentials::{self, Credentials};
use super::endpoint;
use super::error::{RegistryError, error_for_login, read_error_detail};
use super::request::{AttemptError, challenges_of};

impl RegistryClient {
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
}

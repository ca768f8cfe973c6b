//! Command-line hints for library errors: the library says what is wrong, the CLI adds what
//! to type about it (`strata login`, `--certs-dir`, `--insecure-registry`).

use strata::registry::{DOCKER_CERTS_DIR, RegistryError, TlsProblem};

/// `message`, the description of `err`'s chain, with the hint for the registry error in that
/// chain (if any) placed where it belongs in that error's own text.
pub fn add(message: String, err: &anyhow::Error) -> String {
    let Some(registry_err) = err.chain().find_map(registry_error) else {
        return message;
    };
    let text = registry_err.to_string();
    let Some((offset, hint)) = hint(registry_err, &text) else {
        return message;
    };
    match message.find(&text) {
        Some(at) => {
            let at = at + offset;
            format!("{}{hint}{}", &message[..at], &message[at..])
        }
        None => message + &hint,
    }
}

/// The registry error a cause is.
fn registry_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a RegistryError> {
    cause.downcast_ref::<RegistryError>()
}

/// The hint for `err` (whose text is `text`) and the byte offset in `text` it goes at.
fn hint(err: &RegistryError, text: &str) -> Option<(usize, String)> {
    match err {
        RegistryError::Unauthorized { registry, .. } => Some((
            text.len(),
            format!(
                "; log in with `strata login {registry}` (strata reads Docker's config.json and credential helpers)"
            ),
        )),
        RegistryError::TooManyRequests { .. } => {
            const LOG_IN: &str = "or log in";
            let at = text.find(LOG_IN)? + LOG_IN.len();
            Some((at, " (`strata login`)".to_string()))
        }
        RegistryError::Tls {
            registry,
            problem: TlsProblem::Untrusted,
            ..
        } => Some((
            text.len(),
            format!(
                " (or choose another certs dir with --certs-dir; {DOCKER_CERTS_DIR}/{registry}/ca.crt works too), or, on a network you trust, use --insecure-registry {registry}"
            ),
        )),
        RegistryError::Tls {
            problem: TlsProblem::Refused,
            ..
        } => Some((text.len(), " (see --certs-dir)".to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use anyhow::Context;
    use strata::digest::Digest;
    use strata::pull::LayerError;
    use strata::source::SourceError;

    use super::*;
    use crate::cli::describe::describe;

    fn described(err: RegistryError) -> String {
        let e = Err::<(), _>(err)
            .context("pulling x")
            .expect_err("an error");
        describe(&e)
    }

    #[test]
    fn unauthorized_names_the_login_command() {
        let msg = described(RegistryError::Unauthorized {
            repository: "reg:5000/app".into(),
            registry: "reg:5000".into(),
            reason: "authentication required".into(),
            detail: ": registry says UNAUTHORIZED: no".into(),
        });
        assert_eq!(
            msg,
            "pulling x: unauthorized: access to reg:5000/app was refused: authentication required: registry says UNAUTHORIZED: no; log in with `strata login reg:5000` (strata reads Docker's config.json and credential helpers)"
        );
    }

    #[test]
    fn rate_limits_name_the_login_command_before_the_detail() {
        let msg = described(RegistryError::TooManyRequests {
            registry: "docker.io".into(),
            retry_after: Some("60".into()),
            detail: ": registry says TOOMANYREQUESTS: slow down".into(),
        });
        assert_eq!(
            msg,
            "pulling x: too many requests: docker.io is rate-limiting pulls (Retry-After: 60); wait and retry, or log in (`strata login`) for a higher limit: registry says TOOMANYREQUESTS: slow down"
        );
    }

    #[test]
    fn tls_failures_name_the_flags() {
        let untrusted = RegistryError::Tls {
            registry: "r:5000".into(),
            problem: TlsProblem::Untrusted,
            certs_dir: PathBuf::from("/certs/r:5000"),
            message: "TLS certificate of r:5000 is not trusted: it has expired; put the CA certificate that signed it in /certs/r:5000/ca.crt".into(),
        };
        assert_eq!(
            described(untrusted),
            "pulling x: TLS certificate of r:5000 is not trusted: it has expired; put the CA certificate that signed it in /certs/r:5000/ca.crt (or choose another certs dir with --certs-dir; /etc/docker/certs.d/r:5000/ca.crt works too), or, on a network you trust, use --insecure-registry r:5000"
        );
        let refused = RegistryError::Tls {
            registry: "r:5000".into(),
            problem: TlsProblem::Refused,
            certs_dir: PathBuf::from("/certs/r:5000"),
            message: "TLS handshake with r:5000 failed: no; client certificates go in /certs/r:5000/client.cert and /certs/r:5000/client.key".into(),
        };
        assert!(described(refused).ends_with("/certs/r:5000/client.key (see --certs-dir)"),);
    }

    #[test]
    fn layer_downloads_get_hints_and_other_errors_none() {
        let layer = LayerError::Download(SourceError::Registry(RegistryError::Unauthorized {
            repository: "reg/app".into(),
            registry: "reg".into(),
            reason: "no".into(),
            detail: String::new(),
        }));
        let e = anyhow::Error::new(layer).context("pulling x");
        assert!(
            describe(&e).contains("was refused: no; log in with `strata login reg`"),
            "{}",
            describe(&e)
        );
        let other = RegistryError::BlobUnknown {
            digest: Digest::of(b"x"),
            repository: "reg/app".into(),
            detail: String::new(),
        };
        let e = anyhow::Error::new(other);
        assert_eq!(describe(&e), e.to_string());
    }
}

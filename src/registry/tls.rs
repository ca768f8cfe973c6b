//! Per-registry TLS material found the Docker way, and wording of TLS failures.
//!
//! For a registry `HOST[:PORT]`, every certs dir (strata's own, `/etc/strata/certs.d` or
//! `--certs-dir`, then Docker's `/etc/docker/certs.d`) may hold a directory `HOST[:PORT]/`
//! with CA certificates (`*.crt`, e.g. `ca.crt`) trusted in addition to the system roots,
//! and client certificates (`NAME.cert` with its key `NAME.key`, e.g. `client.cert` and
//! `client.key`) presented to the registry.

use std::path::{Path, PathBuf};

use super::config::DEFAULT_CERTS_DIR;
use super::error::{RegistryError, error_chain};

/// TLS material for one registry.
#[derive(Default)]
pub(crate) struct TlsFiles {
    /// Extra trusted roots.
    pub roots: Vec<reqwest::Certificate>,
    /// The files the roots came from (for messages).
    pub ca_files: Vec<PathBuf>,
    /// Client certificate and key.
    pub identity: Option<reqwest::Identity>,
}

impl TlsFiles {
    /// Nothing found.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.identity.is_none()
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> RegistryError {
    RegistryError::Certs {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The names (sorted) of the regular files of `dir`; empty when it does not exist.
fn files_of(dir: &Path) -> Result<Vec<String>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(e) => return Err(bad(dir, e.to_string())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| bad(dir, e.to_string()))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether any certs dir has a CA certificate (`*.crt`) for `authority`.
pub(crate) fn has_ca(certs_dirs: &[PathBuf], authority: &str) -> bool {
    certs_dirs.iter().any(|d| {
        files_of(&d.join(authority))
            .map(|names| names.iter().any(|n| n.ends_with(".crt")))
            .unwrap_or(false)
    })
}

/// Reads the CA and client certificates for `authority` from every certs dir (CAs of all
/// dirs are trusted; the first client certificate found is used). A `.cert` without its
/// `.key`, or the reverse, is an error, as in Docker.
pub(crate) fn load(certs_dirs: &[PathBuf], authority: &str) -> Result<TlsFiles, RegistryError> {
    let mut out = TlsFiles::default();
    if authority.is_empty() || authority.contains('/') || authority.starts_with('.') {
        return Ok(out);
    }
    for certs_dir in certs_dirs {
        let dir = certs_dir.join(authority);
        let names = files_of(&dir)?;
        for name in &names {
            let path = dir.join(name);
            if name.ends_with(".crt") {
                let pem = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| bad(&path, format!("not a PEM certificate: {e}")))?;
                if certs.is_empty() {
                    return Err(bad(&path, "no PEM certificate in the file"));
                }
                out.roots.extend(certs);
                out.ca_files.push(path);
            } else if let Some(stem) = name.strip_suffix(".cert") {
                let key_name = format!("{stem}.key");
                if !names.contains(&key_name) {
                    return Err(bad(
                        &path,
                        format!(
                            "missing key {key_name} for this client certificate (CA certificates must use the extension .crt)"
                        ),
                    ));
                }
                if out.identity.is_some() {
                    continue;
                }
                let key_path = dir.join(&key_name);
                let mut pem = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
                pem.push(b'\n');
                pem.extend(std::fs::read(&key_path).map_err(|e| bad(&key_path, e.to_string()))?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    bad(
                        &path,
                        format!(
                            "client certificate and key {key_name} unusable: {}",
                            error_chain(&e)
                        ),
                    )
                })?;
                out.identity = Some(identity);
            } else if let Some(stem) = name.strip_suffix(".key") {
                let cert_name = format!("{stem}.cert");
                if !names.contains(&cert_name) {
                    return Err(bad(
                        &path,
                        format!("missing client certificate {cert_name} for this key"),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// A TLS failure found in a request error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    /// The server's certificate is not trusted (unknown CA, wrong name, expired).
    Untrusted(String),
    /// The server refused the handshake because of the client certificate.
    Refused(String),
    /// Any other TLS failure (e.g. a plain HTTP server on the port).
    Other(String),
}

/// The TLS failure inside a request error, worded, if it is one.
pub(crate) fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe_rustls(tls));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(describe_rustls(tls));
        }
        current = e.source();
    }
    // The rustls error may sit behind wrappers that hide it from downcasting: read the text.
    let text = error_chain(err);
    let lower = text.to_ascii_lowercase();
    if let Some(pos) = lower.find("invalid peer certificate") {
        let detail = &text[pos..];
        let reason = if detail.contains("UnknownIssuer") {
            "it is signed by an unknown authority".to_string()
        } else if detail.contains("NotValidForName") {
            "it is not valid for this host name".to_string()
        } else if detail.contains("Expired") {
            "it has expired".to_string()
        } else {
            detail.to_string()
        };
        return Some(TlsFailure::Untrusted(reason));
    }
    for alert in ["CertificateRequired", "BadCertificate", "UnknownCA"] {
        if text.contains(&format!("received fatal alert: {alert}")) {
            return Some(TlsFailure::Refused(format!(
                "the registry refused the TLS handshake (received fatal alert: {alert}): it wants a client certificate it trusts"
            )));
        }
    }
    None
}

fn describe_rustls(err: &rustls::Error) -> TlsFailure {
    use rustls::{AlertDescription, CertificateError, Error};
    match err {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            TlsFailure::Untrusted("it is signed by an unknown authority".to_string())
        }
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TlsFailure::Untrusted("it is not valid for this host name".to_string()),
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => TlsFailure::Untrusted("it has expired".to_string()),
        Error::InvalidCertificate(other) => TlsFailure::Untrusted(format!("{other:?}")),
        Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA,
        ) => TlsFailure::Refused(format!(
            "the registry refused the TLS handshake ({err}): it wants a client certificate it trusts"
        )),
        other => TlsFailure::Other(other.to_string()),
    }
}

/// The directory of `authority` in the first certs dir (where messages say its certificates
/// go), or in strata's default one when there is no certs dir.
pub(crate) fn registry_dir(certs_dirs: &[PathBuf], authority: &str) -> PathBuf {
    certs_dirs
        .first()
        .map(|d| d.join(authority))
        .unwrap_or_else(|| Path::new(DEFAULT_CERTS_DIR).join(authority))
}

/// The message for a certificate that is not trusted.
pub(crate) fn untrusted_message(
    authority: &str,
    reason: &str,
    certs_dirs: &[PathBuf],
    ca_files: &[PathBuf],
) -> String {
    let dir = registry_dir(certs_dirs, authority).display().to_string();
    let known = if ca_files.is_empty() {
        String::new()
    } else {
        let files: Vec<String> = ca_files.iter().map(|f| f.display().to_string()).collect();
        format!(
            " (the CA certificates configured for it, {}, do not match)",
            files.join(", ")
        )
    };
    format!(
        "TLS certificate of {authority} is not trusted: {reason}{known}; put the CA certificate that signed it in {dir}/ca.crt"
    )
}

/// The message for a handshake the registry refused (client certificate missing or unknown).
pub(crate) fn handshake_message(authority: &str, reason: &str, certs_dirs: &[PathBuf]) -> String {
    let dir = registry_dir(certs_dirs, authority).display().to_string();
    format!(
        "TLS handshake with {authority} failed: {reason}; client certificates go in {dir}/client.cert and {dir}/client.key"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn openssl(args: &[&str], dir: &Path) -> bool {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn reads_docker_style_certs_dirs() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path();
        if !openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=t",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
            ],
            work,
        ) {
            eprintln!("skipping: openssl unavailable");
            return;
        }
        let ours = work.join("strata");
        let docker = work.join("docker");
        let host = "reg.example:5000";
        std::fs::create_dir_all(ours.join(host)).unwrap();
        std::fs::create_dir_all(docker.join(host)).unwrap();
        std::fs::copy(work.join("c.pem"), ours.join(host).join("ca.crt")).unwrap();
        std::fs::copy(work.join("c.pem"), docker.join(host).join("extra.crt")).unwrap();
        std::fs::copy(work.join("c.pem"), docker.join(host).join("client.cert")).unwrap();
        std::fs::copy(work.join("k.pem"), docker.join(host).join("client.key")).unwrap();
        let dirs = vec![ours.clone(), docker.clone()];
        let files = load(&dirs, host).unwrap();
        assert_eq!(files.roots.len(), 2);
        assert_eq!(
            files.ca_files,
            [
                ours.join(host).join("ca.crt"),
                docker.join(host).join("extra.crt")
            ]
        );
        assert!(files.identity.is_some());
        assert!(has_ca(&dirs, host));
        assert!(!has_ca(&dirs, "other:5000"));
        assert!(load(&dirs, "other:5000").unwrap().is_empty());

        // A certificate without its key, and a key without its certificate.
        std::fs::remove_file(docker.join(host).join("client.key")).unwrap();
        let err = load(&dirs, host).err().unwrap().to_string();
        assert!(err.contains("missing key client.key"), "{err}");
        std::fs::remove_file(docker.join(host).join("client.cert")).unwrap();
        std::fs::copy(work.join("k.pem"), docker.join(host).join("me.key")).unwrap();
        let err = load(&dirs, host).err().unwrap().to_string();
        assert!(err.contains("missing client certificate me.cert"), "{err}");
        std::fs::remove_file(docker.join(host).join("me.key")).unwrap();
        std::fs::write(ours.join(host).join("ca.crt"), "garbage").unwrap();
        let err = load(&dirs, host).err().unwrap().to_string();
        assert!(err.contains("ca.crt"), "{err}");
    }

    #[test]
    fn messages_name_host_and_remedies() {
        let dirs = vec![PathBuf::from("/etc/strata/certs.d")];
        let m = untrusted_message("r.example:5000", "unknown authority", &dirs, &[]);
        assert!(
            m.contains("r.example:5000")
                && m.contains("/etc/strata/certs.d/r.example:5000/ca.crt")
                && m.ends_with("put the CA certificate that signed it in /etc/strata/certs.d/r.example:5000/ca.crt"),
            "{m}"
        );
        // Command-line remedies (`--certs-dir`, `--insecure-registry`) are the CLI's to add.
        assert!(!m.contains("--"), "{m}");
        let m = handshake_message("r.example:5000", "refused", &dirs);
        assert!(
            m.ends_with("client certificates go in /etc/strata/certs.d/r.example:5000/client.cert and /etc/strata/certs.d/r.example:5000/client.key"),
            "{m}"
        );
        assert_eq!(
            registry_dir(&[], "r:1"),
            PathBuf::from("/etc/strata/certs.d/r:1")
        );
        let m = untrusted_message("r.example:5000", "x", &dirs, &[PathBuf::from("/c/ca.crt")]);
        assert!(m.contains("/c/ca.crt, do not match"), "{m}");
    }
}

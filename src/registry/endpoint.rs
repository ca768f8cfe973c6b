//! Where requests for a registry go: mirrors first, then the registry itself, with Docker's
//! rules for insecure registries (HTTPS without verification first, then plain HTTP).
//!
//! Loopback registries are insecure by default (as in Docker) unless a CA certificate for
//! them is configured in a certs dir: configured trust means "verify". An explicit
//! `--insecure-registry` entry always wins.

use std::net::IpAddr;

use super::config::RegistryConfig;
use super::error::RegistryError;

/// Docker Hub's API host.
pub const DOCKER_HUB_ENDPOINT: &str = "https://registry-1.docker.io";

/// One base URL to send registry API requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port][/prefix]`, without a trailing slash.
    pub base: String,
    /// `host[:port]` of `base`: the key for cached tokens and schemes.
    pub authority: String,
    /// Registry name to look credentials up under.
    pub creds_host: String,
    /// HTTPS without certificate verification.
    pub skip_verify: bool,
    /// A mirror: any failure moves on to the next endpoint (with a warning).
    pub mirror: bool,
    /// A transport failure moves on to the next endpoint at once (the HTTPS probe of an
    /// insecure registry, followed by plain HTTP).
    pub probe: bool,
}

/// The endpoints to try for `registry`, in order: its mirrors, then the registry itself.
/// `has_ca` tells whether a CA certificate is configured for an authority.
pub(crate) fn endpoints(
    config: &RegistryConfig,
    registry: &str,
    has_ca: &dyn Fn(&str) -> bool,
) -> Result<Vec<Endpoint>, RegistryError> {
    let mut out = Vec::new();
    for mirror in config.mirrors.get(registry).into_iter().flatten() {
        out.extend(mirror_endpoints(config, mirror, has_ca)?);
    }
    if registry == "docker.io" {
        out.push(Endpoint {
            base: DOCKER_HUB_ENDPOINT.to_string(),
            authority: "registry-1.docker.io".to_string(),
            creds_host: "docker.io".to_string(),
            skip_verify: false,
            mirror: false,
            probe: false,
        });
    } else {
        out.extend(host_endpoints(config, registry, registry, false, has_ca));
    }
    Ok(out)
}

/// The registry's own endpoints, without mirrors (for `login`).
pub(crate) fn registry_endpoints(
    config: &RegistryConfig,
    registry: &str,
    has_ca: &dyn Fn(&str) -> bool,
) -> Result<Vec<Endpoint>, RegistryError> {
    let plain = RegistryConfig {
        mirrors: Default::default(),
        ..config.clone()
    };
    endpoints(&plain, registry, has_ca)
}

/// Checks every mirror URL of `config` (for [`super::RegistryClient::new`]).
pub(crate) fn validate(config: &RegistryConfig) -> Result<(), RegistryError> {
    for (registry, mirrors) in &config.mirrors {
        if registry.trim().is_empty() || registry.contains(['/', ' ']) {
            return Err(RegistryError::Config(format!(
                "mirror for {registry:?}: expected a registry host such as docker.io or host:5000"
            )));
        }
        for mirror in mirrors {
            mirror_endpoints(config, mirror, &|_| false)?;
        }
    }
    Ok(())
}

fn host_endpoints(
    config: &RegistryConfig,
    authority: &str,
    creds_host: &str,
    mirror: bool,
    has_ca: &dyn Fn(&str) -> bool,
) -> Vec<Endpoint> {
    let make = |scheme: &str, skip_verify: bool, probe: bool| Endpoint {
        base: format!("{scheme}://{authority}"),
        authority: authority.to_string(),
        creds_host: creds_host.to_string(),
        skip_verify,
        mirror,
        probe,
    };
    if is_insecure(config, authority, has_ca(authority)) {
        vec![make("https", true, true), make("http", false, false)]
    } else {
        vec![make("https", false, false)]
    }
}

/// A mirror is `host[:port]` (scheme chosen like for a registry) or an `http(s)://` URL,
/// optionally with a path prefix.
fn mirror_endpoints(
    config: &RegistryConfig,
    mirror: &str,
    has_ca: &dyn Fn(&str) -> bool,
) -> Result<Vec<Endpoint>, RegistryError> {
    let bad = |reason: &str| RegistryError::Config(format!("mirror {mirror:?}: {reason}"));
    let trimmed = mirror.trim();
    if !trimmed.contains("://") {
        let trimmed = trimmed.trim_end_matches('/');
        let (host, port) = split_authority(trimmed);
        if host.is_empty()
            || trimmed.contains(['/', '?', '#', '@'])
            || trimmed.contains(char::is_whitespace)
            || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad("expected host[:port] or an http:// or https:// URL"));
        }
        return Ok(host_endpoints(config, trimmed, trimmed, true, has_ca));
    }
    let url = reqwest::Url::parse(trimmed).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http:// and https:// mirrors are supported"));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad(
            "a mirror URL takes no query, fragment or user info (credentials come from config.json)",
        ));
    }
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let https = url.scheme() == "https";
    let path = url.path().trim_end_matches('/');
    Ok(vec![Endpoint {
        base: format!("{}://{}{}", url.scheme(), authority, path),
        skip_verify: https && is_insecure(config, &authority, has_ca(&authority)),
        creds_host: authority.clone(),
        authority,
        mirror: true,
        probe: false,
    }])
}

/// Splits `host[:port]` / `[v6]:port` into the host (without brackets) and the port.
pub(crate) fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => (rest, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// Docker's rule: `localhost`, `127.0.0.0/8` and `::1` are insecure (unless `has_ca`: a CA
/// is configured for them); so is anything in `config.insecure` (`host:port` exactly, `host`
/// on any port, or a CIDR such as `10.0.0.0/8`).
pub(crate) fn is_insecure(config: &RegistryConfig, authority: &str, has_ca: bool) -> bool {
    (is_loopback(authority) && !has_ca) || is_explicitly_insecure(config, authority)
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub(crate) fn is_loopback(authority: &str) -> bool {
    let authority = authority.to_ascii_lowercase();
    let (host, _) = split_authority(&authority);
    let ip: Option<IpAddr> = host.parse().ok();
    host == "localhost" || ip.is_some_and(|ip| ip.is_loopback())
}

/// Named by `config.insecure`.
pub(crate) fn is_explicitly_insecure(config: &RegistryConfig, authority: &str) -> bool {
    let authority = authority.to_ascii_lowercase();
    let (host, _) = split_authority(&authority);
    let ip: Option<IpAddr> = host.parse().ok();
    config.insecure.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        let entry = entry
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        if let Some((net, bits)) = entry.split_once('/') {
            return ip.is_some_and(|ip| in_cidr(ip, net, bits));
        }
        entry == authority
            || (split_authority(entry).1.is_none() && split_authority(entry).0 == host)
    })
}

fn in_cidr(ip: IpAddr, net: &str, bits: &str) -> bool {
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    match (ip, net.parse::<IpAddr>()) {
        (IpAddr::V4(ip), Ok(IpAddr::V4(net))) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), Ok(IpAddr::V6(net))) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mirrors: &[(&str, &[&str])], insecure: &[&str]) -> RegistryConfig {
        RegistryConfig {
            mirrors: mirrors
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn no_ca(_: &str) -> bool {
        false
    }

    fn insecure(c: &RegistryConfig, authority: &str) -> bool {
        is_insecure(c, authority, false)
    }

    fn bases(eps: &[Endpoint]) -> Vec<&str> {
        eps.iter().map(|e| e.base.as_str()).collect()
    }

    #[test]
    fn docker_hub_goes_to_registry_1() {
        let eps = endpoints(&RegistryConfig::default(), "docker.io", &no_ca).unwrap();
        assert_eq!(bases(&eps), ["https://registry-1.docker.io"]);
        assert_eq!(eps[0].creds_host, "docker.io");
        assert!(!eps[0].skip_verify && !eps[0].mirror);
    }

    #[test]
    fn loopback_is_insecure() {
        let c = RegistryConfig::default();
        for a in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "LOCALHOST",
        ] {
            assert!(insecure(&c, a), "{a}");
        }
        for a in [
            "example.com",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!insecure(&c, a), "{a}");
        }
        let eps = endpoints(&c, "127.0.0.1:5000", &no_ca).unwrap();
        assert_eq!(
            bases(&eps),
            ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        assert!(eps[0].skip_verify && eps[0].probe);
        assert!(!eps[1].skip_verify && !eps[1].probe);
        assert_eq!(
            bases(&endpoints(&c, "quay.io", &no_ca).unwrap()),
            ["https://quay.io"]
        );
    }

    #[test]
    fn configured_insecure_registries() {
        let c = config(
            &[],
            &["reg.local:5000", "plain.example", "10.1.0.0/16", "fd00::/8"],
        );
        assert!(insecure(&c, "reg.local:5000"));
        assert!(!insecure(&c, "reg.local:5001"));
        assert!(!insecure(&c, "reg.local"));
        assert!(insecure(&c, "plain.example:443"));
        assert!(insecure(&c, "10.1.200.3:5000"));
        assert!(!insecure(&c, "10.2.0.1:5000"));
        assert!(insecure(&c, "[fd12::1]:5000"));
        assert!(!insecure(&c, "fd.example"));
        assert!(in_cidr("1.2.3.4".parse().unwrap(), "0.0.0.0", "0"));
        assert!(!in_cidr("1.2.3.4".parse().unwrap(), "1.2.3.4", "33"));
    }

    #[test]
    fn mirrors_come_first() {
        let c = config(
            &[(
                "docker.io",
                &[
                    "https://mirror.example/prefix/",
                    "127.0.0.1:6000",
                    "http://m2.example:8080",
                ],
            )],
            &[],
        );
        let eps = endpoints(&c, "docker.io", &no_ca).unwrap();
        assert_eq!(
            bases(&eps),
            [
                "https://mirror.example/prefix",
                "https://127.0.0.1:6000",
                "http://127.0.0.1:6000",
                "http://m2.example:8080",
                "https://registry-1.docker.io"
            ]
        );
        assert!(eps[..4].iter().all(|e| e.mirror));
        assert_eq!(eps[0].authority, "mirror.example");
        assert_eq!(eps[3].creds_host, "m2.example:8080");
        // Other registries are unaffected.
        assert_eq!(
            bases(&endpoints(&c, "quay.io", &no_ca).unwrap()),
            ["https://quay.io"]
        );
    }

    #[test]
    fn bad_mirrors_are_refused() {
        for bad in [
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=b",
            "",
            "host/path",
            "http://",
            "http:",
            "h:x",
        ] {
            let c = config(&[("docker.io", &[bad])], &[]);
            let err = validate(&c).unwrap_err();
            assert!(err.to_string().contains("mirror"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_configured_ca_makes_loopback_secure() {
        let c = RegistryConfig::default();
        let ca = |a: &str| a == "127.0.0.1:5000";
        let eps = endpoints(&c, "127.0.0.1:5000", &ca).unwrap();
        assert_eq!(bases(&eps), ["https://127.0.0.1:5000"]);
        assert!(!eps[0].skip_verify);
        // An explicit --insecure-registry still wins.
        let c = config(&[], &["127.0.0.1:5000"]);
        let eps = endpoints(&c, "127.0.0.1:5000", &ca).unwrap();
        assert_eq!(
            bases(&eps),
            ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        assert!(eps[0].skip_verify);
    }

    #[test]
    fn splits_authorities() {
        assert_eq!(split_authority("a:5000"), ("a", Some("5000")));
        assert_eq!(split_authority("a"), ("a", None));
        assert_eq!(split_authority("[::1]:5000"), ("::1", Some("5000")));
        assert_eq!(split_authority("[::1]"), ("::1", None));
    }
}

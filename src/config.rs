//! strata's configuration file: `/etc/strata/config.toml`, or the file given with `--config`.
//!
//! ```toml
//! # Registry mirrors, tried in order before the registry itself.
//! [mirrors]
//! "docker.io" = ["https://mirror.example.com", "http://10.0.0.2:5000"]
//!
//! insecure-registries = ["registry.lan:5000", "10.0.0.0/8"]  # HTTPS unverified, then HTTP
//! certs-dir = "/etc/strata/certs.d"  # HOST[:PORT]/{ca.crt,client.cert,client.key}
//! max-concurrent-downloads = 3
//! stall-timeout = 30                 # seconds without data before a download is retried
//! retries = 5                        # retries of a failed request or interrupted download
//! auth-cache = true                  # keep registry challenges and anonymous tokens on disk
//! auth-cache-credentials = false     # ... and tokens fetched with credentials too
//! max-concurrent-chunks = 4          # segment requests (connections) at once per large blob (1: off)
//! segment-mib = 16                   # largest segment (one request each)
//! ranged-fetch-threshold-mib = 32    # smallest blob fetched in segments
//! ```
//!
//! Top-level keys must come before the `[mirrors]` table (TOML puts later keys into it).
//! Command-line flags override the file (`--certs-dir`, `--max-concurrent-downloads`) or
//! extend it (`--mirror` entries are tried before the file's, `--insecure-registry` entries are
//! added).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::registry::{self, RegistryConfig, RetryPolicy};

/// The file read when `--config` is not given (it may be absent).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/strata/config.toml";
/// Layers downloaded at once when neither the file nor the command line say.
pub const DEFAULT_MAX_CONCURRENT_DOWNLOADS: usize = 3;
/// Largest `retries` accepted.
const MAX_RETRIES: u32 = 100;

/// Errors reading the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is out of range.
    #[error("config file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The contents of the configuration file; every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Registry host -> mirror URLs, tried in order before the registry.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Registries reached without certificate verification, then over plain HTTP:
    /// `host[:port]`, `host` or a CIDR.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// strata's certs dir (default `/etc/strata/certs.d`); `/etc/docker/certs.d` is always
    /// searched too.
    #[serde(default)]
    pub certs_dir: Option<PathBuf>,
    /// Layers fetched and unpacked at once.
    #[serde(default)]
    pub max_concurrent_downloads: Option<usize>,
    /// Seconds without any data before a request or download is abandoned and retried.
    #[serde(default)]
    pub stall_timeout: Option<u64>,
    /// Retries of a failed request or an interrupted download.
    #[serde(default)]
    pub retries: Option<u32>,
    /// `false`: commit layers without a `syncfs` (as `--no-sync`).
    #[serde(default)]
    pub sync: Option<bool>,
    /// `false`: no auth cache between invocations (default on).
    #[serde(default)]
    pub auth_cache: Option<bool>,
    /// `true`: the auth cache keeps tokens fetched with credentials too (default off).
    #[serde(default)]
    pub auth_cache_credentials: Option<bool>,
    /// Segments (one ranged request and connection each) at once per large blob (1: one
    /// stream per blob).
    #[serde(default)]
    pub max_concurrent_chunks: Option<usize>,
    /// Largest segment (MiB).
    #[serde(default)]
    pub segment_mib: Option<u64>,
    /// Smallest blob (MiB) fetched in segments.
    #[serde(default)]
    pub ranged_fetch_threshold_mib: Option<u64>,
    /// The file this was read from (`None`: no file).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Command-line values that override or extend the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--mirror REGISTRY=URL` entries, in order (tried before the file's mirrors).
    pub mirrors: Vec<(String, String)>,
    /// `--insecure-registry` entries (added to the file's).
    pub insecure: Vec<String>,
    /// `--certs-dir` (replaces the file's).
    pub certs_dir: Option<PathBuf>,
    /// `--max-concurrent-downloads` (replaces the file's).
    pub max_concurrent_downloads: Option<usize>,
    /// `--no-sync`.
    pub no_sync: bool,
    /// The `User-Agent` to send.
    pub user_agent: Option<String>,
}

impl Config {
    /// Reads `path`, which must exist; or, when `None`, [`DEFAULT_CONFIG_PATH`] if it exists
    /// (else the defaults).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Parses and checks TOML text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.path = Some(path.to_path_buf());
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        if config.max_concurrent_downloads == Some(0) {
            return Err(invalid(
                "max-concurrent-downloads must be at least 1".into(),
            ));
        }
        if config.stall_timeout == Some(0) {
            return Err(invalid("stall-timeout must be at least 1 (seconds)".into()));
        }
        if config.max_concurrent_chunks == Some(0) || config.segment_mib == Some(0) {
            return Err(invalid(
                "max-concurrent-chunks and segment-mib must be at least 1".into(),
            ));
        }
        if config.retries.is_some_and(|r| r > MAX_RETRIES) {
            return Err(invalid(format!("retries must be at most {MAX_RETRIES}")));
        }
        for (registry, mirrors) in &config.mirrors {
            if registry.trim().is_empty() || registry.contains(['/', ' ']) {
                return Err(invalid(format!(
                    "[mirrors]: {registry:?} is not a registry host (docker.io, host:5000)"
                )));
            }
            if mirrors.iter().any(|m| m.trim().is_empty()) {
                return Err(invalid(format!(
                    "[mirrors]: empty mirror URL for {registry}"
                )));
            }
        }
        Ok(config)
    }

    /// Layers downloaded at once: the command line's value, else the file's, else 3.
    pub fn max_concurrent_downloads(&self, overrides: &Overrides) -> usize {
        overrides
            .max_concurrent_downloads
            .or(self.max_concurrent_downloads)
            .unwrap_or(DEFAULT_MAX_CONCURRENT_DOWNLOADS)
    }

    /// Whether layers are synced before they become visible: not with `--no-sync` or
    /// `sync = false`, else yes.
    pub fn sync(&self, overrides: &Overrides) -> bool {
        !overrides.no_sync && self.sync.unwrap_or(true)
    }

    /// The registry client settings: the file's, overridden and extended by `overrides`.
    pub fn registry_config(&self, overrides: &Overrides) -> RegistryConfig {
        let mut mirrors: HashMap<String, Vec<String>> = HashMap::new();
        for (registry, url) in &overrides.mirrors {
            mirrors
                .entry(registry.clone())
                .or_default()
                .push(url.trim_end_matches('/').to_string());
        }
        for (registry, urls) in &self.mirrors {
            let list = mirrors.entry(registry.clone()).or_default();
            for url in urls {
                let url = url.trim_end_matches('/').to_string();
                if !list.contains(&url) {
                    list.push(url);
                }
            }
        }
        let mut insecure = self.insecure_registries.clone();
        for entry in &overrides.insecure {
            if !insecure.contains(entry) {
                insecure.push(entry.clone());
            }
        }
        let certs_dir = overrides
            .certs_dir
            .clone()
            .or_else(|| self.certs_dir.clone())
            .unwrap_or_else(|| PathBuf::from(registry::DEFAULT_CERTS_DIR));
        let mut certs_dirs = vec![certs_dir];
        let docker = PathBuf::from(registry::DOCKER_CERTS_DIR);
        if !certs_dirs.contains(&docker) {
            certs_dirs.push(docker);
        }
        let mut retry = RetryPolicy::default();
        if let Some(r) = self.retries {
            retry.retries = r;
        }
        RegistryConfig {
            mirrors,
            insecure,
            docker_config: None,
            user_agent: overrides.user_agent.clone(),
            certs_dirs,
            retry,
            stall_timeout: self
                .stall_timeout
                .map(Duration::from_secs)
                .unwrap_or(registry::DEFAULT_STALL_TIMEOUT),
            auth_cache_dir: if self.auth_cache.unwrap_or(true) {
                registry::default_auth_cache_dir()
            } else {
                None
            },
            auth_cache_credentials: self.auth_cache_credentials.unwrap_or(false),
            ranged: registry::RangedFetch {
                connections: self
                    .max_concurrent_chunks
                    .unwrap_or(registry::DEFAULT_RANGED_CONNECTIONS),
                segment_size: self
                    .segment_mib
                    .map_or(registry::DEFAULT_SEGMENT_SIZE, |m| {
                        m.saturating_mul(1 << 20)
                    }),
                threshold: self
                    .ranged_fetch_threshold_mib
                    .map_or(registry::DEFAULT_RANGED_THRESHOLD, |m| {
                        m.saturating_mul(1 << 20)
                    }),
            },
            spool_dir: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
insecure-registries = ["registry.lan:5000", "10.0.0.0/8"]
certs-dir = "/srv/certs.d"
max-concurrent-downloads = 6
stall-timeout = 12
retries = 2
sync = false
max-concurrent-chunks = 6
segment-mib = 32
ranged-fetch-threshold-mib = 64

[mirrors]
"docker.io" = ["https://mirror.example.com/", "http://10.0.0.2:5000"]
"ghcr.io" = ["https://ghcr-cache.example.com"]
"#;

    #[test]
    fn parses_every_key() {
        let c = Config::parse(FULL, Path::new("/x.toml")).unwrap();
        assert_eq!(c.insecure_registries, ["registry.lan:5000", "10.0.0.0/8"]);
        assert_eq!(c.certs_dir, Some(PathBuf::from("/srv/certs.d")));
        assert_eq!(c.max_concurrent_downloads, Some(6));
        assert_eq!(c.stall_timeout, Some(12));
        assert_eq!(c.retries, Some(2));
        assert_eq!(c.mirrors["docker.io"].len(), 2);
        assert_eq!(c.path, Some(PathBuf::from("/x.toml")));

        let r = c.registry_config(&Overrides::default());
        assert_eq!(
            r.mirrors["docker.io"],
            ["https://mirror.example.com", "http://10.0.0.2:5000"]
        );
        assert_eq!(
            r.certs_dirs,
            [
                PathBuf::from("/srv/certs.d"),
                PathBuf::from(registry::DOCKER_CERTS_DIR)
            ]
        );
        assert_eq!(r.stall_timeout, Duration::from_secs(12));
        assert_eq!(r.retry.retries, 2);
        assert_eq!(
            r.ranged,
            registry::RangedFetch {
                connections: 6,
                segment_size: 32 << 20,
                threshold: 64 << 20,
            }
        );
        assert_eq!(c.max_concurrent_downloads(&Overrides::default()), 6);
        assert!(!c.sync(&Overrides::default()));
        assert!(Config::default().sync(&Overrides::default()));
        let no_sync = Overrides {
            no_sync: true,
            ..Overrides::default()
        };
        assert!(!Config::default().sync(&no_sync));
    }

    #[test]
    fn flags_override_and_extend_the_file() {
        let c = Config::parse(FULL, Path::new("/x.toml")).unwrap();
        let o = Overrides {
            mirrors: vec![
                ("docker.io".into(), "http://127.0.0.1:6000/".into()),
                ("docker.io".into(), "http://10.0.0.2:5000".into()),
                ("quay.io".into(), "https://q.example".into()),
            ],
            insecure: vec!["other:5000".into(), "10.0.0.0/8".into()],
            certs_dir: Some("/tmp/c".into()),
            max_concurrent_downloads: Some(1),
            no_sync: false,
            user_agent: Some("ua".into()),
        };
        let r = c.registry_config(&o);
        assert_eq!(
            r.mirrors["docker.io"],
            [
                "http://127.0.0.1:6000",
                "http://10.0.0.2:5000",
                "https://mirror.example.com"
            ]
        );
        assert_eq!(r.mirrors["quay.io"], ["https://q.example"]);
        assert_eq!(r.mirrors["ghcr.io"], ["https://ghcr-cache.example.com"]);
        assert_eq!(
            r.insecure,
            ["registry.lan:5000", "10.0.0.0/8", "other:5000"]
        );
        assert_eq!(r.certs_dirs[0], PathBuf::from("/tmp/c"));
        assert_eq!(r.user_agent.as_deref(), Some("ua"));
        assert_eq!(c.max_concurrent_downloads(&o), 1);
    }

    #[test]
    fn defaults_without_a_file() {
        let c = Config::parse("", Path::new("/e.toml")).unwrap();
        let r = c.registry_config(&Overrides::default());
        assert!(r.mirrors.is_empty() && r.insecure.is_empty());
        assert_eq!(
            r.certs_dirs,
            [
                PathBuf::from(registry::DEFAULT_CERTS_DIR),
                PathBuf::from(registry::DOCKER_CERTS_DIR)
            ]
        );
        assert_eq!(r.stall_timeout, registry::DEFAULT_STALL_TIMEOUT);
        assert_eq!(r.retry, RetryPolicy::default());
        assert_eq!(c.max_concurrent_downloads(&Overrides::default()), 3);

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        let err = Config::load(Some(&missing)).unwrap_err();
        assert!(
            matches!(err, ConfigError::Read { .. }) && err.to_string().contains("none.toml"),
            "{err}"
        );
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "retries = 1\n").unwrap();
        assert_eq!(Config::load(Some(&file)).unwrap().retries, Some(1));
    }

    #[test]
    fn mistakes_are_reported_with_the_file() {
        for (text, needle) in [
            ("retries = \"x\"", "retries"),
            ("mirror = {}", "mirror"),
            ("[mirrors]\n\"docker.io\" = \"http://x\"", "sequence"),
            ("max-concurrent-downloads = 0", "at least 1"),
            ("stall-timeout = 0", "at least 1"),
            ("retries = 1000", "at most"),
            ("[mirrors]\n\"a/b\" = [\"http://x\"]", "not a registry host"),
            ("certs-dir = ", "certs-dir"),
        ] {
            let err = Config::parse(text, Path::new("/etc/strata/config.toml")).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("/etc/strata/config.toml") && msg.contains(needle),
                "{text:?}: {msg}"
            );
        }
    }
}

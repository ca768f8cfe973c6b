//! Options shared by several commands: the global ones ([`Global`], and what they open: the
//! store, the registry client, the pull options) and `--pull` ([`PullArg`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use strata::archive::ApplyOptions;
use strata::image::Platform;
use strata::pull::{PullOptions, PullPolicy};
use strata::registry::RegistryClient;
use strata::store::Store;

use super::usage::UsageError;

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Store directory [default: /var/lib/strata as root, else $XDG_DATA_HOME/strata]
    #[arg(long, env = "STRATA_ROOT", global = true)]
    root: Option<PathBuf>,
    /// Registry mirror, REGISTRY=URL (repeatable; tried in order, then the registry itself)
    #[arg(
        long = "mirror",
        env = "STRATA_MIRROR",
        value_delimiter = ',',
        global = true,
        value_name = "REGISTRY=URL"
    )]
    mirrors: Vec<String>,
    /// Registry reached over plain HTTP or unverified TLS (repeatable; loopback is too, unless
    /// a certs dir has a CA for it)
    #[arg(
        long = "insecure-registry",
        env = "STRATA_INSECURE_REGISTRY",
        value_delimiter = ',',
        global = true,
        value_name = "HOST[:PORT]"
    )]
    insecure: Vec<String>,
    /// Configuration file (TOML: mirrors, insecure registries, certs dir, ...) [default:
    /// /etc/strata/config.toml if present]
    #[arg(long, env = "STRATA_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory with HOST[:PORT]/{*.crt,client.cert,client.key} per registry [default:
    /// /etc/strata/certs.d; /etc/docker/certs.d is searched too]
    #[arg(long, env = "STRATA_CERTS_DIR", global = true, value_name = "DIR")]
    certs_dir: Option<PathBuf>,
    /// Platform to pull from multi-platform images and to look up in the store [default: the
    /// host's]
    #[arg(
        long,
        env = "STRATA_PLATFORM",
        global = true,
        value_name = "OS/ARCH[/VARIANT]"
    )]
    platform: Option<String>,
    /// Layers downloaded and unpacked at once [default: the config file's, else 3]
    #[arg(
        long,
        env = "STRATA_MAX_CONCURRENT_DOWNLOADS",
        global = true,
        value_name = "N"
    )]
    max_concurrent_downloads: Option<usize>,
    /// Commit layers without waiting for their data to reach the disk (no `syncfs`), as
    /// containerd and dockerd do: for hosts whose store need not survive a crash (CI
    /// machines). A layer not yet synced when the machine goes down is discarded and pulled
    /// again
    #[arg(long, env = "STRATA_NO_SYNC", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    no_sync: bool,
    /// Record each pulled layer's content digest, for `check --content` (hashes every file's
    /// bytes while unpacking: ~20% more CPU for a pull)
    #[arg(long, env = "STRATA_CONTENT_DIGEST", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    content_digest: bool,
    /// Print no progress
    #[arg(short, long, global = true)]
    pub(super) quiet: bool,
}

/// `--pull` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PullArg {
    /// Never pull; the image must be present
    Never,
    /// Pull only when the image is not present
    Missing,
    /// Always resolve the reference and fetch what is missing
    Always,
}

impl From<PullArg> for PullPolicy {
    fn from(arg: PullArg) -> Self {
        match arg {
            PullArg::Never => PullPolicy::Never,
            PullArg::Missing => PullPolicy::Missing,
            PullArg::Always => PullPolicy::Always,
        }
    }
}

impl Global {
    /// Opens the store at `--root` (or the default).
    pub(super) fn store(&self) -> Result<Store> {
        let root = self.root_dir()?;
        Store::open(&root).with_context(|| format!("opening store {}", root.display()))
    }

    /// Opens the store for a command that only reads: a `--root` (or `STRATA_ROOT`) with no
    /// store is an error rather than a new empty store; the default root is opened as by
    /// [`Global::store`].
    pub(super) fn existing_store(&self) -> Result<Store> {
        match &self.root {
            Some(root) => Ok(Store::open_existing(root)?),
            None => self.store(),
        }
    }

    /// The store directory: `--root` or the default (neither created nor checked).
    pub(super) fn root_dir(&self) -> Result<PathBuf> {
        match &self.root {
            Some(root) => Ok(root.clone()),
            None => default_root(),
        }
    }

    /// The pull options: `--platform` (else the host's), and downloads and syncing from the
    /// flags over the configuration file.
    pub(super) fn pull_options(&self) -> Result<PullOptions> {
        let platform = self.platform()?;
        if self.max_concurrent_downloads == Some(0) {
            return Err(UsageError("--max-concurrent-downloads must be at least 1".into()).into());
        }
        let file = self.config_file()?;
        let overrides = self.overrides()?;
        Ok(PullOptions {
            platform,
            max_concurrent_downloads: file.max_concurrent_downloads(&overrides),
            sync: file.sync(&overrides),
            apply: ApplyOptions {
                hash_files: self.content_digest,
                ..ApplyOptions::default()
            },
        })
    }

    /// `--platform`, else the host's.
    pub(super) fn platform(&self) -> Result<Platform> {
        match &self.platform {
            Some(p) => Platform::parse(p).with_context(|| format!("invalid --platform {p:?}")),
            None => Ok(Platform::host()),
        }
    }

    /// A registry client with the configuration file's settings and the flags'.
    pub(super) fn client(&self) -> Result<RegistryClient> {
        let config = self.config_file()?.registry_config(&self.overrides()?);
        Ok(RegistryClient::new(config)?)
    }

    /// The configuration file (`--config`, else /etc/strata/config.toml if present); every
    /// command reads it first, so that a missing or malformed file is never ignored.
    pub(super) fn config_file(&self) -> Result<strata::config::Config> {
        Ok(strata::config::Config::load(self.config.as_deref())?)
    }

    /// The command line's registry settings, which override or extend the file's.
    fn overrides(&self) -> Result<strata::config::Overrides> {
        let mut mirrors = Vec::new();
        for entry in &self.mirrors {
            let (registry, url) = entry.split_once('=').ok_or_else(|| {
                UsageError(format!("invalid --mirror {entry:?}: expected REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000"))
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(UsageError(format!(
                    "invalid --mirror {entry:?}: the URL must start with http:// or https://"
                ))
                .into());
            }
            mirrors.push((registry.to_string(), url.trim_end_matches('/').to_string()));
        }
        Ok(strata::config::Overrides {
            mirrors,
            insecure: self.insecure.clone(),
            certs_dir: self.certs_dir.clone(),
            max_concurrent_downloads: self.max_concurrent_downloads,
            no_sync: self.no_sync,
            user_agent: Some(format!("strata/{}", env!("CARGO_PKG_VERSION"))),
        })
    }
}

fn default_root() -> Result<PathBuf> {
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/strata"));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(data).join("strata"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(Path::new(&home).join(".local/share/strata")),
        None => bail!("cannot choose a store directory: set --root, STRATA_ROOT or HOME"),
    }
}

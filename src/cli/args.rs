//! Options shared by several commands: the global ones ([`Global`]: the store, the config file,
//! `-q`, `--log-level`), those of the commands that reach a registry ([`RegistryFlags`]) or pull
//! ([`PullFlags`]), `--platform` alone ([`PlatformFlag`]) and `--pull` ([`PullArg`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use strata::archive::ApplyOptions;
use strata::image::Platform;
use strata::pull::{PullOptions, PullPolicy};
use strata::registry::RegistryClient;
use strata::store::Store;

use super::log::LogLevel;
use super::usage::UsageError;

/// The help heading of the options every command takes.
pub const GLOBAL_HEADING: &str = "Global options";
/// The help heading of the registry options.
pub const REGISTRY_HEADING: &str = "Registry options";
/// The help heading of the pull options.
pub const PULL_HEADING: &str = "Pull options";

/// Options every command takes (before or after the command's name).
#[derive(Debug, Args)]
#[command(next_help_heading = GLOBAL_HEADING)]
pub struct Global {
    /// Store directory [default: /var/lib/strata as root, else $XDG_DATA_HOME/strata]
    #[arg(long, env = "STRATA_ROOT", global = true)]
    root: Option<PathBuf>,
    /// Configuration file (TOML: mirrors, insecure registries, certs dir, ...) [default:
    /// /etc/strata/config.toml if present]
    #[arg(long, env = "STRATA_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print no progress (images, ps: print image or container IDs only)
    #[arg(short, long, global = true)]
    pub(super) quiet: bool,
    /// What to log on stderr: error, warn, info (decisions), debug (requests, retries), trace
    /// [default: $RUST_LOG's level, else warn]
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "LEVEL",
        hide_possible_values = true
    )]
    log_level: Option<LogLevel>,
    /// The pull options given before the command's name, where strata took them before they
    /// moved to the commands that pull: still accepted there (hidden, see [`hide_compat`]).
    #[command(flatten)]
    compat: PullFlags,
}

/// Options of the commands that reach a registry.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = REGISTRY_HEADING)]
pub struct RegistryFlags {
    /// Registry mirror, REGISTRY=URL (repeatable; tried in order, then the registry itself)
    #[arg(
        long = "mirror",
        env = "STRATA_MIRROR",
        value_delimiter = ',',
        value_name = "REGISTRY=URL"
    )]
    mirrors: Vec<String>,
    /// Registry reached over plain HTTP or unverified TLS (repeatable; loopback is too, unless
    /// a certs dir has a CA for it)
    #[arg(
        long = "insecure-registry",
        env = "STRATA_INSECURE_REGISTRY",
        value_delimiter = ',',
        value_name = "HOST[:PORT]"
    )]
    insecure: Vec<String>,
    /// Directory with HOST[:PORT]/{*.crt,client.cert,client.key} per registry [default:
    /// /etc/strata/certs.d; /etc/docker/certs.d is searched too]
    #[arg(long, env = "STRATA_CERTS_DIR", value_name = "DIR")]
    certs_dir: Option<PathBuf>,
}

/// Options of the commands that pull (pull, pull-and-mount, run, export).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = PULL_HEADING)]
pub struct PullFlags {
    /// Platform to pull from multi-platform images and to look up in the store [default: the
    /// host's]
    #[arg(long, env = "STRATA_PLATFORM", value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Layers downloaded and unpacked at once [default: the config file's, else 3]
    #[arg(long, env = "STRATA_MAX_CONCURRENT_DOWNLOADS", value_name = "N")]
    max_concurrent_downloads: Option<usize>,
    /// Commit layers without waiting for their data to reach the disk (no `syncfs`), as
    /// containerd and dockerd do: for hosts whose store need not survive a crash (CI
    /// machines). A layer not yet synced when the machine goes down is discarded and pulled
    /// again
    #[arg(long, env = "STRATA_NO_SYNC", value_parser = clap::builder::BoolishValueParser::new())]
    no_sync: bool,
    /// Record each pulled layer's content digest, for `check --content` (hashes every file's
    /// bytes while unpacking: ~20% more CPU for a pull)
    #[arg(long, env = "STRATA_CONTENT_DIGEST", value_parser = clap::builder::BoolishValueParser::new())]
    content_digest: bool,
    // Last: its heading would otherwise go on with the fields after it.
    #[command(flatten)]
    registry: RegistryFlags,
}

/// `--platform` alone, for the commands that look an image up in the store.
#[derive(Debug, Clone, Default, Args)]
pub struct PlatformFlag {
    /// Platform to look up among a multi-platform image's [default: the host's]
    #[arg(long, env = "STRATA_PLATFORM", value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
}

/// Hides the top level's copies of the pull options: they stay accepted before the command's
/// name (scripts written before they moved) but are offered by the commands that pull only.
/// They read no environment variable: the command's own copies do.
pub fn hide_compat(arg: clap::Arg) -> clap::Arg {
    match arg.get_help_heading() {
        Some(PULL_HEADING | REGISTRY_HEADING) => arg.hide(true).env(None),
        _ => arg,
    }
}

impl PullFlags {
    /// These flags, each unset one taken from `fallback` (the ones before the command's name).
    fn or(&self, fallback: &PullFlags) -> PullFlags {
        PullFlags {
            registry: self.registry.or(&fallback.registry),
            platform: self.platform.clone().or_else(|| fallback.platform.clone()),
            max_concurrent_downloads: self
                .max_concurrent_downloads
                .or(fallback.max_concurrent_downloads),
            no_sync: self.no_sync || fallback.no_sync,
            content_digest: self.content_digest || fallback.content_digest,
        }
    }
}

impl RegistryFlags {
    /// These flags, the unset ones taken from `fallback`.
    fn or(&self, fallback: &RegistryFlags) -> RegistryFlags {
        let pick = |mine: &Vec<String>, theirs: &Vec<String>| {
            if mine.is_empty() {
                theirs.clone()
            } else {
                mine.clone()
            }
        };
        RegistryFlags {
            mirrors: pick(&self.mirrors, &fallback.mirrors),
            insecure: pick(&self.insecure, &fallback.insecure),
            certs_dir: self
                .certs_dir
                .clone()
                .or_else(|| fallback.certs_dir.clone()),
        }
    }
}

/// `--pull` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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

    /// `--config`, if given.
    pub(super) fn config_path(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// `--log-level`, if given.
    pub(super) fn log_level(&self) -> Option<LogLevel> {
        self.log_level
    }

    /// The pull options: `--platform` (else the host's), and downloads and syncing from the
    /// flags over the configuration file.
    pub(super) fn pull_options(&self, flags: &PullFlags) -> Result<PullOptions> {
        let flags = self.compat.or(flags);
        let platform = parse_platform(flags.platform.as_deref())?;
        if flags.max_concurrent_downloads == Some(0) {
            return Err(UsageError("--max-concurrent-downloads must be at least 1".into()).into());
        }
        let file = self.config_file()?;
        let overrides = overrides(&flags)?;
        Ok(PullOptions {
            platform,
            max_concurrent_downloads: file.max_concurrent_downloads(&overrides),
            sync: file.sync(&overrides),
            apply: ApplyOptions {
                hash_files: flags.content_digest,
                userxattr: strata::rootless::is_rootless(),
                ..ApplyOptions::default()
            },
        })
    }

    /// `--platform` (of the command, else before it), else the host's.
    pub(super) fn platform(&self, flag: &PlatformFlag) -> Result<Platform> {
        parse_platform(self.compat.platform.as_deref().or(flag.platform.as_deref()))
    }

    /// A registry client for a command that pulls.
    pub(super) fn client(&self, flags: &PullFlags) -> Result<RegistryClient> {
        let mut config = self
            .config_file()?
            .registry_config(&overrides(&self.compat.or(flags))?);
        // Segments ahead of the reader wait on the store's disk when /tmp is a tmpfs.
        config.spool_dir = Some(self.root_dir()?.join("staging"));
        Ok(RegistryClient::new(config)?)
    }

    /// A registry client for a command that only talks to a registry (`login`).
    pub(super) fn registry_client(&self, flags: &RegistryFlags) -> Result<RegistryClient> {
        let flags = PullFlags {
            registry: flags.clone(),
            ..PullFlags::default()
        };
        self.client(&flags)
    }

    /// The configuration file (`--config`, else /etc/strata/config.toml if present); every
    /// command reads it first, so that a missing or malformed file is never ignored.
    pub(super) fn config_file(&self) -> Result<strata::config::Config> {
        Ok(strata::config::Config::load(self.config.as_deref())?)
    }
}

/// `--platform`'s value parsed, else the host's platform.
fn parse_platform(value: Option<&str>) -> Result<Platform> {
    match value {
        Some(p) => Platform::parse(p).with_context(|| format!("invalid --platform {p:?}")),
        None => Ok(Platform::host()),
    }
}

/// The command line's registry settings, which override or extend the file's.
fn overrides(flags: &PullFlags) -> Result<strata::config::Overrides> {
    let mut mirrors = Vec::new();
    for entry in &flags.registry.mirrors {
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
        insecure: flags.registry.insecure.clone(),
        certs_dir: flags.registry.certs_dir.clone(),
        max_concurrent_downloads: flags.max_concurrent_downloads,
        no_sync: flags.no_sync,
        user_agent: Some(format!("strata/{}", env!("CARGO_PKG_VERSION"))),
    })
}

fn default_root() -> Result<PathBuf> {
    if !strata::rootless::is_rootless() {
        return Ok(PathBuf::from("/var/lib/strata"));
    }
    strata::rootless::data_root()
        .context("cannot choose a store directory: set --root, STRATA_ROOT or HOME")
}

/// `--format` values: Docker's `table` (the default) and `json`, one JSON object per line with
/// Docker's capitalised keys (`--json`, where a command has it, prints strata's own document).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The human-readable table
    #[default]
    Table,
    /// One JSON object per line, with Docker's capitalised keys
    Json,
}

//! Command-line interface: argument parsing, dispatch, exit codes.

mod images;
mod progress;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use strata::pull::{self, PullOptions, PullStatus};
use strata::reference::Reference;
use strata::registry::platform::Platform;
use strata::registry::{RegistryClient, RegistryConfig};
use strata::store::Store;

/// strata: pull OCI/Docker images into a Docker-style overlay2 store.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
struct Cli {
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
    /// Registry reached over plain HTTP or unverified TLS (repeatable; loopback always is)
    #[arg(
        long = "insecure-registry",
        env = "STRATA_INSECURE_REGISTRY",
        value_delimiter = ',',
        global = true,
        value_name = "HOST[:PORT]"
    )]
    insecure: Vec<String>,
    /// Platform to pull from multi-platform images [default: the host's]
    #[arg(
        long,
        env = "STRATA_PLATFORM",
        global = true,
        value_name = "OS/ARCH[/VARIANT]"
    )]
    platform: Option<String>,
    /// Layers downloaded and unpacked at once
    #[arg(
        long,
        env = "STRATA_MAX_CONCURRENT_DOWNLOADS",
        default_value_t = 3,
        global = true,
        value_name = "N"
    )]
    max_concurrent_downloads: usize,
    /// Print no progress
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pull an image into the store (docker.io/library and :latest by default)
    Pull {
        /// Image reference, e.g. alpine, alpine:3.20, host:5000/repo@sha256:...
        reference: String,
    },
    /// List pulled images
    Images {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Show an image as Docker-shaped JSON (incl. GraphDriver.Data)
    Inspect {
        /// Image reference or id (prefix)
        image: String,
    },
}

/// Runs the command line and maps the outcome to an exit code (1 on error; clap uses 2 for usage).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let root = match &cli.root {
        Some(root) => root.clone(),
        None => default_root()?,
    };
    match &cli.command {
        Command::Pull { reference } => {
            let reference = Reference::parse(reference)?;
            let store =
                Store::open(&root).with_context(|| format!("opening store {}", root.display()))?;
            let options = pull_options(&cli)?;
            let client = RegistryClient::new(registry_config(&cli)?)?;
            let observer = progress::observer(cli.quiet);
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let outcome = runtime.block_on(pull::pull(
                &client,
                &store,
                &reference,
                &options,
                observer.clone(),
            ))?;
            observer.finish();
            if !cli.quiet {
                eprintln!("Digest: {}", outcome.digest);
                match outcome.status {
                    PullStatus::Downloaded => {
                        eprintln!("Status: Downloaded newer image for {reference}")
                    }
                    PullStatus::UpToDate => {
                        eprintln!("Status: Image is up to date for {reference}")
                    }
                }
            }
            println!("{reference}");
        }
        Command::Images { json } => images::list(&open_existing(&root)?, *json)?,
        Command::Inspect { image } => images::inspect(&open_existing(&root)?, image)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn open_existing(root: &std::path::Path) -> Result<Store> {
    Store::open(root).with_context(|| format!("opening store {}", root.display()))
}

fn default_root() -> Result<PathBuf> {
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/strata"));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(data).join("strata"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/strata")),
        None => bail!("cannot choose a store directory: set --root, STRATA_ROOT or HOME"),
    }
}

fn pull_options(cli: &Cli) -> Result<PullOptions> {
    let platform = match &cli.platform {
        Some(p) => Platform::parse(p).with_context(|| format!("invalid --platform {p:?}"))?,
        None => Platform::host(),
    };
    if cli.max_concurrent_downloads == 0 {
        bail!("--max-concurrent-downloads must be at least 1");
    }
    Ok(PullOptions {
        platform,
        max_concurrent_downloads: cli.max_concurrent_downloads,
        ..PullOptions::default()
    })
}

fn registry_config(cli: &Cli) -> Result<RegistryConfig> {
    let mut mirrors: HashMap<String, Vec<String>> = HashMap::new();
    for entry in &cli.mirrors {
        let (registry, url) = entry
            .split_once('=')
            .with_context(|| format!("invalid --mirror {entry:?}: expected REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("invalid --mirror {entry:?}: the URL must start with http:// or https://");
        }
        mirrors
            .entry(registry.to_string())
            .or_default()
            .push(url.trim_end_matches('/').to_string());
    }
    Ok(RegistryConfig {
        mirrors,
        insecure: cli.insecure.clone(),
        user_agent: Some(format!("strata/{}", env!("CARGO_PKG_VERSION"))),
        ..RegistryConfig::default()
    })
}

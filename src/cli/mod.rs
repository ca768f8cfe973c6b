//! Command-line interface: argument parsing, dispatch, exit codes.

mod containers;
mod export;
mod hints;
mod images;
mod log;
mod login;
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use strata::image::Platform;
use strata::pull::{PullOptions, PullPolicy};
use strata::registry::RegistryClient;
use strata::store::Store;

/// strata: pull OCI/Docker images into a Docker-style overlay2 store and mount them.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

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
    /// Platform to pull from multi-platform images [default: the host's]
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
    /// Print no progress
    #[arg(short, long, global = true)]
    quiet: bool,
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
    /// Show an image or a container as Docker-shaped JSON (incl. GraphDriver.Data)
    Inspect {
        /// Container name or id, or image reference or id
        name: String,
    },
    /// Pull if needed, create a container and mount its writable rootfs; prints the merged dir
    PullAndMount(containers::PullAndMountArgs),
    /// List containers with their image and mount state
    Ps {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Mount a container's rootfs again (e.g. after a reboot); prints the merged dir
    Mount {
        /// Container name or id
        container: String,
    },
    /// Unmount a container's rootfs
    Umount {
        /// Container name or id
        container: String,
    },
    /// Remove containers
    Rm {
        /// Unmount mounted containers first
        #[arg(short, long)]
        force: bool,
        /// Container names or ids
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Write an OCI runtime bundle (config.json with root.path = the merged dir)
    Bundle(containers::BundleArgs),
    /// Pull, mount, bundle and run a command with an OCI runtime; exits with its exit code
    Run(containers::RunArgs),
    /// Write an image's root filesystem into a new directory, flattened (no store, no mount;
    /// no root needed for images without device nodes); prints the directory
    #[command(long_about = export::LONG_ABOUT)]
    Export(export::ExportArgs),
    /// Log in to a registry: check the credentials, then save them in Docker's config.json
    Login(login::LoginArgs),
    /// Remove the saved credentials of a registry
    Logout(login::LogoutArgs),
}

/// Runs the command line and maps the outcome to an exit code (1 on error; clap uses 2 for usage).
pub fn main() -> ExitCode {
    log::init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping causes whose text a higher level already includes, with
/// the command-line hint for a registry error.
pub fn describe(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    hints::add(message, e)
}

fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Pull { reference } => images::pull(g, &reference)?,
        Command::Images { json } => images::list(&g.store()?, json)?,
        Command::Inspect { name } => images::inspect(&g.store()?, &name)?,
        Command::PullAndMount(args) => containers::pull_and_mount(g, &args)?,
        Command::Ps { json } => containers::ps(&g.store()?, json)?,
        Command::Mount { container } => containers::mount(&g.store()?, &container)?,
        Command::Umount { container } => containers::umount(&g.store()?, &container)?,
        Command::Rm { force, containers } => containers::rm(&g.store()?, &containers, force)?,
        Command::Bundle(args) => containers::bundle(&g.store()?, &args)?,
        Command::Run(args) => return containers::run(g, &args),
        Command::Export(args) => export::export(g, &args)?,
        Command::Login(args) => login::login(g, &args)?,
        Command::Logout(args) => login::logout(&args)?,
    }
    Ok(ExitCode::SUCCESS)
}

impl Global {
    /// Opens the store at `--root` (or the default).
    fn store(&self) -> Result<Store> {
        let root = self.root_dir()?;
        Store::open(&root).with_context(|| format!("opening store {}", root.display()))
    }

    /// The store directory: `--root` or the default (neither created nor checked).
    fn root_dir(&self) -> Result<PathBuf> {
        match &self.root {
            Some(root) => Ok(root.clone()),
            None => default_root(),
        }
    }

    fn pull_options(&self) -> Result<PullOptions> {
        let platform = match &self.platform {
            Some(p) => Platform::parse(p).with_context(|| format!("invalid --platform {p:?}"))?,
            None => Platform::host(),
        };
        if self.max_concurrent_downloads == Some(0) {
            bail!("--max-concurrent-downloads must be at least 1");
        }
        let file = self.config_file()?;
        let overrides = self.overrides()?;
        Ok(PullOptions {
            platform,
            max_concurrent_downloads: file.max_concurrent_downloads(&overrides),
            sync: file.sync(&overrides),
            ..PullOptions::default()
        })
    }

    fn client(&self) -> Result<RegistryClient> {
        let config = self.config_file()?.registry_config(&self.overrides()?);
        Ok(RegistryClient::new(config)?)
    }

    /// The configuration file (`--config`, else /etc/strata/config.toml if present).
    fn config_file(&self) -> Result<strata::config::Config> {
        Ok(strata::config::Config::load(self.config.as_deref())?)
    }

    /// The command line's registry settings, which override or extend the file's.
    fn overrides(&self) -> Result<strata::config::Overrides> {
        let mut mirrors = Vec::new();
        for entry in &self.mirrors {
            let (registry, url) = entry.split_once('=').with_context(|| {
                format!("invalid --mirror {entry:?}: expected REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000")
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("invalid --mirror {entry:?}: the URL must start with http:// or https://");
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
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

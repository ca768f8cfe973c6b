//! Command-line interface: argument parsing, dispatch, exit codes.

mod args;
mod async_runtime;
mod check;
mod commit;
mod completion;
mod container_hints;
mod container_status;
mod containers;
mod describe;
mod df;
mod diff;
mod disk_usage;
mod export;
mod groups;
mod hints;
mod image_list;
mod images;
mod info;
mod inspect;
mod interrupt;
mod json_lines;
mod kill;
mod load;
mod log;
mod login;
mod mount;
mod privilege_hints;
mod privileges;
mod progress;
mod prune;
mod rmi;
mod run_flags;
mod signal_names;
mod stop;
mod store_hints;
mod tag;
mod units;
mod unshare;
mod usage;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use args::Global;
use describe::describe;

/// strata: pull OCI/Docker images into a Docker-style overlay2 store and mount them.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about,
    propagate_version = true,
    mut_args(args::hide_compat)
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pull an image into the store (docker.io/library and :latest by default)
    Pull(images::PullArgs),
    /// List pulled images (-q: their ids only)
    Images(images::ImagesArgs),
    /// Show an image or a container as Docker-shaped JSON (incl. GraphDriver.Data)
    Inspect {
        /// Container name or id, or image reference or id
        name: String,
        #[command(flatten)]
        platform: args::PlatformFlag,
    },
    /// Pull if needed, create a container and mount its writable rootfs; prints the merged dir
    PullAndMount(containers::PullAndMountArgs),
    /// List containers with their image and mount state (-q: their ids only)
    Ps(containers::PsArgs),
    /// Mount a container's rootfs again (e.g. after a reboot), or with --image an image
    /// read-only; prints the mount point
    Mount(mount::MountArgs),
    /// Unmount a container's rootfs (--image: an image mount)
    Umount(mount::UmountArgs),
    /// List the files a container changed: A (added), C (changed), D (deleted)
    Diff(diff::DiffArgs),
    /// Create a new image from a container's changes; prints its id
    Commit(commit::CommitArgs),
    /// Remove containers
    Rm {
        /// Unmount mounted containers first
        #[arg(short, long)]
        force: bool,
        /// Container names or ids
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers: SIGTERM, then SIGKILL after the timeout; prints each name
    Stop(stop::StopArgs),
    /// Send a signal (default KILL) to running containers; prints each name
    Kill(kill::KillArgs),
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
    /// Give an image another reference: SOURCE (reference or id) as TARGET
    Tag(tag::TagArgs),
    /// Remove images: untag, then delete what no reference and no container keeps
    Rmi(rmi::RmiArgs),
    /// Manage images (rm, prune)
    #[command(subcommand)]
    Image(groups::ImageCommand),
    /// Manage containers (prune)
    #[command(subcommand)]
    Container(groups::ContainerCommand),
    /// Manage the store (prune)
    #[command(subcommand)]
    System(groups::SystemCommand),
    /// Check the store's consistency; exit 1 when problems remain
    Check(check::CheckArgs),
    /// Load the images of a docker-archive or oci-archive file; prints "Loaded image: NAME"
    Load(load::LoadArgs),
    /// Show the storage information: driver, backing filesystem, root, counts, config file
    Info(info::InfoArgs),
    /// Print a shell completion script (bash, zsh, fish), e.g. `source <(strata completion bash)`
    Completion(completion::CompletionArgs),
    /// Write the man pages (strata.1, strata-pull.1, ...) into a directory
    Man(completion::ManArgs),
    /// Run a command (default: a shell) in the rootless user and mount namespaces of the store
    Unshare(unshare::UnshareArgs),
}

/// Runs the command line and maps the outcome to an exit code (see [`usage::exit_code`]).
pub fn main() -> ExitCode {
    if let Some(code) = unshare::pause_if_asked() {
        return code;
    }
    let cli = Cli::parse();
    log::init(cli.global.log_level());
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            usage::exit_code(&e)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    g.config_file()?;
    let storeless = matches!(
        cli.command,
        Command::Export(_)
            | Command::Login(_)
            | Command::Logout(_)
            | Command::Completion(_)
            | Command::Man(_)
    );
    if !storeless && let Err(e) = unshare::enter() {
        // `run` fails as `docker run` does: 125 for strata's own errors.
        if matches!(cli.command, Command::Run(_)) {
            eprintln!("error: {}", describe::describe(&e));
            return Ok(ExitCode::from(125));
        }
        return Err(e);
    }
    match cli.command {
        Command::Pull(args) => images::pull(g, &args)?,
        Command::Images(args) => images::list(&g.existing_store()?, &args, g.quiet)?,
        Command::Inspect { name, platform } => {
            images::inspect(&g.existing_store()?, &name, &g.platform(&platform)?)?
        }
        Command::PullAndMount(args) => containers::pull_and_mount(g, &args)?,
        Command::Ps(args) => containers::ps(&g.existing_store()?, &args, g.quiet)?,
        Command::Mount(args) => mount::mount(g, &args)?,
        Command::Umount(args) => mount::umount(&g.store()?, &args)?,
        Command::Diff(args) => diff::diff(&g.existing_store()?, &args)?,
        Command::Commit(args) => commit::commit(g, &args)?,
        Command::Rm { force, containers } => containers::rm(&g.store()?, &containers, force)?,
        Command::Stop(args) => {
            privileges::require_root("stop")?;
            stop::stop(&g.existing_store()?, &args)?
        }
        Command::Kill(args) => {
            privileges::require_root("kill")?;
            kill::kill(&g.existing_store()?, &args)?
        }
        Command::Bundle(args) => containers::bundle(&g.store()?, &args)?,
        Command::Run(args) => return containers::run(g, &args),
        Command::Export(args) => export::export(g, &args)?,
        Command::Login(args) => login::login(g, &args)?,
        Command::Logout(args) => login::logout(&args)?,
        Command::Tag(args) => tag::tag(&g.store()?, &args)?,
        Command::Rmi(args) => return rmi::rmi(&g.store()?, &args),
        Command::Image(command) => return groups::image(&g.store()?, &command),
        Command::Container(command) => return groups::container(&g.store()?, &command),
        Command::System(command @ groups::SystemCommand::Df(_)) => {
            return groups::system(&g.existing_store()?, &command);
        }
        Command::System(command) => return groups::system(&g.store()?, &command),
        Command::Check(args) if !args.repair => {
            return check::check(&g.existing_store()?, &args, g.quiet);
        }
        Command::Check(args) => return check::check(&g.store()?, &args, g.quiet),
        Command::Load(args) => load::load(g, &args)?,
        Command::Completion(args) => completion::completion(Cli::command(), &args)?,
        Command::Man(args) => completion::man(Cli::command(), &args)?,
        Command::Info(args) => info::info(&g.store()?, g.config_path(), &args)?,
        Command::Unshare(args) => return unshare::unshare(&args),
    }
    Ok(ExitCode::SUCCESS)
}

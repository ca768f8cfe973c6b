//! Container commands: `pull-and-mount`, `ps`, `rm`, `bundle`, `run`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use strata::bundle;
use strata::container::{Container, ContainerError, ContainerView, RunSignals, Supervision};
use strata::pull::{self, PullStatus};
use strata::store::{Store, StoreError};
use strata::transport::Transport;

use super::args::{Format, Global, PullArg, PullFlags};
use super::describe::describe;
use super::run_flags::{ProcessArgs, run_options};
use super::{container_status, interrupt, json_lines, privileges, progress, units};

/// `pull-and-mount` arguments.
#[derive(Debug, Args)]
pub struct PullAndMountArgs {
    /// Container name (default: the first 12 chars of its id)
    #[arg(long)]
    name: Option<String>,
    /// Print id, name, image and the overlay dirs as JSON instead of the merged dir
    #[arg(long)]
    json: bool,
    /// When to contact the registry
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullArg,
    /// Image reference
    image: String,
    #[command(flatten)]
    flags: PullFlags,
}

/// `ps` arguments (`-q`, Docker's "IDs only", is the global `--quiet`).
#[derive(Debug, Args)]
pub struct PsArgs {
    /// JSON output: one document (the keys of `pull-and-mount --json`, with State, ExitCode,
    /// Pid, StartedAt and FinishedAt)
    #[arg(long)]
    json: bool,
    /// Output format: table, or json (one object per line, Docker's keys)
    #[arg(long, value_enum, default_value_t, conflicts_with = "json")]
    format: Format,
}

/// `bundle` arguments.
#[derive(Debug, Args)]
pub struct BundleArgs {
    #[command(flatten)]
    process: ProcessArgs,
    /// Container name or id
    container: String,
    /// Bundle directory to write config.json into
    dir: PathBuf,
    /// Command and arguments (replace the image's Cmd)
    #[arg(last = true)]
    args: Vec<String>,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    process: ProcessArgs,
    /// Remove the container (unmount and delete) when the command exits
    #[arg(long)]
    rm: bool,
    /// Container name
    #[arg(long)]
    name: Option<String>,
    /// Seconds the container gets after SIGTERM/SIGINT (or the --timeout) before SIGKILL
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    stop_timeout: u64,
    /// Stop the container (SIGTERM, SIGKILL after --stop-timeout) when it runs longer than
    /// this, and exit 124
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    /// OCI runtime to run the bundle with (a command on PATH or a path)
    #[arg(long, default_value = "runc", env = "STRATA_RUNTIME")]
    runtime: String,
    /// When to contact the registry
    #[arg(long, value_enum, default_value = "missing")]
    pull: PullArg,
    #[command(flatten)]
    flags: PullFlags,
    /// Image reference
    image: String,
    /// Command and arguments (replace the image's Cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Makes sure the image is present (per `--pull`), then creates and mounts a container.
fn create(
    g: &Global,
    flags: &PullFlags,
    image: &str,
    name_arg: Option<&str>,
    policy: PullArg,
) -> Result<Container> {
    let store = g.store()?;
    let parsed = Transport::parse(image);
    if policy != PullArg::Always {
        let name = parsed.as_ref().ok().and_then(|t| t.name().ok());
        let normalised = name.as_ref().map(ToString::to_string);
        if let Some(record) = store.image_by_id(normalised.as_deref(), image)? {
            return Ok(Container::create(&store, &record, image, name_arg)?);
        }
    }
    let transport = parsed?;
    let reference = transport.name()?;
    let options = g.pull_options(flags)?;
    let source = Arc::new(transport.open(&g.client(flags)?)?);
    let observer = progress::observer(g.quiet);
    let ensured = interrupt::block_on(pull::ensure_image_from(
        source,
        &store,
        &reference,
        policy.into(),
        &options,
        observer.clone(),
    ));
    observer.finish();
    let (image, outcome) = ensured??;
    if let Some(outcome) = outcome.filter(|_| !g.quiet) {
        eprintln!("Digest: {}", outcome.digest);
        if outcome.status == PullStatus::Downloaded {
            eprintln!("Status: Downloaded newer image for {reference}");
        }
    }
    Ok(Container::create(
        &store,
        &image,
        &reference.to_string(),
        name_arg,
    )?)
}

/// `strata pull-and-mount`.
pub fn pull_and_mount(g: &Global, args: &PullAndMountArgs) -> Result<()> {
    privileges::require_root("pull-and-mount")?;
    let container = create(g, &args.flags, &args.image, args.name.as_deref(), args.pull)?;
    let view = container.view()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        println!("{}", view.merged.display());
    }
    Ok(())
}

/// `strata ps`.
pub fn ps(store: &Store, args: &PsArgs, ids_only: bool) -> Result<()> {
    let views = Container::list(store)?
        .iter()
        .map(Container::view)
        .collect::<Result<Vec<ContainerView>, _>>()?;
    if ids_only {
        for v in &views {
            println!("{}", v.id.get(..12).unwrap_or(&v.id));
        }
        return Ok(());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    let now = units::now();
    if args.format == Format::Json {
        for v in &views {
            println!("{}", json_lines::container(v, now));
        }
        return Ok(());
    }
    println!(
        "{:<14} {:<20} {:<40} {:<12} {:<28} CREATED",
        "CONTAINER ID", "NAME", "IMAGE", "STATE", "STATUS"
    );
    for v in views {
        println!(
            "{:<14} {:<20} {:<40} {:<12} {:<28} {}",
            v.id.get(..12).unwrap_or(&v.id),
            v.name,
            v.image,
            container_status::state(&v),
            container_status::status(&v, now),
            units::age(Some(&v.created), now)
        );
    }
    Ok(())
}

/// `strata rm`: every container is tried; the command fails if any failed.
pub fn rm(store: &Store, names: &[String], force: bool) -> Result<()> {
    let mut failed = 0;
    for name in names {
        let result = Container::open(store, name).and_then(|c| c.remove(force));
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("error: {}", describe(&e.into()));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} containers could not be removed",
            names.len()
        );
    }
    Ok(())
}

/// `strata bundle`.
pub fn bundle(store: &Store, args: &BundleArgs) -> Result<()> {
    let container = Container::open(store, &args.container)?;
    let opts = run_options(&args.process, &args.args)?;
    let path = container.write_bundle(&args.dir, &opts)?;
    println!("{}", path.display());
    Ok(())
}

/// `strata run`: the container's exit code becomes ours; strata's own failures are 125, a
/// command that cannot be executed 126, one not found 127, the time limit 124 (Docker's codes,
/// and GNU timeout's). An interrupt while pulling keeps 130/143.
pub fn run(g: &Global, args: &RunArgs) -> Result<ExitCode> {
    match run_container(g, args) {
        Ok(code) => Ok(code),
        Err(e) if e.is::<interrupt::Interrupted>() => Err(e),
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            Ok(ExitCode::from(failure_code(&e)))
        }
    }
}

/// Docker's exit code for a `run` that failed before or while starting the command.
fn failure_code(e: &anyhow::Error) -> u8 {
    let code = e
        .chain()
        .find_map(|cause| match cause.downcast_ref::<ContainerError>() {
            Some(ContainerError::CommandNotFound { .. }) => Some(127),
            Some(ContainerError::CommandNotExecutable { .. }) => Some(126),
            Some(ContainerError::RuntimeFailed { exit_code, .. }) => Some(*exit_code),
            _ => None,
        });
    code.and_then(|c| u8::try_from(c).ok()).unwrap_or(125)
}

fn run_container(g: &Global, args: &RunArgs) -> Result<ExitCode> {
    privileges::require_root("run")?;
    let opts = run_options(&args.process, &args.args)?;
    let runtime = bundle::find_runtime(&args.runtime)?;
    let container = create(g, &args.flags, &args.image, args.name.as_deref(), args.pull)?;
    let supervision = Supervision {
        runtime,
        stop_timeout: Duration::from_secs(args.stop_timeout),
        timeout: args.timeout.map(Duration::from_secs),
        own_process_group: !std::io::stdin().is_terminal(),
    };
    // Caught from here on: a signal while the bundle is written reaches the container once
    // it exists, and --rm still cleans up.
    let result = RunSignals::catch().and_then(|signals| {
        container.write_state_bundle(&opts)?;
        container.run_supervised(&supervision, &signals)
    });
    if args.rm {
        remove_after_run(&container)?;
    }
    let outcome = result?;
    if outcome.timed_out {
        eprintln!(
            "error: container {} timed out after {}s and was stopped (exit code {})",
            container.name(),
            args.timeout.unwrap_or_default(),
            outcome.exit_code
        );
        return Ok(ExitCode::from(124));
    }
    Ok(ExitCode::from(
        u8::try_from(outcome.exit_code).unwrap_or(255),
    ))
}

/// `--rm`: removes the container, unless another process (`rm -f`) did, or does meanwhile.
fn remove_after_run(container: &Container) -> Result<()> {
    let store = container.store();
    let gone = || {
        matches!(
            Container::open(store, container.id()),
            Err(ContainerError::Store(StoreError::NoSuchContainer(_)))
        )
    };
    match Container::open(store, container.id()).and_then(|c| c.remove(true)) {
        Err(_) if gone() => Ok(()),
        result => result.with_context(|| format!("removing container {}", container.name())),
    }
}

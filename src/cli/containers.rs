//! Container commands: `pull-and-mount`, `ps`, `rm`, `bundle`, `run`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;

use strata::bundle::{self, RunOptions};
use strata::container::{Container, ContainerView};
use strata::pull::{self, PullStatus};
use strata::store::Store;
use strata::transport::Transport;

use super::args::{Format, Global, PullArg, PullFlags};
use super::describe::describe;
use super::{interrupt, json_lines, privileges, progress, units};

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
    /// JSON output: one document (the keys of `pull-and-mount --json`)
    #[arg(long)]
    json: bool,
    /// Output format: table, or json (one object per line, Docker's keys)
    #[arg(long, value_enum, default_value_t, conflicts_with = "json")]
    format: Format,
}

/// `docker run`-style process options shared by `bundle` and `run`.
#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Set an environment variable (KEY=VALUE, or KEY to take it from this environment)
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// User inside the container: name|uid[:group|gid]
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Override the image's entrypoint ("" clears it)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Allocate a terminal
    #[arg(short, long)]
    tty: bool,
    /// Mount the rootfs read-only in the runtime
    #[arg(long)]
    read_only: bool,
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
    name: Option<&str>,
    policy: PullArg,
) -> Result<Container> {
    let transport = Transport::parse(image)?;
    let reference = transport.name()?;
    let store = g.store()?;
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
        name,
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
        "{:<14} {:<20} {:<40} {:<10} CREATED",
        "CONTAINER ID", "NAME", "IMAGE", "STATE"
    );
    for v in views {
        let state = if v.mounted { "mounted" } else { "unmounted" };
        println!(
            "{:<14} {:<20} {:<40} {:<10} {}",
            &v.id[..12],
            v.name,
            v.image,
            state,
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

fn run_options(p: &ProcessArgs, args: &[String]) -> Result<RunOptions> {
    if p.tty && !std::io::stdin().is_terminal() {
        bail!("--tty needs a terminal on stdin (the input device is not a TTY)");
    }
    Ok(RunOptions {
        args: args.to_vec(),
        entrypoint: p.entrypoint.clone(),
        env: p.env.clone(),
        workdir: p.workdir.clone(),
        user: p.user.clone(),
        hostname: None,
        tty: p.tty,
        read_only: p.read_only,
    })
}

/// `strata bundle`.
pub fn bundle(store: &Store, args: &BundleArgs) -> Result<()> {
    let container = Container::open(store, &args.container)?;
    let opts = run_options(&args.process, &args.args)?;
    let path = container.write_bundle(&args.dir, &opts)?;
    println!("{}", path.display());
    Ok(())
}

/// `strata run`: the container's exit code becomes ours.
pub fn run(g: &Global, args: &RunArgs) -> Result<ExitCode> {
    privileges::require_root("run")?;
    let opts = run_options(&args.process, &args.args)?;
    bundle::find_runtime(&args.runtime)?;
    let container = create(g, &args.flags, &args.image, args.name.as_deref(), args.pull)?;
    let result = container.write_state_bundle(&opts).and_then(|_| {
        // The runtime forwards terminal signals to the container; strata must live on to clean up.
        ignore_terminal_signals();
        container.run_bundle(&args.runtime)
    });
    if args.rm {
        let name = container.name().to_string();
        container
            .remove(true)
            .with_context(|| format!("removing container {name}"))?;
    }
    let code = result?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

fn ignore_terminal_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP] {
        // These are valid signals, which can always be ignored.
        let _ = strata::sys::signals::ignore(signal);
    }
}

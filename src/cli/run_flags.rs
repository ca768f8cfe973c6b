//! `docker run`-style flags shared by `bundle` and `run`, and the [`RunOptions`] they make.

use std::io::IsTerminal;

use anyhow::{Result, bail};
use clap::Args;

use strata::bundle::RunOptions;

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

/// The [`RunOptions`] of `bundle` and `run` from their flags and trailing arguments.
pub(super) fn run_options(p: &ProcessArgs, args: &[String]) -> Result<RunOptions> {
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

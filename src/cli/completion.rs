//! `strata completion SHELL` and `strata man DIR`: shell completions (clap_complete) and man
//! pages (clap_mangen), both generated from the same clap definitions as `--help`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

/// `completion` arguments.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for (bash, zsh, fish, elvish, powershell)
    shell: Shell,
}

/// `man` arguments.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write strata.1 and one strata-COMMAND.1 per command into (created if
    /// missing)
    dir: PathBuf,
}

/// Prints the completion script of `args.shell` for `command` on stdout.
pub fn completion(mut command: clap::Command, args: &CompletionArgs) -> Result<()> {
    let name = command.get_name().to_string();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    std::io::stdout()
        .write_all(&script)
        .context("writing the completion script")
}

/// Writes the man pages of `command` and its subcommands into `args.dir`; prints the dir.
pub fn man(command: clap::Command, args: &ManArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    clap_mangen::generate_to(command, &args.dir)
        .with_context(|| format!("cannot write the man pages into {}", args.dir.display()))?;
    println!("{}", args.dir.display());
    Ok(())
}

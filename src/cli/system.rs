//! `system` subcommands: the store as a whole.

use anyhow::Result;
use clap::Subcommand;

use super::args::Global;
use super::df;

/// `strata system ...`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage: images (shared layers counted once) and containers (writable layers)
    Df(df::DfArgs),
}

/// Runs a `system` subcommand.
pub fn run(g: &Global, command: &SystemCommand) -> Result<()> {
    match command {
        SystemCommand::Df(args) => df::df(&g.store()?, args),
    }
}

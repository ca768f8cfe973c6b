//! `strata kill`: send a signal to containers that a `strata run` in another process runs, as
//! `docker kill` does (each name printed once signalled; exit 1 if any failed).

use anyhow::Result;
use clap::Args;

use strata::store::Store;

use super::signal_names;
use super::stop::each;

/// `kill` arguments.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send: a name (KILL, SIGTERM, usr1) or a number
    #[arg(short, long, default_value = "KILL", value_parser = signal_names::parse)]
    signal: i32,
    /// Container names or ids
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `strata kill`: sends the signal; a container that does not run is an error.
pub fn kill(store: &Store, args: &KillArgs) -> Result<()> {
    each(store, &args.containers, "killed", |c| c.kill(args.signal))
}

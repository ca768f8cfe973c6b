//! `strata stop`: stop containers that a `strata run` in another process runs, as `docker
//! stop` does (each name printed once stopped; exit 1 if any failed).

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use strata::container::Container;
use strata::store::Store;

use super::describe::describe;

/// `stop` arguments.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        default_value_t = 10
    )]
    timeout: u64,
    /// Container names or ids
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `action` on each container, printing its name when it succeeded and the error
/// otherwise; fails when any failed.
pub(super) fn each(
    store: &Store,
    names: &[String],
    what: &str,
    action: impl Fn(&Container) -> Result<(), strata::container::ContainerError>,
) -> Result<()> {
    let mut failed = 0;
    for name in names {
        match Container::open(store, name).and_then(|c| action(&c)) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("error: {}", describe(&e.into()));
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} containers could not be {what}", names.len());
    }
    Ok(())
}

/// `strata stop`: SIGTERM, then SIGKILL after the timeout; a stopped container is left alone.
pub fn stop(store: &Store, args: &StopArgs) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    each(store, &args.containers, "stopped", |c| c.stop(timeout))
}

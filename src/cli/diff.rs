//! `strata diff CONTAINER`: Docker's `A`/`C`/`D` lines of what a container changed.

use anyhow::Result;
use clap::Args;

use strata::container::Container;
use strata::store::Store;

/// `diff` arguments.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// JSON output: Docker's API list, `[{"Path": "/etc", "Kind": 0}]` (0 changed, 1 added,
    /// 2 deleted)
    #[arg(long)]
    json: bool,
    /// Container name or id
    container: String,
}

/// Prints the container's changes, one `KIND PATH` line each (`C /etc`, `A /etc/new`).
pub fn diff(store: &Store, args: &DiffArgs) -> Result<()> {
    let changes = Container::open(store, &args.container)?.changes()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(());
    }
    for change in changes {
        println!("{} {}", change.kind.letter(), change.path);
    }
    Ok(())
}

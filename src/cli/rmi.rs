//! `strata rmi` (and `strata image rm`).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use strata::pull::store_key;
use strata::reference::Reference;
use strata::store::{Deletion, Store};

use super::describe::describe;

/// `rmi` arguments.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Untag and delete images a container uses (never the layers it stands on), and images
    /// tagged in several repositories by id
    #[arg(short, long)]
    force: bool,
    /// JSON output: the untagged references and deleted ids
    #[arg(long)]
    json: bool,
    /// Image references, ids or id prefixes
    #[arg(required = true)]
    images: Vec<String>,
}

/// Removes each image in turn; a refused one is reported and the others still go (exit 1).
pub fn rmi(store: &Store, args: &RmiArgs) -> Result<ExitCode> {
    store.recover(false)?;
    let mut failed = false;
    let mut all = Vec::new();
    for name in &args.images {
        let key = Reference::parse(name).ok().map(|r| store_key(&r));
        match store.remove_image(key.as_deref(), name, args.force) {
            Ok(removal) => {
                if !args.json {
                    print_items(&removal.items, "Untagged", "Deleted");
                }
                all.extend(removal.items);
            }
            Err(e) => {
                eprintln!("error: {}", describe(&e.into()));
                failed = true;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One `<Untagged>: ref` or `<Deleted>: id` line per item.
pub(super) fn print_items(items: &[Deletion], untagged: &str, deleted: &str) {
    for item in items {
        match item {
            Deletion::Untagged(r) => println!("{untagged}: {r}"),
            Deletion::Deleted(id) => println!("{deleted}: {id}"),
        }
    }
}

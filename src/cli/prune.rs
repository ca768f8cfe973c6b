//! `strata image prune`, `strata container prune` and `strata system prune`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;

use strata::container::Container;
use strata::store::{Deletion, PruneImages, Store};

use super::rmi::print_items;
use super::units;

/// `image prune` and `system prune` arguments.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only untagged ones
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    force: bool,
    /// JSON output: the removed ids and the reclaimed bytes
    #[arg(long)]
    json: bool,
}

/// `container prune` arguments.
#[derive(Debug, Args)]
pub struct ContainerPruneArgs {
    /// Do not ask for confirmation
    #[arg(short, long)]
    force: bool,
    /// JSON output: the removed ids and the reclaimed bytes
    #[arg(long)]
    json: bool,
}

/// What a prune removed, in the shape of Docker's API.
#[derive(Debug, Default, Serialize)]
struct Report {
    #[serde(rename = "ContainersDeleted", skip_serializing_if = "Option::is_none")]
    containers: Option<Vec<String>>,
    #[serde(rename = "ImagesDeleted", skip_serializing_if = "Option::is_none")]
    images: Option<Vec<Deletion>>,
    #[serde(rename = "SpaceReclaimed")]
    reclaimed: u64,
}

/// `strata image prune [-a] [-f]`.
pub fn image_prune(store: &Store, args: &PruneArgs) -> Result<()> {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !confirm(warning, args.force)? {
        return Ok(());
    }
    let mut report = Report::default();
    prune_images(store, args.all, &mut report)?;
    print(&report, args.json)
}

/// `strata container prune [-f]`.
pub fn container_prune(store: &Store, args: &ContainerPruneArgs) -> Result<()> {
    if !confirm(
        "WARNING! This will remove all containers that are not mounted.",
        args.force,
    )? {
        return Ok(());
    }
    let mut report = Report::default();
    prune_containers(store, &mut report)?;
    print(&report, args.json)
}

/// `strata system prune [-a] [-f]`: containers not mounted, then images as `image prune`.
pub fn system_prune(store: &Store, args: &PruneArgs) -> Result<()> {
    let images = if args.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    };
    let warning = format!(
        "WARNING! This will remove:\n  - all containers that are not mounted\n  - {images}\n"
    );
    if !confirm(&warning, args.force)? {
        return Ok(());
    }
    let mut report = Report::default();
    prune_containers(store, &mut report)?;
    prune_images(store, args.all, &mut report)?;
    print(&report, args.json)
}

fn prune_containers(store: &Store, report: &mut Report) -> Result<()> {
    store.recover(false)?;
    let mut removed = Vec::new();
    for container in Container::list(store)? {
        if container.view()?.mounted {
            continue;
        }
        let size = store.container_size(container.record());
        let id = container.id().to_string();
        // Mounted meanwhile by another process: it stays.
        if container.remove(false).is_ok() {
            removed.push(id);
            report.reclaimed += size;
        }
    }
    report.containers = Some(removed);
    Ok(())
}

fn prune_images(store: &Store, all: bool, report: &mut Report) -> Result<()> {
    store.recover(false)?;
    let which = if all {
        PruneImages::All
    } else {
        PruneImages::Dangling
    };
    let removal = store.prune_images(which)?;
    report.reclaimed += removal.reclaimed;
    report.images = Some(removal.items);
    Ok(())
}

/// Docker's output: the sections with something in them, then the reclaimed space.
fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if let Some(ids) = report.containers.as_ref().filter(|c| !c.is_empty()) {
        println!("Deleted Containers:");
        for id in ids {
            println!("{id}");
        }
        println!();
    }
    if let Some(items) = report.images.as_ref().filter(|i| !i.is_empty()) {
        println!("Deleted Images:");
        print_items(items, "untagged", "deleted");
        println!();
    }
    // Docker prints it with `units.HumanSize`: 4 significant digits.
    println!(
        "Total reclaimed space: {}",
        units::human_size_precise(report.reclaimed)
    );
    Ok(())
}

/// Asks `warning` + "Are you sure you want to continue? [y/N]" on a terminal; without one,
/// only `force` proceeds.
fn confirm(warning: &str, force: bool) -> Result<bool> {
    if force {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to prune without confirmation: stdin is not a terminal (pass -f to prune)");
    }
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

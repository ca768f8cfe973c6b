//! `system df`: Docker's disk usage table (`-v`: per image and per container; `--json`).

use anyhow::Result;
use clap::Args;

use strata::store::Store;

use super::args::Format;
use super::disk_usage::{self, DiskUsage, Summary};
use super::images::short_id;
use super::json_lines;
use super::units::{self, human_size, human_size_precise};

/// `system df` arguments.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show each image's and each container's usage
    #[arg(short, long)]
    verbose: bool,
    /// JSON output: one document, bytes (the details with -v)
    #[arg(long)]
    json: bool,
    /// Output format: table, or json (one object per line, Docker's keys and values; no -v)
    #[arg(long, value_enum, default_value_t, conflicts_with_all = ["json", "verbose"])]
    format: Format,
}

/// `strata system df`.
pub fn df(store: &Store, args: &DfArgs) -> Result<()> {
    let mut usage = disk_usage::measure(store, units::now())?;
    if args.format == Format::Json {
        for (kind, s) in [("Images", &usage.images), ("Containers", &usage.containers)] {
            let line =
                json_lines::disk_usage(kind, s.total_count, s.active, s.size, &reclaimable(s));
            println!("{line}");
        }
    } else if args.json {
        if !args.verbose {
            usage.image_details.clear();
            usage.container_details.clear();
        }
        println!("{}", serde_json::to_string_pretty(&usage)?);
    } else if args.verbose {
        print_verbose(&usage);
    } else {
        print_summary(&usage);
    }
    Ok(())
}

fn print_summary(usage: &DiskUsage) {
    println!(
        "{:<16}{:<10}{:<10}{:<12}RECLAIMABLE",
        "TYPE", "TOTAL", "ACTIVE", "SIZE"
    );
    for (kind, summary) in [("Images", &usage.images), ("Containers", &usage.containers)] {
        println!(
            "{kind:<16}{:<10}{:<10}{:<12}{}",
            summary.total_count,
            summary.active,
            human_size_precise(summary.size),
            reclaimable(summary)
        );
    }
}

/// Docker's `SIZE (NN%)`: the percentage rounded down, left out when there is nothing at all.
fn reclaimable(summary: &Summary) -> String {
    let size = human_size_precise(summary.reclaimable);
    match (u128::from(summary.reclaimable) * 100).checked_div(u128::from(summary.size)) {
        Some(percent) => format!("{size} ({percent}%)"),
        None => size,
    }
}

fn print_verbose(usage: &DiskUsage) {
    println!("Images space usage:\n");
    println!(
        "{:<40} {:<16} {:<14} {:<22} {:<10} {:<12} {:<12} CONTAINERS",
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE"
    );
    for i in &usage.image_details {
        println!(
            "{:<40} {:<16} {:<14} {:<22} {:<10} {:<12} {:<12} {}",
            i.repository,
            i.tag,
            short_id(&i.id),
            i.created_since,
            human_size(i.size),
            human_size_precise(i.shared_size),
            human_size_precise(i.unique_size),
            i.containers
        );
    }
    println!("\nContainers space usage:\n");
    println!(
        "{:<14} {:<40} {:<10} {:<22} {:<10} NAMES",
        "CONTAINER ID", "IMAGE", "SIZE", "CREATED", "STATUS"
    );
    for c in &usage.container_details {
        let status = if c.mounted { "mounted" } else { "unmounted" };
        println!(
            "{:<14} {:<40} {:<10} {:<22} {:<10} {}",
            c.id.get(..12).unwrap_or(&c.id),
            c.image,
            human_size(c.size),
            c.created_since,
            status,
            c.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaimable_as_docker_prints_it() {
        let s = |size, reclaimable| Summary {
            total_count: 1,
            active: 0,
            size,
            reclaimable,
        };
        assert_eq!(reclaimable(&s(1500, 300)), "300B (20%)");
        assert_eq!(reclaimable(&s(3, 2)), "2B (66%)");
        assert_eq!(reclaimable(&s(0, 0)), "0B");
    }
}

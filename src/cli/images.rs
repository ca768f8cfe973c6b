//! `pull`, `images` and `inspect`.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use strata::container::{Container, ContainerError};
use strata::image::Platform;
use strata::pull::{self, PullOptions, PullOutcome, PullStatus, store_key};
use strata::reference::Reference;
use strata::source::AnySource;
use strata::store::{Store, StoreError};
use strata::transport::Transport;

use super::args::{Format, Global, PullFlags};
use super::image_list::{self, Filter, ImageRow};
use super::interrupt;
use super::{inspect, json_lines, progress, units};

/// `pull` arguments.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference, e.g. alpine, alpine:3.20, host:5000/repo@sha256:..., or a transport:
    /// oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG], docker://REF
    reference: String,
    #[command(flatten)]
    flags: PullFlags,
}

/// `strata pull`: progress on stderr, the full reference on stdout.
pub fn pull(g: &Global, args: &PullArgs) -> Result<()> {
    let transport = Transport::parse(&args.reference)?;
    let reference = transport.name()?;
    let store = g.store()?;
    let options = g.pull_options(&args.flags)?;
    let source = transport.open(&g.client(&args.flags)?)?;
    let outcome = pull_with_progress(g.quiet, source, &store, &reference, &options)?;
    if !g.quiet {
        eprintln!("Digest: {}", outcome.digest);
        match outcome.status {
            PullStatus::Downloaded => eprintln!("Status: Downloaded newer image for {reference}"),
            PullStatus::UpToDate => eprintln!("Status: Image is up to date for {reference}"),
        }
    }
    println!("{reference}");
    Ok(())
}

/// Pulls `reference` from `source` into `store`, showing progress (unless `quiet`) and
/// stopping cleanly on Ctrl-C.
pub(super) fn pull_with_progress(
    quiet: bool,
    source: AnySource,
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
) -> Result<PullOutcome> {
    let observer = progress::observer(quiet);
    let outcome = interrupt::block_on(pull::pull_from(
        Arc::new(source),
        store,
        reference,
        options,
        observer.clone(),
    ));
    observer.finish();
    Ok(outcome??)
}

/// `images` arguments (`-q`, Docker's "IDs only", is the global `--quiet`).
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// JSON output: one document
    #[arg(long)]
    json: bool,
    /// Output format: table, or json (one object per line, Docker's keys and values)
    #[arg(long, value_enum, default_value_t, conflicts_with = "json")]
    format: Format,
    /// Show all images (strata keeps no intermediate images: the same as without)
    #[arg(short, long)]
    all: bool,
    /// Show a DIGEST column (the digest the image was pulled by)
    #[arg(long)]
    digests: bool,
    /// Filter: dangling=true|false (untagged images), reference=PATTERN (`*` and `?` globs
    /// on REPO or REPO:TAG); repeatable
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = Filter::parse)]
    filters: Vec<Filter>,
}

/// Prints the images (one row per tag, `<none>` rows for untagged ones) as a table, JSON, or
/// with `ids_only` (`-q`) their ids only, each once.
pub fn list(store: &Store, args: &ImagesArgs, ids_only: bool) -> Result<()> {
    // Docker's -a adds intermediate images, which strata does not have.
    let _ = args.all;
    let rows: Vec<ImageRow> = image_list::image_rows(store, units::now())?
        .into_iter()
        .map(|listed| listed.row)
        .filter(|row| image_list::keep(row, &args.filters))
        .collect();
    if ids_only {
        let mut seen = HashSet::new();
        for row in &rows {
            if seen.insert(&row.id) {
                println!("{}", short_id(&row.id));
            }
        }
        return Ok(());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if args.format == Format::Json {
        for row in &rows {
            println!("{}", json_lines::image(row, short_id(&row.id)));
        }
        return Ok(());
    }
    let digest_header = if args.digests {
        format!("{:<72}", "DIGEST")
    } else {
        String::new()
    };
    println!(
        "{:<40} {:<16} {digest_header}{:<14} {:<22} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"
    );
    for row in rows {
        let digest = match (args.digests, row.digest.as_str()) {
            (false, _) => String::new(),
            (true, "") => format!("{:<72}", image_list::NONE),
            (true, digest) => format!("{digest:<72}"),
        };
        println!(
            "{:<40} {:<16} {digest}{:<14} {:<22} {:>10}",
            row.repository,
            row.tag,
            short_id(&row.id),
            row.created_since,
            units::human_size(row.size),
        );
    }
    Ok(())
}

/// The 12-hex-char id Docker's tables show.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// Prints `[ {inspect object} ]` for a container (by name or id) or else an image (of
/// `platform` among those a reference names, e.g. an index digest).
pub fn inspect(store: &Store, name: &str, platform: &Platform) -> Result<()> {
    let value = match Container::open(store, name) {
        Ok(container) => inspect::container_inspect(&container.view()?),
        Err(ContainerError::Store(StoreError::NoSuchContainer(_))) => {
            let key = Reference::parse(name).ok().map(|r| store_key(&r));
            let image = store
                .resolve_image_for(key.as_deref(), name, platform)
                .map_err(|e| match e {
                    StoreError::NoSuchImage(_) => {
                        anyhow::anyhow!("no such image or container: {name}")
                    }
                    e => e.into(),
                })?;
            inspect::image_inspect(store, &image).with_context(|| format!("inspecting {name}"))?
        }
        Err(e) => return Err(e.into()),
    };
    println!("{}", serde_json::to_string_pretty(&[value])?);
    Ok(())
}

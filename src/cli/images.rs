//! `pull`, `images` and `inspect`.

use anyhow::{Context, Result};

use strata::container::{Container, ContainerError};
use strata::image::Platform;
use strata::pull::{self, PullStatus, store_key};
use strata::reference::Reference;
use strata::store::{Store, StoreError};

use super::args::Global;
use super::async_runtime::runtime;
use super::{inspect, progress};

/// `strata pull`: progress on stderr, the full reference on stdout.
pub fn pull(g: &Global, reference: &str) -> Result<()> {
    let reference = Reference::parse(reference)?;
    let store = g.store()?;
    let options = g.pull_options()?;
    let client = g.client()?;
    let observer = progress::observer(g.quiet);
    let outcome = runtime()?.block_on(pull::pull(
        &client,
        &store,
        &reference,
        &options,
        observer.clone(),
    ));
    observer.finish();
    let outcome = outcome?;
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

/// Prints the tagged images as a table or JSON.
pub fn list(store: &Store, json: bool) -> Result<()> {
    let rows = inspect::image_rows(store)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<40} {:<16} {:<14} {:<22} {:>10}",
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"
    );
    for row in rows {
        let id = row["Id"].as_str().unwrap_or_default();
        println!(
            "{:<40} {:<16} {:<14} {:<22} {:>10}",
            row["Repository"].as_str().unwrap_or_default(),
            row["Tag"].as_str().unwrap_or_default(),
            id.strip_prefix("sha256:")
                .unwrap_or(id)
                .get(..12)
                .unwrap_or_default(),
            row["Created"]
                .as_str()
                .unwrap_or_default()
                .get(..19)
                .unwrap_or_default(),
            human_size(row["Size"].as_u64().unwrap_or_default()),
        );
    }
    Ok(())
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

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

//! `images` and `inspect` output.

use anyhow::{Context, Result};

use strata::inspect;
use strata::reference::Reference;
use strata::store::Store;

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

/// Prints `[ {docker image inspect object} ]` for one image.
pub fn inspect(store: &Store, name: &str) -> Result<()> {
    let normalised = Reference::parse(name)
        .ok()
        .map(|r| match (&r.digest, &r.tag) {
            (Some(d), _) => format!("{}@{}", r.repo_name(), d),
            (None, _) => format!("{}:{}", r.repo_name(), r.tag_or_default()),
        });
    let image = store.resolve_image(normalised.as_deref(), name)?;
    let value =
        inspect::image_inspect(store, &image).with_context(|| format!("inspecting {name}"))?;
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

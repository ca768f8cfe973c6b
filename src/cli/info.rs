//! `strata info`: the storage part of `docker info` (driver, backing filesystem, the root and
//! what it holds, the overlay features strata's mounts use, the config file).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde_json::json;

use strata::store::preflight::{self, BackingFilesystem};
use strata::store::{Store, StoreKind};

use super::args::Format;

/// `info` arguments.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format: table, or json (one object with Docker's keys: Driver, DriverStatus, ...)
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// What `info` shows.
struct Info {
    root: PathBuf,
    /// Who made the store: root or rootless.
    kind: StoreKind,
    fs: BackingFilesystem,
    native_overlay_diff: bool,
    mounts: OverlayFeatures,
    images: usize,
    containers: usize,
    layers: usize,
    config_file: Option<PathBuf>,
}

/// The overlay mount features this kernel gives strata (see `strata::mount`).
struct OverlayFeatures {
    /// `fsopen` with `lowerdir+` (Linux 6.8+), else `mount(2)`.
    new_mount_api: bool,
    /// How many layers one mount takes.
    layers_per_mount: &'static str,
}

/// Prints the store's storage information.
pub fn info(store: &Store, config: Option<&Path>, args: &InfoArgs) -> Result<()> {
    let images = store.images()?;
    let layers: HashSet<_> = images
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| l.chain_id.clone()))
        .collect();
    let info = Info {
        root: store.root().to_path_buf(),
        kind: store.kind()?,
        fs: preflight::backing_filesystem(store.root())?,
        native_overlay_diff: native_overlay_diff(),
        mounts: overlay_features(kernel_version()),
        images: images.len(),
        containers: store.containers()?.len(),
        layers: layers.len(),
        config_file: config_in_effect(config),
    };
    match args.format {
        Format::Table => print!("{}", table(&info)),
        Format::Json => println!("{}", json_line(&info)),
    }
    Ok(())
}

/// `docker info`'s layout: the driver, its status lines indented.
fn table(i: &Info) -> String {
    let mut out = String::from("Storage Driver: overlay2\n");
    for (key, value) in driver_status(i) {
        out.push_str(&format!(" {key}: {value}\n"));
    }
    out.push_str(&format!("Root Dir: {}\n", i.root.display()));
    out.push_str(&format!("Store Kind: {}\n", i.kind));
    out.push_str(&format!("Images: {}\n", i.images));
    out.push_str(&format!("Containers: {}\n", i.containers));
    out.push_str(&format!("Layers: {}\n", i.layers));
    out.push_str(&format!("Config File: {}\n", config_text(i)));
    out
}

/// The driver's status lines, Docker's first (same keys as `docker info`'s DriverStatus).
fn driver_status(i: &Info) -> Vec<(&'static str, String)> {
    vec![
        ("Backing Filesystem", i.fs.name.clone()),
        ("Supports d_type", i.fs.supports_d_type.to_string()),
        ("Native Overlay Diff", i.native_overlay_diff.to_string()),
        // Root mounts with trusted.overlay.* xattrs, rootless with user.overlay.* ones.
        ("userxattr", strata::rootless::is_rootless().to_string()),
        ("New Mount API", i.mounts.new_mount_api.to_string()),
        ("Layers per Mount", i.mounts.layers_per_mount.to_string()),
    ]
}

fn config_text(i: &Info) -> String {
    i.config_file
        .as_ref()
        .map_or_else(|| "none".to_string(), |p| p.display().to_string())
}

/// One JSON object, with `docker info --format json`'s keys where Docker has them.
fn json_line(i: &Info) -> serde_json::Value {
    let status: Vec<[String; 2]> = driver_status(i)
        .into_iter()
        .map(|(k, v)| [k.to_string(), v])
        .collect();
    json!({
        "Driver": "overlay2",
        "DriverStatus": status,
        "RootDir": i.root,
        "StoreKind": i.kind.as_str(),
        "Images": i.images,
        "Containers": i.containers,
        "Layers": i.layers,
        "ConfigFile": i.config_file,
    })
}

/// The config file strata reads: `--config`, else the default one if present.
fn config_in_effect(config: Option<&Path>) -> Option<PathBuf> {
    match config {
        Some(path) => Some(path.to_path_buf()),
        None => {
            let default = Path::new(strata::config::DEFAULT_CONFIG_PATH);
            default.exists().then(|| default.to_path_buf())
        }
    }
}

/// As Docker decides it: overlay's own diff is usable unless `redirect_dir` is on.
fn native_overlay_diff() -> bool {
    std::fs::read_to_string("/sys/module/overlay/parameters/redirect_dir")
        .map(|v| v.trim() != "Y")
        .unwrap_or(true)
}

/// The running kernel's `(major, minor)`, `(0, 0)` when unreadable.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Which of strata's mount methods a kernel of `version` takes (see `strata::mount`).
fn overlay_features(version: (u32, u32)) -> OverlayFeatures {
    if version >= (6, 13) {
        OverlayFeatures {
            new_mount_api: true,
            layers_per_mount: "500 (layers passed as file descriptors)",
        }
    } else if version >= (6, 8) {
        OverlayFeatures {
            new_mount_api: true,
            layers_per_mount: "500 (paths up to 255 bytes, else mount(2))",
        }
    } else {
        OverlayFeatures {
            new_mount_api: false,
            layers_per_mount: "as many as fit in one page of mount options (l/ short links)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_method_follows_the_kernel_version() {
        assert!(overlay_features((6, 13)).new_mount_api);
        assert!(
            overlay_features((7, 0))
                .layers_per_mount
                .starts_with("500 ")
        );
        assert!(overlay_features((6, 8)).new_mount_api);
        assert!(!overlay_features((6, 7)).new_mount_api);
        assert!(!overlay_features((5, 15)).new_mount_api);
    }
}

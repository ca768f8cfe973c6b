//! `strata mount` and `strata umount`: a container's rootfs mounted again, or unmounted; with
//! `--image`, an image's layers mounted read-only (podman's `image mount`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use strata::container::Container;
use strata::image::Platform;
use strata::pull::store_key;
use strata::reference::Reference;
use strata::store::{ImageRecord, Store};

use super::args::Global;
use super::privileges;

/// `mount` arguments.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Mount an image read-only instead (its layers only: no container, no writable layer)
    #[arg(long)]
    image: bool,
    /// Container name or id; with --image, an image reference or id
    name: String,
    /// With --image: the directory to mount at (default <root>/image-mounts/<id>/merged)
    dir: Option<PathBuf>,
}

/// `umount` arguments.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// Unmount an image mounted with `mount --image`
    #[arg(long)]
    image: bool,
    /// Container name or id; with --image, an image reference or id
    name: String,
}

/// `strata mount`: prints the merged dir (or the image's mount point).
pub fn mount(g: &Global, args: &MountArgs) -> Result<()> {
    privileges::require_root("mount")?;
    let store = g.store()?;
    let path = if args.image {
        let image = image(&store, &args.name)?;
        store.mount_image(&image, args.dir.as_deref())?
    } else {
        if args.dir.is_some() {
            bail!("a container is mounted at its own merged dir: DIR goes with --image only");
        }
        Container::open(&store, &args.name)?.mount()?
    };
    println!("{}", path.display());
    Ok(())
}

/// `strata umount`.
pub fn umount(store: &Store, args: &UmountArgs) -> Result<()> {
    if args.image {
        let image = image(store, &args.name)?;
        if !store.unmount_image(&image.id)? {
            eprintln!("{}: not mounted", args.name);
        }
        return Ok(());
    }
    let container = Container::open(store, &args.name)?;
    if !container.unmount(false)? {
        eprintln!("{}: not mounted", container.name());
    }
    Ok(())
}

/// The stored image a reference, id or id prefix names.
fn image(store: &Store, name: &str) -> Result<ImageRecord> {
    let key = Reference::parse(name).ok().map(|r| store_key(&r));
    Ok(store.resolve_image_for(key.as_deref(), name, &Platform::host())?)
}

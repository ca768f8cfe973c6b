//! `strata mount` and `strata umount`: a container's rootfs mounted again, or unmounted.

use anyhow::Result;
use clap::Args;

use strata::container::Container;
use strata::store::Store;

use super::args::Global;
use super::privileges;

/// `mount` arguments.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Container name or id
    container: String,
}

/// `umount` arguments.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// Container name or id
    container: String,
}

/// `strata mount`: prints the merged dir.
pub fn mount(g: &Global, args: &MountArgs) -> Result<()> {
    privileges::require_root("mount")?;
    let merged = Container::open(&g.store()?, &args.container)?.mount()?;
    println!("{}", merged.display());
    Ok(())
}

/// `strata umount`.
pub fn umount(store: &Store, args: &UmountArgs) -> Result<()> {
    let container = Container::open(store, &args.container)?;
    if !container.unmount(false)? {
        eprintln!("{}: not mounted", container.name());
    }
    Ok(())
}

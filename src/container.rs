//! Container lifecycle: create on an image, mount and unmount the merged rootfs, remove.

use std::path::PathBuf;

use serde::Serialize;

use crate::mount::{self, LegacyPaths, MountError, OverlaySpec};
use crate::store::{ContainerDirs, ContainerRecord, ImageRecord, Store, StoreError};

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Mounting or unmounting failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// `rm` without force on a mounted container.
    #[error("container {name} is mounted at {}: run `strata umount {name}` first or use `strata rm -f`", merged.display())]
    Mounted {
        /// The container's name.
        name: String,
        /// Its mount point.
        merged: PathBuf,
    },
    /// A layer of the container's image is gone (discarded after a crash, see `store::durable`).
    #[error(
        "container {name}: layer {} of its image is missing (a layer pulled with --no-sync is discarded when the machine went down before it was synced): pull {image} again", layer.display()
    )]
    LayerMissing {
        /// The container's name.
        name: String,
        /// Its image reference.
        image: String,
        /// The missing layer directory.
        layer: PathBuf,
    },
}

/// A container with its directories and mount state, as `ps`/`inspect`/`--json` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    /// 64-hex id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Reference it was created from.
    pub image: String,
    /// Image id.
    pub image_id: String,
    /// Creation time.
    pub created: String,
    /// Whether the merged dir is mounted now.
    pub mounted: bool,
    /// The merged rootfs.
    pub merged: PathBuf,
    /// The writable layer.
    pub upper: PathBuf,
    /// overlayfs' work dir.
    pub work: PathBuf,
    /// Lower dirs, nearest first (init layer, then the image's layers).
    pub lower: Vec<PathBuf>,
}

/// Describes a container's current state.
pub fn view(store: &Store, record: &ContainerRecord) -> Result<ContainerView, ContainerError> {
    let dirs = store.container_dirs(record)?;
    let mounted = mount::is_mounted(&dirs.merged)?;
    Ok(ContainerView {
        id: record.id.clone(),
        name: record.name.clone(),
        image: record.image_ref.clone(),
        image_id: record.image_id.to_string(),
        created: record.created.clone(),
        mounted,
        merged: dirs.merged,
        upper: dirs.upper,
        work: dirs.work,
        lower: dirs.lower,
    })
}

/// Creates a container on `image` and mounts it; on mount failure the container is removed again.
pub fn create_and_mount(
    store: &Store,
    image: &ImageRecord,
    image_ref: &str,
    name: Option<&str>,
) -> Result<ContainerRecord, ContainerError> {
    mount::check_privileges()?;
    let record = store.create_container(image, image_ref, name)?;
    if let Err(e) = mount_container(store, &record) {
        let _ = store.remove_container(&record);
        return Err(e);
    }
    Ok(record)
}

/// Mounts a container's merged dir (nothing to do when it is mounted already).
pub fn mount_container(store: &Store, record: &ContainerRecord) -> Result<PathBuf, ContainerError> {
    let dirs = store.container_dirs(record)?;
    if mount::is_mounted(&dirs.merged)? {
        return Ok(dirs.merged);
    }
    mount::check_privileges()?;
    // Layers a crash may have torn are discarded, never mounted.
    store.repair_unsynced(false)?;
    if let Some(layer) = dirs.lower.iter().find(|l| !l.is_dir()) {
        return Err(ContainerError::LayerMissing {
            name: record.name.clone(),
            image: record.image_ref.clone(),
            layer: layer.clone(),
        });
    }
    mount::mount_overlay(&overlay_spec(store, record, &dirs))?;
    Ok(dirs.merged)
}

fn overlay_spec(store: &Store, record: &ContainerRecord, dirs: &ContainerDirs) -> OverlaySpec {
    OverlaySpec {
        lower: dirs.lower.clone(),
        upper: Some((dirs.upper.clone(), dirs.work.clone())),
        target: dirs.merged.clone(),
        userxattr: false,
        legacy: Some(LegacyPaths {
            base: store.overlay_dir(),
            lower: dirs.lower_links.clone(),
            upper: format!("{}/diff", record.id),
            work: format!("{}/work", record.id),
        }),
    }
}

/// Unmounts a container's merged dir; `Ok(false)` when it was not mounted.
pub fn unmount_container(
    store: &Store,
    record: &ContainerRecord,
    detach: bool,
) -> Result<bool, ContainerError> {
    let dirs = store.container_dirs(record)?;
    if !mount::is_mounted(&dirs.merged)? {
        return Ok(false);
    }
    mount::unmount(&dirs.merged, detach)?;
    Ok(true)
}

/// Removes a container; a mounted one only with `force` (which unmounts it first).
pub fn remove(store: &Store, record: &ContainerRecord, force: bool) -> Result<(), ContainerError> {
    let dirs = store.container_dirs(record)?;
    if mount::is_mounted(&dirs.merged)? {
        if !force {
            return Err(ContainerError::Mounted {
                name: record.name.clone(),
                merged: dirs.merged,
            });
        }
        match mount::unmount(&dirs.merged, false) {
            Err(MountError::Busy { .. }) => mount::unmount(&dirs.merged, true)?,
            other => other?,
        }
    }
    store.remove_container(record)?;
    Ok(())
}

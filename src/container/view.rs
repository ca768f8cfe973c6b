//! What a container looks like now, as `ps`/`inspect`/`--json` show it.

use std::path::PathBuf;

use serde::Serialize;

use super::error::ContainerError;
use super::lifecycle::Container;
use crate::id::ImageId;
use crate::mount;

/// A container with its directories and mount state, as `ps`/`inspect`/`--json` show it.
///
/// Serialised with Docker's capitalised key style (`Id`, `Name`, `Image`, `ImageID`, and the
/// directory names of `docker inspect`'s `GraphDriver.Data`), the one style of every `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    /// 64-hex id.
    #[serde(rename = "Id")]
    pub id: String,
    /// Name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Reference it was created from.
    #[serde(rename = "Image")]
    pub image: String,
    /// Image id.
    #[serde(rename = "ImageID")]
    pub image_id: ImageId,
    /// Creation time.
    #[serde(rename = "Created")]
    pub created: String,
    /// Whether the merged dir is mounted now.
    #[serde(rename = "Mounted")]
    pub mounted: bool,
    /// The merged rootfs.
    #[serde(rename = "MergedDir")]
    pub merged: PathBuf,
    /// The writable layer.
    #[serde(rename = "UpperDir")]
    pub upper: PathBuf,
    /// overlayfs' work dir.
    #[serde(rename = "WorkDir")]
    pub work: PathBuf,
    /// Lower dirs, nearest first (init layer, then the image's layers).
    #[serde(rename = "LowerDir")]
    pub lower: Vec<PathBuf>,
}

impl Container {
    /// Describes the container's current state.
    pub fn view(&self) -> Result<ContainerView, ContainerError> {
        let dirs = self.dirs()?;
        let mounted = mount::is_mounted(&dirs.merged)?;
        let record = self.record();
        Ok(ContainerView {
            id: record.id.clone(),
            name: record.name.clone(),
            image: record.image_ref.clone(),
            image_id: record.image_id.clone(),
            created: record.created.clone(),
            mounted,
            merged: dirs.merged,
            upper: dirs.upper,
            work: dirs.work,
            lower: dirs.lower,
        })
    }
}

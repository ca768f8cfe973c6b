//! What a container looks like now, as `ps`/`inspect`/`--json` show it.

use std::path::PathBuf;

use serde::Serialize;

use super::error::ContainerError;
use super::lifecycle::Container;
use super::state::Status;
use crate::id::ImageId;
use crate::mount;

/// A container with its directories, mount and run state, as `ps`/`inspect`/`--json` show it.
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
    /// Docker's `State.Status`: created, running or exited.
    #[serde(rename = "State")]
    pub state: Status,
    /// The exit code once exited; null while it runs, before it ran, or when the `strata
    /// run` supervising it was killed before it could record it.
    #[serde(rename = "ExitCode")]
    pub exit_code: Option<i32>,
    /// The container's init process on the host while it runs, else 0.
    #[serde(rename = "Pid")]
    pub pid: u32,
    /// When it last started (RFC 3339; "" if never).
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    /// When it last stopped (RFC 3339; "" while running, if never run or if unknown).
    #[serde(rename = "FinishedAt")]
    pub finished_at: String,
}

impl Container {
    /// Describes the container's current state.
    pub fn view(&self) -> Result<ContainerView, ContainerError> {
        let dirs = self.dirs()?;
        let mounted = mount::is_mounted(&dirs.merged)?;
        let run = self.run_state()?;
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
            state: run.status,
            exit_code: run.exit_code,
            pid: run.pid,
            started_at: run.started_at,
            finished_at: run.finished_at,
        })
    }
}

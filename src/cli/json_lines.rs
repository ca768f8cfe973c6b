//! `--format json`: one JSON object per line with Docker's capitalised keys and Docker's string
//! values (`docker images/ps/system df --format json`), for `jq` and scripts written for Docker.

use serde_json::{Value, json};

use strata::container::ContainerView;

use super::container_status;
use super::image_list::{self, ImageRow};
use super::units::{self, human_size};

/// An `images` row as `docker images --format json` prints it, with its short id.
pub fn image(row: &ImageRow, short_id: &str) -> Value {
    let digest = if row.digest.is_empty() {
        image_list::NONE
    } else {
        row.digest.as_str()
    };
    json!({
        "Containers": "N/A",
        "CreatedAt": row.created.as_str().unwrap_or_default(),
        "CreatedSince": row.created_since,
        "Digest": digest,
        "ID": short_id,
        "Repository": row.repository,
        "SharedSize": "N/A",
        "Size": human_size(row.size),
        "Tag": row.tag,
        "UniqueSize": "N/A",
        "VirtualSize": human_size(row.size),
    })
}

/// A `ps` row as `docker ps --format json` prints it (State: created, running or exited).
pub fn container(view: &ContainerView, now: i64) -> Value {
    json!({
        "CreatedAt": view.created,
        "ID": view.id.get(..12).unwrap_or(&view.id),
        "Image": view.image,
        "Mounts": view.merged,
        "Names": view.name,
        "RunningFor": units::age(Some(&view.created), now),
        "State": view.state.as_str(),
        "Status": container_status::status(view, now),
    })
}

/// A `system df` line as `docker system df --format json` prints it.
pub fn disk_usage(kind: &str, total: usize, active: usize, size: u64, reclaimable: &str) -> Value {
    json!({
        "Active": active.to_string(),
        "Reclaimable": reclaimable,
        "Size": units::human_size_precise(size),
        "TotalCount": total.to_string(),
        "Type": kind,
    })
}

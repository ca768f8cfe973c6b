//! Docker-shaped JSON views of stored images and containers (`docker image inspect`,
//! `docker container inspect`), for `inspect`.

use serde_json::{Value, json};

use strata::container::{ContainerView, Status};
use strata::store::{ImageRecord, Store, StoreError};

/// `docker image inspect`'s object for one image, with overlay2 `GraphDriver.Data`.
pub fn image_inspect(store: &Store, image: &ImageRecord) -> Result<Value, StoreError> {
    let config: Value =
        serde_json::from_slice(&store.image_config(&image.id)?).unwrap_or(Value::Null);
    let repo_tags: Vec<String> = store
        .repositories()?
        .refs
        .into_iter()
        .filter(|(_, id)| *id == image.id)
        .map(|(name, _)| name)
        .collect();
    let field = |name: &str| config.get(name).cloned().unwrap_or(Value::Null);
    let text = |name: &str| {
        config
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };

    let mut out = json!({
        "Id": image.id.to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": image.repo_digests,
        "Parent": "",
        "Comment": text("comment"),
        "Created": text("created"),
        "DockerVersion": text("docker_version"),
        "Author": text("author"),
        "Config": field("config"),
        "Architecture": text("architecture"),
        "Os": text("os"),
        "Size": image.size(),
        "GraphDriver": { "Name": "overlay2", "Data": graph_driver_data(store, image) },
        "RootFS": {
            "Type": "layers",
            "Layers": image.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": image.pulled_at },
    });
    if let Some(variant) = config
        .get("variant")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        out["Variant"] = variant.clone();
    }
    Ok(out)
}

/// `LowerDir` (nearest first, absent for one layer), `UpperDir`, `WorkDir`, `MergedDir`, as Docker
/// reports them for an image: the top layer plays the upper dir.
fn graph_driver_data(store: &Store, image: &ImageRecord) -> Value {
    let mut dirs = image
        .layers
        .iter()
        .rev()
        .map(|l| store.layer_dir(&l.chain_id));
    let Some(top) = dirs.next() else {
        return json!({});
    };
    let lower: Vec<String> = dirs.map(|d| d.join("diff").display().to_string()).collect();
    let mut data = json!({
        "MergedDir": top.join("merged").display().to_string(),
        "UpperDir": top.join("diff").display().to_string(),
        "WorkDir": top.join("work").display().to_string(),
    });
    if !lower.is_empty() {
        data["LowerDir"] = Value::String(lower.join(":"));
    }
    data
}

/// `docker container inspect`'s object, reduced to what strata knows, with `GraphDriver.Data`.
pub fn container_inspect(view: &ContainerView) -> Value {
    let lower: Vec<String> = view.lower.iter().map(|p| p.display().to_string()).collect();
    json!({
        "Id": view.id,
        "Created": view.created,
        "Name": format!("/{}", view.name),
        "Image": view.image_id,
        "Config": { "Image": view.image },
        "State": container_state(view),
        "Driver": "overlay2",
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": lower.join(":"),
                "MergedDir": view.merged.display().to_string(),
                "UpperDir": view.upper.display().to_string(),
                "WorkDir": view.work.display().to_string(),
            },
        },
    })
}

/// Docker's `State` object (Go's zero time where a time is not known), with strata's
/// `Mounted`.
fn container_state(view: &ContainerView) -> Value {
    let time = |t: &str| {
        if t.is_empty() {
            "0001-01-01T00:00:00Z".to_string()
        } else {
            t.to_string()
        }
    };
    json!({
        "Status": view.state.as_str(),
        "Running": view.state == Status::Running,
        "Paused": false,
        "Restarting": false,
        "OOMKilled": false,
        "Dead": false,
        "Pid": view.pid,
        "ExitCode": view.exit_code.unwrap_or(0),
        "Error": "",
        "StartedAt": time(&view.started_at),
        "FinishedAt": time(&view.finished_at),
        "Mounted": view.mounted,
    })
}

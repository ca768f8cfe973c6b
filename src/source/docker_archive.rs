//! `docker save` archives (`docker-archive:FILE[:NAME:TAG]`): `manifest.json` lists each
//! image's config and layer tars. The layers are uncompressed tars, so each one's digest is
//! its diff_id: the source offers a manifest made from `manifest.json` whose layer
//! descriptors are the config's diff_ids with the members' sizes, and the pipeline verifies
//! every layer against its diff_id as for a registry. Docker 25+ names the same files
//! `blobs/sha256/<hex>` (the OCI-layout form); `manifest.json` covers both.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use super::files::Files;
use super::tar_index::normalise;
use super::{LayoutError, OciLayoutSource};
use crate::digest::Digest;
use crate::image::media_type::{DOCKER_CONFIG, DOCKER_LAYER_TAR, DOCKER_MANIFEST};
use crate::image::{MAX_MANIFEST_SIZE, parse_config};
use crate::reference::Reference;
use crate::registry::FetchedManifest;

/// Largest image config read (as the pipeline's limit).
const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// One image of `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SavedImage {
    /// The config member.
    pub config: String,
    /// The names it was saved under (`alpine:latest`).
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// The layer tar members, bottom first.
    pub layers: Vec<String>,
}

/// The images of a `docker save` archive.
pub(crate) fn saved_images(files: &Files) -> Result<Vec<SavedImage>, LayoutError> {
    let bytes = files.read("manifest.json", MAX_MANIFEST_SIZE)?;
    serde_json::from_slice(&bytes).map_err(|source| LayoutError::Json {
        path: files.path().join("manifest.json"),
        source,
    })
}

/// `a` and `b` name the same image (`alpine:latest` = `docker.io/library/alpine:latest`).
fn same_name(a: &str, b: &str) -> bool {
    match (Reference::parse(a), Reference::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.repo_name() == b.repo_name() && a.tag_or_default() == b.tag_or_default()
        }
        _ => a == b,
    }
}

impl OciLayoutSource {
    /// Opens the `docker save` archive `file` and picks the image saved as `name`
    /// (`NAME:TAG`), or its only image. Returns the source and the image's saved names.
    /// Blocking (indexes the archive, reads `manifest.json` and the config).
    pub fn open_docker_archive(
        file: &Path,
        name: Option<&str>,
    ) -> Result<(Self, Vec<String>), LayoutError> {
        let files = Files::tar(file)?;
        let images = saved_images(&files)?;
        let bad = |reason: String| LayoutError::DockerManifest {
            path: files.path().to_path_buf(),
            reason,
        };
        let found: Vec<&SavedImage> = match name {
            Some(name) => images
                .iter()
                .filter(|i| i.repo_tags.iter().flatten().any(|t| same_name(t, name)))
                .collect(),
            None => images.iter().collect(),
        };
        let chosen = match found.as_slice() {
            [one] => (*one).clone(),
            [] if name.is_some() => {
                return Err(bad(format!("no image saved as {:?}", name.unwrap_or(""))));
            }
            many => {
                return Err(bad(format!(
                    "{} images; name one as docker-archive:FILE:NAME:TAG",
                    many.len()
                )));
            }
        };
        let source = Self::saved(files, &chosen)?;
        Ok((source, chosen.repo_tags.unwrap_or_default()))
    }

    /// The source of the saved image `saved` in `files`.
    pub(crate) fn saved(files: Files, saved: &SavedImage) -> Result<Self, LayoutError> {
        let shown = files.path().to_path_buf();
        let bad = |reason: String| LayoutError::DockerManifest {
            path: shown.clone(),
            reason,
        };
        let member = |p: &str| {
            normalise(p).ok_or_else(|| bad(format!("path {p:?} is absolute or climbs out")))
        };
        let config_path = member(&saved.config)?;
        let config_bytes = files.read(&config_path, MAX_CONFIG_SIZE)?;
        let config_digest = Digest::of(&config_bytes);
        let config =
            parse_config(&config_bytes).map_err(|e| bad(format!("config {config_path:?}: {e}")))?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != saved.layers.len() {
            return Err(bad(format!(
                "{} layers but the config lists {} diff_ids",
                saved.layers.len(),
                diff_ids.len()
            )));
        }
        let mut paths = HashMap::from([(config_digest.clone(), config_path)]);
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (layer, diff_id) in saved.layers.iter().zip(diff_ids) {
            let rel = member(layer)?;
            let size = files.size(&rel)?;
            layers.push(json!({
                "mediaType": DOCKER_LAYER_TAR,
                "digest": diff_id.digest().to_string(),
                "size": size,
            }));
            paths.insert(diff_id.digest().clone(), rel);
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "digest": config_digest.to_string(),
                "size": config_bytes.len(),
            },
            "layers": layers,
        }))
        .map_err(|e| bad(e.to_string()))?;
        let fetched = FetchedManifest {
            digest: Digest::of(&manifest),
            bytes: manifest,
            media_type: DOCKER_MANIFEST.to_string(),
        };
        Ok(Self::made(files, fetched, paths))
    }
}

//! What `system df` counts: image bytes from the layer sizes the store records (each layer,
//! by chain ID, once), container bytes from a walk of their writable (upper) dirs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use strata::container::{Container, ContainerView};
use strata::id::ChainId;
use strata::store::Store;

use super::image_list::{self, Listed};
use super::units;

/// One line of the summary: Docker's `TOTAL ACTIVE SIZE RECLAIMABLE`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    /// How many.
    pub total_count: usize,
    /// Images used by a container; containers mounted.
    pub active: usize,
    /// Bytes.
    pub size: u64,
    /// Bytes no container needs: layers of images no container uses; unmounted containers.
    pub reclaimable: u64,
}

/// An image's line of `system df -v`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageUsage {
    /// Its first tag's repository, `<none>` when untagged.
    pub repository: String,
    /// Its first tag, `<none>` when untagged.
    pub tag: String,
    /// The image id.
    pub id: String,
    /// The config's `created`, as Docker shows it.
    pub created_since: String,
    /// Bytes of all its layers.
    pub size: u64,
    /// Bytes of its layers that another image uses too.
    pub shared_size: u64,
    /// Bytes of the layers it alone uses.
    pub unique_size: u64,
    /// Containers created from it.
    pub containers: usize,
}

/// A container's line of `system df -v`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerUsage {
    /// The container id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The reference it was created from.
    pub image: String,
    /// Bytes of regular files in its writable layer.
    pub size: u64,
    /// Whether its rootfs is mounted.
    pub mounted: bool,
    /// Its creation, as Docker shows it.
    pub created_since: String,
}

/// Everything `system df` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsage {
    /// The images' line.
    pub images: Summary,
    /// The containers' line.
    pub containers: Summary,
    /// One entry per image.
    pub image_details: Vec<ImageUsage>,
    /// One entry per container.
    pub container_details: Vec<ContainerUsage>,
}

/// Measures the store: its images (from their records) and containers (a walk of each upper
/// dir).
pub fn measure(store: &Store, now: i64) -> Result<DiskUsage> {
    let listed = image_list::image_rows(store, now)?;
    let mut containers = Vec::new();
    for container in Container::list(store)? {
        let view = container.view()?;
        let size = tree_size(&view.upper)
            .with_context(|| format!("measuring {}", view.upper.display()))?;
        containers.push((view, size));
    }
    Ok(usage(&listed, &containers, now))
}

/// The numbers, from the listed images (one row per tag; an image counts once) and the
/// containers with the bytes of their upper dirs.
pub fn usage(listed: &[Listed], containers: &[(ContainerView, u64)], now: i64) -> DiskUsage {
    let mut users: HashMap<String, usize> = HashMap::new();
    for (view, _) in containers {
        *users.entry(view.image_id.to_string()).or_default() += 1;
    }
    // The first row of each image (its first tag, or its <none> row).
    let mut seen = HashSet::new();
    let images: Vec<&Listed> = listed
        .iter()
        .filter(|l| seen.insert(l.image.id.clone()))
        .collect();
    // Each layer once, with how many images use it and whether a container does.
    let mut layers: BTreeMap<&ChainId, (u64, usize, bool)> = BTreeMap::new();
    for l in &images {
        let used = users.contains_key(&l.row.id);
        for layer in &l.image.layers {
            let entry = layers
                .entry(&layer.chain_id)
                .or_insert((layer.size, 0, false));
            entry.1 += 1;
            entry.2 |= used;
        }
    }
    let image_details: Vec<ImageUsage> = images
        .iter()
        .map(|l| {
            let size = l.image.size();
            let shared_size = l
                .image
                .layers
                .iter()
                .filter(|layer| layers.get(&layer.chain_id).is_some_and(|e| e.1 > 1))
                .map(|layer| layer.size)
                .sum();
            ImageUsage {
                repository: l.row.repository.clone(),
                tag: l.row.tag.clone(),
                id: l.row.id.clone(),
                created_since: l.row.created_since.clone(),
                size,
                shared_size,
                unique_size: size - shared_size,
                containers: users.get(&l.row.id).copied().unwrap_or_default(),
            }
        })
        .collect();
    let images_summary = Summary {
        total_count: images.len(),
        active: image_details.iter().filter(|i| i.containers > 0).count(),
        size: layers.values().map(|e| e.0).sum(),
        reclaimable: layers.values().filter(|e| !e.2).map(|e| e.0).sum(),
    };
    let container_details: Vec<ContainerUsage> = containers
        .iter()
        .map(|(view, size)| ContainerUsage {
            id: view.id.clone(),
            name: view.name.clone(),
            image: view.image.clone(),
            size: *size,
            mounted: view.mounted,
            created_since: units::age(Some(&view.created), now),
        })
        .collect();
    let containers_summary = Summary {
        total_count: container_details.len(),
        active: container_details.iter().filter(|c| c.mounted).count(),
        size: container_details.iter().map(|c| c.size).sum(),
        reclaimable: container_details
            .iter()
            .filter(|c| !c.mounted)
            .map(|c| c.size)
            .sum(),
    };
    DiskUsage {
        images: images_summary,
        containers: containers_summary,
        image_details,
        container_details,
    }
}

/// Bytes of the regular files under `dir` (hard links once), without following symlinks; a
/// missing dir is empty.
fn tree_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut inodes = HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() && (meta.nlink() == 1 || inodes.insert(meta.ino())) {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use strata::digest::Digest;
    use strata::id::{BlobDigest, DiffId, ImageId};
    use strata::store::{ImageRecord, LayerRef};

    use super::*;
    use crate::cli::image_list::ImageRow;

    fn layer(name: &str, size: u64) -> LayerRef {
        let digest = Digest::of(name.as_bytes());
        LayerRef {
            chain_id: ChainId::new(digest.clone()),
            diff_id: DiffId::new(digest.clone()),
            blob_digest: BlobDigest::new(digest),
            blob_size: size / 2,
            size,
        }
    }

    fn listed(config: &str, tag: &str, layers: Vec<LayerRef>) -> Listed {
        let image = ImageRecord {
            id: ImageId::new(Digest::of(config.as_bytes())),
            manifest_digest: Digest::of(b"m"),
            manifest_media_type: String::new(),
            platform: "linux/amd64".into(),
            layers,
            repo_digests: vec![],
            pulled_at: String::new(),
        };
        Listed {
            row: ImageRow {
                repository: "r".into(),
                tag: tag.into(),
                digest: String::new(),
                id: image.id.to_string(),
                created: Value::Null,
                size: image.size(),
                created_since: String::new(),
                dangling: false,
                platform: image.platform.clone(),
            },
            image,
        }
    }

    fn container(image: &Listed, mounted: bool) -> ContainerView {
        ContainerView {
            id: "c".repeat(64),
            name: "c".into(),
            image: "r:a".into(),
            image_id: image.image.id.clone(),
            created: "2026-01-01T00:00:00Z".into(),
            mounted,
            merged: PathBuf::new(),
            upper: PathBuf::new(),
            work: PathBuf::new(),
            lower: vec![],
            state: strata::container::Status::Created,
            exit_code: None,
            pid: 0,
            started_at: String::new(),
            finished_at: String::new(),
        }
    }

    #[test]
    fn shared_layers_count_once() {
        let a = listed("a", "a", vec![layer("base", 1000), layer("a", 200)]);
        let a_again = listed("a", "latest", a.image.layers.clone());
        let b = listed("b", "b", vec![layer("base", 1000), layer("b", 300)]);
        let rows = [a.clone(), a_again, b];
        let du = usage(&rows, &[(container(&a, true), 4096)], 0);
        assert_eq!(
            du.images,
            Summary {
                total_count: 2,
                active: 1,
                size: 1500,
                reclaimable: 300
            }
        );
        assert_eq!(
            du.containers,
            Summary {
                total_count: 1,
                active: 1,
                size: 4096,
                reclaimable: 0
            }
        );
        let sizes: Vec<_> = du
            .image_details
            .iter()
            .map(|i| {
                (
                    i.tag.as_str(),
                    i.size,
                    i.shared_size,
                    i.unique_size,
                    i.containers,
                )
            })
            .collect();
        assert_eq!(
            sizes,
            [("a", 1200, 1000, 200, 1), ("b", 1300, 1000, 300, 0)]
        );

        let du = usage(&rows, &[(container(&a, false), 10)], 0);
        assert_eq!((du.containers.active, du.containers.reclaimable), (0, 10));
        let du = usage(&rows, &[], 0);
        assert_eq!((du.images.active, du.images.reclaimable), (0, 1500));
    }

    #[test]
    fn tree_size_counts_regular_files_and_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/f"), [0u8; 100]).unwrap();
        fs::write(dir.path().join("g"), [0u8; 20]).unwrap();
        fs::hard_link(dir.path().join("g"), dir.path().join("a/h")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("s")).unwrap();
        assert_eq!(tree_size(dir.path()).unwrap(), 120);
        assert_eq!(tree_size(&dir.path().join("missing")).unwrap(), 0);
    }
}

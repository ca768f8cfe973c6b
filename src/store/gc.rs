//! Removing images and collecting the layers nobody uses (`rmi`, `image prune`).
//!
//! A layer is garbage when no image record's chain and no container stands on it; layers are
//! shared by chain ID, so one stays while any user is left. Reachability is computed under the
//! exclusive store lease (no pull or container creation is half-way then), and what is garbage
//! leaves the visible store in an order a kill cannot tear: references from
//! `repositories.json` first, then the image's directory into the trash, then each layer
//! (see [`Store::remove_layer`]). The trashed files are removed after the lease is dropped.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{ContainerRecord, ImageRecord, LeaseKind, Store, StoreError, fsutil};
use crate::id::{ChainId, ImageId};

/// One thing a removal did, as Docker reports it (`{"Untagged": ...}` / `{"Deleted": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Deletion {
    /// A reference (`repo:tag` or `repo@digest`) removed.
    Untagged(String),
    /// An image id or a layer's chain ID deleted.
    Deleted(String),
}

/// What an image removal or an image prune did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// What was untagged and deleted, in order.
    #[serde(rename = "ImagesDeleted")]
    pub items: Vec<Deletion>,
    /// Bytes of the deleted layers.
    #[serde(rename = "SpaceReclaimed")]
    pub reclaimed: u64,
}

/// Which images [`Store::prune_images`] removes (never one a container uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneImages {
    /// Images without a tag.
    Dangling,
    /// Every image.
    All,
}

impl Store {
    /// Removes one tagged reference from `repositories.json` (the file goes with its last
    /// reference: an empty store is its bare skeleton); returns the image it named.
    pub fn untag(&self, reference: &str) -> Result<Option<ImageId>, StoreError> {
        let _lock = self.metadata_lock()?;
        let mut repos = self.repositories()?;
        let removed = repos.refs.remove(reference);
        if removed.is_some() && repos.refs.is_empty() {
            fsutil::remove_file(&self.repositories_path())?;
        } else if removed.is_some() {
            fsutil::write_json(&self.repositories_path(), &repos)?;
        }
        Ok(removed)
    }

    /// `rmi`: removes the image `raw` names (a normalised reference, a full id or an id
    /// prefix), as Docker does. By tag: untags it, and deletes the image when that was its last
    /// tag. By `repo@digest`: removes that digest reference, and deletes the image when it has
    /// no tag. By id: untags all its tags and deletes it. Refused without `force` when a
    /// container uses the image, or, by id, when tags of several repositories name it. With
    /// `force`, the image goes but never a layer a container stands on.
    pub fn remove_image(
        &self,
        normalised_ref: Option<&str>,
        raw: &str,
        force: bool,
    ) -> Result<Removal, StoreError> {
        let lease = self.lease(LeaseKind::Exclusive)?;
        let removal = self.remove_image_leased(normalised_ref, raw, force)?;
        drop(lease);
        self.empty_trash()?;
        Ok(removal)
    }

    fn remove_image_leased(
        &self,
        normalised_ref: Option<&str>,
        raw: &str,
        force: bool,
    ) -> Result<Removal, StoreError> {
        let repos = self.repositories()?;
        let image = self.resolve_image(normalised_ref, raw)?;
        let tags: Vec<&String> = repos
            .refs
            .iter()
            .filter(|(_, id)| **id == image.id)
            .map(|(tag, _)| tag)
            .collect();
        let containers = self.containers()?;
        let users: Vec<&str> = containers
            .iter()
            .filter(|c| c.image_id == image.id)
            .map(|c| c.name.as_str())
            .collect();
        let by_tag = normalised_ref.filter(|r| repos.refs.contains_key(*r));
        let by_digest = normalised_ref.filter(|r| image.repo_digests.iter().any(|d| d == r));
        // Other references are left: only this one goes.
        if let Some(digest_ref) = by_digest
            && !tags.is_empty()
        {
            self.remove_repo_digest(&image.id, digest_ref)?;
            return Ok(Removal {
                items: vec![Deletion::Untagged(digest_ref.to_string())],
                reclaimed: 0,
            });
        }
        if let Some(tag) = by_tag
            && tags.len() > 1
        {
            self.untag(tag)?;
            return Ok(Removal {
                items: vec![Deletion::Untagged(tag.to_string())],
                reclaimed: 0,
            });
        }
        if by_tag.is_none() && !force {
            let repos_of: BTreeSet<&str> = tags.iter().map(|t| repo_of(t)).collect();
            if repos_of.len() > 1 {
                return Err(StoreError::MultipleRepositories(short_id(&image.id)));
            }
        }
        if let Some(target) = self.image_mounted_at(&image.id)? {
            return Err(StoreError::ImageMounted {
                reference: raw.to_string(),
                target,
            });
        }
        if !users.is_empty() && !force {
            return Err(StoreError::ImageInUse {
                reference: raw.to_string(),
                containers: users.join(", "),
            });
        }
        let mut removal = Removal::default();
        self.delete_image(&image, &containers, &mut removal)?;
        // Read again: the removal may have pinned layers into containers' records.
        let reachable = self.reachable_layers()?;
        let recorded: BTreeSet<ChainId> = self.layer_records()?.into_iter().collect();
        for layer in image.layers.iter().rev() {
            if !reachable.contains(&layer.chain_id) && recorded.contains(&layer.chain_id) {
                self.delete_layer(&layer.chain_id, &mut removal)?;
            }
        }
        Ok(removal)
    }

    /// `image prune`: removes the images `which` says that no container uses, then every
    /// layer nobody uses (also those of interrupted deletes and failed pulls).
    pub fn prune_images(&self, which: PruneImages) -> Result<Removal, StoreError> {
        let lease = self.lease(LeaseKind::Exclusive)?;
        let removal = self.prune_images_leased(which)?;
        drop(lease);
        self.empty_trash()?;
        Ok(removal)
    }

    fn prune_images_leased(&self, which: PruneImages) -> Result<Removal, StoreError> {
        let repos = self.repositories()?;
        let mut tagged: BTreeMap<&ImageId, usize> = BTreeMap::new();
        for id in repos.refs.values() {
            *tagged.entry(id).or_default() += 1;
        }
        // Each read once: the cost of a prune is then reading the store once plus its
        // removals (per image, rereading or rewriting the store would make it quadratic).
        let containers = self.containers()?;
        let used: BTreeSet<&ImageId> = containers.iter().map(|c| &c.image_id).collect();
        let (candidates, mut kept): (Vec<ImageRecord>, Vec<ImageRecord>) =
            self.images()?.into_iter().partition(|image| {
                let dangling = !tagged.contains_key(&image.id);
                !used.contains(&image.id) && (which == PruneImages::All || dangling)
            });
        // An image mounted with `mount --image` is in use as a container's is.
        let mut doomed = Vec::with_capacity(candidates.len());
        for image in candidates {
            if self.image_mounted_at(&image.id)?.is_some() {
                kept.push(image);
            } else {
                doomed.push(image);
            }
        }
        let mut removal = Removal::default();
        // References first, all of them in one write of repositories.json.
        let ids: BTreeSet<&ImageId> = doomed.iter().map(|i| &i.id).collect();
        let mut untagged = self.untag_images(&ids)?;
        for image in &doomed {
            for tag in untagged.remove(&image.id).unwrap_or_default() {
                removal.items.push(Deletion::Untagged(tag));
            }
            for digest in &image.repo_digests {
                removal.items.push(Deletion::Untagged(digest.clone()));
            }
            self.move_to_trash(&self.image_dir(&image.id), image.id.hex())?;
            removal.items.push(Deletion::Deleted(image.id.to_string()));
        }
        let reachable = self.reachable_from(&kept, &containers)?;
        for chain in self.layer_records()?.into_iter().rev() {
            if !reachable.contains(&chain) {
                self.delete_layer(&chain, &mut removal)?;
            }
        }
        Ok(removal)
    }

    /// Removes every reference to the images `ids` from `repositories.json` in one write;
    /// returns them by image.
    fn untag_images(
        &self,
        ids: &BTreeSet<&ImageId>,
    ) -> Result<BTreeMap<ImageId, Vec<String>>, StoreError> {
        let mut removed: BTreeMap<ImageId, Vec<String>> = BTreeMap::new();
        if ids.is_empty() {
            return Ok(removed);
        }
        let _lock = self.metadata_lock()?;
        let mut repos = self.repositories()?;
        repos.refs.retain(|tag, id| {
            let doomed = ids.contains(id);
            if doomed {
                removed.entry(id.clone()).or_default().push(tag.clone());
            }
            !doomed
        });
        if removed.is_empty() {
            return Ok(removed);
        }
        if repos.refs.is_empty() {
            fsutil::remove_file(&self.repositories_path())?;
        } else {
            fsutil::write_json(&self.repositories_path(), &repos)?;
        }
        Ok(removed)
    }

    /// Drops one `repo@digest` name from an image's record.
    fn remove_repo_digest(&self, id: &ImageId, digest_ref: &str) -> Result<(), StoreError> {
        let _lock = self.metadata_lock()?;
        let Some(mut record) = self.image(id)? else {
            return Ok(());
        };
        record.repo_digests.retain(|d| d != digest_ref);
        fsutil::write_json(&self.image_dir(id).join("image.json"), &record)
    }

    /// Untags every reference to `image`, then moves its directory into the trash.
    /// `containers`: the store's containers, read under the exclusive lease taken for this
    /// removal (no container can be created meanwhile).
    fn delete_image(
        &self,
        image: &ImageRecord,
        containers: &[ContainerRecord],
        removal: &mut Removal,
    ) -> Result<(), StoreError> {
        let tags: Vec<String> = self
            .repositories()?
            .refs
            .into_iter()
            .filter(|(_, id)| *id == image.id)
            .map(|(tag, _)| tag)
            .collect();
        for tag in tags {
            self.untag(&tag)?;
            removal.items.push(Deletion::Untagged(tag));
        }
        for digest in &image.repo_digests {
            removal.items.push(Deletion::Untagged(digest.clone()));
        }
        // Containers of older versions name their layers through the image: pin them first.
        for container in containers {
            if container.image_id == image.id && container.layers.is_empty() {
                self.pin_container_layers(container, image)?;
            }
        }
        self.move_to_trash(&self.image_dir(&image.id), image.id.hex())?;
        removal.items.push(Deletion::Deleted(image.id.to_string()));
        Ok(())
    }

    fn delete_layer(&self, chain: &ChainId, removal: &mut Removal) -> Result<(), StoreError> {
        let size = self.layer(chain)?.map_or(0, |l| l.size);
        self.remove_layer(chain)?;
        fsutil::remove_file(&self.unsynced_dir().join(chain.hex()))?;
        removal.items.push(Deletion::Deleted(chain.to_string()));
        removal.reclaimed += size;
        Ok(())
    }

    /// Every layer an image record or a container stands on.
    pub(super) fn reachable_layers(&self) -> Result<BTreeSet<ChainId>, StoreError> {
        self.reachable_from(&self.images()?, &self.containers()?)
    }

    /// Every layer `images` or `containers` stand on (the store's, read under the exclusive
    /// lease, less what this removal deleted).
    fn reachable_from(
        &self,
        images: &[ImageRecord],
        containers: &[ContainerRecord],
    ) -> Result<BTreeSet<ChainId>, StoreError> {
        let mut reachable: BTreeSet<ChainId> = images
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| l.chain_id.clone()))
            .collect();
        for container in containers {
            match self.container_layers(container) {
                Ok(layers) => reachable.extend(layers),
                // Its image is gone and it never knew its layers: nothing to keep for it.
                Err(StoreError::NoSuchImage(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reachable)
    }
}

/// The repository part of a tagged reference (`host/repo:tag` -> `host/repo`).
fn repo_of(tag: &str) -> &str {
    match tag.rfind(':') {
        Some(i) if !tag[i..].contains('/') => &tag[..i],
        _ => tag,
    }
}

/// Docker's short image id: 12 hex chars.
fn short_id(id: &ImageId) -> String {
    id.hex().chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::id::{BlobDigest, DiffId};
    use crate::store::LayerRef;
    use crate::store::layer::tests::{chain_id, record};

    /// Commits the layers (if missing) and records an image on them, tagged `tag` if given.
    fn image(store: &Store, name: &[u8], chains: &[ChainId], tag: Option<&str>) -> ImageRecord {
        for chain in chains {
            if store.layer(chain).unwrap().is_none() {
                let staging = store.begin_layer(chain, &[]).unwrap();
                let mut layer = record(chain, staging.link());
                layer.size = 10;
                staging.commit(&layer).unwrap();
            }
        }
        let image = ImageRecord {
            id: ImageId::new(Digest::of(name)),
            manifest_digest: Digest::of(b"m"),
            manifest_media_type: String::new(),
            platform: "linux/amd64".into(),
            layers: chains
                .iter()
                .map(|c| LayerRef {
                    chain_id: c.clone(),
                    diff_id: DiffId::new(c.digest().clone()),
                    blob_digest: BlobDigest::new(c.digest().clone()),
                    blob_size: 1,
                    size: 10,
                })
                .collect(),
            repo_digests: vec![],
            pulled_at: String::new(),
        };
        store.put_image(&image, b"{}", b"{}").unwrap();
        if let Some(tag) = tag {
            store.tag(tag, &image.id).unwrap();
        }
        image
    }

    #[test]
    fn prune_removes_dangling_then_all_unused_and_keeps_shared_layers() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let (base, top_a, top_b) = (chain_id(b"base"), chain_id(b"a"), chain_id(b"b"));
        let a = image(&store, b"a", &[base.clone(), top_a.clone()], None);
        let b = image(&store, b"b", &[base.clone(), top_b.clone()], Some("r/b:1"));

        let removal = store.prune_images(PruneImages::Dangling).unwrap();
        assert_eq!(
            removal.items,
            vec![
                Deletion::Deleted(a.id.to_string()),
                Deletion::Deleted(top_a.to_string())
            ]
        );
        assert_eq!(removal.reclaimed, 10);
        assert!(store.layer(&base).unwrap().is_some());
        assert!(!store.layer_dir(&top_a).exists());
        assert_eq!(store.images().unwrap(), vec![b.clone()]);

        let removal = store.prune_images(PruneImages::All).unwrap();
        assert_eq!(removal.items[0], Deletion::Untagged("r/b:1".into()));
        assert_eq!(removal.reclaimed, 20);
        assert!(store.layer_records().unwrap().is_empty());
        assert!(!store.repositories_path().exists());
        assert_eq!(fs_names(&store.trash_dir()), Vec::<String>::new());
    }

    #[test]
    fn a_prune_untags_each_image_before_deleting_it_and_keeps_the_tags_of_used_ones() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let (base, top_a, top_b) = (chain_id(b"base"), chain_id(b"a"), chain_id(b"b"));
        let a = image(&store, b"a", &[base.clone(), top_a.clone()], Some("r/a:1"));
        store.tag("r/a:2", &a.id).unwrap();
        let used = image(&store, b"u", std::slice::from_ref(&base), Some("r/u:1"));
        store.create_container(&used, "r/u:1", None).unwrap();
        let b = image(&store, b"b", std::slice::from_ref(&top_b), None);

        let removal = store.prune_images(PruneImages::All).unwrap();
        let mut expected = vec![
            (
                a.id.clone(),
                vec![
                    Deletion::Untagged("r/a:1".into()),
                    Deletion::Untagged("r/a:2".into()),
                    Deletion::Deleted(a.id.to_string()),
                ],
            ),
            (b.id.clone(), vec![Deletion::Deleted(b.id.to_string())]),
        ];
        // Images go in the order the store lists them.
        expected.sort_by(|x, y| x.0.cmp(&y.0));
        let mut want: Vec<Deletion> = expected.into_iter().flat_map(|(_, d)| d).collect();
        want.push(Deletion::Deleted(top_b.to_string()));
        want.push(Deletion::Deleted(top_a.to_string()));
        let mut got = removal.items.clone();
        let layers = got.split_off(got.len() - 2);
        let mut want_layers = want.split_off(want.len() - 2);
        want_layers.sort_by_key(|d| format!("{d:?}"));
        let mut layers = layers;
        layers.sort_by_key(|d| format!("{d:?}"));
        assert_eq!((got, layers), (want, want_layers));
        assert_eq!(
            store
                .repositories()
                .unwrap()
                .refs
                .into_iter()
                .collect::<Vec<_>>(),
            vec![("r/u:1".to_string(), used.id.clone())]
        );
        assert!(store.layer(&base).unwrap().is_some());
    }

    #[test]
    fn forced_rmi_pins_the_layers_of_an_older_containers_record() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let chains = [chain_id(b"base"), chain_id(b"top")];
        let img = image(&store, b"img", &chains, Some("r/img:1"));
        let mut container = store
            .create_container(&img, "r/img:1", Some("old"))
            .unwrap();
        // As an older version wrote it: no layers.
        container.layers.clear();
        fsutil::write_json(
            &store
                .containers_dir()
                .join(format!("{}.json", container.id)),
            &container,
        )
        .unwrap();

        let refused = store.remove_image(Some("r/img:1"), "img", false);
        assert!(
            matches!(&refused, Err(StoreError::ImageInUse { containers, .. }) if containers == "old"),
            "{refused:?}"
        );
        let removal = store.remove_image(Some("r/img:1"), "img", true).unwrap();
        assert_eq!(
            removal.items,
            vec![
                Deletion::Untagged("r/img:1".into()),
                Deletion::Deleted(img.id.to_string())
            ]
        );
        let container = store.container("old").unwrap();
        assert_eq!(container.layers, chains.to_vec());
        assert_eq!(store.container_dirs(&container).unwrap().lower.len(), 3);
        for chain in &chains {
            assert!(store.layer(chain).unwrap().is_some());
        }
        store.remove_container(&container).unwrap();
        let removal = store.prune_images(PruneImages::Dangling).unwrap();
        assert_eq!(removal.items.len(), 2);
        assert!(store.layer_records().unwrap().is_empty());
    }

    #[test]
    fn rmi_by_digest_drops_that_name_and_deletes_an_untagged_image() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let img = image(&store, b"img", &[chain_id(b"l")], Some("r/img:1"));
        let by_digest = "r/img@sha256:abc";
        store.add_repo_digest(&img.id, by_digest).unwrap();

        let removal = store
            .remove_image(Some(by_digest), by_digest, false)
            .unwrap();
        assert_eq!(removal.items, vec![Deletion::Untagged(by_digest.into())]);
        assert!(
            store
                .image(&img.id)
                .unwrap()
                .unwrap()
                .repo_digests
                .is_empty()
        );

        store.add_repo_digest(&img.id, by_digest).unwrap();
        store.untag("r/img:1").unwrap();
        let removal = store
            .remove_image(Some(by_digest), by_digest, false)
            .unwrap();
        assert_eq!(
            removal.items,
            vec![
                Deletion::Untagged(by_digest.into()),
                Deletion::Deleted(img.id.to_string()),
                Deletion::Deleted(chain_id(b"l").to_string()),
            ]
        );
        assert!(store.images().unwrap().is_empty());
    }

    fn fs_names(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn repo_of_strips_the_tag_only() {
        assert_eq!(repo_of("127.0.0.1:5000/a/b:1.0"), "127.0.0.1:5000/a/b");
        assert_eq!(
            repo_of("docker.io/library/alpine:latest"),
            "docker.io/library/alpine"
        );
        assert_eq!(repo_of("127.0.0.1:5000/a"), "127.0.0.1:5000/a");
    }
}

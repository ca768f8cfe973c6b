//! What the store keeps of containers: their layers, `<cid>-init` (Docker's init files) and
//! `<cid>` (the writable upper dir), both stacked on an image's layers, and their records,
//! `<root>/containers/<cid>.json`, and the name index, `<root>/container-names/<name>`, a
//! symlink to the container's id (see [`Store::container`]). Mounting and the rest of the
//! lifecycle are in [`crate::container`].

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

use super::{ImageRecord, LeaseKind, Store, StoreError, fsutil, io_err, layout};
use crate::id::{ChainId, ImageId};

/// What the store knows about a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerRecord {
    /// 64 hex chars; names `overlay2/<id>` and `overlay2/<id>-init`.
    pub id: String,
    /// Unique name (defaults to the first 12 chars of the id).
    pub name: String,
    /// The reference the container was created from.
    pub image_ref: String,
    /// The image id (config digest).
    pub image_id: ImageId,
    /// Short link of the init layer.
    pub init_link: String,
    /// Short link of the container layer.
    pub link: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// The image's layers, bottom first: they stay while the container exists, even when its
    /// image is removed with `rmi -f`. Empty in records of older versions (then the image's).
    #[serde(default)]
    pub layers: Vec<ChainId>,
}

/// The directories a container's overlay mount uses, all absolute.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContainerDirs {
    /// Lower dirs, nearest first: the init layer, then the image's layers top to bottom.
    pub lower: Vec<PathBuf>,
    /// The writable layer.
    pub upper: PathBuf,
    /// overlayfs' work dir.
    pub work: PathBuf,
    /// The mount point.
    pub merged: PathBuf,
    /// Lower dirs as Docker writes them relative to `overlay2/`: `l/<short>`, nearest first.
    pub lower_links: Vec<String>,
}

impl Store {
    /// `<root>/containers`: records and state dirs.
    pub(super) fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// `<root>/containers/<id>/`: per-container files such as the runtime bundle; removed with it.
    pub fn container_state_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    pub(super) fn container_record_path(&self, id: &str) -> PathBuf {
        self.containers_dir().join(format!("{id}.json"))
    }

    /// Creates a container on `image`: its init layer, its writable layer and its record.
    /// Fails if `name` is taken, or if another process removed the image meanwhile (checked
    /// under the shared store lease, held until the record is written). Nothing is left
    /// behind on failure.
    pub fn create_container(
        &self,
        image: &ImageRecord,
        image_ref: &str,
        name: Option<&str>,
    ) -> Result<ContainerRecord, StoreError> {
        let _lease = self.lease(LeaseKind::Shared)?;
        if self.image(&image.id)?.is_none()
            || image
                .layers
                .iter()
                .any(|l| !matches!(self.layer(&l.chain_id), Ok(Some(_))))
        {
            return Err(StoreError::ImageRemoved(image_ref.to_string()));
        }
        let _lock = self.metadata_lock()?;
        let id = random_hex()?;
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| id[..12].to_string());
        if !valid_name(&name) {
            return Err(StoreError::InvalidName(name));
        }
        self.claim_name(&name, &id)?;
        let record = ContainerRecord {
            id: id.clone(),
            name,
            image_ref: image_ref.to_string(),
            image_id: image.id.clone(),
            init_link: random_link()?,
            link: random_link()?,
            created: super::now_rfc3339(),
            layers: image.layers.iter().map(|l| l.chain_id.clone()).collect(),
        };
        let result = self.create_container_dirs(image, &record).and_then(|()| {
            fsutil::mkdir_mode(&self.containers_dir(), 0o700)?;
            fsutil::write_json(&self.container_record_path(&id), &record)
        });
        if let Err(e) = result {
            let cleaned = self
                .remove_container_files(&record)
                .and_then(|()| self.release_name(&record));
            if cleaned.is_err() {
                // What is left is an orphan: the next command scans for it.
                self.mark_dirty();
            }
            return Err(e);
        }
        Ok(record)
    }

    fn create_container_dirs(
        &self,
        image: &ImageRecord,
        record: &ContainerRecord,
    ) -> Result<(), StoreError> {
        let image_lower: Vec<String> = image
            .layers
            .iter()
            .rev()
            .map(|l| format!("l/{}", layout::short_link(&l.chain_id)))
            .collect();
        let init_id = format!("{}-init", record.id);
        let init_dir = self.overlay_dir().join(&init_id);
        let init_lower = (!image_lower.is_empty()).then(|| image_lower.join(":"));
        layout::init_layer_dir(&init_dir, &record.init_link, init_lower.as_deref())?;
        write_init_files(&init_dir.join("diff"))?;
        layout::install_short_link(&self.links_dir(), &record.init_link, &init_id)?;

        let dir = self.overlay_dir().join(&record.id);
        let mut lower = vec![format!("l/{}", record.init_link)];
        lower.extend(image_lower);
        layout::init_layer_dir(&dir, &record.link, Some(&lower.join(":")))?;
        fsutil::mkdir_mode(&dir.join("merged"), 0o700)?;
        layout::install_short_link(&self.links_dir(), &record.link, &record.id)
    }

    /// The image layers a container stands on, bottom first (its record's, else, for records
    /// of older versions, its image's).
    pub fn container_layers(&self, record: &ContainerRecord) -> Result<Vec<ChainId>, StoreError> {
        if !record.layers.is_empty() {
            return Ok(record.layers.clone());
        }
        let image = self
            .image(&record.image_id)?
            .ok_or_else(|| StoreError::NoSuchImage(record.image_id.to_string()))?;
        Ok(image.layers.into_iter().map(|l| l.chain_id).collect())
    }

    /// The mount directories of a container.
    pub fn container_dirs(&self, record: &ContainerRecord) -> Result<ContainerDirs, StoreError> {
        let init = self.overlay_dir().join(format!("{}-init", record.id));
        let mut lower = vec![init.join("diff")];
        let mut lower_links = vec![format!("l/{}", record.init_link)];
        for chain in self.container_layers(record)?.iter().rev() {
            lower.push(self.layer_dir(chain).join("diff"));
            lower_links.push(format!("l/{}", layout::short_link(chain)));
        }
        let dir = self.overlay_dir().join(&record.id);
        Ok(ContainerDirs {
            lower,
            upper: dir.join("diff"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            lower_links,
        })
    }

    /// All containers, oldest first.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        let dir = self.containers_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_err("listing", &dir))?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(record) = fsutil::read_json::<ContainerRecord>(&path)?
            {
                out.push(record);
            }
        }
        out.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        Ok(out)
    }

    /// Finds a container by name, full id or id prefix (at least 4 chars). Reads only the
    /// record it finds (through the name index; a store whose index is not built yet is
    /// searched record by record).
    pub fn container(&self, name_or_id: &str) -> Result<ContainerRecord, StoreError> {
        if !self.names_dir().is_dir() {
            return self.container_by_scan(name_or_id);
        }
        if let Some(id) = self.named(name_or_id)?
            && let Some(record) = self.container_record(&id)?
            && record.name == name_or_id
        {
            return Ok(record);
        }
        if is_container_id(name_or_id)
            && let Some(record) = self.container_record(name_or_id)?
        {
            return Ok(record);
        }
        let ids = if name_or_id.len() >= 4 {
            self.container_ids()?
        } else {
            Vec::new()
        };
        let mut matches = ids.iter().filter(|id| id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some(id), None) => self
                .container_record(id)?
                .ok_or_else(|| StoreError::NoSuchContainer(name_or_id.to_string())),
            (Some(_), Some(_)) => Err(StoreError::Ambiguous(name_or_id.to_string())),
            _ => Err(StoreError::NoSuchContainer(name_or_id.to_string())),
        }
    }

    /// [`Store::container`] without the index: reads every record.
    fn container_by_scan(&self, name_or_id: &str) -> Result<ContainerRecord, StoreError> {
        let all = self.containers()?;
        if let Some(found) = all
            .iter()
            .find(|c| c.name == name_or_id || c.id == name_or_id)
        {
            return Ok(found.clone());
        }
        let mut matches = all
            .into_iter()
            .filter(|c| name_or_id.len() >= 4 && c.id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some(found), None) => Ok(found),
            (Some(_), Some(_)) => Err(StoreError::Ambiguous(name_or_id.to_string())),
            _ => Err(StoreError::NoSuchContainer(name_or_id.to_string())),
        }
    }

    /// One container's record; `None` when it does not exist.
    fn container_record(&self, id: &str) -> Result<Option<ContainerRecord>, StoreError> {
        fsutil::read_json(&self.container_record_path(id))
    }

    /// The ids of all container records, from the directory listing alone.
    pub(super) fn container_ids(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.containers_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                && is_container_id(id)
            {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Deletes a container (the caller unmounts first): its record first, so that a kill
    /// half-way leaves orphans that [`Store::recover`] removes, never a container with missing
    /// parts; then its name index entry, its layers (renamed into the trash), links and state
    /// dir.
    pub fn remove_container(&self, record: &ContainerRecord) -> Result<(), StoreError> {
        {
            let _lock = self.metadata_lock()?;
            fsutil::remove_file(&self.container_record_path(&record.id))?;
            self.release_name(record)?;
            self.remove_container_files(record)?;
        }
        self.empty_trash()?;
        Ok(())
    }

    fn remove_container_files(&self, record: &ContainerRecord) -> Result<(), StoreError> {
        let init_id = format!("{}-init", record.id);
        self.move_to_trash(&self.overlay_dir().join(&record.id), &record.id)?;
        self.move_to_trash(&self.overlay_dir().join(&init_id), &init_id)?;
        for link in [&record.link, &record.init_link] {
            fsutil::remove_file(&self.links_dir().join(link))?;
        }
        fsutil::remove_tree(&self.container_state_dir(&record.id))
    }

    /// Writes `image`'s layers into a container record of an older version (which named them
    /// through the image only), so that they outlive the image.
    pub(super) fn pin_container_layers(
        &self,
        record: &ContainerRecord,
        image: &ImageRecord,
    ) -> Result<(), StoreError> {
        let _lock = self.metadata_lock()?;
        let path = self.container_record_path(&record.id);
        // Removed meanwhile: writing it again would bring it back.
        if fsutil::read_json::<ContainerRecord>(&path)?.is_none() {
            return Ok(());
        }
        let pinned = ContainerRecord {
            layers: image.layers.iter().map(|l| l.chain_id.clone()).collect(),
            ..record.clone()
        };
        fsutil::write_json(&path, &pinned)
    }

    /// Bytes of regular files in a container's writable layer (Docker's `SizeRw`).
    pub fn container_size(&self, record: &ContainerRecord) -> u64 {
        tree_size(&self.overlay_dir().join(&record.id).join("diff"))
    }
}

/// Bytes of the regular files under `dir`, not following symlinks (unreadable parts count 0;
/// an explicit stack, so depth costs no recursion).
fn tree_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Whether `s` is a container id: 64 lowercase hex chars.
pub(super) fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Docker's rule for container names, `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (one char is enough here), at most 128.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=128).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// Docker's init layer: mount points and placeholders the runtime bind-mounts over.
fn write_init_files(diff: &std::path::Path) -> Result<(), StoreError> {
    for dir in ["dev", "dev/pts", "dev/shm", "etc"] {
        fsutil::mkdir_mode(&diff.join(dir), 0o755)?;
    }
    for file in [
        "dev/console",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
    ] {
        fsutil::write_atomic(&diff.join(file), b"", 0o644)?;
    }
    let mtab = diff.join("etc/mtab");
    symlink("/proc/mounts", &mtab).map_err(io_err("creating", &mtab))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut buf = [0u8; N];
    let path = std::path::Path::new("/dev/urandom");
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(io_err("reading", path))?;
    Ok(buf)
}

fn random_hex() -> Result<String, StoreError> {
    Ok(hex::encode(random_bytes::<32>()?))
}

fn random_link() -> Result<String, StoreError> {
    Ok(BASE32_NOPAD.encode(&random_bytes::<16>()?))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::id::{BlobDigest, ChainId, DiffId};
    use crate::store::LayerRef;
    use crate::store::layer::tests::chain_id;

    pub(crate) fn image(store: &Store, chains: &[ChainId]) -> ImageRecord {
        let record = ImageRecord {
            id: ImageId::new(Digest::of(b"cfg")),
            manifest_digest: Digest::of(b"m"),
            manifest_media_type: String::new(),
            platform: "linux/amd64".into(),
            layers: chains
                .iter()
                .map(|c| LayerRef {
                    chain_id: c.clone(),
                    diff_id: DiffId::new(c.digest().clone()),
                    blob_digest: BlobDigest::new(c.digest().clone()),
                    blob_size: 0,
                    size: 0,
                })
                .collect(),
            repo_digests: vec![],
            pulled_at: String::new(),
        };
        for chain in chains {
            let staging = store.begin_layer(chain, &[]).unwrap();
            let layer = crate::store::layer::tests::record(chain, staging.link());
            staging.commit(&layer).unwrap();
        }
        store.put_image(&record, b"{}", b"{}").unwrap();
        record
    }

    #[test]
    fn creates_docker_layout_and_removes_it() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let chains = [chain_id(b"base"), chain_id(b"top")];
        let img = image(&store, &chains);
        let c = store
            .create_container(&img, "docker.io/library/x:latest", Some("web"))
            .unwrap();
        assert_eq!(c.id.len(), 64);
        assert!(matches!(
            store.create_container(&img, "x", Some("web")),
            Err(StoreError::NameInUse(_))
        ));
        for bad in ["", "a/b", "../x", "a b", "-x", &"n".repeat(129)] {
            let res = store.create_container(&img, "x", Some(bad));
            assert!(matches!(res, Err(StoreError::InvalidName(_))), "{bad:?}");
        }
        assert_eq!(store.containers().unwrap().len(), 1);

        let init = store.overlay_dir().join(format!("{}-init", c.id));
        let image_lower = format!(
            "l/{}:l/{}",
            layout::short_link(&chains[1]),
            layout::short_link(&chains[0])
        );
        assert_eq!(fs::read_to_string(init.join("lower")).unwrap(), image_lower);
        assert_eq!(
            fs::read_link(init.join("diff/etc/mtab")).unwrap(),
            PathBuf::from("/proc/mounts")
        );
        for f in [
            "dev/console",
            "etc/hostname",
            "etc/hosts",
            "etc/resolv.conf",
        ] {
            assert_eq!(
                fs::metadata(init.join("diff").join(f)).unwrap().len(),
                0,
                "{f}"
            );
        }
        assert!(init.join("diff/dev/pts").is_dir() && init.join("diff/dev/shm").is_dir());
        let dir = store.overlay_dir().join(&c.id);
        assert_eq!(
            fs::read_to_string(dir.join("lower")).unwrap(),
            format!("l/{}:{image_lower}", c.init_link)
        );
        assert_eq!(fs::read_to_string(dir.join("link")).unwrap(), c.link);
        assert!(dir.join("merged").is_dir() && dir.join("work").is_dir());
        assert_eq!(
            fs::read_link(store.links_dir().join(&c.link)).unwrap(),
            PathBuf::from(format!("../{}/diff", c.id))
        );

        let dirs = store.container_dirs(&c).unwrap();
        assert_eq!(dirs.lower.len(), 3);
        assert_eq!(dirs.lower[0], init.join("diff"));
        assert_eq!(dirs.lower[1], store.layer_dir(&chains[1]).join("diff"));
        assert_eq!(store.container("web").unwrap(), c);
        assert_eq!(store.container(&c.id[..6]).unwrap(), c);
        assert!(matches!(
            store.container("nope"),
            Err(StoreError::NoSuchContainer(_))
        ));

        store.remove_container(&c).unwrap();
        assert!(!dir.exists() && !init.exists());
        assert_eq!(fs::read_dir(store.trash_dir()).unwrap().count(), 0);
        assert!(!store.links_dir().join(&c.link).exists());
        assert!(store.containers().unwrap().is_empty());
    }
}

//! Image records and the reference index (`repositories.json`).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{LockGuard, Store, StoreError, fsutil, io_err};
use crate::digest::Digest;
use crate::id::{BlobDigest, ChainId, DiffId, ImageId};
use crate::image::Platform;

/// One layer of an image, bottom first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRef {
    /// Chain ID (names the layer's directory).
    pub chain_id: ChainId,
    /// Uncompressed digest.
    pub diff_id: DiffId,
    /// Compressed blob digest.
    pub blob_digest: BlobDigest,
    /// Compressed blob size.
    pub blob_size: u64,
    /// Regular-file bytes in the layer.
    pub size: u64,
}

/// What the store knows about a pulled image; its id is the config digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// The config digest (Docker's image id).
    pub id: ImageId,
    /// The image manifest's digest.
    pub manifest_digest: Digest,
    /// The image manifest's media type.
    pub manifest_media_type: String,
    /// `os/arch[/variant]` of the image.
    pub platform: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// `repo@digest` names this image was pulled by (the digest a tag resolved to).
    pub repo_digests: Vec<String>,
    /// RFC 3339 time of the first pull.
    pub pulled_at: String,
}

impl ImageRecord {
    /// Total regular-file bytes of all layers.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// The image's platform, parsed; `None` when the record's text is not `os/arch[/variant]`.
    pub fn parsed_platform(&self) -> Option<Platform> {
        Platform::parse(&self.platform).ok()
    }
}

/// Among the images a reference names, the one for `platform`: an exact match (after
/// normalising) first, else one that runs on it (an older variant); `None` when none does.
pub fn pick_platform(images: Vec<ImageRecord>, platform: &Platform) -> Option<ImageRecord> {
    let want = platform.normalized();
    let same = |p: &Platform| {
        let p = p.normalized();
        p.os == want.os && p.architecture == want.architecture && p.variant == want.variant
    };
    let exact = images
        .iter()
        .position(|i| i.parsed_platform().is_some_and(|p| same(&p)));
    let index = exact.or_else(|| {
        images
            .iter()
            .position(|i| i.parsed_platform().is_some_and(|p| platform.matches(&p)))
    })?;
    images.into_iter().nth(index)
}

/// References (`docker.io/library/alpine:latest`) mapped to image ids.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Repositories {
    /// Tagged references to image ids.
    pub refs: BTreeMap<String, ImageId>,
}

impl Store {
    /// `<root>/images/<id hex>`.
    pub(super) fn image_dir(&self, id: &ImageId) -> PathBuf {
        self.images_dir().join(id.hex())
    }

    /// `<root>/repositories.json`.
    pub(super) fn repositories_path(&self) -> PathBuf {
        self.root.join("repositories.json")
    }

    pub(super) fn metadata_lock(&self) -> Result<LockGuard, StoreError> {
        self.intend()?;
        LockGuard::acquire(&self.locks_dir().join("metadata.lock"))
    }

    /// Saves an image's record with its verified manifest and config bytes (kept verbatim).
    pub fn put_image(
        &self,
        record: &ImageRecord,
        manifest: &[u8],
        config: &[u8],
    ) -> Result<(), StoreError> {
        let dir = self.image_dir(&record.id);
        fsutil::mkdir_mode(&dir, 0o700)?;
        fsutil::write_atomic(&dir.join("manifest.json"), manifest, 0o600)?;
        fsutil::write_atomic(&dir.join("config.json"), config, 0o600)?;
        fsutil::write_json(&dir.join("image.json"), record)
    }

    /// Adds `repo_digest` to an image's record (under the metadata lock).
    /// Returns the updated record.
    pub fn add_repo_digest(
        &self,
        id: &ImageId,
        repo_digest: &str,
    ) -> Result<ImageRecord, StoreError> {
        let _lock = self.metadata_lock()?;
        let mut record = self
            .image(id)?
            .ok_or_else(|| StoreError::NoSuchImage(id.to_string()))?;
        if !record.repo_digests.iter().any(|d| d == repo_digest) {
            record.repo_digests.push(repo_digest.to_string());
            fsutil::write_json(&self.image_dir(id).join("image.json"), &record)?;
        }
        Ok(record)
    }

    /// An image's record, if present.
    pub fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>, StoreError> {
        fsutil::read_json(&self.image_dir(id).join("image.json"))
    }

    /// An image's config bytes as pulled.
    pub fn image_config(&self, id: &ImageId) -> Result<Vec<u8>, StoreError> {
        let path = self.image_dir(id).join("config.json");
        fs::read(&path).map_err(io_err("reading", &path))
    }

    /// An image's manifest bytes as stored.
    pub fn image_manifest(&self, id: &ImageId) -> Result<Vec<u8>, StoreError> {
        let path = self.image_dir(id).join("manifest.json");
        fs::read(&path).map_err(io_err("reading", &path))
    }

    /// The reference index.
    pub fn repositories(&self) -> Result<Repositories, StoreError> {
        Ok(fsutil::read_json(&self.repositories_path())?.unwrap_or_default())
    }

    /// Points a tagged reference at an image id.
    pub fn tag(&self, reference: &str, id: &ImageId) -> Result<(), StoreError> {
        let _lock = self.metadata_lock()?;
        let mut repos = self.repositories()?;
        repos.refs.insert(reference.to_string(), id.clone());
        fsutil::write_json(&self.repositories_path(), &repos)
    }

    /// All image records, by id.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let dir = self.images_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let Some(id) = entry.file_name().to_str().and_then(ImageId::from_hex) else {
                continue;
            };
            if let Some(record) = self.image(&id)? {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The images a normalised reference names: the one its tag points at (`name:tag`), or
    /// every image pulled by it (`name@digest`: one per platform pulled from an index).
    pub fn images_by_ref(&self, normalised_ref: &str) -> Result<Vec<ImageRecord>, StoreError> {
        if let Some(id) = self.repositories()?.refs.get(normalised_ref) {
            return Ok(self.image(id)?.into_iter().collect());
        }
        if !normalised_ref.contains('@') {
            return Ok(Vec::new());
        }
        Ok(self
            .images()?
            .into_iter()
            .filter(|i| i.repo_digests.iter().any(|d| d == normalised_ref))
            .collect())
    }

    /// Finds an image by a normalised reference (`name:tag` or `name@digest`), a full id, or an
    /// id prefix of at least 4 hex chars; among the images of a reference, the host's.
    pub fn resolve_image(
        &self,
        normalised_ref: Option<&str>,
        raw: &str,
    ) -> Result<ImageRecord, StoreError> {
        self.resolve_image_for(normalised_ref, raw, &Platform::host())
    }

    /// The image whose id `raw` is (`sha256:<hex>`, the hex, or a prefix of at least 4 hex
    /// chars), when `raw` looks like one and no local reference has that name: Docker runs a
    /// local image by id without asking a registry (`docker run 3f5ef9003cef`).
    pub fn image_by_id(
        &self,
        normalised_ref: Option<&str>,
        raw: &str,
    ) -> Result<Option<ImageRecord>, StoreError> {
        let hex = raw.strip_prefix("sha256:").unwrap_or(raw);
        if hex.len() < 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        if let Some(name) = normalised_ref
            && !self.images_by_ref(name)?.is_empty()
        {
            return Ok(None);
        }
        match self.resolve_image_for(None, raw, &Platform::host()) {
            Ok(image) => Ok(Some(image)),
            Err(StoreError::NoSuchImage(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Store::resolve_image`], preferring `platform`'s image among those a reference names
    /// (an index digest names one per platform pulled); another platform's when that is all
    /// the reference has.
    pub fn resolve_image_for(
        &self,
        normalised_ref: Option<&str>,
        raw: &str,
        platform: &Platform,
    ) -> Result<ImageRecord, StoreError> {
        if let Some(name) = normalised_ref {
            let images = self.images_by_ref(name)?;
            if let Some(first) = images.first().cloned() {
                return Ok(pick_platform(images, platform).unwrap_or(first));
            }
            if self.repositories()?.refs.contains_key(name) {
                // A tag whose image record is gone.
                return Err(StoreError::NoSuchImage(raw.to_string()));
            }
        }
        let prefix = raw.strip_prefix("sha256:").unwrap_or(raw);
        if prefix.len() >= 4 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut matches = self
                .images()?
                .into_iter()
                .filter(|i| i.id.hex().starts_with(prefix));
            if let Some(first) = matches.next() {
                if matches.next().is_some() {
                    return Err(StoreError::Ambiguous(raw.to_string()));
                }
                return Ok(first);
            }
        }
        Err(StoreError::NoSuchImage(raw.to_string()))
    }
}

/// The current UTC time as RFC 3339 with nanoseconds (`2026-11-22T06:30:00.123456789Z`), so
/// records created in the same second still sort by creation.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = rfc3339(now.as_secs() as i64);
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), now.subsec_nanos())
}

/// Formats seconds since the epoch as RFC 3339 UTC (days-from-civil, inverted).
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_305_600 + 3_723), "2026-11-22T01:02:03Z");
        let now = now_rfc3339();
        assert_eq!(now.len(), "2026-11-22T01:02:03.123456789Z".len(), "{now}");
    }

    use super::*;

    fn record(id: &ImageId) -> ImageRecord {
        ImageRecord {
            id: id.clone(),
            manifest_digest: Digest::of(b"m"),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            platform: "linux/amd64".into(),
            layers: vec![],
            repo_digests: vec![],
            pulled_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn images_resolve_by_ref_digest_and_id_prefix() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let id = ImageId::new(Digest::of(b"config"));
        store.put_image(&record(&id), b"{}", b"{\"a\":1}").unwrap();
        store.tag("docker.io/library/alpine:latest", &id).unwrap();
        store
            .add_repo_digest(&id, "docker.io/library/alpine@sha256:abc")
            .unwrap();
        store
            .add_repo_digest(&id, "docker.io/library/alpine@sha256:abc")
            .unwrap();

        let by_ref = store
            .resolve_image(Some("docker.io/library/alpine:latest"), "alpine")
            .unwrap();
        assert_eq!(by_ref.id, id);
        assert_eq!(by_ref.repo_digests.len(), 1);
        let by_digest = store
            .resolve_image(Some("docker.io/library/alpine@sha256:abc"), "x")
            .unwrap();
        assert_eq!(by_digest.id, id);
        assert_eq!(store.resolve_image(None, &id.hex()[..8]).unwrap().id, id);
        assert!(matches!(
            store.resolve_image(Some("docker.io/library/busybox:latest"), "busybox"),
            Err(StoreError::NoSuchImage(_))
        ));
        assert_eq!(store.image_config(&id).unwrap(), b"{\"a\":1}");
        assert_eq!(store.images().unwrap().len(), 1);
    }

    #[test]
    fn an_index_digest_resolves_to_the_asked_platform() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let by_index = "r/alpine@sha256:index";
        let mut ids = Vec::new();
        // Stored in both orders of id, so the answer cannot come from the listing's order.
        for (config, platform) in [(&b"amd"[..], "linux/amd64"), (b"arm", "linux/arm64/v8")] {
            let id = ImageId::new(Digest::of(config));
            let mut image = record(&id);
            image.platform = platform.into();
            store.put_image(&image, b"{}", b"{}").unwrap();
            store.add_repo_digest(&id, by_index).unwrap();
            ids.push(id);
        }
        assert_eq!(store.images_by_ref(by_index).unwrap().len(), 2);
        for (platform, id) in [("linux/amd64", &ids[0]), ("linux/arm64", &ids[1])] {
            let platform = Platform::parse(platform).unwrap();
            let found = store.resolve_image_for(Some(by_index), "x", &platform);
            assert_eq!(&found.unwrap().id, id, "{platform}");
            let picked = pick_platform(store.images_by_ref(by_index).unwrap(), &platform);
            assert_eq!(&picked.unwrap().id, id);
        }
        let s390x = Platform::parse("linux/s390x").unwrap();
        assert!(pick_platform(store.images_by_ref(by_index).unwrap(), &s390x).is_none());
        // Lookups that are not for running fall back to what the reference has.
        assert!(store.resolve_image_for(Some(by_index), "x", &s390x).is_ok());
        assert!(store.images_by_ref("r/alpine:latest").unwrap().is_empty());
    }
}

//! Pulling an image: resolve the reference, pick the platform, verify the config, then bring
//! every layer into the store concurrently and record the image.

mod channel;
pub(crate) mod layer;
mod lower;
mod pipe;

use std::io;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;

use crate::archive::{ApplyOptions, ArchiveError};
use crate::compression::CompressionError;
use crate::digest::{Digest, DigestError};
use crate::image::{
    Compression, Descriptor, ImageConfig, ImageManifest, Manifest, ManifestError, Platform,
    PlatformError, layer_compression, parse_config, parse_manifest, select,
};
use crate::reference::Reference;
use crate::registry::{FetchedManifest, RegistryClient, RegistryError};
use crate::store::{ImageRecord, LayerRef, Store, StoreError, chain_ids};
use layer::LayerJob;

/// Largest image config accepted (Docker's limit is 8 MiB).
const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from an index.
    pub platform: Platform,
    /// Layers downloaded and unpacked at once.
    pub max_concurrent_downloads: usize,
    /// How layers are written.
    pub apply: ApplyOptions,
    /// Whether each layer is on disk (one `syncfs`) before it becomes visible; without, layers
    /// are marked unsynced and discarded if the machine goes down before something syncs them
    /// (see `store::durable`).
    pub sync: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            max_concurrent_downloads: 3,
            apply: ApplyOptions::default(),
            sync: true,
        }
    }
}

/// Progress of a pull, for display. Layers are named by their blob digest.
#[derive(Debug, Clone)]
pub enum PullEvent {
    /// The reference resolved; layers follow.
    Resolved {
        /// What is pulled.
        reference: Reference,
        /// The image manifest's layers, bottom first, with their blob sizes.
        layers: Vec<(Digest, u64)>,
    },
    /// The layer is in the store already.
    LayerExists {
        /// Blob digest.
        layer: Digest,
    },
    /// Bytes of the blob arrived.
    Downloading {
        /// Blob digest.
        layer: Digest,
        /// Bytes so far.
        done: u64,
        /// The blob's size.
        total: u64,
    },
    /// The download ended; unpacking and verification finish.
    Extracting {
        /// Blob digest.
        layer: Digest,
    },
    /// The layer is verified and in the store.
    LayerDone {
        /// Blob digest.
        layer: Digest,
    },
}

/// Receives [`PullEvent`]s (from several tasks at once).
pub trait Observer: Send + Sync {
    /// Called for each event.
    fn event(&self, event: PullEvent);
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: PullEvent) {}
}

/// Whether a pull fetched anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// At least one layer or the image record was new.
    Downloaded,
    /// Everything was present already.
    UpToDate,
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// The reference pulled.
    pub reference: Reference,
    /// The digest the reference resolved to (an index's digest for multi-platform images).
    pub digest: Digest,
    /// The stored image.
    pub image: ImageRecord,
    /// Whether anything was fetched.
    pub status: PullStatus,
}

/// Why a layer could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The blob's bytes do not match its digest or size.
    #[error("blob verification failed: {0}")]
    Blob(DigestError),
    /// The uncompressed content does not match the config's diff_id.
    #[error("diff_id verification failed (uncompressed content): {0}")]
    DiffId(DigestError),
    /// The download failed.
    #[error("download failed: {0}")]
    Download(RegistryError),
    /// The blob stream broke off or was longer than declared.
    #[error("reading blob: {0}")]
    Stream(io::Error),
    /// Decompression failed.
    #[error("decompressing: {0}")]
    Decompress(io::Error),
    /// The media type is unknown or disagrees with the content.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The layer's media type is not a known layer type.
    #[error(transparent)]
    MediaType(ManifestError),
    /// The tar stream could not be applied.
    #[error("unpacking: {0}")]
    Archive(#[from] ArchiveError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Giving one of the layer's implicit parent directories the metadata of the same
    /// directory in the lower layers failed.
    #[error("implicit directory {:?}: {op}: {source}", path.display().to_string())]
    ImplicitDir {
        /// The directory, relative to the layer.
        path: std::path::PathBuf,
        /// What was being done.
        op: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A layer below this one (of the same pull) failed, so this one cannot be completed;
    /// that layer's own error says why.
    #[error("a lower layer of the image failed")]
    LowerLayerFailed,
}

/// Why a pull failed; every variant names the image.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Talking to the registry failed.
    #[error("{image}: {source}")]
    Registry {
        /// The image.
        image: String,
        /// What failed.
        source: RegistryError,
    },
    /// A manifest or config was invalid.
    #[error("{image}: {source}")]
    Manifest {
        /// The image.
        image: String,
        /// What was wrong.
        source: ManifestError,
    },
    /// No manifest for the wanted platform.
    #[error("{image}: {source}")]
    Platform {
        /// The image.
        image: String,
        /// The platforms on offer.
        source: PlatformError,
    },
    /// Something else about the image is inconsistent.
    #[error("{image}: {message}")]
    Invalid {
        /// The image.
        image: String,
        /// What is wrong.
        message: String,
    },
    /// A layer failed.
    #[error("{image}: layer {layer}: {source}")]
    Layer {
        /// The image.
        image: String,
        /// The layer's blob digest.
        layer: Digest,
        /// What failed.
        source: LayerError,
    },
    /// The store failed.
    #[error("{image}: {source}")]
    Store {
        /// The image.
        image: String,
        /// What failed.
        source: StoreError,
    },
}

/// An image resolved for one platform: verified manifest and config, and its layers.
pub(crate) struct ResolvedImage {
    /// The digest the reference resolved to (an index's digest for multi-platform images).
    pub top_digest: Digest,
    /// The image manifest: its digest, media type and verbatim bytes.
    pub manifest: FetchedManifest,
    /// The verbatim config bytes (verified against the manifest).
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfig,
    /// The config's digest: the image id.
    pub id: Digest,
    /// The layers, bottom first.
    pub layers: Vec<ResolvedLayer>,
}

/// One layer of a [`ResolvedImage`].
#[derive(Debug, Clone)]
pub(crate) struct ResolvedLayer {
    /// The blob's descriptor from the manifest.
    pub blob: Descriptor,
    /// Its compression, from the media type.
    pub compression: Compression,
    /// The config's diff_id for it.
    pub diff_id: Digest,
}

impl ResolvedImage {
    /// The `Resolved` event for this image.
    pub(crate) fn event(&self, reference: &Reference) -> PullEvent {
        PullEvent::Resolved {
            reference: reference.clone(),
            layers: self
                .layers
                .iter()
                .map(|l| (l.blob.digest.clone(), l.blob.size))
                .collect(),
        }
    }
}

/// Resolves `reference` to an image manifest for `wanted` (through an index if needed), and
/// fetches and checks its config: every digest verified, one diff_id per layer, every layer
/// of a known media type.
pub(crate) async fn resolve(
    client: &RegistryClient,
    reference: &Reference,
    wanted: &Platform,
) -> Result<ResolvedImage, PullError> {
    let image = reference.to_string();
    let registry = |source| PullError::Registry {
        image: image.clone(),
        source,
    };
    let bad_manifest = |source| PullError::Manifest {
        image: image.clone(),
        source,
    };

    let top = client.fetch_manifest(reference).await.map_err(registry)?;
    let top_digest = top.digest.clone();
    let fetched = match parse_manifest(&top.bytes, &top.media_type).map_err(bad_manifest)? {
        Manifest::Image(_) => top,
        Manifest::Index(index) => {
            let chosen =
                select(&index.manifests, wanted).map_err(|source| PullError::Platform {
                    image: image.clone(),
                    source,
                })?;
            client
                .fetch_manifest_by_digest(reference, &chosen.digest)
                .await
                .map_err(registry)?
        }
    };
    let manifest: ImageManifest =
        match parse_manifest(&fetched.bytes, &fetched.media_type).map_err(bad_manifest)? {
            Manifest::Image(m) => m,
            Manifest::Index(_) => {
                return Err(PullError::Invalid {
                    image,
                    message: format!("index {} points at another index", fetched.digest),
                });
            }
        };
    if manifest.config.size > MAX_CONFIG_SIZE {
        return Err(PullError::Invalid {
            image,
            message: format!(
                "config is {} bytes, more than the {MAX_CONFIG_SIZE} allowed",
                manifest.config.size
            ),
        });
    }
    let config_bytes = client
        .fetch_blob_bytes(
            reference,
            &manifest.config.digest,
            manifest.config.size,
            MAX_CONFIG_SIZE,
        )
        .await
        .map_err(registry)?;
    let config = parse_config(&config_bytes).map_err(bad_manifest)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(PullError::Invalid {
            image,
            message: format!(
                "config lists {} diff_ids but the manifest has {} layers",
                diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (blob, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let compression = layer_compression(&blob.media_type).map_err(|e| PullError::Layer {
            image: image.clone(),
            layer: blob.digest.clone(),
            source: LayerError::MediaType(e),
        })?;
        layers.push(ResolvedLayer {
            blob: blob.clone(),
            compression,
            diff_id: diff_id.clone(),
        });
    }
    Ok(ResolvedImage {
        top_digest,
        id: manifest.config.digest.clone(),
        manifest: fetched,
        config_bytes,
        config,
        layers,
    })
}

/// Pulls `reference` into `store`.
pub async fn pull(
    client: &RegistryClient,
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    observer: Arc<dyn Observer>,
) -> Result<PullOutcome, PullError> {
    let image = reference.to_string();
    let store_err = |source| PullError::Store {
        image: image.clone(),
        source,
    };

    let resolved = resolve(client, reference, &options.platform).await?;
    let id = resolved.id.clone();
    let had_image = store.image(&id).map_err(store_err)?.is_some();
    store.sweep_staging().map_err(store_err)?;
    store.repair_unsynced(options.sync).map_err(store_err)?;

    let diff_ids: Vec<Digest> = resolved.layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = chain_ids(&diff_ids);
    // With no more layers to fetch than cores, each layer's decoding and file creation run on
    // two threads; with more, the layers themselves keep the cores busy.
    let missing = chains
        .iter()
        .filter(|c| !matches!(store.layer(c), Ok(Some(_))))
        .count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pipelined = missing <= cores.min(options.max_concurrent_downloads);
    let jobs = resolved
        .layers
        .iter()
        .zip(&chains)
        .enumerate()
        .map(|(i, (layer, chain))| LayerJob {
            reference: reference.clone(),
            blob: layer.blob.clone(),
            compression: layer.compression,
            diff_id: layer.diff_id.clone(),
            chain_id: chain.clone(),
            ancestors: chains[..i].iter().rev().cloned().collect(),
            sync: options.sync,
            pipelined,
        })
        .collect();
    observer.event(resolved.event(reference));

    let downloaded = pull_layers(client, store, &image, jobs, options, &observer).await?;
    let layers = resolved
        .layers
        .iter()
        .zip(chains)
        .zip(&downloaded.sizes)
        .map(|((layer, chain_id), size)| LayerRef {
            chain_id,
            diff_id: layer.diff_id.clone(),
            blob_digest: layer.blob.digest.clone(),
            blob_size: layer.blob.size,
            size: *size,
        })
        .collect();
    let top_digest = resolved.top_digest.clone();
    let repo_digest = format!("{}@{}", reference.repo_name(), top_digest);
    // Another process may have recorded the image meanwhile: keep its record.
    if store.image(&id).map_err(store_err)?.is_none() {
        let record = ImageRecord {
            id: id.clone(),
            manifest_digest: resolved.manifest.digest.clone(),
            manifest_media_type: resolved.manifest.media_type.clone(),
            platform: resolved.config.platform(),
            layers,
            repo_digests: vec![],
            pulled_at: crate::store::now_rfc3339(),
        };
        store
            .put_image(&record, &resolved.manifest.bytes, &resolved.config_bytes)
            .map_err(store_err)?;
    }
    let image_record = store
        .add_repo_digest(&id, &repo_digest)
        .map_err(store_err)?;
    if reference.digest.is_none() || reference.tag.is_some() {
        let tagged = format!("{}:{}", reference.repo_name(), reference.tag_or_default());
        store.tag(&tagged, &id).map_err(store_err)?;
    }
    let status = if had_image && !downloaded.any {
        PullStatus::UpToDate
    } else {
        PullStatus::Downloaded
    };
    Ok(PullOutcome {
        reference: reference.clone(),
        digest: top_digest,
        image: image_record,
        status,
    })
}

struct Downloaded {
    /// Regular-file bytes per layer, bottom first.
    sizes: Vec<u64>,
    /// Whether any layer was fetched.
    any: bool,
}

/// Runs the layer jobs concurrently (bounded); the first failure cancels the rest.
async fn pull_layers(
    client: &RegistryClient,
    store: &Store,
    image: &str,
    jobs: Vec<LayerJob>,
    options: &PullOptions,
    observer: &Arc<dyn Observer>,
) -> Result<Downloaded, PullError> {
    let permits = Arc::new(Semaphore::new(options.max_concurrent_downloads.max(1)));
    let mut set = JoinSet::new();
    let count = jobs.len();
    // Per layer: true once it is in the store. A layer with implicit directories waits for
    // its ancestors (see `layer::Gate`); a sender dropped before sending means failure.
    let (done, present): (Vec<_>, Vec<_>) = (0..count).map(|_| watch::channel(false)).unzip();
    // Largest blobs first: the pull then ends with small layers instead of one big layer
    // unpacking alone on an otherwise idle machine.
    let mut jobs: Vec<_> = jobs.into_iter().enumerate().zip(done).collect();
    jobs.sort_by_key(|((index, job), _)| (std::cmp::Reverse(job.blob.size), *index));
    let (turns, waits): (Vec<_>, Vec<_>) = (0..count).map(|_| oneshot::channel()).unzip();
    // Aborted when this function returns or is dropped.
    let mut dispatcher = JoinSet::new();
    dispatcher.spawn(hand_out_in_order(permits, turns));
    let apply = ApplyOptions {
        // Early writeback only pays off before a syncfs.
        writeback: options.apply.writeback && options.sync,
        ..options.apply.clone()
    };
    for (((index, job), done), turn) in jobs.into_iter().zip(waits) {
        let (client, store, observer) = (client.clone(), store.clone(), observer.clone());
        let apply = apply.clone();
        let ancestors = present[..index].to_vec();
        set.spawn(async move {
            let layer = job.blob.digest.clone();
            let permit = turn.await.ok();
            let gate = layer::Gate { permit, ancestors };
            let result = layer::ensure_layer(client, store, job, apply, observer, gate).await;
            if result.is_ok() {
                done.send_replace(true);
            }
            (index, layer, result)
        });
    }
    drop(present);
    let mut sizes = vec![0; count];
    let mut any = false;
    // A layer that failed because a lower one did: reported only if that one's error is not
    // (it always is; the order in which the two tasks end is not fixed).
    let mut consequential = None;
    while let Some(joined) = set.join_next().await {
        let (index, layer, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                set.abort_all();
                return Err(PullError::Invalid {
                    image: image.to_string(),
                    message: format!("layer task failed: {e}"),
                });
            }
        };
        match result {
            Ok((record, fetched)) => {
                sizes[index] = record.size;
                any |= fetched;
            }
            Err(source @ LayerError::LowerLayerFailed) => {
                consequential.get_or_insert((layer, source));
            }
            Err(source) => {
                set.abort_all();
                while set.join_next().await.is_some() {}
                return Err(PullError::Layer {
                    image: image.to_string(),
                    layer,
                    source,
                });
            }
        }
    }
    if let Some((layer, source)) = consequential {
        return Err(PullError::Layer {
            image: image.to_string(),
            layer,
            source,
        });
    }
    Ok(Downloaded { sizes, any })
}

/// Gives the download permits to the jobs in the order of `turns`. The jobs' tasks are not
/// polled in the order they were spawned, and the semaphore serves them as they come.
async fn hand_out_in_order(
    permits: Arc<Semaphore>,
    turns: Vec<oneshot::Sender<OwnedSemaphorePermit>>,
) {
    for turn in turns {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        // A job that is gone gives its permit back with the failed send.
        let _ = turn.send(permit);
    }
}

/// When to contact the registry for an image that may be present already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Never pull: the image must be present.
    Never,
    /// Pull only when the image is not present (no network I/O otherwise).
    #[default]
    Missing,
    /// Always resolve the reference and fetch what is missing.
    Always,
}

/// Errors of [`ensure_image`].
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// `--pull never` and the image is not present.
    #[error("image {0} is not present and the pull policy is \"never\"")]
    NotPresent(String),
    /// Looking in the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Pulling failed.
    #[error(transparent)]
    Pull(#[from] PullError),
}

/// The key a reference is stored under: `repo@digest` when it has a digest, else `repo:tag`.
pub fn store_key(reference: &Reference) -> String {
    match &reference.digest {
        Some(digest) => format!("{}@{digest}", reference.repo_name()),
        None => format!("{}:{}", reference.repo_name(), reference.tag_or_default()),
    }
}

/// The stored image for `reference` when it and all its layers are in the store (layers a
/// crash may have torn are discarded first, see `store::durable`).
pub fn present_image(
    store: &Store,
    reference: &Reference,
) -> Result<Option<ImageRecord>, StoreError> {
    store.repair_unsynced(false)?;
    match store.resolve_image(Some(&store_key(reference)), &reference.to_string()) {
        Ok(image)
            if image
                .layers
                .iter()
                .all(|l| matches!(store.layer(&l.chain_id), Ok(Some(_)))) =>
        {
            Ok(Some(image))
        }
        Ok(_) | Err(StoreError::NoSuchImage(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Returns the stored image for `reference`, pulling it as `policy` says; `Ok((image, None))` when
/// no pull happened.
pub async fn ensure_image(
    client: &RegistryClient,
    store: &Store,
    reference: &Reference,
    policy: PullPolicy,
    options: &PullOptions,
    observer: Arc<dyn Observer>,
) -> Result<(ImageRecord, Option<PullOutcome>), EnsureError> {
    // Layers a crash may have torn must not be used (see `store::durable`).
    store.repair_unsynced(options.sync)?;
    if policy != PullPolicy::Always {
        if let Some(image) = present_image(store, reference)? {
            return Ok((image, None));
        }
        if policy == PullPolicy::Never {
            return Err(EnsureError::NotPresent(reference.to_string()));
        }
    }
    let outcome = pull(client, store, reference, options, observer).await?;
    Ok((outcome.image.clone(), Some(outcome)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permits_go_to_the_jobs_in_order() {
        // One permit: a job gets it only once the one before has recorded its turn.
        let permits = Arc::new(Semaphore::new(1));
        let (turns, mut waits): (Vec<_>, Vec<_>) = (0..5).map(|_| oneshot::channel()).unzip();
        // Job 2 is gone before its turn: its permit must come back.
        drop(waits.remove(2));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut jobs = JoinSet::new();
        // Spawned in reverse: the order must not depend on when the tasks first run.
        for (job, wait) in waits.into_iter().enumerate().rev() {
            let order = order.clone();
            jobs.spawn(async move {
                let permit = wait.await.unwrap();
                order.lock().unwrap().push(job);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                drop(permit);
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        hand_out_in_order(permits.clone(), turns).await;
        while jobs.join_next().await.is_some() {}
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
        assert_eq!(permits.available_permits(), 1);
    }
}

//! Pulling an image: the [pipeline](crate::pipeline) from a [source](crate::source) (the
//! registry, an OCI layout) into the [store sink](crate::sink::StoreSink), then the image recorded and
//! tagged. Also when to pull ([`PullPolicy`], [`ensure_image`]).

use std::collections::HashSet;
use std::sync::Arc;

use crate::archive::ApplyOptions;
use crate::digest::Digest;
use crate::id::ChainId;
use crate::image::Platform;
use crate::pipeline;
use crate::reference::Reference;
use crate::registry::RegistryClient;
use crate::sink::StoreSink;
use crate::source::{ImageSource, RegistrySource};
use crate::store::{ImageRecord, LayerRef, LeaseKind, Store, StoreError, pick_platform};

pub use crate::pipeline::{LayerError, Observer, PullError, PullEvent, Silent};

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

/// Whether a pull fetched or changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// A layer or the image record was new, or the reference now names another image than
    /// before (a tag moved, or was new), as Docker's "Downloaded newer image".
    Downloaded,
    /// Everything was present already and the reference named this image already.
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

/// Pulls `reference` into `store`.
///
/// ```no_run
/// use std::path::Path;
/// use std::sync::Arc;
///
/// use strata::pull::{self, PullOptions, Silent};
/// use strata::reference::Reference;
/// use strata::registry::{RegistryClient, RegistryConfig};
/// use strata::store::Store;
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Store::open(Path::new("/var/lib/strata"))?;
/// let client = RegistryClient::new(RegistryConfig::default())?;
/// let reference = Reference::parse("alpine:3.20")?;
/// let outcome =
///     pull::pull(&client, &store, &reference, &PullOptions::default(), Arc::new(Silent)).await?;
/// println!("{} is {}", outcome.reference, outcome.image.id);
/// # Ok(())
/// # }
/// ```
pub async fn pull(
    client: &RegistryClient,
    store: &Store,
    reference: &Reference,
    options: &PullOptions,
    observer: Arc<dyn Observer>,
) -> Result<PullOutcome, PullError> {
    let source = Arc::new(RegistrySource::new(client.clone(), reference.clone()));
    pull_from(source, store, reference, options, observer).await
}

/// Pulls the image `source` holds into `store`, recorded and tagged as `reference` (for a
/// registry, the reference the source reads; for a layout, the name it is stored under).
pub async fn pull_from<S: ImageSource>(
    source: Arc<S>,
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

    // The blobs stored layers came from (read while the manifest is fetched) tell which
    // layers to ask for while the config is fetched.
    let (known, manifest) = tokio::join!(
        known_blobs(store),
        pipeline::resolve_manifest(source.as_ref(), &image, &options.platform)
    );
    let manifest = manifest?;
    let ahead = pipeline::pick_prefetch(
        &manifest.manifest.layers,
        &known,
        options.max_concurrent_downloads,
    );
    let prefetch = Arc::new(pipeline::Prefetch::start(&source, ahead));
    let resolved = pipeline::resolve_config(source.as_ref(), &image, manifest).await?;
    let id = resolved.id.clone();
    // Recovery first (it may wait for the exclusive lease), then the shared lease, held from
    // deciding which layers are present until the image is recorded and tagged: no rmi or
    // prune removes them meanwhile. Both may block: off the async workers.
    let (leasing, sync) = (store.clone(), options.sync);
    let _lease = tokio::task::spawn_blocking(move || {
        leasing.recover(sync)?;
        leasing.lease(LeaseKind::Shared)
    })
    .await
    .map_err(|e| {
        store_err(StoreError::Io {
            what: "waiting for the store lock",
            path: store.root().to_path_buf(),
            source: std::io::Error::other(e),
        })
    })?
    .map_err(store_err)?;
    let had_image = store.image(&id).map_err(store_err)?.is_some();

    let jobs = resolved.layer_jobs();
    let chains: Vec<ChainId> = jobs.iter().map(|job| job.chain_id.clone()).collect();
    observer.event(resolved.event(reference));

    let sink = Arc::new(StoreSink::new(store.clone(), &options.apply, options.sync));
    let done = pipeline::run_layers_prefetched(
        &source,
        &sink,
        &image,
        jobs,
        options.max_concurrent_downloads,
        &observer,
        prefetch,
    )
    .await?;
    let layers = resolved
        .layers
        .iter()
        .zip(chains)
        .zip(&done.layers)
        .map(|((layer, chain_id), record)| LayerRef {
            chain_id,
            diff_id: layer.diff_id.clone(),
            blob_digest: layer.blob_digest(),
            blob_size: layer.blob.size,
            size: record.size,
        })
        .collect();
    let top_digest = resolved.top_digest.clone();
    let repo_digest = format!("{}@{}", reference.repo_name(), top_digest);
    // Another process may have recorded the image meanwhile: keep its record.
    let record = match store.image(&id).map_err(store_err)? {
        Some(existing) => existing,
        None => {
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
            record
        }
    };
    // As Docker: "up to date" only when the reference named this very image before the pull.
    let mut named_already = record.repo_digests.contains(&repo_digest);
    let image_record = if source.manifest_digest_is_real() {
        store
            .add_repo_digest(&id, &repo_digest)
            .map_err(store_err)?
    } else {
        // The shared lease keeps the record just put (or found) there.
        record
    };
    if reference.digest.is_none() || reference.tag.is_some() {
        let tagged = format!("{}:{}", reference.repo_name(), reference.tag_or_default());
        let before = store
            .repositories()
            .map_err(store_err)?
            .refs
            .remove(&tagged);
        named_already = before.as_ref() == Some(&id);
        store.tag(&tagged, &id).map_err(store_err)?;
    }
    let status = if had_image && !done.fetched && named_already {
        PullStatus::UpToDate
    } else {
        PullStatus::Downloaded
    };
    tracing::info!("{reference}: image {id} stored ({status:?})");
    Ok(PullOutcome {
        reference: reference.clone(),
        digest: top_digest,
        image: image_record,
        status,
    })
}

/// The digests of the blobs the store's images' layers were unpacked from: a layer whose blob
/// is among them may be present already. Empty when the store cannot be read (every blob is
/// then asked for ahead; the scheduler still finds present layers).
async fn known_blobs(store: &Store) -> HashSet<Digest> {
    let store = store.clone();
    let read = match tokio::task::spawn_blocking(move || store.images()).await {
        Ok(read) => read.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match read {
        Ok(images) => images
            .iter()
            .flat_map(|image| &image.layers)
            .map(|layer| layer.blob_digest.digest().clone())
            .collect(),
        Err(e) => {
            tracing::debug!("reading the stored images for the blobs they have: {e}");
            HashSet::new()
        }
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
    /// `--pull never` and the reference names images of other platforms only.
    #[error("image {image} is {found}, {wanted} was asked (and the pull policy is \"never\")")]
    OtherPlatform {
        /// The reference.
        image: String,
        /// The platforms of the images it names.
        found: String,
        /// The platform asked for.
        wanted: String,
    },
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

/// What the store has for a reference and a platform.
enum Stored {
    /// The image, with all its layers.
    Present(ImageRecord),
    /// Images of these other platforms only.
    OtherPlatforms(Vec<String>),
    /// Nothing usable.
    Absent,
}

/// Looks `reference` up for `platform` (layers a crash may have torn are discarded first, see
/// [`Store::recover`]).
fn lookup(store: &Store, reference: &Reference, platform: &Platform) -> Result<Stored, StoreError> {
    store.recover(false)?;
    let images = store.images_by_ref(&store_key(reference))?;
    let platforms: Vec<String> = images.iter().map(|i| i.platform.clone()).collect();
    if images.is_empty() {
        return Ok(Stored::Absent);
    }
    Ok(match pick_platform(images, platform) {
        Some(image)
            if image
                .layers
                .iter()
                .all(|l| matches!(store.layer(&l.chain_id), Ok(Some(_)))) =>
        {
            Stored::Present(image)
        }
        Some(_) => Stored::Absent,
        None => Stored::OtherPlatforms(platforms),
    })
}

/// The stored image of `reference` for `platform` when it and all its layers are in the store
/// (layers a crash may have torn are discarded first, see [`Store::recover`]). A reference that
/// names images of other platforms only (a tag pulled for another one, an index digest) has
/// none.
pub fn present_image(
    store: &Store,
    reference: &Reference,
    platform: &Platform,
) -> Result<Option<ImageRecord>, StoreError> {
    Ok(match lookup(store, reference, platform)? {
        Stored::Present(image) => Some(image),
        Stored::OtherPlatforms(_) | Stored::Absent => None,
    })
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
    let source = Arc::new(RegistrySource::new(client.clone(), reference.clone()));
    ensure_image_from(source, store, reference, policy, options, observer).await
}

/// [`ensure_image`] for the image `source` holds, stored under `reference` (see
/// [`pull_from`]).
pub async fn ensure_image_from<S: ImageSource>(
    source: Arc<S>,
    store: &Store,
    reference: &Reference,
    policy: PullPolicy,
    options: &PullOptions,
    observer: Arc<dyn Observer>,
) -> Result<(ImageRecord, Option<PullOutcome>), EnsureError> {
    // Layers a crash may have torn must not be used (see `store::durable`).
    store.recover(options.sync)?;
    if policy != PullPolicy::Always {
        match lookup(store, reference, &options.platform)? {
            Stored::Present(image) => return Ok((image, None)),
            Stored::OtherPlatforms(found) if policy == PullPolicy::Never => {
                return Err(EnsureError::OtherPlatform {
                    image: reference.to_string(),
                    found: found.join(", "),
                    wanted: options.platform.to_string(),
                });
            }
            _ if policy == PullPolicy::Never => {
                return Err(EnsureError::NotPresent(reference.to_string()));
            }
            // Another platform's image is not used: the pull fetches the asked one (and moves
            // the tag to it, as Docker does).
            Stored::OtherPlatforms(_) | Stored::Absent => {}
        }
    }
    let outcome = pull_from(source, store, reference, options, observer).await?;
    Ok((outcome.image.clone(), Some(outcome)))
}

//! From a source's manifest (or index) to one verified image for a platform: the config
//! fetched and checked against the manifest, one diff_id and a known media type per layer.

use super::{LayerError, PullError, PullEvent};
use crate::digest::Digest;
use crate::id::{BlobDigest, ChainId, DiffId, ImageId};
use crate::image::Compression;
use crate::image::{
    Descriptor, ImageConfig, ImageManifest, Manifest, ManifestError, Platform, layer_compression,
    parse_config, parse_manifest, select,
};
use crate::reference::Reference;
use crate::registry::FetchedManifest;
use crate::sink::LayerJob;
use crate::source::{ImageSource, SourceError};

/// Largest image config accepted (Docker's limit is 8 MiB).
const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// An image resolved for one platform: verified manifest and config, and its layers.
#[derive(Debug)]
pub struct ResolvedImage {
    /// The digest the reference resolved to (an index's digest for multi-platform images).
    pub top_digest: Digest,
    /// The image manifest: its digest, media type and verbatim bytes.
    pub manifest: FetchedManifest,
    /// The verbatim config bytes (verified against the manifest).
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfig,
    /// The config's digest: the image id.
    pub id: ImageId,
    /// The layers, bottom first.
    pub layers: Vec<ResolvedLayer>,
}

/// One layer of a [`ResolvedImage`].
#[derive(Debug, Clone)]
pub struct ResolvedLayer {
    /// The blob's descriptor from the manifest.
    pub blob: Descriptor,
    /// Its compression, from the media type.
    pub compression: Compression,
    /// The config's diff_id for it.
    pub diff_id: DiffId,
}

impl ResolvedLayer {
    /// The blob digest that names this layer (in events and errors).
    pub fn blob_digest(&self) -> BlobDigest {
        BlobDigest::new(self.blob.digest.clone())
    }
}

impl ResolvedImage {
    /// The layers as sink jobs, bottom first, with their chain IDs and ancestors.
    pub fn layer_jobs(&self) -> Vec<LayerJob> {
        let diff_ids: Vec<DiffId> = self.layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = ChainId::of_stack(&diff_ids);
        self.layers
            .iter()
            .zip(&chains)
            .enumerate()
            .map(|(i, (layer, chain))| LayerJob {
                blob: layer.blob.clone(),
                compression: layer.compression,
                diff_id: layer.diff_id.clone(),
                chain_id: chain.clone(),
                ancestors: chains[..i].iter().rev().cloned().collect(),
            })
            .collect()
    }

    /// The `Resolved` event for this image.
    pub fn event(&self, reference: &Reference) -> PullEvent {
        PullEvent::Resolved {
            reference: reference.clone(),
            layers: self
                .layers
                .iter()
                .map(|l| (l.blob_digest(), l.blob.size))
                .collect(),
        }
    }
}

/// The image manifest a source's reference resolves to for a platform, before its config.
#[derive(Debug)]
pub struct ResolvedManifest {
    /// The digest the reference resolved to (an index's digest for multi-platform images).
    pub top_digest: Digest,
    /// The image manifest: its digest, media type and verbatim bytes.
    pub fetched: FetchedManifest,
    /// The parsed manifest.
    pub manifest: ImageManifest,
}

/// Resolves what `source` holds to an image manifest for `wanted` (through an index if
/// needed), and fetches and checks its config: every digest verified, one diff_id per layer,
/// every layer of a known media type. `image` names the image in errors.
pub async fn resolve<S: ImageSource>(
    source: &S,
    image: &str,
    wanted: &Platform,
) -> Result<ResolvedImage, PullError> {
    let manifest = resolve_manifest(source, image, wanted).await?;
    resolve_config(source, image, manifest).await
}

/// The first half of [`resolve`]: the image manifest for `wanted` (through an index if
/// needed), verified, its config's size checked.
pub async fn resolve_manifest<S: ImageSource>(
    source: &S,
    image: &str,
    wanted: &Platform,
) -> Result<ResolvedManifest, PullError> {
    let image = image.to_string();
    let fetch_err = |source: SourceError| PullError::Source {
        image: image.clone(),
        source,
    };
    let bad_manifest = |source: ManifestError| PullError::Manifest {
        image: image.clone(),
        source,
    };

    let top = source.manifest().await.map_err(fetch_err)?;
    let top_digest = top.digest.clone();
    let fetched = match parse_manifest(&top.bytes, &top.media_type).map_err(bad_manifest)? {
        Manifest::Image(_) => top,
        Manifest::Index(index) => {
            let chosen =
                select(&index.manifests, wanted).map_err(|source| PullError::Platform {
                    image: image.clone(),
                    source,
                })?;
            source
                .manifest_by_digest(&chosen.digest)
                .await
                .map_err(fetch_err)?
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
    Ok(ResolvedManifest {
        top_digest,
        fetched,
        manifest,
    })
}

/// The second half of [`resolve`]: the config of `resolved` fetched and checked against it.
pub async fn resolve_config<S: ImageSource>(
    source: &S,
    image: &str,
    resolved: ResolvedManifest,
) -> Result<ResolvedImage, PullError> {
    let image = image.to_string();
    let fetch_err = |source: SourceError| PullError::Source {
        image: image.clone(),
        source,
    };
    let bad_manifest = |source: ManifestError| PullError::Manifest {
        image: image.clone(),
        source,
    };
    let ResolvedManifest {
        top_digest,
        fetched,
        manifest,
    } = resolved;
    let config_bytes = source
        .blob_bytes(&manifest.config, MAX_CONFIG_SIZE)
        .await
        .map_err(fetch_err)?;
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
            layer: BlobDigest::new(blob.digest.clone()),
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
        id: ImageId::new(manifest.config.digest.clone()),
        manifest: fetched,
        config_bytes,
        config,
        layers,
    })
}

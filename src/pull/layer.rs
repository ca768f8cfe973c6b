//! One layer's pipeline: HTTP body -> sha256 + size -> decompress -> diff_id sha256 -> tar apply
//! into a staging dir -> verify -> commit. Download and unpack run concurrently.
//!
//! [`stream_blob`] (download on the async side, a blocking consumer on the other) and
//! [`unpack_verified`] (the verifying reader chain around a tar applier) are shared with
//! `export`, which applies into one flattened directory instead of the store.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::channel::{CHANNEL_CHUNKS, ChannelReader};
use super::{LayerError, Observer, PullEvent};
use crate::archive::{self, ApplyOptions, ApplyStats, ArchiveError};
use crate::compression::{self, Compression};
use crate::digest::{Digest, HashingReader, VerifyError};
use crate::reference::Reference;
use crate::registry::RegistryClient;
use crate::registry::manifest::Descriptor;
use crate::store::{LayerRecord, Store};

/// Everything needed to bring one layer into the store.
#[derive(Debug, Clone)]
pub(crate) struct LayerJob {
    pub reference: Reference,
    pub blob: Descriptor,
    pub compression: Compression,
    pub diff_id: Digest,
    pub chain_id: Digest,
    /// Chain IDs below this layer, nearest first.
    pub ancestors: Vec<Digest>,
}

/// Ensures the layer is in the store; returns its record and whether it was downloaded.
pub(crate) async fn ensure_layer(
    client: RegistryClient,
    store: Store,
    job: LayerJob,
    apply: ApplyOptions,
    observer: Arc<dyn Observer>,
) -> Result<(LayerRecord, bool), LayerError> {
    let layer = job.blob.digest.clone();
    if let Some(record) = store.layer(&job.chain_id)? {
        observer.event(PullEvent::LayerExists { layer });
        return Ok((record, false));
    }
    // Another process may be unpacking the same layer: wait for it, then look again.
    let (lock, present) = {
        let store = store.clone();
        let chain = job.chain_id.clone();
        tokio::task::spawn_blocking(move || -> Result<_, LayerError> {
            let lock = store.lock_layer(&chain)?;
            let present = store.layer(&chain)?;
            Ok((lock, present))
        })
        .await
        .map_err(join_error)??
    };
    if let Some(record) = present {
        observer.event(PullEvent::LayerExists { layer });
        return Ok((record, false));
    }

    let (reference, blob) = (job.reference.clone(), job.blob.clone());
    let unpack = move |rx| {
        let _lock = lock;
        unpack_and_commit(&store, &job, rx, &apply)
    };
    let record = stream_blob(&client, &reference, &blob, &observer, unpack).await?;
    observer.event(PullEvent::LayerDone { layer });
    Ok((record, true))
}

/// Downloads the blob `blob` of `reference` and streams its bytes to `unpack`, which runs on a
/// blocking thread at the same time (reading a [`ChannelReader`]) and must consume and verify
/// them. Emits `Downloading` and `Extracting` (not `LayerDone`). A download error reaches
/// `unpack` as a read error; the download's own error wins when both fail.
pub(crate) async fn stream_blob<T: Send + 'static>(
    client: &RegistryClient,
    reference: &Reference,
    blob: &Descriptor,
    observer: &Arc<dyn Observer>,
    unpack: impl FnOnce(ChannelReader) -> Result<T, LayerError> + Send + 'static,
) -> Result<T, LayerError> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let unpack = tokio::task::spawn_blocking(move || unpack(ChannelReader::new(rx)));
    let download = download(client, reference, blob, &tx, observer.as_ref()).await;
    if let Err(e) = &download {
        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
    }
    drop(tx);
    observer.event(PullEvent::Extracting {
        layer: blob.digest.clone(),
    });
    let unpacked = unpack.await.map_err(join_error)?;
    download?;
    unpacked
}

async fn download(
    client: &RegistryClient,
    reference: &Reference,
    blob: &Descriptor,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    observer: &dyn Observer,
) -> Result<(), LayerError> {
    let layer = &blob.digest;
    let mut body = client
        .fetch_blob(reference, layer)
        .await
        .map_err(LayerError::Download)?;
    let total = blob.size;
    let mut done = 0u64;
    while let Some(chunk) = body.next_chunk().await {
        let chunk = chunk.map_err(LayerError::Download)?;
        done += chunk.len() as u64;
        observer.event(PullEvent::Downloading {
            layer: layer.clone(),
            done,
            total,
        });
        if tx.send(Ok(chunk)).await.is_err() {
            // The unpacker stopped early; its error says why.
            break;
        }
    }
    Ok(())
}

/// The blocking half: everything after the HTTP body, ending in a committed layer.
fn unpack_and_commit(
    store: &Store,
    job: &LayerJob,
    blob: ChannelReader,
    apply: &ApplyOptions,
) -> Result<LayerRecord, LayerError> {
    let staging = store.begin_layer(&job.chain_id, &job.ancestors)?;
    let diff_dir = staging.diff_dir();
    let (stats, diff_id) =
        unpack_verified(blob, &job.blob, job.compression, &job.diff_id, |tar| {
            archive::apply_layer(tar, &diff_dir, apply)
        })?;
    let record = LayerRecord {
        chain_id: job.chain_id.clone(),
        diff_id,
        parent: job.ancestors.first().cloned(),
        blob_digest: job.blob.digest.clone(),
        blob_size: job.blob.size,
        compression: job.compression,
        link: staging.link().to_string(),
        size: stats.bytes,
        entries: stats.entries,
    };
    staging.commit(&record)?;
    Ok(record)
}

/// The verifying pipeline around a tar applier: `blob` (the compressed bytes) -> sha256 and
/// size -> decompress -> sha256 of the tar (diff_id) -> `apply`. Reads both streams to their
/// end and returns the applier's stats and the diff_id only when the blob's digest and size
/// and the diff_id all match; otherwise what `apply` did must be thrown away. A blob that does
/// not match its digest is reported as such even when decoding or applying failed first (it
/// explains any decode error).
pub(crate) fn unpack_verified<R: Read + Send>(
    blob: R,
    descriptor: &Descriptor,
    compression: Compression,
    diff_id: &Digest,
    apply: impl FnOnce(&mut dyn Read) -> Result<ApplyStats, ArchiveError>,
) -> Result<(ApplyStats, Digest), LayerError> {
    let mut blob = HashingReader::new(blob, Some(descriptor.size));
    let unpacked = (|| {
        let decoder = compression::decoder(&mut blob, compression)?;
        let mut tar = HashingReader::new(decoder, None);
        let stats = apply(&mut tar)?;
        let (diff_id, _) = tar.drain().map_err(LayerError::Decompress)?;
        Ok::<_, LayerError>((stats, diff_id))
    })();

    // Hash the whole blob even when unpacking failed: a corrupt blob explains any decode error.
    match HashingReader::verify(blob, &descriptor.digest, Some(descriptor.size)) {
        Ok(()) => {}
        Err(VerifyError::Io(e)) => return Err(LayerError::Stream(e)),
        Err(VerifyError::Digest(e)) => return Err(LayerError::Blob(e)),
    }
    let (stats, actual) = unpacked?;
    actual.verify(diff_id).map_err(LayerError::DiffId)?;
    Ok((stats, actual))
}

fn join_error(e: tokio::task::JoinError) -> LayerError {
    LayerError::Stream(io::Error::other(format!("unpack task failed: {e}")))
}

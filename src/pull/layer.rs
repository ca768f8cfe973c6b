//! One layer's pipeline: HTTP body -> sha256 + size -> decompress -> diff_id sha256 -> tar apply
//! into a staging dir -> verify -> commit. Download and unpack run concurrently.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::channel::{CHANNEL_CHUNKS, ChannelReader};
use super::{LayerError, Observer, PullEvent};
use crate::archive::{self, ApplyOptions};
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

    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let unpack = {
        let (store, job) = (store.clone(), job.clone());
        tokio::task::spawn_blocking(move || {
            let _lock = lock;
            unpack_and_commit(&store, &job, rx, &apply)
        })
    };

    let download = download(&client, &job, &tx, observer.as_ref()).await;
    if let Err(e) = &download {
        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
    }
    drop(tx);
    observer.event(PullEvent::Extracting {
        layer: layer.clone(),
    });
    let unpacked = unpack.await.map_err(join_error)?;
    download?;
    let record = unpacked?;
    observer.event(PullEvent::LayerDone { layer });
    Ok((record, true))
}

async fn download(
    client: &RegistryClient,
    job: &LayerJob,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    observer: &dyn Observer,
) -> Result<(), LayerError> {
    let layer = &job.blob.digest;
    let mut body = client
        .fetch_blob(&job.reference, layer)
        .await
        .map_err(LayerError::Download)?;
    let total = job.blob.size;
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
    rx: mpsc::Receiver<io::Result<Bytes>>,
    apply: &ApplyOptions,
) -> Result<LayerRecord, LayerError> {
    let staging = store.begin_layer(&job.chain_id, &job.ancestors)?;
    let diff_dir = staging.diff_dir();
    let mut blob = HashingReader::new(ChannelReader::new(rx), Some(job.blob.size));

    let unpacked = (|| {
        let decoder = compression::decoder(&mut blob, job.compression)?;
        let mut tar = HashingReader::new(decoder, None);
        let stats = archive::apply_layer(&mut tar, &diff_dir, apply)?;
        let (diff_id, _) = tar.drain().map_err(LayerError::Decompress)?;
        Ok::<_, LayerError>((stats, diff_id))
    })();

    // Hash the whole blob even when unpacking failed: a corrupt blob explains any decode error.
    match HashingReader::verify(blob, &job.blob.digest, Some(job.blob.size)) {
        Ok(()) => {}
        Err(VerifyError::Io(e)) => return Err(LayerError::Stream(e)),
        Err(VerifyError::Digest(e)) => return Err(LayerError::Blob(e)),
    }
    let (stats, diff_id) = unpacked?;
    diff_id.verify(&job.diff_id).map_err(LayerError::DiffId)?;

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

fn join_error(e: tokio::task::JoinError) -> LayerError {
    LayerError::Stream(io::Error::other(format!("unpack task failed: {e}")))
}

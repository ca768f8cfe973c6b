//! One layer's pipeline: HTTP body -> sha256 + size -> decompress -> diff_id sha256 -> tar apply
//! into a staging dir -> verify -> commit. Download and unpack run concurrently.
//!
//! A layer whose tar left out parent directories (the applier reports them as implicit) and
//! that has layers below it waits, before it commits, until those layers are in the store,
//! then gives those directories the metadata of the same directories there (see `lower`).
//! It gives up its download permit first: the layers it waits for may need one.
//!
//! [`stream_blob`] (download on the async side, a blocking consumer on the other) and
//! [`unpack_verified`] (the verifying reader chain around a tar applier) are shared with
//! `export`, which applies into one flattened directory instead of the store.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::channel::{CHANNEL_CHUNKS, ChannelReader};
use super::{LayerError, Observer, PullEvent};
use crate::archive::{self, ApplyOptions, ApplyStats, ArchiveError};
use crate::compression;
use crate::digest::{Digest, HashingReader, VerifyError};
use crate::image::{Compression, Descriptor};
use crate::reference::Reference;
use crate::registry::RegistryClient;
use crate::store::{LayerRecord, LockGuard, Staging, Store};

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
    /// `syncfs` before the commit (else an unsynced marker).
    pub sync: bool,
    /// Decode and apply on two threads (see [`unpack_verified`]).
    pub pipelined: bool,
}

/// What a layer job holds that concerns the other jobs of the same pull.
#[derive(Debug)]
pub(crate) struct Gate {
    /// The download permit (if any), given up before waiting for the ancestors.
    pub permit: Option<OwnedSemaphorePermit>,
    /// One receiver per ancestor job of the pull: `true` once that layer is in the store; the
    /// sender dropped without sending means that it failed.
    pub ancestors: Vec<watch::Receiver<bool>>,
}

impl Gate {
    /// Gives up the permit and waits until every ancestor is in the store.
    async fn wait(self) -> Result<(), LayerError> {
        drop(self.permit);
        for mut rx in self.ancestors {
            rx.wait_for(|present| *present)
                .await
                .map_err(|_| LayerError::LowerLayerFailed)?;
        }
        Ok(())
    }
}

/// Ensures the layer is in the store; returns its record and whether it was downloaded.
pub(crate) async fn ensure_layer(
    client: RegistryClient,
    store: Store,
    job: LayerJob,
    apply: ApplyOptions,
    observer: Arc<dyn Observer>,
    gate: Gate,
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
    let opts = apply.clone();
    let lowers: Vec<PathBuf> = job
        .ancestors
        .iter()
        .map(|chain| store.layer_dir(chain).join("diff"))
        .collect();
    let unpack = move |rx| unpack(&store, &job, rx, &apply, lock);
    let unpacked = stream_blob(&client, &reference, &blob, &observer, unpack).await?;
    // The download is over: its permit goes before the commit's syncfs, so the next download
    // need not wait for this layer's data to reach the disk.
    if unpacked.needs_lowers() {
        gate.wait().await?;
    } else {
        drop(gate);
    }
    let record = tokio::task::spawn_blocking(move || unpacked.commit(&lowers, &opts))
        .await
        .map_err(join_error)??;
    observer.event(PullEvent::LayerDone { layer });
    Ok((record, true))
}

/// A verified layer in its staging directory, not yet committed.
struct Unpacked {
    staging: Staging,
    record: LayerRecord,
    /// Directories the tar left out, to take the metadata of the lower layers (see `lower`).
    implicit: Vec<PathBuf>,
    /// Whether the layer has layers below it.
    has_lowers: bool,
    /// `syncfs` before the commit.
    sync: bool,
    /// The layer's lock, held until it is committed.
    _lock: LockGuard,
}

impl Unpacked {
    /// Whether the commit must wait until the layers below are in the store.
    fn needs_lowers(&self) -> bool {
        self.has_lowers && !self.implicit.is_empty()
    }

    /// Gives the implicit directories the metadata of the `lowers` (nearest first, all in the
    /// store) when it has any, then commits.
    fn commit(self, lowers: &[PathBuf], opts: &ApplyOptions) -> Result<LayerRecord, LayerError> {
        if self.needs_lowers() {
            super::lower::copy_up(&self.staging.diff_dir(), &self.implicit, lowers, opts).map_err(
                |e| LayerError::ImplicitDir {
                    path: e.path,
                    op: e.op,
                    source: e.source,
                },
            )?;
        }
        if self.sync {
            self.staging.commit(&self.record)?;
        } else {
            self.staging.commit_unsynced(&self.record)?;
        }
        Ok(self.record)
    }
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

/// The blocking half: everything after the HTTP body, ending in a verified layer in its
/// staging directory.
fn unpack(
    store: &Store,
    job: &LayerJob,
    blob: ChannelReader,
    apply: &ApplyOptions,
    lock: LockGuard,
) -> Result<Unpacked, LayerError> {
    let staging = store.begin_layer(&job.chain_id, &job.ancestors)?;
    let diff_dir = staging.diff_dir();
    let (stats, diff_id) = unpack_verified(
        blob,
        &job.blob,
        job.compression,
        &job.diff_id,
        job.pipelined,
        |tar| archive::apply_layer(tar, &diff_dir, apply),
    )?;
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
    Ok(Unpacked {
        staging,
        record,
        implicit: stats.implicit_dirs,
        has_lowers: !job.ancestors.is_empty(),
        sync: job.sync,
        _lock: lock,
    })
}

/// The verifying pipeline around a tar applier: `blob` (the compressed bytes) -> sha256 and
/// size -> decompress -> sha256 of the tar (diff_id) -> `apply`. Reads both streams to their
/// end and returns the applier's stats and the diff_id only when the blob's digest and size
/// and the diff_id all match; otherwise what `apply` did must be thrown away. A blob that does
/// not match its digest is reported as such even when decoding or applying failed first (it
/// explains any decode error).
///
/// `pipelined`: decompression and hashing run on a thread of their own, `apply` on this one
/// (worth it when there are fewer layers in flight than cores).
pub(crate) fn unpack_verified<R: Read + Send>(
    blob: R,
    descriptor: &Descriptor,
    compression: Compression,
    diff_id: &Digest,
    pipelined: bool,
    apply: impl FnOnce(&mut dyn Read) -> Result<ApplyStats, ArchiveError>,
) -> Result<(ApplyStats, Digest), LayerError> {
    let mut blob = HashingReader::new(blob, Some(descriptor.size));
    let unpacked = if pipelined {
        unpack_pipelined(&mut blob, compression, apply)
    } else {
        (|| {
            let decoder = compression::decoder(&mut blob, compression)?;
            let mut tar = HashingReader::new(decoder, None);
            let stats = apply(&mut tar)?;
            let (diff_id, _) = tar.drain().map_err(LayerError::Decompress)?;
            Ok::<_, LayerError>((stats, diff_id))
        })()
    };

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

/// [`unpack_verified`]'s two-thread form: decompression and the diff_id hash on a scoped
/// thread, feeding `apply` through a bounded [`pipe`](super::pipe). Errors as in the one-thread
/// form: the applier's (a decode error reaches it as a read error) before the decoder's.
fn unpack_pipelined<R: Read + Send>(
    blob: &mut R,
    compression: Compression,
    apply: impl FnOnce(&mut dyn Read) -> Result<ApplyStats, ArchiveError>,
) -> Result<(ApplyStats, Digest), LayerError> {
    let (writer, mut reader) = super::pipe::pipe();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| -> Result<Digest, LayerError> {
            let decoder = match compression::decoder(blob, compression) {
                Ok(decoder) => decoder,
                Err(e) => {
                    // The applier sees an empty stream; the decoder's error is the one reported.
                    drop(writer);
                    return Err(e.into());
                }
            };
            let mut tar = HashingReader::new(decoder, None);
            writer
                .pump(&mut tar, &stop)
                .map_err(LayerError::Decompress)?;
            let (diff_id, _) = tar.drain().map_err(LayerError::Decompress)?;
            Ok(diff_id)
        });
        let applied = apply(&mut reader);
        if applied.is_err() {
            // Nothing more to decode: the blob's digest is checked from its raw bytes.
            stop.store(true, Ordering::Release);
        }
        drop(reader);
        let decoded = producer.join().unwrap_or_else(|_| {
            Err(LayerError::Stream(io::Error::other(
                "decoder thread panicked",
            )))
        });
        match (applied, decoded) {
            (Err(e), _) => Err(e.into()),
            (Ok(_), Err(e)) => Err(e),
            (Ok(stats), Ok(diff_id)) => Ok((stats, diff_id)),
        }
    })
}

fn join_error(e: tokio::task::JoinError) -> LayerError {
    LayerError::Stream(io::Error::other(format!("unpack task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn gate_gives_up_its_permit_and_waits_for_every_ancestor() {
        let permits = Arc::new(Semaphore::new(1));
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (a_tx, a_rx) = watch::channel(false);
        let (b_tx, b_rx) = watch::channel(false);
        let gate = Gate {
            permit: Some(permit),
            ancestors: vec![a_rx, b_rx],
        };
        let waiting = tokio::spawn(gate.wait());
        // While it waits, an ancestor can get the only permit.
        let ancestor = permits.clone().acquire_owned().await.unwrap();
        b_tx.send_replace(true);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // Done, then gone: still done.
        a_tx.send_replace(true);
        drop(a_tx);
        waiting.await.unwrap().unwrap();
        drop(ancestor);

        // An ancestor that ends without being done fails the wait.
        let (tx, rx) = watch::channel(false);
        let gate = Gate {
            permit: None,
            ancestors: vec![rx],
        };
        drop(tx);
        assert!(matches!(
            gate.wait().await,
            Err(LayerError::LowerLayerFailed)
        ));
    }
}

//! One layer's bytes: the source's chunks -> sha256 + size -> decompress -> diff_id sha256 ->
//! a tar applier. The download (async) and the unpacking (a blocking thread) run at once,
//! joined by a bounded channel.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::channel::{CHANNEL_CHUNKS, ChannelReader};
use super::{LayerError, Observer, PullEvent};
use crate::archive::{ApplyStats, ArchiveError};
use crate::compression;
use crate::digest::{Digest, HashingReader, VerifyError};
use crate::id::{BlobDigest, DiffId};
use crate::image::Compression;
use crate::image::Descriptor;
use crate::source::{BlobChunks, ImageSource, SourceError};

/// Downloads the blob `blob` from `source` and streams its bytes to `unpack`, which runs on a
/// blocking thread at the same time (reading a [`ChannelReader`]) and must consume and verify
/// them; `opened`: the blob opened ahead (see [`super::Prefetch`]), else it is opened here.
/// Emits `Downloading` and `Extracting` (not `LayerDone`) for `layer`, the blob's digest. A download error reaches
/// `unpack` as a read error; the download's own error wins when both fail.
pub(crate) async fn stream_blob<S: ImageSource, T: Send + 'static>(
    source: &S,
    blob: &Descriptor,
    layer: &BlobDigest,
    observer: &Arc<dyn Observer>,
    opened: Option<Result<S::Blob, SourceError>>,
    unpack: impl FnOnce(ChannelReader) -> Result<T, LayerError> + Send + 'static,
) -> Result<T, LayerError> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let unpack = tokio::task::spawn_blocking(move || unpack(ChannelReader::new(rx)));
    let download = download(source, blob, opened, layer, &tx, observer.as_ref()).await;
    if let Err(e) = &download {
        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
    }
    drop(tx);
    observer.event(PullEvent::Extracting {
        layer: layer.clone(),
    });
    let unpacked = unpack.await.map_err(LayerError::join)?;
    download?;
    unpacked
}

async fn download<S: ImageSource>(
    source: &S,
    blob: &Descriptor,
    opened: Option<Result<S::Blob, SourceError>>,
    layer: &BlobDigest,
    tx: &mpsc::Sender<io::Result<Bytes>>,
    observer: &dyn Observer,
) -> Result<(), LayerError> {
    let opened = match opened {
        Some(opened) => opened,
        None => source.open_blob(blob).await,
    };
    let mut body = opened.map_err(LayerError::Download)?;
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
    diff_id: &DiffId,
    pipelined: bool,
    apply: impl FnOnce(&mut dyn Read) -> Result<ApplyStats, ArchiveError>,
) -> Result<(ApplyStats, DiffId), LayerError> {
    let mut blob = HashingReader::new(blob, Some(descriptor.size));
    // An uncompressed blob is the tar: its digest, verified below, is the diff_id (one sha256
    // pass over the bytes instead of two).
    let blob_is_tar = (compression == Compression::None).then_some(&descriptor.digest);
    let unpacked = if pipelined {
        unpack_pipelined(&mut blob, compression, blob_is_tar, apply)
    } else {
        (|| {
            let decoder = compression::decoder(&mut blob, compression)?;
            if let Some(digest) = blob_is_tar {
                let mut tar = decoder;
                return Ok((apply(&mut tar)?, digest.clone()));
            }
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
    actual
        .verify(diff_id.digest())
        .map_err(LayerError::DiffId)?;
    Ok((stats, DiffId::new(actual)))
}

/// [`unpack_verified`]'s two-thread form: decompression and the diff_id hash on a scoped
/// thread, feeding `apply` through a bounded [`pipe`](super::pipe). Errors as in the one-thread
/// form: the applier's (a decode error reaches it as a read error) before the decoder's.
fn unpack_pipelined<R: Read + Send>(
    blob: &mut R,
    compression: Compression,
    blob_is_tar: Option<&Digest>,
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
            if let Some(digest) = blob_is_tar {
                let mut tar = decoder;
                writer
                    .pump(&mut tar, &stop)
                    .map_err(LayerError::Decompress)?;
                return Ok(digest.clone());
            }
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

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;

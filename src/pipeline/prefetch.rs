//! Layer blobs requested before their jobs start: while the config is fetched (the chain IDs,
//! and so which layers are present already, need its diff_ids), the layers the store has no
//! record of are asked for, so their first bytes are on the way one round trip (and a
//! redirect) earlier. A request only: its body is read when the layer's job starts, bounded
//! by the connection's window, and the diff_id check still comes before the layer is named.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::digest::Digest;
use crate::image::Descriptor;
use crate::source::{ImageSource, SourceError};

/// The blobs to ask for ahead: those of `layers` whose digest is not in `known` (blobs some
/// stored layer was unpacked from), each once, the largest first (the order the scheduler
/// hands out its permits in), at most `max`.
pub fn pick_prefetch(
    layers: &[Descriptor],
    known: &HashSet<Digest>,
    max: usize,
) -> Vec<Descriptor> {
    let mut seen = HashSet::new();
    let mut picked: Vec<(usize, &Descriptor)> = layers
        .iter()
        .enumerate()
        .filter(|(_, blob)| !known.contains(&blob.digest) && seen.insert(&blob.digest))
        .collect();
    picked.sort_by_key(|(index, blob)| (std::cmp::Reverse(blob.size), *index));
    picked
        .into_iter()
        .take(max)
        .map(|(_, blob)| blob.clone())
        .collect()
}

/// Blobs being opened ahead of their jobs, by digest. Dropping it cancels those not taken.
pub struct Prefetch<B> {
    opening: Mutex<HashMap<Digest, oneshot::Receiver<Result<B, SourceError>>>>,
    /// The task that opens them (aborted on drop).
    driver: Option<JoinHandle<()>>,
}

impl<B> std::fmt::Debug for Prefetch<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let blobs = self.opening.lock().map_or(0, |o| o.len());
        f.debug_struct("Prefetch").field("blobs", &blobs).finish()
    }
}

impl<B: Send + 'static> Prefetch<B> {
    /// Nothing asked ahead.
    pub fn none() -> Self {
        Prefetch {
            opening: Mutex::new(HashMap::new()),
            driver: None,
        }
    }

    /// Starts opening each of `blobs` from `source`, at once.
    pub fn start<S: ImageSource<Blob = B>>(source: &Arc<S>, blobs: Vec<Descriptor>) -> Self {
        let mut opening = HashMap::new();
        let mut opens = Vec::new();
        for blob in blobs {
            let (mut tx, rx) = oneshot::channel();
            opening.insert(blob.digest.clone(), rx);
            let source = source.clone();
            opens.push(async move {
                // Given up when its receiver is dropped (the layer is present, or the pull
                // is over).
                let opened = tokio::select! {
                    opened = source.open_blob(&blob) => opened,
                    () = tx.closed() => return,
                };
                let _ = tx.send(opened);
            });
        }
        // One task polls them in `blobs`' order, so the requests start in the order the
        // scheduler would have made them (the first large blob may take a ranged-fetch slot).
        let driver = (!opens.is_empty()).then(|| {
            tokio::spawn(async move {
                join_all(opens).await;
            })
        });
        Prefetch {
            opening: Mutex::new(opening),
            driver,
        }
    }

    /// The blob `digest` opened ahead (waiting for its answer), or `None` when it was not asked
    /// for or was taken already: the caller then opens it itself.
    pub async fn take(&self, digest: &Digest) -> Option<Result<B, SourceError>> {
        let opened = self.opening.lock().ok()?.remove(digest)?;
        opened.await.ok()
    }

    /// Drops the blob `digest` if it was asked for (its layer is present after all).
    pub fn cancel(&self, digest: &Digest) {
        if let Ok(mut opening) = self.opening.lock() {
            opening.remove(digest);
        }
    }
}

impl<B> Drop for Prefetch<B> {
    fn drop(&mut self) {
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::registry::FetchedManifest;
    use crate::source::BlobChunks;

    /// Blobs open at once (a blob in the making counts until it is dropped); `size` 0 never
    /// opens.
    #[derive(Default)]
    struct Counting {
        open: Arc<AtomicUsize>,
    }

    struct Open(Arc<AtomicUsize>);

    impl Drop for Open {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl BlobChunks for Open {
        async fn next_chunk(&mut self) -> Option<Result<Bytes, SourceError>> {
            None
        }
    }

    impl ImageSource for Counting {
        type Blob = Open;

        async fn manifest(&self) -> Result<FetchedManifest, SourceError> {
            unimplemented!("not asked")
        }

        async fn manifest_by_digest(&self, _: &Digest) -> Result<FetchedManifest, SourceError> {
            unimplemented!("not asked")
        }

        async fn blob_bytes(&self, _: &Descriptor, _: u64) -> Result<Vec<u8>, SourceError> {
            unimplemented!("not asked")
        }

        async fn open_blob(&self, blob: &Descriptor) -> Result<Open, SourceError> {
            let open = Open(self.open.clone());
            self.open.fetch_add(1, Ordering::SeqCst);
            if blob.size == 0 {
                std::future::pending::<()>().await;
            }
            Ok(open)
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn taken_blobs_are_handed_over_the_rest_cancelled() {
        let source = Arc::new(Counting::default());
        let open = source.open.clone();
        let prefetch = Prefetch::start(&source, vec![blob(1, 5), blob(2, 0), blob(3, 0)]);
        settle().await;
        assert_eq!(open.load(Ordering::SeqCst), 3);
        let taken = prefetch.take(&blob(1, 0).digest).await;
        assert!(matches!(taken, Some(Ok(_))));
        assert!(prefetch.take(&blob(1, 0).digest).await.is_none(), "once");
        assert!(
            prefetch.take(&blob(9, 0).digest).await.is_none(),
            "never asked"
        );
        // A present layer's blob is dropped at once, the others with the prefetch.
        prefetch.cancel(&blob(2, 0).digest);
        settle().await;
        assert_eq!(open.load(Ordering::SeqCst), 2);
        drop(prefetch);
        settle().await;
        assert_eq!(
            open.load(Ordering::SeqCst),
            1,
            "only the blob taken is open"
        );
        drop(taken);
        assert_eq!(open.load(Ordering::SeqCst), 0);
    }

    fn blob(n: u8, size: u64) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: Digest::of(&[n]),
            size,
            platform: None,
            urls: None,
            annotations: None,
        }
    }

    #[test]
    fn picks_unknown_blobs_largest_first_once_at_most_max() {
        let layers = [
            blob(1, 10),
            blob(2, 30),
            blob(3, 20),
            blob(2, 30),
            blob(4, 30),
        ];
        let known: HashSet<Digest> = [blob(3, 0).digest].into();
        let picked = pick_prefetch(&layers, &known, 3);
        let sizes: Vec<(u64, Digest)> = picked.iter().map(|b| (b.size, b.digest.clone())).collect();
        // Equal sizes keep the manifest's order; the repeated blob and the known one are out.
        assert_eq!(
            sizes,
            [
                (30, blob(2, 0).digest),
                (30, blob(4, 0).digest),
                (10, blob(1, 0).digest)
            ]
        );
        assert!(pick_prefetch(&layers, &known, 0).is_empty());
    }
}

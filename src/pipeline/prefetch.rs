//! Layer blobs requested before their jobs start: while the config is fetched (the chain IDs,
//! and so which layers are present already, need its diff_ids), the layers the store has no
//! record of are asked for, so their first bytes are on the way one round trip (and a
//! redirect) earlier. A request only: its body is read when the layer's job starts, bounded
//! by the connection's window, and the diff_id check still comes before the layer is named.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

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
    opening: Mutex<HashMap<Digest, JoinHandle<Result<B, SourceError>>>>,
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
        }
    }

    /// Starts opening each of `blobs` from `source`, at once.
    pub fn start<S: ImageSource<Blob = B>>(source: &Arc<S>, blobs: Vec<Descriptor>) -> Self {
        let opening = blobs
            .into_iter()
            .map(|blob| {
                let source = source.clone();
                let digest = blob.digest.clone();
                (
                    digest,
                    tokio::spawn(async move { source.open_blob(&blob).await }),
                )
            })
            .collect();
        Prefetch {
            opening: Mutex::new(opening),
        }
    }

    /// The blob `digest` opened ahead (waiting for its answer), or `None` when it was not asked
    /// for or was taken already: the caller then opens it itself.
    pub async fn take(&self, digest: &Digest) -> Option<Result<B, SourceError>> {
        let handle = self.opening.lock().ok()?.remove(digest)?;
        match handle.await {
            Ok(opened) => Some(opened),
            // Only a panic ends the task otherwise; opening it again says what is wrong.
            Err(e) => {
                tracing::debug!("blob {digest} asked ahead: {e}");
                None
            }
        }
    }

    /// Drops the blob `digest` if it was asked for (its layer is present after all).
    pub fn cancel(&self, digest: &Digest) {
        if let Ok(mut opening) = self.opening.lock()
            && let Some(handle) = opening.remove(digest)
        {
            handle.abort();
        }
    }
}

impl<B> Drop for Prefetch<B> {
    fn drop(&mut self) {
        if let Ok(opening) = self.opening.get_mut() {
            for (_, handle) in opening.drain() {
                handle.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! The one scheduler: every layer of an image from a source into a sink, as many at once as
//! the download permits allow (largest blob first), or one at a time bottom first when the sink
//! needs that. The first failure cancels the rest.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;

use super::prefetch::Prefetch;
use super::stream::{stream_blob, unpack_verified};
use super::{LayerError, Observer, PullError, PullEvent};
use crate::sink::{Begun, LayerJob, LayerSink};
use crate::source::ImageSource;

/// What the layers of an image became.
#[derive(Debug)]
pub struct Scheduled<D> {
    /// Per layer, bottom first: what the sink made of it.
    pub layers: Vec<D>,
    /// Whether any layer was fetched (not present already).
    pub fetched: bool,
}

/// Brings every layer of `jobs` (bottom first) from `source` into `sink`, at most
/// `concurrency` at once. `image` names the image in errors.
pub async fn run_layers<S: ImageSource, K: LayerSink>(
    source: &Arc<S>,
    sink: &Arc<K>,
    image: &str,
    jobs: Vec<LayerJob>,
    concurrency: usize,
    observer: &Arc<dyn Observer>,
) -> Result<Scheduled<K::Done>, PullError> {
    let prefetch = Arc::new(Prefetch::none());
    run_layers_prefetched(source, sink, image, jobs, concurrency, observer, prefetch).await
}

/// [`run_layers`], taking the blobs `prefetch` opened ahead instead of opening them (those of
/// layers present already are cancelled).
pub async fn run_layers_prefetched<S: ImageSource, K: LayerSink>(
    source: &Arc<S>,
    sink: &Arc<K>,
    image: &str,
    jobs: Vec<LayerJob>,
    concurrency: usize,
    observer: &Arc<dyn Observer>,
    prefetch: Arc<Prefetch<S::Blob>>,
) -> Result<Scheduled<K::Done>, PullError> {
    let in_order = sink.in_order();
    let concurrency = if in_order { 1 } else { concurrency.max(1) };
    // With no more layers to write at once than cores, each layer's decoding and file creation
    // run on two threads; with more, the layers themselves keep the cores busy.
    let busy = if in_order {
        1
    } else {
        jobs.iter().filter(|job| !sink.has(job)).count()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pipelined = busy <= cores.min(concurrency);

    let permits = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    let count = jobs.len();
    // Per layer: true once it is in the sink. A layer with implicit directories waits for its
    // ancestors (see `Gate`); a sender dropped before sending means failure.
    let (done, present): (Vec<_>, Vec<_>) = (0..count).map(|_| watch::channel(false)).unzip();
    let mut jobs: Vec<_> = jobs.into_iter().enumerate().zip(done).collect();
    if !in_order {
        // Largest blobs first: the pull then ends with small layers instead of one big layer
        // unpacking alone on an otherwise idle machine.
        jobs.sort_by_key(|((index, job), _)| (std::cmp::Reverse(job.blob.size), *index));
    }
    let (turns, waits): (Vec<_>, Vec<_>) = (0..count).map(|_| oneshot::channel()).unzip();
    // Aborted when this function returns or is dropped.
    let mut dispatcher = JoinSet::new();
    dispatcher.spawn(hand_out_in_order(permits, turns));
    for (((index, job), done), turn) in jobs.into_iter().zip(waits) {
        let (source, sink, observer) = (source.clone(), sink.clone(), observer.clone());
        let prefetch = prefetch.clone();
        let ancestors = present[..index].to_vec();
        set.spawn(async move {
            let layer = job.blob_digest();
            let permit = turn.await.ok();
            let gate = Gate { permit, ancestors };
            let result = bring_layer(source, sink, job, pipelined, observer, gate, &prefetch).await;
            if result.is_ok() {
                done.send_replace(true);
            }
            (index, layer, result)
        });
    }
    drop(present);
    let mut layers: Vec<Option<K::Done>> = (0..count).map(|_| None).collect();
    let mut fetched = false;
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
            Ok((done, was_fetched)) => {
                layers[index] = Some(done);
                fetched |= was_fetched;
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
    Ok(Scheduled {
        layers: layers.into_iter().flatten().collect(),
        fetched,
    })
}

/// One layer: present already, or streamed from the source through verification into the
/// sink, then committed. Returns what the sink made of it and whether it was fetched.
async fn bring_layer<S: ImageSource, K: LayerSink>(
    source: Arc<S>,
    sink: Arc<K>,
    job: LayerJob,
    pipelined: bool,
    observer: Arc<dyn Observer>,
    gate: Gate,
    prefetch: &Prefetch<S::Blob>,
) -> Result<(K::Done, bool), LayerError> {
    let layer = job.blob_digest();
    let begun = {
        let (sink, job) = (sink.clone(), job.clone());
        tokio::task::spawn_blocking(move || sink.begin(&job))
            .await
            .map_err(LayerError::join)??
    };
    let mut pending = match begun {
        Begun::Present(done) => {
            prefetch.cancel(&job.blob.digest);
            tracing::info!("layer {layer}: present, not fetched");
            observer.event(PullEvent::LayerExists { layer });
            return Ok((done, false));
        }
        Begun::Write(pending) => pending,
    };
    let blob = job.blob.clone();
    let unpack = {
        let sink = sink.clone();
        move |rx| {
            let (stats, diff_id) = unpack_verified(
                rx,
                &job.blob,
                job.compression,
                &job.diff_id,
                pipelined,
                |tar| sink.apply(&mut pending, tar),
            )?;
            Ok((pending, job, stats, diff_id))
        }
    };
    let opened = prefetch.take(&blob.digest).await;
    let (pending, job, stats, diff_id) =
        stream_blob(source.as_ref(), &blob, &layer, &observer, opened, unpack).await?;
    // The download is over: its permit goes before the commit (a syncfs), so the next download
    // need not wait for this layer's data to reach the disk.
    if sink.needs_lowers(&job, &stats) {
        gate.wait().await?;
    } else {
        drop(gate);
    }
    let done = tokio::task::spawn_blocking(move || sink.commit(pending, &job, stats, diff_id))
        .await
        .map_err(LayerError::join)??;
    tracing::info!("layer {layer}: fetched and committed");
    observer.event(PullEvent::LayerDone { layer });
    Ok((done, true))
}

/// What a layer task holds that concerns the other layers of the same image.
#[derive(Debug)]
struct Gate {
    /// The download permit (if any), given up before waiting for the ancestors.
    permit: Option<OwnedSemaphorePermit>,
    /// One receiver per ancestor layer: `true` once that layer is in the sink; the sender
    /// dropped without sending means that it failed.
    ancestors: Vec<watch::Receiver<bool>>,
}

impl Gate {
    /// Gives up the permit and waits until every ancestor is in the sink.
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

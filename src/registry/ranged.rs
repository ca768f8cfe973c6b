//! Parallel segmented fetch of a large blob. Over a link with latency, what limits one
//! connection is TCP slow start (its window grows one round trip at a time) and, behind CDNs
//! and proxies, a per-connection bandwidth cap; what costs time is every request's round
//! trip. So the blob is cut into a few large segments (`connections` of them, each at least
//! `min_segment` bytes), each fetched by ONE request on its own connection: each connection's
//! window grows for the whole segment, with no request bubble in between (many small chunks
//! cost a round trip each per connection).
//!
//! The first segment's request is the one that found the blob (through the registry's
//! redirect: its answer says where the blob host is and that it serves ranges); the other
//! segments start as soon as it answers, straight at the blob host. The reader gets the bytes
//! in order: those of the segment it is in are handed over as they arrive (2 MiB at most
//! queued in memory); those of later segments are written to an unnamed temporary file (the
//! spool: page cache, not the process's memory) at their offsets and read back, and freed,
//! when the reader gets there. Memory stays bounded whatever the blob's size and the link.
//!
//! A segment cut off mid-way is resumed from where it stopped; when the blob host's URL stops
//! answering (signed URLs expire) the registry is asked again and its new redirect followed.
//! Dropping the reader aborts every request.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

use super::client::RegistryClient;
use super::error::RegistryError;
use super::request::Source;
use super::segment::{Flow, Piece, Segment, Shared, blob_host, fetch_segment};
use super::spool::Spool;
use crate::digest::Digest;
use crate::reference::Reference;

/// A segment being fetched, as the reader sees it.
struct Part {
    rx: mpsc::UnboundedReceiver<Piece>,
    len: u64,
    got: u64,
}

/// The segments of one blob, read in order.
pub(super) struct Segments {
    shared: Arc<Shared>,
    parts: VecDeque<Part>,
    /// Aborted when dropped: a reader that stops early cancels the requests in flight.
    tasks: JoinSet<()>,
    /// The client's ranged-blob slot, given back when dropped.
    _slot: OwnedSemaphorePermit,
}

/// Where the segments of a `total`-byte blob start when cut into `count` equal parts.
pub(super) fn boundaries(total: u64, count: usize) -> Vec<u64> {
    let count = (count.max(1) as u64).min(total.max(1));
    (0..count)
        .map(|i| total / count * i + (total % count).min(i))
        .collect()
}

impl Segments {
    /// Starts the segments beginning at `starts` (the first at 0) of a `total`-byte blob;
    /// `first` is the response (206) to the first segment's request. `slot` is held as long
    /// as they are fetched.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        client: RegistryClient,
        reference: Reference,
        digest: Digest,
        source: Source,
        first: reqwest::Response,
        starts: &[u64],
        total: u64,
        spool: Spool,
        slot: OwnedSemaphorePermit,
    ) -> Segments {
        let redirect = blob_host(&first, &source.url);
        let shared = Arc::new(Shared {
            client,
            reference,
            digest,
            source,
            redirect: Mutex::new(redirect),
            flow: Flow::default(),
            spool: Arc::new(spool),
        });
        let mut segments = Segments {
            shared,
            parts: VecDeque::new(),
            tasks: JoinSet::new(),
            _slot: slot,
        };
        let mut first = Some(first);
        for (index, &start) in starts.iter().enumerate() {
            let end = starts.get(index + 1).copied().unwrap_or(total);
            let segment = Segment {
                index,
                start,
                len: end.saturating_sub(start),
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let shared = segments.shared.clone();
            let response = first.take();
            segments
                .tasks
                .spawn(async move { fetch_segment(&shared, segment, response, &tx).await });
            segments.parts.push_back(Part {
                rx,
                len: segment.len,
                got: 0,
            });
        }
        segments
    }

    /// The next bytes of the blob, in order; `None` at the end.
    pub(super) async fn next_chunk(&mut self) -> Option<Result<Bytes, RegistryError>> {
        loop {
            let head = self.parts.front_mut()?;
            let failure = match head.rx.recv().await {
                Some(Piece::Bytes(bytes)) => {
                    let len = bytes.len() as u64;
                    self.shared.flow.queued.fetch_sub(len, Ordering::AcqRel);
                    head.got += len;
                    return Some(Ok(bytes));
                }
                Some(Piece::Spooled { offset, len }) => {
                    let spool = self.shared.spool.clone();
                    match tokio::task::spawn_blocking(move || spool.take(offset, len)).await {
                        Ok(Ok(bytes)) => {
                            head.got += bytes.len() as u64;
                            return Some(Ok(Bytes::from(bytes)));
                        }
                        Ok(Err(e)) => self.spool_error(&e.to_string()),
                        Err(e) => self.spool_error(&e.to_string()),
                    }
                }
                Some(Piece::Failed(e)) => e,
                None if head.got != head.len => RegistryError::Body {
                    url: self.shared.source.url.clone(),
                    reason: format!("a segment's request ended after {} bytes", head.got),
                },
                None => {
                    self.parts.pop_front();
                    self.shared.flow.head.fetch_add(1, Ordering::AcqRel);
                    continue;
                }
            };
            self.parts.clear();
            self.tasks.abort_all();
            return Some(Err(failure));
        }
    }

    fn spool_error(&self, reason: &str) -> RegistryError {
        RegistryError::Body {
            url: self.shared.source.url.clone(),
            reason: format!("reading back the temporary file of later segments: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_equal_and_cover_the_blob() {
        assert_eq!(boundaries(100, 4), [0, 25, 50, 75]);
        assert_eq!(boundaries(10, 3), [0, 4, 7]);
        assert_eq!(boundaries(2, 4), [0, 1]);
        assert_eq!(boundaries(5, 1), [0]);
    }
}

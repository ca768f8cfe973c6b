//! Parallel ranged fetch of a large blob: consecutive `Range` requests, a fixed number in
//! flight, their bytes handed to the reader in order (as containerd's
//! `concurrent_layer_fetch_buffer` does). Per-connection bandwidth caps (CDNs, proxies) then
//! limit each request, not the blob.
//!
//! Memory stays bounded: each request in flight buffers at most its chunk, and the chunk at
//! the head of the queue is handed out as it arrives. The requests go to where the first one
//! was redirected (a blob host), without the registry's credentials; when that URL stops
//! answering (signed URLs expire) the registry is asked again and its new redirect followed.
//! A chunk cut off mid-way is resumed from where it stopped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

use super::client::RegistryClient;
use super::error::{RegistryError, error_chain, header_str};
use super::request::{AttemptError, ByteRange, Source};
use super::retry::{self, seconds};
use crate::digest::Digest;
use crate::reference::Reference;

/// What every chunk request of one blob shares.
struct Shared {
    client: RegistryClient,
    reference: Reference,
    digest: Digest,
    /// The registry URL and endpoint asked first.
    source: Source,
    /// Where the registry redirected to (another host), if it did; `None` after it failed,
    /// until the registry is asked again.
    redirect: Mutex<Option<reqwest::Url>>,
}

/// A chunk in flight: its bytes as they arrive, and how many it must deliver.
struct InFlight {
    rx: mpsc::UnboundedReceiver<Result<Bytes, RegistryError>>,
    len: u64,
    got: u64,
}

/// The chunks of one blob in flight, in order.
pub(super) struct RangedChunks {
    shared: Arc<Shared>,
    queue: VecDeque<InFlight>,
    /// First byte not yet asked for.
    next: u64,
    total: u64,
    chunk: u64,
    window: usize,
    /// Aborted when dropped: a reader that stops early cancels the requests in flight.
    tasks: JoinSet<()>,
    /// The client's ranged-blob slot, given back when dropped.
    _slot: OwnedSemaphorePermit,
}

impl RangedChunks {
    /// Starts the chunks after `first`, the response (206) to `bytes=0-(first_len-1)` of a
    /// `total`-byte blob: `window` chunks in flight (`first` included), `chunk` bytes each;
    /// `slot` is held as long as they are.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        client: RegistryClient,
        reference: Reference,
        digest: Digest,
        source: Source,
        first: reqwest::Response,
        first_len: u64,
        total: u64,
        chunk: u64,
        window: usize,
        slot: OwnedSemaphorePermit,
    ) -> RangedChunks {
        let redirect = (first.url().as_str() != source.url
            && !same_origin(first.url(), &source.url))
        .then(|| first.url().clone());
        let shared = Arc::new(Shared {
            client,
            reference,
            digest,
            source,
            redirect: Mutex::new(redirect),
        });
        let mut chunks = RangedChunks {
            shared,
            queue: VecDeque::new(),
            next: first_len,
            total,
            chunk: chunk.max(1),
            window: window.max(1),
            tasks: JoinSet::new(),
            _slot: slot,
        };
        chunks.spawn(0, first_len, Some(first));
        while chunks.queue.len() < chunks.window && chunks.next < total {
            chunks.spawn_next();
        }
        chunks
    }

    fn spawn_next(&mut self) {
        let len = self.chunk.min(self.total - self.next);
        self.spawn(self.next, len, None);
        self.next += len;
    }

    fn spawn(&mut self, start: u64, len: u64, first: Option<reqwest::Response>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.shared.clone();
        self.tasks
            .spawn(async move { fetch_chunk(&shared, start, len, first, &tx).await });
        self.queue.push_back(InFlight { rx, len, got: 0 });
    }

    /// The next bytes of the blob, in order; `None` at the end.
    pub(super) async fn next_chunk(&mut self) -> Option<Result<Bytes, RegistryError>> {
        loop {
            let head = self.queue.front_mut()?;
            match head.rx.recv().await {
                Some(Ok(bytes)) => {
                    head.got += bytes.len() as u64;
                    return Some(Ok(bytes));
                }
                Some(Err(e)) => {
                    self.queue.clear();
                    self.tasks.abort_all();
                    return Some(Err(e));
                }
                None if head.got != head.len => {
                    let got = head.got;
                    self.queue.clear();
                    self.tasks.abort_all();
                    return Some(Err(RegistryError::Body {
                        url: self.shared.source.url.clone(),
                        reason: format!("a ranged request ended after {got} bytes"),
                    }));
                }
                None => {
                    self.queue.pop_front();
                    if self.next < self.total {
                        self.spawn_next();
                    }
                }
            }
        }
    }
}

/// Whether `url` has the same scheme, host and port as `other` (no redirect to a blob host).
fn same_origin(url: &reqwest::Url, other: &str) -> bool {
    reqwest::Url::parse(other).is_ok_and(|o| {
        o.scheme() == url.scheme()
            && o.host_str() == url.host_str()
            && o.port_or_known_default() == url.port_or_known_default()
    })
}

/// Fetches `len` bytes from `start` into `tx` (starting with `first`, if given), resuming
/// after interruptions while the retry budget lasts. Ends after the last byte or an error.
async fn fetch_chunk(
    shared: &Shared,
    start: u64,
    len: u64,
    first: Option<reqwest::Response>,
    tx: &mpsc::UnboundedSender<Result<Bytes, RegistryError>>,
) {
    let config = &shared.client.inner.config;
    let stall = config.stall_timeout;
    let mut response = first;
    let mut got = 0u64;
    // Bytes to drop from the current response (a server that ignored `Range`).
    let mut skip = 0u64;
    let mut spent = 0u32;
    while got < len {
        let failure = match response.as_mut() {
            None => {
                let range = ByteRange {
                    start: start + got,
                    end: Some(start + len - 1),
                };
                match open(shared, range).await {
                    Ok((r, s)) => {
                        response = Some(r);
                        skip = s;
                        continue;
                    }
                    Err(Open::Fatal(e)) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Err(Open::Retry(reason)) => reason,
                }
            }
            Some(r) => match tokio::time::timeout(stall, r.chunk()).await {
                Ok(Ok(Some(mut bytes))) => {
                    if skip > 0 {
                        let n = usize::try_from(skip).unwrap_or(usize::MAX).min(bytes.len());
                        let _ = bytes.split_to(n);
                        skip -= n as u64;
                    }
                    let want = usize::try_from(len - got).unwrap_or(usize::MAX);
                    if bytes.len() > want {
                        bytes.truncate(want);
                    }
                    if bytes.is_empty() {
                        continue;
                    }
                    got += bytes.len() as u64;
                    // A piece of a response shares (and so keeps alive) the HTTP reader's
                    // whole buffer: a queued chunk would hold far more than its bytes. A copy
                    // holds just them (a memcpy: ~30 ms per 300 MB).
                    if tx.send(Ok(Bytes::copy_from_slice(&bytes))).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(Ok(None)) => "the connection closed early".to_string(),
                Ok(Err(e)) => error_chain(&e.without_url()),
                Err(_) => format!("stalled: no data for {}", seconds(stall)),
            },
        };
        response = None;
        if spent >= config.retry.retries {
            let _ = tx.send(Err(RegistryError::Body {
                url: shared.source.url.clone(),
                reason: format!(
                    "{failure} (bytes {}-{} at byte {}; gave up after {} attempts)",
                    start,
                    start + len - 1,
                    start + got,
                    spent + 1
                ),
            }));
            return;
        }
        let delay = config.retry.delay(spent, None);
        spent += 1;
        tracing::warn!(
            "download of {} bytes {}-{} interrupted at byte {} ({failure}); resuming {}",
            shared.digest,
            start,
            start + len - 1,
            start + got,
            retry::Retrying {
                delay,
                retry: spent,
                retries: config.retry.retries,
            }
        );
        tokio::time::sleep(delay).await;
    }
}

/// Why a ranged request gave no usable response.
enum Open {
    /// Worth another try (transport failure, 5xx, 429).
    Retry(String),
    /// Final.
    Fatal(RegistryError),
}

/// One ranged request: to the blob host the registry redirected to, else (or when that
/// fails) to the registry. Returns the response and how many of its first bytes to drop.
async fn open(shared: &Shared, range: ByteRange) -> Result<(reqwest::Response, u64), Open> {
    let redirect = shared.redirect.lock().ok().and_then(|r| r.clone());
    let mut response = None;
    if let Some(url) = redirect {
        let sent = match shared.client.client_for_url(&url) {
            Ok(http) => http
                .get(url.clone())
                .header(reqwest::header::RANGE, range.header())
                .send()
                .await
                .map_err(|e| error_chain(&e.without_url())),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Ok(r) if matches!(r.status().as_u16(), 200 | 206) => response = Some(r),
            other => {
                // A signed URL that expired, or a blob host gone: ask the registry again, at
                // once (its new redirect is followed).
                let why = match other {
                    Ok(r) => format!("HTTP {}", r.status().as_u16()),
                    Err(e) => e,
                };
                tracing::debug!("blob host {url} failed ({why}); asking the registry again");
                if let Ok(mut r) = shared.redirect.lock()
                    && r.as_ref() == Some(&url)
                {
                    *r = None;
                }
            }
        }
    }
    let response = match response {
        Some(r) => r,
        None => match shared
            .client
            .attempt(
                &shared.source.endpoint,
                &shared.reference,
                &shared.source.url,
                None,
                Some(range),
            )
            .await
        {
            Ok(r) => {
                if r.url().as_str() != shared.source.url
                    && !same_origin(r.url(), &shared.source.url)
                    && let Ok(mut redirect) = shared.redirect.lock()
                {
                    *redirect = Some(r.url().clone());
                }
                r
            }
            Err(AttemptError::Transport { message, .. }) => return Err(Open::Retry(message)),
            Err(AttemptError::Registry(e)) => return Err(Open::Fatal(e)),
        },
    };
    let status = response.status().as_u16();
    match status {
        206 => {
            let got = content_range(response.headers()).map(|(s, _)| s);
            if got != Some(range.start) {
                return Err(Open::Fatal(RegistryError::Body {
                    url: shared.source.url.clone(),
                    reason: format!(
                        "asked for bytes from {}, the server sent Content-Range {:?}",
                        range.start,
                        header_str(response.headers(), "content-range").unwrap_or("")
                    ),
                }));
            }
            Ok((response, 0))
        }
        // The whole blob: skip to the range (rare: this server honoured the first range).
        200 => Ok((response, range.start)),
        s if retry::retriable_status(s) => Err(Open::Retry(format!("HTTP {s}"))),
        s => Err(Open::Fatal(RegistryError::Body {
            url: shared.source.url.clone(),
            reason: format!("ranged request {} answered HTTP {s}", range.header()),
        })),
    }
}

/// `Content-Range: bytes START-END/TOTAL`: the start and the total (`None` when `*`).
pub(super) fn content_range(headers: &reqwest::header::HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = header_str(headers, "content-range")?.trim();
    let rest = value.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let start = span.split('-').next()?.trim().parse::<u64>().ok()?;
    Some((start, total.trim().parse::<u64>().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-range", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn content_ranges_are_read() {
        assert_eq!(
            content_range(&headers("bytes 0-4194303/67108864")),
            Some((0, Some(67108864)))
        );
        assert_eq!(
            content_range(&headers("bytes 100-199/*")),
            Some((100, None))
        );
        assert_eq!(content_range(&headers("bytes */1000")), None);
        assert_eq!(content_range(&headers("items 0-1/2")), None);
        assert_eq!(content_range(&HeaderMap::new()), None);
        let range = ByteRange {
            start: 5,
            end: Some(9),
        };
        assert_eq!(range.header(), "bytes=5-9");
        assert_eq!(ByteRange::from(7).header(), "bytes=7-");
    }

    #[test]
    fn redirects_to_the_same_origin_are_not_blob_hosts() {
        let url = reqwest::Url::parse("http://127.0.0.1:5000/v2/a/blobs/x?s=1").unwrap();
        assert!(same_origin(&url, "http://127.0.0.1:5000/v2/a/blobs/y"));
        assert!(!same_origin(&url, "http://127.0.0.1:5001/v2/a/blobs/y"));
        assert!(!same_origin(&url, "https://127.0.0.1:5000/v2/a/blobs/y"));
    }
}

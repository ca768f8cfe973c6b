//! One segment of a blob fetched in parallel (see `ranged`): one `Range` request for the whole
//! segment, resumed where it stopped when cut, its bytes handed to the reader directly while
//! the reader is in this segment and keeps up, else written to the spool.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::client::RegistryClient;
use super::error::{RegistryError, error_chain, header_str};
use super::request::{AttemptError, ByteRange, Source};
use super::retry::{self, seconds};
use super::spool::Spool;
use crate::digest::Digest;
use crate::reference::Reference;

/// Bytes handed to the reader directly and not yet read, at most (then the spool takes them).
const MAX_QUEUED: u64 = 2 << 20;
/// Bytes gathered before one write to the spool (and read back at once): small, so that the
/// buffers of 4 segments together stay around a MiB.
const SPOOL_BATCH: usize = 256 << 10;

/// What a segment's fetch hands the reader, in the segment's order.
pub(super) enum Piece {
    /// The next bytes.
    Bytes(Bytes),
    /// The next `len` bytes, written to the spool at `offset`.
    Spooled { offset: u64, len: usize },
    /// The segment cannot be fetched.
    Failed(RegistryError),
}

/// What the reader tells the fetches.
#[derive(Debug, Default)]
pub(super) struct Flow {
    /// The segment the reader is in.
    pub(super) head: AtomicUsize,
    /// Bytes handed over in memory and not yet read.
    pub(super) queued: AtomicU64,
}

/// What every segment request of one blob shares.
pub(super) struct Shared {
    pub(super) client: RegistryClient,
    pub(super) reference: Reference,
    pub(super) digest: Digest,
    /// The registry URL and endpoint asked first.
    pub(super) source: Source,
    /// Where the registry redirected to (another host), if it did; `None` after it failed,
    /// until the registry is asked again.
    pub(super) redirect: Mutex<Option<reqwest::Url>>,
    /// Which segment the reader is in, and how many bytes wait for it in memory.
    pub(super) flow: Flow,
    pub(super) spool: Arc<Spool>,
}

/// A segment: its place among the blob's segments, and its bytes `start..start + len`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    pub(super) index: usize,
    pub(super) start: u64,
    pub(super) len: u64,
}

/// Bytes of a segment on their way to the reader: those the reader is not ready for are
/// gathered, then spooled.
struct Outlet<'a> {
    shared: &'a Shared,
    segment: Segment,
    tx: &'a mpsc::UnboundedSender<Piece>,
    /// Bytes of the segment received so far.
    received: u64,
    /// The last of them, not yet spooled (they follow everything sent before).
    pending: Vec<u8>,
}

impl Outlet<'_> {
    /// Passes on `bytes`, the next of the segment. `Err(())`: the reader is gone, or the
    /// spool failed (the reader has been told).
    async fn push(&mut self, bytes: &[u8]) -> Result<(), ()> {
        self.received += bytes.len() as u64;
        let flow = &self.shared.flow;
        let reading = flow.head.load(Ordering::Acquire) == self.segment.index;
        let room = flow.queued.load(Ordering::Acquire) < MAX_QUEUED;
        if reading && room && self.pending.is_empty() {
            flow.queued.fetch_add(bytes.len() as u64, Ordering::AcqRel);
            // A copy: a piece of the response would keep the HTTP reader's whole buffer alive.
            return self
                .tx
                .send(Piece::Bytes(Bytes::copy_from_slice(bytes)))
                .map_err(|_| ());
        }
        if self.pending.capacity() == 0 {
            // One allocation per batch, not a doubling series.
            self.pending.reserve_exact(SPOOL_BATCH + bytes.len());
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= SPOOL_BATCH || (reading && room) {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the gathered bytes to the spool and tells the reader where.
    async fn flush(&mut self) -> Result<(), ()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.pending);
        let len = bytes.len();
        let offset = self.segment.start + self.received - len as u64;
        let spool = self.shared.spool.clone();
        let written = tokio::task::spawn_blocking(move || spool.write_at(offset, &bytes)).await;
        let piece = match written {
            Ok(Ok(())) => Piece::Spooled { offset, len },
            Ok(Err(e)) => Piece::Failed(self.spool_error(&e.to_string())),
            Err(e) => Piece::Failed(self.spool_error(&e.to_string())),
        };
        let failed = matches!(piece, Piece::Failed(_));
        if self.tx.send(piece).is_err() || failed {
            return Err(());
        }
        Ok(())
    }

    fn spool_error(&self, reason: &str) -> RegistryError {
        RegistryError::Body {
            url: self.shared.source.url.clone(),
            reason: format!("writing to the temporary file for later segments: {reason}"),
        }
    }
}

/// Fetches `segment` (starting with `first`, the response to its request, if given) into
/// `tx`, resuming after interruptions while the retry budget lasts. Ends after its last byte
/// (`true`) or an error (`false`: the reader was told, or is gone).
pub(super) async fn fetch_segment(
    shared: &Shared,
    segment: Segment,
    first: Option<reqwest::Response>,
    tx: &mpsc::UnboundedSender<Piece>,
) -> bool {
    let config = &shared.client.inner.config;
    let stall = config.stall_timeout;
    let (start, len) = (segment.start, segment.len);
    let mut out = Outlet {
        shared,
        segment,
        tx,
        received: 0,
        pending: Vec::new(),
    };
    let mut response = first;
    // Bytes to drop from the current response (a server that ignored `Range`).
    let mut skip = 0u64;
    let mut spent = 0u32;
    while out.received < len {
        let got = out.received;
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
                        let _ = tx.send(Piece::Failed(e));
                        return false;
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
                    if !bytes.is_empty() && out.push(&bytes).await.is_err() {
                        return false;
                    }
                    continue;
                }
                Ok(Ok(None)) => "the connection closed early".to_string(),
                Ok(Err(e)) => error_chain(&e.without_url()),
                Err(_) => format!("stalled: no data for {}", seconds(stall)),
            },
        };
        response = None;
        // What arrived is the reader's, whatever happens next.
        if out.flush().await.is_err() {
            return false;
        }
        if spent >= config.retry.retries {
            let _ = tx.send(Piece::Failed(RegistryError::Body {
                url: shared.source.url.clone(),
                reason: format!(
                    "{failure} (bytes {}-{} at byte {}; gave up after {} attempts)",
                    start,
                    start + len - 1,
                    start + got,
                    spent + 1
                ),
            }));
            return false;
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
    out.flush().await.is_ok()
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
                if let Some(url) = blob_host(&r, &shared.source.url)
                    && let Ok(mut redirect) = shared.redirect.lock()
                {
                    *redirect = Some(url);
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

/// The blob host `response` came from, when the registry at `source` redirected to another
/// origin.
pub(super) fn blob_host(response: &reqwest::Response, source: &str) -> Option<reqwest::Url> {
    let url = response.url();
    (url.as_str() != source && !same_origin(url, source)).then(|| url.clone())
}

/// Whether `url` has the same scheme, host and port as `other` (no redirect to a blob host).
fn same_origin(url: &reqwest::Url, other: &str) -> bool {
    reqwest::Url::parse(other).is_ok_and(|o| {
        o.scheme() == url.scheme()
            && o.host_str() == url.host_str()
            && o.port_or_known_default() == url.port_or_known_default()
    })
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

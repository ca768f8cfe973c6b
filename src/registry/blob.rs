//! Fetching blobs: streamed with invisible resumption, or whole and verified.

use std::fmt;

use bytes::Bytes;

use super::client::RegistryClient;
use super::error::{RegistryError, Target, error_chain, error_from_response, header_str};
use super::ranged::{Segments, boundaries};
use super::request::{AttemptError, ByteRange, Source};
use super::retry::{self, Attempt, seconds};
use super::segment::content_range;
use super::spool::Spool;
use crate::digest::Digest;
use crate::reference::Reference;

/// A blob being streamed; the caller verifies digest and size.
///
/// When the connection breaks off, or stalls for longer than the stall timeout, the download
/// resumes where it stopped with `Range: bytes=N-` (if the server answers with the whole blob
/// instead, its first N bytes are skipped), after a backoff delay and up to the configured
/// number of retries: the reader sees one uninterrupted byte stream.
pub struct BlobStream {
    client: RegistryClient,
    reference: Reference,
    digest: Digest,
    source: Source,
    response: Option<reqwest::Response>,
    content_length: Option<u64>,
    /// Bytes handed out so far.
    received: u64,
    /// Bytes still to drop from the current response (a server that ignored `Range`).
    skip: u64,
    /// Resumptions so far.
    resumes: u32,
    finished: bool,
    /// A large blob fetched in parallel segments (they resume on their own).
    ranged: Option<Segments>,
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream")
            .field("url", &self.source.url)
            .field("content_length", &self.content_length)
            .field("received", &self.received)
            .field("resumes", &self.resumes)
            .field("ranged", &self.ranged.is_some())
            .finish()
    }
}

impl BlobStream {
    /// The `Content-Length` of the response, when the server sent one.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The URL the blob was requested from (before redirects).
    pub fn url(&self) -> &str {
        &self.source.url
    }

    /// How often the download was resumed so far.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// Whether the blob is fetched in parallel segments.
    pub fn is_ranged(&self) -> bool {
        self.ranged.is_some()
    }

    /// Next chunk of the body; `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, RegistryError>> {
        if let Some(ranged) = self.ranged.as_mut() {
            let next = ranged.next_chunk().await;
            if let Some(Ok(bytes)) = &next {
                self.received += bytes.len() as u64;
            }
            return next;
        }
        let stall = self.client.inner.config.stall_timeout;
        loop {
            if self.finished {
                return None;
            }
            let reason = match self.response.as_mut() {
                None => "no response".to_string(),
                Some(response) => match tokio::time::timeout(stall, response.chunk()).await {
                    Ok(Ok(Some(mut chunk))) => {
                        if self.skip > 0 {
                            let n = usize::try_from(self.skip)
                                .unwrap_or(usize::MAX)
                                .min(chunk.len());
                            let _ = chunk.split_to(n);
                            self.skip -= n as u64;
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        self.received += chunk.len() as u64;
                        return Some(Ok(chunk));
                    }
                    Ok(Ok(None)) => {
                        let complete = self.skip == 0
                            && self
                                .content_length
                                .is_none_or(|total| self.received >= total);
                        if complete {
                            self.finished = true;
                            self.response = None;
                            return None;
                        }
                        "the connection closed early".to_string()
                    }
                    Ok(Err(e)) if e.is_timeout() => {
                        format!("stalled: no data for {}", seconds(stall))
                    }
                    Ok(Err(e)) => error_chain(&e.without_url()),
                    Err(_) => format!("stalled: no data for {}", seconds(stall)),
                },
            };
            self.response = None;
            if let Err(e) = self.resume(reason).await {
                self.finished = true;
                return Some(Err(e));
            }
        }
    }

    /// Reconnects after an interruption (backoff, `Range` request), retrying while attempts
    /// are left.
    async fn resume(&mut self, reason: String) -> Result<(), RegistryError> {
        let policy = self.client.inner.config.retry;
        let mut spent = self.resumes;
        // The interruption is the first failure: the loop starts with its backoff.
        let mut interrupted = Some(reason);
        let this = &*self;
        let outcome = retry::retry(
            &policy,
            &mut spent,
            || {
                let failed = interrupted.take();
                async move {
                    match failed {
                        Some(reason) => Attempt::Failed(reason, None),
                        None => this.reopen().await,
                    }
                }
            },
            |reason, retrying| {
                format!(
                    "download of {} interrupted after {} of {} bytes ({reason}); resuming {retrying}",
                    this.digest,
                    this.received,
                    this.total()
                )
            },
        )
        .await;
        self.resumes = spent;
        match outcome {
            Ok(Ok((response, skip))) => {
                self.response = Some(response);
                self.skip = skip;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(reason) => Err(RegistryError::Body {
                url: self.source.url.clone(),
                reason: format!(
                    "{reason} (after {} of {} bytes; gave up after {} attempts)",
                    self.received,
                    self.total(),
                    self.resumes + 1
                ),
            }),
        }
    }

    /// The expected size as shown in messages (`?` when unknown).
    fn total(&self) -> String {
        self.content_length
            .map(|l| l.to_string())
            .unwrap_or_else(|| "?".to_string())
    }

    /// One `Range: bytes=N-` request to the endpoint that served the blob: the response and
    /// how many of its first bytes to drop, or why not.
    async fn reopen(&self) -> Attempt<Result<(reqwest::Response, u64), RegistryError>, String> {
        let offset = self.received;
        let response = match self
            .client
            .attempt(
                &self.source.endpoint,
                &self.reference,
                &self.source.url,
                None,
                Some(ByteRange::from(offset)),
            )
            .await
        {
            Ok(r) => r,
            Err(AttemptError::Transport { message, .. }) => return Attempt::Failed(message, None),
            Err(AttemptError::Registry(e)) => return Attempt::Done(Err(e)),
        };
        let status = response.status().as_u16();
        let skip = match status {
            206 => {
                let start = header_str(response.headers(), "content-range")
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(offset) {
                    return Attempt::Done(Err(RegistryError::Body {
                        url: self.source.url.clone(),
                        reason: format!(
                            "asked to resume at byte {offset}, the server sent Content-Range {:?}",
                            header_str(response.headers(), "content-range").unwrap_or("")
                        ),
                    }));
                }
                0
            }
            // The whole blob again: drop what was handed out already.
            200 => offset,
            s if retry::retriable_status(s) => return Attempt::Failed(format!("HTTP {s}"), None),
            _ => {
                let url = self.source.url.clone();
                let target = Target::Blob {
                    digest: &self.digest,
                };
                let err = error_from_response(response, &url, &self.reference, target).await;
                return Attempt::Done(Err(err));
            }
        };
        Attempt::Done(Ok((response, skip)))
    }
}

impl RegistryClient {
    /// Fetches a small blob (an image config) whole, verified against `digest` and `size`.
    /// Refuses blobs larger than `max_size` bytes.
    pub async fn fetch_blob_bytes(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        max_size: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        if size > max_size {
            return Err(RegistryError::TooLarge {
                what: "blob",
                url: format!("{}/blobs/{digest}", reference.repo_name()),
                limit: max_size,
            });
        }
        let mut stream = self.fetch_blob(reference, digest).await?;
        let url = stream.url().to_string();
        let too_long = |actual| RegistryError::SizeMismatch {
            what: "blob",
            url: url.clone(),
            expected: size,
            actual,
        };
        if let Some(len) = stream.content_length()
            && len > size
        {
            return Err(too_long(len));
        }
        let mut hasher = crate::digest::Hasher::new();
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
        while let Some(chunk) = stream.next_chunk().await {
            let chunk = chunk?;
            if hasher.len() + chunk.len() as u64 > size {
                return Err(too_long(hasher.len() + chunk.len() as u64));
            }
            hasher.update(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        if hasher.len() != size {
            return Err(too_long(hasher.len()));
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                url,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Starts streaming a blob (redirects followed; `Authorization` dropped when a redirect
    /// leaves the host). Interruptions are resumed inside the stream. The caller verifies
    /// digest and size.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        let (response, source) = self
            .get(
                reference,
                &format!("blobs/{digest}"),
                None,
                Target::Blob { digest },
                None,
            )
            .await?;
        Ok(self.single_stream(reference, digest, response, source, None))
    }

    /// A blob as one stream from `response` (`total`: its size, else `Content-Length`).
    fn single_stream(
        &self,
        reference: &Reference,
        digest: &Digest,
        response: reqwest::Response,
        source: Source,
        total: Option<u64>,
    ) -> BlobStream {
        BlobStream {
            client: self.clone(),
            reference: reference.clone(),
            digest: digest.clone(),
            content_length: total.or(response.content_length()),
            response: Some(response),
            source,
            received: 0,
            skip: 0,
            resumes: 0,
            finished: false,
            ranged: None,
        }
    }

    /// Starts streaming a blob of `size` bytes (from its descriptor): in parallel segments
    /// when it is large enough (see [`super::RangedFetch`]), else as
    /// [`RegistryClient::fetch_blob`] does (also while another blob is being fetched in
    /// segments). The first segment's request finds the blob; a server that ignores `Range`
    /// (answers 200) is read as that one stream, one that refuses it (416) is asked again
    /// without: no byte is downloaded twice either way.
    pub async fn fetch_blob_sized(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobStream, RegistryError> {
        let (connections, count) = self.inner.config.ranged.split(size);
        if connections <= 1 || count <= 1 {
            return self.fetch_blob(reference, digest).await;
        }
        // Held until the stream is dropped; without one, the blob streams.
        let Ok(slot) = self.inner.ranged_slots.clone().try_acquire_owned() else {
            return self.fetch_blob(reference, digest).await;
        };
        let spool = match Spool::create(self.inner.config.spool_dir.as_deref()) {
            Ok(spool) => spool,
            Err(e) => {
                tracing::warn!("no temporary file for a segmented download ({e}); one stream");
                return self.fetch_blob(reference, digest).await;
            }
        };
        let starts = boundaries(size, count);
        let first_end = starts.get(1).copied().unwrap_or(size);
        let first = ByteRange {
            start: 0,
            end: Some(first_end - 1),
        };
        let (response, source) = self
            .get(
                reference,
                &format!("blobs/{digest}"),
                None,
                Target::Blob { digest },
                Some(first),
            )
            .await?;
        match response.status().as_u16() {
            206 => {}
            416 => {
                tracing::debug!("{digest}: Range refused (HTTP 416); one stream");
                return self.fetch_blob(reference, digest).await;
            }
            _ => {
                tracing::debug!("{digest}: Range ignored; one stream");
                return Ok(self.single_stream(reference, digest, response, source, None));
            }
        }
        let (start, total) = content_range(response.headers()).unwrap_or((u64::MAX, None));
        let total = total.unwrap_or(size);
        if total != size {
            return Err(RegistryError::SizeMismatch {
                what: "blob",
                url: source.url,
                expected: size,
                actual: total,
            });
        }
        if start != 0 {
            return Err(RegistryError::Body {
                url: source.url,
                reason: format!(
                    "asked for bytes 0-{}, the server sent Content-Range {:?}",
                    first_end - 1,
                    header_str(response.headers(), "content-range").unwrap_or("")
                ),
            });
        }
        tracing::debug!(
            "{digest}: {total} bytes in {} segments, {connections} at once",
            starts.len()
        );
        let segments = Segments::start(
            self.clone(),
            reference.clone(),
            digest.clone(),
            source.clone(),
            response,
            starts,
            total,
            connections,
            spool,
            slot,
        );
        Ok(BlobStream {
            client: self.clone(),
            reference: reference.clone(),
            digest: digest.clone(),
            content_length: Some(total),
            response: None,
            source,
            received: 0,
            skip: 0,
            resumes: 0,
            finished: false,
            ranged: Some(segments),
        })
    }
}

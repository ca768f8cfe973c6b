//! Fetching manifests and indexes: size limit, schema 1 refused, digest verified.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;

use super::client::RegistryClient;
use super::error::{RegistryError, Target, error_chain, header_str};
use super::retry::{Attempt, retry, seconds};
use crate::digest::Digest;
use crate::image::MAX_MANIFEST_SIZE;
use crate::image::media_type::{MANIFEST_ACCEPT, base_media_type, is_schema1_type};
use crate::reference::Reference;

/// A manifest or index as fetched, with its verified digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The exact bytes (keep them: re-serialising changes the digest).
    pub bytes: Vec<u8>,
    /// The body's `mediaType`, else the `Content-Type` header (without parameters).
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

impl RegistryClient {
    /// GET `/v2/<repo>/manifests/<reference.manifest_ref()>` accepting OCI index and manifest,
    /// Docker list and schema 2. Verifies the bytes against `reference.digest` when pulling by
    /// digest, else against `Docker-Content-Digest` when the registry sends it. Docker schema 1
    /// is refused.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        self.get_manifest(reference, reference.digest.as_ref(), reference)
            .await
    }

    /// Fetches a child manifest of an index by digest (verified against `digest`).
    pub async fn fetch_manifest_by_digest(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<FetchedManifest, RegistryError> {
        let shown = reference.with_digest(digest.clone());
        self.get_manifest(reference, Some(digest), &shown).await
    }

    async fn get_manifest(
        &self,
        reference: &Reference,
        expected: Option<&Digest>,
        shown: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        // A body that broke off is fetched again; other failures are final.
        retry(
            &self.inner.config.retry,
            &mut 0,
            || async move {
                match self.get_manifest_once(reference, expected, shown).await {
                    Err(e @ RegistryError::Body { .. }) => Attempt::Failed(e, None),
                    other => Attempt::Done(other),
                }
            },
            |e, retrying| format!("{e}; retrying {retrying}"),
        )
        .await
        .unwrap_or_else(Err)
    }

    async fn get_manifest_once(
        &self,
        reference: &Reference,
        expected: Option<&Digest>,
        shown: &Reference,
    ) -> Result<FetchedManifest, RegistryError> {
        let manifest_ref = match expected {
            Some(d) => d.to_string(),
            None => reference.manifest_ref(),
        };
        let path = format!("manifests/{manifest_ref}");
        let (mut response, source) = self
            .get(
                reference,
                &path,
                Some(MANIFEST_ACCEPT),
                Target::Manifest { shown },
                None,
            )
            .await?;
        let url = source.url;
        let limit = MAX_MANIFEST_SIZE;
        let too_large = || RegistryError::TooLarge {
            what: "manifest",
            url: url.clone(),
            limit,
        };
        if response.content_length().is_some_and(|l| l > limit) {
            return Err(too_large());
        }
        let content_type = header_str(response.headers(), CONTENT_TYPE.as_str())
            .unwrap_or_default()
            .to_string();
        let announced = header_str(response.headers(), "docker-content-digest").map(str::to_string);
        let mut bytes = Vec::new();
        let stall = self.inner.config.stall_timeout;
        while let Some(chunk) = next_chunk(&mut response, &url, stall).await? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        if let Some(len) = response.content_length()
            && (bytes.len() as u64) < len
        {
            return Err(RegistryError::Body {
                url,
                reason: format!("the connection closed after {} of {len} bytes", bytes.len()),
            });
        }

        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            media_type: Option<String>,
            schema_version: Option<serde_json::Value>,
        }
        let probe: Option<Probe> = serde_json::from_slice(&bytes).ok();
        let body_type = probe
            .as_ref()
            .and_then(|p| p.media_type.clone())
            .filter(|m| !m.is_empty());
        let media_type = body_type.unwrap_or_else(|| base_media_type(&content_type).to_string());
        if is_schema1_type(&media_type)
            || probe
                .as_ref()
                .and_then(|p| p.schema_version.as_ref())
                .and_then(|v| v.as_u64())
                == Some(1)
        {
            return Err(RegistryError::Unsupported {
                reference: shown.to_string(),
                reason: "unsupported manifest format (Docker schema 1); push the image again with a current Docker or BuildKit"
                    .to_string(),
            });
        }

        let digest = Digest::of(&bytes);
        let expected = match expected {
            Some(d) => Some(d.clone()),
            // A header with another algorithm cannot be checked; the content is still hashed.
            None => announced.and_then(|h| Digest::parse(h.trim()).ok()),
        };
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                url,
                expected,
                actual: digest,
            });
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }
}

/// Next body chunk, failing when nothing arrives within `stall`.
async fn next_chunk(
    response: &mut reqwest::Response,
    url: &str,
    stall: Duration,
) -> Result<Option<Bytes>, RegistryError> {
    match tokio::time::timeout(stall, response.chunk()).await {
        Ok(Ok(chunk)) => Ok(chunk),
        Ok(Err(e)) => Err(RegistryError::Body {
            url: url.to_string(),
            reason: error_chain(&e.without_url()),
        }),
        Err(_) => Err(RegistryError::Body {
            url: url.to_string(),
            reason: format!("stalled: no data for {}", seconds(stall)),
        }),
    }
}

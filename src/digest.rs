//! Content digests (`sha256:<hex>`) and readers that verify them while data streams.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Errors from parsing or verifying digests.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The string is not `algorithm:hex`.
    #[error("invalid digest {0:?}: expected sha256:<64 hex chars>")]
    Invalid(String),
    /// Only sha256 content can be verified.
    #[error("unsupported digest algorithm {0:?} (only sha256 is supported)")]
    Unsupported(String),
    /// Content hashed to another digest.
    #[error("digest mismatch: expected {expected}, actual {actual}")]
    Mismatch {
        /// The digest that was asked for.
        expected: Digest,
        /// The digest of the bytes that arrived.
        actual: Digest,
    },
    /// Content had another length than declared.
    #[error("size mismatch: expected {expected} bytes, actual {actual}")]
    SizeMismatch {
        /// The declared size.
        expected: u64,
        /// The number of bytes that arrived (a lower bound when too long).
        actual: u64,
    },
}

/// A `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`; other algorithms are refused since they cannot be verified.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Invalid(s.to_string()))?;
        if algo != "sha256" {
            if !algo.is_empty()
                && algo
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b))
            {
                return Err(DigestError::Unsupported(algo.to_string()));
            }
            return Err(DigestError::Invalid(s.to_string()));
        }
        Self::from_hex(hex).ok_or_else(|| DigestError::Invalid(s.to_string()))
    }

    /// Builds a digest from 64 lowercase hex chars.
    pub fn from_hex(hex: &str) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then(
            || Self {
                hex: hex.to_string(),
            },
        )
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_raw(&Sha256::digest(bytes))
    }

    fn from_raw(raw: &[u8]) -> Self {
        Self {
            hex: hex::encode(raw),
        }
    }

    /// The 64 hex chars.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex chars, as Docker shows layer ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// The raw 32 bytes.
    pub fn bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // The constructor guarantees 64 hex chars.
        hex::decode_to_slice(&self.hex, &mut out).unwrap_or_default();
        out
    }

    /// Fails unless `self` is `expected`.
    pub fn verify(&self, expected: &Digest) -> Result<(), DigestError> {
        if self == expected {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: expected.clone(),
                actual: self.clone(),
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest::from_raw(&self.sha.finalize())
    }
}

/// A reader that hashes what passes through and refuses to read past `limit` bytes.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    limit: Option<u64>,
    /// Set once more than `limit` bytes arrived: every later read fails the same way.
    overflowed: bool,
}

impl<R> fmt::Debug for HashingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingReader")
            .field("hasher", &self.hasher)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`; with `limit`, reading more than that many bytes is an error
    /// (a blob longer than its manifest size).
    pub fn new(inner: R, limit: Option<u64>) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
            limit,
            overflowed: false,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.hasher.len()
    }

    /// Reads the rest of the stream (hashing it) and returns the digest and length of everything.
    pub fn drain(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.hasher.len();
        Ok((self.hasher.finish(), len))
    }

    /// Verifies the whole stream against a digest and an optional size, draining what is left.
    pub fn verify(self, expected: &Digest, expected_size: Option<u64>) -> Result<(), VerifyError> {
        let (actual, len) = self.drain().map_err(VerifyError::Io)?;
        if let Some(size) = expected_size
            && size != len
        {
            return Err(VerifyError::Digest(DigestError::SizeMismatch {
                expected: size,
                actual: len,
            }));
        }
        actual.verify(expected).map_err(VerifyError::Digest)
    }
}

/// Error of [`HashingReader::verify`]: the stream failed, or its content did not match.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading failed (including reading past the size limit).
    #[error(transparent)]
    Io(io::Error),
    /// The content did not match.
    #[error(transparent)]
    Digest(DigestError),
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let too_long = |limit| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob is longer than its declared size of {limit} bytes"),
            )
        };
        if let (true, Some(limit)) = (self.overflowed, self.limit) {
            return Err(too_long(limit));
        }
        let n = self.inner.read(buf)?;
        if let Some(limit) = self.limit
            && self.hasher.len() + n as u64 > limit
        {
            self.overflowed = true;
            return Err(too_long(limit));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(Digest::of(b""), d);
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(matches!(
            Digest::parse("sha256:abc"),
            Err(DigestError::Invalid(_))
        ));
        assert!(matches!(
            Digest::parse(&EMPTY.to_uppercase()),
            Err(DigestError::Unsupported(_))
        ));
        assert!(matches!(
            Digest::parse("sha512:00"),
            Err(DigestError::Unsupported(_))
        ));
        assert!(matches!(
            Digest::parse("nocolon"),
            Err(DigestError::Invalid(_))
        ));
        let upper = EMPTY.replace('e', "E");
        assert!(Digest::parse(&upper).is_err());
    }

    #[test]
    fn hashing_reader_verifies_and_limits() {
        let data = b"hello world".to_vec();
        let d = Digest::of(&data);
        HashingReader::new(&data[..], Some(11))
            .verify(&d, Some(11))
            .unwrap();
        let err = HashingReader::new(&data[..], None)
            .verify(&d, Some(12))
            .unwrap_err();
        assert!(matches!(
            err,
            VerifyError::Digest(DigestError::SizeMismatch {
                expected: 12,
                actual: 11
            })
        ));
        let mut over = HashingReader::new(&data[..], Some(5));
        let mut buf = [0u8; 4];
        assert_eq!(over.read(&mut buf).unwrap(), 4);
        assert!(over.read(&mut buf).is_err());
        // The overflow is sticky: draining after it fails the same way instead of going on.
        let err = over.verify(&d, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("longer than its declared size of 5"),
            "{err}"
        );
        let err = HashingReader::new(&b"hello"[..], None)
            .verify(&d, None)
            .unwrap_err();
        assert!(matches!(
            err,
            VerifyError::Digest(DigestError::Mismatch { .. })
        ));
    }
}

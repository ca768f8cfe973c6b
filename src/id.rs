//! Typed digests: what a `sha256:` digest names. A layer's blob digest, its diff_id, its chain
//! ID and an image's ID are all sha256 digests, but of different things, and mixing them up
//! (looking up a layer directory by diff_id) is a bug the compiler should catch.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError, Hasher};

macro_rules! digest_kind {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Digest);

        impl $name {
            /// Names `digest` as this kind.
            pub fn new(digest: Digest) -> Self {
                Self(digest)
            }

            /// The digest itself.
            pub fn digest(&self) -> &Digest {
                &self.0
            }

            /// The digest itself, by value.
            pub fn into_digest(self) -> Digest {
                self.0
            }

            /// Parses `sha256:<hex>`.
            pub fn parse(s: &str) -> Result<Self, DigestError> {
                Digest::parse(s).map(Self)
            }

            /// From 64 lowercase hex chars.
            pub fn from_hex(hex: &str) -> Option<Self> {
                Digest::from_hex(hex).map(Self)
            }

            /// The 64 hex chars.
            pub fn hex(&self) -> &str {
                self.0.hex()
            }

            /// The first 12 hex chars.
            pub fn short(&self) -> &str {
                self.0.short()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = DigestError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

digest_kind!(
    /// The digest of a layer blob as stored in a registry (usually compressed bytes): what a
    /// manifest's layer descriptor names.
    BlobDigest
);
digest_kind!(
    /// A layer's diff_id: the digest of its uncompressed tar stream, as an image config lists it.
    DiffId
);
digest_kind!(
    /// A layer's chain ID: its diff_id combined with those of every layer below it. It names
    /// the layer's directory in the store, so layers are shared by identical stacks.
    ChainId
);
digest_kind!(
    /// An image's ID: the digest of its config.
    ImageId
);

impl ChainId {
    /// The chain IDs of a stack of diff_ids, bottom first: `chain(0) = diff(0)`,
    /// `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
    pub fn of_stack(diff_ids: &[DiffId]) -> Vec<ChainId> {
        let mut out: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
        for diff in diff_ids {
            let next = match out.last() {
                None => diff.digest().clone(),
                Some(parent) => {
                    let mut h = Hasher::new();
                    h.update(format!("{parent} {diff}").as_bytes());
                    h.finish()
                }
            };
            out.push(ChainId(next));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let d = |c: char| DiffId::from_hex(&c.to_string().repeat(64)).unwrap();
        let chains = ChainId::of_stack(&[d('a'), d('b'), d('c')]);
        assert_eq!(chains[0].digest(), d('a').digest());
        let second =
            Digest::of(format!("sha256:{} sha256:{}", "a".repeat(64), "b".repeat(64)).as_bytes());
        assert_eq!(chains[1].digest(), &second);
        let third = Digest::of(format!("{second} sha256:{}", "c".repeat(64)).as_bytes());
        assert_eq!(chains[2].digest(), &third);
        assert!(ChainId::of_stack(&[]).is_empty());
    }

    #[test]
    fn kinds_print_parse_and_serialize_as_plain_digests() {
        let text = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let id: ImageId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(format!("{id:?}"), text);
        assert_eq!(id.short(), "0123456789ab");
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        let back: ImageId = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(back, id);
        assert!("md5:00".parse::<BlobDigest>().is_err());
    }
}

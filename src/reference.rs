//! Image references, parsed and normalised like Docker's `distribution/reference`.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component [ "/" path-component ]*
//! domain     := host [ ":" port ]          host: domain-name | "[" ipv6 "]"
//! path-comp. := [a-z0-9]+ ( ( [._] | "__" | "-"* ) [a-z0-9]+ )*
//! tag        := [\w][\w.-]{0,127}
//! ```
//!
//! The first `/`-separated component is a registry when it contains `.` or `:`, is
//! `localhost`, or has upper-case letters; otherwise the registry is `docker.io`. On
//! `docker.io` a single-component repository gets the `library/` prefix.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest allowed `registry/repository`, as in Docker.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Longest allowed tag.
pub const TAG_LENGTH_MAX: usize = 128;

const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";

/// Why a string is not a valid image reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The input was empty.
    #[error("invalid reference: empty string")]
    Empty,
    /// The reference does not follow the grammar.
    #[error("invalid reference {input:?}: {reason}")]
    Invalid {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository path has upper-case letters.
    #[error("invalid reference {input:?}: repository name {repository:?} must be lowercase")]
    Uppercase {
        /// The string as given.
        input: String,
        /// The offending repository path.
        repository: String,
    },
    /// `registry/repository` is longer than [`NAME_TOTAL_LENGTH_MAX`].
    #[error(
        "invalid reference {input:?}: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
    )]
    NameTooLong {
        /// The string as given.
        input: String,
    },
    /// The tag does not match `[\w][\w.-]{0,127}`.
    #[error(
        "invalid reference {input:?}: invalid tag {tag:?} (a tag is 1-128 characters of letters, digits, '_', '.', '-', not starting with '.' or '-')"
    )]
    InvalidTag {
        /// The string as given.
        input: String,
        /// The offending tag.
        tag: String,
    },
    /// The part after `@` is not a usable digest.
    #[error("invalid reference {input:?}: {source}")]
    InvalidDigest {
        /// The string as given.
        input: String,
        /// Why the digest was refused.
        #[source]
        source: DigestError,
    },
    /// A bare 64-hex string is an image ID, not a reference.
    #[error("invalid repository name {input:?}: cannot specify 64-byte hexadecimal strings")]
    HexIdentifier {
        /// The string as given.
        input: String,
    },
}

/// A normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port: `docker.io`, `127.0.0.1:5000`, `[::1]:5000`.
    pub registry: String,
    /// Repository path on the registry: `library/alpine`.
    pub repository: String,
    /// The tag, if one was given (see [`Reference::tag_or_default`]).
    pub tag: Option<String>,
    /// The digest, if one was given; it then decides what is pulled.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull` does:
    /// `alpine` becomes `docker.io/library/alpine` (tag `None`).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let invalid = |reason: &str| ReferenceError::Invalid {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexIdentifier {
                input: s.to_string(),
            });
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains whitespace or control characters"));
        }

        // name [":" tag] ["@" digest]; a name never contains '@'.
        let (name_tag, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|source| ReferenceError::InvalidDigest {
                    input: s.to_string(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // The tag follows the last ':' when that comes after the last '/' (else it is a port).
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                (&name_tag[..colon], Some(&name_tag[colon + 1..]))
            }
            _ => (name_tag, None),
        };
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::InvalidTag {
                input: s.to_string(),
                tag: tag.to_string(),
            });
        }

        let (registry, repository) = split_registry(name);
        if registry != DEFAULT_REGISTRY {
            validate_registry(registry).map_err(|reason| invalid(&reason))?;
        }
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: s.to_string(),
                repository,
            });
        }
        validate_repository(&repository).map_err(|reason| invalid(&reason))?;
        if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong {
                input: s.to_string(),
            });
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The tag, or `latest` when none was given.
    pub fn tag_or_default(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// What to ask the registry for: the digest if present, else the tag (or `latest`).
    pub fn manifest_ref(&self) -> String {
        match &self.digest {
            Some(d) => d.to_string(),
            None => self.tag_or_default().to_string(),
        }
    }

    /// `registry/repository`, e.g. `docker.io/library/alpine`.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest` (tag dropped), e.g. for a child manifest of an index.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The short form Docker shows: `alpine:latest`, `user/app:1`, `quay.io/x/y@sha256:..`.
    pub fn familiar(&self) -> String {
        let mut name = if self.registry != DEFAULT_REGISTRY {
            self.repo_name()
        } else {
            match self.repository.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        };
        self.append_suffix(&mut name);
        name
    }

    fn append_suffix(&self, out: &mut String) {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => {
                out.push(':');
                out.push_str(tag);
            }
            (None, None) => {
                out.push(':');
                out.push_str(DEFAULT_TAG);
            }
            (None, Some(_)) => {}
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(&d.to_string());
        }
    }
}

/// The full normalised form: `docker.io/library/alpine:latest`, `...@sha256:..`,
/// `...:tag@sha256:..`. A reference without tag or digest shows `:latest`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.repo_name();
        self.append_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits `name` into registry and repository like Docker's `splitDockerDomain`.
fn split_registry(name: &str) -> (&str, String) {
    let (registry, rest) = match name.split_once('/') {
        None => (DEFAULT_REGISTRY, name),
        Some((first, rest)) => {
            if first == "localhost"
                || first.contains(['.', ':'])
                || first.chars().any(|c| c.is_ascii_uppercase())
            {
                if first == LEGACY_DEFAULT_REGISTRY {
                    (DEFAULT_REGISTRY, rest)
                } else {
                    (first, rest)
                }
            } else {
                (DEFAULT_REGISTRY, name)
            }
        }
    };
    let repository = if registry == DEFAULT_REGISTRY && !rest.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{rest}")
    } else {
        rest.to_string()
    };
    (registry, repository)
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= TAG_LENGTH_MAX
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `host[:port]`, host being a domain name, an IPv4 address or a bracketed IPv6 address.
fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("registry {registry:?}: unterminated IPv6 address"))?;
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(format!(
                "registry {registry:?}: invalid IPv6 address {addr:?}"
            ));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| {
                format!("registry {registry:?}: unexpected {p:?} after IPv6 address")
            })?),
        };
        (None, port)
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let component_ok = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        };
        if !host.split('.').all(component_ok) {
            return Err(format!("invalid registry host {host:?}"));
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("invalid port {port:?} in registry {registry:?}"));
    }
    Ok(())
}

/// Lower-case path components joined by `/`.
fn validate_repository(repository: &str) -> Result<(), String> {
    for component in repository.split('/') {
        if !valid_path_component(component) {
            let reason = if component.is_empty() {
                format!("empty path component in repository {repository:?}")
            } else {
                format!(
                    "invalid repository path component {component:?} (use lowercase letters and digits, separated by '.', '_', '__' or dashes)"
                )
            };
            return Err(reason);
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < b.len() {
        if alnum(b[i]) {
            while i < b.len() && alnum(b[i]) {
                i += 1;
            }
            expect_alnum = false;
            continue;
        }
        if expect_alnum {
            return false;
        }
        // A separator: '.', '_', '__' or one or more '-'.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > start);
        expect_alnum = true;
    }
    !b.is_empty() && !expect_alnum
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn official_images_are_normalised() {
        let r = parse("alpine");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest, None);
        assert_eq!(r.tag_or_default(), "latest");
        assert_eq!(r.manifest_ref(), "latest");
        assert_eq!(r.repo_name(), "docker.io/library/alpine");
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(r.familiar(), "alpine:latest");

        for s in [
            "docker.io/alpine",
            "index.docker.io/alpine",
            "docker.io/library/alpine",
            "library/alpine",
        ] {
            assert_eq!(parse(s).repo_name(), "docker.io/library/alpine", "{s}");
        }
        assert_eq!(parse("alpine:3.19").tag.as_deref(), Some("3.19"));
    }

    #[test]
    fn user_repositories_keep_their_path() {
        let r = parse("user/app:v1");
        assert_eq!(r.repo_name(), "docker.io/user/app");
        assert_eq!(r.familiar(), "user/app:v1");
        let r = parse("docker.io/library/a/b");
        assert_eq!(r.repository, "library/a/b");
        assert_eq!(r.familiar(), "library/a/b:latest");
    }

    #[test]
    fn registries_are_detected() {
        let r = parse("quay.io/coreos/etcd:v3.5");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("quay.io", "coreos/etcd")
        );
        let r = parse("localhost/foo");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost", "foo")
        );
        let r = parse("myhost:5000/a/b:tag");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("myhost:5000", "a/b")
        );
        assert_eq!(r.tag.as_deref(), Some("tag"));
        let r = parse("127.0.0.1:5000/x");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "x", None)
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/x:latest");
        // No library/ prefix away from Docker Hub.
        assert_eq!(parse("localhost:5000/x").repository, "x");
        // "localhost:5000" alone is the image "localhost" with tag "5000", as in Docker.
        let r = parse("localhost:5000");
        assert_eq!(
            (r.repo_name().as_str(), r.tag.as_deref()),
            ("docker.io/library/localhost", Some("5000"))
        );
    }

    #[test]
    fn ipv6_registries() {
        let r = parse("[::1]:5000/x:t");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("[::1]:5000", "x", Some("t"))
        );
        assert_eq!(parse("[fe80::1]/a/b").registry, "[fe80::1]");
        assert!(Reference::parse("[::1/x").is_err());
        assert!(Reference::parse("[zz]:5000/x").is_err());
        assert!(Reference::parse("::1/x").is_err());
    }

    #[test]
    fn digests() {
        let r = parse(&format!("alpine@sha256:{HEX}"));
        assert_eq!(r.tag, None);
        assert_eq!(
            r.digest.as_ref().map(|d| d.hex().to_string()).as_deref(),
            Some(HEX)
        );
        assert_eq!(r.manifest_ref(), format!("sha256:{HEX}"));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/alpine@sha256:{HEX}")
        );

        let r = parse(&format!("localhost:5000/a/b:1.0@sha256:{HEX}"));
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(
            r.manifest_ref(),
            format!("sha256:{HEX}"),
            "the digest wins over the tag"
        );
        assert_eq!(
            r.to_string(),
            format!("localhost:5000/a/b:1.0@sha256:{HEX}")
        );
        assert_eq!(parse(&r.to_string()), r);

        assert!(matches!(
            Reference::parse("alpine@sha256:abc"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(matches!(
            Reference::parse(&format!("alpine@md5:{HEX}")),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(Reference::parse(&format!("alpine@sha256:{HEX}@sha256:{HEX}")).is_err());
        let r = parse("alpine").with_digest(Digest::of(b""));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/alpine@sha256:{HEX}")
        );
    }

    #[test]
    fn uppercase_repositories_are_refused() {
        let err = Reference::parse("Alpine").unwrap_err();
        assert!(matches!(err, ReferenceError::Uppercase { .. }));
        assert!(err.to_string().contains("must be lowercase"), "{err}");
        assert!(matches!(
            Reference::parse("docker.io/User/app"),
            Err(ReferenceError::Uppercase { .. })
        ));
        // An upper-case first component is a registry host, as in Docker.
        let r = parse("MyHost/app");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("MyHost", "app")
        );
        // Tags may be upper case.
        assert_eq!(parse("alpine:V1").tag.as_deref(), Some("V1"));
    }

    #[test]
    fn path_components() {
        for ok in [
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a1.b2_c3__d4-e5",
            "0",
        ] {
            assert!(valid_path_component(ok), "{ok}");
        }
        for bad in [
            "", "-a", "a-", ".a", "a.", "a..b", "a___b", "a._b", "_a", "a_", "a$b", "a.-b",
        ] {
            assert!(!valid_path_component(bad), "{bad}");
        }
        assert!(Reference::parse("a//b").is_err());
        assert!(Reference::parse("a/b/").is_err());
        assert!(Reference::parse("/a").is_err());
        assert!(Reference::parse("example.com/").is_err());
        assert!(Reference::parse("a/-b").is_err());
    }

    #[test]
    fn tags() {
        assert!(valid_tag("latest"));
        assert!(valid_tag("_x"));
        assert!(valid_tag("1.0-rc.1_A"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag(""));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag("a+b"));
        assert!(matches!(
            Reference::parse("alpine:"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            Reference::parse("alpine:-x"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(Reference::parse("alpine:a:b").is_err());
    }

    #[test]
    fn malformed_references() {
        assert!(matches!(Reference::parse(""), Err(ReferenceError::Empty)));
        assert!(matches!(
            Reference::parse(HEX),
            Err(ReferenceError::HexIdentifier { .. })
        ));
        assert!(Reference::parse(":tag").is_err());
        assert!(Reference::parse("@sha256:00").is_err());
        assert!(Reference::parse("foo bar").is_err());
        assert!(Reference::parse("host:port/x").is_err());
        assert!(Reference::parse("host:/x").is_err());
        assert!(Reference::parse("-host.com/x").is_err());
        assert!(Reference::parse("ho_st.com/x").is_err());
    }

    #[test]
    fn name_length_limit() {
        let long = format!("example.com/{}", "a".repeat(255 - "example.com/".len()));
        assert_eq!(parse(&long).repo_name().len(), 255);
        let too_long = format!("{long}b");
        assert!(matches!(
            Reference::parse(&too_long),
            Err(ReferenceError::NameTooLong { .. })
        ));
        // The limit applies to the normalised name.
        let hub = "a".repeat(255 - "docker.io/library/".len());
        assert!(Reference::parse(&hub).is_ok());
        assert!(matches!(
            Reference::parse(&format!("{hub}a")),
            Err(ReferenceError::NameTooLong { .. })
        ));
    }

    #[test]
    fn from_str_matches_parse() {
        let r: Reference = "ghcr.io/o/r:t".parse().unwrap();
        assert_eq!(r, parse("ghcr.io/o/r:t"));
    }
}

//! Platforms (`linux/arm64/v8`): parsing, the host's, and matching, like containerd's
//! `platforms` package: names are normalised (`aarch64` -> `arm64`, `x86_64` -> `amd64`),
//! `arm64` defaults to variant `v8` and `arm` to `v7`, and older variants are acceptable
//! fallbacks (`arm/v7` runs `arm/v6`, `amd64/v3` runs `amd64`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An OS / CPU combination, as in OCI index entries and image configs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    /// Operating system: `linux`, `windows`, ...
    pub os: String,
    /// CPU architecture in Go's naming: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, ...
    pub architecture: String,
    /// CPU variant: `v8`, `v7`, `v3`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows images).
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required OS features (Windows images).
    #[serde(
        default,
        rename = "os.features",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

/// Errors from parsing platforms and selecting manifests.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The string is not `os/arch[/variant]`.
    #[error("invalid platform {input:?}: {reason}")]
    Invalid {
        /// The string as given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// No index entry runs on the wanted platform.
    #[error("no matching manifest for {want} in the manifest list entries (available: {})", fmt_available(.available))]
    NoMatch {
        /// The wanted platform, normalised.
        want: String,
        /// The platforms the index offers, normalised.
        available: Vec<String>,
    },
}

fn fmt_available(available: &[String]) -> String {
    if available.is_empty() {
        "none".to_string()
    } else {
        available.join(", ")
    }
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

/// Variants from newest to oldest; a CPU runs its own variant and every later one in the list.
const ARM_VARIANTS: &[&str] = &["v8", "v7", "v6", "v5"];
const AMD64_VARIANTS: &[&str] = &["v4", "v3", "v2", ""];
const ARM64_VARIANTS: &[&str] = &["v9", "v8"];

impl Platform {
    /// A platform from its parts, normalised.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
            os_features: None,
        }
        .normalized()
    }

    /// Parses `os/arch[/variant]` (normalised). A single component is an OS when it is a known
    /// one (`linux` -> `linux/<host arch>`), else an architecture (`arm64` -> `<host os>/arm64/v8`).
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let invalid = |reason: &str| PlatformError::Invalid {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 3 {
            return Err(invalid(
                "expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8",
            ));
        }
        for part in &parts {
            if part.is_empty() {
                return Err(invalid(
                    "empty component; expected os/arch[/variant], e.g. linux/amd64",
                ));
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            {
                return Err(invalid(&format!(
                    "{part:?} has characters other than letters, digits, '_', '.', '-'"
                )));
            }
        }
        Ok(match parts[..] {
            [one] => {
                let host = Platform::host();
                let lower = one.to_ascii_lowercase();
                if KNOWN_OS.contains(&lower.as_str()) || lower == "macos" {
                    Platform::new(&lower, &host.architecture, host.variant.as_deref())
                } else {
                    Platform::new(&host.os, one, None)
                }
            }
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(invalid("expected os/arch[/variant]")),
        })
    }

    /// The platform this binary runs on.
    pub fn host() -> Self {
        let little = cfg!(target_endian = "little");
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if little => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "mips64" if little => ("mips64le", None),
            "mips" if little => ("mipsle", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform::new(std::env::consts::OS, arch, variant)
    }

    /// The canonical form: lower case, Go architecture names, default variants filled in
    /// (`arm64` -> `v8`, `arm` -> `v7`), meaningless ones dropped (`amd64/v1`, `386`).
    pub fn normalized(&self) -> Platform {
        let mut os = self.os.to_ascii_lowercase();
        if os == "macos" {
            os = "darwin".to_string();
        }
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self
            .variant
            .as_deref()
            .map(str::to_ascii_lowercase)
            .filter(|v| !v.is_empty());
        let (arch, variant) = match arch.as_str() {
            "i386" | "i686" | "x86" | "386" => ("386".to_string(), None),
            "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant.filter(|v| v != "v1")),
            "aarch64" | "arm64" => {
                let v = match variant.as_deref() {
                    None | Some("8" | "v8" | "v8.0") => "v8".to_string(),
                    Some("9" | "9.0" | "v9.0") => "v9".to_string(),
                    Some(other) => other.to_string(),
                };
                ("arm64".to_string(), Some(v))
            }
            "armhf" => ("arm".to_string(), Some("v7".to_string())),
            "armel" => ("arm".to_string(), Some("v6".to_string())),
            "arm" => {
                let v = match variant.as_deref() {
                    None | Some("7") => "v7".to_string(),
                    Some(n @ ("5" | "6" | "8")) => format!("v{n}"),
                    Some(other) => other.to_string(),
                };
                ("arm".to_string(), Some(v))
            }
            "ppc64el" => ("ppc64le".to_string(), variant),
            _ => (arch, variant),
        };
        Platform {
            os,
            architecture: arch,
            variant,
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
        }
    }

    /// True when an image for `other` runs on `self` (after normalising both).
    pub fn matches(&self, other: &Platform) -> bool {
        compat_rank(&self.normalized(), &other.normalized()).is_some()
    }

    /// True for the `unknown/unknown` placeholder of attestation manifests.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" && self.architecture == "unknown"
    }
}

/// How well an image for `have` suits `want` (both normalised): 0 is exact, larger is an older
/// compatible variant, `None` does not run.
pub(super) fn compat_rank(want: &Platform, have: &Platform) -> Option<usize> {
    if want.os != have.os || want.architecture != have.architecture {
        return None;
    }
    let w = want.variant.as_deref().unwrap_or("");
    let h = have.variant.as_deref().unwrap_or("");
    if w == h {
        return Some(0);
    }
    let order = match want.architecture.as_str() {
        "arm" => ARM_VARIANTS,
        "amd64" => AMD64_VARIANTS,
        "arm64" => ARM64_VARIANTS,
        _ => return None,
    };
    let wi = order.iter().position(|v| *v == w)?;
    let hi = order.iter().position(|v| *v == h)?;
    hi.checked_sub(wi).filter(|&d| d > 0)
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/arm64").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64/v8");
        assert_eq!(p("Linux/X86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/amd64/v1").to_string(), "linux/amd64");
        assert_eq!(p("linux/amd64/v3").to_string(), "linux/amd64/v3");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm/6").to_string(), "linux/arm/v6");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/i386").to_string(), "linux/386");
        assert_eq!(p("linux/ppc64le").to_string(), "linux/ppc64le");
        assert_eq!(p("linux").architecture, Platform::host().architecture);
        assert_eq!(
            p("arm64").to_string(),
            format!("{}/arm64/v8", std::env::consts::OS)
        );
        assert_eq!(
            "linux/s390x".parse::<Platform>().unwrap().architecture,
            "s390x"
        );
    }

    #[test]
    fn refuses_bad_platforms() {
        for bad in [
            "",
            "/",
            "linux/",
            "linux//v8",
            "a/b/c/d",
            "linux/am d64",
            "linux/arm64/v8/",
        ] {
            let err = Platform::parse(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid platform"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn host_is_normalised() {
        let host = Platform::host();
        assert_eq!(host, host.normalized());
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            assert_eq!(host.to_string(), "linux/amd64");
        }
    }

    #[test]
    fn serde_uses_spec_names() {
        let json = r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.5329","os.features":["win32k"]}"#;
        let plat: Platform = serde_json::from_str(json).unwrap();
        assert_eq!(plat.os_version.as_deref(), Some("10.0.17763.5329"));
        assert_eq!(
            plat.os_features.as_deref(),
            Some(&["win32k".to_string()][..])
        );
        let back = serde_json::to_string(&plat).unwrap();
        assert!(back.contains(r#""os.version":"10.0.17763.5329""#), "{back}");
        assert!(!back.contains("variant"), "{back}");
    }

    #[test]
    fn matching() {
        assert!(p("linux/arm64").matches(&Platform::new("linux", "arm64", None)));
        assert!(p("linux/arm64").matches(&Platform::new("linux", "aarch64", Some("8"))));
        assert!(p("linux/arm/v7").matches(&p("linux/arm/v6")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(p("linux/amd64/v3").matches(&p("linux/amd64")));
        assert!(!p("linux/amd64").matches(&p("linux/amd64/v2")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
        assert!(!p("linux/riscv64").matches(&Platform::new("linux", "riscv64", Some("rva22"))));
    }
}

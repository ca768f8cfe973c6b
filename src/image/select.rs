//! Picking the manifest for a platform from an index.

use super::descriptor::Descriptor;
use super::platform::{Platform, PlatformError, compat_rank};

/// Picks the index entry that best runs on `want`: the exact variant first, then older
/// compatible variants (`arm/v7` accepts `arm/v6`), then entries without a platform (callers
/// should check the image config's os/architecture). Among equals the first entry wins.
/// `unknown/unknown` entries (attestation manifests) are never picked.
pub fn select<'a>(
    manifests: &'a [Descriptor],
    want: &Platform,
) -> Result<&'a Descriptor, PlatformError> {
    const NO_PLATFORM_RANK: usize = usize::MAX;
    let want = want.normalized();
    let mut best: Option<(usize, &Descriptor)> = None;
    for desc in manifests {
        let rank = match &desc.platform {
            Some(p) if p.is_unknown() => continue,
            Some(p) => match compat_rank(&want, &p.normalized()) {
                Some(r) => r,
                None => continue,
            },
            None => NO_PLATFORM_RANK,
        };
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, desc));
        }
    }
    if let Some((_, desc)) = best {
        return Ok(desc);
    }
    let mut available: Vec<String> = Vec::new();
    for p in manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| !p.is_unknown())
    {
        let s = p.normalized().to_string();
        if !available.contains(&s) {
            available.push(s);
        }
    }
    Err(PlatformError::NoMatch {
        want: want.to_string(),
        available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::image::media_type::OCI_MANIFEST;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn entry(n: u8, platform: Option<(&str, &str, Option<&str>)>) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: Digest::of(&[n]),
            size: 100,
            platform: platform.map(|(os, arch, variant)| Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
                os_version: None,
                os_features: None,
            }),
            urls: None,
            annotations: None,
        }
    }

    fn typical_index() -> Vec<Descriptor> {
        vec![
            entry(1, Some(("linux", "amd64", None))),
            entry(2, Some(("unknown", "unknown", None))),
            entry(3, Some(("linux", "arm", Some("v6")))),
            entry(4, Some(("linux", "arm", Some("v7")))),
            entry(5, Some(("linux", "arm64", Some("v8")))),
            entry(6, Some(("linux", "386", None))),
            entry(7, Some(("unknown", "unknown", None))),
        ]
    }

    #[test]
    fn selects_best_match() {
        let idx = typical_index();
        assert_eq!(
            select(&idx, &p("linux/amd64")).unwrap().digest,
            idx[0].digest
        );
        assert_eq!(
            select(&idx, &p("linux/arm64")).unwrap().digest,
            idx[4].digest
        );
        assert_eq!(
            select(&idx, &p("linux/aarch64/v8")).unwrap().digest,
            idx[4].digest
        );
        assert_eq!(
            select(&idx, &p("linux/arm/v7")).unwrap().digest,
            idx[3].digest,
            "exact variant before v6"
        );
        assert_eq!(
            select(&idx, &p("linux/arm/v6")).unwrap().digest,
            idx[2].digest
        );
        assert_eq!(
            select(&idx, &p("linux/amd64/v3")).unwrap().digest,
            idx[0].digest
        );

        // An arm64 entry without a variant suits linux/arm64/v8.
        let idx2 = vec![
            entry(1, Some(("linux", "amd64", None))),
            entry(2, Some(("linux", "arm64", None))),
        ];
        assert_eq!(
            select(&idx2, &p("linux/arm64/v8")).unwrap().digest,
            idx2[1].digest
        );
        // arm/v7 falls back to v5 when that is all there is.
        let idx3 = vec![entry(1, Some(("linux", "arm", Some("v5"))))];
        assert_eq!(
            select(&idx3, &p("linux/arm")).unwrap().digest,
            idx3[0].digest
        );
    }

    #[test]
    fn platformless_entries_rank_last() {
        let idx = vec![entry(1, None), entry(2, Some(("linux", "amd64", None)))];
        assert_eq!(
            select(&idx, &p("linux/amd64")).unwrap().digest,
            idx[1].digest
        );
        assert_eq!(
            select(&idx, &p("linux/arm64")).unwrap().digest,
            idx[0].digest
        );
    }

    #[test]
    fn no_match_lists_available() {
        let err = select(&typical_index(), &p("linux/mips64")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no matching manifest for linux/mips64 in the manifest list entries \
             (available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/386)"
        );
        let only_attestations = vec![entry(1, Some(("unknown", "unknown", None)))];
        let err = select(&only_attestations, &p("linux/amd64")).unwrap_err();
        assert!(err.to_string().ends_with("(available: none)"), "{err}");
        let err = select(&[], &p("windows/amd64")).unwrap_err();
        assert!(matches!(err, PlatformError::NoMatch { .. }));
    }
}

//! The rows of `images` (one per tag, and one `<none>` row per untagged, "dangling", image)
//! and its `--filter`s.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::Value;

use strata::store::{ImageRecord, Store, StoreError};

use super::units;

/// Docker's placeholder for a missing repository, tag or digest.
pub const NONE: &str = "<none>";

/// One row of `images` (`images --json` prints these).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRow {
    /// The repository, `<none>` for a dangling image.
    pub repository: String,
    /// The tag, `<none>` for a dangling image.
    pub tag: String,
    /// The digest the image was pulled by in this repository (empty when unknown).
    pub digest: String,
    /// The image id (`sha256:...`).
    pub id: String,
    /// The config's `created` time (null when it has none).
    pub created: Value,
    /// Regular-file bytes of the image's layers.
    pub size: u64,
    /// `created` as Docker shows it: `2 years ago`.
    pub created_since: String,
    /// Whether no tag names the image (pulled by digest only, or its tag moved on).
    pub dangling: bool,
    /// `os/arch[/variant]`.
    pub platform: String,
}

/// A row and the image it shows.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The row.
    pub row: ImageRow,
    /// Its image.
    pub image: ImageRecord,
}

/// Every tag's row (in reference order), then a `<none>` row for each image no tag names.
pub fn image_rows(store: &Store, now: i64) -> Result<Vec<Listed>, StoreError> {
    let images: HashMap<_, _> = store
        .images()?
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
    let mut created = HashMap::new();
    let mut created_of = |image: &ImageRecord| -> Result<Value, StoreError> {
        if let Some(value) = created.get(&image.id) {
            return Ok(Value::clone(value));
        }
        let config: Value =
            serde_json::from_slice(&store.image_config(&image.id)?).unwrap_or(Value::Null);
        let value = config.get("created").cloned().unwrap_or(Value::Null);
        created.insert(image.id.clone(), value.clone());
        Ok(value)
    };
    let mut rows = Vec::new();
    let mut tagged = BTreeSet::new();
    for (name, id) in store.repositories()?.refs {
        let Some(image) = images.get(&id) else {
            continue;
        };
        tagged.insert(id.clone());
        let (repository, tag) = match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
            _ => (name.clone(), String::new()),
        };
        let digest = image
            .repo_digests
            .iter()
            .find_map(|d| d.strip_prefix(&format!("{repository}@")))
            .unwrap_or_default()
            .to_string();
        let row = row(image, repository, tag, digest, created_of(image)?, now);
        rows.push(Listed {
            row,
            image: image.clone(),
        });
    }
    let mut dangling: Vec<&ImageRecord> = images
        .values()
        .filter(|i| !tagged.contains(&i.id))
        .collect();
    dangling.sort_by(|a, b| a.id.cmp(&b.id));
    for image in dangling {
        let digest = image
            .repo_digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map(|(_, digest)| digest.to_string())
            .unwrap_or_default();
        let mut row = row(
            image,
            NONE.to_string(),
            NONE.to_string(),
            digest,
            created_of(image)?,
            now,
        );
        row.dangling = true;
        rows.push(Listed {
            row,
            image: image.clone(),
        });
    }
    Ok(rows)
}

fn row(
    image: &ImageRecord,
    repository: String,
    tag: String,
    digest: String,
    created: Value,
    now: i64,
) -> ImageRow {
    ImageRow {
        repository,
        tag,
        digest,
        id: image.id.to_string(),
        created_since: units::age(created.as_str(), now),
        created,
        size: image.size(),
        dangling: false,
        platform: image.platform.clone(),
    }
}

/// A `--filter` of `images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `dangling=true|false`.
    Dangling(bool),
    /// `reference=PATTERN`: a glob (`*`, `?`, not across `/`) on `REPO` or `REPO:TAG`.
    Reference(String),
}

impl Filter {
    /// Parses `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Filter> {
        match text.split_once('=') {
            Some(("dangling", value)) => match value.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Filter::Dangling(true)),
                "false" | "0" => Ok(Filter::Dangling(false)),
                _ => bail!("invalid filter 'dangling={value}': use true or false"),
            },
            Some(("reference", pattern)) => Ok(Filter::Reference(pattern.to_string())),
            Some((key, _)) => bail!("invalid filter '{key}': use dangling or reference"),
            None => bail!("invalid filter {text:?}: expected KEY=VALUE"),
        }
    }
}

/// Whether a row passes the filters: every `dangling`, and one `reference` when any is given.
pub fn keep(row: &ImageRow, filters: &[Filter]) -> bool {
    let mut patterns = filters
        .iter()
        .filter_map(|f| match f {
            Filter::Reference(p) => Some(p),
            Filter::Dangling(_) => None,
        })
        .peekable();
    let dangling_ok = filters.iter().all(|f| match f {
        Filter::Dangling(want) => row.dangling == *want,
        Filter::Reference(_) => true,
    });
    let reference_ok = patterns.peek().is_none()
        || (!row.dangling && patterns.any(|p| names(row).iter().any(|n| glob(p, n))));
    dangling_ok && reference_ok
}

/// The names a `reference` filter matches a row by: `REPO` and `REPO:TAG`, also without
/// Docker Hub's `docker.io/` and `library/` prefixes.
fn names(row: &ImageRow) -> Vec<String> {
    let mut repos = vec![row.repository.clone()];
    if let Some(short) = row.repository.strip_prefix("docker.io/") {
        repos.push(short.to_string());
        if let Some(shorter) = short.strip_prefix("library/") {
            repos.push(shorter.to_string());
        }
    }
    let tagged: Vec<String> = repos.iter().map(|r| format!("{r}:{}", row.tag)).collect();
    repos.extend(tagged);
    repos
}

/// Shell-style matching of the whole `text`: `*` is any run of characters but `/`, `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // matched[j]: pattern so far matches text[..j].
    let mut matched = vec![false; t.len() + 1];
    matched[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = match pc {
                '*' => matched[j] || (j > 0 && next[j - 1] && t[j - 1] != '/'),
                '?' => j > 0 && matched[j - 1] && t[j - 1] != '/',
                c => j > 0 && matched[j - 1] && t[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[t.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(repository: &str, tag: &str, dangling: bool) -> ImageRow {
        ImageRow {
            repository: repository.into(),
            tag: tag.into(),
            digest: String::new(),
            id: String::new(),
            created: Value::Null,
            size: 0,
            created_since: String::new(),
            dangling,
            platform: String::new(),
        }
    }

    #[test]
    fn globs_do_not_cross_slashes() {
        assert!(glob("alpine", "alpine"));
        assert!(glob("alp*", "alpine"));
        assert!(glob("*:3.2?", "alpine:3.20"));
        assert!(!glob("*", "library/alpine"));
        assert!(glob("*/*", "library/alpine"));
        assert!(!glob("alpine", "alpine:latest"));
    }

    #[test]
    fn filters_parse_and_select() {
        assert_eq!(
            Filter::parse("dangling=true").unwrap(),
            Filter::Dangling(true)
        );
        assert!(Filter::parse("dangling=maybe").is_err());
        assert!(Filter::parse("label=a").is_err());
        assert!(Filter::parse("dangling").is_err());
        let hub = row("docker.io/library/alpine", "3.20", false);
        let none = row(NONE, NONE, true);
        let dangling = [Filter::Dangling(true)];
        assert!(!keep(&hub, &dangling) && keep(&none, &dangling));
        assert!(keep(&hub, &[Filter::Dangling(false)]));
        let by_ref = |p: &str| vec![Filter::Reference(p.into())];
        assert!(keep(&hub, &by_ref("alpine")));
        assert!(keep(&hub, &by_ref("alpine:3.*")));
        assert!(keep(&hub, &by_ref("docker.io/library/*")));
        assert!(!keep(&hub, &by_ref("busybox")));
        assert!(!keep(&none, &by_ref("*")));
        assert!(keep(&hub, &[by_ref("busybox"), by_ref("alp*")].concat()));
    }
}

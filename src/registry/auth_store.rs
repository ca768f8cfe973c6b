//! The auth cache kept between invocations: per registry endpoint, its bearer challenge
//! (realm and service), whether it is reached over plain HTTP, and its live tokens, in one
//! small JSON file per endpoint under a directory private to the user (mode 0700, files 0600,
//! replaced atomically so that concurrent processes never read half a file).
//!
//! Without a daemon, each command would otherwise pay a 401 and a token request again. A file
//! that cannot be read or parsed is ignored (the normal dance follows); one that cannot be
//! written is logged at DEBUG level. Tokens fetched with credentials are only written when
//! the configuration allows it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::sys::atomic::{Durability, write_file};

/// Largest cache file read (a few tokens; anything bigger is not ours).
const MAX_FILE: u64 = 1 << 20;

/// The directory strata keeps its auth cache in by default: `$XDG_RUNTIME_DIR/strata/auth`,
/// else, for root, `/run/strata/auth`; none for other users without a runtime dir.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => {
            Some(Path::new(&dir).join("strata").join("auth"))
        }
        _ if rustix::process::geteuid().is_root() => Some(PathBuf::from("/run/strata/auth")),
        _ => None,
    }
}

/// A bearer challenge as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StoredChallenge {
    /// The token realm URL.
    pub realm: String,
    /// The `service` parameter, if any.
    #[serde(default)]
    pub service: Option<String>,
}

/// A token as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StoredToken {
    /// The `Authorization` value.
    pub header: String,
    /// The scopes it was granted for.
    pub scopes: Vec<String>,
    /// Seconds since the epoch after which it is not sent any more.
    pub expires: u64,
}

/// One endpoint's file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Entry {
    /// The bearer challenge it answered with last (`None`: no auth asked, or not known).
    #[serde(default)]
    pub challenge: Option<StoredChallenge>,
    /// Reached over plain HTTP last time (an insecure registry): try that before HTTPS.
    #[serde(default)]
    pub plain_http: bool,
    /// Live tokens.
    #[serde(default)]
    pub tokens: Vec<StoredToken>,
    /// The origin (`scheme://host[:port]`) its blobs were redirected to last time.
    #[serde(default)]
    pub blob_origin: Option<String>,
    /// When that origin was recorded (seconds since the epoch; 0 in an older file).
    #[serde(default)]
    pub blob_origin_seen: u64,
}

/// The on-disk cache.
#[derive(Debug, Clone)]
pub(crate) struct AuthStore {
    dir: PathBuf,
}

/// Seconds since the epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AuthStore {
    /// A cache in `dir` (created when first written).
    pub(crate) fn new(dir: PathBuf) -> AuthStore {
        AuthStore { dir }
    }

    /// The file of endpoint `authority` (`host[:port]`): characters other than letters,
    /// digits, `.` and `-` become `_`, so a name never leaves the directory.
    fn file(&self, authority: &str) -> PathBuf {
        let name: String = authority
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{name}.json"))
    }

    /// Whether the directory is ours alone: a real directory, owned by this user, mode 0700.
    /// Anything else (a symlink, another user's directory) is not trusted.
    fn dir_is_private(&self) -> bool {
        fs::symlink_metadata(&self.dir).is_ok_and(|m| {
            m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o077 == 0
        })
    }

    /// The entry of `authority`, expired tokens dropped; empty when there is none or it
    /// cannot be trusted.
    pub(crate) fn load(&self, authority: &str) -> Entry {
        if !self.dir_is_private() {
            return Entry::default();
        }
        let path = self.file(authority);
        let read = || -> io::Result<Vec<u8>> {
            let f = fs::File::open(&path)?;
            let m = f.metadata()?;
            if !m.is_file() || m.uid() != rustix::process::geteuid().as_raw() || m.len() > MAX_FILE
            {
                return Err(io::Error::other("not a private cache file"));
            }
            fs::read(&path)
        };
        let Ok(bytes) = read() else {
            return Entry::default();
        };
        let mut entry: Entry = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!("ignoring auth cache {}: {e}", path.display());
                return Entry::default();
            }
        };
        let now = unix_now();
        entry.tokens.retain(|t| t.expires > now);
        entry
    }

    /// Changes the entry of `authority` with `change` (read, modified, written atomically; a
    /// concurrent writer's change may be lost, which only costs a token request later).
    pub(crate) fn update(&self, authority: &str, change: impl FnOnce(&mut Entry)) {
        if let Err(e) = self.try_update(authority, change) {
            tracing::debug!("auth cache {} not written: {e}", self.dir.display());
        }
    }

    fn try_update(&self, authority: &str, change: impl FnOnce(&mut Entry)) -> io::Result<()> {
        self.make_dir()?;
        let mut entry = self.load(authority);
        let before = entry.clone();
        change(&mut entry);
        if entry == before {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        write_file(&self.file(authority), &bytes, 0o600, Durability::NoSync)
            .map_err(io::Error::other)
    }

    /// Creates the directory (and its parent `strata` directory) with mode 0700, and checks
    /// that it is private.
    fn make_dir(&self) -> io::Result<()> {
        if !self.dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)?;
            // `recursive` applies the mode to the leaf; the umask may have narrowed it.
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        }
        if self.dir_is_private() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{} is not a directory private to this user (mode 0700)",
                self.dir.display()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_private_and_expire() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AuthStore::new(tmp.path().join("strata").join("auth"));
        assert_eq!(store.load("127.0.0.1:5000"), Entry::default());
        let now = unix_now();
        store.update("127.0.0.1:5000", |e| {
            e.challenge = Some(StoredChallenge {
                realm: "http://127.0.0.1:1/token".into(),
                service: Some("reg".into()),
            });
            e.tokens.push(StoredToken {
                header: "Bearer live".into(),
                scopes: vec!["repository:a:pull".into()],
                expires: now + 100,
            });
            e.tokens.push(StoredToken {
                header: "Bearer dead".into(),
                scopes: vec!["repository:b:pull".into()],
                expires: now.saturating_sub(1),
            });
        });
        let file = store.file("127.0.0.1:5000");
        assert_eq!(file.file_name().unwrap(), "127.0.0.1_5000.json");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&store.dir), 0o700);
        let loaded = store.load("127.0.0.1:5000");
        assert_eq!(loaded.challenge.unwrap().service.as_deref(), Some("reg"));
        assert_eq!(loaded.tokens.len(), 1, "the expired token is dropped");
        assert_eq!(loaded.tokens[0].header, "Bearer live");
        // Names never leave the directory.
        assert_eq!(store.file("../x").parent().unwrap(), store.dir);
    }

    #[test]
    fn a_directory_open_to_others_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AuthStore::new(tmp.path().join("auth"));
        store.update("r", |e| e.plain_http = true);
        assert!(store.load("r").plain_http);
        fs::set_permissions(&store.dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!store.load("r").plain_http, "ignored when others can read");
        store.update("r", |e| e.plain_http = false);
        fs::set_permissions(&store.dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(store.load("r").plain_http, "and not written either");
        // Garbage is ignored.
        fs::write(store.file("r"), b"{not json").unwrap();
        assert_eq!(store.load("r"), Entry::default());
    }
}

//! Registry credentials in Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): `auths` entries (`auth` = base64 of `user:password`,
//! `identitytoken`), and credential helpers (`credHelpers` per registry, `credsStore` for all)
//! run as `docker-credential-<name> get|store|erase` with Docker's protocol.
//!
//! Lookup order for a registry: its `credHelpers` entry, else `credsStore`, else (also when
//! the helper has nothing for it) the `auths` entry. `strata login` and `strata logout` write
//! the same format, keep every other field of the file, and write it atomically with mode
//! 0600. Secrets never appear in errors or `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::Deserialize;

use super::error::RegistryError;
use crate::sys;
use crate::sys::atomic::{Durability, WriteStep};

/// Docker Hub's key in `config.json` and the server URL its credential helpers know.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// The user name a credential helper returns when the secret is an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// A user name and password, or an identity (refresh) token; never shown.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// User name (may be empty with an identity token).
    pub username: String,
    /// Password or access token.
    pub password: String,
    /// OAuth2 refresh token ("identity token") exchanged at the token server with
    /// `grant_type=refresh_token`.
    pub identity_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// A user name and password.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
            identity_token: None,
        }
    }

    /// The `Authorization: Basic ...` value.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default, Clone)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Credentials read from a Docker `config.json`.
#[derive(Default)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    /// Normalised registry host -> entry.
    auths: HashMap<String, AuthEntry>,
    /// Normalised registry host -> credential helper name.
    helpers: HashMap<String, String>,
    creds_store: Option<String>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .field("registries", &self.auths.keys().collect::<Vec<_>>())
            .field("helpers", &self.helpers)
            .field("creds_store", &self.creds_store)
            .finish()
    }
}

/// Docker's `ConvertToHostname` plus Hub aliases: `https://index.docker.io/v1/` -> `docker.io`.
pub fn normalize_registry_key(key: &str) -> String {
    let k = key.trim().to_ascii_lowercase();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(&k);
    let k = k.split('/').next().unwrap_or("").to_string();
    match k.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => k,
    }
}

/// The server address Docker uses for a registry in `config.json` and with credential
/// helpers: Docker Hub's v1 URL, else the host itself.
pub fn server_address(registry: &str) -> String {
    let host = normalize_registry_key(registry);
    if host == "docker.io" {
        DOCKER_HUB_SERVER.to_string()
    } else {
        host
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

impl DockerConfig {
    /// Reads `path`, or when `None` `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    /// A missing default file means no credentials; a missing explicit file is an error.
    pub fn load(path: Option<&Path>) -> Result<Self, RegistryError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match default_config_path() {
                Some(p) => (p, false),
                None => return Ok(DockerConfig::default()),
            },
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(DockerConfig {
                    path: Some(path),
                    ..DockerConfig::default()
                });
            }
            Err(e) => {
                return Err(RegistryError::DockerConfig {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        Self::from_json(&bytes, Some(path))
    }

    /// Parses config.json content; `path` is only for messages.
    pub fn from_json(bytes: &[u8], path: Option<PathBuf>) -> Result<Self, RegistryError> {
        let file: ConfigFile = if bytes.iter().all(u8::is_ascii_whitespace) {
            ConfigFile::default()
        } else {
            serde_json::from_slice(bytes).map_err(|e| RegistryError::DockerConfig {
                path: path.clone().unwrap_or_default(),
                reason: format!("invalid JSON: {e}"),
            })?
        };
        Ok(DockerConfig {
            auths: file
                .auths
                .into_iter()
                .map(|(k, v)| (normalize_registry_key(&k), v))
                .collect(),
            helpers: file
                .cred_helpers
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (normalize_registry_key(&k), v))
                .collect(),
            creds_store: file.creds_store.filter(|s| !s.is_empty()),
            path,
        })
    }

    /// Where the credentials come from (also when the file does not exist yet).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The credential helper that holds the credentials of `registry`, if any.
    pub fn helper_for(&self, registry: &str) -> Option<&str> {
        self.helpers
            .get(&normalize_registry_key(registry))
            .or(self.creds_store.as_ref())
            .map(String::as_str)
    }

    /// Credentials for a registry host (`docker.io`, `host:port`): from its credential helper
    /// (which this runs, blocking), else from the `auths` entry.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(helper) = self.helper_for(registry)
            && let Some(creds) = helper_get(helper, registry)?
        {
            return Ok(Some(creds));
        }
        self.file_credentials(registry)
    }

    /// Credentials from the `auths` entry only.
    pub fn file_credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let Some(entry) = self.auths.get(&normalize_registry_key(registry)) else {
            return Ok(None);
        };
        let bad = |reason: &str| RegistryError::DockerConfig {
            path: self.path.clone().unwrap_or_default(),
            reason: format!("auths entry for {registry}: {reason}"),
        };
        let identity_token = entry.identitytoken.clone().filter(|t| !t.is_empty());
        if let Some(auth) = entry
            .auth
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let decoded = STANDARD
                .decode(auth)
                .or_else(|_| STANDARD_NO_PAD.decode(auth.trim_end_matches('=')))
                .map_err(|_| bad("`auth` is not valid base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("`auth` is not UTF-8"))?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| bad("`auth` is not base64 of user:password"))?;
            return Ok(Some(Credentials {
                username: user.to_string(),
                password: pass.trim_end_matches('\n').to_string(),
                identity_token,
            }));
        }
        let username = entry.username.clone().unwrap_or_default();
        let password = entry.password.clone().unwrap_or_default();
        if identity_token.is_some() || (!username.is_empty() && !password.is_empty()) {
            return Ok(Some(Credentials {
                username,
                password,
                identity_token,
            }));
        }
        Ok(None)
    }
}

fn helper_error(helper: &str, registry: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::CredentialHelper {
        helper: format!("docker-credential-{helper}"),
        registry: registry.to_string(),
        reason: reason.into(),
    }
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns (success,
/// stdout, stderr).
fn run_helper(
    helper: &str,
    action: &str,
    input: &[u8],
    registry: &str,
) -> Result<(bool, Vec<u8>, String), RegistryError> {
    if helper.contains(['/', '\0']) || helper.trim().is_empty() {
        return Err(helper_error(helper, registry, "invalid helper name"));
    }
    let program = PathBuf::from(format!("docker-credential-{helper}"));
    run_program(&program, helper, action, input, registry)
}

/// [`run_helper`] with the program given (a path in tests).
fn run_program(
    program: &Path,
    helper: &str,
    action: &str,
    input: &[u8],
    registry: &str,
) -> Result<(bool, Vec<u8>, String), RegistryError> {
    let program = program.display().to_string();
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                helper_error(
                    helper,
                    registry,
                    format!("{program} is not installed (not found on PATH)"),
                )
            } else {
                helper_error(helper, registry, format!("cannot run {program}: {e}"))
            }
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| helper_error(helper, registry, format!("waiting for {program}: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Ok((out.status.success(), out.stdout, stderr))
}

/// Helpers print their errors on stdout; such text never holds a secret.
fn failure_text(stdout: &[u8], stderr: &str) -> String {
    let text = String::from_utf8_lossy(stdout).trim().to_string();
    let text = if text.is_empty() {
        stderr.to_string()
    } else {
        text
    };
    let text: String = text.chars().take(300).collect();
    if text.is_empty() {
        "failed without a message".to_string()
    } else {
        text
    }
}

fn is_not_found(text: &str) -> bool {
    text.to_ascii_lowercase().contains("credentials not found")
}

/// `docker-credential-<helper> get`: the credentials the helper keeps for `registry`, `None`
/// when it has none.
pub fn helper_get(helper: &str, registry: &str) -> Result<Option<Credentials>, RegistryError> {
    let server = server_address(registry);
    let answer = run_helper(helper, "get", server.as_bytes(), registry)?;
    parse_get_answer(helper, registry, answer)
}

fn parse_get_answer(
    helper: &str,
    registry: &str,
    (ok, stdout, stderr): (bool, Vec<u8>, String),
) -> Result<Option<Credentials>, RegistryError> {
    if !ok {
        let text = failure_text(&stdout, &stderr);
        if is_not_found(&text) {
            return Ok(None);
        }
        return Err(helper_error(helper, registry, format!("get: {text}")));
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    // The answer holds the secret: never quote it in an error.
    let answer: Answer = serde_json::from_slice(&stdout).map_err(|e| {
        helper_error(
            helper,
            registry,
            format!(
                "get: the answer is not the expected JSON {{ServerURL, Username, Secret}} (error at line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    if answer.username == TOKEN_USERNAME {
        return Ok(Some(Credentials {
            username: String::new(),
            password: String::new(),
            identity_token: Some(answer.secret),
        }));
    }
    Ok(Some(Credentials::basic(answer.username, answer.secret)))
}

/// `docker-credential-<helper> store`.
pub fn helper_store(
    helper: &str,
    registry: &str,
    creds: &Credentials,
) -> Result<(), RegistryError> {
    let input = store_input(registry, creds);
    let (ok, stdout, stderr) = run_helper(helper, "store", input.as_bytes(), registry)?;
    if !ok {
        return Err(helper_error(
            helper,
            registry,
            format!("store: {}", failure_text(&stdout, &stderr)),
        ));
    }
    Ok(())
}

/// The JSON a helper's `store` reads: `{ServerURL, Username, Secret}` (`<token>` as the user
/// name for an identity token).
fn store_input(registry: &str, creds: &Credentials) -> String {
    let (username, secret) = match &creds.identity_token {
        Some(token) => (TOKEN_USERNAME, token.as_str()),
        None => (creds.username.as_str(), creds.password.as_str()),
    };
    serde_json::json!({
        "ServerURL": server_address(registry),
        "Username": username,
        "Secret": secret,
    })
    .to_string()
}

/// `docker-credential-<helper> erase`; `false` when the helper had nothing.
pub fn helper_erase(helper: &str, registry: &str) -> Result<bool, RegistryError> {
    let server = server_address(registry);
    let (ok, stdout, stderr) = run_helper(helper, "erase", server.as_bytes(), registry)?;
    if !ok {
        let text = failure_text(&stdout, &stderr);
        if is_not_found(&text) {
            return Ok(false);
        }
        return Err(helper_error(helper, registry, format!("erase: {text}")));
    }
    Ok(true)
}

/// Where [`store_credentials`] put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredIn {
    /// The `auths` entry of the file.
    File(PathBuf),
    /// A credential helper (`docker-credential-<name>`).
    Helper(String),
}

fn read_json_object(
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, RegistryError> {
    let bad = |reason: String| RegistryError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::Map::new()),
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(bad("not a JSON object".to_string())),
            Err(e) => Err(bad(format!("invalid JSON: {e}"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::Map::new()),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes `map` to `path` atomically (temp file in the same directory, fsync, rename) with
/// mode 0600, creating the directory (0700) if needed. A symlinked config file is written
/// through to its target.
fn write_json_object(
    path: &Path,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), RegistryError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let bad = |reason: String| RegistryError::DockerConfig {
        path: path.to_path_buf(),
        reason,
    };
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).map_err(|e| bad(format!("resolving the symlink: {e}")))?
        }
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| bad(format!("creating {}: {e}", dir.display())))?;
    let mut text = serde_json::to_string_pretty(&serde_json::Value::Object(map.clone()))
        .map_err(|e| bad(e.to_string()))?;
    text.push('\n');
    // Synced: a login must not be lost or leave a torn file. The directory's fsync is best
    // effort: the file is in place by then.
    match sys::atomic::write_file(&target, text.as_bytes(), 0o600, Durability::Sync) {
        Ok(()) => Ok(()),
        Err(e) if e.step == WriteStep::SyncDir => Ok(()),
        Err(e) => Err(bad(format!("writing: {}", e.source))),
    }
}

/// The keys of `auths` that name `registry` (`host`, `https://host`, Hub aliases).
fn matching_keys(
    auths: &serde_json::Map<String, serde_json::Value>,
    registry: &str,
) -> Vec<String> {
    let host = normalize_registry_key(registry);
    auths
        .keys()
        .filter(|k| normalize_registry_key(k) == host)
        .cloned()
        .collect()
}

fn helper_in(map: &serde_json::Map<String, serde_json::Value>, registry: &str) -> Option<String> {
    let host = normalize_registry_key(registry);
    let from_helpers = map
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| {
            h.iter()
                .find(|(k, _)| normalize_registry_key(k) == host)
                .and_then(|(_, v)| v.as_str())
                .map(str::to_string)
        });
    from_helpers
        .or_else(|| {
            map.get("credsStore")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
}

/// Saves credentials for `registry` the way `docker login` does: in the registry's credential
/// helper or the `credsStore` when one is configured (leaving an empty `auths` entry), else as
/// an `auths` entry with `auth` = base64(`user:password`). Every other field of the file is
/// kept.
pub fn store_credentials(
    path: &Path,
    registry: &str,
    creds: &Credentials,
) -> Result<StoredIn, RegistryError> {
    let mut map = read_json_object(path)?;
    let helper = helper_in(&map, registry);
    if let Some(helper) = &helper {
        helper_store(helper, registry, creds)?;
    }
    let auths = map
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !auths.is_object() {
        *auths = serde_json::Value::Object(serde_json::Map::new());
    }
    let Some(auths) = auths.as_object_mut() else {
        return Err(RegistryError::DockerConfig {
            path: path.to_path_buf(),
            reason: "`auths` is not an object".to_string(),
        });
    };
    for key in matching_keys(auths, registry) {
        auths.remove(&key);
    }
    let mut entry = serde_json::Map::new();
    if helper.is_none() {
        entry.insert(
            "auth".to_string(),
            serde_json::Value::String(
                STANDARD.encode(format!("{}:{}", creds.username, creds.password)),
            ),
        );
        if let Some(token) = &creds.identity_token {
            entry.insert(
                "identitytoken".to_string(),
                serde_json::Value::String(token.clone()),
            );
        }
    }
    auths.insert(server_address(registry), serde_json::Value::Object(entry));
    write_json_object(path, &map)?;
    Ok(match helper {
        Some(h) => StoredIn::Helper(format!("docker-credential-{h}")),
        None => StoredIn::File(path.to_path_buf()),
    })
}

/// Removes the credentials of `registry` (its `auths` entries and what its credential helper
/// keeps). Returns whether there was anything to remove.
pub fn erase_credentials(path: &Path, registry: &str) -> Result<bool, RegistryError> {
    let mut map = read_json_object(path)?;
    let mut removed = false;
    if let Some(helper) = helper_in(&map, registry) {
        removed |= helper_erase(&helper, registry)?;
    }
    let mut changed = false;
    if let Some(auths) = map.get_mut("auths").and_then(|a| a.as_object_mut()) {
        for key in matching_keys(auths, registry) {
            if let Some(entry) = auths.remove(&key) {
                changed = true;
                removed |= entry.as_object().is_some_and(|e| !e.is_empty());
            }
        }
    }
    if changed {
        write_json_object(path, &map)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn reads_config_json() {
        let json = br#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNzOndpdGg6Y29sb25z"},
                "localhost:5000": {"auth": "YTpi"},
                "https://quay.io": {"username": "qu", "password": "qp"},
                "ghcr.io": {"auth": ""},
                "bad.example": {"auth": "!!!"},
                "id.example": {"auth": "dTo=", "identitytoken": "tok"},
                "idonly.example": {"identitytoken": "tok2"}
            },
            "credHelpers": {"gcr.io": "gcloud"},
            "unknown": {"kept": true}
        }"#;
        let cfg = DockerConfig::from_json(json, Some("/x/config.json".into())).unwrap();
        let hub = cfg.file_credentials("docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "pass:with:colons")
        );
        assert_eq!(hub.identity_token, None);
        assert_eq!(
            cfg.credentials_for("index.docker.io").unwrap(),
            Some(hub.clone())
        );
        let local = cfg.credentials_for("localhost:5000").unwrap().unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("a", "b")
        );
        assert_eq!(cfg.credentials_for("localhost:5001").unwrap(), None);
        assert_eq!(
            cfg.credentials_for("quay.io").unwrap().unwrap().username,
            "qu"
        );
        assert_eq!(cfg.credentials_for("ghcr.io").unwrap(), None);
        let err = cfg.credentials_for("bad.example").unwrap_err().to_string();
        assert!(
            err.contains("/x/config.json") && err.contains("base64"),
            "{err}"
        );
        let id = cfg.credentials_for("id.example").unwrap().unwrap();
        assert_eq!(id.username, "u");
        assert_eq!(id.identity_token.as_deref(), Some("tok"));
        let id = cfg.credentials_for("idonly.example").unwrap().unwrap();
        assert_eq!(id.identity_token.as_deref(), Some("tok2"));
        assert_eq!(cfg.helper_for("gcr.io"), Some("gcloud"));
        assert_eq!(cfg.helper_for("quay.io"), None);
        // Secrets stay out of Debug output.
        let shown = format!("{hub:?} {id:?} {cfg:?}");
        assert!(
            !shown.contains("pass:with") && !shown.contains("dXNlcjpw") && !shown.contains("tok2"),
            "{shown}"
        );
    }

    #[test]
    fn config_file_errors() {
        assert!(
            DockerConfig::from_json(b"{not json", None)
                .unwrap_err()
                .to_string()
                .contains("invalid JSON")
        );
        assert!(
            DockerConfig::from_json(b"{}", None)
                .unwrap()
                .credentials_for("docker.io")
                .unwrap()
                .is_none()
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        assert!(
            DockerConfig::load(Some(&missing)).is_err(),
            "an explicit path must exist"
        );
        let path = dir.path().join("config.json");
        std::fs::write(&path, br#"{"auths":{"r.example":{"auth":"dTpw"}}}"#).unwrap();
        let cfg = DockerConfig::load(Some(&path)).unwrap();
        assert_eq!(
            cfg.credentials_for("r.example").unwrap().unwrap().password,
            "p"
        );
        assert_eq!(cfg.path(), Some(path.as_path()));
    }

    #[test]
    fn normalises_keys() {
        for k in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
            "HTTPS://Docker.IO",
        ] {
            assert_eq!(normalize_registry_key(k), "docker.io", "{k}");
        }
        assert_eq!(
            normalize_registry_key("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
        assert_eq!(server_address("docker.io"), DOCKER_HUB_SERVER);
        assert_eq!(server_address("https://r.example:5000"), "r.example:5000");
    }

    #[test]
    fn login_and_logout_keep_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.json");
        // A new file (and directory) is created with mode 0600.
        let stored =
            store_credentials(&path, "r.example:5000", &Credentials::basic("u", "p")).unwrap();
        assert_eq!(stored, StoredIn::File(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["auths"]["r.example:5000"]["auth"], "dTpw");

        std::fs::write(
            &path,
            r#"{"auths":{"https://r.example:5000":{"auth":"b2xkOm9sZA==","email":"x"},"other":{"auth":"eDp5"}},"psFormat":"table {{.ID}}","proxies":{"default":{"httpProxy":"http://p"}}}"#,
        )
        .unwrap();
        store_credentials(&path, "r.example:5000", &Credentials::basic("new", "pw")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert_eq!(v["proxies"]["default"]["httpProxy"], "http://p");
        assert_eq!(v["auths"]["other"]["auth"], "eDp5");
        assert!(v["auths"].get("https://r.example:5000").is_none());
        let cfg = DockerConfig::load(Some(&path)).unwrap();
        assert_eq!(
            cfg.credentials_for("r.example:5000").unwrap(),
            Some(Credentials::basic("new", "pw"))
        );
        // Docker Hub goes under Docker's key.
        store_credentials(&path, "docker.io", &Credentials::basic("h", "s")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(v["auths"][DOCKER_HUB_SERVER]["auth"].is_string());

        assert!(erase_credentials(&path, "r.example:5000").unwrap());
        assert!(!erase_credentials(&path, "r.example:5000").unwrap());
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert!(v["auths"].get("r.example:5000").is_none());
        assert_eq!(v["auths"]["other"]["auth"], "eDp5");
        assert_eq!(v["psFormat"], "table {{.ID}}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("config.json")]);

        std::fs::write(&path, "[1]").unwrap();
        assert!(
            store_credentials(&path, "x", &Credentials::basic("u", "p"))
                .unwrap_err()
                .to_string()
                .contains("not a JSON object")
        );
    }

    #[test]
    fn credential_helper_protocol() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-test");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
read -r server || true
case "$1" in
get)
  case "$server" in
    r.example) echo '{{"ServerURL":"r.example","Username":"u","Secret":"s3cret"}}' ;;
    tok.example) echo '{{"ServerURL":"tok.example","Username":"<token>","Secret":"refresh"}}' ;;
    bad.example) echo 'not json s3cret' ;;
    broken.example) echo 'the keychain is locked' ; exit 1 ;;
    *) echo 'credentials not found in native keychain' ; exit 1 ;;
  esac ;;
store) printf '%s' "$server" > {stored} ;;
esac
"#,
                stored = dir.path().join("stored").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let get = |registry: &str| {
            let answer = run_program(
                &script,
                "test",
                "get",
                server_address(registry).as_bytes(),
                registry,
            )?;
            parse_get_answer("test", registry, answer)
        };
        assert_eq!(
            get("r.example").unwrap(),
            Some(Credentials::basic("u", "s3cret"))
        );
        let tok = get("tok.example").unwrap().unwrap();
        assert_eq!(tok.identity_token.as_deref(), Some("refresh"));
        assert!(tok.username.is_empty());
        assert_eq!(get("none.example").unwrap(), None, "not found is no error");
        let err = get("bad.example").unwrap_err().to_string();
        assert!(
            err.contains("not the expected JSON") && !err.contains("s3cret"),
            "{err}"
        );
        let err = get("broken.example").unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-test")
                && err.contains("the keychain is locked")
                && err.contains("broken.example"),
            "{err}"
        );
        // store gets Docker's JSON on stdin.
        let input = store_input("docker.io", &Credentials::basic("u", "p"));
        let (ok, _, _) =
            run_program(&script, "test", "store", input.as_bytes(), "docker.io").unwrap();
        assert!(ok);
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("stored")).unwrap()).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"ServerURL": DOCKER_HUB_SERVER, "Username": "u", "Secret": "p"})
        );
        let input = store_input(
            "r.example",
            &Credentials {
                identity_token: Some("rt".into()),
                ..Credentials::default()
            },
        );
        assert!(input.contains(r#""Username":"<token>""#) && input.contains(r#""Secret":"rt""#));
    }

    #[test]
    fn helper_failures_are_worded() {
        let err = helper_get("strata-test-does-not-exist", "r.example").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("docker-credential-strata-test-does-not-exist")
                && msg.contains("not installed")
                && msg.contains("r.example"),
            "{msg}"
        );
        assert!(helper_get("../x", "r.example").is_err());
    }
}

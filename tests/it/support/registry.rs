//! A real registry for one test: Debian's `docker-registry` (Docker Distribution 2.8) with
//! filesystem storage in a temp dir, listening on a free loopback port, killed on drop.

use std::fs;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

static NEXT_TOKEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    storage: PathBuf,
    scheme: &'static str,
}

/// How to run a registry other than the plain default (TLS, auth, shared storage).
#[derive(Default)]
pub struct Setup {
    /// Serve this storage directory (another registry's [`Registry::storage`]: push there
    /// over plain HTTP, pull here).
    pub storage: Option<PathBuf>,
    /// TLS certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// CA bundle (PEM) of the client certificates the registry demands.
    pub client_ca: Option<PathBuf>,
    /// An `auth:` section (YAML, starting at column 0).
    pub auth_yaml: Option<String>,
    /// Client certificate and key (PEM, concatenated) for the readiness probe.
    pub probe_identity: Option<Vec<u8>>,
}

impl Registry {
    /// Start a registry and wait until `GET /v2/` answers.
    pub fn start() -> Registry {
        Registry::start_with(Setup::default())
    }

    /// Start a registry as `setup` says and wait until `GET /v2/` answers (200, or 401 when
    /// it has auth).
    pub fn start_with(setup: Setup) -> Registry {
        super::require_tool("docker-registry");
        let dir = super::tempdir("registry");
        let mut last_err = String::new();
        // The free port is found by binding port 0 and closing it again; another process may
        // grab it in between, so retry a few times.
        for _ in 0..5 {
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("socket addr");
            let config = dir.path().join("config.yml");
            // A header only this registry sends: proves that the process answering on the
            // port is ours and not another test's that won a race for the same port.
            let token = format!(
                "{}-{}-{port}",
                std::process::id(),
                NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let storage = setup
                .storage
                .clone()
                .unwrap_or_else(|| dir.path().join("storage"));
            fs::create_dir_all(&storage).expect("create registry storage dir");
            let mut yaml = config_yaml(&storage, addr, &token);
            if let Some((cert, key)) = &setup.tls {
                yaml.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ));
                if let Some(ca) = &setup.client_ca {
                    yaml.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
                }
            }
            if let Some(auth) = &setup.auth_yaml {
                yaml.push_str(auth);
            }
            fs::write(&config, yaml).expect("write registry config");
            let log_path = dir.path().join("registry.log");
            let log = fs::File::create(&log_path).expect("create registry log");
            let log_err = log.try_clone().expect("clone registry log handle");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .expect("spawn docker-registry");
            let mut child = child;
            let ready = if setup.tls.is_some() {
                wait_ready_tls(
                    &mut child,
                    addr,
                    &token,
                    setup.probe_identity.as_deref(),
                    Duration::from_secs(20),
                )
            } else {
                wait_ready(
                    &mut child,
                    addr,
                    "x-strata-test-registry:",
                    &token,
                    setup.auth_yaml.is_some(),
                    Duration::from_secs(20),
                )
            };
            match ready {
                Ok(()) => {
                    return Registry {
                        child,
                        addr,
                        dir,
                        storage,
                        scheme: if setup.tls.is_some() { "https" } else { "http" },
                    };
                }
                Err(e) => {
                    last_err = format!(
                        "{e}\n--- registry log\n{}",
                        fs::read_to_string(&log_path).unwrap_or_default()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("docker-registry did not start: {last_err}");
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS)
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The registry's storage root (`<storage>/docker/registry/v2/...`).
    pub fn storage(&self) -> PathBuf {
        self.storage.clone()
    }

    /// Path of the stored data of a blob (`sha256:<hex>`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Replace the stored bytes of a blob with `new` (same length, different bytes), so the
    /// registry serves bytes that do not match their digest. Returns the digest of the bytes
    /// now served.
    pub fn replace_blob(&self, digest: &str, new: &[u8]) -> String {
        let path = self.blob_path(digest);
        let old = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert_eq!(
            old.len(),
            new.len(),
            "replacement must keep the blob's size"
        );
        assert_ne!(old, new, "replacement must change the blob's bytes");
        fs::write(&path, new).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        super::sha256_digest(new)
    }

    /// Corrupt a stored blob by inverting every byte of its second half (same length).
    /// Returns the digest of the bytes now served.
    pub fn corrupt_blob(&self, digest: &str) -> String {
        let path = self.blob_path(digest);
        let mut data = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert!(!data.is_empty(), "cannot corrupt an empty blob");
        let half = data.len() / 2;
        for b in &mut data[half..] {
            *b = !*b;
        }
        self.replace_blob(digest, &data)
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_yaml(storage: &Path, addr: SocketAddr, token: &str) -> String {
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: strata-integration-tests
  headers:
    X-Strata-Test-Registry: [\"{token}\"]
",
        storage.display()
    )
}

/// Waits for the `docker-registry` `child` to answer `GET /v2/` on `addr` with 200 (401 too
/// when `auth`), over plain HTTP, checking that the answer carries the response header
/// `header` (lower case, with its colon) with `token`: it is ours, not another server's.
pub(crate) fn wait_ready(
    child: &mut Child,
    addr: SocketAddr,
    header: &str,
    token: &str,
    auth: bool,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("docker-registry exited early with {status}"));
        }
        if let Ok((code, head)) = http_get_head(addr, "/v2/") {
            let ours = head
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with(header) && l.contains(token));
            if !ours {
                return Err(format!("another server answers on {addr}"));
            }
            if code == 200 || (auth && code == 401) {
                return Ok(());
            }
            return Err(format!("GET /v2/ answered {code}"));
        }
        if Instant::now() > deadline {
            return Err("GET /v2/ did not answer in time".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_ready`] over HTTPS (certificate not checked; `identity` presented if given).
fn wait_ready_tls(
    child: &mut Child,
    addr: SocketAddr,
    token: &str,
    identity: Option<&[u8]>,
    timeout: Duration,
) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::blocking::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(2));
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem).map_err(|e| e.to_string())?);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("docker-registry exited early with {status}"));
        }
        if let Ok(resp) = client.get(format!("https://{addr}/v2/")).send() {
            let ours = resp
                .headers()
                .get("x-strata-test-registry")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains(token));
            if !ours {
                return Err(format!("another server answers on {addr}"));
            }
            let code = resp.status().as_u16();
            if code == 200 || code == 401 {
                return Ok(());
            }
            return Err(format!("GET /v2/ answered {code}"));
        }
        if Instant::now() > deadline {
            return Err("GET /v2/ did not answer in time".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

/// Minimal HTTP/1.0 GET returning the status code and the response head (used only for the
/// readiness probe).
fn http_get_head(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::Read as _;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP answer: {head:.80}")))?;
    Ok((code, head))
}

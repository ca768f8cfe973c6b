//! A pull-through cache for the fleet tests: Distribution (`docker-registry`) in proxy mode
//! (`proxy: remoteurl:`) in front of an upstream, and a counting relay to put in front of the
//! upstream so a test sees which requests reached it and from whom (`User-Agent`).

use std::fs;
use std::io::Write as _;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::proxy::read_head;
use super::registry::wait_ready;

/// One request the relay forwarded.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request target (`/v2/...`).
    pub path: String,
    /// The client's `User-Agent` header (empty when none).
    pub user_agent: String,
    /// The upstream's status code (0 when it gave no answer).
    pub status: u16,
}

impl Request {
    /// A blob download (`GET .../blobs/sha256:...`).
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.path.contains("/blobs/sha256:")
    }
}

/// A plain HTTP relay that records every request (one request per connection: it adds
/// `Connection: close`). Its threads live as long as the test process.
pub struct CountingRelay {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl CountingRelay {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> CountingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let shared = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = shared.clone();
                std::thread::spawn(move || {
                    let _ = relay(client, upstream, &seen);
                });
            }
        });
        CountingRelay { addr, seen }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("relay log").clone()
    }
}

fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    seen: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let Some((head, rest)) = read_head(&mut client)? else {
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    };
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut words = request_line.split(' ');
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let headers: Vec<&str> = lines
        .filter(|l| !l.is_empty())
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let user_agent = headers
        .iter()
        .find(|h| h.to_ascii_lowercase().starts_with("user-agent:"))
        .map(|h| h[11..].trim().to_string())
        .unwrap_or_default();

    let mut server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = format!("{request_line}\r\n");
    for h in &headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    server.write_all(out.as_bytes())?;
    server.write_all(&rest)?;

    let answer = read_head(&mut server)?;
    let status = answer
        .as_ref()
        .and_then(|(h, _)| String::from_utf8_lossy(h).split(' ').nth(1)?.parse().ok())
        .unwrap_or(0);
    seen.lock().expect("relay log").push(Request {
        method,
        path,
        user_agent,
        status,
    });
    if let Some((resp_head, body)) = answer {
        client.write_all(&resp_head)?;
        client.write_all(&body)?;
        std::io::copy(&mut server, &mut client)?;
    }
    let _ = client.shutdown(Shutdown::Write);
    Ok(())
}

/// Distribution in proxy mode (a pull-through cache of `remote`), on a free loopback port,
/// killed on [`PullCache::stop`] or drop.
pub struct PullCache {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl PullCache {
    /// Start a cache of `remote` (`http://host:port`; it must answer already: Distribution
    /// asks it for its auth challenge at start) and wait until `GET /v2/` answers 200.
    pub fn start(remote: &str) -> PullCache {
        super::require_tool("docker-registry");
        let dir = super::tempdir("pull-cache");
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = super::registry::free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("socket addr");
            let config = dir.path().join("config.yml");
            // A header only this cache sends: the process answering on the port is ours.
            let tag = format!("{}-{port}", std::process::id());
            let yaml = format!(
                "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {}
http:
  addr: {addr}
  secret: strata-integration-tests
  headers:
    X-Strata-Pull-Cache: [\"{tag}\"]
proxy:
  remoteurl: {remote}
",
                dir.path().join("storage").display()
            );
            fs::write(&config, yaml).expect("write cache config");
            let log = fs::File::create(dir.path().join("cache.log")).expect("create cache log");
            let log_err = log.try_clone().expect("clone cache log handle");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .expect("spawn docker-registry");
            match wait_ready(
                &mut child,
                addr,
                "x-strata-pull-cache:",
                &tag,
                false,
                Duration::from_secs(20),
            ) {
                Ok(()) => {
                    return PullCache {
                        child: Some(child),
                        addr,
                        dir,
                    };
                }
                Err(e) => {
                    last_err = e;
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        let log = fs::read_to_string(dir.path().join("cache.log")).unwrap_or_default();
        panic!("the pull-through cache did not start: {last_err}\n--- log\n{log}");
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether the cache has stored blob `digest` for `repo` (the repository's link to it is
    /// written when the cache's own copy is complete).
    pub fn holds(&self, repo: &str, digest: &str) -> bool {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.storage()
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_layers/sha256")
            .join(hex)
            .join("link")
            .is_file()
    }

    /// Wait until the cache holds every blob of `digests` for `repo`: it stores what it
    /// streams in the background, after the answer to the client is complete.
    pub fn wait_stored(&self, repo: &str, digests: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !digests.iter().all(|d| self.holds(repo, d)) {
            assert!(
                Instant::now() < deadline,
                "the cache did not store {digests:?} of {repo}\n--- log\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill the cache (its storage stays until drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The cache's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("cache.log")).unwrap_or_default()
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for PullCache {
    fn drop(&mut self) {
        self.stop();
    }
}

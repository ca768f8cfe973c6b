//! Client tests over real HTTP: a small scripted server for auth, errors, mirrors and
//! redirects, and Debian's `docker-registry` (when installed) for the real protocol.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::digest::Digest;
use crate::image::{Manifest, Platform, media_type, parse_config, parse_manifest, select};
use crate::reference::Reference;

// ---------------------------------------------------------------- scripted server

struct Req {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then hang up (Content-Length stays the full length).
    cut_after: Option<usize>,
    /// Send this many body bytes, then send nothing for this long.
    stall: Option<(usize, Duration)>,
}

fn resp(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Resp {
    Resp {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
        cut_after: None,
        stall: None,
    }
}

/// Serves `data` for a request, honouring `Range: bytes=N-` with a 206.
fn ranged(req: &Req, data: &[u8]) -> Resp {
    let start = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match start {
        Some(n) if n <= data.len() => {
            let range = format!("bytes {n}-{}/{}", data.len().max(1) - 1, data.len());
            resp(206, &[("Content-Range", &range)], &data[n..])
        }
        _ => resp(200, &[], data),
    }
}

type Handler = dyn Fn(&Req, SocketAddr) -> Resp + Send + Sync;

/// Serves HTTP/1.1 on 127.0.0.1 (one thread per connection, `Connection: close`). TLS
/// handshakes (the client's HTTPS probe of a loopback registry) are hung up on.
fn serve(handler: impl Fn(&Req, SocketAddr) -> Resp + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler: Arc<Handler> = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || handle(stream, &*handler, addr));
        }
    });
    addr
}

fn handle(mut stream: TcpStream, handler: &Handler, addr: SocketAddr) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut chunk) else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            return; // TLS ClientHello
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len())
        + 4;
    let text = String::from_utf8_lossy(&buf[..head_end.min(buf.len())]).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let method = request_line
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let headers: HashMap<String, String> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let want = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end.min(buf.len())..].to_vec();
    while body.len() < want {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let r = handler(
        &Req {
            method,
            path,
            headers,
            body,
        },
        addr,
    );
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        r.body.len()
    );
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    if let Some(n) = r.cut_after {
        let _ = stream.write_all(&r.body[..n.min(r.body.len())]);
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    if let Some((n, pause)) = r.stall {
        let _ = stream.write_all(&r.body[..n.min(r.body.len())]);
        let _ = stream.flush();
        std::thread::sleep(pause);
        return;
    }
    let _ = stream.write_all(&r.body);
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config.json in a temp dir (so the machine's own ~/.docker/config.json never matters).
fn docker_config(json: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, json).unwrap();
    (dir, path)
}

/// Retries without real waiting.
fn fast_retry(retries: u32) -> RetryPolicy {
    RetryPolicy {
        retries,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn test_config(config_path: &Path, mirrors: &[(&str, Vec<String>)]) -> RegistryConfig {
    RegistryConfig {
        mirrors: mirrors
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        docker_config: Some(config_path.to_path_buf()),
        certs_dirs: Vec::new(),
        retry: fast_retry(2),
        ..Default::default()
    }
}

fn client_with(config_path: &Path, mirrors: &[(&str, Vec<String>)]) -> RegistryClient {
    RegistryClient::new(test_config(config_path, mirrors)).unwrap()
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn test_manifest() -> Vec<u8> {
    let config = Digest::of(b"{}");
    let layer = Digest::of(b"layer");
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[{{"mediaType":"{}","digest":"{layer}","size":5}}]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        media_type::OCI_LAYER_TAR_GZIP
    )
    .into_bytes()
}

async fn collect(mut stream: BlobStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn bearer_token_is_fetched_with_credentials_and_cached() {
    let token_calls = Arc::new(AtomicUsize::new(0));
    let calls = token_calls.clone();
    let body = test_manifest();
    let digest = Digest::of(&body).to_string();
    let addr = serve(move |req, addr| {
        if req.path.starts_with("/token?") {
            calls.fetch_add(1, Ordering::SeqCst);
            let ok_query = req.path.contains("service=svc")
                && req.path.contains("scope=repository%3Ar%2Fapp%3Apull");
            // base64("user:pw")
            if !ok_query || req.header("authorization") != Some("Basic dXNlcjpwdw==") {
                return resp(401, &[], r#"{"details":"bad"}"#);
            }
            return resp(
                200,
                &[("Content-Type", "application/json")],
                r#"{"access_token":"tok-1","expires_in":300}"#,
            );
        }
        if req.path == "/v2/r/app/manifests/t" || req.path.starts_with("/v2/r/app/blobs/") {
            if req.header("authorization") != Some("Bearer tok-1") {
                let challenge = format!(
                    r#"Bearer realm="http://{addr}/token",service="svc",scope="repository:r/app:pull""#
                );
                return resp(
                    401,
                    &[("WWW-Authenticate", &challenge)],
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
            }
            if req.path.starts_with("/v2/r/app/blobs/") {
                return resp(200, &[], "layer");
            }
            return resp(
                200,
                &[
                    ("Content-Type", media_type::OCI_MANIFEST),
                    ("Docker-Content-Digest", &digest),
                ],
                body.clone(),
            );
        }
        resp(404, &[], "")
    });
    let (_dir, cfg) = docker_config(&format!(
        r#"{{"auths":{{"http://{addr}":{{"auth":"dXNlcjpwdw=="}}}}}}"#
    ));
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{addr}/r/app:t"));
    let m = client.fetch_manifest(&r).await.unwrap();
    assert_eq!(m.bytes, test_manifest());
    assert_eq!(m.media_type, media_type::OCI_MANIFEST);
    assert!(matches!(
        parse_manifest(&m.bytes, &m.media_type).unwrap(),
        Manifest::Image(_)
    ));
    client.fetch_manifest(&r).await.unwrap();
    let blob = client.fetch_blob(&r, &Digest::of(b"layer")).await.unwrap();
    assert_eq!(collect(blob).await, b"layer");
    assert_eq!(token_calls.load(Ordering::SeqCst), 1, "the token is cached");

    // Without credentials the token server refuses, and the error says so.
    let (_dir2, empty) = docker_config("{}");
    let err = client_with(&empty, &[])
        .fetch_manifest(&r)
        .await
        .unwrap_err();
    let msg = err.to_string();
    // The error names the registry to log in to; the CLI words the command.
    assert!(
        matches!(&err, RegistryError::Unauthorized { registry, .. } if *registry == addr.to_string()),
        "{msg}"
    );
    assert!(
        msg.contains("HTTP 401")
            && msg.contains("none were found")
            && !msg.contains("strata login"),
        "{msg}"
    );
    assert!(!msg.contains("dXNlcjpwdw"), "{msg}");
}

#[tokio::test]
async fn basic_auth_and_unauthorized() {
    let addr = serve(|req, _| {
        if req.header("authorization") == Some("Basic YTpi") {
            return resp(200, &[], "blob");
        }
        resp(
            401,
            &[("WWW-Authenticate", r#"Basic realm="Registry Realm""#)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#,
        )
    });
    let (_dir, cfg) = docker_config(&format!(r#"{{"auths":{{"{addr}":{{"auth":"YTpi"}}}}}}"#));
    let r = reference(&format!("{addr}/x:latest"));
    let d = Digest::of(b"blob");
    assert_eq!(
        client_with(&cfg, &[])
            .fetch_blob_bytes(&r, &d, 4, 100)
            .await
            .unwrap(),
        b"blob"
    );

    let (_dir2, wrong) = docker_config(&format!(r#"{{"auths":{{"{addr}":{{"auth":"YTpj"}}}}}}"#));
    let err = client_with(&wrong, &[])
        .fetch_blob_bytes(&r, &d, 4, 100)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, RegistryError::Unauthorized { registry, .. } if *registry == addr.to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("the credentials for {addr} were refused"))
            && msg.contains("UNAUTHORIZED: authentication required")
            && !msg.contains("strata login"),
        "{msg}"
    );

    let (_dir3, none) = docker_config("{}");
    let err = client_with(&none, &[])
        .fetch_blob_bytes(&r, &d, 4, 100)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("none were found"), "{err}");

    // A credential helper that is not installed: the error names it.
    let (_dir4, helper) = docker_config(&format!(
        r#"{{"credHelpers":{{"{addr}":"strata-test-missing"}}}}"#
    ));
    let err = client_with(&helper, &[])
        .fetch_blob_bytes(&r, &d, 4, 100)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("docker-credential-strata-test-missing is not installed"),
        "{err}"
    );
}

#[tokio::test]
async fn registry_errors_are_worded() {
    let addr = serve(|req, _| match req.path.as_str() {
        "/v2/a/b/manifests/limited" => resp(
            429,
            &[("Retry-After", "3600")],
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#,
        ),
        "/v2/a/b/manifests/denied" => resp(
            403,
            &[],
            r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
        ),
        "/v2/a/b/manifests/boom" => resp(
            500,
            &[],
            "<html><body>Internal   Server\nError</body></html>",
        ),
        "/v2/a/b/manifests/gone" => resp(404, &[], ""),
        "/v2/a/b/manifests/unsupported" => resp(
            405,
            &[],
            r#"{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}"#,
        ),
        "/v2/a/b/manifests/schema1" => resp(
            200,
            &[("Content-Type", media_type::DOCKER_SCHEMA1_SIGNED_MANIFEST)],
            r#"{"schemaVersion":1,"name":"a/b","fsLayers":[],"signatures":[]}"#,
        ),
        "/v2/a/b/manifests/baddigest" => resp(
            200,
            &[
                ("Content-Type", media_type::OCI_MANIFEST),
                (
                    "Docker-Content-Digest",
                    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                ),
            ],
            test_manifest(),
        ),
        p if p.starts_with("/v2/a/b/manifests/sha256:") => resp(200, &[], test_manifest()),
        p if p.starts_with("/v2/a/b/blobs/") => resp(200, &[], "0123456789"),
        _ => resp(
            404,
            &[],
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
        ),
    });
    let (_dir, cfg) = docker_config("{}");
    let client = client_with(&cfg, &[]);
    let fetch = |tag: &str| {
        let client = client.clone();
        let r = reference(&format!("{addr}/a/b:{tag}"));
        async move { client.fetch_manifest(&r).await.unwrap_err() }
    };

    let err = fetch("limited").await;
    assert!(
        matches!(err, RegistryError::TooManyRequests { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("or log in for a higher limit"), "{msg}");
    assert!(
        msg.contains("Retry-After: 3600; the limit resets at ")
            && msg.contains(" GMT")
            && msg.contains("TOOMANYREQUESTS: You have reached"),
        "{msg}"
    );
    let err = fetch("denied").await;
    assert!(
        matches!(err, RegistryError::Denied { .. }) && err.to_string().contains("DENIED"),
        "{err}"
    );
    let err = fetch("boom").await;
    assert!(
        matches!(err, RegistryError::Http { status: 500, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Internal Server Error"), "{err}");
    let err = fetch("gone").await;
    assert_eq!(
        err.to_string(),
        format!("manifest unknown: {addr}/a/b:gone not found")
    );
    let err = fetch("unsupported").await;
    assert!(
        matches!(err, RegistryError::Unsupported { .. })
            && err
                .to_string()
                .contains("the registry does not support this operation"),
        "{err}"
    );
    let err = fetch("schema1").await;
    assert!(
        err.to_string()
            .contains("unsupported manifest format (Docker schema 1)"),
        "{err}"
    );
    let err = fetch("baddigest").await;
    assert!(
        matches!(
            err,
            RegistryError::DigestMismatch {
                what: "manifest",
                ..
            }
        ),
        "{err}"
    );
    let err = client
        .fetch_manifest(&reference(&format!("{addr}/other/repo:x")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NameUnknown { .. })
            && err.to_string().contains("NAME_UNKNOWN"),
        "{err}"
    );

    // By digest, the content must hash to the digest asked for.
    let r = reference(&format!("{addr}/a/b"));
    let good = Digest::of(&test_manifest());
    assert_eq!(
        client
            .fetch_manifest_by_digest(&r, &good)
            .await
            .unwrap()
            .digest,
        good
    );
    let err = client
        .fetch_manifest_by_digest(&r, &Digest::of(b"other"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let pinned = reference(&format!("{addr}/a/b@{}", Digest::of(b"other")));
    assert!(matches!(
        client.fetch_manifest(&pinned).await,
        Err(RegistryError::DigestMismatch { .. })
    ));

    // Blob size and limit checks.
    let d = Digest::of(b"0123456789");
    assert_eq!(
        client.fetch_blob_bytes(&r, &d, 10, 10).await.unwrap(),
        b"0123456789"
    );
    let err = client.fetch_blob_bytes(&r, &d, 10, 9).await.unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge { .. }), "{err}");
    let err = client.fetch_blob_bytes(&r, &d, 5, 100).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::SizeMismatch { expected: 5, .. }),
        "{err}"
    );
    let err = client.fetch_blob_bytes(&r, &d, 11, 100).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::SizeMismatch {
                expected: 11,
                actual: 10,
                ..
            }
        ),
        "{err}"
    );
    let err = client
        .fetch_blob_bytes(&r, &Digest::of(b"x"), 10, 100)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { what: "blob", .. }),
        "{err}"
    );
}

#[tokio::test]
async fn mirrors_fall_back_and_the_working_endpoint_is_remembered() {
    let broken_hits = Arc::new(AtomicUsize::new(0));
    let hits = broken_hits.clone();
    let broken = serve(move |_, _| {
        hits.fetch_add(1, Ordering::SeqCst);
        resp(503, &[], "mirror down")
    });
    let upstream = serve(|req, _| match req.path.as_str() {
        "/v2/library/app/manifests/latest" => resp(
            200,
            &[("Content-Type", media_type::OCI_MANIFEST)],
            test_manifest(),
        ),
        p if p.starts_with("/v2/library/app/blobs/") => resp(200, &[], "layer"),
        _ => resp(404, &[], ""),
    });
    let (_dir, cfg) = docker_config("{}");
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let registry = upstream.to_string();
    let client = client_with(
        &cfg,
        &[(
            registry.as_str(),
            vec![dead.clone(), format!("http://{broken}")],
        )],
    );
    let r = reference(&format!("{registry}/library/app"));
    client.fetch_manifest(&r).await.unwrap();
    let before = broken_hits.load(Ordering::SeqCst);
    assert!(before >= 1);
    assert_eq!(
        collect(client.fetch_blob(&r, &Digest::of(b"layer")).await.unwrap()).await,
        b"layer"
    );
    assert_eq!(
        broken_hits.load(Ordering::SeqCst),
        before,
        "blobs go to the endpoint that worked"
    );

    // A working mirror serves the same repository path; the registry is never asked.
    let client = client_with(&cfg, &[("docker.io", vec![format!("http://{upstream}")])]);
    let hub = reference("app");
    assert_eq!(
        client.fetch_manifest(&hub).await.unwrap().bytes,
        test_manifest()
    );

    // Nothing answers: every URL tried is named.
    let port = dead_port();
    let err = client
        .fetch_manifest(&reference(&format!("127.0.0.1:{port}/x")))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{msg}");
    assert!(
        msg.contains(&format!("https://127.0.0.1:{port}/v2/x/manifests/latest")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("http://127.0.0.1:{port}/v2/x/manifests/latest")),
        "{msg}"
    );
}

#[tokio::test]
async fn a_registry_never_reached_fails_without_retries() {
    let (_dir, cfg) = docker_config("{}");
    let mut config = test_config(&cfg, &[]);
    // Retries long enough that any one of them would show.
    config.retry = RetryPolicy {
        retries: 5,
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(2),
    };
    let client = RegistryClient::new(config).unwrap();
    let port = dead_port();
    let started = std::time::Instant::now();
    let err = client
        .fetch_manifest(&reference(&format!("127.0.0.1:{port}/x")))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no retry: {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{msg}");
    assert!(msg.contains("onnection refused"), "the reason: {msg}");
}

#[tokio::test]
async fn a_registry_that_answered_is_retried_when_it_refuses() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler: Arc<Handler> = Arc::new(|_, _| {
        resp(
            200,
            &[("Content-Type", media_type::OCI_MANIFEST)],
            test_manifest(),
        )
    });
    // The registry answers once, is gone for a while (a restart: refused), then answers again.
    std::thread::spawn(move || {
        // The client's HTTPS probe (hung up on), then its plain HTTP request.
        for _ in 0..2 {
            if let Ok((stream, _)) = listener.accept() {
                handle(stream, &*handler, addr);
            }
        }
        drop(listener);
        std::thread::sleep(Duration::from_millis(300));
        let Ok(listener) = TcpListener::bind(addr) else {
            return;
        };
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || handle(stream, &*handler, addr));
        }
    });
    let (_dir, cfg) = docker_config("{}");
    let mut config = test_config(&cfg, &[]);
    config.retry = RetryPolicy {
        retries: 6,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
    };
    let client = RegistryClient::new(config).unwrap();
    let r = reference(&format!("{addr}/a/b:t"));
    assert_eq!(
        client.fetch_manifest(&r).await.unwrap().bytes,
        test_manifest()
    );
    // Refused now, but it answered before: retried until it is back.
    assert_eq!(
        client.fetch_manifest(&r).await.unwrap().bytes,
        test_manifest()
    );
}

#[tokio::test]
async fn cross_host_redirects_drop_authorization() {
    let storage_saw_auth = Arc::new(AtomicUsize::new(0));
    let saw = storage_saw_auth.clone();
    let storage = serve(move |req, _| {
        if req.header("authorization").is_some() {
            saw.fetch_add(1, Ordering::SeqCst);
        }
        resp(200, &[], "layer")
    });
    let registry = serve(move |req, _| {
        if req.header("authorization") != Some("Basic YTpi") {
            return resp(401, &[("WWW-Authenticate", r#"Basic realm="r""#)], "");
        }
        resp(
            307,
            &[("Location", &format!("http://{storage}/data?sig=1"))],
            "",
        )
    });
    let (_dir, cfg) = docker_config(&format!(
        r#"{{"auths":{{"{registry}":{{"auth":"YTpi"}}}}}}"#
    ));
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{registry}/x"));
    let stream = client.fetch_blob(&r, &Digest::of(b"layer")).await.unwrap();
    assert_eq!(stream.content_length(), Some(5));
    assert_eq!(collect(stream).await, b"layer");
    assert_eq!(storage_saw_auth.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------- docker-registry

const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// A `docker-registry serve` on a free loopback port, killed on drop.
struct LocalRegistry {
    child: Child,
    addr: String,
    /// `http(s)://addr`
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalRegistry {
    /// Starts a registry; with `tls`, on HTTPS with a fresh self-signed certificate.
    fn start(tls: bool) -> Option<LocalRegistry> {
        if !Path::new(DOCKER_REGISTRY).exists() {
            eprintln!(
                "skipping: {DOCKER_REGISTRY} is not installed (apt-get install docker-registry)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = dead_port();
        let addr = format!("127.0.0.1:{port}");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let made = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                ])
                .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !made.is_ok_and(|s| s.success()) {
                eprintln!("skipping: openssl could not make a test certificate");
                return None;
            }
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut registry = LocalRegistry {
            child,
            base: format!("{}://{addr}", if tls { "https" } else { "http" }),
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&registry.addr).is_err() {
            if Instant::now() > deadline || registry.child.try_wait().ok().flatten().is_some() {
                panic!("docker-registry did not start on {}", registry.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(registry)
    }

    async fn push_blob(&self, http: &reqwest::Client, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::of(data);
        let start = http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status().as_u16(), 202);
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = http
            .put(format!("{location}{sep}digest={digest}"))
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "{:?}", put.text().await);
        digest
    }

    async fn push_manifest(
        &self,
        http: &reqwest::Client,
        repo: &str,
        tag: &str,
        media_type: &str,
        body: &[u8],
    ) {
        let put = http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "{:?}", put.text().await);
    }
}

#[tokio::test]
async fn docker_registry_round_trip() {
    let Some(registry) = LocalRegistry::start(false) else {
        return;
    };
    let http = reqwest::Client::new();
    let repo = "test/app";
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:d4fc045c9e3a848011de66f34b81f052d4f2c15a17bb196d637e526349601820"]}}"#;
    let layer = vec![0x1fu8, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    let config_digest = registry.push_blob(&http, repo, config).await;
    let layer_digest = registry.push_blob(&http, repo, &layer).await;
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{layer_digest}","size":{}}}]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        config.len(),
        media_type::OCI_LAYER_TAR_GZIP,
        layer.len()
    );
    registry
        .push_manifest(
            &http,
            repo,
            "v1",
            media_type::OCI_MANIFEST,
            image.as_bytes(),
        )
        .await;
    let image_digest = Digest::of(image.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{image_digest}","size":{},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},{{"mediaType":"{}","digest":"{image_digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        media_type::OCI_INDEX,
        media_type::OCI_MANIFEST,
        image.len(),
        media_type::OCI_MANIFEST,
        image.len()
    );
    registry
        .push_manifest(
            &http,
            repo,
            "multi",
            media_type::OCI_INDEX,
            index.as_bytes(),
        )
        .await;

    let (_dir, cfg) = docker_config("{}");
    // A dead mirror first: the client warns and falls back to the registry.
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let client = client_with(&cfg, &[(registry.addr.as_str(), vec![dead])]);
    let r = reference(&format!("{}/{repo}:v1", registry.addr));

    // By tag (verified against Docker-Content-Digest, which this registry sends).
    let m = client.fetch_manifest(&r).await.unwrap();
    assert_eq!(m.bytes, image.as_bytes());
    assert_eq!(m.digest, image_digest);
    assert_eq!(m.media_type, media_type::OCI_MANIFEST);
    let Manifest::Image(parsed) = parse_manifest(&m.bytes, &m.media_type).unwrap() else {
        panic!("not an image")
    };

    // By digest.
    let pinned = reference(&format!("{}/{repo}@{image_digest}", registry.addr));
    assert_eq!(
        client.fetch_manifest(&pinned).await.unwrap().digest,
        image_digest
    );

    // An index, a platform pick, the child by digest.
    let multi = reference(&format!("{}/{repo}:multi", registry.addr));
    let idx = client.fetch_manifest(&multi).await.unwrap();
    assert_eq!(idx.media_type, media_type::OCI_INDEX);
    let Manifest::Index(list) = parse_manifest(&idx.bytes, &idx.media_type).unwrap() else {
        panic!("not an index")
    };
    let chosen = select(&list.manifests, &Platform::parse("linux/arm64").unwrap()).unwrap();
    let child = client
        .fetch_manifest_by_digest(&multi, &chosen.digest)
        .await
        .unwrap();
    assert_eq!(child.bytes, image.as_bytes());

    // Config and layer.
    let bytes = client
        .fetch_blob_bytes(&r, &parsed.config.digest, parsed.config.size, 1 << 20)
        .await
        .unwrap();
    assert_eq!(parse_config(&bytes).unwrap().architecture, "amd64");
    let stream = client
        .fetch_blob(&r, &parsed.layers[0].digest)
        .await
        .unwrap();
    assert_eq!(stream.content_length(), Some(layer.len() as u64));
    assert_eq!(collect(stream).await, layer);

    // Registry errors come through with their codes.
    let err = client
        .fetch_manifest(&reference(&format!("{}/{repo}:nope", registry.addr)))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::ManifestUnknown { .. }),
        "{msg}"
    );
    assert!(
        msg.starts_with(&format!(
            "manifest unknown: {}/{repo}:nope not found",
            registry.addr
        )),
        "{msg}"
    );
    assert!(msg.contains("MANIFEST_UNKNOWN"), "{msg}");
    let err = client
        .fetch_manifest_by_digest(&r, &Digest::of(b"missing"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::ManifestUnknown { .. }),
        "{err}"
    );
    let err = client
        .fetch_blob(&r, &Digest::of(b"missing"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::BlobUnknown { .. }), "{err}");
    let err = client
        .fetch_manifest(&reference(&format!("{}/no/such:v1", registry.addr)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("NAME_UNKNOWN") || err.to_string().contains("MANIFEST_UNKNOWN"),
        "{err}"
    );
}

#[tokio::test]
async fn docker_registry_over_https_without_verification() {
    let Some(registry) = LocalRegistry::start(true) else {
        return;
    };
    let (_dir, cfg) = docker_config("{}");
    // Installs the rustls provider the push client below needs too.
    let client = client_with(&cfg, &[]);
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let repo = "tls/app";
    let layer = registry.push_blob(&http, repo, b"layer").await;
    let config = registry.push_blob(&http, repo, b"{}").await;
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":2}},"layers":[{{"mediaType":"{}","digest":"{layer}","size":5}}]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        media_type::OCI_LAYER_TAR_GZIP
    );
    registry
        .push_manifest(
            &http,
            repo,
            "v1",
            media_type::OCI_MANIFEST,
            image.as_bytes(),
        )
        .await;

    // Loopback is insecure: HTTPS is tried first, without certificate verification.
    let r = reference(&format!("{}/{repo}:v1", registry.addr));
    let m = client.fetch_manifest(&r).await.unwrap();
    assert_eq!(m.bytes, image.as_bytes());
    let blob = client.fetch_blob(&r, &layer).await.unwrap();
    assert!(blob.url().starts_with("https://"), "{}", blob.url());
    assert_eq!(collect(blob).await, b"layer");

    // An explicit https:// mirror for a loopback host skips verification too.
    let mirrored = client_with(&cfg, &[("mirrored.example", vec![registry.base.clone()])]);
    let r = reference(&format!("mirrored.example/{repo}:v1"));
    assert_eq!(
        mirrored.fetch_manifest(&r).await.unwrap().bytes,
        image.as_bytes()
    );
}

// ---------------------------------------------------------------- auth, retries, resume

/// A registry that wants bearer tokens from its own `/token`; `valid` says which tokens it
/// accepts right now; blobs are served from `blob` (with Range support).
fn token_registry(
    token_calls: Arc<AtomicUsize>,
    token_for_call: impl Fn(usize, &Req) -> Option<String> + Send + Sync + 'static,
    valid: impl Fn(&str) -> bool + Send + Sync + 'static,
    blob: Vec<u8>,
) -> SocketAddr {
    serve(move |req, addr| {
        if req.path.starts_with("/token") {
            let n = token_calls.fetch_add(1, Ordering::SeqCst);
            // Slow enough that concurrent 401s overlap.
            std::thread::sleep(Duration::from_millis(150));
            return match token_for_call(n, req) {
                Some(t) => resp(
                    200,
                    &[("Content-Type", "application/json")],
                    format!(r#"{{"token":"{t}","expires_in":300}}"#),
                ),
                None => resp(401, &[], r#"{"details":"refused"}"#),
            };
        }
        let ok = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(&valid);
        if !ok {
            let challenge = format!(r#"Bearer realm="http://{addr}/token",service="svc""#);
            return resp(401, &[("WWW-Authenticate", &challenge)], "");
        }
        ranged(req, &blob)
    })
}

#[tokio::test]
async fn concurrent_401s_share_one_token_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let blob = b"shared token".to_vec();
    let addr = token_registry(
        calls.clone(),
        |_, _| Some("tok".to_string()),
        |t| t == "tok",
        blob.clone(),
    );
    let (_dir, cfg) = docker_config("{}");
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{addr}/x/y"));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (client, r) = (client.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            collect(client.fetch_blob(&r, &Digest::of(b"x")).await.unwrap()).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), blob);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one token request for all");
}

#[tokio::test]
async fn a_refused_token_is_refreshed() {
    let calls = Arc::new(AtomicUsize::new(0));
    // The registry accepts the first token once, then no more (as if it expired early).
    let uses = AtomicUsize::new(0);
    let addr = token_registry(
        calls.clone(),
        |n, _| Some(format!("tok-{n}")),
        move |t| t == "tok-1" || (t == "tok-0" && uses.fetch_add(1, Ordering::SeqCst) == 0),
        b"data".to_vec(),
    );
    let (_dir, cfg) = docker_config("{}");
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{addr}/x/y"));
    let d = Digest::of(b"data");
    assert_eq!(
        client.fetch_blob_bytes(&r, &d, 4, 10).await.unwrap(),
        b"data"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        client.fetch_blob_bytes(&r, &d, 4, 10).await.unwrap(),
        b"data"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "tok-0 refused, tok-1 fetched"
    );
    assert_eq!(
        client.fetch_blob_bytes(&r, &d, 4, 10).await.unwrap(),
        b"data"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "tok-1 is cached");
}

#[tokio::test]
async fn identity_tokens_use_the_oauth_post() {
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = token_registry(
        calls.clone(),
        |_, req| {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let ok = req.method == "POST"
                && req.header("content-type") == Some("application/x-www-form-urlencoded")
                && body.contains("grant_type=refresh_token")
                && body.contains("refresh_token=refresh-123")
                && body.contains("service=svc")
                && body.contains("scope=repository%3Ax%2Fy%3Apull")
                && body.contains("client_id=strata");
            ok.then(|| "from-refresh".to_string())
        },
        |t| t == "from-refresh",
        b"data".to_vec(),
    );
    let (_dir, cfg) = docker_config(&format!(
        r#"{{"auths":{{"{addr}":{{"auth":"dTo=","identitytoken":"refresh-123"}}}}}}"#
    ));
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{addr}/x/y"));
    let d = Digest::of(b"data");
    assert_eq!(
        client.fetch_blob_bytes(&r, &d, 4, 10).await.unwrap(),
        b"data"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let body = test_manifest();
    let addr = serve(move |_, _| match h.fetch_add(1, Ordering::SeqCst) {
        0 => resp(503, &[], "busy"),
        1 => resp(429, &[("Retry-After", "0")], ""),
        _ => resp(
            200,
            &[("Content-Type", media_type::OCI_MANIFEST)],
            body.clone(),
        ),
    });
    let (_dir, cfg) = docker_config("{}");
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{addr}/a/b:t"));
    assert_eq!(
        client.fetch_manifest(&r).await.unwrap().bytes,
        test_manifest()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Bounded: a registry that always fails gives its error after the retries.
    let always = Arc::new(AtomicUsize::new(0));
    let a = always.clone();
    let addr = serve(move |_, _| {
        a.fetch_add(1, Ordering::SeqCst);
        resp(502, &[], "bad gateway")
    });
    let err = client
        .fetch_manifest(&reference(&format!("{addr}/a/b:t")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { status: 502, .. }),
        "{err}"
    );
    assert_eq!(always.load(Ordering::SeqCst), 3, "1 try + 2 retries");
}

/// A blob server that misbehaves on the first requests as `fault` says (by request number).
fn faulty_blob_server(
    data: Vec<u8>,
    fault: impl Fn(usize, &Req, Resp) -> Resp + Send + Sync + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let ranges: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen = ranges.clone();
    let addr = serve(move |req, _| {
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push(req.header("range").map(str::to_string));
            seen.len() - 1
        };
        fault(n, req, ranged(req, &data))
    });
    (addr, ranges)
}

fn blob_data() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn interrupted_downloads_resume_with_range() {
    let data = blob_data();
    let (addr, ranges) = faulty_blob_server(data.clone(), |n, _, mut r| {
        if n < 2 {
            r.cut_after = Some(30_000);
        }
        r
    });
    let (_dir, cfg) = docker_config("{}");
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{addr}/x/y"));
    let d = Digest::of(&data);
    let stream = client.fetch_blob(&r, &d).await.unwrap();
    assert_eq!(stream.content_length(), Some(data.len() as u64));
    let got = collect(stream).await;
    assert!(got == data, "the reader sees the whole blob once");
    assert_eq!(
        *ranges.lock().unwrap(),
        [
            None,
            Some("bytes=30000-".to_string()),
            Some("bytes=60000-".to_string())
        ]
    );
    // fetch_blob_bytes resumes too, and verifies the digest over the whole blob.
    let (addr, _) = faulty_blob_server(data.clone(), |n, _, mut r| {
        if n == 0 {
            r.cut_after = Some(10);
        }
        r
    });
    let r = reference(&format!("{addr}/x/y"));
    assert_eq!(
        client
            .fetch_blob_bytes(&r, &d, data.len() as u64, 1 << 20)
            .await
            .unwrap(),
        data
    );
}

#[tokio::test]
async fn a_server_ignoring_range_has_the_start_skipped() {
    let data = blob_data();
    let (addr, ranges) = faulty_blob_server(data.clone(), {
        let data = data.clone();
        move |n, _, r| {
            let mut full = resp(200, &[], data.clone());
            if n == 0 {
                full.cut_after = Some(12_345);
            }
            let _ = r;
            full
        }
    });
    let (_dir, cfg) = docker_config("{}");
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{addr}/x/y"));
    let got = collect(client.fetch_blob(&r, &Digest::of(&data)).await.unwrap()).await;
    assert!(got == data);
    assert_eq!(ranges.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn stalled_downloads_are_detected_and_resumed() {
    let data = blob_data();
    let (addr, ranges) = faulty_blob_server(data.clone(), |n, _, mut r| {
        if n == 0 {
            r.stall = Some((40_000, Duration::from_secs(5)));
        }
        r
    });
    let (_dir, cfg) = docker_config("{}");
    let client = RegistryClient::new(RegistryConfig {
        stall_timeout: Duration::from_millis(300),
        ..test_config(&cfg, &[])
    })
    .unwrap();
    let r = reference(&format!("{addr}/x/y"));
    let start = Instant::now();
    let got = collect(client.fetch_blob(&r, &Digest::of(&data)).await.unwrap()).await;
    assert!(got == data);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(ranges.lock().unwrap()[1].as_deref(), Some("bytes=40000-"));
}

#[tokio::test]
async fn a_link_that_keeps_breaking_gives_a_clear_error() {
    let data = blob_data();
    let (addr, ranges) = faulty_blob_server(data.clone(), |_, _, mut r| {
        r.cut_after = Some(1000);
        r
    });
    let (_dir, cfg) = docker_config("{}");
    let client = client_with(&cfg, &[]);
    let r = reference(&format!("{addr}/x/y"));
    let mut stream = client.fetch_blob(&r, &Digest::of(&data)).await.unwrap();
    let mut got = 0;
    let err = loop {
        match stream.next_chunk().await {
            Some(Ok(c)) => got += c.len(),
            Some(Err(e)) => break e,
            None => panic!("the stream cannot end normally"),
        }
    };
    assert_eq!(got, 3000, "1 try + 2 retries, 1000 bytes each");
    let msg = err.to_string();
    assert!(
        matches!(err, RegistryError::Body { .. })
            && msg.contains("gave up after 3 attempts")
            && msg.contains("after 3000 of 100000 bytes"),
        "{msg}"
    );
    assert_eq!(ranges.lock().unwrap().len(), 3);
    assert!(stream.next_chunk().await.is_none());
}

//! Segmented fetch over real HTTP: a small server honouring `Range: bytes=A-B`, with faults.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::digest::Digest;
use crate::reference::Reference;

/// A request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    path: String,
    range: Option<String>,
}

/// An answer: status, extra headers, body; `cut_after` bytes then hang up; `pace`: the body
/// in 16 KiB pieces this far apart.
#[derive(Default)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut_after: Option<usize>,
    pace: Option<Duration>,
}

/// `data`, or the part `Range: bytes=A-B` (or `A-`) asks for.
fn ranged(range: Option<&str>, data: &[u8]) -> Answer {
    let span = range.and_then(|r| r.strip_prefix("bytes=")).and_then(|r| {
        let (a, b) = r.split_once('-')?;
        let a: usize = a.parse().ok()?;
        let b: usize = if b.is_empty() {
            data.len() - 1
        } else {
            b.parse::<usize>().ok()?.min(data.len() - 1)
        };
        (a <= b).then_some((a, b))
    });
    match span {
        Some((a, b)) => Answer {
            status: 206,
            headers: vec![(
                "Content-Range".into(),
                format!("bytes {a}-{b}/{}", data.len()),
            )],
            body: data[a..=b].to_vec(),
            ..Answer::default()
        },
        None => Answer {
            status: 200,
            body: data.to_vec(),
            ..Answer::default()
        },
    }
}

/// Log of requests, and how many answers were cut short by the client hanging up.
#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    /// Body bytes handed to the socket, over all answers.
    sent: AtomicUsize,
    /// Answers whose client went away before their end.
    abandoned: AtomicUsize,
}

/// Serves HTTP/1.1 on loopback, one thread per connection, `Connection: close`; `answer` gets
/// the request's number, path and `Range`.
fn serve(
    answer: impl Fn(usize, &str, Option<&str>) -> Answer + Send + Sync + 'static,
) -> (SocketAddr, Arc<Log>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Log::default());
    let answer = Arc::new(answer);
    let shared = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (answer, log) = (answer.clone(), shared.clone());
            std::thread::spawn(move || handle(stream, &*answer, &log));
        }
    });
    (addr, log)
}

fn handle(
    mut stream: TcpStream,
    answer: &(dyn Fn(usize, &str, Option<&str>) -> Answer + Send + Sync),
    log: &Log,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split(' ').nth(1).unwrap_or_default().to_string();
    let range = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.trim().to_string());
    let n = {
        let mut seen = log.seen.lock().unwrap();
        seen.push(Seen {
            path: path.clone(),
            range: range.clone(),
        });
        seen.len() - 1
    };
    let a = answer(n, &path, range.as_deref());
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        a.status,
        a.body.len()
    );
    for (k, v) in &a.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    if stream.write_all(out.as_bytes()).is_err() {
        return;
    }
    let body = &a.body[..a.cut_after.unwrap_or(a.body.len()).min(a.body.len())];
    let piece = if a.pace.is_some() { 16 << 10 } else { 1 << 20 };
    for part in body.chunks(piece) {
        if let Some(pause) = a.pace {
            std::thread::sleep(pause);
        }
        // Counted before it leaves: the client may be done before this thread runs again.
        log.sent.fetch_add(part.len(), Ordering::SeqCst);
        if stream.write_all(part).is_err() {
            log.abandoned.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    if a.cut_after.is_some() {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// 1 MiB of bytes that differ from segment to segment.
fn blob() -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Eight segments of 128 KiB for the 1 MiB blob, four at once.
fn client(retries: u32) -> (tempfile::TempDir, RegistryClient) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, "{}").unwrap();
    let client = RegistryClient::new(RegistryConfig {
        docker_config: Some(path),
        certs_dirs: Vec::new(),
        retry: RetryPolicy {
            retries,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        ranged: RangedFetch {
            connections: 4,
            segment_size: 128 << 10,
            threshold: 512 << 10,
        },
        ..Default::default()
    })
    .unwrap();
    (dir, client)
}

async fn fetch(client: &RegistryClient, addr: SocketAddr, data: &[u8]) -> (Vec<u8>, bool) {
    let r = Reference::parse(&format!("{addr}/x/y")).unwrap();
    let mut stream = client
        .fetch_blob_sized(&r, &Digest::of(data), data.len() as u64)
        .await
        .unwrap();
    let ranged = stream.is_ranged();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next_chunk().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    (out, ranged)
}

fn ranges(log: &Log) -> Vec<Option<String>> {
    let mut r: Vec<_> = log
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.range.clone())
        .collect();
    r.sort();
    r
}

/// The ranges of the blob's eight segments, and `extra`, sorted.
fn eighths(extra: Option<&str>) -> Vec<Option<String>> {
    let mut r: Vec<Option<String>> = (0..8u32)
        .map(|i| Some(format!("bytes={}-{}", i << 17, ((i + 1) << 17) - 1)))
        .chain(extra.map(|e| Some(e.to_string())))
        .collect();
    r.sort();
    r
}

fn some(ranges: &[&str]) -> Vec<Option<String>> {
    ranges.iter().map(|r| Some(r.to_string())).collect()
}

#[tokio::test]
async fn segments_come_in_order_and_whole() {
    let data = blob();
    let served = data.clone();
    // The first segment comes slowly: the others are spooled before the reader needs them.
    let (addr, log) = serve(move |_, _, range| {
        let mut a = ranged(range, &served);
        if range.is_some_and(|r| r.starts_with("bytes=0-")) {
            a.pace = Some(Duration::from_millis(2));
        }
        a
    });
    let (_dir, client) = client(2);
    let (got, is_ranged) = fetch(&client, addr, &data).await;
    assert!(is_ranged);
    assert!(got == data, "the reader sees the blob's bytes in order");
    assert_eq!(ranges(&log), eighths(None));
    assert_eq!(
        log.sent.load(Ordering::SeqCst),
        data.len(),
        "each byte once"
    );
}

#[tokio::test]
async fn small_blobs_stream_in_one_request() {
    let data = blob()[..300_000].to_vec();
    let served = data.clone();
    let (addr, log) = serve(move |_, _, range| ranged(range, &served));
    let (_dir, client) = client(2);
    let (got, is_ranged) = fetch(&client, addr, &data).await;
    assert!(!is_ranged);
    assert!(got == data);
    assert_eq!(ranges(&log), [None]);
}

#[tokio::test]
async fn a_server_ignoring_range_sends_the_blob_once() {
    let data = blob();
    let served = data.clone();
    let (addr, log) = serve(move |_, _, _| ranged(None, &served));
    let (_dir, client) = client(2);
    let (got, is_ranged) = fetch(&client, addr, &data).await;
    assert!(!is_ranged);
    assert!(got == data);
    assert_eq!(ranges(&log), some(&["bytes=0-131071"]));
    assert_eq!(log.sent.load(Ordering::SeqCst), data.len());
}

#[tokio::test]
async fn a_server_refusing_range_is_asked_once_without() {
    let data = blob();
    let served = data.clone();
    let (addr, log) = serve(move |_, _, range| match range {
        Some(_) => Answer {
            status: 416,
            ..Answer::default()
        },
        None => ranged(None, &served),
    });
    let (_dir, client) = client(2);
    let (got, _) = fetch(&client, addr, &data).await;
    assert!(got == data);
    let seen: Vec<_> = log
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.range.clone())
        .collect();
    assert_eq!(seen, [Some("bytes=0-131071".to_string()), None]);
    assert_eq!(log.sent.load(Ordering::SeqCst), data.len());
}

#[tokio::test]
async fn a_cut_segment_is_resumed_where_it_stopped() {
    let data = blob();
    let served = data.clone();
    let (addr, log) = serve(move |_, _, range| {
        let mut a = ranged(range, &served);
        if range == Some("bytes=262144-393215") {
            a.cut_after = Some(100_000);
        }
        a
    });
    let (_dir, client) = client(2);
    let (got, _) = fetch(&client, addr, &data).await;
    assert!(got == data);
    assert_eq!(ranges(&log), eighths(Some("bytes=362144-393215")));
    assert_eq!(
        log.sent.load(Ordering::SeqCst),
        data.len(),
        "each byte once"
    );
}

#[tokio::test]
async fn an_expired_redirect_is_asked_for_again() {
    let data = blob();
    let served = data.clone();
    // The blob host: each signature is good for two requests.
    let uses: Arc<Mutex<Vec<usize>>> = Arc::default();
    let counted = uses.clone();
    let (blob_host, host_log) = serve(move |_, path, range| {
        let sig = path
            .split_once("?sig=")
            .and_then(|(_, s)| s.parse::<usize>().ok());
        let mut uses = counted.lock().unwrap();
        match sig.and_then(|s| uses.get_mut(s)) {
            Some(n) if *n < 2 => {
                *n += 1;
                ranged(range, &served)
            }
            _ => Answer {
                status: 403,
                ..Answer::default()
            },
        }
    });
    let signed = uses.clone();
    let (registry, registry_log) = serve(move |_, path, _| {
        let mut uses = signed.lock().unwrap();
        uses.push(0);
        Answer {
            status: 307,
            headers: vec![(
                "Location".into(),
                format!("http://{blob_host}{path}?sig={}", uses.len() - 1),
            )],
            ..Answer::default()
        }
    });
    let (_dir, client) = client(2);
    let (got, is_ranged) = fetch(&client, registry, &data).await;
    assert!(is_ranged);
    assert!(got == data);
    let host = host_log.seen.lock().unwrap().clone();
    let asked = registry_log.seen.lock().unwrap().len();
    let signed = uses.lock().unwrap().len();
    // 8 segments, 2 per signature: the registry is asked again, not for each.
    assert!(
        asked >= 2 && asked < host.len(),
        "{asked} redirects, {host:#?}"
    );
    assert_eq!(signed, asked);
    assert!(
        host.len() > 8,
        "some requests met an expired URL: {host:#?}"
    );
    assert_eq!(
        host_log.sent.load(Ordering::SeqCst),
        data.len(),
        "each byte once"
    );
}

#[tokio::test]
async fn dropping_the_stream_stops_every_request() {
    let data = blob();
    let served = data.clone();
    let (addr, log) = serve(move |_, _, range| {
        let mut a = ranged(range, &served);
        a.pace = Some(Duration::from_millis(50));
        a
    });
    let (_dir, client) = client(2);
    let r = Reference::parse(&format!("{addr}/x/y")).unwrap();
    let mut stream = client
        .fetch_blob_sized(&r, &Digest::of(&data), data.len() as u64)
        .await
        .unwrap();
    assert!(stream.next_chunk().await.is_some_and(|c| c.is_ok()));
    // Wait until the other segments were asked for too, then stop reading.
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.seen.lock().unwrap().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log.seen.lock().unwrap().len(), 4);
    drop(stream);
    // Every answer notices its client gone (each would take ~0.8 s more to finish).
    while log.abandoned.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log.abandoned.load(Ordering::SeqCst), 4);
    assert!(log.sent.load(Ordering::SeqCst) < data.len());
}

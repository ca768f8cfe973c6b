//! A logging HTTP proxy in front of a registry: records every request (method, path, `Range`,
//! status, body bytes sent to the client) and can mistreat `Range` requests (strip the header
//! so the registry answers 200 with the whole blob, or answer 416 itself), cut one ranged
//! response mid-way, cap each connection's bandwidth, and answer blob GETs with a `307` to a
//! "blob host" of its own (another port, as a CDN) whose signed URLs expire after a few
//! uses. One request per connection (`Connection: close` is added), so each request is also
//! one connection.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Forward requests without their `Range` header (the registry answers 200, whole).
    pub strip_range: bool,
    /// Answer every request with a `Range` header 416 without forwarding it.
    pub refuse_range: bool,
    /// Cut the first response to a request for a range starting past byte 0 after half its
    /// body.
    pub cut_one_chunk: bool,
    /// Bytes per second per connection (`None`: no cap).
    pub rate: Option<u64>,
    /// Answer blob GETs with `307` to the blob host; each redirect URL (`?sig=N`) is good for
    /// this many requests, then answers 403 (`Some(0)`: no redirect).
    pub redirect_uses: Option<usize>,
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The `Range` header the client sent.
    pub range: Option<String>,
    /// Whether it carried an `Authorization` header.
    pub authorized: bool,
    pub status: u16,
    /// Body bytes sent to the client.
    pub body_bytes: u64,
    /// Whether the proxy cut the response.
    pub cut: bool,
    /// Served by the blob host (a redirect target), not the registry side.
    pub blob_host: bool,
}

/// The running proxy (its threads live as long as the test process).
pub struct LogProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Logged>>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    cut_done: Mutex<bool>,
    /// The blob host's address, when redirecting.
    blob_host: Mutex<Option<SocketAddr>>,
    /// Redirect URLs handed out so far, and the uses of each.
    sigs: Mutex<Vec<usize>>,
    /// Connections being relayed.
    active: AtomicUsize,
}

impl LogProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, behaviour: Behaviour) -> LogProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut listeners = vec![(listener, false)];
        if behaviour.redirect_uses.is_some() {
            let blob = TcpListener::bind("127.0.0.1:0").expect("bind the blob host");
            *shared.blob_host.lock().expect("proxy state") =
                Some(blob.local_addr().expect("blob host address"));
            listeners.push((blob, true));
        }
        for (listener, blob_host) in listeners {
            let (log2, shared2) = (log.clone(), shared.clone());
            std::thread::spawn(move || {
                for client in listener.incoming().flatten() {
                    let (log, shared) = (log2.clone(), shared2.clone());
                    shared.active.fetch_add(1, Ordering::SeqCst);
                    std::thread::spawn(move || {
                        let entry = relay(client, upstream, behaviour, &shared, blob_host);
                        if let Some(entry) = entry {
                            log.lock().expect("proxy log").push(entry);
                        }
                        shared.active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        }
        LogProxy { addr, log, shared }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every request seen so far, once no connection is being relayed any more (the client
    /// that made them has exited; its last connections close with it).
    pub fn log(&self) -> Vec<Logged> {
        for _ in 0..1000 {
            if self.shared.active.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.log.lock().expect("proxy log").clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear(&self) {
        self.log.lock().expect("proxy log").clear();
    }
}

/// Reads up to the end of an HTTP head; returns (head, bytes read past it).
fn read_head(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Writes `data` at most `rate` bytes per second (measured from `started`).
fn send_paced(
    out: &mut TcpStream,
    data: &[u8],
    rate: Option<u64>,
    sent: &mut u64,
    started: Instant,
) -> std::io::Result<()> {
    for piece in data.chunks(16 * 1024) {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(*sent as f64 / rate as f64);
            let elapsed = started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        out.write_all(piece)?;
        *sent += piece.len() as u64;
    }
    Ok(())
}

fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    b: Behaviour,
    shared: &Shared,
    blob_host: bool,
) -> Option<Logged> {
    let mut first_byte = [0u8; 1];
    if client.peek(&mut first_byte).ok()? == 1 && first_byte[0] == 0x16 {
        // A TLS ClientHello (the HTTPS probe of a loopback registry): logged, hung up on.
        let _ = client.shutdown(Shutdown::Both);
        return Some(Logged {
            method: "TLS".to_string(),
            path: String::new(),
            range: None,
            authorized: false,
            status: 0,
            body_bytes: 0,
            cut: false,
            blob_host: false,
        });
    }
    let (mut head, body_start) = read_head(&mut client)?;
    let first = head.lines().next()?.to_string();
    let mut parts = first.split(' ');
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let range = header(&head, "range").map(str::to_string);
    let authorized = header(&head, "authorization").is_some();
    let mut entry = Logged {
        method,
        path,
        range: range.clone(),
        authorized,
        status: 0,
        body_bytes: 0,
        cut: false,
        blob_host: false,
    };
    entry.blob_host = blob_host;
    if blob_host {
        // `PATH?sig=N`: good for `redirect_uses` requests.
        let (bare, sig) = entry.path.split_once("?sig=")?;
        let sig: usize = sig.parse().ok()?;
        let fresh = {
            let mut sigs = shared.sigs.lock().expect("proxy state");
            let uses = sigs.get_mut(sig)?;
            *uses += 1;
            *uses <= b.redirect_uses.unwrap_or(0)
        };
        if !fresh {
            let _ = client.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            entry.status = 403;
            return Some(entry);
        }
        head = head.replacen(&entry.path, bare, 1);
    } else if let Some(host) = *shared.blob_host.lock().expect("proxy state")
        && entry.method == "GET"
        && entry.path.contains("/blobs/")
    {
        let sig = {
            let mut sigs = shared.sigs.lock().expect("proxy state");
            sigs.push(0);
            sigs.len() - 1
        };
        let answer = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{host}{}?sig={sig}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            entry.path
        );
        let _ = client.write_all(answer.as_bytes());
        entry.status = 307;
        return Some(entry);
    }
    if b.refuse_range && range.is_some() {
        let _ = client.write_all(
            b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        entry.status = 416;
        return Some(entry);
    }
    let mut forwarded = String::new();
    for (i, line) in head.trim_end().lines().enumerate() {
        let name = line.split(':').next().unwrap_or("").trim();
        if i > 0
            && (name.eq_ignore_ascii_case("connection")
                || (b.strip_range && name.eq_ignore_ascii_case("range")))
        {
            continue;
        }
        forwarded.push_str(line);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).ok()?;
    up.write_all(forwarded.as_bytes()).ok()?;
    up.write_all(&body_start).ok()?;
    let _ = up.shutdown(Shutdown::Write);
    let (resp_head, mut body) = read_head(&mut up)?;
    entry.status = resp_head.split(' ').nth(1)?.parse().ok()?;
    let started = Instant::now();
    client.write_all(resp_head.as_bytes()).ok()?;
    let length: Option<u64> = header(&resp_head, "content-length").and_then(|v| v.parse().ok());
    let ranged_past_zero = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<u64>().ok())
        .is_some_and(|s| s > 0);
    let cut_at = (b.cut_one_chunk && ranged_past_zero && entry.status == 206)
        .then(|| {
            let mut done = shared.cut_done.lock().expect("proxy state");
            let first = !*done;
            *done = true;
            first.then(|| length.unwrap_or(0) / 2)
        })
        .flatten();
    let mut sent = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if !body.is_empty() {
            let mut data = std::mem::take(&mut body);
            if let Some(cut) = cut_at {
                let room = cut.saturating_sub(sent) as usize;
                if data.len() >= room {
                    data.truncate(room);
                    let _ = send_paced(&mut client, &data, b.rate, &mut sent, started);
                    entry.body_bytes = sent;
                    entry.cut = true;
                    let _ = client.shutdown(Shutdown::Both);
                    return Some(entry);
                }
            }
            if send_paced(&mut client, &data, b.rate, &mut sent, started).is_err() {
                break;
            }
        }
        match up.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    entry.body_bytes = sent;
    let _ = client.shutdown(Shutdown::Write);
    Some(entry)
}

//! A fault-injecting HTTP proxy in front of a registry: every blob response (`GET
//! .../blobs/sha256:...`) is cut off mid-body the first `cuts` times it is asked for, one
//! blob response stalls (sends nothing more for a while) once, and optionally the first
//! resumed request loses its `Range` header (so the registry answers with the whole blob).
//! Everything else passes through. One request per connection (`Connection: close` is added).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to blob responses.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Cut each blob's first this many responses after a third of their body.
    pub cuts: usize,
    /// After the cuts, stall one response (of any blob) once for `stall_for`.
    pub stall_once: bool,
    /// How long a stalled response sends nothing before the proxy hangs up.
    pub stall_for: Duration,
    /// Drop the `Range` header of the first resumed request.
    pub strip_range_once: bool,
}

/// One blob request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The `Range` header the client sent.
    pub range: Option<String>,
    /// What the proxy did: `cut`, `stall` or `pass`.
    pub action: &'static str,
    /// Whether the `Range` header was dropped.
    pub range_stripped: bool,
}

#[derive(Default)]
struct State {
    /// Blob path -> requests, in order.
    blobs: HashMap<String, Vec<Seen>>,
    stalled: bool,
    stripped: bool,
}

/// The running proxy (its threads live as long as the test process).
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = relay(client, upstream, faults, &state);
                });
            }
        });
        FaultProxy { addr, state }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Blob path -> the requests seen for it.
    pub fn blobs(&self) -> HashMap<String, Vec<Seen>> {
        self.state.lock().expect("proxy state").blobs.clone()
    }
}

/// Reads up to the end of the HTTP head; returns (head, bytes read past it), or `None` when
/// the peer closed first or sent a TLS ClientHello.
pub(crate) fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            // A TLS ClientHello (the client's HTTPS probe of a loopback registry): hang up.
            return Ok(None);
        }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(p + 4);
            return Ok(Some((buf, rest)));
        }
    }
}

fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    faults: Faults,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let Some((head, rest)) = read_head(&mut client)? else {
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    };
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let blob = request_line.starts_with("GET ") && path.contains("/blobs/sha256:");
    let mut headers: Vec<String> = lines
        .filter(|l| !l.is_empty())
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(str::to_string)
        .collect();
    let range = headers
        .iter()
        .find(|h| h.to_ascii_lowercase().starts_with("range:"))
        .map(|h| h[6..].trim().to_string());

    let (action, range_stripped) = if blob {
        let mut st = state.lock().expect("proxy state");
        let count = st.blobs.get(&path).map_or(0, Vec::len);
        let strip = faults.strip_range_once && range.is_some() && !st.stripped;
        if strip {
            st.stripped = true;
        }
        let action = if count < faults.cuts {
            "cut"
        } else if faults.stall_once && !st.stalled {
            st.stalled = true;
            "stall"
        } else {
            "pass"
        };
        st.blobs.entry(path.clone()).or_default().push(Seen {
            range: range.clone(),
            action,
            range_stripped: strip,
        });
        (action, strip)
    } else {
        ("pass", false)
    };
    if range_stripped {
        headers.retain(|h| !h.to_ascii_lowercase().starts_with("range:"));
    }

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

    let Some((resp_head, mut body)) = read_head(&mut server)? else {
        return Ok(());
    };
    client.write_all(&resp_head)?;
    let text = String::from_utf8_lossy(&resp_head).to_ascii_lowercase();
    let length: Option<usize> = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let limit = match (action, length) {
        ("cut" | "stall", Some(len)) if len > 1 => Some((len / 3).max(1)),
        _ => None,
    };
    let mut sent = 0usize;
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(limit) = limit
            && sent + body.len() >= limit
        {
            client.write_all(&body[..limit - sent])?;
            client.flush()?;
            if action == "stall" {
                std::thread::sleep(faults.stall_for);
            }
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        client.write_all(&body)?;
        sent += body.len();
        let n = server.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body = chunk[..n].to_vec();
    }
    let _ = client.shutdown(Shutdown::Write);
    Ok(())
}

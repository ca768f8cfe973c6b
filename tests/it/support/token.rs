//! A token issuer for docker-registry's `auth: token`: a small HTTP server that hands out
//! ES256 JWTs with an `x5c` header (a self-signed certificate that is the registry's
//! `rootcertbundle`), the way Docker Hub's auth service does.
//!
//! `GET /token?service=..&scope=..` with or without basic credentials, and the OAuth2
//! `POST /token` (`grant_type=password` or `refresh_token`). Known users get what they ask
//! for; anonymous requests get `pull` on repositories under `public/` only. Every request is
//! recorded.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

/// The `service` of the registry and the JWT audience.
pub const SERVICE: &str = "strata-test-registry";
/// The JWT issuer.
pub const ISSUER: &str = "strata-test-issuer";

/// One request the issuer answered.
#[derive(Debug, Clone)]
pub struct Issued {
    /// `GET` or `POST`.
    pub method: String,
    /// For POSTs: `password` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The authenticated user, if any.
    pub user: Option<String>,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// The HTTP status answered.
    pub status: u16,
}

struct State {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    users: HashMap<String, String>,
    refresh_tokens: HashMap<String, String>,
    log: Mutex<Vec<Issued>>,
}

/// The running issuer (its listener thread lives as long as the test process; each test
/// starts its own on a free port).
pub struct TokenServer {
    addr: SocketAddr,
    cert: PathBuf,
    state: Arc<State>,
}

impl TokenServer {
    /// Starts an issuer for `users` (name, password) and `refresh_tokens` (token, user).
    pub fn start(
        dir: &Path,
        users: &[(&str, &str)],
        refresh_tokens: &[(&str, &str)],
    ) -> TokenServer {
        let (cert, cert_der, pkcs8) = super::pki::self_signed(dir, "token-issuer");
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .expect("load the issuer's EC key");
        let state = Arc::new(State {
            key,
            cert_der,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            refresh_tokens: refresh_tokens
                .iter()
                .map(|(t, u)| (t.to_string(), u.to_string()))
                .collect(),
            log: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token issuer");
        let addr = listener.local_addr().expect("issuer address");
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        TokenServer { addr, cert, state }
    }

    /// `http://127.0.0.1:PORT/token`
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The registry's `auth:` section for this issuer.
    pub fn registry_auth_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm(),
            self.cert.display()
        )
    }

    /// The requests answered so far.
    pub fn issued(&self) -> Vec<Issued> {
        self.state.log.lock().expect("issuer log").clone()
    }
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

fn serve(mut stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = if method == "POST" {
        parse_pairs(&String::from_utf8_lossy(&body))
    } else {
        parse_pairs(query)
    };
    let (status, answer) = answer(state, &method, &headers, &params);
    let text = answer.to_string();
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

fn answer(
    state: &State,
    method: &str,
    headers: &HashMap<String, String>,
    params: &[(String, String)],
) -> (u16, serde_json::Value) {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut scopes: Vec<String> = Vec::new();
    for (k, v) in params {
        if k == "scope" {
            scopes.extend(v.split(' ').filter(|s| !s.is_empty()).map(str::to_string));
        }
    }
    let grant_type = (method == "POST").then(|| get("grant_type").unwrap_or_default());
    // Who is asking: Some(Ok(user)), Some(Err(())) for bad credentials, None for anonymous.
    let who: Option<Result<String, ()>> = match grant_type.as_deref() {
        Some("password") => {
            let (u, p) = (get("username").unwrap_or_default(), get("password"));
            Some(if state.users.get(&u) == p.as_ref() {
                Ok(u)
            } else {
                Err(())
            })
        }
        Some("refresh_token") => Some(
            get("refresh_token")
                .and_then(|t| state.refresh_tokens.get(&t).cloned())
                .ok_or(()),
        ),
        Some(_) => Some(Err(())),
        None => headers
            .get("authorization")
            .and_then(|h| h.strip_prefix("Basic "))
            .map(|b| {
                let decoded = STANDARD.decode(b.trim()).map_err(|_| ())?;
                let decoded = String::from_utf8(decoded).map_err(|_| ())?;
                let (u, p) = decoded.split_once(':').ok_or(())?;
                if state.users.get(u).map(String::as_str) == Some(p) {
                    Ok(u.to_string())
                } else {
                    Err(())
                }
            }),
    };
    let user = match who {
        Some(Err(())) => {
            state.log.lock().expect("issuer log").push(Issued {
                method: method.to_string(),
                grant_type,
                user: None,
                scopes,
                status: 401,
            });
            return (401, json!({"details": "incorrect username or password"}));
        }
        Some(Ok(u)) => Some(u),
        None => None,
    };
    let mut access = Vec::new();
    for scope in &scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let granted: Vec<&str> = if user.is_some() {
            actions.split(',').collect()
        } else if name.starts_with("public/") {
            actions.split(',').filter(|a| *a == "pull").collect()
        } else {
            Vec::new()
        };
        access.push(json!({"type": kind, "name": name, "actions": granted}));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let header = json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [STANDARD.encode(&state.cert_der)],
    });
    let claims = json!({
        "iss": ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = state
        .key
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .expect("sign the token");
    let jwt = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    );
    state.log.lock().expect("issuer log").push(Issued {
        method: method.to_string(),
        grant_type,
        user,
        scopes,
        status: 200,
    });
    (
        200,
        json!({"token": jwt, "access_token": jwt, "expires_in": 300}),
    )
}

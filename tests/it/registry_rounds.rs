//! Round trips of a pull, counted by a logging proxy in front of docker-registry with token
//! auth: no `/v2/` ping, one 401 and one token request on a cold pull, and none of either on
//! a pull that follows in another process (the auth cache under `$XDG_RUNTIME_DIR`); the
//! cache is private, skips credentialed tokens by default, and a rejected cached token falls
//! back to the normal dance.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::support::image::{
    Compression, Entry, Flavor, ImageBuilder, Layer, Pusher, alpine_multi,
};
use crate::support::logproxy::{Behaviour, LogProxy, Logged};
use crate::support::netenv::{assert_pulled, noise, noise_image, run_env};
use crate::support::registry::{Registry, Setup};
use crate::support::strata::Strata;
use crate::support::token::TokenServer;
use crate::support::{self, host_alpine_arch, tempdir};

/// A token-auth registry behind a logging proxy, holding `public/alpine:latest` (a
/// multi-platform index) and `public/other:v1`, `private/app:v1`.
struct World {
    _plain: Registry,
    _reg: Registry,
    issuer: TokenServer,
    proxy: LogProxy,
}

fn world(dir: &Path) -> World {
    support::preflight();
    let plain = Registry::start();
    let push = Pusher::new(&plain);
    push.index("public/alpine", "latest", &alpine_multi(Flavor::Oci));
    push.image("public/other", Some("v1"), &noise_image(71, 2, 20_000));
    push.image("private/app", Some("v1"), &noise_image(72, 1, 20_000));
    let issuer = TokenServer::start(dir, &[("alice", "s3cret")], &[]);
    let reg = Registry::start_with(Setup {
        storage: Some(plain.storage()),
        auth_yaml: Some(issuer.registry_auth_yaml()),
        ..Setup::default()
    });
    let proxy = LogProxy::start(
        reg.addr().parse().expect("registry address"),
        Behaviour::default(),
    );
    World {
        _plain: plain,
        _reg: reg,
        issuer,
        proxy,
    }
}

fn count(log: &[Logged], pred: impl Fn(&Logged) -> bool) -> usize {
    log.iter().filter(|l| pred(l)).count()
}

#[test]
fn pulls_make_no_ping_one_token_dance_then_none_from_the_cache() {
    let work = tempdir("rounds");
    let w = work.path();
    let world = world(w);
    let runtime = w.join("xdg");
    fs::create_dir_all(&runtime).unwrap();
    let docker = w.join("docker");
    fs::create_dir_all(&docker).unwrap();
    let env = [("XDG_RUNTIME_DIR", OsString::from(&runtime))];
    let alpine = format!("{}/public/alpine:latest", world.proxy.addr());

    // Cold: the manifest request's 401 is the only challenge, one token for the whole pull.
    let s1 = Strata::new();
    run_env(&s1, &["pull", &alpine], &docker, &env, None).ok();
    let log = world.proxy.log();
    // No ping on the way: one `HEAD /v2/` opens a second connection meanwhile.
    assert_eq!(
        count(&log, |l| l.path == "/v2/" && l.method == "GET"),
        0,
        "no ping: {log:#?}"
    );
    assert_eq!(count(&log, |l| l.method == "HEAD"), 1, "{log:#?}");
    assert_eq!(count(&log, unauthorized_get), 1, "{log:#?}");
    assert_eq!(
        world.issuer.issued().len(),
        1,
        "{:#?}",
        world.issuer.issued()
    );
    // index, manifest, config, one layer: each once, plus the one 401 and the HTTPS probe.
    let gets = count(&log, |l| l.method == "GET" && l.status == 200);
    assert_eq!(gets, 4, "{log:#?}");

    // The cache: a 0700 directory of 0600 files, holding the challenge and the token.
    let dir = runtime.join("strata").join("auth");
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let file = dir.join(format!("{}.json", world.proxy.addr().replace(':', "_")));
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cached: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        cached["Challenge"]["Realm"],
        world.issuer.realm(),
        "{cached:#}"
    );
    assert_eq!(cached["PlainHttp"], true, "{cached:#}");
    assert_eq!(
        cached["Tokens"].as_array().map(Vec::len),
        Some(1),
        "{cached:#}"
    );

    // Warm, in another process and another root: no 401, no token request, no HTTPS probe.
    world.proxy.clear();
    let s2 = Strata::new();
    run_env(&s2, &["pull", &alpine], &docker, &env, None).ok();
    assert_pulled(
        &s2,
        &alpine,
        alpine_multi(Flavor::Oci).image_for(host_arch()),
    );
    let log = world.proxy.log();
    assert_eq!(count(&log, |l| l.status == 401), 0, "{log:#?}");
    assert_eq!(count(&log, |l| l.method == "TLS"), 0, "{log:#?}");
    // The connection opened ahead carries the cached token: no 401 either.
    assert_eq!(count(&log, |l| l.method == "HEAD"), 1, "{log:#?}");
    assert_eq!(count(&log, |l| !l.authorized), 0, "{log:#?}");
    assert_eq!(world.issuer.issued().len(), 1, "no new token");

    // Another repository of the same registry: its token is fetched before the first
    // request (the challenge is known), so still no 401.
    world.proxy.clear();
    let other = format!("{}/public/other:v1", world.proxy.addr());
    run_env(&Strata::new(), &["pull", &other], &docker, &env, None).ok();
    let log = world.proxy.log();
    assert_eq!(count(&log, |l| l.status == 401), 0, "{log:#?}");
    // Two connections opened while the token is fetched (with alpine's token, good for /v2/).
    assert_eq!(
        count(&log, |l| l.method == "HEAD" && l.authorized),
        2,
        "{log:#?}"
    );
    let issued = world.issuer.issued();
    assert_eq!(issued.len(), 2, "{issued:#?}");
    assert_eq!(issued[1].scopes, ["repository:public/other:pull"]);

    // A cached token the registry rejects (here: forged) falls back to the dance once.
    let mut forged = cached.clone();
    forged["Tokens"][0]["Header"] = "Bearer forged".into();
    fs::write(&file, serde_json::to_vec(&forged).unwrap()).unwrap();
    world.proxy.clear();
    let s3 = Strata::new();
    run_env(&s3, &["pull", &alpine], &docker, &env, None).ok();
    let log = world.proxy.log();
    assert_eq!(count(&log, unauthorized_get), 1, "{log:#?}");
    assert_eq!(world.issuer.issued().len(), 3);

    // Off with `auth-cache = false`: the dance again, nothing read or written.
    let config = w.join("config.toml");
    fs::write(&config, "auth-cache = false\n").unwrap();
    fs::remove_dir_all(&dir).unwrap();
    world.proxy.clear();
    let cfg = config.to_str().unwrap();
    run_env(
        &Strata::new(),
        &["--config", cfg, "pull", &alpine],
        &docker,
        &env,
        None,
    )
    .ok();
    assert_eq!(count(&world.proxy.log(), unauthorized_get), 1);
    assert!(!dir.exists(), "no cache written");
}

/// A GET answered 401 (the `HEAD /v2/` opening a connection ahead may be too).
fn unauthorized_get(l: &Logged) -> bool {
    l.method == "GET" && l.status == 401
}

fn host_arch() -> &'static str {
    support::image::alpine_platform(host_alpine_arch()).0
}

#[test]
fn tokens_fetched_with_credentials_are_not_cached_unless_allowed() {
    let work = tempdir("rounds-creds");
    let w = work.path();
    let world = world(w);
    let runtime = w.join("xdg");
    fs::create_dir_all(&runtime).unwrap();
    let docker = w.join("docker");
    fs::create_dir_all(&docker).unwrap();
    fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#,
            world.proxy.addr()
        ),
    )
    .unwrap();
    let env = [("XDG_RUNTIME_DIR", OsString::from(&runtime))];
    let private = format!("{}/private/app:v1", world.proxy.addr());
    let file = runtime
        .join("strata")
        .join("auth")
        .join(format!("{}.json", world.proxy.addr().replace(':', "_")));

    run_env(&Strata::new(), &["pull", &private], &docker, &env, None).ok();
    let cached: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(cached["Challenge"]["Realm"], world.issuer.realm());
    assert_eq!(cached["Tokens"], serde_json::json!([]), "{cached:#}");
    let text = fs::read_to_string(&file).unwrap();
    assert!(!text.contains("Bearer"), "{text}");
    // The next pull fetches its token ahead (no 401) but must fetch one again.
    world.proxy.clear();
    run_env(&Strata::new(), &["pull", &private], &docker, &env, None).ok();
    assert_eq!(count(&world.proxy.log(), unauthorized_get), 0);
    assert_eq!(world.issuer.issued().len(), 2);

    // Allowed by the config: kept, and the next pull needs no token request.
    let config = w.join("config.toml");
    fs::write(&config, "auth-cache-credentials = true\n").unwrap();
    let cfg = config.to_str().unwrap();
    for _ in 0..2 {
        run_env(
            &Strata::new(),
            &["--config", cfg, "pull", &private],
            &docker,
            &env,
            None,
        )
        .ok();
    }
    assert_eq!(
        world.issuer.issued().len(),
        3,
        "{:#?}",
        world.issuer.issued()
    );
    let cached: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        cached["Tokens"].as_array().map(Vec::len),
        Some(1),
        "{cached:#}"
    );
}

/// Two images sharing their bottom layer, behind a proxy that redirects blobs to a blob host.
#[test]
fn layers_the_store_has_are_not_asked_ahead_and_the_blob_host_is_remembered() {
    support::preflight();
    let work = tempdir("rounds-ahead");
    let w = work.path();
    let base = Layer::from_entries(&[Entry::file("base.bin", noise(81, 30_000))]);
    let image = |seed: u64| {
        ImageBuilder::new(Flavor::Oci)
            .layer(base.clone(), Compression::Gzip)
            .entries(
                &[Entry::file("top.bin", noise(seed, 20_000))],
                Compression::Gzip,
            )
            .build()
    };
    let (first, second) = (image(82), image(83));
    let reg = Registry::start();
    let push = Pusher::new(&reg);
    push.image("ahead/first", Some("v1"), &first);
    push.image("ahead/second", Some("v1"), &second);
    let proxy = LogProxy::start(
        reg.addr().parse().expect("registry address"),
        Behaviour {
            redirect_uses: Some(100),
            ..Behaviour::default()
        },
    );
    let runtime = w.join("xdg");
    fs::create_dir_all(&runtime).unwrap();
    let docker = w.join("docker");
    fs::create_dir_all(&docker).unwrap();
    let env = [("XDG_RUNTIME_DIR", OsString::from(&runtime))];
    let s = Strata::new();

    let first_ref = format!("{}/ahead/first:v1", proxy.addr());
    run_env(&s, &["pull", &first_ref], &docker, &env, None).ok();
    assert_pulled(&s, &first_ref, &first);
    let file = runtime
        .join("strata")
        .join("auth")
        .join(format!("{}.json", proxy.addr().replace(':', "_")));
    let cached: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let origin = cached["BlobOrigin"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(origin.starts_with("http://127.0.0.1:"), "{cached:#}");
    assert_ne!(origin, format!("http://{}", proxy.addr()), "{cached:#}");

    // The second image, in another process: the shared layer's blob is known to the store, so
    // it is not asked for (ahead or at all); the blob host gets its connections ahead.
    proxy.clear();
    let second_ref = format!("{}/ahead/second:v1", proxy.addr());
    let out = run_env(
        &s,
        &["--log-level", "debug", "pull", &second_ref],
        &docker,
        &env,
        None,
    )
    .ok();
    assert_pulled(&s, &second_ref, &second);
    let log = proxy.log();
    let shared = &second.layers[0].digest;
    assert_eq!(
        count(&log, |l| l.path.contains(shared.as_str())),
        0,
        "{log:#?}"
    );
    let top = &second.layers[1].digest;
    assert_eq!(
        count(&log, |l| l.blob_host
            && l.method == "GET"
            && l.path.contains(top.as_str())),
        1,
        "{log:#?}"
    );
    // (This proxy's blob host does not log requests without a signature: strata's log says.)
    let ahead = format!("HEAD {origin}/ (connection ahead)");
    assert_eq!(out.stderr.matches(&ahead).count(), 2, "{}", out.stderr);
}

//! The registry client against registries that want TLS and credentials: docker-registry with
//! a private CA (configured the Docker way in a `--certs-dir`), client certificates and
//! htpasswd basic auth; docker-registry with `auth: token` and a token issuer from the test
//! support; `strata login`/`logout`; credentials from config.json and credential helpers.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::support::netenv::{assert_pulled, filled_registry, noise_image, run_env};
use crate::support::pki::{self, Ca};
use crate::support::registry::{Registry, Setup};
use crate::support::strata::{Output, Strata};
use crate::support::token::TokenServer;
use crate::support::{self, tempdir};

/// Asserts that `out` failed (exit 1) and its stderr says all of `needles`.
#[track_caller]
fn assert_error(out: &Output, needles: &[&str]) {
    assert_eq!(
        out.code(),
        Some(1),
        "expected a failure:\n{}",
        out.describe()
    );
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "stderr lacks {n:?}:\n{}",
            out.describe()
        );
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A certs dir in Docker's layout for `authority`: `ca.crt` and optionally
/// `client.cert`/`client.key`.
fn certs_dir(
    base: &Path,
    name: &str,
    authority: &str,
    ca: &Path,
    client: Option<&(PathBuf, PathBuf)>,
) -> PathBuf {
    let dir = base.join(name);
    let host_dir = dir.join(authority);
    fs::create_dir_all(&host_dir).unwrap();
    fs::copy(ca, host_dir.join("ca.crt")).unwrap();
    if let Some((cert, key)) = client {
        fs::copy(cert, host_dir.join("client.cert")).unwrap();
        fs::copy(key, host_dir.join("client.key")).unwrap();
    }
    dir
}

#[test]
fn tls_registry_with_private_ca_client_certs_and_basic_auth() {
    support::preflight();
    support::require_tool("htpasswd");
    let work = tempdir("tls");
    let w = work.path();
    let img = noise_image(1, 2, 30_000);
    let plain = filled_registry(&[("private/app", "v1", &img)]);

    let ca = Ca::new(w, "good");
    let server = ca.issue("server", true);
    let client = ca.issue("client", false);
    let htpasswd = pki::htpasswd(w, &[("alice", "s3cret")]);
    let mut probe_identity = fs::read(&client.0).unwrap();
    probe_identity.extend(fs::read(&client.1).unwrap());
    let reg = Registry::start_with(Setup {
        storage: Some(plain.storage()),
        tls: Some(server.clone()),
        client_ca: Some(ca.cert.clone()),
        auth_yaml: Some(format!(
            "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
            htpasswd.display()
        )),
        probe_identity: Some(probe_identity),
    });
    let authority = reg.addr();
    let reference = format!("{authority}/private/app:v1");
    let good = certs_dir(w, "certs.d", &authority, &ca.cert, Some(&client));
    let good = good.to_str().unwrap();
    let docker = w.join("docker");
    fs::create_dir_all(&docker).unwrap();
    let config_json = docker.join("config.json");

    // A certs dir with another CA: the registry's certificate is not trusted, and the error
    // says which host and what to do.
    let other = Ca::new(w, "other");
    let wrong = certs_dir(w, "wrong.d", &authority, &other.cert, Some(&client));
    let s = Strata::new();
    let out = run_env(
        &s,
        &["--certs-dir", wrong.to_str().unwrap(), "pull", &reference],
        &docker,
        &[],
        None,
    );
    assert_error(
        &out,
        &[
            &format!("TLS certificate of {authority} is not trusted"),
            "signed by an unknown authority",
            &format!("{}/{authority}/ca.crt", wrong.display()),
            "--certs-dir",
            &format!("--insecure-registry {authority}"),
        ],
    );

    // The right CA but no client certificate: the registry refuses the handshake.
    let no_client = certs_dir(w, "noclient.d", &authority, &ca.cert, None);
    let out = run_env(
        &s,
        &[
            "--certs-dir",
            no_client.to_str().unwrap(),
            "pull",
            &reference,
        ],
        &docker,
        &[],
        None,
    );
    assert_error(
        &out,
        &[
            &format!("TLS handshake with {authority} failed"),
            "client.cert",
        ],
    );

    // TLS works; no credentials yet.
    let out = run_env(
        &s,
        &["--certs-dir", good, "pull", &reference],
        &docker,
        &[],
        None,
    );
    assert_error(
        &out,
        &[
            "unauthorized",
            &format!("none were found for {authority}"),
            &format!("strata login {authority}"),
        ],
    );

    // A wrong password: login fails clearly and saves nothing.
    let out = run_env(
        &s,
        &[
            "--certs-dir",
            good,
            "login",
            &authority,
            "-u",
            "alice",
            "--password-stdin",
        ],
        &docker,
        &[],
        Some("wrong\n"),
    );
    assert_error(
        &out,
        &[
            &format!("login to {authority} failed"),
            &format!("the credentials for {authority} were refused"),
        ],
    );
    assert!(!config_json.exists(), "nothing saved after a failed login");
    assert!(!out.stderr.contains("wrong"), "{}", out.describe());

    // The right password: saved as Docker does, mode 0600, other fields kept.
    fs::write(&config_json, r#"{"psFormat":"table {{.ID}}","auths":{}}"#).unwrap();
    let out = run_env(
        &s,
        &[
            "--certs-dir",
            good,
            "login",
            &authority,
            "-u",
            "alice",
            "--password-stdin",
        ],
        &docker,
        &[],
        Some("s3cret\n"),
    )
    .ok();
    assert!(out.stdout.contains("Login Succeeded"), "{}", out.describe());
    let saved = read_json(&config_json);
    assert_eq!(
        saved["auths"][&authority]["auth"].as_str(),
        Some(STANDARD.encode("alice:s3cret").as_str()),
        "{saved:#}"
    );
    assert_eq!(saved["psFormat"], "table {{.ID}}");
    assert_eq!(
        fs::metadata(&config_json).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The pull now succeeds: private CA and client certificate from the certs dir, basic
    // credentials from config.json.
    let out = run_env(
        &s,
        &["--certs-dir", good, "pull", &reference],
        &docker,
        &[],
        None,
    )
    .ok();
    assert!(!out.stderr.contains("s3cret"), "{}", out.describe());
    assert_pulled(&s, &reference, &img);

    // A wrong password in config.json: the pull error names the refused credentials.
    fs::write(
        &config_json,
        format!(
            r#"{{"auths":{{"{authority}":{{"auth":"{}"}}}}}}"#,
            STANDARD.encode("alice:nope")
        ),
    )
    .unwrap();
    let out = run_env(
        &Strata::new(),
        &["--certs-dir", good, "pull", &reference],
        &docker,
        &[],
        None,
    );
    assert_error(
        &out,
        &[
            &format!("the credentials for {authority} were refused"),
            &format!("strata login {authority}"),
        ],
    );

    // Logout removes the entry.
    let out = run_env(&s, &["logout", &authority], &docker, &[], None).ok();
    assert!(
        out.stdout.contains("Removing login credentials"),
        "{}",
        out.describe()
    );
    let saved = read_json(&config_json);
    assert!(saved["auths"].get(&authority).is_none(), "{saved:#}");
    let out = run_env(&s, &["logout", &authority], &docker, &[], None).ok();
    assert!(out.stdout.contains("Not logged in"), "{}", out.describe());
}

/// A fake `docker-credential-test` in `dir`: `get` answers alice's credentials for any
/// server, `store` records its input in `dir/stored.json`.
fn fake_helper(dir: &Path, password: &str) -> PathBuf {
    let bin = dir.join("helper-bin");
    fs::create_dir_all(&bin).unwrap();
    let script = bin.join("docker-credential-test");
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
case "$1" in
get) read -r server || true
     echo "{{\"ServerURL\":\"$server\",\"Username\":\"alice\",\"Secret\":\"{password}\"}}" ;;
store) cat > {stored} ;;
erase) cat > {erased} ;;
*) exit 1 ;;
esac
"#,
            stored = dir.join("stored.json").display(),
            erased = dir.join("erased.txt").display(),
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn token_auth_registry_with_credentials_identity_tokens_and_helpers() {
    support::preflight();
    let work = tempdir("token");
    let w = work.path();
    let img = noise_image(2, 2, 20_000);
    let public = noise_image(3, 1, 10_000);
    let plain = filled_registry(&[("private/app", "v1", &img), ("public/app", "v1", &public)]);
    let issuer = TokenServer::start(w, &[("alice", "s3cret")], &[("refresh-abc", "alice")]);
    let reg = Registry::start_with(Setup {
        storage: Some(plain.storage()),
        auth_yaml: Some(issuer.registry_auth_yaml()),
        ..Setup::default()
    });
    let authority = reg.addr();
    let private = format!("{authority}/private/app:v1");
    let docker = w.join("docker");
    fs::create_dir_all(&docker).unwrap();
    let config_json = docker.join("config.json");

    // Anonymous: public repositories work with an anonymous token, private ones do not.
    let s = Strata::new();
    let public_ref = format!("{authority}/public/app:v1");
    run_env(&s, &["pull", &public_ref], &docker, &[], None).ok();
    assert_pulled(&s, &public_ref, &public);
    let out = run_env(&s, &["pull", &private], &docker, &[], None);
    assert_error(
        &out,
        &[
            "unauthorized",
            &format!("none were found for {authority}"),
            &format!("strata login {authority}"),
        ],
    );

    // Wrong credentials: the token server refuses them.
    let out = run_env(
        &s,
        &["login", &authority, "-u", "alice", "--password-stdin"],
        &docker,
        &[],
        Some("wrong"),
    );
    assert_error(
        &out,
        &[
            &format!("the credentials for {authority} were refused"),
            "incorrect username or password",
        ],
    );

    // Login (token fetched with basic credentials), then a pull that asks for one token.
    run_env(
        &s,
        &["login", &authority, "-u", "alice", "--password-stdin"],
        &docker,
        &[],
        Some("s3cret"),
    )
    .ok();
    let before = issuer.issued().len();
    run_env(&s, &["pull", &private], &docker, &[], None).ok();
    assert_pulled(&s, &private, &img);
    let issued = issuer.issued()[before..].to_vec();
    assert_eq!(
        issued.len(),
        1,
        "one token for manifest, config and layers: {issued:#?}"
    );
    assert_eq!(issued[0].method, "GET");
    assert_eq!(issued[0].user.as_deref(), Some("alice"));
    assert_eq!(issued[0].scopes, ["repository:private/app:pull"]);

    // An identity token in config.json: the OAuth2 POST with grant_type=refresh_token.
    fs::write(
        &config_json,
        format!(
            r#"{{"auths":{{"{authority}":{{"auth":"{}","identitytoken":"refresh-abc"}}}}}}"#,
            STANDARD.encode("alice:")
        ),
    )
    .unwrap();
    let s2 = Strata::new();
    let before = issuer.issued().len();
    run_env(&s2, &["pull", &private], &docker, &[], None).ok();
    assert_pulled(&s2, &private, &img);
    let issued = issuer.issued()[before..].to_vec();
    assert_eq!(issued.len(), 1, "{issued:#?}");
    assert_eq!(issued[0].method, "POST");
    assert_eq!(issued[0].grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(issued[0].user.as_deref(), Some("alice"));

    // A credential store (docker-credential-test on PATH, for strata's process only).
    fs::write(&config_json, r#"{"credsStore":"test"}"#).unwrap();
    let bin = fake_helper(w, "s3cret");
    let mut path = OsString::from(bin.as_os_str());
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let env = [("PATH", path)];
    let s3 = Strata::new();
    run_env(&s3, &["pull", &private], &docker, &env, None).ok();
    assert_pulled(&s3, &private, &img);
    // A helper that is not on PATH gives a clear error.
    let out = run_env(&Strata::new(), &["pull", &private], &docker, &[], None);
    assert_error(&out, &["docker-credential-test", "not installed"]);
    // Login stores through the helper and leaves an empty auths entry, like docker login.
    run_env(
        &s3,
        &["login", &authority, "-u", "alice", "--password-stdin"],
        &docker,
        &env,
        Some("s3cret"),
    )
    .ok();
    let stored = read_json(&w.join("stored.json"));
    assert_eq!(
        stored,
        serde_json::json!({"ServerURL": authority, "Username": "alice", "Secret": "s3cret"})
    );
    let saved = read_json(&config_json);
    assert_eq!(saved["credsStore"], "test");
    assert_eq!(
        saved["auths"][&authority],
        serde_json::json!({}),
        "{saved:#}"
    );
    run_env(&s3, &["logout", &authority], &docker, &env, None).ok();
    assert_eq!(
        fs::read_to_string(w.join("erased.txt")).unwrap().trim(),
        authority
    );
}

//! Test support for the integration tests: a real registry, an image builder that pushes
//! to it, a reference unpacker (skopeo + umoci), a directory-tree comparator, and helpers
//! to run the `strata` binary and mount what it stored.

#![allow(dead_code)] // not every helper is used by every test

pub mod dockerd;
pub mod image;
pub mod logproxy;
pub mod netenv;
pub mod pki;
pub mod proxy;
pub mod pull_cache;
pub mod registry;
pub mod strata;
pub mod token;
pub mod tree;
pub mod umoci;
pub mod unpriv;

// Built on first use (debootstrap, about a minute), for the rootless tests.
pub mod debian;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Path of a file under `testdata/`.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// The Alpine minirootfs tarball for an Alpine architecture name (`x86_64`, `aarch64`).
pub fn alpine_tarball(arch: &str) -> PathBuf {
    testdata(&format!(
        "alpine/3.20.3/{arch}/alpine-minirootfs-3.20.3-{arch}.tar.gz"
    ))
}

/// These tests mount overlays, create device nodes and set `trusted.*` xattrs: they need
/// root. Fail loudly instead of passing vacuously.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the strata integration tests must run as root (they mount overlays, mknod and set \
         trusted.* xattrs); run them as root, e.g. `sudo -E cargo test` or in CI"
    );
}

/// Fail with a clear message when an external tool is missing.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: run `bash scripts/setup.sh` (installs docker-registry, \
         skopeo, umoci, ...)"
    );
}

/// Everything a test needs before it starts: root and the reference tools.
pub fn preflight() {
    require_root();
    for tool in ["docker-registry", "skopeo", "umoci"] {
        require_tool(tool);
    }
}

/// Run a command, panic with its output if it fails; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let desc = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    assert!(
        out.status.success(),
        "{desc} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Lowercase hex sha256 of some bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// The OCI chain IDs of a list of diff_ids (`sha256:...` strings).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => sha256_digest(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The Go/OCI architecture name of the machine running the tests.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => panic!("unsupported host architecture {other}"),
    }
}

/// The Alpine architecture name matching `host_arch()`, for the two we ship.
pub fn host_alpine_arch() -> &'static str {
    match host_arch() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => panic!("no Alpine test tarball for host architecture {other}"),
    }
}

/// A fresh temporary directory (removed on drop).
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("strata-it-{prefix}-"))
        .tempdir()
        .expect("create temp dir")
}

/// One test's world: its own registry, a pusher for it, and its own strata root.
pub struct Env {
    pub reg: registry::Registry,
    pub push: image::Pusher,
    pub strata: strata::Strata,
}

impl Env {
    pub fn new() -> Env {
        preflight();
        let reg = registry::Registry::start();
        let push = image::Pusher::new(&reg);
        Env {
            reg,
            push,
            strata: strata::Strata::new(),
        }
    }

    /// `127.0.0.1:PORT/<repo_ref>`
    pub fn r(&self, repo_ref: &str) -> String {
        format!("{}/{repo_ref}", self.reg.addr())
    }
}

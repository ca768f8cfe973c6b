//! A real Debian bookworm minbase root filesystem as one layer tar, built with `debootstrap`
//! from the machine's Debian mirror once per test run and cached under the target directory
//! (reruns reuse it). Its `/dev` is emptied as in Docker's debian image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// The suite built.
pub const SUITE: &str = "bookworm";

/// Overrides the mirror read from apt's sources.
pub const MIRROR_ENV: &str = "STRATA_IT_DEBIAN_MIRROR";

/// The cached layer tar (uncompressed), building it on first use in this run.
pub fn bookworm_minbase_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(build)
}

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("debian-cache")
}

/// `STRATA_IT_DEBIAN_MIRROR`, else the first `bookworm` (not security) source of apt, else
/// deb.debian.org.
pub fn mirror() -> String {
    if let Ok(m) = std::env::var(MIRROR_ENV) {
        return m;
    }
    apt_mirror().unwrap_or_else(|| "http://deb.debian.org/debian".to_string())
}

fn apt_mirror() -> Option<String> {
    let mut texts = vec![fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        texts.extend(paths.iter().filter_map(|p| fs::read_to_string(p).ok()));
    }
    for text in &texts {
        // One-line style: `deb [opts] URI bookworm main`.
        for line in text.lines() {
            let words: Vec<&str> = line
                .split_whitespace()
                .filter(|w| !w.starts_with('['))
                .collect();
            if words.first() == Some(&"deb") && words.get(2) == Some(&SUITE) {
                return words.get(1).map(|u| u.to_string());
            }
        }
        // deb822 style: a stanza with `URIs:` and `Suites:` naming bookworm.
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let suites = field("Suites:").unwrap_or_default();
            if suites.split_whitespace().any(|s| s == SUITE)
                && let Some(uri) = field("URIs:")
            {
                return uri.split_whitespace().next().map(str::to_string);
            }
        }
    }
    None
}

fn build() -> PathBuf {
    let tar = cache_dir().join(format!("{SUITE}-minbase.tar"));
    if tar.is_file() {
        return tar;
    }
    super::require_root();
    super::require_tool("debootstrap");
    fs::create_dir_all(cache_dir()).expect("create the Debian cache dir");
    remove_stale_builds();
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(cache_dir())
        .expect("temp dir for debootstrap");
    let rootfs = work.path().join("rootfs");
    let mirror = mirror();
    let started = Instant::now();
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", SUITE])
        .arg(&rootfs)
        .arg(&mirror)
        .output()
        .expect("run debootstrap");
    if !out.status.success() {
        let log =
            fs::read_to_string(rootfs.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        panic!(
            "cannot build the Debian {SUITE} image: `debootstrap --variant=minbase {SUITE}` from \
             {mirror} failed with {} (is the mirror reachable? set {MIRROR_ENV} to another)\n\
             --- stdout\n{}\n--- stderr\n{}\n--- debootstrap.log (last lines, newest first)\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail.join("\n")
        );
    }
    // As Docker's debian image: no device nodes, no apt lists or downloaded packages.
    for dir in ["dev", "var/cache/apt/archives", "var/lib/apt/lists"] {
        empty_dir(&rootfs.join(dir));
    }
    let staged = work.path().join("layer.tar");
    let mut entries: Vec<String> = fs::read_dir(&rootfs)
        .expect("read rootfs")
        .map(|e| {
            e.expect("rootfs entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    entries.sort();
    super::run_ok(
        Command::new("tar")
            .args([
                "--format=pax",
                "--numeric-owner",
                "--xattrs",
                "--sort=name",
                "-cf",
            ])
            .arg(&staged)
            .arg("-C")
            .arg(&rootfs)
            .args(&entries),
    );
    fs::rename(&staged, &tar).expect("publish the Debian layer tar");
    eprintln!(
        "debian: built the {SUITE} minbase layer from {mirror} in {:.0?}",
        started.elapsed()
    );
    tar
}

/// Removes the build dirs of runs killed while building (a rootfs each, ~200 MB), left more
/// than an hour ago (a build takes about a minute).
fn remove_stale_builds() {
    let Ok(rd) = fs::read_dir(cache_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if stale && e.file_name().to_string_lossy().starts_with("build-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Removes what `dir` holds (not `dir`), files the rootfs' owners made included.
fn empty_dir(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let res = if e.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        res.unwrap_or_else(|err| panic!("remove {}: {err}", p.display()));
    }
}

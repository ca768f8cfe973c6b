//! Hostile and tricky layers (issue 4): crafted tar streams, blobs, manifests and configs,
//! each pushed to a real registry and pulled with the real binary.
//!
//! Every case runs in its own sandbox:
//!
//! ```text
//! T/                       temp dir; everything in it but store/ is a canary
//! T/canary, T/canary-dir/keep, T/etc/passwd, T/link -> canary
//! T/store/                 strata --root; a good base image is pulled first, so its layer
//!                          dir, records and short link sit next to the hostile layer's
//! ```
//!
//! A refused case must: exit 1 with an `error:` line naming the image, the layer's blob
//! digest and the offending entry; leave T (minus the store) exactly as it was; leave the
//! store exactly as it was before the pull (new lock files allowed, directory mtimes not
//! compared); create nothing named `strata-hostile-escape*` in `/`, `/tmp`, `/etc`, `/root`,
//! `/var/tmp`, T or the store; fail the same way when pulled again (nothing of it reused);
//! and a good image pulled afterwards must work. An accepted (legal but tricky) case must
//! produce exactly the stated layer contents, with the same "nothing outside" checks.
//!
//! Cases of one test share a registry and run in sequence; failures are collected and
//! reported together, one line per case.
//!
//! `hostile_corpus_rootless` runs all of it again as an unprivileged user with a subordinate
//! range (`support/unpriv.rs`), the sandbox being the user's: the same expectations, but for
//! device nodes, which a user namespace cannot make (skipped with a warning).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::image::{
    self, Compression, Entry, Flavor, HeaderFormat, Image, ImageBuilder, Index, Layer, Pusher,
    RawHeader, RawTar,
};
use crate::support::registry::Registry;
use crate::support::strata::{Graph, bin};
use crate::support::unpriv::{self, UserDirs};
use crate::support::{self, sha256_digest};

/// Every name a hostile layer tries to create outside the layer contains this.
const ESCAPE: &str = "strata-hostile-escape";

/// Host directories searched (one level) for escaped names.
const HOST_DIRS: [&str; 5] = ["/", "/tmp", "/etc", "/root", "/var/tmp"];

// ---------------------------------------------------------------------------------------
// Running strata against a sandboxed root

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    args: String,
    /// Peak RSS of the strata process in KiB (its VmHWM while it ran; wait4's for runs too
    /// short to sample).
    max_rss_kib: u64,
    elapsed: Duration,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "$ strata {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
    fn error_line(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or("")
    }
}

/// Who runs strata: root, or an unprivileged user (in the user namespace strata enters).
#[derive(Clone, Copy)]
enum Who<'a> {
    Root,
    User(&'a UserDirs),
}

/// Runs `strata --root ROOT ARGS` as `who` and reaps it with wait4 to learn its peak RSS.
fn run_strata(who: Who, root: &Path, args: &[&str]) -> Run {
    let out_dir = support::tempdir("hostile-out");
    let out = out_dir.path().join("stdout");
    let err = out_dir.path().join("stderr");
    let mut cmd = match who {
        Who::Root => {
            let mut cmd = Command::new(bin());
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("STRATA_") {
                    cmd.env_remove(k);
                }
            }
            cmd
        }
        // setpriv and env exec strata: the pid stays strata's.
        Who::User(dirs) => dirs.strata(),
    };
    cmd.arg("--root").arg(root).args(args);
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(&err).expect("stderr file"));
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn strata");
    let pid = child.id() as libc::pid_t;
    // The kernel adds the RSS of the mm a process had before exec to its rusage peak, and a
    // spawned child starts on (a copy of) this test process's, which is large while other
    // tests run: strata's own peak is its VmHWM, read while it runs.
    let reaped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let reaped = reaped.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !reaped.load(std::sync::atomic::Ordering::Acquire) {
                match vm_hwm_kib(pid) {
                    Some(kib) => peak = peak.max(kib),
                    None if peak > 0 => break,
                    None => {}
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = loop {
        // SAFETY: pid is our child, status and usage are valid for writes.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break rc;
    };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    let elapsed = start.elapsed();
    reaped.store(true, std::sync::atomic::Ordering::Release);
    let peak = watcher.join().unwrap_or(0);
    drop(child); // already reaped
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let mut stderr = fs::read_to_string(&err).unwrap_or_default();
    if libc::WIFSIGNALED(status) {
        stderr.push_str(&format!("\n[killed by signal {}]", libc::WTERMSIG(status)));
    }
    let mut all = vec!["--root".to_string(), root.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    Run {
        code,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr,
        args: all.join(" "),
        // A run too short to be sampled falls back to rusage (an upper bound).
        max_rss_kib: if peak > 0 {
            peak
        } else {
            usage.ru_maxrss as u64
        },
        elapsed,
    }
}

/// `VmHWM` of a running process, in KiB (None once it has exited).
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A temp dir with canaries around a strata root; all of it is the user's when strata runs as
/// one (so that the canaries are writable to a rootless escape).
struct Sandbox<'a> {
    dir: tempfile::TempDir,
    who: Who<'a>,
}

impl<'a> Sandbox<'a> {
    fn new(who: Who<'a>) -> Sandbox<'a> {
        let dir = support::tempdir("hostile");
        let t = dir.path();
        fs::write(t.join("canary"), b"outside the store\n").expect("canary");
        fs::create_dir(t.join("canary-dir")).expect("canary dir");
        fs::write(t.join("canary-dir/keep"), b"keep me\n").expect("canary");
        fs::create_dir(t.join("etc")).expect("etc");
        fs::write(t.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").expect("passwd");
        std::os::unix::fs::symlink("canary", t.join("link")).expect("symlink");
        fs::create_dir(t.join("store")).expect("store");
        if let Who::User(dirs) = who {
            let owner = format!("{}:{}", dirs.user.uid, dirs.user.gid);
            support::run_ok(Command::new("chown").args(["-R", "-h", &owner]).arg(t));
        }
        Sandbox { dir, who }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    fn pull(&self, reference: &str) -> Run {
        run_strata(self.who, &self.root(), &["pull", "-q", reference])
    }
    fn inspect(&self, reference: &str) -> Value {
        let r = run_strata(self.who, &self.root(), &["inspect", reference]);
        assert_eq!(r.code, Some(0), "inspect failed:\n{}", r.describe());
        let v: Value = serde_json::from_str(&r.stdout).expect("inspect JSON");
        v[0].clone()
    }
    /// Everything outside the store.
    fn outside(&self) -> BTreeMap<PathBuf, String> {
        snapshot(self.path(), &|rel| rel.starts_with("store"), true)
    }
    /// The store, lock files left out, directory mtimes not compared.
    fn store(&self) -> BTreeMap<PathBuf, String> {
        snapshot(&self.root(), &|rel| rel.starts_with("locks"), false)
    }
}

/// Type, mode, owner, content (files), target (symlinks), device and mtime (directories only
/// when `dir_mtimes`) of every path under `root`, relative, except those `skip` says.
fn snapshot(
    root: &Path,
    skip: &dyn Fn(&Path) -> bool,
    dir_mtimes: bool,
) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let abs = root.join(&rel);
        let md = match fs::symlink_metadata(&abs) {
            Ok(md) => md,
            Err(e) => {
                out.insert(rel, format!("unreadable: {e}"));
                continue;
            }
        };
        let ft = md.file_type();
        let what = if ft.is_dir() {
            if let Ok(rd) = fs::read_dir(&abs) {
                for e in rd.flatten() {
                    let child = rel.join(e.file_name());
                    if !skip(&child) {
                        todo.push(child);
                    }
                }
            }
            if dir_mtimes {
                format!("dir mtime={}.{}", md.mtime(), md.mtime_nsec())
            } else {
                "dir".to_string()
            }
        } else if ft.is_symlink() {
            format!("symlink -> {:?}", fs::read_link(&abs).unwrap_or_default())
        } else if ft.is_file() {
            let data = fs::read(&abs).unwrap_or_default();
            format!(
                "file {} bytes sha256 {} mtime={}.{}",
                data.len(),
                &sha256_digest(&data)[7..19],
                md.mtime(),
                md.mtime_nsec()
            )
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("device {:x}", md.rdev())
        } else {
            "other".to_string()
        };
        out.insert(
            rel,
            format!(
                "{what} mode={:o} owner={}:{}",
                md.mode(),
                md.uid(),
                md.gid()
            ),
        );
    }
    out
}

fn snapshot_diff(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> String {
    let mut s = String::new();
    for (p, b) in before {
        match after.get(p) {
            None => s.push_str(&format!("  removed {}: {b}\n", p.display())),
            Some(a) if a != b => s.push_str(&format!("  changed {}: {b} => {a}\n", p.display())),
            _ => {}
        }
    }
    for (p, a) in after {
        if !before.contains_key(p) {
            s.push_str(&format!("  added {}: {a}\n", p.display()));
        }
    }
    s
}

/// Names containing [`ESCAPE`] directly in the host directories and in `extra`.
fn escaped_names(extra: &[&Path]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let dirs = HOST_DIRS.iter().map(Path::new).chain(extra.iter().copied());
    for d in dirs {
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_name()
                    .as_bytes()
                    .windows(ESCAPE.len())
                    .any(|w| w == ESCAPE.as_bytes())
                {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

/// Every path under `root` whose name contains [`ESCAPE`] (paths too long for the std API are
/// skipped).
fn escape_names_under(root: &Path) -> Vec<PathBuf> {
    snapshot(root, &|_| false, false)
        .into_keys()
        .filter(|p| {
            p.as_os_str()
                .as_bytes()
                .windows(ESCAPE.len())
                .any(|w| w == ESCAPE.as_bytes())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Images

/// The good base layer every hostile image starts with.
fn base_layer() -> Layer {
    Layer::from_entries(&[
        Entry::dir("base"),
        Entry::file("base/ok", "fine\n"),
        Entry::dir("etc"),
        Entry::file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
    ])
}

fn good_base() -> Image {
    ImageBuilder::new(Flavor::Oci)
        .layer(base_layer(), Compression::Gzip)
        .build()
}

/// A good image with a second layer, pulled after a hostile case to prove the store works.
fn good_after() -> Image {
    ImageBuilder::new(Flavor::Oci)
        .layer(base_layer(), Compression::Gzip)
        .entries(
            &[
                Entry::dir("after"),
                Entry::file("after/ok", "still works\n"),
            ],
            Compression::Zstd,
        )
        .build()
}

/// The base layer, then `top`.
fn on_base(top: Layer, c: Compression) -> Image {
    ImageBuilder::new(Flavor::Oci)
        .layer(base_layer(), Compression::Gzip)
        .layer(top, c)
        .build()
}

/// A copy of `img` whose manifest was edited by `f` (digest recomputed).
fn rewrite_manifest(img: &Image, f: impl FnOnce(&mut Value)) -> Image {
    let mut m: Value = serde_json::from_slice(&img.manifest).expect("manifest JSON");
    f(&mut m);
    let mut out = img.clone();
    out.manifest = serde_json::to_vec_pretty(&m).expect("manifest");
    out.manifest_digest = sha256_digest(&out.manifest);
    out
}

/// A copy of `img` whose layer `i` is the blob `blob` (digest and size in the manifest
/// follow; the config's diff_id stays, or is `diff_id` when given).
fn with_blob(img: &Image, i: usize, blob: Vec<u8>, diff_id: Option<String>) -> Image {
    let digest = sha256_digest(&blob);
    let size = blob.len();
    let mut out = match diff_id {
        None => img.clone(),
        Some(d) => with_diff_id(img, i, d),
    };
    out.layers[i].digest = digest.clone();
    out.layers[i].blob = blob;
    rewrite_manifest(&out, |m| {
        m["layers"][i]["digest"] = Value::from(digest);
        m["layers"][i]["size"] = Value::from(size);
    })
}

/// A copy of `img` whose config says `diff_id` for layer `i`.
fn with_diff_id(img: &Image, i: usize, diff_id: String) -> Image {
    let mut config: Value = serde_json::from_slice(&img.config).expect("config JSON");
    config["rootfs"]["diff_ids"][i] = Value::from(diff_id.clone());
    with_config(img, serde_json::to_vec(&config).expect("config"), |out| {
        out.config_diff_ids[i] = diff_id;
    })
}

/// A copy of `img` with other config bytes.
fn with_config(img: &Image, config: Vec<u8>, also: impl FnOnce(&mut Image)) -> Image {
    let mut out = img.clone();
    out.config_digest = sha256_digest(&config);
    let (digest, size) = (out.config_digest.clone(), config.len());
    out.config = config;
    also(&mut out);
    rewrite_manifest(&out, |m| {
        m["config"]["digest"] = Value::from(digest);
        m["config"]["size"] = Value::from(size);
    })
}

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Cases

/// What a case must do.
enum Expect {
    /// The pull fails; the error line contains `entry {name:?}` (when `entry` is given, as
    /// the archive module shows member names), and every string of `says`.
    Refused {
        entry: Option<Vec<u8>>,
        says: Vec<String>,
    },
    /// The pull succeeds; the check gets the hostile (top) layer's diff dir, whether strata
    /// ran rootless, and the pull's stderr.
    Accepted(Box<AcceptedCheck>),
}

/// A check of an accepted layer: its diff dir, whether strata ran rootless, the pull's stderr.
type AcceptedCheck = dyn Fn(&Path, bool, &str);

fn refused(entry: impl AsRef<[u8]>, says: &[&str]) -> Expect {
    Expect::Refused {
        entry: Some(entry.as_ref().to_vec()),
        says: says.iter().map(|s| s.to_string()).collect(),
    }
}

fn refused_no_entry(says: &[&str]) -> Expect {
    Expect::Refused {
        entry: None,
        says: says.iter().map(|s| s.to_string()).collect(),
    }
}

/// Accepted the same way as root and rootless.
fn accepted(check: impl Fn(&Path) + 'static) -> Expect {
    Expect::Accepted(Box::new(move |d, _, _| check(d)))
}

/// Accepted, with a result that differs rootless.
fn accepted_as(check: impl Fn(&Path, bool, &str) + 'static) -> Expect {
    Expect::Accepted(Box::new(check))
}

struct Case {
    name: &'static str,
    /// What is pushed: an image, or an index (with the image whose layer is blamed).
    push: Push,
    /// The blob digest the error must name (None: a manifest/config-level error).
    layer: Option<String>,
    expect: Expect,
}

enum Push {
    Image(Image),
    /// An index whose child manifest is deleted from the registry after pushing.
    IndexWithDeletedChild(Index),
}

fn tar_case(name: &'static str, tar: Vec<u8>, expect: Expect) -> Case {
    let img = on_base(Layer::from_tar(tar), Compression::Gzip);
    Case {
        name,
        layer: Some(img.layers[1].digest.clone()),
        push: Push::Image(img),
        expect,
    }
}

fn image_case(name: &'static str, img: Image, layer: Option<usize>, expect: Expect) -> Case {
    Case {
        name,
        layer: layer.map(|i| img.layers[i].digest.clone()),
        push: Push::Image(img),
        expect,
    }
}

fn assert_file(dir: &Path, rel: &str, content: &[u8]) {
    let p = dir.join(rel);
    let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(
        md.file_type().is_file(),
        "{rel} is not a regular file: {md:?}"
    );
    assert_eq!(fs::read(&p).expect("read"), content, "content of {rel}");
}

fn assert_symlink(dir: &Path, rel: &str, target: &str) {
    let p = dir.join(rel);
    let t = fs::read_link(&p).unwrap_or_else(|e| panic!("readlink {rel}: {e}"));
    assert_eq!(t, Path::new(target), "target of {rel}");
}

fn assert_absent(dir: &Path, rel: &str) {
    assert!(
        fs::symlink_metadata(dir.join(rel)).is_err(),
        "{rel} must not exist in the layer"
    );
}

/// Relative paths of everything in a layer dir (not following symlinks), sorted.
fn listing(dir: &Path) -> Vec<String> {
    snapshot(dir, &|_| false, false)
        .into_keys()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.display().to_string())
        .collect()
}

/// Runs one case in a fresh sandbox; panics with what is wrong.
fn run_case(reg: &Registry, push: &Pusher, case: &Case, who: Who) {
    let sb = Sandbox::new(who);
    let base_ref = format!("{}/good/base:v1", reg.addr());
    let r = sb.pull(&base_ref);
    assert_eq!(
        r.code,
        Some(0),
        "pulling the good base failed:\n{}",
        r.describe()
    );
    if let Who::User(dirs) = who {
        let made = fs::metadata(sb.root().join("overlay2")).expect("overlay2");
        assert_eq!(made.uid(), dirs.user.uid, "the store is made by the user");
    }

    let repo = format!("hostile/{}", case.name);
    let reference = format!("{}/{repo}:v1", reg.addr());
    match &case.push {
        Push::Image(img) => push.image(&repo, Some("v1"), img),
        Push::IndexWithDeletedChild(idx) => {
            push.index(&repo, "v1", idx);
            let url = format!(
                "{}/v2/{repo}/manifests/{}",
                reg.url(),
                idx.images[0].manifest_digest
            );
            let resp = reqwest::blocking::Client::new()
                .delete(url)
                .send()
                .expect("DELETE manifest");
            assert_eq!(
                resp.status().as_u16(),
                202,
                "delete child manifest: {resp:?}"
            );
        }
    }

    let outside = sb.outside();
    let store = sb.store();
    let run = sb.pull(&reference);
    eprintln!("  {}: exit {:?}: {}", case.name, run.code, run.error_line());
    let ctx = || format!("\n{}", run.describe());
    assert!(
        !run.stderr.contains("panicked") && run.code.is_some(),
        "strata crashed:{}",
        ctx()
    );

    match &case.expect {
        Expect::Refused { entry, says } => {
            assert_eq!(run.code, Some(1), "expected exit code 1:{}", ctx());
            let line = run.error_line();
            assert!(!line.is_empty(), "no `error:` line:{}", ctx());
            assert!(
                line.contains(&repo),
                "the error must name the image {repo}:{}",
                ctx()
            );
            if let Some(layer) = &case.layer {
                assert!(
                    line.contains(layer.as_str()),
                    "the error must name the layer {layer}:{}",
                    ctx()
                );
            }
            if let Some(entry) = entry {
                let shown = format!("entry {:?}", String::from_utf8_lossy(entry));
                assert!(
                    line.contains(&shown),
                    "the error must name the entry ({shown}):{}",
                    ctx()
                );
            }
            // What the message says beyond naming the image and the layer (the case names
            // are in the repository names).
            let after = |l: &str, what: &str| l.find(what).map(|i| l[i + what.len()..].to_string());
            let reason = case
                .layer
                .as_deref()
                .and_then(|d| after(line, d))
                .or_else(|| after(line, &format!("{repo}:v1")))
                .unwrap_or_default()
                .to_lowercase();
            for s in says {
                assert!(
                    reason.contains(&s.to_lowercase()),
                    "the error must say {s:?}:{}",
                    ctx()
                );
            }
            let diff = snapshot_diff(&store, &sb.store());
            assert!(
                diff.is_empty(),
                "the failed pull changed the store:\n{diff}{}",
                ctx()
            );
            let staging = sb.root().join("staging");
            if let Ok(rd) = fs::read_dir(&staging) {
                let left: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
                assert!(left.is_empty(), "staging leftovers: {left:?}");
            }
            // Nothing of it is reused: the same pull fails the same way.
            let again = sb.pull(&reference);
            // (Byte counts may differ: how much of a too-long blob arrives before the
            // refusal depends on chunking.)
            let no_digits = |s: &str| s.replace(|c: char| c.is_ascii_digit(), "");
            assert_eq!(
                (again.code, no_digits(again.error_line())),
                (run.code, no_digits(run.error_line())),
                "the second pull differs:\n{}",
                again.describe()
            );
            // The store still works.
            let after_ref = format!("{}/good/after:v1", reg.addr());
            let ok = sb.pull(&after_ref);
            assert_eq!(
                ok.code,
                Some(0),
                "a good pull after the hostile one:\n{}",
                ok.describe()
            );
            let graph = Graph::of(&sb.inspect(&after_ref));
            assert_file(&graph.upper, "after/ok", b"still works\n");
        }
        Expect::Accepted(check) => {
            assert_eq!(
                run.code,
                Some(0),
                "expected the layer to be accepted:{}",
                ctx()
            );
            let graph = Graph::of(&sb.inspect(&reference));
            assert_eq!(graph.lower.len(), 1, "two layers expected");
            check(&graph.upper, matches!(who, Who::User(_)), &run.stderr);
            // The base layer next to it is untouched.
            let base = &graph.lower[0];
            assert_file(base, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n");
            assert_eq!(listing(base), ["base", "base/ok", "etc", "etc/passwd"]);
        }
    }

    let diff = snapshot_diff(&outside, &sb.outside());
    assert!(
        diff.is_empty(),
        "something outside the store changed:\n{diff}{}",
        ctx()
    );
    let mut escaped = escaped_names(&[sb.path(), &sb.root()]);
    if matches!(case.expect, Expect::Refused { .. }) {
        escaped.extend(escape_names_under(&sb.root()));
    }
    assert!(escaped.is_empty(), "escaped: {escaped:?}{}", ctx());
}

/// Starts a registry and runs every case in it as `who` (see [`run_cases_in`]).
fn run_cases(cases: Vec<Case>, who: Who) {
    support::preflight();
    let reg = Registry::start();
    let push = Pusher::new(&reg);
    run_cases_in(&reg, &push, cases, who);
}

/// Pushes the good images, runs every case as `who` and reports all failures.
/// `STRATA_HOSTILE_ONLY=name,name` runs only the named cases (for debugging).
fn run_cases_in(reg: &Registry, push: &Pusher, mut cases: Vec<Case>, who: Who) {
    if let Ok(only) = std::env::var("STRATA_HOSTILE_ONLY") {
        let only: Vec<&str> = only.split(',').collect();
        cases.retain(|c| only.contains(&c.name));
    }
    push.image("good/base", Some("v1"), &good_base());
    push.image("good/after", Some("v1"), &good_after());
    let before_host = escaped_names(&[]);
    let mut failures = Vec::new();
    let n = cases.len();
    for case in &cases {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| run_case(reg, push, case, who)));
        eprintln!(
            "case {}: {:?} in {:?}",
            case.name,
            result.is_ok(),
            started.elapsed()
        );
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("=== case {}: {msg}", case.name));
        }
    }
    let after_host = escaped_names(&[]);
    assert_eq!(before_host, after_host, "names escaped to the host");
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Names, links, whiteouts, the root entry

fn up(n: usize) -> String {
    "../".repeat(n)
}

#[test]
fn hostile_names_links_and_whiteouts() {
    run_cases(names_links_and_whiteouts(), Who::Root);
}

/// The cases of names, links, whiteouts and the root entry.
fn names_links_and_whiteouts() -> Vec<Case> {
    let deep = up(12);
    let long = "n".repeat(256);
    let mut cases = vec![
        tar_case(
            "dotdot-name",
            RawTar::new()
                .file(format!("{deep}tmp/{ESCAPE}-dotdot"), b"x")
                .finish(),
            refused(format!("{deep}tmp/{ESCAPE}-dotdot"), &["escapes"]),
        ),
        tar_case(
            "dotdot-inner",
            RawTar::new()
                .dir("a/")
                .file(format!("a/../../../{ESCAPE}-inner"), b"x")
                .finish(),
            refused(format!("a/../../../{ESCAPE}-inner"), &["escapes"]),
        ),
        tar_case(
            "dotdot-dir",
            RawTar::new().dir("..").finish(),
            refused("..", &["escapes"]),
        ),
        tar_case(
            "dotdot-pax-path",
            RawTar::new()
                .pax(&[(b"path", format!("{deep}{ESCAPE}-pax").as_bytes())])
                .file("harmless", b"x")
                .finish(),
            refused(format!("{deep}{ESCAPE}-pax"), &["escapes"]),
        ),
        tar_case(
            "dotdot-gnu-longname",
            RawTar::new()
                .gnu_long_name(format!("{deep}{ESCAPE}-gnu-{}", "l".repeat(100)))
                .member(
                    RawHeader::new(b'0', "harmless").format(HeaderFormat::Gnu),
                    b"x",
                )
                .finish(),
            refused(
                format!("{deep}{ESCAPE}-gnu-{}", "l".repeat(100)),
                &["escapes"],
            ),
        ),
        tar_case(
            "dotdot-ustar-prefix",
            RawTar::new()
                .member(
                    RawHeader::new(b'0', format!("{ESCAPE}-prefix"))
                        .prefix(&deep[..deep.len() - 1]),
                    b"x",
                )
                .finish(),
            refused(format!("{deep}{ESCAPE}-prefix"), &["escapes"]),
        ),
        tar_case(
            "dotdot-hardlink-target",
            RawTar::new()
                .hardlink(format!("{ESCAPE}-h"), format!("{deep}etc/passwd"))
                .finish(),
            refused(format!("{ESCAPE}-h"), &["escapes"]),
        ),
        tar_case(
            "absolute-hardlink-target",
            // `/etc/passwd` is the layer's own etc/passwd (stripped like names), which this
            // layer does not have: the base layer's does not count.
            RawTar::new()
                .hardlink(format!("{ESCAPE}-abs"), "/etc/passwd")
                .finish(),
            refused(format!("{ESCAPE}-abs"), &["does not exist"]),
        ),
        tar_case(
            "hardlink-to-later-member",
            RawTar::new()
                .hardlink("early", "later")
                .file("later", b"later\n")
                .finish(),
            refused("early", &["does not exist"]),
        ),
        tar_case(
            "hardlink-through-symlink-to-host",
            RawTar::new()
                .symlink("hostetc", "/etc")
                .hardlink(format!("{ESCAPE}-via"), "hostetc/passwd")
                .finish(),
            refused(format!("{ESCAPE}-via"), &["does not exist"]),
        ),
        tar_case(
            "hardlink-to-directory",
            RawTar::new().dir("d/").hardlink("h", "d").finish(),
            refused("h", &["directory"]),
        ),
        tar_case(
            "hardlink-to-root",
            RawTar::new().hardlink("h", "./").finish(),
            refused("h", &["root"]),
        ),
        tar_case(
            "symlink-loop-then-through",
            RawTar::new()
                .symlink("l1", "l2")
                .symlink("l2", "l1")
                .file("l1/x", b"x")
                .finish(),
            refused("l1/x", &[]),
        ),
        tar_case(
            "whiteout-dotdot",
            RawTar::new().file("../.wh.x", b"").finish(),
            refused("../.wh.x", &["escapes"]),
        ),
        tar_case(
            "whiteout-dotdot-deep",
            RawTar::new()
                .file(format!("{deep}tmp/.wh.{ESCAPE}"), b"")
                .finish(),
            refused(format!("{deep}tmp/.wh.{ESCAPE}"), &["escapes"]),
        ),
        tar_case(
            "whiteout-bare",
            RawTar::new().dir("d/").file("d/.wh.", b"").finish(),
            refused("d/.wh.", &["names no file"]),
        ),
        tar_case(
            "whiteout-dots",
            RawTar::new().file(".wh..", b"").finish(),
            refused(".wh..", &[]),
        ),
        tar_case(
            "whiteout-longer-than-name-max",
            RawTar::new()
                .pax(&[(b"path", format!("etc/.wh.{long}").as_bytes())])
                .file("x", b"")
                .finish(),
            refused(format!("etc/.wh.{long}"), &[]),
        ),
        tar_case(
            "name-longer-than-name-max",
            RawTar::new()
                .pax(&[(b"path", format!("etc/{long}").as_bytes())])
                .file("x", b"data")
                .finish(),
            refused(format!("etc/{long}"), &[]),
        ),
        tar_case(
            "root-as-file",
            RawTar::new().file("./", b"").finish(),
            refused("./", &["root"]),
        ),
        tar_case(
            "root-dot-as-symlink",
            RawTar::new().symlink(".", "/").finish(),
            refused(".", &["root"]),
        ),
        tar_case(
            "root-slash-as-symlink",
            RawTar::new().symlink("/", "/etc").finish(),
            refused("/", &["root"]),
        ),
        tar_case(
            "root-as-fifo",
            RawTar::new()
                .member(RawHeader::new(b'6', "./"), &[])
                .finish(),
            refused("./", &["root"]),
        ),
        tar_case(
            "empty-name",
            RawTar::new().file("", b"x").finish(),
            refused("", &["empty name"]),
        ),
        tar_case(
            "nul-in-pax-path",
            RawTar::new()
                .pax(&[(b"path", format!("etc/{ESCAPE}\0/../../passwd").as_bytes())])
                .file("harmless", b"x")
                .finish(),
            refused(format!("etc/{ESCAPE}\0/../../passwd"), &["NUL"]),
        ),
        tar_case(
            "nul-in-pax-linkpath",
            RawTar::new()
                .pax(&[(b"linkpath", b"/etc/passwd\0x")])
                .symlink("s", "placeholder")
                .finish(),
            refused("s", &["NUL"]),
        ),
        tar_case(
            "unknown-member-type",
            RawTar::new()
                .member(RawHeader::new(b'Z', "weird"), b"")
                .finish(),
            refused("weird", &["unsupported"]),
        ),
        tar_case(
            "data-on-symlink",
            RawTar::new()
                .member(
                    RawHeader::new(b'2', "s").link("t"),
                    b"data a symlink must not carry",
                )
                .finish(),
            refused("s", &["must not carry data"]),
        ),
    ];

    // --- Legal but tricky: exact results.
    cases.extend([
        tar_case(
            "hardlink-then-file-same-name",
            RawTar::new()
                .file("orig", b"original\n")
                .hardlink("link", "orig")
                .file("link", b"new content\n")
                .finish(),
            accepted(|d| {
                assert_file(d, "orig", b"original\n");
                assert_file(d, "link", b"new content\n");
                let (a, b) = (
                    fs::metadata(d.join("orig")).unwrap(),
                    fs::metadata(d.join("link")).unwrap(),
                );
                assert_ne!(a.ino(), b.ino(), "link must be a new inode");
                assert_eq!(a.nlink(), 1);
            }),
        ),
        tar_case(
            "symlink-then-file-same-name",
            RawTar::new()
                .symlink("s", format!("{}tmp/{ESCAPE}-wt", up(8)))
                .symlink("abs", format!("/etc/{ESCAPE}-abs"))
                .file("s", b"replaced\n")
                .file("abs", b"replaced too\n")
                .finish(),
            accepted(|d| {
                assert_file(d, "s", b"replaced\n");
                assert_file(d, "abs", b"replaced too\n");
                assert_eq!(listing(d), ["abs", "s"]);
            }),
        ),
        tar_case(
            "symlink-to-root-then-through",
            RawTar::new()
                .symlink("rootlink", "/")
                .file(format!("rootlink/tmp/{ESCAPE}-abs"), b"inside\n")
                .dir("rootlink/newdir/")
                .file("rootlink/newdir/f", b"f\n")
                .file("rootlink/etc/passwd", b"layer passwd\n")
                .finish(),
            accepted(|d| {
                assert_symlink(d, "rootlink", "/");
                assert_file(d, &format!("tmp/{ESCAPE}-abs"), b"inside\n");
                assert_file(d, "newdir/f", b"f\n");
                assert_file(d, "etc/passwd", b"layer passwd\n");
            }),
        ),
        tar_case(
            "symlink-dotdot-then-through",
            RawTar::new()
                .dir("a/")
                .symlink("a/up", "../../../../..")
                .file(format!("a/up/{ESCAPE}-up"), b"at the root\n")
                .symlink("a/upetc", "../../../../../etc")
                .file("a/upetc/shadow", b"layer shadow\n")
                .finish(),
            accepted(|d| {
                assert_file(d, &format!("{ESCAPE}-up"), b"at the root\n");
                assert_file(d, "etc/shadow", b"layer shadow\n");
                assert_symlink(d, "a/up", "../../../../..");
            }),
        ),
        tar_case(
            "hardlink-name-through-symlink",
            RawTar::new()
                .file("f", b"linked\n")
                .symlink("r", "/")
                .hardlink(format!("r/tmp/{ESCAPE}-hl"), "f")
                .finish(),
            accepted(|d| {
                assert_file(d, &format!("tmp/{ESCAPE}-hl"), b"linked\n");
                let (a, b) = (
                    fs::metadata(d.join("f")).unwrap(),
                    fs::metadata(d.join(format!("tmp/{ESCAPE}-hl"))).unwrap(),
                );
                assert_eq!(a.ino(), b.ino(), "a hard link inside the layer");
            }),
        ),
        tar_case(
            "whiteout-through-symlink-ignored",
            RawTar::new()
                .symlink("r", "/")
                .file("r/etc/.wh.passwd", b"")
                .file("r/.wh..wh..opq", b"")
                .symlink("d", "/base")
                .file("d/.wh.ok", b"")
                .finish(),
            accepted(|d| {
                assert_eq!(listing(d), ["d", "r"], "nothing created through a symlink");
                assert_absent(d, "etc");
                for xattr in ["trusted.overlay.opaque", "user.overlay.opaque"] {
                    assert!(
                        crate::support::tree::get_xattr(d, xattr).is_none(),
                        "the layer root must not become opaque ({xattr})"
                    );
                }
            }),
        ),
        tar_case(
            "absolute-names-stripped",
            RawTar::new()
                .dir("/abs/")
                .file(format!("/abs/{ESCAPE}-stripped"), b"stripped\n")
                .file(format!("//./abs//{ESCAPE}-2"), b"2\n")
                .finish(),
            accepted(|d| {
                assert_file(d, &format!("abs/{ESCAPE}-stripped"), b"stripped\n");
                assert_file(d, &format!("abs/{ESCAPE}-2"), b"2\n");
            }),
        ),
        tar_case(
            "no-end-of-archive-marker",
            RawTar::new()
                .dir("x/")
                .file("x/a", b"a\n")
                .file("x/b", &noise(1000, 1))
                .unterminated(),
            accepted(|d| {
                assert_file(d, "x/a", b"a\n");
                assert_file(d, "x/b", &noise(1000, 1));
            }),
        ),
        tar_case(
            "one-zero-block-only",
            {
                let mut t = RawTar::new();
                t.file("only", b"one zero block\n").raw(&[0u8; 512]);
                t.unterminated()
            },
            accepted(|d| assert_file(d, "only", b"one zero block\n")),
        ),
    ]);

    // --- Devices: made by root; skipped with a warning in a user namespace, where mknod of a
    // device is not allowed (as podman skips them); a fifo is made by both.
    cases.push(tar_case(
        "device-nodes",
        RawTar::new()
            .dir("dev/")
            .member(
                RawHeader::new(b'3', "dev/null").device(1, 3).mode(0o666),
                &[],
            )
            .member(
                RawHeader::new(b'4', "dev/loop0").device(7, 0).mode(0o660),
                &[],
            )
            .member(RawHeader::new(b'6', "dev/fifo").mode(0o644), &[])
            .finish(),
        accepted_as(|d, rootless, stderr| {
            let fifo = fs::symlink_metadata(d.join("dev/fifo")).expect("dev/fifo");
            assert!(fifo.file_type().is_fifo(), "dev/fifo is a fifo");
            if rootless {
                assert_eq!(listing(d), ["dev", "dev/fifo"], "devices skipped");
                for (kind, name) in [("character", "dev/null"), ("block", "dev/loop0")] {
                    assert!(
                        stderr.contains(&format!("skipping {kind} device"))
                            && stderr.contains(name),
                        "a warning for {name}:\n{stderr}"
                    );
                }
            } else {
                let null = fs::symlink_metadata(d.join("dev/null")).expect("dev/null");
                assert!(null.file_type().is_char_device() && null.rdev() == libc::makedev(1, 3));
                let lo = fs::symlink_metadata(d.join("dev/loop0")).expect("dev/loop0");
                assert!(lo.file_type().is_block_device() && lo.rdev() == libc::makedev(7, 0));
            }
        }),
    ));

    // --- Truncated plain tar streams.
    let big = noise(1 << 20, 7);
    let full = RawTar::new()
        .file("small", b"small\n")
        .file("big", &big)
        .finish();
    cases.push(tar_case(
        "truncated-tar-mid-member",
        full[..512 * 2 + 512 + 300 * 1024].to_vec(),
        refused("big", &["tar stream"]),
    ));
    cases.push(tar_case(
        "truncated-tar-mid-header",
        full[..512 * 2 + 200].to_vec(),
        refused_no_entry(&["tar stream"]),
    ));
    cases
}

// ---------------------------------------------------------------------------------------
// Streams, blobs, manifests and configs

#[test]
fn hostile_streams_manifests_and_configs() {
    run_cases(streams_manifests_and_configs(), Who::Root);
}

/// The cases of truncated and lying streams, blobs, manifests and configs.
fn streams_manifests_and_configs() -> Vec<Case> {
    let big = noise(2 << 20, 9);
    let tar = RawTar::new()
        .file("small", b"small\n")
        .file("big", &big)
        .finish();
    let layer = Layer::from_tar(tar.clone());
    let mut cases = Vec::new();

    // Truncated gzip / zstd inside a member's data.
    let img = on_base(layer.clone(), Compression::Gzip);
    let gz = img.layers[1].blob.clone();
    cases.push(image_case(
        "truncated-gzip",
        with_blob(&img, 1, gz[..gz.len() / 2].to_vec(), None),
        Some(1),
        refused("big", &[]),
    ));
    let img = on_base(layer.clone(), Compression::Zstd);
    let zst = img.layers[1].blob.clone();
    cases.push(image_case(
        "truncated-zstd",
        with_blob(&img, 1, zst[..zst.len() / 2].to_vec(), None),
        Some(1),
        refused("big", &[]),
    ));

    // Truncated exactly where the tar stream is at a member boundary, with a diff_id that
    // matches what was cut (an attacker controls the config too): only the compression
    // stream itself can tell.
    let first = RawTar::new()
        .file("first", b"first member\n")
        .unterminated();
    let rest = RawTar::new().file("second", &noise(4096, 3)).finish();
    {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&first).unwrap();
        enc.flush().unwrap(); // sync flush: all of `first` is decodable now
        let cut = enc.get_ref().len();
        enc.write_all(&rest).unwrap();
        let whole = enc.finish().unwrap();
        let img = on_base(
            Layer::from_tar([first.clone(), rest.clone()].concat()),
            Compression::Gzip,
        );
        cases.push(image_case(
            "truncated-gzip-at-member-boundary",
            with_blob(&img, 1, whole[..cut].to_vec(), Some(sha256_digest(&first))),
            Some(1),
            refused_no_entry(&[]),
        ));
    }
    {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.write_all(&first).unwrap();
        enc.flush().unwrap();
        let cut = enc.get_ref().len();
        enc.write_all(&rest).unwrap();
        let whole = enc.finish().unwrap();
        let img = on_base(
            Layer::from_tar([first.clone(), rest.clone()].concat()),
            Compression::Zstd,
        );
        cases.push(image_case(
            "truncated-zstd-at-member-boundary",
            with_blob(&img, 1, whole[..cut].to_vec(), Some(sha256_digest(&first))),
            Some(1),
            refused_no_entry(&[]),
        ));
    }

    // Blob longer / shorter than the manifest says.
    let img = on_base(layer.clone(), Compression::Gzip);
    let real = img.layers[1].blob.len();
    cases.push(image_case(
        "blob-too-long",
        rewrite_manifest(&img, |m| m["layers"][1]["size"] = Value::from(real - 100)),
        Some(1),
        // The error must say what is wrong (not report a byte count below the declared size).
        refused_no_entry(&["longer than"]),
    ));
    cases.push(image_case(
        "blob-too-short",
        rewrite_manifest(&img, |m| m["layers"][1]["size"] = Value::from(real + 100)),
        Some(1),
        refused_no_entry(&[]),
    ));

    // An unknown layer media type is not sniffed into acceptance (the blob is good gzip).
    cases.push(image_case(
        "unknown-layer-media-type",
        rewrite_manifest(&img, |m| {
            m["layers"][1]["mediaType"] = Value::from("application/vnd.example.layer.v1+foo")
        }),
        Some(1),
        refused_no_entry(&["application/vnd.example.layer.v1+foo"]),
    ));
    // A media type that disagrees with the content.
    cases.push(image_case(
        "zstd-media-type-on-gzip-blob",
        rewrite_manifest(&img, |m| {
            m["layers"][1]["mediaType"] = Value::from(image::media::OCI_LAYER_ZSTD)
        }),
        Some(1),
        refused_no_entry(&["zstd"]),
    ));

    // A config that is not JSON.
    let bad = with_config(&img, b"this is not JSON {\"rootfs\":".to_vec(), |_| {});
    let bad_digest = bad.config_digest.clone();
    cases.push(image_case(
        "config-not-json",
        bad,
        None,
        refused_no_entry(&["config"]),
    ));
    let _ = bad_digest;

    // An index whose (only) manifest is gone from the registry.
    let child = on_base(layer.clone(), Compression::Gzip);
    let missing = child.manifest_digest.clone();
    let idx = Index::new(Flavor::Oci, vec![child]);
    cases.push(Case {
        name: "index-child-manifest-gone",
        push: Push::IndexWithDeletedChild(idx),
        layer: None,
        expect: refused_no_entry(&[missing.as_str()]),
    });
    cases
}

/// The whole corpus (both case lists, the bomb and the deep paths, one registry) pulled by an
/// unprivileged user with a subordinate range, in its user namespace: the same expectations
/// (the confined applier refuses or confines the same entries, in the same words), the
/// sandbox's canaries being the user's own files, and no default store made in the user's
/// `$XDG_DATA_HOME`.
#[test]
fn hostile_corpus_rootless() {
    support::preflight();
    support::require_tool("newuidmap");
    let dirs = UserDirs::new(unpriv::ensure_user(unpriv::USER, true));
    let who = Who::User(&dirs);
    let reg = Registry::start();
    let push = Pusher::new(&reg);
    let mut cases = names_links_and_whiteouts();
    cases.extend(streams_manifests_and_configs());
    run_cases_in(&reg, &push, cases, who);
    decompression_bomb(&reg, &push, who);
    deep_paths(&reg, &push, who);
    assert!(!dirs.root().exists(), "no store in $XDG_DATA_HOME");
    let home = snapshot(&dirs.path().join("home"), &|_| false, false);
    assert_eq!(home.len(), 1, "nothing written in HOME: {home:?}");
}

// ---------------------------------------------------------------------------------------
// A decompression bomb

const GIB: u64 = 1 << 30;
const MIB: usize = 1 << 20;

/// A few MB of gzip (concatenated members, which gzip readers must accept) inflating to a tar
/// whose one member `bomb` is 4 GiB of zeros. Returns the blob and the tar's sha256.
fn gzip_bomb(size: u64) -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let header = RawHeader::new(b'0', "bomb").size(size).to_block();
    let zeros = vec![0u8; MIB];
    let member = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let zero_member = member(&zeros);
    let mut blob = member(&header);
    let mut h = sha2::Sha256::new();
    h.update(header);
    assert_eq!(size % MIB as u64, 0);
    for _ in 0..size / MIB as u64 {
        blob.extend_from_slice(&zero_member);
        h.update(&zeros);
    }
    // End of archive.
    blob.extend_from_slice(&member(&[0u8; 1024]));
    h.update([0u8; 1024]);
    (blob, format!("sha256:{}", hex::encode(h.finalize())))
}

/// 4 GiB of zeros in one member, from ~4 MB of gzip: the pull must stream it in bounded
/// memory (peak RSS of the strata process < 256 MiB) and either accept it, verified, with
/// the file kept sparse (zeros take no disk), or refuse it against a size limit.
#[test]
fn decompression_bomb_streams_in_bounded_memory() {
    support::preflight();
    let reg = Registry::start();
    decompression_bomb(&reg, &Pusher::new(&reg), Who::Root);
}

/// The bomb pulled as `who` from `reg`.
fn decompression_bomb(reg: &Registry, push: &Pusher, who: Who) {
    let size = 4 * GIB;
    let (blob, diff_id) = gzip_bomb(size);
    assert!(
        blob.len() < 8 * MIB,
        "the bomb is {} bytes of gzip",
        blob.len()
    );
    let img = on_base(Layer::from_tar(Vec::new()), Compression::Gzip);
    let img = with_blob(&img, 1, blob, Some(diff_id));
    push.image("hostile/bomb", Some("v1"), &img);
    let sb = Sandbox::new(who);
    let outside = sb.outside();
    let reference = format!("{}/hostile/bomb:v1", reg.addr());
    let run = sb.pull(&reference);
    eprintln!(
        "bomb: exit {:?} in {:?}, peak RSS {} MiB",
        run.code,
        run.elapsed,
        run.max_rss_kib / 1024
    );
    assert!(
        run.code.is_some() && !run.stderr.contains("panicked"),
        "crashed:\n{}",
        run.describe()
    );
    assert!(
        run.max_rss_kib < 256 * 1024,
        "peak RSS {} MiB: not bounded:\n{}",
        run.max_rss_kib / 1024,
        run.describe()
    );
    match run.code {
        Some(0) => {
            let graph = Graph::of(&sb.inspect(&reference));
            let f = graph.upper.join("bomb");
            let md = fs::metadata(&f).expect("bomb file");
            assert_eq!(md.len(), size, "logical size");
            let on_disk = md.blocks() * 512;
            eprintln!("bomb: accepted, {} MiB on disk", on_disk >> 20);
            assert!(
                on_disk < 64 * MIB as u64,
                "4 GiB of zeros take {} MiB of disk: zero blocks are written out instead of \
                 left as holes",
                on_disk >> 20
            );
        }
        _ => {
            let line = run.error_line();
            eprintln!("bomb: refused: {line}");
            assert!(
                line.contains("hostile/bomb") && line.to_lowercase().contains("limit"),
                "a refusal must name the image and the size limit:\n{}",
                run.describe()
            );
            assert_store_has_only_base(&sb);
        }
    }
    let diff = snapshot_diff(&outside, &sb.outside());
    assert!(diff.is_empty(), "outside changed:\n{diff}");
}

/// After a refused pull of a two-layer image: no staging leftovers, at most the base layer
/// stored, no image recorded.
fn assert_store_has_only_base(sb: &Sandbox) {
    let names = |d: &str| -> Vec<OsString> {
        fs::read_dir(sb.root().join(d))
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    let staging = names("staging");
    assert!(staging.is_empty(), "staging leftovers {staging:?}");
    let layers: Vec<OsString> = names("overlay2").into_iter().filter(|n| n != "l").collect();
    assert!(
        layers.len() <= 1,
        "only the base layer may be stored: {layers:?}"
    );
    assert!(
        names("layers").len() <= 1,
        "layer records: {:?}",
        names("layers")
    );
    assert!(
        names("images").is_empty(),
        "image records: {:?}",
        names("images")
    );
}

// ---------------------------------------------------------------------------------------
// Paths deeper than PATH_MAX

/// 300 nested directories of 20-byte names (6,300-byte paths, beyond PATH_MAX = 4096), each
/// as its own member, then a file at the bottom: applied with *at() calls or refused cleanly.
#[test]
fn paths_deeper_than_path_max() {
    support::preflight();
    let reg = Registry::start();
    deep_paths(&reg, &Pusher::new(&reg), Who::Root);
}

/// The deep paths pulled as `who` from `reg`.
fn deep_paths(reg: &Registry, push: &Pusher, who: Who) {
    let comp = |i: usize| format!("d{i:03}-{}", "x".repeat(15));
    assert_eq!(comp(0).len(), 20);
    let mut t = RawTar::new();
    let mut path = String::new();
    for i in 0..300 {
        path.push_str(&comp(i));
        path.push('/');
        t.pax(&[(b"path", path.as_bytes())]).dir(format!("d{i}"));
    }
    let file = format!("{path}{ESCAPE}-deep");
    t.pax(&[(b"path", file.as_bytes())])
        .file("f", b"at the bottom\n");
    let img = on_base(Layer::from_tar(t.finish()), Compression::Gzip);
    push.image("hostile/deep", Some("v1"), &img);
    let sb = Sandbox::new(who);
    let outside = sb.outside();
    let reference = format!("{}/hostile/deep:v1", reg.addr());
    let run = sb.pull(&reference);
    assert!(
        run.code.is_some() && !run.stderr.contains("panicked"),
        "crashed:\n{}",
        run.describe()
    );
    match run.code {
        Some(0) => {
            eprintln!("deep paths: accepted");
            let graph = Graph::of(&sb.inspect(&reference));
            // Walk down with openat: the whole path is too long for one syscall.
            let mut fd = rustix::fs::open(
                &graph.upper,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .expect("open layer dir");
            for i in 0..300 {
                fd = rustix::fs::openat(
                    &fd,
                    comp(i).as_str(),
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::NOFOLLOW,
                    rustix::fs::Mode::empty(),
                )
                .unwrap_or_else(|e| panic!("level {i}: {e}"));
            }
            let f = rustix::fs::openat(
                &fd,
                format!("{ESCAPE}-deep").as_str(),
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW,
                rustix::fs::Mode::empty(),
            )
            .expect("the file at the bottom");
            let mut content = String::new();
            std::io::Read::read_to_string(&mut fs::File::from(f), &mut content).unwrap();
            assert_eq!(content, "at the bottom\n");
        }
        code => {
            let line = run.error_line();
            let head: String = line.chars().take(200).collect();
            eprintln!("deep paths: refused: {head}...");
            assert_eq!(code, Some(1), "{}", run.describe());
            let line = run.error_line();
            assert!(
                line.contains("hostile/deep") && line.contains(&img.layers[1].digest),
                "{}",
                run.describe()
            );
            assert!(
                line.contains("entry \"d"),
                "the error must name the entry:\n{}",
                run.describe()
            );
            assert_store_has_only_base(&sb);
        }
    }
    let diff = snapshot_diff(&outside, &sb.outside());
    assert!(diff.is_empty(), "outside changed:\n{diff}");
    let escaped = escaped_names(&[sb.path()]);
    assert!(escaped.is_empty(), "escaped: {escaped:?}");
}

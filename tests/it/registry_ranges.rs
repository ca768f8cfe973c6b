//! Segmented fetch of a large blob through a logging proxy in front of docker-registry: one
//! `Range` request per segment, whose bytes make the same layer as one stream; a proxy that
//! strips `Range` (200, whole) or refuses it (416) gives a correct pull with the blob sent once;
//! a segment cut mid-way is resumed.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::time::Instant;

use crate::support::image::{Compression, Entry, Image, ImageBuilder};
use crate::support::logproxy::{Behaviour, LogProxy, Logged};
use crate::support::netenv::{assert_pulled, filled_registry, noise, run_env};
use crate::support::registry::Registry;
use crate::support::strata::{Output, Strata};
use crate::support::{self, tempdir};

/// Size of the big layer's file: above the default 32 MiB threshold, four 10 MiB segments.
const BIG: usize = 40 << 20;

/// An image of one uncompressed layer holding `BIG` random bytes.
fn big_image(seed: u64) -> Image {
    ImageBuilder::new(support::image::Flavor::Oci)
        .entries(
            &[
                Entry::dir("data"),
                Entry::file("data/big.bin", noise(seed, BIG)),
            ],
            Compression::None,
        )
        .build()
}

struct World {
    _work: tempfile::TempDir,
    dir: std::path::PathBuf,
    _reg: Registry,
    img: Image,
    proxy: LogProxy,
}

fn world(name: &str, seed: u64, behaviour: Behaviour) -> World {
    support::preflight();
    let work = tempdir(name);
    let dir = work.path().to_path_buf();
    let img = big_image(seed);
    let reg = filled_registry(&[("test/big", "v1", &img)]);
    let proxy = LogProxy::start(reg.addr().parse().expect("registry address"), behaviour);
    World {
        _work: work,
        dir,
        _reg: reg,
        img,
        proxy,
    }
}

impl World {
    fn reference(&self) -> String {
        format!("{}/test/big:v1", self.proxy.addr())
    }

    /// Pulls into a fresh root with `config` (TOML) as the config file.
    fn pull(&self, config: &str) -> (Strata, Output) {
        let s = Strata::new();
        let file = self.dir.join("config.toml");
        fs::write(&file, config).unwrap();
        let docker = self.dir.join("docker");
        fs::create_dir_all(&docker).unwrap();
        let env = [("XDG_RUNTIME_DIR", OsString::from(self.dir.join("xdg")))];
        let cfg = file.to_str().unwrap();
        let reference = self.reference();
        let out = run_env(
            &s,
            &["--config", cfg, "pull", &reference],
            &docker,
            &env,
            None,
        );
        (s, out)
    }

    /// The requests for the big blob.
    fn blob_requests(&self) -> Vec<Logged> {
        let path = format!("/v2/test/big/blobs/{}", self.img.layers[0].digest);
        self.proxy
            .log()
            .into_iter()
            .filter(|l| l.path == path)
            .collect()
    }

    fn size(&self) -> u64 {
        self.img.layers[0].blob.len() as u64
    }
}

fn sent(requests: &[Logged]) -> u64 {
    requests.iter().map(|l| l.body_bytes).sum()
}

#[test]
fn a_large_blob_comes_in_parallel_ranges_and_makes_the_same_layer() {
    let w = world("ranges", 81, Behaviour::default());
    let (s, out) = w.pull("");
    out.ok();
    assert_pulled(&s, &w.reference(), &w.img);
    let requests = w.blob_requests();
    let ranged = requests.iter().filter(|l| l.range.is_some()).count();
    assert_eq!(ranged, 4, "one request per segment: {requests:#?}");
    assert!(requests.iter().all(|l| l.status == 206), "{requests:#?}");
    assert_eq!(sent(&requests), w.size(), "each byte once: {requests:#?}");

    // One stream (ranged fetch off): the same image, one request.
    w.proxy.clear();
    let (single, out) = w.pull("max-concurrent-chunks = 1\n");
    out.ok();
    assert_pulled(&single, &w.reference(), &w.img);
    let requests = w.blob_requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].range, None);
    assert_same_file(&s, &single);
}

/// The big file as unpacked in both stores is the same.
fn assert_same_file(a: &Strata, b: &Strata) {
    fn find(dir: &Path) -> Option<std::path::PathBuf> {
        for e in fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            let ft = e.file_type().ok()?;
            if ft.is_file() && p.ends_with("data/big.bin") {
                return Some(p);
            }
            if ft.is_dir()
                && let Some(found) = find(&p)
            {
                return Some(found);
            }
        }
        None
    }
    let read = |s: &Strata| {
        let path = find(&s.overlay2()).expect("big.bin in the store");
        fs::read(path).unwrap()
    };
    assert!(read(a) == read(b), "the unpacked files differ");
}

#[test]
fn a_registry_that_ignores_range_sends_the_blob_once() {
    let w = world(
        "ranges-ignored",
        82,
        Behaviour {
            strip_range: true,
            ..Behaviour::default()
        },
    );
    let (s, out) = w.pull("");
    out.ok();
    assert_pulled(&s, &w.reference(), &w.img);
    let requests = w.blob_requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].status, 200);
    assert_eq!(sent(&requests), w.size());
}

#[test]
fn a_registry_that_refuses_range_sends_the_blob_once() {
    let w = world(
        "ranges-refused",
        83,
        Behaviour {
            refuse_range: true,
            ..Behaviour::default()
        },
    );
    let (s, out) = w.pull("");
    out.ok();
    assert_pulled(&s, &w.reference(), &w.img);
    let requests = w.blob_requests();
    let statuses: Vec<u16> = requests.iter().map(|l| l.status).collect();
    assert_eq!(statuses, [416, 200], "{requests:#?}");
    assert_eq!(sent(&requests), w.size());
}

#[test]
fn a_segment_cut_mid_way_is_resumed() {
    let w = world(
        "ranges-cut",
        84,
        Behaviour {
            cut_one_chunk: true,
            ..Behaviour::default()
        },
    );
    let (s, out) = w.pull("retries = 3\n");
    assert!(out.stderr.contains("resuming"), "{}", out.describe());
    out.ok();
    assert_pulled(&s, &w.reference(), &w.img);
    let requests = w.blob_requests();
    let cut: Vec<&Logged> = requests.iter().filter(|l| l.cut).collect();
    assert_eq!(cut.len(), 1, "{requests:#?}");
    // The resumption asks for the rest of that segment only: no byte is sent twice.
    assert_eq!(sent(&requests), w.size(), "{requests:#?}");
}

#[test]
fn ranges_go_to_the_blob_host_and_follow_the_registry_again_when_its_url_expires() {
    let w = world(
        "ranges-redirect",
        86,
        Behaviour {
            redirect_uses: Some(3),
            ..Behaviour::default()
        },
    );
    let (s, out) = w.pull("");
    out.ok();
    assert_pulled(&s, &w.reference(), &w.img);
    let path = format!("/v2/test/big/blobs/{}", w.img.layers[0].digest);
    let log = w.proxy.log();
    let redirects = log
        .iter()
        .filter(|l| !l.blob_host && l.path == path && l.status == 307)
        .count();
    let served: Vec<&Logged> = log
        .iter()
        .filter(|l| l.blob_host && l.path.starts_with(&path) && l.status == 206)
        .collect();
    let expired = log
        .iter()
        .filter(|l| l.blob_host && l.status == 403)
        .count();
    assert!(served.len() >= 4, "{log:#?}");
    assert!(
        redirects >= 2 && redirects < served.len(),
        "the ranges reuse the redirect URL, and ask again when it expires: {log:#?}"
    );
    assert!(expired >= 1, "{log:#?}");
    assert_eq!(
        served.iter().map(|l| l.body_bytes).sum::<u64>(),
        w.size(),
        "each byte once: {log:#?}"
    );
}

/// Not a check but a measure (run it with `--ignored --nocapture`; needs GNU time): under a
/// per-connection cap, one stream against 4 and 8 connections, with strata's peak RSS.
#[test]
#[ignore = "a measurement; prints its figures"]
fn measure_ranges_under_a_per_connection_cap() {
    support::require_tool("time");
    let rate = 16u64 << 20;
    let w = world(
        "ranges-measure",
        85,
        Behaviour {
            rate: Some(rate),
            ..Behaviour::default()
        },
    );
    let docker = w.dir.join("docker");
    fs::create_dir_all(&docker).unwrap();
    let mut figures = Vec::new();
    for (name, config) in [
        ("1 connection", "max-concurrent-chunks = 1\n"),
        ("4 connections", "max-concurrent-chunks = 4\n"),
        ("8 connections", "max-concurrent-chunks = 8\n"),
    ] {
        let s = Strata::new();
        let file = w.dir.join("config.toml");
        fs::write(&file, config).unwrap();
        // GNU time's child is forked from time, not from this (large) test process, so its
        // peak RSS is strata's own.
        let started = Instant::now();
        let out = std::process::Command::new("/usr/bin/time")
            .args(["-f", "MAXRSS %M"])
            .arg(crate::support::strata::bin())
            .arg("--root")
            .arg(s.root())
            .arg("--config")
            .arg(&file)
            .args(["-q", "pull", &w.reference()])
            .env("DOCKER_CONFIG", &docker)
            .env("XDG_RUNTIME_DIR", w.dir.join("xdg"))
            .output()
            .expect("run strata under time");
        let wall = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_pulled(&s, &w.reference(), &w.img);
        let rss = stderr
            .lines()
            .find_map(|l| l.strip_prefix("MAXRSS "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        figures.push(format!(
            "{name}: {:.2} s for {} MiB at {} MiB/s per connection, peak RSS {} MiB",
            wall.as_secs_f64(),
            w.size() >> 20,
            rate >> 20,
            rss >> 10
        ));
    }
    eprintln!("{}", figures.join("\n"));
}

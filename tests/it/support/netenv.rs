//! Helpers for the registry-client tests: running strata with its own environment and
//! stdin, small images with incompressible layers, and a registry pre-filled with them.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::image::{Compression, Entry, Flavor, Image, ImageBuilder, Pusher};
use super::registry::Registry;
use super::strata::{self, Output, Strata};

/// Runs `strata --root <root> ARGS...` with extra environment variables (only for that
/// process) and optional stdin. `STRATA_*` variables of the test process are dropped and
/// `DOCKER_CONFIG` is set to `docker_config` so the machine's own credentials never matter.
pub fn run_env(
    s: &Strata,
    args: &[&str],
    docker_config: &Path,
    env: &[(&str, OsString)],
    stdin: Option<&str>,
) -> Output {
    let bin = strata::bin();
    let mut cmd = Command::new(&bin);
    cmd.arg("--root").arg(s.root()).args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("DOCKER_CONFIG", docker_config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(input.as_bytes())
            .expect("write strata's stdin");
    }
    let out = child.wait_with_output().expect("wait for strata");
    let mut all = vec!["--root".to_string(), s.root().display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: all,
    }
}

/// `n` pseudo-random (incompressible) bytes from `seed`.
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An image of `layers` gzip layers, each one file `data/layer<i>.bin` of `size` random
/// bytes (so every blob is about `size` long).
pub fn noise_image(seed: u64, layers: usize, size: usize) -> Image {
    let mut b = ImageBuilder::new(Flavor::Oci);
    for i in 0..layers {
        b = b.entries(
            &[
                Entry::dir("data"),
                Entry::file(
                    &format!("data/layer{i}.bin"),
                    noise(seed * 100 + i as u64, size),
                ),
            ],
            Compression::Gzip,
        );
    }
    b.build()
}

/// A plain registry with `images` pushed as `(repo, tag, image)`.
pub fn filled_registry(images: &[(&str, &str, &Image)]) -> Registry {
    let reg = Registry::start();
    let push = Pusher::new(&reg);
    for (repo, tag, img) in images {
        push.image(repo, Some(tag), img);
    }
    reg
}

/// Asserts that a pulled image is in the store with the expected layers.
#[track_caller]
pub fn assert_pulled(s: &Strata, reference: &str, img: &Image) {
    let inspect = s.inspect(reference);
    assert_eq!(
        inspect["Id"].as_str(),
        Some(img.config_digest.as_str()),
        "{inspect:#}"
    );
    assert_eq!(
        inspect["RootFS"]["Layers"],
        serde_json::json!(img.diff_ids()),
        "{inspect:#}"
    );
}

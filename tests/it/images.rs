//! The image store's lookups and listings: by digest and platform, tags that move, dangling
//! images, `images` flags, `system df`, and a store root that cannot be created.

use std::process::Command;

use serde_json::Value;

use crate::support::image::{self, Flavor};
use crate::support::strata::{self, Output, Strata};
use crate::support::{self, Env};

/// `strata ARGS...` without a `--root` of the harness (the test gives its own).
fn strata_bare(args: &[&str]) -> std::process::Output {
    Command::new(strata::bin())
        .args(args)
        .env_remove("STRATA_ROOT")
        .output()
        .expect("run strata")
}

#[test]
fn a_store_root_that_cannot_be_created_is_a_clear_error() {
    crate::support::require_root();
    // procfs refuses mkdir with ENOENT although /proc exists: this once overflowed the stack.
    let out = strata_bare(&["--root", "/proc/strata", "images"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("error: ")
            && stderr.contains("cannot create store directory /proc/strata: "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("overflow") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// Removes the containers of a store on drop (also when the test fails).
struct Containers<'a>(&'a Strata);

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        self.0.remove_all_containers();
    }
}

/// The architecture of the two-platform test index that is not the host's.
fn other_arch() -> &'static str {
    match support::host_arch() {
        "amd64" => "arm64",
        _ => "amd64",
    }
}

/// `os/arch[/variant]` of the index's image for `arch`, as strata records it.
fn platform_of(idx: &image::Index, arch: &str) -> String {
    idx.image_for(arch).platform.spec()
}

#[track_caller]
fn assert_stderr_has(out: &Output, needle: &str) {
    assert!(
        out.stderr.contains(needle),
        "stderr should contain {needle:?}:\n{}",
        out.describe()
    );
}

#[test]
fn an_index_digest_runs_and_inspects_the_asked_platform() {
    support::require_tool("runc");
    let env = Env::new();
    let _cleanup = Containers(&env.strata);
    let idx = image::alpine_multi(Flavor::Oci);
    env.push.index("library/alpine", "latest", &idx);
    let by_index = env.r(&format!("library/alpine@{}", idx.digest));
    let (host, other) = (support::host_arch(), other_arch());
    // The other platform first: a lookup that takes the first image it finds fails either way.
    for arch in [other, host] {
        let platform = format!("linux/{arch}");
        env.strata
            .run(&["--platform", &platform, "pull", &by_index])
            .ok();
    }

    let v = env.strata.inspect(&by_index);
    assert_eq!(v["Id"], idx.image_for(host).config_digest.as_str());
    let other_platform = format!("linux/{other}");
    let out = env
        .strata
        .run(&["--platform", &other_platform, "inspect", &by_index])
        .ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
    assert_eq!(v[0]["Id"], idx.image_for(other).config_digest.as_str());

    let out = env
        .strata
        .run(&["run", "--rm", "--pull", "never", &by_index, "uname", "-m"])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        std::env::consts::ARCH,
        "{}",
        out.describe()
    );
}

#[test]
fn an_index_digest_pulled_for_another_platform_is_not_present() {
    let env = Env::new();
    let _cleanup = Containers(&env.strata);
    let idx = image::alpine_multi(Flavor::Oci);
    env.push.index("library/alpine", "latest", &idx);
    let by_index = env.r(&format!("library/alpine@{}", idx.digest));
    let other = format!("linux/{}", other_arch());
    env.strata
        .run(&["--platform", &other, "pull", &by_index])
        .ok();

    // The host's image of that digest is not there: `never` fails, `missing` pulls it.
    let out = env
        .strata
        .run(&["pull-and-mount", "--pull", "never", "--json", &by_index]);
    out.assert_error(&[&by_index, &platform_of(&idx, other_arch())]);
    let out = env
        .strata
        .run(&["pull-and-mount", "--pull", "missing", "--json", &by_index])
        .ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("pull-and-mount JSON");
    let host = idx.image_for(support::host_arch());
    assert_eq!(
        v["image_id"],
        host.config_digest.as_str(),
        "{}",
        out.describe()
    );
}

#[test]
fn a_tag_of_another_platform_is_pulled_again_or_refused() {
    let env = Env::new();
    let _cleanup = Containers(&env.strata);
    let idx = image::alpine_multi(Flavor::Oci);
    env.push.index("library/alpine", "latest", &idx);
    let tag = env.r("library/alpine:latest");
    let (host, other) = (support::host_arch(), other_arch());
    let other_platform = format!("linux/{other}");
    env.strata.pull(&tag).ok();

    // `never`: an error naming both platforms.
    let out = env.strata.run(&[
        "--platform",
        &other_platform,
        "pull-and-mount",
        "--pull",
        "never",
        &tag,
    ]);
    out.assert_error(&[&format!(
        "image {tag} is {}, {} was asked",
        platform_of(&idx, host),
        platform_of(&idx, other)
    )]);

    // `missing`: the asked platform is pulled and the tag moves to it.
    let out = env
        .strata
        .run(&[
            "--platform",
            &other_platform,
            "pull-and-mount",
            "--pull",
            "missing",
            "--json",
            &tag,
        ])
        .ok();
    assert_stderr_has(&out, &format!("Status: Downloaded newer image for {tag}"));
    let v: Value = serde_json::from_str(&out.stdout).expect("pull-and-mount JSON");
    let other_id = idx.image_for(other).config_digest.as_str();
    assert_eq!(v["image_id"], other_id, "{}", out.describe());
    let out = env
        .strata
        .run(&["--platform", &other_platform, "inspect", &tag])
        .ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
    assert_eq!(v[0]["Id"], other_id);

    // Pulling the host's again fetches nothing but moves the tag back: not "up to date".
    let out = env.strata.pull(&tag).ok();
    assert_stderr_has(&out, &format!("Status: Downloaded newer image for {tag}"));
    assert!(!out.stderr.contains("up to date"), "{}", out.describe());
    let out = env.strata.pull(&tag).ok();
    assert_stderr_has(&out, &format!("Status: Image is up to date for {tag}"));
}

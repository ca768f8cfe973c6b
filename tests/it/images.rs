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
    // (`pull` makes the store; `images` only reads one, so it is no longer the command here.)
    let out = strata_bare(&["--root", "/proc/strata", "pull", "alpine"]);
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
        v["ImageID"],
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
    assert_eq!(v["ImageID"], other_id, "{}", out.describe());
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

/// A small host image with one file.
fn small_image(name: &str, content: &str) -> image::Image {
    image::ImageBuilder::new(Flavor::Oci)
        .entries(
            &[image::Entry::file(name, content.as_bytes().to_vec())],
            image::Compression::Gzip,
        )
        .build()
}

/// The first 12 hex chars of an id.
fn short(id: &str) -> String {
    image::hex_of(id)[..12].to_string()
}

/// `images ARGS...` lines, which must succeed.
fn lines(s: &Strata, args: &[&str]) -> Vec<String> {
    let mut all = vec!["images"];
    all.extend(args);
    let out = s.run(&all).ok();
    out.stdout.lines().map(str::to_string).collect()
}

/// `images --json ARGS...`.
fn json_rows(s: &Strata, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["images", "--json"];
    all.extend(args);
    let out = s.run(&all).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("images --json");
    v.as_array().expect("an array").clone()
}

/// Docker's `%.3g` + decimal unit for sizes of 1 MB up to 1 GB.
fn docker_mb(size: u64) -> String {
    let mb = size as f64 / 1e6;
    assert!((1.0..999.5).contains(&mb), "{size} is not in MB");
    let decimals = if mb >= 99.95 {
        0
    } else if mb >= 9.995 {
        1
    } else {
        2
    };
    let text = format!("{mb:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}MB")
}

#[test]
fn untagged_images_are_listed_as_none_and_found_by_id() {
    let env = Env::new();
    let first = small_image("version", "1\n");
    let newer = small_image("version", "2\n");
    let by_digest_only = small_image("other", "x\n");
    env.push.image("test/app", Some("v1"), &first);
    env.push.image("test/pinned", None, &by_digest_only);
    let tag = env.r("test/app:v1");
    let pinned = env.r(&format!("test/pinned@{}", by_digest_only.manifest_digest));
    env.strata.pull(&tag).ok();
    env.strata.pull(&pinned).ok();

    // A newer push of the tag, pulled: the tag moves and the first image is untagged.
    env.push.image("test/app", Some("v1"), &newer);
    env.push.image("test/app", Some("latest"), &newer);
    let out = env.strata.pull(&tag).ok();
    assert_stderr_has(&out, &format!("Status: Downloaded newer image for {tag}"));
    env.strata.pull(&env.r("test/app:latest")).ok();

    let rows = json_rows(&env.strata, &[]);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let tagged: Vec<&Value> = rows.iter().filter(|r| r["Dangling"] == false).collect();
    assert_eq!(tagged.len(), 2, "{rows:#?}");
    for r in &tagged {
        assert_eq!(r["Repository"], env.r("test/app").as_str());
        assert_eq!(r["Id"], newer.config_digest.as_str());
        assert_eq!(r["Digest"], newer.manifest_digest.as_str());
    }
    let mut dangling: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r["Dangling"] == true)
        .map(|r| {
            assert_eq!(
                (&r["Repository"], &r["Tag"]),
                (&"<none>".into(), &"<none>".into())
            );
            (
                r["Id"].as_str().unwrap().to_string(),
                r["Digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    dangling.sort();
    let mut expected = vec![
        (first.config_digest.clone(), first.manifest_digest.clone()),
        (
            by_digest_only.config_digest.clone(),
            by_digest_only.manifest_digest.clone(),
        ),
    ];
    expected.sort();
    assert_eq!(dangling, expected);

    // Found by id (the first 12 chars, as `images` shows them).
    for img in [&first, &by_digest_only] {
        let v = env.strata.inspect(&short(&img.config_digest));
        assert_eq!(v["Id"], img.config_digest.as_str());
        assert_eq!(v["RepoTags"], serde_json::json!([]));
    }

    // -q: each id once (two tags name the newer image).
    let mut ids = lines(&env.strata, &["-q"]);
    ids.sort();
    let mut want: Vec<String> = [&first, &newer, &by_digest_only]
        .iter()
        .map(|i| short(&i.config_digest))
        .collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(lines(&env.strata, &["--quiet", "-a"]).len(), 3);

    // --filter dangling=true|false.
    let mut ids = lines(&env.strata, &["-q", "--filter", "dangling=true"]);
    ids.sort();
    let mut want = vec![
        short(&first.config_digest),
        short(&by_digest_only.config_digest),
    ];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        lines(&env.strata, &["-q", "-f", "dangling=false"]),
        vec![short(&newer.config_digest)]
    );
    let rows = json_rows(&env.strata, &["--filter", "reference=*/test/app:v1"]);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["Tag"], "v1");
    let out = env.strata.run(&["images", "--filter", "label=x"]);
    assert!(matches!(out.code(), Some(1 | 2)), "{}", out.describe());

    // --digests: a DIGEST column.
    let table = lines(&env.strata, &["--digests"]);
    assert!(table[0].contains("DIGEST"), "{table:#?}");
    let row = table
        .iter()
        .find(|l| l.contains(" v1 "))
        .unwrap_or_else(|| panic!("{table:#?}"));
    assert!(row.contains(&newer.manifest_digest), "{row}");
    assert!(row.contains(&short(&newer.config_digest)), "{row}");
}

#[test]
fn images_table_shows_docker_ages_and_sizes() {
    let env = Env::new();
    let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
    env.push.image("library/alpine", Some("3.20.3"), &img);
    let tag = env.r("library/alpine:3.20.3");
    env.strata.pull(&tag).ok();
    let size = json_rows(&env.strata, &[])[0]["Size"]
        .as_u64()
        .expect("Size");

    let table = lines(&env.strata, &[]);
    let header: Vec<&str> = table[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let row = &table[1];
    // The test images are created 2024-09-06.
    assert!(
        row.contains(" years ago ") || row.contains(" months ago "),
        "{row}"
    );
    assert!(
        row.trim_end().ends_with(&format!(" {}", docker_mb(size))),
        "{row}"
    );
    assert!(row.starts_with(&env.r("library/alpine")), "{row}");
    assert!(row.contains(&short(&img.config_digest)), "{row}");
}

/// `system df --json [-v]`.
fn df_json(s: &Strata, verbose: bool) -> Value {
    let mut args = vec!["system", "df", "--json"];
    if verbose {
        args.push("-v");
    }
    let out = s.run(&args).ok();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("system df --json is not JSON ({e}):\n{}", out.describe()))
}

#[test]
fn system_df_counts_shared_layers_once() {
    let env = Env::new();
    let _cleanup = Containers(&env.strata);
    let base = [image::Entry::file("base", vec![b'b'; 1000])];
    let two_layers = |file: &str, size: usize| {
        image::ImageBuilder::new(Flavor::Oci)
            .entries(&base, image::Compression::Gzip)
            .entries(
                &[image::Entry::file(file, vec![b'x'; size])],
                image::Compression::Gzip,
            )
            .build()
    };
    let (a, b) = (two_layers("a", 200), two_layers("b", 300));
    env.push.image("test/a", Some("v1"), &a);
    env.push.image("test/b", Some("v1"), &b);
    env.strata.pull(&env.r("test/b:v1")).ok();
    let out = env
        .strata
        .run(&["pull-and-mount", "--json", &env.r("test/a:v1")])
        .ok();
    let ctr: Value = serde_json::from_str(&out.stdout).expect("pull-and-mount JSON");
    let merged = ctr["MergedDir"].as_str().expect("merged");
    std::fs::write(format!("{merged}/written"), vec![0u8; 4096]).expect("write in the container");

    let du = df_json(&env.strata, true);
    assert_eq!(
        du["Images"],
        serde_json::json!({"TotalCount": 2, "Active": 1, "Size": 1500, "Reclaimable": 300}),
        "{du:#}"
    );
    assert_eq!(
        du["Containers"],
        serde_json::json!({"TotalCount": 1, "Active": 1, "Size": 4096, "Reclaimable": 0}),
        "{du:#}"
    );
    let details = du["ImageDetails"].as_array().expect("ImageDetails");
    let of = |img: &image::Image| {
        details
            .iter()
            .find(|d| d["Id"] == img.config_digest.as_str())
            .unwrap_or_else(|| panic!("{du:#}"))
            .clone()
    };
    let (da, db) = (of(&a), of(&b));
    for (d, size, unique, containers) in [(&da, 1200, 200, 1), (&db, 1300, 300, 0)] {
        assert_eq!(d["Size"], size, "{d:#}");
        assert_eq!(d["SharedSize"], 1000, "{d:#}");
        assert_eq!(d["UniqueSize"], unique, "{d:#}");
        assert_eq!(d["Containers"], containers, "{d:#}");
    }
    assert_eq!(da["Tag"], "v1");
    let containers = du["ContainerDetails"].as_array().expect("ContainerDetails");
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["Size"], 4096);
    assert_eq!(containers[0]["Id"], ctr["Id"]);

    let table = env.strata.run(&["system", "df"]).ok().stdout;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{table}"
    );
    assert_eq!(
        rows[1],
        ["Images", "2", "1", "1.5kB", "300B", "(20%)"],
        "{table}"
    );
    assert_eq!(
        rows[2],
        ["Containers", "1", "1", "4.096kB", "0B", "(0%)"],
        "{table}"
    );

    // Unmounted, the container's layer is reclaimable; without -v, no details.
    let name = ctr["Name"].as_str().expect("name");
    env.strata.run(&["umount", name]).ok();
    let du = df_json(&env.strata, false);
    assert_eq!(du["Containers"]["Active"], 0);
    assert_eq!(du["Containers"]["Reclaimable"], 4096);
    assert_eq!(du["ImageDetails"], serde_json::json!([]));

    let verbose = env.strata.run(&["system", "df", "-v"]).ok().stdout;
    assert!(verbose.starts_with("Images space usage:"), "{verbose}");
    assert!(
        verbose.contains("SHARED SIZE") && verbose.contains("UNIQUE SIZE"),
        "{verbose}"
    );
    assert!(verbose.contains("Containers space usage:"), "{verbose}");
    assert!(verbose.contains(&short(&a.config_digest)), "{verbose}");
    let ctr_line = verbose
        .lines()
        .find(|l| l.starts_with(&ctr["Id"].as_str().unwrap()[..12]))
        .unwrap_or_else(|| panic!("{verbose}"));
    assert!(
        ctr_line.contains("4.1kB") && ctr_line.contains("unmounted"),
        "{ctr_line}"
    );
}

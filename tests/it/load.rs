//! Images without a registry: `strata pull oci:DIR[:REF]` (and `pull-and-mount`, `export`) of
//! layouts written by skopeo, compared with the same image pulled from the registry; and
//! hostile layouts.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::dockerd::Dockerd;
use crate::support::image::{self, Compression, Entry, Flavor, Image, ImageBuilder};
use crate::support::strata::{Graph, Output, Strata, Union};
use crate::support::tree::{self, Options};
use crate::support::{self, Env, run_ok};

/// `skopeo copy docker://<registry>/<repo_ref> oci:<dir>:<ref_name>` (`--all` copies an index
/// whole).
fn skopeo_to_layout(env: &Env, repo_ref: &str, dir: &Path, ref_name: &str, all: bool) {
    support::require_tool("skopeo");
    let mut copy = Command::new("skopeo");
    copy.args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
    ]);
    if all {
        copy.arg("--all");
    }
    copy.arg(format!("docker://{}", env.r(repo_ref)))
        .arg(format!("oci:{}:{ref_name}", dir.display()));
    run_ok(&mut copy);
}

/// Two layers, gzip and uncompressed, with a whiteout.
fn layered(flavor: Flavor) -> Image {
    ImageBuilder::new(flavor)
        .entries(
            &[
                Entry::dir("etc"),
                Entry::file("etc/os-release", "ID=test\n"),
                Entry::file("etc/gone", "removed above\n"),
                Entry::dir("bin"),
                Entry::file("bin/tool", "#!/bin/sh\n").mode(0o755),
            ],
            Compression::Gzip,
        )
        .entries(
            &[
                Entry::dir("etc"),
                Entry::whiteout("etc/gone"),
                Entry::file("etc/added", "added\n").owner(1000, 1000),
            ],
            Compression::None,
        )
        .build()
}

/// The image id and the layer chain ids (`RootFS.Layers` is diff_ids; the store's layer
/// directories are named by chain id) of `image` in `strata`.
fn identity(strata: &Strata, image: &str) -> (String, Vec<String>) {
    let inspect = strata.inspect(image);
    let id = inspect["Id"].as_str().expect("Id").to_string();
    let diff_ids: Vec<String> = inspect["RootFS"]["Layers"]
        .as_array()
        .expect("RootFS.Layers")
        .iter()
        .map(|v| v.as_str().expect("diff_id").to_string())
        .collect();
    (id, support::chain_ids(&diff_ids))
}

/// The config digest of the image named `ref_name` in the layout at `dir`.
fn layout_config_digest(dir: &Path, ref_name: &str) -> String {
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&fs::read(&p).expect("layout file")).expect("layout JSON")
    };
    let index = read(dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == ref_name)
        .expect("named entry");
    let manifest = read(blob(dir, entry["digest"].as_str().expect("digest")));
    manifest["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_string()
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "failed:\n{}", out.describe());
}

/// The stored union of `image` in `strata`.
fn union(strata: &Strata, image: &str) -> Union {
    Union::of(&Graph::of(&strata.inspect(image)))
}

fn root_mtime_opts() -> Options {
    Options::default().ignore_mtime(
        ".",
        "root of a multi-layer union: top layer has no ./ entry",
    )
}

#[test]
fn layout_pull_equals_registry_pull() {
    for flavor in [Flavor::Oci, Flavor::Docker] {
        let env = Env::new();
        let img = layered(flavor);
        env.push.image("test/app", Some("1"), &img);
        let reference = env.r("test/app:1");
        assert_ok(&env.strata.pull(&reference));

        let scratch = support::tempdir("layout");
        let dir = scratch.path().join("app");
        skopeo_to_layout(&env, "test/app:1", &dir, "v1", false);
        let local = Strata::new();
        let out = local.pull(&format!("oci:{}:v1", dir.display()));
        assert_ok(&out);
        assert_eq!(out.stdout.trim(), "localhost/app:v1", "{}", out.describe());

        let from_registry = identity(&env.strata, &reference);
        let from_layout = identity(&local, "localhost/app:v1");
        assert_eq!(from_layout.1, from_registry.1, "{flavor:?}: chain ids");
        assert_eq!(from_layout.1, img.chain_ids());
        // skopeo converts a Docker image to OCI and re-serialises its config on the way; an
        // OCI image is copied byte for byte, so it has the same image id.
        assert_eq!(from_layout.0, layout_config_digest(&dir, "v1"));
        if flavor == Flavor::Oci {
            assert_eq!(from_layout.0, from_registry.0, "image id");
            assert_eq!(from_layout.0, img.config_digest);
        }
        tree::assert_same(
            "registry pull",
            union(&env.strata, &reference).path(),
            "layout pull",
            union(&local, "localhost/app:v1").path(),
            &root_mtime_opts(),
        );

        // Pulled again: the layers are there, the tag already names the image.
        let again = local.pull(&format!("oci:{}:v1", dir.display()));
        assert_ok(&again);
        assert!(again.stderr.contains("up to date"), "{}", again.describe());
    }
}

#[test]
fn layout_pull_and_mount_and_export_equal_the_registry_image() {
    let env = Env::new();
    let img = layered(Flavor::Oci);
    env.push.image("test/app", Some("1"), &img);
    let scratch = support::tempdir("layout");
    let dir = scratch.path().join("layout");
    skopeo_to_layout(&env, "test/app:1", &dir, "v1", false);
    // The only image needs no REF; it is stored under its ref name.
    let location = format!("oci:{}", dir.display());

    let exported = scratch.path().join("rootfs");
    let out = env
        .strata
        .run(&["-q", "export", &location, exported.to_str().expect("UTF-8")]);
    assert_ok(&out);
    let from_registry = scratch.path().join("registry-rootfs");
    let out = env.strata.run(&[
        "-q",
        "export",
        "--pull",
        "always",
        &env.r("test/app:1"),
        from_registry.to_str().expect("UTF-8"),
    ]);
    assert_ok(&out);
    // No layer has a member for the root: it keeps the time of each export.
    let opts = Options {
        ignore_mtime_of: vec![(PathBuf::from("."), "no layer sets the root: export time")],
        ..Options::default()
    };
    tree::assert_same(
        "layout export",
        &exported,
        "registry export",
        &from_registry,
        &opts,
    );

    let out = env.strata.run(&["pull-and-mount", &location]);
    assert_ok(&out);
    let merged = PathBuf::from(out.stdout.trim());
    assert_eq!(
        fs::read_to_string(merged.join("etc/added")).expect("etc/added"),
        "added\n"
    );
    assert!(!merged.join("etc/gone").exists(), "whiteout applied");
    let (id, _) = identity(&env.strata, "localhost/layout:v1");
    assert_eq!(id, img.config_digest);
    env.strata.remove_all_containers();
}

#[test]
fn multi_platform_layout_picks_the_platform() {
    let env = Env::new();
    let index = image::alpine_multi(Flavor::Oci);
    env.push.index("library/alpine", "multi", &index);
    let scratch = support::tempdir("layout");
    let dir = scratch.path().join("alpine");
    skopeo_to_layout(&env, "library/alpine:multi", &dir, "multi", true);
    let location = format!("oci:{}:multi", dir.display());
    for (platform, arch) in [("linux/arm64/v8", "arm64"), ("linux/amd64", "amd64")] {
        let out = env.strata.run(&["--platform", platform, "pull", &location]);
        assert_ok(&out);
        let images = env.strata.images();
        let wanted = &index.image_for(arch).config_digest;
        assert!(
            images
                .iter()
                .any(|i| i["Id"].as_str() == Some(wanted.as_str())),
            "{platform}: {wanted} not among {images:#?}"
        );
    }
}

/// A layout of the layered image, written by skopeo, to break.
fn hostile_fixture(env: &Env) -> (tempfile::TempDir, PathBuf, Image) {
    let img = layered(Flavor::Oci);
    env.push.image("test/app", Some("1"), &img);
    let scratch = support::tempdir("hostile-layout");
    let dir = scratch.path().join("layout");
    skopeo_to_layout(env, "test/app:1", &dir, "v1", false);
    (scratch, dir, img)
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256").join(image::hex_of(digest))
}

/// The pull failed naming `needles`, and stored no image and nothing partial: no layer at all,
/// or (`broken`: the chain id of the layer that failed) not that layer (the other verified
/// layers may stay, as in a registry pull); the staging directory is empty.
fn assert_refused(strata: &Strata, out: &Output, needles: &[&str], broken: Option<&str>) {
    assert!(!out.status.success(), "must fail:\n{}", out.describe());
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "stderr lacks {n:?}:\n{}",
            out.describe()
        );
    }
    assert!(strata.images().is_empty(), "no image stored");
    let layers = strata.layer_dirs();
    match broken {
        None => assert!(layers.is_empty(), "no layer stored: {layers:?}"),
        Some(chain) => assert!(
            !layers.iter().any(|l| chain.ends_with(l.as_str())),
            "the broken layer is stored: {layers:?}"
        ),
    }
    let staging = strata.root().join("staging");
    let left = fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "staging must be empty");
}

#[test]
fn hostile_layouts_are_refused_with_clear_errors() {
    let env = Env::new();
    let (scratch, dir, img) = hostile_fixture(&env);
    let location = format!("oci:{}:v1", dir.display());
    // Each attempt on an empty store.
    let attempt = |location: &str| {
        let fresh = Strata::new();
        let out = fresh.pull(location);
        (fresh, out)
    };
    let layer = img.layers[0].digest.clone();
    let layer_path = blob(&dir, &layer);
    let chains = img.chain_ids();
    let broken = Some(chains[0].as_str());
    let saved = scratch.path().join("saved");
    fs::rename(&layer_path, &saved).expect("move blob");

    // A blob that is a symlink to a file outside the layout (with the right content).
    symlink(&saved, &layer_path).expect("symlink");
    let (fresh, out) = attempt(&location);
    assert_refused(&fresh, &out, &[image::hex_of(&layer), "symlink"], broken);
    fs::remove_file(&layer_path).expect("rm symlink");

    // A hard link to a file outside the layout.
    fs::hard_link(&saved, &layer_path).expect("hard link");
    let (fresh, out) = attempt(&location);
    assert_refused(&fresh, &out, &[image::hex_of(&layer), "hard links"], broken);
    fs::remove_file(&layer_path).expect("rm hard link");

    // Missing.
    let (fresh, out) = attempt(&location);
    assert_refused(&fresh, &out, &[image::hex_of(&layer)], broken);

    // Content that is not the blob's.
    let mut bytes = fs::read(&saved).expect("read blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&layer_path, &bytes).expect("corrupt blob");
    let (fresh, out) = attempt(&location);
    assert_refused(&fresh, &out, &[&layer, "mismatch"], broken);
    fs::remove_file(&layer_path).expect("rm corrupt");
    fs::rename(&saved, &layer_path).expect("restore blob");

    // The blobs directory replaced by a symlink to a copy outside.
    let blobs = dir.join("blobs");
    let moved = scratch.path().join("blobs-outside");
    fs::rename(&blobs, &moved).expect("move blobs");
    symlink(&moved, &blobs).expect("symlink blobs");
    let (fresh, out) = attempt(&location);
    assert_refused(&fresh, &out, &["symlink"], None);
    fs::remove_file(&blobs).expect("rm symlink");
    fs::rename(&moved, &blobs).expect("restore blobs");

    // An unknown name, and an index.json that names no image at all.
    let (fresh, out) = attempt(&format!("oci:{}:nope", dir.display()));
    assert_refused(&fresh, &out, &["no image named \"nope\"", "v1"], None);

    // An index whose image is another index (a loop needs one): refused, not followed.
    let index_path = dir.join("index.json");
    let original = fs::read(&index_path).expect("index.json");
    let inner = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": []
    }))
    .expect("json");
    let inner_digest = support::sha256_digest(&inner);
    fs::write(blob(&dir, &inner_digest), &inner).expect("write inner index");
    let outer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": inner_digest,
            "size": inner.len(),
            "platform": {"os": "linux", "architecture": support::host_arch()}
        }]
    }))
    .expect("json");
    let outer_digest = support::sha256_digest(&outer);
    fs::write(blob(&dir, &outer_digest), &outer).expect("write outer index");
    let top = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": outer_digest,
            "size": outer.len(),
            "annotations": {"org.opencontainers.image.ref.name": "loop"}
        }]
    }))
    .expect("json");
    fs::write(&index_path, &top).expect("write index.json");
    let (fresh, out) = attempt(&format!("oci:{}:loop", dir.display()));
    assert_refused(&fresh, &out, &["points at another index"], None);

    // Oversized index.json.
    let mut huge = Vec::with_capacity(5 << 20);
    huge.extend_from_slice(b"{\"schemaVersion\":2,\"manifests\":[],\"x\":\"");
    huge.resize(5 << 20, b'a');
    huge.extend_from_slice(b"\"}");
    fs::write(&index_path, &huge).expect("write huge index.json");
    let (fresh, out) = attempt(&location);
    assert_refused(&fresh, &out, &["index.json", "larger than"], None);
    fs::write(&index_path, &original).expect("restore index.json");

    // Not a layout.
    fs::remove_file(dir.join("oci-layout")).expect("rm oci-layout");
    let (fresh, out) = attempt(&location);
    assert_refused(&fresh, &out, &["not an OCI image layout"], None);
}

/// A registry with the layered Docker-format image pushed as `test/app:1`, and that image as
/// `skopeo copy` saves it: a docker-archive `file_name` (tagged `name` when given) in a new
/// scratch directory.
struct Saved {
    env: Env,
    img: Image,
    scratch: tempfile::TempDir,
    file: PathBuf,
}

fn saved_by_skopeo(scratch_name: &str, file_name: &str, name: Option<&str>) -> Saved {
    let env = Env::new();
    let img = layered(Flavor::Docker);
    env.push.image("test/app", Some("1"), &img);
    let scratch = support::tempdir(scratch_name);
    let file = scratch.path().join(file_name);
    let dest = match name {
        Some(name) => format!("docker-archive:{}:{name}", file.display()),
        None => format!("docker-archive:{}", file.display()),
    };
    skopeo_copy(&env, "test/app:1", &dest);
    Saved {
        env,
        img,
        scratch,
        file,
    }
}

/// `skopeo copy docker://<registry>/<repo_ref> <dest>`.
fn skopeo_copy(env: &Env, repo_ref: &str, dest: &str) {
    support::require_tool("skopeo");
    run_ok(
        Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{}", env.r(repo_ref)))
            .arg(dest),
    );
}

#[test]
fn archives_equal_the_registry_pull() {
    // oci-archive keeps an OCI image byte for byte; docker-archive keeps a Docker image's
    // config (its layers are written uncompressed).
    for (flavor, transport) in [
        (Flavor::Oci, "oci-archive"),
        (Flavor::Docker, "docker-archive"),
    ] {
        let env = Env::new();
        let img = layered(flavor);
        env.push.image("test/app", Some("1"), &img);
        let reference = env.r("test/app:1");
        assert_ok(&env.strata.pull(&reference));
        let scratch = support::tempdir("archive");
        let file = scratch.path().join("app.tar");
        let name = match transport {
            "oci-archive" => "v1".to_string(),
            _ => "example.com/app:v1".to_string(),
        };
        skopeo_copy(
            &env,
            "test/app:1",
            &format!("{transport}:{}:{name}", file.display()),
        );
        let local = Strata::new();
        let out = local.pull(&format!("{transport}:{}", file.display()));
        assert_ok(&out);
        let stored = match transport {
            "oci-archive" => "localhost/app:v1",
            _ => "example.com/app:v1",
        };
        assert_eq!(out.stdout.trim(), stored, "{}", out.describe());
        let from_registry = identity(&env.strata, &reference);
        assert_eq!(
            identity(&local, stored),
            from_registry,
            "{transport}: image id and chain ids"
        );
        assert_eq!(from_registry.0, img.config_digest);
        tree::assert_same(
            "registry pull",
            union(&env.strata, &reference).path(),
            transport,
            union(&local, stored).path(),
            &root_mtime_opts(),
        );
        // By name too.
        let out = local.pull(&format!("{transport}:{}:{name}", file.display()));
        assert_ok(&out);
        assert!(out.stderr.contains("up to date"), "{}", out.describe());
    }
}

/// A `docker save` archive of one image with these members.
fn saved(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = image::RawTar::new();
    for (name, data) in members {
        tar.file(name, data);
    }
    tar.finish()
}

#[test]
fn hostile_archives_are_refused_with_clear_errors() {
    let Saved {
        env: _,
        img,
        scratch,
        file: good,
    } = saved_by_skopeo("hostile-archive", "good.tar", None);
    let bytes = fs::read(&good).expect("archive");
    let attempt = |name: &str, data: &[u8], needles: &[&str]| {
        let path = scratch.path().join(name);
        fs::write(&path, data).expect("write archive");
        let fresh = Strata::new();
        let out = fresh.pull(&format!("docker-archive:{}", path.display()));
        assert_refused(&fresh, &out, needles, None);
    };

    attempt(
        "truncated.tar",
        &bytes[..bytes.len() / 2],
        &["truncated.tar", "ends early"],
    );

    let manifest =
        |layers: &str| format!(r#"[{{"Config":"c.json","RepoTags":["x:1"],"Layers":[{layers}]}}]"#);
    let config = serde_json::to_vec(&json!({
        "architecture": support::host_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [img.layers[0].diff_id]}
    }))
    .expect("json");
    let layer = img.layers[0].blob.clone();
    assert_eq!(img.layers[0].compression, Compression::Gzip);
    let m = manifest(r#""../outside/layer.tar""#);
    attempt(
        "climbs.tar",
        &saved(&[("manifest.json", m.as_bytes()), ("c.json", &config)]),
        &["climbs out", "../outside/layer.tar"],
    );
    let m = manifest(r#""l/layer.tar""#);
    attempt(
        "missing.tar",
        &saved(&[("manifest.json", m.as_bytes()), ("c.json", &config)]),
        &["no member", "l/layer.tar"],
    );
    attempt(
        "duplicate.tar",
        &saved(&[
            ("manifest.json", m.as_bytes()),
            ("c.json", &config),
            ("l/layer.tar", &layer),
            ("c.json", &config),
        ]),
        &["\"c.json\" appears twice"],
    );
    let mut tar = image::RawTar::new();
    tar.file("manifest.json", m.as_bytes())
        .file("c.json", &config)
        .symlink("l/layer.tar", "/etc/passwd");
    attempt(
        "symlink.tar",
        &tar.finish(),
        &["l/layer.tar", "/etc/passwd", "outside the archive"],
    );
    let mut tar = image::RawTar::new();
    tar.file("manifest.json", m.as_bytes())
        .file("c.json", &config)
        .symlink("l/layer.tar", "../../x.tar");
    attempt("symlink-up.tar", &tar.finish(), &["outside the archive"]);
    let mut tar = image::RawTar::new();
    tar.file("manifest.json", m.as_bytes())
        .file("c.json", &config)
        .symlink("l/layer.tar", "nothing.tar");
    attempt("dangling.tar", &tar.finish(), &["no file of the archive"]);
    // A compressed blob where an uncompressed layer tar is expected: its digest is not the
    // diff_id.
    let m2 = manifest(r#""l/layer.tar""#);
    attempt(
        "wrong-layer.tar",
        &saved(&[
            ("manifest.json", m2.as_bytes()),
            ("c.json", &config),
            ("l/layer.tar", &img.layers[0].blob),
        ]),
        &["mismatch"],
    );
}

#[test]
fn load_prints_each_loaded_name_like_docker() {
    let Saved {
        env,
        img,
        scratch,
        file: docker,
    } = saved_by_skopeo("load", "docker.tar", Some("example.com/app:v1"));
    let out = env
        .strata
        .run(&["-q", "load", "-i", docker.to_str().expect("UTF-8")]);
    assert_ok(&out);
    assert_eq!(out.stdout, "Loaded image: example.com/app:v1\n");
    // A `docker save` archive has no manifest digest: none recorded, as `docker load`.
    let inspect = env.strata.inspect("example.com/app:v1");
    assert_eq!(inspect["RepoDigests"], json!([]), "{inspect:#}");
    assert_eq!(
        identity(&env.strata, "example.com/app:v1").1,
        img.chain_ids()
    );

    let oci = scratch.path().join("oci.tar");
    skopeo_copy(
        &env,
        "test/app:1",
        &format!("oci-archive:{}:v2", oci.display()),
    );
    let out = env
        .strata
        .run(&["-q", "load", "--input", oci.to_str().expect("UTF-8")]);
    assert_ok(&out);
    assert_eq!(out.stdout, "Loaded image: localhost/oci:v2\n");
    // The same layers: stored once.
    assert_eq!(env.strata.layer_dirs().len(), img.layers.len());

    let garbage = scratch.path().join("garbage.tar");
    fs::write(&garbage, b"not a tar at all").expect("write");
    let out = env
        .strata
        .run(&["load", "-i", garbage.to_str().expect("UTF-8")]);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(out.stderr.contains("garbage.tar"), "{}", out.describe());
}

#[test]
fn run_from_an_oci_archive() {
    support::require_tool("runc");
    let env = Env::new();
    let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
    env.push.image("library/alpine", Some("3.20.3"), &img);
    let scratch = support::tempdir("run-archive");
    let file = scratch.path().join("alpine.tar");
    skopeo_copy(
        &env,
        "library/alpine:3.20.3",
        &format!("oci-archive:{}:3.20.3", file.display()),
    );
    let out = env.strata.run(&[
        "-q",
        "run",
        "--rm",
        &format!("oci-archive:{}", file.display()),
        "cat",
        "/etc/alpine-release",
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout, "3.20.3\n", "{}", out.describe());
    assert!(env.strata.ps().is_empty(), "--rm removed the container");
    assert_eq!(
        identity(&env.strata, "localhost/alpine:3.20.3").0,
        img.config_digest
    );
}

/// Docker 25+ writes `docker save` in the OCI-layout form: `blobs/sha256/<hex>` members
/// (uncompressed layer tars), `index.json`, `oci-layout`, and a `manifest.json` naming the
/// same blobs.
#[test]
fn docker_save_oci_form_equals_the_registry_pull() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Docker)
        .entries(
            &[Entry::dir("etc"), Entry::file("etc/hello", "hello\n")],
            Compression::None,
        )
        .entries(&[Entry::file("top", "top\n")], Compression::None)
        .build();
    env.push.image("test/app", Some("1"), &img);
    let reference = env.r("test/app:1");
    assert_ok(&env.strata.pull(&reference));

    let blob_name = |digest: &str| format!("blobs/sha256/{}", image::hex_of(digest));
    let manifest = serde_json::to_vec(&json!([{
        "Config": blob_name(&img.config_digest),
        "RepoTags": ["example.com/app:25"],
        "Layers": img.layers.iter().map(|l| blob_name(&l.digest)).collect::<Vec<_>>(),
    }]))
    .expect("json");
    let mut tar = image::RawTar::new();
    tar.dir("blobs").dir("blobs/sha256");
    for layer in &img.layers {
        assert_eq!(
            layer.digest, layer.diff_id,
            "uncompressed: the blob is the tar"
        );
        tar.file(blob_name(&layer.digest), &layer.blob);
    }
    tar.file(blob_name(&img.config_digest), &img.config)
        .file(blob_name(&img.manifest_digest), &img.manifest)
        .file("index.json", b"{\"schemaVersion\":2,\"manifests\":[]}")
        .file("manifest.json", &manifest)
        .file("oci-layout", b"{\"imageLayoutVersion\":\"1.0.0\"}");
    let scratch = support::tempdir("docker25");
    let file = scratch.path().join("saved.tar");
    fs::write(&file, tar.finish()).expect("write archive");

    let local = Strata::new();
    let out = local.run(&["-q", "load", "-i", file.to_str().expect("UTF-8")]);
    assert_ok(&out);
    assert_eq!(out.stdout, "Loaded image: example.com/app:25\n");
    assert_eq!(
        identity(&local, "example.com/app:25"),
        identity(&env.strata, &reference)
    );
    tree::assert_same(
        "registry pull",
        union(&env.strata, &reference).path(),
        "docker save (OCI form)",
        union(&local, "example.com/app:25").path(),
        &root_mtime_opts(),
    );
}

/// `podman --root R --runroot RR --storage-driver vfs ARGS...` in `dir`.
fn podman(dir: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new("podman")
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args),
    )
}

#[test]
fn podman_save_in_its_three_formats_equals_the_registry_pull() {
    support::require_tool("podman");
    let env = Env::new();
    // Each format keeps the config of images of its own kind byte for byte.
    let (oci, docker) = (layered(Flavor::Oci), layered(Flavor::Docker));
    env.push.image("test/oci", Some("1"), &oci);
    env.push.image("test/docker", Some("1"), &docker);
    let scratch = support::tempdir("podman");
    let pm = scratch.path();
    for (repo, format, img) in [
        ("test/oci", "oci-archive", &oci),
        ("test/oci", "oci-dir", &oci),
        ("test/docker", "docker-archive", &docker),
    ] {
        let reference = env.r(&format!("{repo}:1"));
        assert_ok(&env.strata.pull(&reference));
        podman(pm, &["pull", "-q", "--tls-verify=false", &reference]);
        let out = pm.join(format!("saved-{format}"));
        let out_str = out.to_str().expect("UTF-8");
        podman(
            pm,
            &["save", "-q", "--format", format, "-o", out_str, &reference],
        );
        let location = match format {
            "oci-dir" => format!("oci:{out_str}"),
            other => format!("{other}:{out_str}"),
        };
        let local = Strata::new();
        let pulled = local.pull(&location);
        assert_ok(&pulled);
        let name = pulled.stdout.trim().to_string();
        let from_registry = identity(&env.strata, &reference);
        assert_eq!(identity(&local, &name), from_registry, "{format}");
        assert_eq!(from_registry.0, img.config_digest);
        tree::assert_same(
            "registry pull",
            union(&env.strata, &reference).path(),
            format,
            union(&local, &name).path(),
            &root_mtime_opts(),
        );
    }
}

#[test]
fn docker_save_of_a_private_dockerd_loads_like_docker_load() {
    let env = Env::new();
    let img = layered(Flavor::Docker);
    env.push.image("test/docker", Some("1"), &img);
    let reference = env.r("test/docker:1");
    assert_ok(&env.strata.pull(&reference));
    let dockerd = Dockerd::start("vfs");
    // A loopback registry is insecure for dockerd by default.
    dockerd.docker(&["pull", "-q", &reference]);
    let scratch = support::tempdir("docker-save");
    let file = scratch.path().join("saved.tar");
    let file_str = file.to_str().expect("UTF-8");
    dockerd.docker(&["save", "-o", file_str, &reference]);

    let local = Strata::new();
    let out = local.run(&["-q", "load", "-i", file_str]);
    assert_ok(&out);
    assert_eq!(out.stdout, format!("Loaded image: {reference}\n"));
    let from_registry = identity(&env.strata, &reference);
    assert_eq!(identity(&local, &reference), from_registry);
    assert_eq!(from_registry.0, img.config_digest);
    tree::assert_same(
        "registry pull",
        union(&env.strata, &reference).path(),
        "docker save",
        union(&local, &reference).path(),
        &root_mtime_opts(),
    );
}

/// `strata --root ROOT -q load ARGS` with `input` on stdin.
fn load_piped(strata: &Strata, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = Command::new(support::strata::bin());
    cmd.arg("--root")
        .arg(strata.root())
        .args(["-q", "load"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().expect("spawn strata");
    let mut stdin = child.stdin.take().expect("stdin");
    // strata may stop reading early (a refused stream): a broken pipe is its answer.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("wait for strata")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// Nothing left in the store's `staging/` (the temporary copy included).
fn assert_staging_empty(strata: &Strata) {
    let staging = strata.root().join("staging");
    let left: Vec<_> = fs::read_dir(&staging)
        .map(|d| d.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", staging.display());
}

#[test]
fn load_from_stdin_and_compressed_archives_equals_the_registry_pull() {
    let Saved {
        env,
        img: _,
        scratch,
        file,
    } = saved_by_skopeo("load-stdin", "app.tar", Some("example.com/app:v1"));
    let reference = env.r("test/app:1");
    assert_ok(&env.strata.pull(&reference));
    let from_registry = identity(&env.strata, &reference);
    let tar = fs::read(&file).expect("archive");
    let gz = scratch.path().join("app.tar.gz");
    fs::write(&gz, gzip(&tar)).expect("write");
    let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
    support::require_tool("xz");
    run_ok(Command::new("xz").args(["-0", "-k"]).arg(&file));
    let xz = scratch.path().join("app.tar.xz");

    let ways: [(&str, &[&str], &[u8]); 5] = [
        ("docker save | strata load", &[], &tar),
        ("strata load -i - < archive", &["-i", "-"], &tar),
        (
            "strata load -i app.tar.gz",
            &["-i", gz.to_str().expect("UTF-8")],
            &[],
        ),
        ("zstd | strata load", &[], &zst),
        (
            "strata load -i app.tar.xz",
            &["-i", xz.to_str().expect("UTF-8")],
            &[],
        ),
    ];
    for (way, args, input) in ways {
        let local = Strata::new();
        let out = load_piped(&local, args, input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{way}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Loaded image: example.com/app:v1\n",
            "{way}"
        );
        assert_eq!(
            identity(&local, "example.com/app:v1"),
            from_registry,
            "{way}: image id and chain ids"
        );
        assert_staging_empty(&local);
    }
}

#[test]
fn load_of_a_broken_stream_fails_clearly_and_leaves_nothing() {
    let Saved {
        env: _,
        img: _,
        scratch,
        file,
    } = saved_by_skopeo("load-broken", "app.tar", Some("example.com/app:v1"));
    let gz = gzip(&fs::read(&file).expect("archive"));
    let truncated = &gz[..gz.len() / 2];
    let cut = scratch.path().join("cut.tar.gz");
    fs::write(&cut, truncated).expect("write");
    let xz = b"\xfd7zXZ\0not really xz";
    // Well-formed gzip of a tar that is neither kind of archive: the spooled copy's errors.
    let no_index = gzip(&saved(&[("readme", b"no manifest.json, no index.json")]));
    let no_index_file = scratch.path().join("odd.tar.gz");
    fs::write(&no_index_file, &no_index).expect("write");
    let bad_manifest = gzip(&saved(&[("manifest.json", b"[{\"Config\": 1}]")]));

    let local = Strata::new();
    let cases: [(&str, &[&str], &[u8], &str); 7] = [
        ("truncated gzip on stdin", &[], truncated, "stdin"),
        (
            "truncated gzip file",
            &["-i", cut.to_str().expect("UTF-8")],
            &[],
            "cut.tar.gz",
        ),
        ("broken xz on stdin", &["-i", "-"], xz, "stdin"),
        ("empty stdin", &[], &[], "empty"),
        (
            "gzip of a tar without an index on stdin",
            &[],
            &no_index,
            "stdin: no member \"index.json\"",
        ),
        (
            "gzip file of a tar without an index",
            &["-i", no_index_file.to_str().expect("UTF-8")],
            &[],
            "odd.tar.gz: no member \"index.json\"",
        ),
        (
            "bad manifest.json on stdin",
            &[],
            &bad_manifest,
            "stdin/manifest.json: ",
        ),
    ];
    for (case, args, input, needle) in cases {
        let out = load_piped(&local, args, input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: succeeded");
        assert!(stderr.contains(needle), "{case}: {stderr}");
        assert!(
            !stderr.contains("/proc/self/fd"),
            "{case}: the copy named by its descriptor: {stderr}"
        );
        assert_staging_empty(&local);
        assert!(local.images().is_empty(), "{case}: an image was stored");
        assert!(local.layer_dirs().is_empty(), "{case}: a layer was stored");
    }
}

/// An image saved without a name and loaded from a spooled copy is named after the archive
/// (`stdin`, the file without `.tar.gz`), not after the copy's descriptor.
#[test]
fn an_unnamed_image_loaded_from_a_copy_is_named_after_the_archive() {
    let Saved {
        env: _,
        img,
        scratch,
        file,
    } = saved_by_skopeo("load-unnamed", "plain.tar", None);
    let gz = gzip(&fs::read(&file).expect("archive"));
    let gz_file = scratch.path().join("My App.tar.gz");
    fs::write(&gz_file, &gz).expect("write");
    for (way, args, input, name) in [
        (
            "gzip | strata load",
            &[][..],
            &gz[..],
            "localhost/stdin:latest",
        ),
        (
            "strata load -i 'My App.tar.gz'",
            &["-i", gz_file.to_str().expect("UTF-8")][..],
            &[][..],
            "localhost/my-app:latest",
        ),
    ] {
        let local = Strata::new();
        let out = load_piped(&local, args, input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{way}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("Loaded image: {name}\n"),
            "{way}"
        );
        assert_eq!(identity(&local, name).0, img.config_digest, "{way}");
    }
}

/// `umoci unpack` into a fresh `bundle` under `work`, `change` the rootfs, `umoci repack`:
/// one new layer of what changed (removals as whiteouts).
fn umoci_repack(image: &str, work: &Path, change: impl FnOnce(&Path)) {
    let bundle = work.join("bundle");
    if bundle.exists() {
        fs::remove_dir_all(&bundle).expect("remove the bundle");
    }
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", image])
            .arg(&bundle),
    );
    change(&bundle.join("rootfs"));
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image", image])
            .arg(&bundle),
    );
}

/// A layout made by umoci itself, the real producer: `umoci init` + `new`, two `repack`s of
/// edited bundles (the second removes a file and a directory: whiteouts), `insert --opaque`
/// (an opaque directory) and `insert --whiteout`. `strata pull oci:` (the mounted union) and
/// `strata export oci:` both equal umoci's own `umoci unpack` of it.
#[test]
fn umoci_made_layouts_equal_umoci_unpack() {
    let env = Env::new();
    support::require_tool("umoci");
    let scratch = support::tempdir("umoci-layout");
    let layout = scratch.path().join("layout");
    let image = format!("{}:img", layout.display());
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
    );
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    umoci_repack(&image, scratch.path(), |r| {
        for d in ["etc", "usr/bin", "data/d/sub", "opt"] {
            fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        fs::write(r.join("etc/hostname"), "umoci\n").expect("write");
        fs::write(r.join("etc/gone"), "removed in layer 2\n").expect("write");
        fs::write(r.join("usr/bin/tool"), "#!/bin/sh\n").expect("write");
        fs::set_permissions(r.join("usr/bin/tool"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fs::write(r.join("data/d/sub/f"), "deep\n").expect("write");
        fs::write(r.join("data/keep"), "hidden by the opaque insert\n").expect("write");
        fs::hard_link(r.join("data/keep"), r.join("opt/hl")).expect("link");
        symlink("../etc/hostname", r.join("opt/link")).expect("symlink");
    });
    umoci_repack(&image, scratch.path(), |r| {
        fs::remove_file(r.join("etc/gone")).expect("rm");
        fs::remove_dir_all(r.join("data/d")).expect("rm -r");
        fs::write(r.join("etc/added"), "added in layer 2\n").expect("write");
    });
    // umoci 0.4.7's insert ends its tar right after the last member's data, without padding
    // or end-of-archive marker (GNU tar: "Unexpected EOF"); Go's archive/tar, and strata,
    // read that as the end of the archive.
    let host = scratch.path().join("host-data");
    fs::create_dir_all(host.join("new/dir")).expect("mkdir");
    fs::write(
        host.join("new/file"),
        "inserted by umoci, 37 bytes of data\n",
    )
    .expect("write");
    run_ok(
        Command::new("umoci")
            .args(["insert", "--image", &image, "--opaque"])
            .arg(&host)
            .arg("/data"),
    );
    run_ok(Command::new("umoci").args([
        "insert",
        "--image",
        &image,
        "--whiteout",
        "/usr/bin/tool",
    ]));
    let reference = scratch.path().join("reference");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &image])
            .arg(&reference),
    );
    let expected = reference.join("rootfs");
    // The whiteouts and the opaque directory really are in umoci's layers.
    assert!(!expected.join("etc/gone").exists() && !expected.join("usr/bin/tool").exists());
    assert!(!expected.join("data/keep").exists() && expected.join("data/new/file").exists());
    // umoci gives a directory it applied a whiteout or an opaque marker in the unpack time.
    let mut opts = root_mtime_opts();
    for dir in ["etc", "usr/bin", "data"] {
        opts = opts.ignore_mtime(
            dir,
            "umoci: a directory holding a whiteout gets the unpack time",
        );
    }

    let location = format!("oci:{image}");
    assert_ok(&env.strata.pull(&location));
    let stored = union(&env.strata, "localhost/layout:img");
    tree::assert_same(
        "strata union",
        stored.path(),
        "umoci unpack",
        &expected,
        &opts,
    );
    drop(stored);
    let exported = scratch.path().join("exported");
    let out = env
        .strata
        .run(&["-q", "export", &location, exported.to_str().expect("UTF-8")]);
    assert_ok(&out);
    tree::assert_same("strata export", &exported, "umoci unpack", &expected, &opts);
}

//! `strata pull` (and `images`, `inspect`) against a real registry.

use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::image::{self, Compression, Entry, Flavor, ImageBuilder, Layer};
use crate::support::netenv::noise;
use crate::support::strata::{self, Graph, Output, Strata, Union};
use crate::support::tree::{self, Options};
use crate::support::{self, Env, umoci};

/// Options for comparing strata's union with umoci's rootfs.
///
/// Documented exception: the mtime of the root directory. In an overlay mount the root's
/// attributes are those of the top layer's `diff/`; when that layer's tar has no `./` entry
/// (most layers built by Docker have none, neither do the ones built here) nothing says
/// what its mtime is, while umoci keeps the one from the bottom layer's `./` entry.
fn union_opts(layers: usize) -> Options {
    let o = Options::default();
    if layers > 1 {
        o.ignore_mtime(
            ".",
            "root of a multi-layer union: top layer has no ./ entry",
        )
    } else {
        o
    }
}

/// Compare the union of the layers strata stored for `image` with `umoci unpack` of
/// `repo_ref` (platform selects a manifest of an index).
fn assert_union_matches_umoci(
    env: &Env,
    image: &str,
    repo_ref: &str,
    platform: Option<(&str, Option<&str>)>,
) {
    let graph = Graph::of(&env.strata.inspect(image));
    let n = graph.layers_top_first().len();
    let union = Union::of(&graph);
    let reference = umoci::unpack(&env.reg, repo_ref, platform);
    // Non-vacuous: both trees have content.
    assert!(
        fs::read_dir(reference.rootfs())
            .expect("umoci rootfs")
            .count()
            > 0,
        "umoci unpacked nothing"
    );
    tree::assert_same(
        "strata union",
        union.path(),
        "umoci",
        &reference.rootfs(),
        &union_opts(n),
    );
}

fn assert_pulled(out: &Output, reference: &str) {
    assert!(out.status.success(), "pull failed:\n{}", out.describe());
    assert_eq!(
        out.stdout.trim(),
        reference,
        "stdout must be the normalised reference:\n{}",
        out.describe()
    );
}

fn assert_stderr_has(out: &Output, needle: &str) {
    assert!(
        out.stderr.contains(needle),
        "stderr should contain {needle:?}:\n{}",
        out.describe()
    );
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn canon(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

/// Docker's overlay2 layout for the layers of one image (top first in `graph`).
fn check_layout(s: &Strata, graph: &Graph, expected_layers: usize) {
    let overlay2 = canon(&s.overlay2());
    let layers = graph.layers_top_first();
    assert_eq!(
        layers.len(),
        expected_layers,
        "layers in GraphDriver: {graph:?}"
    );
    let l_dir = overlay2.join("l");
    assert_eq!(mode_of(&l_dir), 0o700, "mode of overlay2/l");

    let mut links = Vec::new();
    for diff in &layers {
        assert!(diff.is_absolute(), "{} must be absolute", diff.display());
        assert_eq!(diff.file_name().and_then(|n| n.to_str()), Some("diff"));
        let dir = canon(diff.parent().expect("layer dir"));
        assert_eq!(
            dir.parent(),
            Some(overlay2.as_path()),
            "{} not in overlay2/",
            dir.display()
        );
        let id = dir.file_name().expect("id").to_string_lossy().into_owned();
        assert_eq!(mode_of(&dir), 0o710, "mode of overlay2/{id}");
        assert!(diff.is_dir(), "{} is not a directory", diff.display());

        let link_file = dir.join("link");
        let link = fs::read_to_string(&link_file)
            .unwrap_or_else(|e| panic!("read {}: {e}", link_file.display()));
        assert_eq!(
            link.len(),
            26,
            "overlay2/{id}/link = {link:?}: 26 characters, no newline"
        );
        assert!(
            link.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "overlay2/{id}/link = {link:?}: only [A-Z2-7]"
        );
        assert_eq!(mode_of(&link_file), 0o644, "mode of overlay2/{id}/link");
        let short = l_dir.join(&link);
        let md = fs::symlink_metadata(&short)
            .unwrap_or_else(|e| panic!("overlay2/l/{link} for layer {id}: {e}"));
        assert!(
            md.file_type().is_symlink(),
            "overlay2/l/{link} is not a symlink"
        );
        assert_eq!(
            fs::read_link(&short).expect("readlink"),
            PathBuf::from(format!("../{id}/diff")),
            "target of overlay2/l/{link}"
        );
        assert_eq!(
            canon(&short),
            canon(diff),
            "overlay2/l/{link} resolves to the diff dir"
        );
        links.push((dir, link));
    }

    for (i, (dir, _)) in links.iter().enumerate() {
        let below = &links[i + 1..];
        let lower_file = dir.join("lower");
        let work = dir.join("work");
        if below.is_empty() {
            assert!(
                !lower_file.exists(),
                "bottom layer {} must have no lower file",
                dir.display()
            );
            assert!(
                !work.exists(),
                "bottom layer {} must have no work/",
                dir.display()
            );
        } else {
            let expected: Vec<String> = below.iter().map(|(_, l)| format!("l/{l}")).collect();
            let lower = fs::read_to_string(&lower_file)
                .unwrap_or_else(|e| panic!("read {}: {e}", lower_file.display()));
            assert_eq!(
                lower,
                expected.join(":"),
                "{}: parent first, no trailing newline",
                lower_file.display()
            );
            assert!(work.is_dir(), "{} must exist", work.display());
            assert_eq!(mode_of(&work), 0o700, "mode of {}", work.display());
            assert_eq!(
                fs::read_dir(&work).expect("read work").count(),
                0,
                "{} must be empty",
                work.display()
            );
        }
    }
    // Top layer: WorkDir/MergedDir are next to UpperDir.
    let top = graph.upper.parent().expect("top dir");
    assert_eq!(graph.work, top.join("work"));
    assert_eq!(graph.merged, top.join("merged"));
    check_store_consistent(s);
}

/// Every `overlay2/<id>` is a complete layer (no leftover staging), and `l/` has exactly one
/// working link per layer.
fn check_store_consistent(s: &Strata) {
    let dirs = s.layer_dirs();
    for id in &dirs {
        let d = s.overlay2().join(id);
        assert!(
            d.join("diff").is_dir() && d.join("link").is_file(),
            "overlay2/{id} is not a complete layer (leftover?): {:?}",
            fs::read_dir(&d).map(|r| r.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
    }
    let links = s.short_links();
    assert_eq!(
        links.len(),
        dirs.len(),
        "l/ entries {links:?} vs layer dirs {dirs:?}"
    );
    for l in &links {
        let p = s.overlay2().join("l").join(l);
        assert!(
            p.join(".").is_dir(),
            "overlay2/l/{l} does not resolve to a directory"
        );
    }
}

fn repo_tags(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------

#[test]
fn alpine_single_platform_oci_gzip() {
    let env = Env::new();
    let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
    env.push.image("library/alpine", Some("3.20.3"), &img);
    let reference = env.r("library/alpine:3.20.3");

    let out = env.strata.pull(&reference);
    assert_pulled(&out, &reference);
    assert_stderr_has(
        &out,
        &format!("{}: Pull complete", img.layers[0].short_id()),
    );
    assert_stderr_has(&out, &format!("Digest: {}", img.manifest_digest));
    assert_stderr_has(
        &out,
        &format!("Status: Downloaded newer image for {reference}"),
    );

    let inspect = env.strata.inspect(&reference);
    assert_eq!(inspect["Id"], img.config_digest.as_str());
    assert_eq!(inspect["RootFS"]["Type"], "layers");
    assert_eq!(
        inspect["RootFS"]["Layers"],
        serde_json::json!(img.diff_ids())
    );
    let graph = Graph::of(&inspect);
    assert!(
        graph.lower.is_empty(),
        "one layer: no LowerDir in {inspect:#}"
    );
    assert_eq!(env.strata.layer_dirs().len(), 1);
    check_layout(&env.strata, &graph, 1);
    assert_eq!(
        fs::read_to_string(graph.upper.join("etc/alpine-release")).expect("etc/alpine-release"),
        "3.20.3\n"
    );
    assert_union_matches_umoci(&env, &reference, "library/alpine:3.20.3", None);
}

/// A three-layer image: `lower` files, `work/` dirs, modes, `l/` links, LowerDir order.
#[test]
fn three_layer_layout() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .layer(
            Layer::from_tar_gz(&support::alpine_tarball(support::host_alpine_arch())),
            Compression::Gzip,
        )
        .entries(
            &[
                Entry::dir("etc"),
                Entry::file("etc/motd", "layer two\n"),
                Entry::dir("opt"),
            ],
            Compression::Gzip,
        )
        .entries(
            &[Entry::dir("opt"), Entry::file("opt/three", "layer three\n")],
            Compression::Gzip,
        )
        .build();
    env.push.image("test/three", Some("v1"), &img);
    let reference = env.r("test/three:v1");
    let out = env.strata.pull(&reference);
    assert_pulled(&out, &reference);
    for l in &img.layers {
        assert_stderr_has(&out, &format!("{}: Pull complete", l.short_id()));
    }

    let inspect = env.strata.inspect(&reference);
    let graph = Graph::of(&inspect);
    assert_eq!(
        graph.lower.len(),
        2,
        "LowerDir of a 3-layer image: {inspect:#}"
    );
    assert_eq!(env.strata.layer_dirs().len(), 3);
    check_layout(&env.strata, &graph, 3);
    // Nearest first: UpperDir holds layer 3, LowerDir[0] layer 2, LowerDir[1] the base.
    assert!(graph.upper.join("opt/three").is_file());
    assert!(graph.lower[0].join("etc/motd").is_file());
    assert!(!graph.lower[0].join("etc/alpine-release").exists());
    assert!(graph.lower[1].join("etc/alpine-release").is_file());
    assert!(
        graph.work.is_dir(),
        "WorkDir {} must exist",
        graph.work.display()
    );
    assert_union_matches_umoci(&env, &reference, "test/three:v1", None);
}

#[test]
fn multi_platform_oci_index() {
    let env = Env::new();
    let idx = image::alpine_multi(Flavor::Oci);
    env.push.index("library/alpine", "latest", &idx);
    let reference = env.r("library/alpine:latest");

    // --platform linux/arm64 picks the arm64/v8 manifest.
    let out = env
        .strata
        .run(&["--platform", "linux/arm64", "pull", &reference]);
    assert_pulled(&out, &reference);
    assert_stderr_has(&out, &format!("Digest: {}", idx.digest));
    let arm = idx.image_for("arm64");
    assert_stderr_has(
        &out,
        &format!("{}: Pull complete", arm.layers[0].short_id()),
    );
    let inspect = env.strata.inspect(&reference);
    assert_eq!(inspect["Architecture"], "arm64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Id"], arm.config_digest.as_str());
    let graph = Graph::of(&inspect);
    assert_eq!(
        fs::read_to_string(graph.upper.join("etc/apk/arch")).expect("etc/apk/arch"),
        "aarch64\n"
    );
    assert_union_matches_umoci(
        &env,
        &reference,
        "library/alpine:latest",
        Some(("arm64", Some("v8"))),
    );

    // Default platform: the host's.
    let host = Strata::new();
    let out = host.pull(&reference);
    assert_pulled(&out, &reference);
    let inspect = host.inspect(&reference);
    assert_eq!(inspect["Architecture"], support::host_arch());
    let want = idx.image_for(support::host_arch());
    assert_eq!(inspect["Id"], want.config_digest.as_str());
    let graph = Graph::of(&inspect);
    assert_eq!(
        fs::read_to_string(graph.upper.join("etc/apk/arch")).expect("etc/apk/arch"),
        format!("{}\n", support::host_alpine_arch())
    );

    // A platform the index does not have: an error listing the ones it has.
    let none = Strata::new();
    let out = none.run(&["--platform", "linux/s390x", "pull", &reference]);
    out.assert_error(&[]);
    assert_stderr_has(&out, "linux/s390x");
    assert_stderr_has(&out, "linux/amd64");
    assert_stderr_has(&out, "linux/arm64");
    assert!(
        none.layer_dirs().is_empty(),
        "nothing may be stored: {:?}",
        none.layer_dirs()
    );
}

#[test]
fn docker_media_types() {
    let env = Env::new();
    // A Docker manifest list of schema2 manifests.
    let list = image::alpine_multi(Flavor::Docker);
    env.push.index("library/alpine", "latest", &list);
    let reference = env.r("library/alpine:latest");
    let out = env.strata.pull(&reference);
    assert_pulled(&out, &reference);
    assert_stderr_has(&out, &format!("Digest: {}", list.digest));
    let inspect = env.strata.inspect(&reference);
    assert_eq!(inspect["Architecture"], support::host_arch());
    let (arch, variant) = image::alpine_platform(support::host_alpine_arch());
    assert_union_matches_umoci(
        &env,
        &reference,
        "library/alpine:latest",
        Some((arch, variant)),
    );

    // A single schema2 manifest with a gzip and an uncompressed Docker layer.
    let img = ImageBuilder::new(Flavor::Docker)
        .layer(
            Layer::from_tar_gz(&support::alpine_tarball(support::host_alpine_arch())),
            Compression::Gzip,
        )
        .entries(
            &[
                Entry::dir("srv"),
                Entry::file("srv/plain", "uncompressed docker layer\n"),
            ],
            Compression::None,
        )
        .build();
    assert_eq!(img.layers[1].media_type, image::media::DOCKER_LAYER);
    env.push.image("test/schema2", Some("v2"), &img);
    let reference = env.r("test/schema2:v2");
    let out = env.strata.pull(&reference);
    assert_pulled(&out, &reference);
    // The base layer is the same as the list's host image: stored once.
    assert_stderr_has(
        &out,
        &format!("{}: Already exists", img.layers[0].short_id()),
    );
    assert_eq!(env.strata.layer_dirs().len(), 2);
    let inspect = env.strata.inspect(&reference);
    assert_eq!(inspect["Id"], img.config_digest.as_str());
    assert_union_matches_umoci(&env, &reference, "test/schema2:v2", None);
}

/// Content for the compression test: a mix of entry kinds and a large file.
fn mixed_entries() -> Vec<Entry> {
    vec![
        Entry::dir("data"),
        Entry::file("data/big", noise(7, 3 << 20)),
        Entry::file("data/text", "some text\n".repeat(1000)),
        Entry::symlink("data/link", "text"),
        Entry::hardlink("data/hard", "data/text"),
        Entry::file("data/x", "x")
            .xattr("user.k", "v")
            .mode(0o600)
            .owner(1, 2),
        Entry::fifo("data/fifo"),
    ]
}

#[test]
fn gzip_zstd_and_plain_layers_give_identical_layer_dirs() {
    let env = Env::new();
    let base = Layer::from_tar_gz(&support::alpine_tarball(support::host_alpine_arch()));
    let top = Layer::from_entries(&mixed_entries());
    let build = |c: Compression| {
        ImageBuilder::new(Flavor::Oci)
            .layer(base.clone(), c)
            .layer(top.clone(), c)
            .build()
    };
    let variants = [
        ("gzip", build(Compression::Gzip)),
        ("zstd", build(Compression::Zstd)),
        ("plain", build(Compression::None)),
    ];
    assert_eq!(
        variants[1].1.layers[0].media_type,
        image::media::OCI_LAYER_ZSTD
    );
    assert_eq!(variants[2].1.layers[0].media_type, image::media::OCI_LAYER);
    let mut graphs = Vec::new();
    let mut roots = Vec::new();
    for (tag, img) in &variants {
        assert_eq!(img.diff_ids(), variants[0].1.diff_ids(), "same content");
        env.push.image("test/comp", Some(tag), img);
        let s = Strata::new();
        let reference = env.r(&format!("test/comp:{tag}"));
        assert_pulled(&s.pull(&reference), &reference);
        let g = Graph::of(&s.inspect(&reference));
        check_layout(&s, &g, 2);
        graphs.push(g);
        roots.push(s);
    }
    for (i, (tag, _)) in variants.iter().enumerate().skip(1) {
        let (a, b) = (&graphs[0], &graphs[i]);
        // Bottom layer (Alpine, whose tar has a ./ entry): everything compared.
        tree::assert_same(
            "gzip base",
            &a.lower[0],
            &format!("{tag} base"),
            &b.lower[0],
            &Options::default(),
        );
        // Top layer: its tar has no ./ entry, so the mtime of diff/ itself is the time it
        // was created (as with Docker).
        let opts = Options::default().ignore_mtime(".", "layer tar has no ./ entry");
        tree::assert_same("gzip top", &a.upper, &format!("{tag} top"), &b.upper, &opts);
    }
    // The gzip one (umoci cannot read zstd) against the reference.
    let union = Union::of(&graphs[0]);
    let reference = umoci::unpack(&env.reg, "test/comp:gzip", None);
    tree::assert_same(
        "strata union",
        union.path(),
        "umoci",
        &reference.rootfs(),
        &union_opts(2),
    );

    // Layers are keyed by chain ID: in one root, the other compressions add no layer.
    for (tag, _) in &variants {
        let reference = env.r(&format!("test/comp:{tag}"));
        assert_pulled(&env.strata.pull(&reference), &reference);
        assert_eq!(env.strata.layer_dirs().len(), 2, "after pulling {tag}");
    }
    check_store_consistent(&env.strata);
}

/// A base layer, a layer of whiteouts/opaque dirs, and a layer re-creating whited-out
/// paths; plus every entry kind, special mode bits, owners, xattrs, long and UTF-8 names.
pub(crate) fn whiteout_image() -> ImageBuilder {
    let long_dir = format!("deep/{}", "d".repeat(120));
    let long_file = format!("{long_dir}/{}", "f".repeat(110));
    let l1 = vec![
        Entry::dir("a").mtime(1_600_000_000),
        Entry::file("a/keep", "keep v1\n"),
        Entry::hardlink("a/keep-hard", "a/keep"),
        Entry::file("a/gone", "will be whited out\n"),
        Entry::dir("a/subdir"),
        Entry::file("a/subdir/f", "in subdir\n"),
        Entry::dir("o").mode(0o750).owner(0, 42),
        Entry::file("o/old", "old\n"),
        Entry::dir("o/olddir"),
        Entry::file("o/olddir/x", "x\n"),
        Entry::dir("x"),
        Entry::file("x/file", "x/file\n"),
        Entry::file("rootfile", "becomes a directory\n"),
        Entry::dir("bin"),
        Entry::file("bin/su", "#!/bin/true\n").mode(0o4755),
        Entry::hardlink("bin/su-hard", "bin/su"),
        Entry::file("bin/sg", "#!/bin/true\n").mode(0o2711),
        Entry::dir("srv").mode(0o2775).owner(1000, 1000),
        Entry::dir("tmp").mode(0o1777),
        Entry::file("owned", "owned\n")
            .owner(1000, 1001)
            .mode(0o600),
        Entry::file("xattrs", "x\n")
            .xattr("user.comment", "hello")
            .xattr("trusted.strata", [0u8, 1, 2, 255]),
        Entry::dir("xdir").xattr("user.dir", "yes"),
        Entry::dir("dev"),
        Entry::char_dev("dev/null", 1, 3),
        Entry::block_dev("dev/loop0", 7, 0),
        Entry::fifo("dev/fifo"),
        Entry::symlink("abs-link", "/a/keep"),
        Entry::symlink("rel-link", "a/keep"),
        Entry::symlink("dangling", "/does/not/exist"),
        Entry::dir("deep"),
        Entry::dir(&long_dir),
        Entry::file(&long_file, "long name\n"),
        Entry::file("ünïcödé.txt", "utf-8 name\n"),
        Entry::file("empty", ""),
        Entry::file("old-mtime", "epoch+1\n").mtime(1),
        Entry::dir("later-mtime").mtime(1_800_000_000),
        Entry::file("later-mtime/f", "f\n"),
    ];
    let l2 = vec![
        Entry::dir("a").mtime(1_650_000_000),
        Entry::whiteout("a/gone"),
        Entry::whiteout("a/subdir"),
        Entry::whiteout("a/never-existed"),
        Entry::dir("o").mode(0o755),
        Entry::opaque("o"),
        Entry::file("o/new", "new in layer 2\n"),
        Entry::dir("x"),
        Entry::whiteout("x/file"),
        Entry::dir("rootfile"),
        Entry::file("rootfile/child", "child\n"),
        Entry::whiteout("abs-link"),
    ];
    let l3 = vec![
        Entry::dir("a").mode(0o700).mtime(1_660_000_000),
        Entry::file("a/gone", "back again\n"),
        Entry::file("a/keep", "keep v3\n"),
        Entry::dir("o"),
        Entry::file("o/newer", "layer 3\n"),
    ];
    ImageBuilder::new(Flavor::Oci)
        .entries(&l1, Compression::Gzip)
        .entries(&l2, Compression::Gzip)
        .entries(&l3, Compression::Gzip)
}

fn assert_whiteout_device(p: &Path) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        md.file_type().is_char_device(),
        "{} must be a char device",
        p.display()
    );
    assert_eq!(md.rdev(), 0, "{} must be device 0/0", p.display());
}

/// No `.wh.*` name survives in a layer directory.
fn assert_no_wh_names(dir: &Path) {
    let names: Vec<String> = tree::scan(dir)
        .keys()
        .map(|p| p.display().to_string())
        .filter(|p| p.contains(".wh."))
        .collect();
    assert!(
        names.is_empty(),
        "whiteout files left in {}: {names:?}",
        dir.display()
    );
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let env = Env::new();
    let img = whiteout_image().build();
    env.push.image("test/whiteouts", Some("v1"), &img);
    let reference = env.r("test/whiteouts:v1");
    assert_pulled(&env.strata.pull(&reference), &reference);
    let graph = Graph::of(&env.strata.inspect(&reference));
    check_layout(&env.strata, &graph, 3);
    let (l3, l2, l1) = (&graph.upper, &graph.lower[0], &graph.lower[1]);

    // Layer 2: whiteouts are 0/0 char devices, the opaque dir has the xattr.
    for p in [
        "a/gone",
        "a/subdir",
        "a/never-existed",
        "x/file",
        "abs-link",
    ] {
        assert_whiteout_device(&l2.join(p));
    }
    assert_eq!(
        tree::get_xattr(&l2.join("o"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..]),
        "opaque dir o/ in layer 2"
    );
    assert!(l2.join("o/new").is_file());
    assert!(l2.join("rootfile/child").is_file());
    for l in [l1, l2, l3] {
        assert_no_wh_names(l);
    }
    assert_eq!(
        tree::get_xattr(&l1.join("o"), "trusted.overlay.opaque"),
        None
    );
    assert_eq!(
        tree::get_xattr(&l3.join("o"), "trusted.overlay.opaque"),
        None
    );
    assert_eq!(
        fs::read_to_string(l3.join("a/gone")).expect("a/gone in layer 3"),
        "back again\n"
    );

    // Layer 1 as written in its tar.
    assert_eq!(mode_of(&l1.join("bin/su")), 0o4755);
    assert_eq!(mode_of(&l1.join("bin/sg")), 0o2711);
    assert_eq!(mode_of(&l1.join("srv")), 0o2775);
    assert_eq!(mode_of(&l1.join("tmp")), 0o1777);
    let md = fs::symlink_metadata(l1.join("owned")).expect("owned");
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1000, 1001, 0o600)
    );
    let md = fs::symlink_metadata(l1.join("dev/null")).expect("dev/null");
    assert!(md.file_type().is_char_device());
    assert_eq!((libc::major(md.rdev()), libc::minor(md.rdev())), (1, 3));
    let md = fs::symlink_metadata(l1.join("dev/loop0")).expect("dev/loop0");
    assert!(md.file_type().is_block_device());
    assert_eq!((libc::major(md.rdev()), libc::minor(md.rdev())), (7, 0));
    assert!(
        fs::symlink_metadata(l1.join("dev/fifo"))
            .expect("fifo")
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        tree::get_xattr(&l1.join("xattrs"), "user.comment").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        tree::get_xattr(&l1.join("xattrs"), "trusted.strata").as_deref(),
        Some(&[0u8, 1, 2, 255][..])
    );
    assert_eq!(
        tree::get_xattr(&l1.join("xdir"), "user.dir").as_deref(),
        Some(&b"yes"[..])
    );
    assert_eq!(
        fs::read_link(l1.join("abs-link")).expect("abs-link"),
        PathBuf::from("/a/keep")
    );
    let keep = fs::metadata(l1.join("a/keep")).expect("a/keep");
    let hard = fs::metadata(l1.join("a/keep-hard")).expect("a/keep-hard");
    assert_eq!(
        keep.ino(),
        hard.ino(),
        "a/keep-hard is a hard link to a/keep"
    );
    assert_eq!(
        fs::symlink_metadata(l1.join("old-mtime"))
            .expect("old-mtime")
            .mtime(),
        1
    );
    assert_eq!(
        fs::symlink_metadata(l1.join("a")).expect("a").mtime(),
        1_600_000_000
    );
    assert_eq!(
        fs::symlink_metadata(l1.join("later-mtime"))
            .expect("later-mtime")
            .mtime(),
        1_800_000_000,
        "a directory's mtime is set after its children are written"
    );
    assert_eq!(
        fs::symlink_metadata(l2.join("a")).expect("a").mtime(),
        1_650_000_000,
        "a directory's mtime survives the whiteouts written into it"
    );

    // The union as a container sees it equals umoci's unpack.
    let union = Union::of(&graph);
    let u = union.path();
    assert!(!u.join("a/subdir").exists());
    assert!(!u.join("x/file").exists());
    assert!(!u.join("o/old").exists() && !u.join("o/olddir").exists());
    assert!(u.join("o/new").is_file() && u.join("o/newer").is_file());
    assert_eq!(
        fs::read_to_string(u.join("a/gone")).expect("a/gone"),
        "back again\n"
    );
    drop(union);
    assert_union_matches_umoci(&env, &reference, "test/whiteouts:v1", None);
}

/// Two images sharing the Alpine base layer: the base is stored once.
#[test]
fn shared_base_layer_is_stored_once() {
    let env = Env::new();
    let base = Layer::from_tar_gz(&support::alpine_tarball(support::host_alpine_arch()));
    let a = ImageBuilder::new(Flavor::Oci)
        .layer(base.clone(), Compression::Gzip)
        .entries(
            &[Entry::dir("app"), Entry::file("app/a", "image a\n")],
            Compression::Gzip,
        )
        .build();
    let b = ImageBuilder::new(Flavor::Docker)
        .layer(base, Compression::Gzip)
        .entries(
            &[Entry::dir("app"), Entry::file("app/b", "image b\n")],
            Compression::Gzip,
        )
        .build();
    env.push.image("test/a", Some("v1"), &a);
    env.push.image("test/b", Some("v1"), &b);
    let (ra, rb) = (env.r("test/a:v1"), env.r("test/b:v1"));

    let out = env.strata.pull(&ra);
    assert_pulled(&out, &ra);
    assert_stderr_has(&out, &format!("{}: Pull complete", a.layers[0].short_id()));
    assert_eq!(env.strata.layer_dirs().len(), 2);

    let out = env.strata.pull(&rb);
    assert_pulled(&out, &rb);
    assert_stderr_has(&out, &format!("{}: Already exists", b.layers[0].short_id()));
    assert_stderr_has(&out, &format!("{}: Pull complete", b.layers[1].short_id()));
    assert!(
        !out.stderr
            .contains(&format!("{}: Pull complete", b.layers[0].short_id())),
        "the shared base must not be pulled again:\n{}",
        out.describe()
    );
    assert_eq!(env.strata.layer_dirs().len(), 3, "base + a + b");
    check_store_consistent(&env.strata);

    let ga = Graph::of(&env.strata.inspect(&ra));
    let gb = Graph::of(&env.strata.inspect(&rb));
    assert_eq!(
        ga.lower, gb.lower,
        "both images sit on the same base layer dir"
    );
    assert_ne!(ga.upper, gb.upper);
    check_layout(&env.strata, &ga, 2);
    check_layout(&env.strata, &gb, 2);
    assert_union_matches_umoci(&env, &rb, "test/b:v1", None);
}

#[test]
fn pulling_twice_is_up_to_date() {
    let env = Env::new();
    let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
    env.push.image("library/alpine", Some("3.20.3"), &img);
    let reference = env.r("library/alpine:3.20.3");
    assert_pulled(&env.strata.pull(&reference), &reference);
    let dirs = env.strata.layer_dirs();
    let inspect = env.strata.inspect(&reference);

    let out = env.strata.pull(&reference);
    assert_pulled(&out, &reference);
    assert_stderr_has(
        &out,
        &format!("Status: Image is up to date for {reference}"),
    );
    assert!(
        !out.stderr.contains("Pull complete") && !out.stderr.contains("Downloaded newer"),
        "nothing is downloaded the second time:\n{}",
        out.describe()
    );
    assert_eq!(env.strata.layer_dirs(), dirs);
    assert_eq!(env.strata.inspect(&reference), inspect);
    assert_eq!(env.strata.images().len(), 1);
}

/// The `unsynced/` markers: file name -> content.
fn unsynced_markers(s: &Strata) -> Vec<(String, String)> {
    let mut markers: Vec<_> = fs::read_dir(s.root().join("unsynced"))
        .expect("unsynced/ exists")
        .map(|e| {
            let e = e.expect("dir entry");
            let content = fs::read_to_string(e.path()).expect("marker readable");
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect();
    markers.sort();
    markers
}

#[test]
fn no_sync_layers_are_marked_and_discarded_after_a_crash() {
    let env = Env::new();
    let img = two_layer_with_marker().build();
    env.push.image("test/nosync", Some("v1"), &img);
    let reference = env.r("test/nosync:v1");
    let chains: Vec<String> = img
        .chain_ids()
        .iter()
        .map(|c| c.trim_start_matches("sha256:").to_string())
        .collect();
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");

    // Without syncs: both layers in place, each marked with this boot's id.
    assert_pulled(
        &env.strata.run(&["--no-sync", "pull", &reference]),
        &reference,
    );
    let marked = unsynced_markers(&env.strata);
    let mut expected: Vec<_> = chains
        .iter()
        .map(|c| (c.clone(), boot.trim().to_string()))
        .collect();
    expected.sort();
    assert_eq!(marked, expected);
    check_layout(&env.strata, &Graph::of(&env.strata.inspect(&reference)), 2);
    // Another command without syncs leaves them as they are.
    env.strata.run(&["--no-sync", "pull", &reference]).ok();
    assert_eq!(unsynced_markers(&env.strata), expected);

    // The machine "went down" before the top layer was synced: its marker names another boot.
    fs::write(
        env.strata.root().join("unsynced").join(&chains[1]),
        "another-boot",
    )
    .unwrap();
    let out = env.strata.pull(&reference);
    assert_pulled(&out, &reference);
    // The top layer was discarded and fetched again; the base (this boot) was only synced.
    assert_stderr_has(
        &out,
        &format!("{}: Pull complete", img.layers[1].short_id()),
    );
    assert_stderr_has(
        &out,
        &format!("{}: Already exists", img.layers[0].short_id()),
    );
    assert_eq!(unsynced_markers(&env.strata), vec![]);
    check_layout(&env.strata, &Graph::of(&env.strata.inspect(&reference)), 2);
    check_store_consistent(&env.strata);
    assert_union_matches_umoci(&env, &reference, "test/nosync:v1", None);

    // A synced pull leaves no markers.
    let other = Strata::new();
    assert_pulled(&other.pull(&reference), &reference);
    assert_eq!(unsynced_markers(&other), vec![]);

    // A container on --no-sync layers: after a "crash", its torn layer is never mounted.
    let host = Strata::new();
    host.run(&["--no-sync", "pull-and-mount", "--name", "c", &reference])
        .ok();
    host.run(&["umount", "c"]).ok();
    fs::write(
        host.root().join("unsynced").join(&chains[1]),
        "another-boot",
    )
    .unwrap();
    let out = host.run(&["mount", "c"]);
    out.assert_error(&["container c", &chains[1], "is missing", "pull"]);
    assert!(!host.overlay2().join(&chains[1]).exists());
    host.run(&["rm", "-f", "c"]).ok();

    // Nor exported from the store.
    let exporter = Strata::new();
    exporter.run(&["--no-sync", "pull", &reference]).ok();
    fs::write(
        exporter.root().join("unsynced").join(&chains[1]),
        "another-boot",
    )
    .unwrap();
    let target = exporter.root().join("exported");
    let out = exporter.run(&[
        "export",
        "--pull",
        "never",
        &reference,
        target.to_str().unwrap(),
    ]);
    out.assert_error(&["not in the store"]);
    assert!(!exporter.overlay2().join(&chains[1]).exists());
}

/// The image name and both digests must be in the error.
fn assert_mismatch_error(out: &Output, reference_repo: &str, expected: &str, actual: &str) {
    out.assert_error(&[]);
    let lower = out.stderr.to_lowercase();
    assert!(
        lower.contains("expected"),
        "error must say \"expected\":\n{}",
        out.describe()
    );
    assert_stderr_has(out, expected);
    assert_stderr_has(out, actual);
    assert_stderr_has(out, reference_repo);
}

/// The error message does not say the same thing twice (e.g. a cause printed once by its
/// wrapper's message and once more as the wrapper's source): no `: `-separated part of the
/// `error:` line appears twice.
fn assert_not_repeated(out: &Output) {
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{}", out.describe()));
    let parts: Vec<&str> = line.split(": ").collect();
    let mut seen = std::collections::HashSet::new();
    let repeated: Vec<&str> = parts.iter().copied().filter(|p| !seen.insert(*p)).collect();
    assert!(
        repeated.is_empty(),
        "the error repeats {repeated:?}:\n{}",
        out.describe()
    );
}

/// Nothing of the failed layer is left: no layer dir or link for it, no file named after
/// or mentioning its chain ID, none of its files, no image record.
fn assert_nothing_left(s: &Strata, failed_chain_id: &str, marker: &str, max_layers: usize) {
    check_store_consistent(s);
    let dirs = s.layer_dirs();
    assert!(dirs.len() <= max_layers, "layer dirs left behind: {dirs:?}");
    let hex = image::hex_of(failed_chain_id);
    // Lock files are not records: removing a lock file others may hold is racy, so a store
    // may keep them.
    let mentions: Vec<String> = strata::find_mentions(s.root(), hex)
        .into_iter()
        .filter(|m| !m.ends_with(".lock (name)"))
        .collect();
    assert!(
        mentions.is_empty(),
        "the failed layer {failed_chain_id} is recorded in {mentions:?}"
    );
    let files = strata::find_mentions(s.root(), marker);
    assert!(
        files.is_empty(),
        "files of the failed layer are left: {files:?}"
    );
    assert_eq!(s.images(), Vec::<Value>::new(), "no image may be recorded");
}

const MARKER: &str = "strata-failed-layer-marker";

fn two_layer_with_marker() -> ImageBuilder {
    ImageBuilder::new(Flavor::Oci)
        .entries(
            &[Entry::dir("base"), Entry::file("base/ok", "fine\n")],
            Compression::Gzip,
        )
        .entries(
            &[
                Entry::dir("top"),
                Entry::file(&format!("top/{MARKER}"), noise(3, 1 << 20)),
            ],
            Compression::Gzip,
        )
}

#[test]
fn corrupted_blob_fails_and_leaves_nothing() {
    let env = Env::new();
    let img = two_layer_with_marker().build();
    env.push.image("test/corrupt", Some("v1"), &img);
    let bad = &img.layers[1];
    // Same length, still valid gzip of the same tar: only the blob digest is wrong.
    let served = env
        .reg
        .replace_blob(&bad.digest, &image::gzip_with_other_mtime(&bad.blob));
    let reference = env.r("test/corrupt:v1");
    let out = env.strata.pull(&reference);
    assert_mismatch_error(&out, &env.r("test/corrupt"), &bad.digest, &served);
    assert_nothing_left(&env.strata, &img.chain_ids()[1], MARKER, 1);

    // The store is still usable: a good image sharing the base pulls fine.
    let good = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[Entry::dir("base"), Entry::file("base/ok", "fine\n")],
            Compression::Gzip,
        )
        .entries(
            &[Entry::dir("top"), Entry::file("top/good", "good\n")],
            Compression::Gzip,
        )
        .build();
    assert_eq!(good.layers[0].digest, img.layers[0].digest);
    env.push.image("test/good", Some("v1"), &good);
    let reference = env.r("test/good:v1");
    assert_pulled(&env.strata.pull(&reference), &reference);
    check_layout(&env.strata, &Graph::of(&env.strata.inspect(&reference)), 2);
    assert_not_repeated(&out);
}

/// Garbage bytes (not even valid gzip): the pull fails, names the layer, and leaves nothing.
#[test]
fn garbage_blob_fails_and_leaves_nothing() {
    let env = Env::new();
    let img = two_layer_with_marker().build();
    env.push.image("test/garbage", Some("v1"), &img);
    let bad = &img.layers[1];
    env.reg.corrupt_blob(&bad.digest);
    let out = env.strata.pull(&env.r("test/garbage:v1"));
    out.assert_error(&[]);
    assert_stderr_has(&out, bad.short_id());
    assert_nothing_left(&env.strata, &img.chain_ids()[1], MARKER, 1);
}

#[test]
fn wrong_diff_id_fails_and_leaves_nothing() {
    let env = Env::new();
    let img = two_layer_with_marker().wrong_diff_id(1).build();
    assert_ne!(img.config_diff_ids[1], img.layers[1].diff_id);
    env.push.image("test/diffid", Some("v1"), &img);
    let out = env.strata.pull(&env.r("test/diffid:v1"));
    assert_mismatch_error(
        &out,
        &env.r("test/diffid"),
        &img.config_diff_ids[1],
        &img.layers[1].diff_id,
    );
    let lower = out.stderr.to_lowercase();
    assert!(
        ["diff_id", "diff id", "diffid"]
            .iter()
            .any(|w| lower.contains(w)),
        "the error must say it is the diff_id that does not match:\n{}",
        out.describe()
    );
    assert_nothing_left(&env.strata, &img.chain_ids()[1], MARKER, 1);
    assert_not_repeated(&out);
}

/// The config and the manifest are verified too: a registry serving other bytes (still
/// valid JSON, same length) under their digest fails the pull.
#[test]
fn corrupted_config_and_manifest_fail() {
    let env = Env::new();
    let img = two_layer_with_marker().build();
    env.push.image("test/config", Some("v1"), &img);
    let config = String::from_utf8(img.config.clone()).expect("config is UTF-8");
    let other = config.replacen("strata test layer 0", "strata test layer 9", 1);
    let served = env.reg.replace_blob(&img.config_digest, other.as_bytes());
    let config_out = env.strata.pull(&env.r("test/config:v1"));
    let out = &config_out;
    assert_mismatch_error(out, &env.r("test/config"), &img.config_digest, &served);
    assert!(env.strata.layer_dirs().len() <= 2);
    assert_eq!(
        env.strata.images(),
        Vec::<Value>::new(),
        "no image may be recorded"
    );

    let img = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[Entry::dir("m"), Entry::file("m/f", "manifest test\n")],
            Compression::Gzip,
        )
        .build();
    env.push.image("test/manifest", Some("v1"), &img);
    let manifest = String::from_utf8(img.manifest.clone()).expect("manifest is UTF-8");
    assert!(manifest.contains("\n  "), "pretty-printed manifest");
    let other = manifest.replacen("\n  ", "\n\t ", 1);
    let served = env.reg.replace_blob(&img.manifest_digest, other.as_bytes());
    let s = Strata::new();
    let by_digest = env.r(&format!("test/manifest@{}", img.manifest_digest));
    let out = s.pull(&by_digest);
    out.assert_error(&[]);
    assert_stderr_has(&out, &img.manifest_digest);
    assert_stderr_has(&out, &served);
    assert!(
        s.layer_dirs().is_empty(),
        "nothing may be stored: {:?}",
        s.layer_dirs()
    );
    assert_eq!(s.images(), Vec::<Value>::new(), "no image may be recorded");
    assert_not_repeated(&config_out);
    assert_not_repeated(&out);
}

#[test]
fn pull_by_digest() {
    let env = Env::new();
    let idx = image::alpine_multi(Flavor::Oci);
    env.push.index("library/alpine", "latest", &idx);

    // A manifest digest.
    let host = idx.image_for(support::host_arch());
    let by_manifest = env.r(&format!("library/alpine@{}", host.manifest_digest));
    let out = env.strata.pull(&by_manifest);
    assert_pulled(&out, &by_manifest);
    let inspect = env.strata.inspect(&by_manifest);
    assert_eq!(inspect["Id"], host.config_digest.as_str());
    assert!(
        repo_tags(&inspect["RepoDigests"]).contains(&by_manifest),
        "RepoDigests must contain {by_manifest}: {inspect:#}"
    );

    // An index digest, with a platform.
    let s = Strata::new();
    let by_index = env.r(&format!("library/alpine@{}", idx.digest));
    let out = s.run(&["--platform", "linux/arm64", "pull", &by_index]);
    assert_pulled(&out, &by_index);
    let inspect = s.inspect(&by_index);
    assert_eq!(inspect["Id"], idx.image_for("arm64").config_digest.as_str());

    // A digest the registry does not have.
    let missing = env.r(&format!(
        "library/alpine@{}",
        support::sha256_digest(b"missing")
    ));
    let out = Strata::new().pull(&missing);
    out.assert_error(&[]);
}

#[test]
fn unknown_tag_and_repository_fail() {
    let env = Env::new();
    env.push.image(
        "library/alpine",
        Some("3.20.3"),
        &image::alpine(Flavor::Oci, "x86_64"),
    );
    for repo_ref in ["library/alpine:nope", "nope/nope:latest"] {
        let reference = env.r(repo_ref);
        let out = env.strata.pull(&reference);
        out.assert_error(&[]);
        assert_stderr_has(&out, &reference);
        let lower = out.stderr.to_lowercase();
        assert!(
            lower.contains("not found") || lower.contains("manifest unknown"),
            "the error must say the manifest was not found:\n{}",
            out.describe()
        );
        assert!(env.strata.layer_dirs().is_empty());
    }
}

#[test]
fn invalid_references_are_rejected() {
    support::require_root();
    let s = Strata::new();
    let mut outputs = Vec::new();
    for bad in [
        "Alpine:UPPER/Case",
        "alpine:bad tag",
        "alpine@sha256:short",
        "a//b",
        ":latest",
    ] {
        let out = s.pull(bad);
        assert!(
            matches!(out.code(), Some(1) | Some(2)),
            "{bad:?} must be rejected with exit code 1 or 2:\n{}",
            out.describe()
        );
        assert!(
            out.stderr.contains("error"),
            "no error message:\n{}",
            out.describe()
        );
        let lower = out.stderr.to_lowercase();
        assert!(
            out.stderr.contains(bad) || lower.contains("invalid") || lower.contains("reference"),
            "the message must say what is wrong with {bad:?}:\n{}",
            out.describe()
        );
        assert!(
            !lower.contains("panicked"),
            "strata panicked:\n{}",
            out.describe()
        );
        outputs.push(out);
    }
    // Checked last, so the checks above are reported first.
    for out in &outputs {
        assert_not_repeated(out);
    }
}

#[test]
fn images_and_inspect_shapes() {
    let env = Env::new();
    let idx = image::alpine_multi(Flavor::Oci);
    env.push.index("library/alpine", "latest", &idx);
    let img = whiteout_image()
        .container_config(serde_json::json!({"Env": ["A=1"], "Cmd": ["/bin/true"], "User": "1000"}))
        .build();
    env.push.image("test/shapes", Some("v1"), &img);
    let ra = env.r("library/alpine:latest");
    let rb = env.r("test/shapes:v1");
    assert_pulled(&env.strata.pull(&ra), &ra);
    assert_pulled(&env.strata.pull(&rb), &rb);

    let images = env.strata.images();
    assert_eq!(images.len(), 2, "{images:#?}");
    let host = idx.image_for(support::host_arch());
    for (repo, tag, digest, id) in [
        (
            env.r("library/alpine"),
            "latest",
            &idx.digest,
            &host.config_digest,
        ),
        (
            env.r("test/shapes"),
            "v1",
            &img.manifest_digest,
            &img.config_digest,
        ),
    ] {
        let e = images
            .iter()
            .find(|e| e["Repository"] == repo.as_str())
            .unwrap_or_else(|| panic!("no {repo} in {images:#?}"));
        assert_eq!(e["Tag"], tag);
        assert_eq!(e["Digest"], digest.as_str());
        assert_eq!(e["Id"], id.as_str());
        assert!(e["Size"].as_u64().is_some_and(|s| s > 0), "Size in {e:#}");
        assert!(
            e.get("Created").is_some_and(|c| !c.is_null()),
            "Created in {e:#}"
        );
    }

    let v = env.strata.inspect(&rb);
    assert_eq!(v["Id"], img.config_digest.as_str());
    assert_eq!(repo_tags(&v["RepoTags"]), vec![rb.clone()]);
    assert_eq!(
        repo_tags(&v["RepoDigests"]),
        vec![format!("{}@{}", env.r("test/shapes"), img.manifest_digest)]
    );
    assert_eq!(v["Architecture"], support::host_arch());
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["/bin/true"]));
    assert_eq!(v["Config"]["User"], "1000");
    assert_eq!(
        v["RootFS"],
        serde_json::json!({"Type": "layers", "Layers": img.diff_ids()})
    );
    let g = Graph::of(&v);
    assert_eq!(g.lower.len(), 2);
    for p in g.layers_top_first() {
        assert!(p.is_dir(), "{} must exist", p.display());
    }
    assert!(g.work.is_dir(), "WorkDir {} must exist", g.work.display());

    let v = env.strata.inspect(&ra);
    assert_eq!(v["Id"], host.config_digest.as_str());
    assert_eq!(v["Config"]["Env"], serde_json::json!([image::PATH_ENV]));
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(
        repo_tags(&v["RepoDigests"]),
        vec![format!("{}@{}", env.r("library/alpine"), idx.digest)]
    );
    let g = Graph::of(&v);
    assert!(g.lower.is_empty() && g.upper.is_dir());

    // STRATA_ROOT is the same as --root.
    let out = std::process::Command::new(strata::bin())
        .args(["images", "--json"])
        .env("STRATA_ROOT", env.strata.root())
        .output()
        .expect("run strata");
    assert!(out.status.success(), "{out:?}");
    let via_env: Value = serde_json::from_slice(&out.stdout).expect("images --json");
    assert_eq!(via_env, Value::Array(images));

    // An image that was not pulled.
    let out = env.strata.run(&["inspect", &env.r("test/absent:v1")]);
    out.assert_error(&[]);
}

/// The README's main job: Docker Hub names through `--mirror docker.io=...`.
#[test]
fn pull_through_docker_hub_mirror() {
    let env = Env::new();
    let idx = image::alpine_multi(Flavor::Oci);
    env.push.index("library/alpine", "latest", &idx);
    let mirror = format!("docker.io={}", env.reg.url());
    let out = env.strata.run(&["--mirror", &mirror, "pull", "alpine"]);
    assert_pulled(&out, "docker.io/library/alpine:latest");
    assert_stderr_has(
        &out,
        "Status: Downloaded newer image for docker.io/library/alpine:latest",
    );
    let v = env.strata.inspect("alpine");
    assert_eq!(
        v["Id"],
        idx.image_for(support::host_arch()).config_digest.as_str()
    );
    assert_eq!(
        env.strata.inspect("docker.io/library/alpine:latest")["Id"],
        v["Id"]
    );
    let (arch, variant) = image::alpine_platform(support::host_alpine_arch());
    assert_union_matches_umoci(
        &env,
        "alpine",
        "library/alpine:latest",
        Some((arch, variant)),
    );
}

/// `-q` prints only the reference; `--max-concurrent-downloads 1` still pulls every layer.
#[test]
fn quiet_and_max_concurrent_downloads() {
    let env = Env::new();
    let img = whiteout_image().build();
    env.push.image("test/q", Some("v1"), &img);
    let reference = env.r("test/q:v1");
    let out = env
        .strata
        .run(&["-q", "--max-concurrent-downloads", "1", "pull", &reference]);
    assert_pulled(&out, &reference);
    assert!(
        !out.stderr.contains("Pull complete"),
        "-q prints no progress:\n{}",
        out.describe()
    );
    assert_eq!(env.strata.layer_dirs().len(), 3);
    assert_union_matches_umoci(&env, &reference, "test/q:v1", None);
}

/// A layer that leaves out its parent directories: strata creates them, and gives those a
/// lower layer has that layer's metadata (what overlay copy-up gives, what umoci keeps), so
/// the mounted view of `usr` is the base layer's, not a fresh root-owned 0755 directory.
/// One download at a time: a layer that waits for its lower layers must give up its permit.
#[test]
fn implicit_parent_dirs_take_the_lower_layers_metadata() {
    let env = Env::new();
    let base = vec![
        Entry::dir("usr")
            .mode(0o700)
            .owner(5, 6)
            .mtime(1_000_000_000)
            .xattr("user.x", "base"),
        Entry::file("usr/base-file", "base\n"),
    ];
    // No usr/, usr/local/ or usr/local/bin/ entries.
    let middle = vec![Entry::file("usr/local/bin/tool", "#!/bin/sh\n").mode(0o755)];
    // No usr/, usr/share/ or usr/share/doc/ entries.
    let top = vec![Entry::file("usr/share/doc/y", "y\n")];
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&base, Compression::Gzip)
        .entries(&middle, Compression::Gzip)
        .entries(&top, Compression::Gzip)
        .build();
    env.push.image("test/implicit", Some("v1"), &img);
    let reference = env.r("test/implicit:v1");
    let out = env
        .strata
        .run(&["--max-concurrent-downloads", "1", "pull", &reference]);
    assert_pulled(&out, &reference);

    let graph = Graph::of(&env.strata.inspect(&reference));
    check_layout(&env.strata, &graph, 3);
    // The middle layer's own usr (and the top layer's) has the base layer's metadata.
    for (label, diff) in [("middle", &graph.lower[0]), ("top", &graph.upper)] {
        let usr = diff.join("usr");
        let md = fs::symlink_metadata(&usr).unwrap_or_else(|e| panic!("{label} usr: {e}"));
        assert!(md.is_dir(), "{label} usr");
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
            (0o700, 5, 6, 1_000_000_000),
            "{label} layer's usr"
        );
        assert_eq!(
            tree::get_xattr(&usr, "user.x").as_deref(),
            Some(&b"base"[..]),
            "{label} layer's usr"
        );
    }
    // No lower layer has usr/local: defaults.
    let local = graph.lower[0].join("usr/local");
    assert_eq!(mode_of(&local), 0o755);
    assert_eq!(fs::symlink_metadata(&local).expect("usr/local").uid(), 0);

    // The union equals umoci's flattening, usr included (mode, owner, xattrs), except for
    // mtimes that are the time of unpacking in umoci's tree: those of the directories no
    // layer lists, and that of usr, which umoci does not restore after creating usr/local
    // in it for usr/local/bin/tool (it restores the existing parent of an entry only).
    // strata's usr has the base layer's mtime (checked above and below): deterministic, and
    // what overlay copy-up of the base's usr gives.
    let union = Union::of(&graph);
    let reference_fs = umoci::unpack(&env.reg, "test/implicit:v1", None);
    let why = "implicit directory no lower layer has: both tools give it the current time";
    let mut opts = union_opts(3).ignore_mtime(
        "usr",
        "umoci gives it the time of unpacking (a missing grandparent was created in it)",
    );
    for dir in ["usr/local", "usr/local/bin", "usr/share", "usr/share/doc"] {
        opts = opts.ignore_mtime(dir, why);
    }
    tree::assert_same(
        "strata union",
        union.path(),
        "umoci",
        &reference_fs.rootfs(),
        &opts,
    );
    let merged = fs::symlink_metadata(union.path().join("usr")).expect("merged usr");
    assert_eq!(
        (merged.mode() & 0o7777, merged.uid(), merged.mtime()),
        (0o700, 5, 1_000_000_000)
    );
}

//! Tests of the test support itself (registry, image builder, umoci reference, tree
//! comparison), so a failure in `pull.rs` points at strata and not at the harness.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;
use std::process::Command;

use crate::support::image::{self, Compression, Entry, Flavor, ImageBuilder, Index, Pusher};
use crate::support::registry::Registry;
use crate::support::tree::{self, Options};
use crate::support::{self, run_ok, umoci};

fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("d/file"), b"hello").unwrap();
    fs::write(root.join("d/sub/other"), b"other").unwrap();
    fs::hard_link(root.join("d/file"), root.join("d/hard")).unwrap();
    symlink("../d/file", root.join("d/link")).unwrap();
    Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .expect("mkfifo");
    // Fixed mtimes everywhere so the copies compare equal.
    run_ok(Command::new("find").arg(root).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "@1700000000",
        "{}",
        "+",
    ]));
}

fn two_copies() -> (tempfile::TempDir, tempfile::TempDir) {
    let a = support::tempdir("tree-a");
    let b = support::tempdir("tree-b");
    sample_tree(a.path());
    sample_tree(b.path());
    (a, b)
}

fn diffs(a: &Path, b: &Path) -> Vec<String> {
    tree::diff("a", a, "b", b, &Options::default())
}

#[test]
fn tree_identical_trees_have_no_differences() {
    support::require_root();
    let (a, b) = two_copies();
    let scan = tree::scan(a.path());
    // Non-vacuous: the scan saw the whole tree, including the hard-link group.
    assert_eq!(scan.len(), 8, "{scan:#?}");
    assert_eq!(
        scan[Path::new("d/file")].links,
        vec![Path::new("d/hard").to_path_buf()]
    );
    assert_eq!(diffs(a.path(), b.path()), Vec::<String>::new());
}

#[test]
fn tree_reports_each_kind_of_difference() {
    support::require_root();
    type Mutation = (&'static str, fn(&Path), &'static str);
    let cases: Vec<Mutation> = vec![
        (
            "missing file",
            |b| fs::remove_file(b.join("d/sub/other")).unwrap(),
            "d/sub/other: only in a",
        ),
        (
            "extra file",
            |b| fs::write(b.join("new"), b"").unwrap(),
            "new: only in b",
        ),
        (
            "mode",
            |b| fs::set_permissions(b.join("d/file"), fs::Permissions::from_mode(0o4755)).unwrap(),
            "d/file: mode 0644 (a) != 4755 (b)",
        ),
        (
            "owner",
            |b| std::os::unix::fs::lchown(b.join("d/sub"), Some(1000), Some(1001)).unwrap(),
            "d/sub: owner 0:0 (a) != 1000:1001 (b)",
        ),
        (
            "content, same size",
            |b| {
                fs::write(b.join("d/sub/other"), b"OTHER").unwrap();
                run_ok(
                    Command::new("touch")
                        .args(["-d", "@1700000000"])
                        .arg(b.join("d/sub/other")),
                );
            },
            "d/sub/other: content differs",
        ),
        (
            "symlink target",
            |b| {
                fs::remove_file(b.join("d/link")).unwrap();
                symlink("../d/hard", b.join("d/link")).unwrap();
                run_ok(
                    Command::new("touch")
                        .args(["-h", "-d", "@1700000000"])
                        .arg(b.join("d/link")),
                );
                run_ok(
                    Command::new("touch")
                        .args(["-d", "@1700000000"])
                        .arg(b.join("d")),
                );
            },
            "d/link: symlink target",
        ),
        (
            "type",
            |b| {
                fs::remove_file(b.join("fifo")).unwrap();
                fs::write(b.join("fifo"), b"").unwrap();
                run_ok(
                    Command::new("touch")
                        .args(["-d", "@1700000000"])
                        .arg(b.join("fifo"))
                        .arg(b),
                );
            },
            "fifo: type fifo (a) != file (b)",
        ),
        (
            "xattr",
            |b| {
                run_ok(
                    Command::new("setfattr")
                        .args(["-n", "user.k", "-v", "v"])
                        .arg(b.join("d/file")),
                )
                .truncate(0)
            },
            "d/file: xattrs [none] (a) != [user.k=\"v\"] (b)",
        ),
        (
            "mtime",
            |b| {
                run_ok(
                    Command::new("touch")
                        .args(["-d", "@1600000000"])
                        .arg(b.join("d/sub")),
                )
                .truncate(0)
            },
            "d/sub: mtime 1700000000 (a) != 1600000000 (b)",
        ),
        (
            "hard link broken",
            |b| {
                fs::remove_file(b.join("d/hard")).unwrap();
                fs::write(b.join("d/hard"), b"hello").unwrap();
                run_ok(
                    Command::new("touch")
                        .args(["-d", "@1700000000"])
                        .arg(b.join("d/hard"))
                        .arg(b.join("d")),
                );
            },
            "d/file: hard links [\"d/hard\"] (a) != [] (b)",
        ),
    ];
    for (what, mutate, expected) in cases {
        let (a, b) = two_copies();
        mutate(b.path());
        let d = diffs(a.path(), b.path());
        assert!(
            d.iter().any(|l| l.contains(expected)),
            "{what}: expected a difference containing {expected:?}, got {d:#?}"
        );
    }
    // trusted.overlay.* is ignored by default, other trusted.* is not.
    let (a, b) = two_copies();
    run_ok(
        Command::new("setfattr")
            .args(["-n", "trusted.overlay.opaque", "-v", "y"])
            .arg(b.path().join("d")),
    );
    assert_eq!(diffs(a.path(), b.path()), Vec::<String>::new());
    run_ok(
        Command::new("setfattr")
            .args(["-n", "trusted.other", "-v", "y"])
            .arg(b.path().join("d")),
    );
    assert_eq!(diffs(a.path(), b.path()).len(), 1);
}

#[test]
fn registry_serves_pushed_images_and_corrupted_blobs() {
    support::preflight();
    let reg = Registry::start();
    let push = Pusher::new(&reg);
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[Entry::dir("etc"), Entry::file("etc/hello", "hi\n")],
            Compression::Gzip,
        )
        .build();
    push.image("test/one", Some("v1"), &img);
    let (status, body) = push.get_manifest("test/one", "v1");
    assert_eq!(status, 200);
    assert_eq!(
        body, img.manifest,
        "the registry serves the manifest bytes as pushed"
    );
    let (status, _) = push.get_manifest("test/one", "nope");
    assert_eq!(status, 404);

    let layer = &img.layers[0];
    assert_eq!(push.get_blob("test/one", &layer.digest), layer.blob);
    let served = reg.corrupt_blob(&layer.digest);
    assert_ne!(served, layer.digest);
    let bytes = push.get_blob("test/one", &layer.digest);
    assert_eq!(bytes.len(), layer.blob.len());
    assert_eq!(support::sha256_digest(&bytes), served);

    // The gzip header-mtime trick keeps the diff_id and the length.
    let other = image::gzip_with_other_mtime(&layer.blob);
    let layer2 = image::Layer::from_entries(&[Entry::dir("etc"), Entry::file("etc/hello", "hi\n")]);
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&other[..]), &mut tar).unwrap();
    assert_eq!(support::sha256_digest(&tar), layer2.diff_id());
    assert_ne!(support::sha256_digest(&other), layer.digest);
}

/// The image builder's layers as umoci sees them: whiteouts applied, opaque dirs emptied,
/// PAX xattrs and long names kept; and the umoci unpack of the Alpine tarball equals GNU tar's
/// extraction of it.
#[test]
fn umoci_reference_unpack_matches_expectations() {
    support::preflight();
    let reg = Registry::start();
    let push = Pusher::new(&reg);
    let long = format!("long/{}", "n".repeat(150));
    let img = ImageBuilder::new(Flavor::Docker)
        .entries(
            &[
                Entry::dir("a"),
                Entry::file("a/keep", "keep"),
                Entry::file("a/gone", "gone"),
                Entry::dir("o"),
                Entry::file("o/old", "old"),
                Entry::dir("long"),
                Entry::file(&long, "long name").xattr("user.test", "value"),
            ],
            Compression::Gzip,
        )
        .entries(
            &[
                Entry::dir("a"),
                Entry::whiteout("a/gone"),
                Entry::dir("o"),
                Entry::opaque("o"),
                Entry::file("o/new", "new"),
            ],
            Compression::Gzip,
        )
        .build();
    push.image("test/wh", Some("latest"), &img);
    let u = umoci::unpack(&reg, "test/wh:latest", None);
    let r = u.rootfs();
    assert_eq!(fs::read_to_string(r.join("a/keep")).unwrap(), "keep");
    assert!(!r.join("a/gone").exists());
    assert!(!r.join("a/.wh.gone").exists());
    assert!(!r.join("o/old").exists());
    assert_eq!(fs::read_to_string(r.join("o/new")).unwrap(), "new");
    assert_eq!(
        tree::get_xattr(&r.join(&long), "user.test").as_deref(),
        Some(&b"value"[..])
    );

    // Alpine: umoci vs GNU tar.
    let alpine = Index::new(
        Flavor::Oci,
        vec![
            image::alpine(Flavor::Oci, "x86_64"),
            image::alpine(Flavor::Oci, "aarch64"),
        ],
    );
    push.index("library/alpine", "latest", &alpine);
    let u = umoci::unpack(&reg, "library/alpine:latest", Some(("arm64", Some("v8"))));
    assert_eq!(
        fs::read_to_string(u.rootfs().join("etc/apk/arch"))
            .unwrap()
            .trim(),
        "aarch64"
    );
    let x = support::tempdir("gnutar");
    run_ok(
        Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf"])
            .arg(support::alpine_tarball("aarch64"))
            .arg("-C")
            .arg(x.path()),
    );
    tree::assert_same(
        "umoci",
        &u.rootfs(),
        "gnu tar",
        x.path(),
        &Options::default(),
    );
}

//! `strata info` and the preflight of the store's filesystem: an overlayfs root or one without
//! d_type (ext4 made without `filetype`) is refused when opened, naming the filesystem and
//! what to do.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::image::{Compression, Entry, Flavor, ImageBuilder};
use crate::support::{self, Env};

#[test]
fn info_shows_the_storage_fields_as_text_and_json() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("f", "info\n")], Compression::Gzip)
        .build();
    env.push.image("test/info", Some("v1"), &img);
    env.strata.run(&["pull", &env.r("test/info:v1")]).ok();

    let text = env.strata.run(&["info"]).ok().stdout;
    for field in [
        "Storage Driver: overlay2\n",
        " Backing Filesystem: ",
        " Supports d_type: true\n",
        " Native Overlay Diff: ",
        " userxattr: false\n",
        " New Mount API: ",
        " Layers per Mount: ",
        &format!("Root Dir: {}\n", env.strata.root().display()),
        "Store Kind: root\n",
        "Images: 1\n",
        "Containers: 0\n",
        "Layers: 1\n",
        "Config File: ",
    ] {
        assert!(text.contains(field), "no {field:?} in:\n{text}");
    }

    let out = env.strata.run(&["info", "--format", "json"]).ok();
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.describe());
    let v: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    assert_eq!(v["Driver"], "overlay2");
    assert_eq!(v["Images"], 1);
    assert_eq!(v["Containers"], 0);
    assert_eq!(v["Layers"], 1);
    assert_eq!(v["StoreKind"], "root");
    assert_eq!(
        v["RootDir"],
        env.strata.root().to_str().expect("utf-8 root")
    );
    let status = v["DriverStatus"].as_array().expect("DriverStatus pairs");
    assert!(
        status.contains(&serde_json::json!(["Supports d_type", "true"])),
        "{status:?}"
    );
}

/// Mounts an overlay at `merged` (from dirs under `base`); unmounted on drop.
struct OverlayMount<'a>(&'a Path);

impl<'a> OverlayMount<'a> {
    fn new(base: &Path, merged: &'a Path) -> OverlayMount<'a> {
        for d in ["lower", "upper", "work"] {
            std::fs::create_dir_all(base.join(d)).expect("overlay dirs");
        }
        std::fs::create_dir_all(merged).expect("merged dir");
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            base.join("lower").display(),
            base.join("upper").display(),
            base.join("work").display()
        );
        support::run_ok(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o", &opts])
                .arg(merged),
        );
        OverlayMount(merged)
    }
}

impl Drop for OverlayMount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

/// The preflight's error for a root on `filesystem`, with what to do.
fn assert_refused(out: &crate::support::strata::Output, filesystem: &str) {
    out.assert_error(&[
        &format!("is on {filesystem}, which overlay2 cannot use"),
        "--root",
        "strata export",
    ]);
}

#[test]
fn a_store_on_overlayfs_is_refused_naming_it() {
    support::require_root();
    let dir = support::tempdir("overlay-root");
    let merged = dir.path().join("merged");
    let _mount = OverlayMount::new(dir.path(), &merged);
    let root = merged.join("store");
    // An existing empty directory: read-only commands treat it as an empty store (a missing
    // root is refused before any preflight, as no store).
    std::fs::create_dir(&root).expect("root dir");
    for args in [&["images"][..], &["info"], &["pull", "127.0.0.1:1/x:v1"]] {
        let out = strata_at(&root, args);
        assert_refused(&out, "overlayfs");
        assert!(
            out.stderr.contains("cannot be the upper layer"),
            "{}",
            out.describe()
        );
    }
}

/// Mounts `image` (a filesystem image) at `dir` through a loop device; unmounted on drop.
struct LoopMount<'a>(&'a Path);

impl<'a> LoopMount<'a> {
    fn new(image: &Path, dir: &'a Path) -> LoopMount<'a> {
        std::fs::create_dir_all(dir).expect("mount point");
        support::run_ok(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(image)
                .arg(dir),
        );
        LoopMount(dir)
    }
}

impl Drop for LoopMount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

/// ext4 made without the `filetype` feature keeps no file type in its directory entries
/// (readdir answers DT_UNKNOWN), as xfs with `ftype=0` does (which this kernel no longer
/// mounts): the preflight must refuse it before anything is unpacked there.
#[test]
fn a_store_without_d_type_is_refused_naming_it() {
    support::require_root();
    support::require_tool("mkfs.ext4");
    let dir = support::tempdir("no-d-type");
    let image = dir.path().join("fs.img");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(64 << 20))
        .expect("filesystem image");
    support::run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-O", "^filetype"])
            .arg(&image),
    );
    let mnt = dir.path().join("mnt");
    let _mount = LoopMount::new(&image, &mnt);
    let root = mnt.join("store");
    // An entry to read the type of (the store's own directories, once it is made).
    std::fs::create_dir_all(root.join("overlay2")).expect("root dir");
    for args in [&["images"][..], &["info"], &["pull", "127.0.0.1:1/x:v1"]] {
        let out = strata_at(&root, args);
        // Docker's name for the ext2/3/4 magic.
        assert_refused(&out, "extfs");
        assert!(out.stderr.contains("d_type"), "{}", out.describe());
    }
    // The same filesystem with file types is used as it is.
    let with_types = dir.path().join("fs2.img");
    std::fs::File::create(&with_types)
        .and_then(|f| f.set_len(64 << 20))
        .expect("filesystem image");
    support::run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&with_types),
    );
    let mnt2 = dir.path().join("mnt2");
    let _mount2 = LoopMount::new(&with_types, &mnt2);
    std::fs::create_dir_all(mnt2.join("store/overlay2")).expect("root dir");
    let out = strata_at(&mnt2.join("store"), &["info"]).ok();
    assert!(
        out.stdout.contains("Supports d_type: true"),
        "{}",
        out.describe()
    );
}

/// `strata --root ROOT ARGS...`.
fn strata_at(root: &Path, args: &[&str]) -> crate::support::strata::Output {
    let out = Command::new(crate::support::strata::bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("STRATA_ROOT")
        .output()
        .expect("run strata");
    crate::support::strata::Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

//! `strata export IMAGE DIR`: the flattened rootfs, compared with `umoci unpack` and with the
//! mounted merged view of the same image; unprivileged export; failures leave nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::image::{self, Compression, Entry, Flavor, Image, ImageBuilder, Pusher};
use crate::support::registry::Registry;
use crate::support::strata::{self, Output, Strata};
use crate::support::tree::{self, Node, Options};
use crate::support::{self, umoci};

/// The unprivileged user the unprivileged tests run strata as.
const NOBODY: u32 = 65534;

/// One test's world: its own registry, a pusher, a strata root (which `export` must leave
/// alone) and a scratch directory for targets. Dropping it removes every container.
struct Env {
    reg: Registry,
    push: Pusher,
    strata: Strata,
    scratch: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        support::preflight();
        let reg = Registry::start();
        let push = Pusher::new(&reg);
        Env {
            reg,
            push,
            strata: Strata::new(),
            scratch: support::tempdir("export"),
        }
    }

    /// `127.0.0.1:PORT/<repo_ref>`
    fn r(&self, repo_ref: &str) -> String {
        format!("{}/{repo_ref}", self.reg.addr())
    }

    /// A path in the scratch directory.
    fn path(&self, rel: &str) -> PathBuf {
        self.scratch.path().join(rel)
    }

    /// `strata export [-q] REF DIR` (as root, with the test's `--root`).
    fn export(&self, reference: &str, dir: &Path, quiet: bool) -> Output {
        let dir = dir.to_str().expect("UTF-8 path");
        if quiet {
            self.strata.run(&["-q", "export", reference, dir])
        } else {
            self.strata.run(&["export", reference, dir])
        }
    }

    /// Push the Alpine test image as `library/alpine:3.20.3`.
    fn push_alpine(&self) -> String {
        let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
        self.push.image("library/alpine", Some("3.20.3"), &img);
        "library/alpine:3.20.3".to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.strata.remove_all_containers();
    }
}

/// The export succeeded, printed exactly the directory on stdout, used no store and left no
/// staging directory next to the target.
fn assert_exported(env: &Env, out: &Output, dir: &Path) {
    assert!(out.status.success(), "export failed:\n{}", out.describe());
    assert_eq!(
        out.stdout,
        format!("{}\n", dir.display()),
        "stdout must be exactly the directory:\n{}",
        out.describe()
    );
    assert!(dir.is_dir(), "{} was not created", dir.display());
    assert_eq!(
        leftovers(dir.parent().expect("parent")),
        Vec::<String>::new(),
        "staging directories left next to the target"
    );
    assert_eq!(
        names(env.strata.root()),
        Vec::<String>::new(),
        "export must not create or use the store"
    );
}

/// Export failed with exit code 1 and an `error: ` message containing every needle; it did
/// not panic.
fn assert_failed(out: &Output, needles: &[&str]) {
    assert_eq!(
        out.code(),
        Some(1),
        "expected exit code 1:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("error: ") && !out.stderr.contains("panicked"),
        "expected an error message:\n{}",
        out.describe()
    );
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "stderr should contain {needle:?}:\n{}",
            out.describe()
        );
    }
}

/// Names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Staging directories (`.NAME.strata-export-PID`) in a directory.
fn leftovers(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.contains(".strata-export-"))
        .collect()
}

/// Export of the Alpine test image is exactly `umoci unpack`'s rootfs: types, modes, owners,
/// contents, symlink targets, xattrs, mtimes (the root's included) and hard links.
#[test]
fn export_alpine_equals_umoci() {
    let env = Env::new();
    let repo_ref = env.push_alpine();
    let dir = env.path("rootfs");
    let out = env.export(&env.r(&repo_ref), &dir, false);
    assert_exported(&env, &out, &dir);
    assert!(
        out.stderr.contains("Pull complete") && out.stderr.contains("Digest: sha256:"),
        "progress on stderr like pull:\n{}",
        out.describe()
    );
    let reference = umoci::unpack(&env.reg, &repo_ref, None);
    assert!(
        tree::scan(&reference.rootfs()).len() > 100,
        "umoci unpacked too little"
    );
    tree::assert_same(
        "export",
        &dir,
        "umoci",
        &reference.rootfs(),
        &Options::default(),
    );
    assert_eq!(
        fs::read_to_string(dir.join("etc/alpine-release")).expect("alpine-release"),
        "3.20.3\n"
    );
}

/// Three layers (gzip, plain tar, gzip) that delete files and trees, clear directories with
/// opaque markers, swap types and change metadata, with their parent directories listed as
/// Docker writes them.
fn layered_image() -> Image {
    let t = |n: u64| 1_650_000_000 + n;
    let base = vec![
        Entry::dir(".").mtime(t(1)),
        Entry::dir("etc").mtime(t(2)),
        Entry::file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        Entry::file("etc/gone", "deleted by layer 1\n"),
        Entry::dir("etc/conf.d").mtime(t(3)),
        Entry::file("etc/conf.d/a", "a\n"),
        Entry::file("etc/conf.d/b", "b\n"),
        Entry::dir("etc/conf.d/sub"),
        Entry::file("etc/conf.d/sub/deep", "deep\n"),
        Entry::dir("opt").mtime(t(4)),
        Entry::dir("opt/app")
            .mode(0o750)
            .owner(1000, 1000)
            .xattr("user.app", "1"),
        Entry::file("opt/app/bin", "#!/bin/sh\n").mode(0o755),
        Entry::dir("opt/app/lib"),
        Entry::file("opt/app/lib/x.so", vec![7u8; 10_000]),
        Entry::dir("srv").mtime(t(5)),
        Entry::file("srv/file-to-dir", "file\n"),
        Entry::dir("srv/dir-to-file"),
        Entry::file("srv/dir-to-file/inner", "inner\n"),
        Entry::symlink("srv/link-to-dir", "/opt"),
        Entry::dir("usr").mtime(t(6)),
        Entry::dir("usr/bin").mtime(t(7)),
        Entry::file("usr/bin/tool", "tool\n").mode(0o755),
        Entry::hardlink("usr/bin/tool2", "usr/bin/tool"),
        Entry::file("usr/bin/su", "su\n").mode(0o4755),
        Entry::file("usr/bin/mine", "mine\n")
            .owner(1000, 1001)
            .xattr("user.note", "hello"),
        Entry::dir("tmp").mode(0o1777).mtime(t(8)),
        Entry::dir("var").mtime(t(9)),
        Entry::dir("var/cache").mtime(t(10)),
        Entry::file("var/cache/big", vec![1u8; 100_000]),
        Entry::fifo("var/fifo"),
    ];
    let upper = vec![
        Entry::dir("etc").mtime(t(20)),
        Entry::whiteout("etc/gone"),
        Entry::dir("etc/conf.d").mode(0o700).mtime(t(21)),
        Entry::opaque("etc/conf.d"),
        Entry::file("etc/conf.d/c", "c\n"),
        Entry::dir("etc/conf.d/sub").mtime(t(22)),
        Entry::file("etc/conf.d/sub/new", "new\n"),
        Entry::dir("opt").mtime(t(23)),
        Entry::whiteout("opt/app"),
        Entry::dir("srv").mtime(t(24)),
        Entry::dir("srv/file-to-dir").mtime(t(25)),
        Entry::file("srv/file-to-dir/in", "in\n"),
        Entry::file("srv/dir-to-file", "now a file\n"),
        Entry::dir("srv/link-to-dir").mtime(t(26)),
        Entry::file("srv/link-to-dir/own", "own\n"),
        Entry::dir("usr").mtime(t(27)),
        Entry::dir("usr/bin").mtime(t(28)),
        Entry::file("usr/bin/tool", "tool v2\n").mode(0o755),
        Entry::dir("tmp").mode(0o1777).mtime(t(29)),
        Entry::file("tmp/scratch", "scratch\n"),
    ];
    let top = vec![
        Entry::dir("etc").mtime(t(30)),
        Entry::dir("etc/conf.d").mode(0o755).mtime(t(31)),
        Entry::whiteout("etc/conf.d/c"),
        Entry::dir("opt").mtime(t(32)),
        Entry::file("opt/app", "app is a file now\n").owner(2, 3),
        Entry::dir("var").mtime(t(33)),
        Entry::whiteout("var/cache"),
        Entry::dir("tmp").mode(0o1777).mtime(t(34)),
        Entry::opaque("tmp"),
        // In the root, which no upper layer lists: it keeps the base layer's times.
        Entry::file("added-at-top", "top\n"),
    ];
    ImageBuilder::new(Flavor::Docker)
        .entries(&base, Compression::Gzip)
        .entries(&upper, Compression::None)
        .entries(&top, Compression::Gzip)
        .build()
}

/// The layered image exported equals umoci's unpack, and equals the merged view that
/// `pull-and-mount` shows of the same image (with the container's init layer on top).
#[test]
fn export_of_layers_equals_umoci_and_the_mounted_view() {
    let env = Env::new();
    let img = layered_image();
    env.push.image("test/layers", Some("v1"), &img);
    let reference = env.r("test/layers:v1");
    let dir = env.path("rootfs");
    let out = env.export(&reference, &dir, true);
    assert_exported(&env, &out, &dir);
    assert_eq!(out.stderr, "", "-q prints nothing on stderr");

    // What the layers say, checked directly (the comparisons below check everything else).
    let read =
        |rel: &str| fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(names(&dir.join("etc/conf.d")), ["sub"]);
    assert_eq!(names(&dir.join("etc/conf.d/sub")), ["new"]);
    assert!(!dir.join("etc/gone").exists());
    assert_eq!(read("opt/app"), "app is a file now\n");
    assert_eq!(names(&dir.join("opt")), ["app"]);
    assert_eq!(read("srv/dir-to-file"), "now a file\n");
    assert_eq!(read("srv/file-to-dir/in"), "in\n");
    assert!(dir.join("srv/link-to-dir").is_dir());
    assert_eq!(names(&dir.join("var")), ["fifo"]);
    assert_eq!(names(&dir.join("tmp")), Vec::<String>::new());
    assert_eq!(read("usr/bin/tool"), "tool v2\n");
    assert_eq!(
        read("usr/bin/tool2"),
        "tool\n",
        "the old inode stays with tool2"
    );
    let mode = fs::metadata(dir.join("etc/conf.d"))
        .expect("conf.d")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);

    let unpacked = umoci::unpack(&env.reg, "test/layers:v1", None);
    tree::assert_same(
        "export",
        &dir,
        "umoci",
        &unpacked.rootfs(),
        &Options::default(),
    );

    // The merged view of a container of the image: the export with the init layer's paths
    // on top (dev, dev/console, dev/pts, dev/shm, etc, etc/hostname, etc/hosts,
    // etc/resolv.conf, etc/mtab); the merged root is the container's new upper dir.
    let out = env
        .strata
        .run(&["pull-and-mount", "--json", &reference])
        .ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "pull-and-mount --json is not JSON ({e}):\n{}",
            out.describe()
        )
    });
    let merged = PathBuf::from(v["MergedDir"].as_str().expect("merged"));
    let init = PathBuf::from(
        v["LowerDir"][0]
            .as_str()
            .unwrap_or_else(|| panic!("lower missing in {v:#}")),
    );
    let id = v["Id"].as_str().expect("id").to_string();
    let mut expected = tree::scan(&dir);
    let init_paths: Vec<PathBuf> = tree::scan(&init)
        .into_iter()
        .filter(|(p, _)| p != Path::new("."))
        .map(|(p, n)| {
            expected.insert(p.clone(), n);
            p
        })
        .collect();
    assert!(
        init_paths.contains(&PathBuf::from("etc/hostname")),
        "not the init layer: {init_paths:?}"
    );
    let opts = Options::default().ignore_mtime(".", "the merged root is the new upper dir");
    let diffs = tree::diff_scans(
        "merged",
        &tree::scan(&merged),
        "export + init",
        &expected,
        &opts,
    );
    tree::assert_no_diffs("merged", &merged, "export + init", &dir, &diffs);
    env.strata.run(&["rm", "-f", &id]).ok();
    assert!(!merged.exists() || names(&merged).is_empty());
}

/// Export into an existing empty directory replaces it; a non-empty one, a file or a
/// symlink are refused before anything is fetched, and left as they were.
#[test]
fn export_target_must_be_new_or_empty() {
    let env = Env::new();
    let img = small_image();
    env.push.image("test/small", Some("v1"), &img);
    let reference = env.r("test/small:v1");

    // Staging directories of a killed export (no such process) go; a running one's stay.
    let stale = env.path(".empty.strata-export-99999999-0");
    let running = env.path(&format!(".empty.strata-export-{}-0", std::process::id()));
    for d in [&stale, &running] {
        fs::create_dir_all(d.join("sub")).expect("mkdir");
        fs::write(d.join("sub/file"), "partial\n").expect("write");
    }
    let empty = env.path("empty");
    fs::create_dir(&empty).expect("mkdir");
    let out = env.export(&reference, &empty, true);
    assert!(
        !stale.exists(),
        "the stale staging directory was not removed"
    );
    assert!(
        running.join("sub/file").exists(),
        "a live export's staging was removed"
    );
    fs::remove_dir_all(&running).expect("rm");
    assert_exported(&env, &out, &empty);
    assert_eq!(names(&empty), ["hello"]);

    let full = env.path("full");
    fs::create_dir(&full).expect("mkdir");
    fs::write(full.join("precious"), "keep me\n").expect("write");
    let out = env.export(&reference, &full, true);
    assert_failed(&out, &[&full.display().to_string(), "not empty"]);
    assert_eq!(names(&full), ["precious"]);
    assert_eq!(
        fs::read_to_string(full.join("precious")).expect("read"),
        "keep me\n"
    );

    let file = env.path("file");
    fs::write(&file, "a file\n").expect("write");
    assert_failed(&env.export(&reference, &file, true), &["not a directory"]);
    assert_eq!(fs::read_to_string(&file).expect("read"), "a file\n");

    let link = env.path("link");
    std::os::unix::fs::symlink(&empty, &link).expect("symlink");
    assert_failed(&env.export(&reference, &link, true), &["symlink"]);

    let orphan = env.path("no/such/parent");
    assert_failed(&env.export(&reference, &orphan, true), &["no/such"]);
    assert!(!env.path("no").exists());

    assert_eq!(leftovers(env.scratch.path()), Vec::<String>::new());
    assert_eq!(names(env.strata.root()), Vec::<String>::new());
}

/// A two-layer image with a marker file in each layer.
fn small_image() -> Image {
    ImageBuilder::new(Flavor::Oci)
        .entries(
            &[
                Entry::file("hello", "hello\n"),
                Entry::file("marker-0", "0\n"),
            ],
            Compression::Gzip,
        )
        .entries(&[Entry::whiteout("marker-0")], Compression::Gzip)
        .build()
}

/// A corrupted blob (the second layer, after the first was applied) fails the export, names
/// the layer, and leaves neither the target nor a staging directory.
#[test]
fn corrupted_blob_leaves_nothing() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[
                Entry::dir("base"),
                Entry::file("base/marker", "first layer\n"),
            ],
            Compression::Gzip,
        )
        .entries(
            &[
                Entry::dir("top"),
                Entry::file("top/file", vec![9u8; 200_000]),
            ],
            Compression::Gzip,
        )
        .build();
    env.push.image("test/corrupt", Some("v1"), &img);
    let bad = &img.layers[1];
    env.reg.corrupt_blob(&bad.digest);
    let dir = env.path("rootfs");
    let out = env.export(&env.r("test/corrupt:v1"), &dir, false);
    assert_failed(&out, &[bad.short_id(), "test/corrupt"]);
    assert!(!dir.exists(), "the target must not exist");
    assert_eq!(names(env.scratch.path()), Vec::<String>::new());

    // A wrong diff_id is caught too (the blob itself is intact).
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("f", "f\n")], Compression::Gzip)
        .wrong_diff_id(0)
        .build();
    env.push.image("test/diffid", Some("v1"), &img);
    let out = env.export(&env.r("test/diffid:v1"), &dir, true);
    assert_failed(&out, &["diff_id", img.layers[0].short_id()]);
    assert_eq!(names(env.scratch.path()), Vec::<String>::new());
}

/// Run `strata ARGS` as nobody (no groups) with HOME and XDG_DATA_HOME in `home`, without
/// `--root`: the per-user default store path, which export must not create.
fn run_as_nobody(home: &Path, args: &[&str]) -> Output {
    let bin = strata::bin();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(&bin)
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run setpriv");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

/// As nobody: the Alpine image exports with umoci's contents, modes, mtimes and links, every
/// file owned by nobody; no store is created. An image with a device node fails clearly and
/// leaves nothing.
#[test]
fn export_as_unprivileged_user() {
    support::require_tool("setpriv");
    let env = Env::new();
    let repo_ref = env.push_alpine();
    let home = env.path("home");
    fs::create_dir(&home).expect("mkdir home");
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).expect("chown home");
    // The scratch dir (0700, root's) must be passable.
    fs::set_permissions(env.scratch.path(), fs::Permissions::from_mode(0o755)).expect("chmod");

    let dir = home.join("rootfs");
    let target = dir.to_str().expect("UTF-8");
    let out = run_as_nobody(&home, &["export", &env.r(&repo_ref), target]);
    assert!(
        out.status.success(),
        "unprivileged export failed:\n{}",
        out.describe()
    );
    assert_eq!(out.stdout, format!("{target}\n"), "{}", out.describe());
    assert!(
        !home.join("data").exists() && !home.join(".local").exists(),
        "export must not create a store: {:?}",
        names(&home)
    );
    assert_eq!(leftovers(&home), Vec::<String>::new());

    let reference = umoci::unpack(&env.reg, &repo_ref, None);
    let mut expected: BTreeMap<PathBuf, Node> = tree::scan(&reference.rootfs());
    for node in expected.values_mut() {
        (node.uid, node.gid) = (NOBODY, NOBODY);
    }
    assert!(expected.len() > 100, "umoci unpacked too little");
    let diffs = tree::diff_scans(
        "unprivileged export",
        &tree::scan(&dir),
        "umoci (owners: nobody)",
        &expected,
        &Options::default(),
    );
    tree::assert_no_diffs(
        "unprivileged export",
        &dir,
        "umoci (owners: nobody)",
        &reference.rootfs(),
        &diffs,
    );

    // Device nodes need root: a clear error naming the member; nothing left.
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[
                Entry::dir("dev"),
                Entry::file("dev/README", "devices\n"),
                Entry::char_dev("dev/null", 1, 3),
            ],
            Compression::Gzip,
        )
        .build();
    env.push.image("test/devices", Some("v1"), &img);
    let devdir = home.join("devices");
    let out = run_as_nobody(
        &home,
        &[
            "export",
            &env.r("test/devices:v1"),
            devdir.to_str().expect("UTF-8"),
        ],
    );
    assert_failed(&out, &["dev/null", "needs root"]);
    assert!(!devdir.exists());
    assert_eq!(leftovers(&home), Vec::<String>::new());

    // As root the same image exports with its device.
    let rootdir = env.path("devices-as-root");
    assert_exported(
        &env,
        &env.export(&env.r("test/devices:v1"), &rootdir, true),
        &rootdir,
    );
    let md = fs::symlink_metadata(rootdir.join("dev/null")).expect("dev/null");
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &md.file_type()
    ));
}

/// An image in the store is exported from its layer directories without network (`--pull
/// missing`, the default, and `never`), and the result equals the registry's export;
/// `--pull never` without the image fails; `--pull always` ignores the store.
#[test]
fn export_from_the_store_equals_export_from_the_registry() {
    let mut env = Env::new();
    let img = layered_image();
    env.push.image("test/layers", Some("v1"), &img);
    let reference = env.r("test/layers:v1");
    let from_registry = env.path("registry");
    assert_exported(
        &env,
        &env.export(&reference, &from_registry, true),
        &from_registry,
    );

    let missing = env.path("missing");
    let out = env.strata.run(&[
        "export",
        "--pull",
        "never",
        &reference,
        missing.to_str().expect("UTF-8"),
    ]);
    assert_failed(&out, &["not in the store", "never"]);
    assert!(!missing.exists());

    env.strata.pull(&reference).ok();
    let always = env.path("always");
    let out = env.strata.run(&[
        "export",
        "--pull",
        "always",
        &reference,
        always.to_str().expect("UTF-8"),
    ]);
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("Pull complete"),
        "from the registry:\n{}",
        out.describe()
    );

    // No registry any more: only the store can serve the image.
    let addr = env.reg.addr();
    drop(std::mem::replace(&mut env.reg, Registry::start()));
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the registry still answers"
    );
    for (name, extra) in [("never", &["--pull", "never"][..]), ("default", &[][..])] {
        let dir = env.path(name);
        let mut args = vec!["export"];
        args.extend(extra);
        args.extend([reference.as_str(), dir.to_str().expect("UTF-8")]);
        let out = env.strata.run(&args);
        assert!(
            out.status.success(),
            "export from the store failed:\n{}",
            out.describe()
        );
        assert!(out.stderr.contains("from the store"), "{}", out.describe());
        assert_eq!(out.stdout, format!("{}\n", dir.display()));
        tree::assert_same(
            "store export",
            &dir,
            "registry export",
            &from_registry,
            &Options::default(),
        );
    }
    tree::assert_same(
        "always",
        &always,
        "registry export",
        &from_registry,
        &Options::default(),
    );
    assert_eq!(leftovers(env.scratch.path()), Vec::<String>::new());
}

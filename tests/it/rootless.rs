//! Rootless strata: the real binary run as an unprivileged user with a subordinate id range
//! (made here with useradd and /etc/subuid, /etc/subgid), in the user namespace it enters.

use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::image::{self, Compression, Entry, Flavor, ImageBuilder, Layer, Pusher};
use crate::support::registry::Registry;
use crate::support::strata::{Graph, Output};
use crate::support::unpriv::{
    MULTI_USER, NO_SUBIDS_USER, USER, User, UserDirs, ensure_user, ensure_user_with,
};
use crate::support::{self, debian, tree, umoci};

/// One rootless world: the user and its own HOME / XDG dirs, a registry. Dropping it kills
/// the pause process (ending its namespaces and their mounts).
struct Rl {
    user: User,
    dirs: UserDirs,
    reg: Registry,
    push: Pusher,
}

impl Rl {
    fn new(user: User) -> Rl {
        support::preflight();
        support::require_tool("newuidmap");
        let reg = Registry::start();
        let push = Pusher::new(&reg);
        Rl {
            user: user.clone(),
            dirs: UserDirs::new(user),
            reg,
            push,
        }
    }

    fn r(&self, repo_ref: &str) -> String {
        format!("{}/{repo_ref}", self.reg.addr())
    }

    /// The store: `$XDG_DATA_HOME/strata`.
    fn root(&self) -> PathBuf {
        self.dirs.root()
    }

    /// Runs `strata ARGS...` as the user, with only PATH, HOME and the XDG dirs set.
    fn run(&self, args: &[&str]) -> Output {
        let out = self
            .dirs
            .strata()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run setpriv");
        Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn host_uid(&self, id: u32) -> u32 {
        self.user.host_uid(id)
    }

    fn host_gid(&self, id: u32) -> u32 {
        self.user.host_gid(id)
    }

    /// The pid of the process keeping the namespaces, if one was started.
    fn pause_pid(&self) -> Option<i32> {
        self.dirs.pause_pid()
    }

    fn inspect(&self, name: &str) -> Value {
        let out = self.run(&["inspect", name]).ok();
        let v: Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
        v[0].clone()
    }

    /// Layer directories of the store (`overlay2/` minus `l`).
    fn layer_dirs(&self) -> Vec<String> {
        match fs::read_dir(self.root().join("overlay2")) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != "l")
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Compares the union mounted at `merged` in the kept namespace, seen from the host
    /// through the pause process (`/proc/PID/root`), with umoci's unpack of `repo_ref` with
    /// the ids shifted by the mapping; `skipped` are the devices umoci made and a user
    /// namespace cannot. Returns the host view of `merged`.
    fn assert_union_is_umoci_shifted(
        &self,
        merged: &Path,
        repo_ref: &str,
        skipped: &[&str],
    ) -> PathBuf {
        let pid = self.pause_pid().expect("a pause process");
        let view =
            PathBuf::from(format!("/proc/{pid}/root")).join(merged.strip_prefix("/").unwrap());
        let reference = umoci::unpack(&self.reg, repo_ref, None);
        let mut ours = tree::scan(&view);
        let mut theirs = tree::scan(&reference.rootfs());
        // Docker's init layer, which the container's union has on top of the image.
        for p in INIT_LAYER {
            ours.remove(Path::new(p));
            theirs.remove(Path::new(p));
        }
        // Its directories too when the image has none.
        for dir in ["dev", "etc"] {
            if !theirs.contains_key(Path::new(dir)) {
                ours.remove(Path::new(dir));
            }
        }
        for p in skipped {
            assert!(theirs.remove(Path::new(p)).is_some(), "umoci has {p}");
        }
        for node in theirs.values_mut() {
            node.uid = self.host_uid(node.uid);
            node.gid = self.host_gid(node.gid);
            node.xattrs.retain(|k, _| !k.starts_with("trusted."));
        }
        assert!(theirs.len() > 30, "non-vacuous: {} paths", theirs.len());
        let mut opts = tree::Options::default().ignore_mtime(".", "root of a multi-layer union");
        opts.ignore_xattr_prefixes.push("user.overlay.".into());
        for dir in ["dev", "etc"] {
            opts.ignore_mtime_of
                .push((PathBuf::from(dir), "the init layer's"));
            opts.ignore_meta_of
                .push((PathBuf::from(dir), "the init layer's"));
        }
        let diffs = tree::diff_scans("rootless union", &ours, "umoci shifted", &theirs, &opts);
        tree::assert_no_diffs(
            "rootless union",
            &view,
            "umoci shifted",
            &reference.rootfs(),
            &diffs,
        );
        view
    }
}

/// What Docker's init layer puts in a container's union (its mount points and placeholders).
const INIT_LAYER: [&str; 7] = [
    "dev/console",
    "dev/pts",
    "dev/shm",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/mtab",
];

fn owner(p: &Path) -> (u32, u32) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (md.uid(), md.gid())
}

#[test]
fn rootless_pull_stores_shifted_owners_and_rmi_and_prune_empty_the_store() {
    let rl = Rl::new(ensure_user(USER, true));
    let idx = image::alpine_multi(Flavor::Oci);
    rl.push.index("library/alpine", "latest", &idx);
    let alpine = rl.r("library/alpine:latest");
    let wh = rl.r("test/whiteouts:v1");
    rl.push.image(
        "test/whiteouts",
        Some("v1"),
        &crate::pull::whiteout_image().build(),
    );

    let out = rl.run(&["pull", &alpine]).ok();
    assert_eq!(out.stdout.trim(), alpine);
    let out = rl.run(&["pull", &wh]).ok();
    assert!(
        out.stderr.contains("skipping character device")
            && out.stderr.contains("skipping block device")
            && out.stderr.contains("cannot be created in a user namespace"),
        "devices are skipped with a warning:\n{}",
        out.describe()
    );

    // The store is the user's, under $XDG_DATA_HOME.
    let graph = Graph::of(&rl.inspect(&wh));
    assert!(graph.upper.starts_with(rl.root()), "{graph:?}");
    let (l2, l1) = (&graph.lower[0], &graph.lower[1]);

    // Owners are the image's, shifted by the mapping.
    assert_eq!(owner(&l1.join("a/keep")), (rl.user.uid, rl.user.gid));
    assert_eq!(owner(&l1.join("o")), (rl.user.uid, rl.host_gid(42)));
    assert_eq!(
        owner(&l1.join("srv")),
        (rl.host_uid(1000), rl.host_gid(1000))
    );
    assert_eq!(
        owner(&l1.join("owned")),
        (rl.host_uid(1000), rl.host_gid(1001))
    );
    assert_eq!(
        fs::symlink_metadata(l1.join("bin/su")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert!(!l1.join("dev/null").exists() && !l1.join("dev/loop0").exists());
    assert!(
        fs::symlink_metadata(l1.join("dev/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        tree::get_xattr(&l1.join("xattrs"), "user.comment").as_deref(),
        Some(&b"hello"[..])
    );

    // Whiteouts are 0/0 character devices; the opaque dir carries user.overlay.opaque.
    for p in ["a/gone", "a/subdir", "x/file", "abs-link"] {
        let md = fs::symlink_metadata(l2.join(p)).unwrap();
        assert!(md.file_type().is_char_device() && md.rdev() == 0, "{p}");
    }
    assert_eq!(
        tree::get_xattr(&l2.join("o"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        tree::get_xattr(&l2.join("o"), "trusted.overlay.opaque"),
        None
    );

    let images = rl.run(&["images", "-q"]).ok();
    assert_eq!(images.stdout.lines().count(), 2, "{}", images.describe());
    rl.run(&["check"]).ok();

    let out = rl.run(&["rmi", &wh]).ok();
    assert!(out.stdout.contains("Deleted:"), "{}", out.describe());
    rl.run(&["system", "prune", "-a", "-f"]).ok();
    assert_eq!(rl.layer_dirs(), Vec::<String>::new());
    assert_eq!(rl.run(&["images", "-q"]).ok().stdout.trim(), "");
    rl.run(&["check"]).ok();
}

#[test]
fn a_user_without_subordinate_ids_is_told_what_to_add() {
    let rl = Rl::new(ensure_user(NO_SUBIDS_USER, false));
    let out = rl.run(&["pull", &rl.r("library/alpine:latest")]);
    out.assert_error(&[
        "no subordinate uids in /etc/subuid",
        "/etc/subgid",
        &format!("{NO_SUBIDS_USER}:100000:65536"),
    ]);
    assert!(!rl.root().exists(), "no store is made");
}

#[test]
fn an_owner_outside_the_mapped_range_fails_naming_it() {
    let rl = Rl::new(ensure_user(USER, true));
    let (_, count) = rl.user.subids.expect("subordinate ids");
    let far = count + 10;
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[Entry::file("far", "x\n").owner(u64::from(far), 0)],
            Compression::Gzip,
        )
        .build();
    rl.push.image("test/far", Some("v1"), &img);
    let out = rl.run(&["pull", &rl.r("test/far:v1")]);
    out.assert_error(&[&format!("chown to {far}:0"), "/etc/subuid", "/etc/subgid"]);
    assert_eq!(rl.layer_dirs(), Vec::<String>::new(), "nothing committed");
}

/// `--name c1` container of the whiteout image, mounted rootless: seen from the host through
/// the pause process (`/proc/PID/root`), its union equals umoci's unpack with the ids shifted;
/// seen through `strata unshare`, the ids are the image's. Then `umount` and `rm`.
#[test]
fn rootless_pull_and_mount_shows_the_union_in_the_kept_namespace() {
    let rl = Rl::new(ensure_user(USER, true));
    let wh = rl.r("test/whiteouts:v1");
    rl.push.image(
        "test/whiteouts",
        Some("v1"),
        &crate::pull::whiteout_image().build(),
    );
    let merged = rl.run(&["pull-and-mount", "--name", "c1", &wh]).ok().stdout;
    let merged = PathBuf::from(merged.trim());
    assert!(merged.starts_with(rl.root()), "{}", merged.display());

    // Inside the namespace: the mount is there, with the image's owners.
    let cat = rl.run(&[
        "unshare",
        "cat",
        &merged.join("a/gone").display().to_string(),
    ]);
    assert_eq!(cat.ok().stdout, "back again\n");
    let stat = rl.run(&[
        "unshare",
        "stat",
        "-c",
        "%u:%g",
        &merged.join("owned").display().to_string(),
    ]);
    assert_eq!(stat.ok().stdout.trim(), "1000:1001");
    // Not on the host: the mount lives in the kept namespace only.
    assert!(
        !merged.join("a/gone").exists(),
        "the mount must not leak to the host"
    );

    // The same union from the host, through the pause process, against umoci.
    let view =
        rl.assert_union_is_umoci_shifted(&merged, "test/whiteouts:v1", &["dev/null", "dev/loop0"]);

    let ps = rl.run(&["ps", "--json"]).ok();
    let listed: serde_json::Value = serde_json::from_str(&ps.stdout).expect("ps --json");
    assert_eq!(listed[0]["Mounted"], true, "{}", ps.describe());
    rl.run(&["umount", "c1"]).ok();
    assert!(!view.join("a/gone").exists(), "unmounted in the namespace");
    rl.run(&["rm", "c1"]).ok();
    // A second container, removed mounted with -f.
    rl.run(&["pull-and-mount", "--name", "c2", &wh]).ok();
    rl.run(&["rm", "-f", "c2"]).ok();
    rl.run(&["system", "prune", "-a", "-f"]).ok();
    assert_eq!(rl.layer_dirs(), Vec::<String>::new());
}

/// A real Debian bookworm minbase root filesystem (built with debootstrap, see
/// `support::debian`), pulled rootless: its setuid binaries, its shadow-group files and its
/// hard links are in the layer with the ids shifted, and the union mounted in the kept
/// namespace equals umoci's unpack shifted; `strata unshare` sees the image's own ids.
#[test]
fn rootless_debian_pull_and_mount_equals_umoci_shifted() {
    let rl = Rl::new(ensure_user(USER, true));
    let tar = fs::read(debian::bookworm_minbase_tar()).expect("read the Debian layer");
    let img = ImageBuilder::new(Flavor::Docker)
        .layer(Layer::from_tar(tar), Compression::Gzip)
        .build();
    rl.push.image("library/debian", Some("bookworm"), &img);
    let deb = rl.r("library/debian:bookworm");

    let out = rl.run(&["pull", &deb]).ok();
    assert_eq!(out.stdout.trim(), deb, "{}", out.describe());
    let layer = Graph::of(&rl.inspect(&deb)).upper;
    let shadow = layer.join("etc/shadow");
    assert_eq!(
        owner(&shadow),
        (rl.user.uid, rl.host_gid(42)),
        "root:shadow"
    );
    assert_eq!(
        fs::symlink_metadata(&shadow).unwrap().mode() & 0o7777,
        0o640
    );
    let chage = layer.join("usr/bin/chage");
    assert_eq!(owner(&chage), (rl.user.uid, rl.host_gid(42)));
    assert_eq!(
        fs::symlink_metadata(&chage).unwrap().mode() & 0o7777,
        0o2755
    );
    let su = layer.join("usr/bin/su");
    assert_eq!(owner(&su), (rl.user.uid, rl.user.gid));
    assert_eq!(fs::symlink_metadata(&su).unwrap().mode() & 0o7777, 0o4755);
    let scan = tree::scan(&layer);
    let linked = scan.values().filter(|n| !n.links.is_empty()).count();
    assert!(linked >= 2, "the layer keeps Debian's hard links");

    let merged = rl
        .run(&["pull-and-mount", "--name", "deb", &deb])
        .ok()
        .stdout;
    let merged = PathBuf::from(merged.trim());
    rl.assert_union_is_umoci_shifted(&merged, "library/debian:bookworm", &[]);
    let stat = rl.run(&[
        "unshare",
        "stat",
        "-c",
        "%u:%g %a",
        &merged.join("etc/shadow").display().to_string(),
        &merged.join("usr/bin/su").display().to_string(),
    ]);
    assert_eq!(stat.ok().stdout, "0:42 640\n0:0 4755\n");

    rl.run(&["rm", "-f", "deb"]).ok();
    rl.run(&["rmi", &deb]).ok();
    rl.run(&["system", "prune", "-a", "-f"]).ok();
    assert_eq!(rl.layer_dirs(), Vec::<String>::new());
    rl.run(&["check"]).ok();
}

/// `load` rootless: a docker-archive (made by skopeo from the registry) of the whiteout image,
/// with its owners, setuid files, devices and opaque dirs, loads into the user's store as a
/// pull would: owners shifted, devices skipped with a warning, `user.overlay.opaque`, and its
/// union equals umoci's unpack of the registry image, shifted.
#[test]
fn rootless_load_of_a_docker_archive_equals_umoci_shifted() {
    let rl = Rl::new(ensure_user(USER, true));
    support::require_tool("skopeo");
    rl.push.image(
        "test/whiteouts",
        Some("v1"),
        &crate::pull::whiteout_image().build(),
    );
    let archive = rl.dirs.path().join("home/wh.tar");
    support::run_ok(
        Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{}", rl.r("test/whiteouts:v1")))
            .arg(format!(
                "docker-archive:{}:example.com/wh:v1",
                archive.display()
            )),
    );
    fs::set_permissions(
        &archive,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();

    let out = rl.run(&["load", "-i", &archive.display().to_string()]).ok();
    assert_eq!(
        out.stdout,
        "Loaded image: example.com/wh:v1\n",
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("skipping character device")
            && out.stderr.contains("skipping block device"),
        "devices are skipped with a warning:\n{}",
        out.describe()
    );
    let graph = Graph::of(&rl.inspect("example.com/wh:v1"));
    assert!(graph.upper.starts_with(rl.root()), "{graph:?}");
    let (l2, l1) = (&graph.lower[0], &graph.lower[1]);
    assert_eq!(
        owner(&l1.join("owned")),
        (rl.host_uid(1000), rl.host_gid(1001))
    );
    assert_eq!(owner(&l1.join("o")), (rl.user.uid, rl.host_gid(42)));
    assert_eq!(
        fs::symlink_metadata(l1.join("bin/su")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        tree::get_xattr(&l2.join("o"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );

    let merged = rl
        .run(&[
            "pull-and-mount",
            "--pull",
            "never",
            "--name",
            "loaded",
            "example.com/wh:v1",
        ])
        .ok()
        .stdout;
    rl.assert_union_is_umoci_shifted(
        Path::new(merged.trim()),
        "test/whiteouts:v1",
        &["dev/null", "dev/loop0"],
    );
    rl.run(&["rm", "-f", "loaded"]).ok();
    rl.run(&["rmi", "example.com/wh:v1"]).ok();
    rl.run(&["system", "prune", "-a", "-f"]).ok();
    assert_eq!(rl.layer_dirs(), Vec::<String>::new());
}

/// `run` rootless: runc in strata's namespaces; the container runs as root inside, passes its
/// exit code, and what it writes lands in the writable layer with the shifted owners.
#[test]
fn rootless_run_is_root_inside_and_writes_with_shifted_owners() {
    let rl = Rl::new(ensure_user(USER, true));
    support::require_tool("runc");
    let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
    rl.push.image("library/alpine", Some("latest"), &img);
    let alpine = rl.r("library/alpine:latest");

    let id = rl.run(&["run", "--rm", &alpine, "id"]).ok();
    assert!(
        id.stdout.starts_with("uid=0(root) gid=0(root)"),
        "{}",
        id.describe()
    );
    let out = rl.run(&["run", "--rm", &alpine, "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), Some(7), "{}", out.describe());

    let script = "echo hi > /made && chown 1000:1001 /made && touch /byroot";
    rl.run(&["run", "--name", "w", &alpine, "sh", "-c", script])
        .ok();
    let graph = Graph::of(&rl.inspect("w"));
    assert_eq!(
        owner(&graph.upper.join("made")),
        (rl.host_uid(1000), rl.host_gid(1001))
    );
    assert_eq!(
        fs::read_to_string(graph.upper.join("made")).unwrap(),
        "hi\n"
    );
    assert_eq!(
        owner(&graph.upper.join("byroot")),
        (rl.user.uid, rl.user.gid)
    );
    // `bundle`: a spec asking for no cgroup (none is delegated here).
    let bundle = rl.dirs.path().join("home/bundle");
    rl.run(&["bundle", "w", &bundle.display().to_string()]).ok();
    let spec: Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["root"]["path"], graph.merged.display().to_string());
    assert!(spec["linux"].get("resources").is_none(), "{spec:#}");
    rl.run(&["rm", "-f", "w"]).ok();
    assert_eq!(rl.run(&["ps", "-q"]).ok().stdout.trim(), "");
}

/// `strata --root ROOT ARGS...` as root.
fn as_root(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(crate::support::strata::bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run strata");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

/// A store records who made it (`<root>/kind`): `check` reports it, root refuses the user's
/// store and the user root's, each naming both kinds, and an old store without the file is
/// root's.
#[test]
fn a_store_of_the_other_kind_is_refused_naming_both() {
    let rl = Rl::new(ensure_user(USER, true));
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[Entry::file("owned", "x\n").owner(1000, 1000)],
            Compression::Gzip,
        )
        .build();
    rl.push.image("test/kind", Some("v1"), &img);
    let reference = rl.r("test/kind:v1");
    let user_root = rl.root();
    let user_root_arg = user_root.display().to_string();

    rl.run(&["pull", &reference]).ok();
    assert_eq!(
        fs::read_to_string(user_root.join("kind")).unwrap(),
        "rootless\n"
    );
    let check = rl.run(&["check"]).ok();
    assert!(
        check.stderr.contains("Store kind: rootless"),
        "{}",
        check.describe()
    );
    let info = rl.run(&["info"]).ok();
    assert!(
        info.stdout.contains("Store Kind: rootless\n"),
        "{}",
        info.describe()
    );
    let before = rl.layer_dirs();
    as_root(&user_root, &["images"]).assert_error(&[
        &user_root_arg,
        "made by a rootless strata and this strata runs as root",
        "use another --root",
    ]);
    as_root(&user_root, &["pull", &reference]).assert_error(&["made by a rootless strata"]);
    assert_eq!(
        rl.layer_dirs(),
        before,
        "root wrote nothing in the user's store"
    );
    rl.run(&["images", "-q"]).ok();

    // Root's store, handed to the user (so that only its kind can refuse it).
    let root_store = support::tempdir("root-kind");
    let root_root = root_store.path().join("store");
    let root_arg = root_root.display().to_string();
    as_root(&root_root, &["pull", &reference]).ok();
    assert_eq!(
        fs::read_to_string(root_root.join("kind")).unwrap(),
        "root\n"
    );
    let check = as_root(&root_root, &["check"]).ok();
    assert!(
        check.stderr.contains("Store kind: root"),
        "{}",
        check.describe()
    );
    fs::set_permissions(
        root_store.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let owner = format!("{}:{}", rl.user.uid, rl.user.gid);
    support::run_ok(Command::new("chown").args(["-R", "-h", &owner, &root_arg]));
    rl.run(&["--root", &root_arg, "images"]).assert_error(&[
        &root_arg,
        "made by a root strata and this strata runs rootless",
    ]);

    // A store from before the kind file: root's.
    fs::remove_file(root_root.join("kind")).unwrap();
    rl.run(&["--root", &root_arg, "images"])
        .assert_error(&["made by a root strata"]);
    support::run_ok(Command::new("chown").args(["-R", "-h", "0:0", &root_arg]));
    let images = as_root(&root_root, &["images", "-q"]).ok();
    assert_eq!(images.stdout.lines().count(), 1, "{}", images.describe());
    assert!(
        !root_root.join("kind").exists(),
        "an old store is left as it was"
    );

    // A store killed between its kind file and the rest: a read-only command takes it as
    // a new store, not as a directory holding something else.
    let killed = support::tempdir("killed-kind");
    fs::write(killed.path().join("kind"), "root\n").unwrap();
    let images = as_root(killed.path(), &["images", "-q"]).ok();
    assert_eq!(images.stdout, "", "{}", images.describe());
    assert!(killed.path().join("overlay2").is_dir());
}

/// A user with two subordinate ranges: strata maps them one after the other (1..1000 to the
/// first, 1001.. to the second), so owners beyond the first range land in the second, on disk
/// and as seen in the namespace; an owner beyond both still fails naming it.
#[test]
fn owners_beyond_the_first_subordinate_range_land_in_the_next() {
    const FIRST: (u32, u32) = (500_000, 1000);
    const SECOND: (u32, u32) = (600_000, 65_536);
    let rl = Rl::new(ensure_user_with(MULTI_USER, &[FIRST, SECOND]));
    let text = fs::read_to_string("/etc/subuid").unwrap();
    let ranges: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{MULTI_USER}:")))
        .collect();
    assert_eq!(ranges.len(), 2, "{MULTI_USER} has two ranges: {ranges:?}");
    let host = |id: u32| match id {
        0 => rl.user.uid,
        n if n <= FIRST.1 => FIRST.0 + n - 1,
        n => SECOND.0 + n - 1 - FIRST.1,
    };
    let last = FIRST.1 + SECOND.1;
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[
                Entry::file("first-end", "1\n").owner(1000, 1000),
                Entry::file("second-start", "2\n").owner(1001, 5000),
                Entry::file("second-end", "3\n").owner(u64::from(last), u64::from(last)),
                Entry::dir("d").owner(30_000, 42),
            ],
            Compression::Gzip,
        )
        .build();
    rl.push.image("test/ranges", Some("v1"), &img);
    let reference = rl.r("test/ranges:v1");
    rl.run(&["pull", &reference]).ok();
    let layer = Graph::of(&rl.inspect(&reference)).upper;
    assert_eq!(owner(&layer.join("first-end")), (host(1000), host(1000)));
    assert_eq!(owner(&layer.join("second-start")), (host(1001), host(5000)));
    assert_eq!(owner(&layer.join("second-start")), (600_000, 603_999));
    assert_eq!(owner(&layer.join("second-end")), (host(last), host(last)));
    assert_eq!(owner(&layer.join("d")), (host(30_000), host(42)));

    let merged = rl
        .run(&["pull-and-mount", "--name", "r", &reference])
        .ok()
        .stdout;
    let merged = PathBuf::from(merged.trim());
    let paths: Vec<String> = ["first-end", "second-start", "second-end", "d"]
        .iter()
        .map(|p| merged.join(p).display().to_string())
        .collect();
    let mut args = vec!["unshare", "stat", "-c", "%u:%g"];
    args.extend(paths.iter().map(String::as_str));
    let stat = rl.run(&args).ok();
    assert_eq!(
        stat.stdout,
        format!("1000:1000\n1001:5000\n{last}:{last}\n30000:42\n")
    );
    rl.run(&["rm", "-f", "r"]).ok();

    let beyond = last + 1;
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(
            &[Entry::file("far", "x\n").owner(u64::from(beyond), 0)],
            Compression::Gzip,
        )
        .build();
    rl.push.image("test/beyond", Some("v1"), &img);
    rl.run(&["pull", &rl.r("test/beyond:v1")])
        .assert_error(&[&format!("chown to {beyond}:0"), "/etc/subuid"]);
}

/// The namespace ends with its pause process: its mounts go, `ps` says so, and the next
/// command starts a new one where `mount` mounts the container again.
#[test]
fn a_killed_pause_process_is_replaced_and_containers_mount_again() {
    let rl = Rl::new(ensure_user(USER, true));
    let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
    rl.push.image("library/alpine", Some("latest"), &img);
    let merged = rl
        .run(&[
            "pull-and-mount",
            "--name",
            "c",
            &rl.r("library/alpine:latest"),
        ])
        .ok()
        .stdout;
    let release = PathBuf::from(merged.trim()).join("etc/alpine-release");
    let release = release.display().to_string();
    rl.run(&["unshare", "test", "-f", &release]).ok();

    let first = rl.pause_pid().expect("a pause process");
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(first, libc::SIGKILL) };
    while Path::new(&format!("/proc/{first}")).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ps = rl.run(&["ps", "--json"]).ok();
    let listed: serde_json::Value = serde_json::from_str(&ps.stdout).expect("ps --json");
    assert_eq!(listed[0]["Mounted"], false, "{}", ps.describe());
    let second = rl.pause_pid().expect("a new pause process");
    assert_ne!(first, second);
    let out = rl.run(&["unshare", "test", "-f", &release]);
    assert_eq!(out.code(), Some(1), "not mounted in the new namespace");
    rl.run(&["mount", "c"]).ok();
    rl.run(&["unshare", "test", "-f", &release]).ok();
    rl.run(&["rm", "-f", "c"]).ok();
}

//! Containers: `pull-and-mount`, `ps`, `inspect`, `mount`/`umount`, `rm`, `bundle` and `run`
//! against a real registry, real overlay mounts and the real `runc`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::image::{self, Compression, Flavor, Image, ImageBuilder, Layer, Pusher};
use crate::support::registry::Registry;
use crate::support::strata::{self, Graph, Output, Strata};
use crate::support::tree::{self, Options};
use crate::support::{self, umoci};

/// One test's world: its own registry (which a test may stop), a pusher and its own strata
/// root. Dropping it removes every container (`rm -f`) and detaches anything still mounted
/// under the root, also when the test failed, before the root's temp dir goes.
struct Env {
    reg: Option<Registry>,
    addr: String,
    push: Pusher,
    strata: Strata,
}

impl Env {
    fn new() -> Env {
        support::preflight();
        let reg = Registry::start();
        let push = Pusher::new(&reg);
        Env {
            addr: reg.addr(),
            reg: Some(reg),
            push,
            strata: Strata::new(),
        }
    }

    fn reg(&self) -> &Registry {
        self.reg.as_ref().expect("the registry was stopped")
    }

    /// Kill the registry: nothing answers on its port any more.
    fn stop_registry(&mut self) {
        drop(self.reg.take());
        assert!(
            std::net::TcpStream::connect(&self.addr).is_err(),
            "the registry still answers on {}",
            self.addr
        );
    }

    /// `127.0.0.1:PORT/<repo_ref>`
    fn r(&self, repo_ref: &str) -> String {
        format!("{}/{repo_ref}", self.addr)
    }

    /// Push the Alpine test image as `library/alpine:3.20.3` and `:latest`; returns it and
    /// its `ADDR/library/alpine:3.20.3` reference.
    fn push_alpine(&self) -> (Image, String) {
        let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
        self.push.image("library/alpine", Some("3.20.3"), &img);
        self.push.image("library/alpine", Some("latest"), &img);
        (img, self.r("library/alpine:3.20.3"))
    }

    fn run(&self, args: &[&str]) -> Output {
        self.strata.run(args)
    }

    /// `pull-and-mount --json [--name NAME] [EXTRA...] IMAGE`, which must succeed.
    fn pull_and_mount(&self, name: Option<&str>, extra: &[&str], image: &str) -> Ctr {
        let mut args = vec!["pull-and-mount", "--json"];
        if let Some(n) = name {
            args.extend(["--name", n]);
        }
        args.extend(extra);
        args.push(image);
        let out = self.run(&args).ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "pull-and-mount --json output is not JSON ({e}):\n{}",
                out.describe()
            )
        });
        Ctr::of(&v)
    }

    /// The containers `ps --json` lists.
    fn ps(&self) -> Vec<Ctr> {
        self.strata.ps().iter().map(Ctr::of).collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.strata.remove_all_containers();
    }
}

/// Stops a runc container (`runc delete -f`) on drop.
struct RuncGuard(String);

impl Drop for RuncGuard {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.0])
            .output();
    }
}

/// A container as `pull-and-mount --json` and `ps --json` show it.
#[derive(Debug, Clone, PartialEq)]
struct Ctr {
    id: String,
    name: String,
    image: String,
    image_id: String,
    mounted: bool,
    merged: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    /// Nearest first: the init layer, then the image's layers top to bottom.
    lower: Vec<PathBuf>,
}

impl Ctr {
    fn of(v: &Value) -> Ctr {
        let s = |k: &str| -> String {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} missing or not a string in {v:#}"))
                .to_string()
        };
        assert!(
            v["Created"].as_str().is_some_and(|c| !c.is_empty()),
            "created missing in {v:#}"
        );
        Ctr {
            id: s("Id"),
            name: s("Name"),
            image: s("Image"),
            image_id: s("ImageID"),
            mounted: v["Mounted"]
                .as_bool()
                .unwrap_or_else(|| panic!("mounted missing in {v:#}")),
            merged: PathBuf::from(s("MergedDir")),
            upper: PathBuf::from(s("UpperDir")),
            work: PathBuf::from(s("WorkDir")),
            lower: v["LowerDir"]
                .as_array()
                .unwrap_or_else(|| panic!("lower missing in {v:#}"))
                .iter()
                .map(|p| PathBuf::from(p.as_str().expect("lower entry")))
                .collect(),
        }
    }
}

fn canon(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Whether `dir` is an overlay mount point (exactly one mount there, of type overlay).
fn overlay_mounted(dir: &Path) -> bool {
    let m = strata::mounts_at(dir);
    assert!(
        m.len() <= 1,
        "{} is mounted {} times: {m:?}",
        dir.display(),
        m.len()
    );
    if let Some(m) = m.first() {
        assert_eq!(m.fs_type, "overlay", "{} is not an overlay", dir.display());
    }
    !m.is_empty()
}

fn assert_whiteout(p: &Path) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        md.file_type().is_char_device() && md.rdev() == 0,
        "{} must be a 0/0 char device (whiteout), is {:?} rdev {}",
        p.display(),
        md.file_type(),
        md.rdev()
    );
}

/// Names of the files of `<root>/containers/` (records and bundle dirs), sorted.
fn container_files(s: &Strata) -> Vec<String> {
    let dir = s.root().join("containers");
    let mut v: Vec<String> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    };
    v.sort();
    v
}

/// The directory names (`overlay2/<id>`) of an image's layers, sorted.
fn image_layer_dirs(img: &Image) -> Vec<String> {
    let mut v: Vec<String> = img
        .chain_ids()
        .iter()
        .map(|c| image::hex_of(c).to_string())
        .collect();
    v.sort();
    v
}

/// After all containers are gone: no record, no container dir or link, nothing mounted;
/// the image's layers are all still there.
fn assert_no_containers_left(s: &Strata, img: &Image) {
    assert_eq!(s.ps(), Vec::<Value>::new(), "ps --json must be empty");
    assert_eq!(
        container_files(s),
        Vec::<String>::new(),
        "<root>/containers/ must be empty"
    );
    assert_eq!(
        s.layer_dirs(),
        image_layer_dirs(img),
        "overlay2/ must hold the image's layers only"
    );
    assert_eq!(
        s.short_links().len(),
        img.layers.len(),
        "overlay2/l/ must hold the image's links only: {:?}",
        s.short_links()
    );
    assert_eq!(
        s.mounts_under_root(),
        Vec::<PathBuf>::new(),
        "nothing may stay mounted under the root"
    );
}

// ---------------------------------------------------------------------------------------
// Docker's init layer and container layout

/// The init layer's diff: every path with (kind, mode, size, symlink target).
fn expected_init_diff() -> BTreeMap<PathBuf, (&'static str, u32, u64, Option<PathBuf>)> {
    let mut m = BTreeMap::new();
    m.insert(PathBuf::from("."), ("dir", 0o755, 0, None));
    for d in ["dev", "dev/pts", "dev/shm", "etc"] {
        m.insert(PathBuf::from(d), ("dir", 0o755, 0, None));
    }
    for f in [
        "dev/console",
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
    ] {
        m.insert(PathBuf::from(f), ("file", 0o644, 0, None));
    }
    m.insert(
        PathBuf::from("etc/mtab"),
        ("symlink", 0o777, 12, Some(PathBuf::from("/proc/mounts"))),
    );
    m
}

fn check_init_diff(diff: &Path) {
    let scan = tree::scan(diff);
    let got: BTreeMap<PathBuf, (&'static str, u32, u64, Option<PathBuf>)> = scan
        .iter()
        .map(|(p, n)| {
            let mode = if n.kind == "symlink" { 0o777 } else { n.mode };
            (p.clone(), (n.kind, mode, n.size, n.target.clone()))
        })
        .collect();
    assert_eq!(
        got,
        expected_init_diff(),
        "init layer diff {} (kind, mode, size, target)",
        diff.display()
    );
    for (p, n) in &scan {
        assert_eq!((n.uid, n.gid), (0, 0), "owner of init file {}", p.display());
    }
}

fn check_link_file(dir: &Path) -> String {
    let link_file = dir.join("link");
    let link = read(&link_file);
    assert_eq!(
        link.len(),
        26,
        "{} = {link:?}: 26 characters, no newline",
        link_file.display()
    );
    assert!(
        link.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "{} = {link:?}: only [A-Z2-7]",
        link_file.display()
    );
    assert_eq!(
        mode_of(&link_file),
        0o644,
        "mode of {}",
        link_file.display()
    );
    link
}

/// Docker's layout of a container's two layers on top of `image_graph`'s layers.
fn check_container_layout(s: &Strata, c: &Ctr, image_graph: &Graph) {
    let overlay2 = canon(&s.overlay2());
    let cdir = overlay2.join(&c.id);
    let idir = overlay2.join(format!("{}-init", c.id));
    assert_eq!(c.id.len(), 64, "container id {:?}", c.id);
    assert!(
        c.id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "container id {:?} must be lowercase hex",
        c.id
    );
    assert_eq!(canon(&c.upper), cdir.join("diff"), "upper");
    assert_eq!(canon(&c.work), cdir.join("work"), "work");
    assert_eq!(canon(&c.merged), cdir.join("merged"), "merged");
    let mut expected_lower = vec![idir.join("diff")];
    expected_lower.extend(image_graph.layers_top_first().iter().map(|p| canon(p)));
    let lower: Vec<PathBuf> = c.lower.iter().map(|p| canon(p)).collect();
    assert_eq!(
        lower, expected_lower,
        "lower: init layer first, then the image's layers top to bottom"
    );

    for dir in [&cdir, &idir] {
        assert_eq!(mode_of(dir), 0o710, "mode of {}", dir.display());
        assert_eq!(
            mode_of(&dir.join("diff")),
            0o755,
            "mode of {}/diff",
            dir.display()
        );
        assert!(dir.join("work").is_dir(), "{}/work", dir.display());
        assert_eq!(
            mode_of(&dir.join("work")),
            0o700,
            "mode of {}/work",
            dir.display()
        );
    }
    assert!(cdir.join("merged").is_dir(), "{}/merged", cdir.display());
    assert_eq!(
        fs::read_dir(idir.join("work")).expect("init work").count(),
        0,
        "the init layer's work/ is never used and stays empty"
    );

    // link files and their l/ entries.
    let l_dir = overlay2.join("l");
    let clink = check_link_file(&cdir);
    let ilink = check_link_file(&idir);
    assert_ne!(clink, ilink);
    for (link, id) in [(&clink, c.id.clone()), (&ilink, format!("{}-init", c.id))] {
        let short = l_dir.join(link);
        assert_eq!(
            fs::read_link(&short).unwrap_or_else(|e| panic!("readlink {}: {e}", short.display())),
            PathBuf::from(format!("../{id}/diff")),
            "target of overlay2/l/{link}"
        );
        assert_eq!(
            canon(&short),
            overlay2.join(&id).join("diff"),
            "overlay2/l/{link} resolves"
        );
    }

    // lower files: image chain as l/<short>, top first; the container's starts with init.
    let image_chain: Vec<String> = image_graph
        .layers_top_first()
        .iter()
        .map(|diff| {
            format!(
                "l/{}",
                read(&diff.parent().expect("layer dir").join("link"))
            )
        })
        .collect();
    assert_eq!(
        read(&idir.join("lower")),
        image_chain.join(":"),
        "{}/lower",
        idir.display()
    );
    let mut clower = vec![format!("l/{ilink}")];
    clower.extend(image_chain);
    assert_eq!(
        read(&cdir.join("lower")),
        clower.join(":"),
        "{}/lower",
        cdir.display()
    );
    check_init_diff(&idir.join("diff"));
}

/// `inspect NAME` of a container agrees with its `ps --json` view.
fn check_container_inspect(s: &Strata, c: &Ctr) {
    let v = s.inspect(&c.name);
    assert_eq!(v["Id"], json!(c.id), "Id in {v:#}");
    assert_eq!(v["Name"], json!(format!("/{}", c.name)), "Name in {v:#}");
    assert_eq!(v["Image"], json!(c.image_id), "Image in {v:#}");
    assert_eq!(
        v["Config"]["Image"],
        json!(c.image),
        "Config.Image in {v:#}"
    );
    assert_eq!(
        v["State"]["Mounted"],
        json!(c.mounted),
        "State.Mounted in {v:#}"
    );
    let g = Graph::of(&v);
    assert_eq!(g.upper, c.upper, "UpperDir");
    assert_eq!(g.work, c.work, "WorkDir");
    assert_eq!(g.merged, c.merged, "MergedDir");
    assert_eq!(g.lower, c.lower, "LowerDir");
}

// ---------------------------------------------------------------------------------------
// Tests

/// pull-and-mount through a Docker Hub mirror: stdout is the merged dir, it is an overlay
/// mount, its view is the image plus Docker's init files, and the layout is Docker's.
#[test]
fn pull_and_mount_alpine() {
    let env = Env::new();
    let (img, _) = env.push_alpine();
    let mirror = format!("docker.io={}", env.reg().url());
    let out = env
        .run(&["--mirror", &mirror, "pull-and-mount", "alpine"])
        .ok();

    let ps = env.ps();
    assert_eq!(ps.len(), 1, "one container: {ps:?}");
    let c = &ps[0];
    assert_eq!(
        out.stdout,
        format!("{}\n", c.merged.display()),
        "stdout must be exactly the merged dir:\n{}",
        out.describe()
    );
    assert_eq!(
        canon(&c.merged),
        canon(&env.strata.overlay2()).join(&c.id).join("merged")
    );
    assert!(c.mounted, "ps says not mounted: {c:?}");
    assert!(
        overlay_mounted(&c.merged),
        "{} is not mounted (mountinfo)",
        c.merged.display()
    );
    assert_eq!(c.name, c.id[..12], "default name: the id's first 12 chars");
    assert_eq!(c.image, "docker.io/library/alpine:latest");
    assert_eq!(c.image_id, img.config_digest);
    // Image layer + init + container.
    assert_eq!(
        env.strata.layer_dirs().len(),
        3,
        "{:?}",
        env.strata.layer_dirs()
    );
    assert_eq!(
        env.strata.short_links().len(),
        3,
        "{:?}",
        env.strata.short_links()
    );
    assert_eq!(container_files(&env.strata), vec![format!("{}.json", c.id)]);

    let image_graph = Graph::of(&env.strata.inspect(&c.image));
    assert_eq!(image_graph.layers_top_first().len(), 1);
    check_container_layout(&env.strata, c, &image_graph);
    check_container_inspect(&env.strata, c);

    // The merged view is umoci's unpack of the image with the init layer's paths on top.
    // Documented differences: the init layer's paths (dev/console, dev/pts, dev/shm,
    // etc/hostname, etc/hosts, etc/resolv.conf, etc/mtab and their parents dev and etc) are
    // the init layer's, and the root's mtime is that of the (new) upper dir.
    let reference = umoci::unpack(env.reg(), "library/alpine:3.20.3", None);
    let mut expected = tree::scan(&reference.rootfs());
    assert!(expected.len() > 100, "umoci unpacked too little");
    assert_eq!(
        expected.get(Path::new("etc/hostname")).map(|n| n.size),
        Some(10),
        "Alpine's own etc/hostname (masked by the init layer)"
    );
    for (p, n) in tree::scan(&c.lower[0]) {
        if p != Path::new(".") {
            expected.insert(p, n);
        }
    }
    let merged = tree::scan(&c.merged);
    let opts = Options::default().ignore_mtime(".", "the merged root is the new upper dir");
    let diffs = tree::diff_scans("merged", &merged, "umoci + init layer", &expected, &opts);
    tree::assert_no_diffs(
        "merged",
        &c.merged,
        "umoci + init layer",
        &reference.rootfs(),
        &diffs,
    );
    assert_eq!(read(&c.merged.join("etc/alpine-release")), "3.20.3\n");
    assert_eq!(read(&c.merged.join("etc/hostname")), "", "init layer wins");
    assert_eq!(
        fs::read_link(c.merged.join("etc/mtab")).expect("etc/mtab"),
        PathBuf::from("/proc/mounts")
    );
    // Nothing was written yet.
    assert_eq!(
        fs::read_dir(&c.upper).expect("upper").count(),
        0,
        "the upper dir starts empty"
    );
}

/// Writes land in the upper dir, deletions become whiteouts there, and neither the image's
/// layer nor the init layer change.
#[test]
fn writes_and_deletes_go_to_the_upper_dir() {
    let env = Env::new();
    let (_img, reference) = env.push_alpine();
    let c = env.pull_and_mount(Some("web"), &[], &reference);
    let image_dir = c.lower[1].parent().expect("layer dir").to_path_buf();
    let init_dir = c.lower[0].parent().expect("init dir").to_path_buf();
    let image_before = tree::scan(&image_dir);
    let init_before = tree::scan(&init_dir);
    let motd = read(&c.lower[1].join("etc/motd"));
    let issue = read(&c.lower[1].join("etc/issue"));

    let m = &c.merged;
    fs::write(m.join("root/new-file"), "new\n").expect("create root/new-file");
    fs::create_dir(m.join("newdir")).expect("mkdir newdir");
    fs::write(m.join("newdir/f"), "f\n").expect("create newdir/f");
    fs::write(m.join("etc/hostname"), "web\n").expect("write etc/hostname");
    let mut appended = issue.clone();
    appended.push_str("appended\n");
    fs::write(m.join("etc/issue"), &appended).expect("rewrite etc/issue");
    fs::remove_file(m.join("etc/motd")).expect("rm etc/motd");
    fs::remove_dir(m.join("media/usb")).expect("rmdir media/usb");

    // The merged view.
    assert_eq!(read(&m.join("root/new-file")), "new\n");
    assert_eq!(read(&m.join("etc/hostname")), "web\n");
    assert_eq!(read(&m.join("etc/issue")), appended);
    assert!(!m.join("etc/motd").exists(), "etc/motd still visible");
    assert!(!m.join("media/usb").exists(), "media/usb still visible");

    // The upper dir holds exactly the changes (and the copied-up parents).
    let up = &c.upper;
    let upper_paths: BTreeSet<String> = tree::scan(up)
        .keys()
        .map(|p| p.display().to_string())
        .collect();
    let expected: BTreeSet<String> = [
        ".",
        "etc",
        "etc/hostname",
        "etc/issue",
        "etc/motd",
        "media",
        "media/usb",
        "newdir",
        "newdir/f",
        "root",
        "root/new-file",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        upper_paths,
        expected,
        "paths in the upper dir {}",
        up.display()
    );
    assert_eq!(read(&up.join("root/new-file")), "new\n");
    assert_eq!(read(&up.join("newdir/f")), "f\n");
    assert_eq!(read(&up.join("etc/hostname")), "web\n");
    assert_eq!(read(&up.join("etc/issue")), appended);
    assert_whiteout(&up.join("etc/motd"));
    assert_whiteout(&up.join("media/usb"));
    assert_eq!(
        mode_of(&up.join("root")),
        0o700,
        "copied-up /root keeps its mode"
    );

    // The lower layers are untouched, byte for byte.
    assert_eq!(read(&c.lower[1].join("etc/motd")), motd);
    assert_eq!(read(&c.lower[1].join("etc/issue")), issue);
    assert_eq!(read(&c.lower[0].join("etc/hostname")), "");
    let opts = Options::default();
    let d = tree::diff_scans(
        "before",
        &image_before,
        "after",
        &tree::scan(&image_dir),
        &opts,
    );
    tree::assert_no_diffs("image layer before", &image_dir, "after", &image_dir, &d);
    let d = tree::diff_scans(
        "before",
        &init_before,
        "after",
        &tree::scan(&init_dir),
        &opts,
    );
    tree::assert_no_diffs("init layer before", &init_dir, "after", &init_dir, &d);
}

/// Two containers of one image share its layer dirs; each adds two dirs of its own, and
/// their writes are private.
#[test]
fn two_containers_share_the_image_layers() {
    let env = Env::new();
    let (img, reference) = env.push_alpine();
    let a = env.pull_and_mount(Some("a"), &[], &reference);
    let dirs_a = env.strata.layer_dirs();
    assert_eq!(dirs_a.len(), img.layers.len() + 2, "{dirs_a:?}");

    let out = env.run(&["pull-and-mount", "--name", "b", &reference]).ok();
    assert!(
        !out.stderr.contains("Pull complete") && !out.stderr.contains("Downloaded"),
        "the second container must not pull again:\n{}",
        out.describe()
    );
    let b = env
        .ps()
        .into_iter()
        .find(|c| c.name == "b")
        .expect("container b in ps");
    assert_eq!(out.stdout, format!("{}\n", b.merged.display()));
    let dirs_b = env.strata.layer_dirs();
    let new: BTreeSet<&String> = dirs_b.iter().filter(|d| !dirs_a.contains(d)).collect();
    let expected_new: BTreeSet<String> = [b.id.clone(), format!("{}-init", b.id)].into();
    assert_eq!(
        new,
        expected_new.iter().collect(),
        "the second container adds only its own two dirs"
    );
    assert_eq!(env.strata.short_links().len(), img.layers.len() + 4);

    assert_eq!(
        a.lower[1..],
        b.lower[1..],
        "both on the same image layer dirs"
    );
    assert_ne!(a.lower[0], b.lower[0], "each has its own init layer");
    assert_ne!(a.upper, b.upper);
    assert_ne!(a.merged, b.merged);
    for c in [&a, &b] {
        assert!(overlay_mounted(&c.merged), "{} not mounted", c.name);
    }
    let mut ps: Vec<(String, bool)> = env.ps().into_iter().map(|c| (c.name, c.mounted)).collect();
    ps.sort();
    assert_eq!(
        ps,
        [("a".to_string(), true), ("b".to_string(), true)],
        "ps lists both, mounted"
    );

    fs::write(a.merged.join("tmp/only-in-a"), "a\n").expect("write in a");
    fs::write(b.merged.join("etc/hostname"), "b\n").expect("write in b");
    fs::remove_file(a.merged.join("etc/motd")).expect("rm in a");
    assert!(
        !b.merged.join("tmp/only-in-a").exists(),
        "a's file visible in b"
    );
    assert_eq!(
        read(&a.merged.join("etc/hostname")),
        "",
        "b's write visible in a"
    );
    assert!(
        b.merged.join("etc/motd").is_file(),
        "a's deletion visible in b"
    );
    assert!(!a.merged.join("etc/motd").exists());

    // A taken name is refused and creates nothing.
    let out = env.run(&["pull-and-mount", "--name", "a", &reference]);
    out.assert_error(&["\"a\"", "in use"]);
    assert_eq!(
        env.strata.layer_dirs(),
        dirs_b,
        "a refused name left dirs behind"
    );
    assert_eq!(env.ps().len(), 2);

    // `ps` lists the containers oldest first, also when they were created in the same second.
    env.run(&["pull-and-mount", "--name", "c", &reference]).ok();
    let names: Vec<String> = env.ps().into_iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["a", "b", "c"],
        "ps must list the containers oldest first"
    );
}

/// umount keeps everything, mount brings earlier writes back, rm needs -f for a mounted
/// container and removes every trace; unknown names are clear errors.
#[test]
fn umount_mount_and_rm() {
    let env = Env::new();
    let (img, reference) = env.push_alpine();
    let c = env.pull_and_mount(Some("web"), &[], &reference);
    let idir = c.lower[0].parent().expect("init dir").to_path_buf();
    let cdir = c.upper.parent().expect("container dir").to_path_buf();
    fs::write(c.merged.join("etc/marker"), "written before umount\n").expect("write");

    env.run(&["umount", "web"]).ok();
    assert!(!overlay_mounted(&c.merged), "still mounted after umount");
    assert!(!c.merged.join("etc/marker").exists());
    assert_eq!(
        fs::read_dir(&c.merged).expect("merged").count(),
        0,
        "the unmounted merged dir is empty"
    );
    assert!(cdir.is_dir() && idir.is_dir(), "umount must keep the dirs");
    assert_eq!(read(&c.upper.join("etc/marker")), "written before umount\n");
    let ps = env.ps();
    assert_eq!(ps.len(), 1);
    assert!(!ps[0].mounted, "ps says mounted after umount");
    assert_eq!(env.strata.inspect("web")["State"]["Mounted"], json!(false));
    // umount of an unmounted container is harmless.
    let out = env.run(&["umount", "web"]).ok();
    assert!(out.stderr.contains("not mounted"), "{}", out.describe());

    let out = env.run(&["mount", "web"]).ok();
    assert_eq!(
        out.stdout,
        format!("{}\n", c.merged.display()),
        "mount prints merged"
    );
    assert!(overlay_mounted(&c.merged), "not mounted after mount");
    assert_eq!(
        read(&c.merged.join("etc/marker")),
        "written before umount\n",
        "earlier writes are back"
    );
    assert_eq!(read(&c.merged.join("etc/alpine-release")), "3.20.3\n");
    // mount of a mounted container: same dir, still one mount (overlay_mounted checks).
    let out = env.run(&["mount", "web"]).ok();
    assert_eq!(out.stdout, format!("{}\n", c.merged.display()));
    assert!(overlay_mounted(&c.merged));
    assert!(env.ps()[0].mounted);

    // rm without -f refuses a mounted container and leaves it alone.
    let out = env.run(&["rm", "web"]);
    out.assert_error(&["web", "strata umount", "rm -f"]);
    assert!(overlay_mounted(&c.merged), "rm without -f unmounted it");
    assert_eq!(env.ps().len(), 1, "rm without -f removed the record");
    assert!(cdir.is_dir() && idir.is_dir());

    // rm without -f of an unmounted container works.
    let other = env.pull_and_mount(Some("other"), &[], &reference);
    env.run(&["umount", "other"]).ok();
    let out = env.run(&["rm", "other"]).ok();
    assert_eq!(out.stdout, "other\n");
    assert!(!other.upper.parent().expect("dir").exists());
    assert_eq!(env.ps().len(), 1);

    let links_before = env.strata.short_links();
    let clink = read(&cdir.join("link"));
    let ilink = read(&idir.join("link"));
    assert!(links_before.contains(&clink) && links_before.contains(&ilink));
    let out = env.run(&["rm", "-f", "web"]).ok();
    assert_eq!(out.stdout, "web\n");
    assert!(!overlay_mounted(&c.merged), "rm -f left the mount");
    assert!(!cdir.exists(), "{} still exists", cdir.display());
    assert!(!idir.exists(), "{} still exists", idir.display());
    let links = env.strata.short_links();
    assert!(
        !links.contains(&clink) && !links.contains(&ilink),
        "container links left in l/: {links:?}"
    );
    assert!(
        !env.strata
            .root()
            .join("containers")
            .join(format!("{}.json", c.id))
            .exists(),
        "record left"
    );
    assert_no_containers_left(&env.strata, &img);

    // Unknown containers.
    let tmp = support::tempdir("nope");
    let bundle_dir = tmp.path().join("bundle");
    let bundle_dir = bundle_dir.to_str().expect("utf-8");
    for args in [
        &["rm", "nope"][..],
        &["rm", "-f", "nope"],
        &["mount", "nope"],
        &["umount", "nope"],
        &["bundle", "nope", bundle_dir],
    ] {
        let out = env.run(args);
        out.assert_error(&["no such container", "nope"]);
    }
    assert!(
        !Path::new(bundle_dir).exists(),
        "bundle of an unknown container wrote"
    );
    let out = env.run(&["inspect", "nope"]);
    out.assert_error(&["nope"]);
}

/// A 200-layer image mounts whole: every layer's file is visible and the top layer wins.
#[test]
fn two_hundred_layers_mount_whole() {
    const N: usize = 200;
    let env = Env::new();
    let img = image::numbered_layers(Flavor::Oci, N);
    env.push.image("test/many", Some("v1"), &img);
    let reference = env.r("test/many:v1");
    let c = env.pull_and_mount(
        Some("big"),
        &["--max-concurrent-downloads", "8"],
        &reference,
    );
    assert!(overlay_mounted(&c.merged), "not mounted");
    assert_eq!(c.lower.len(), N + 1, "init + {N} layers");
    assert_eq!(env.strata.layer_dirs().len(), N + 2);

    let mut names: Vec<String> = fs::read_dir(c.merged.join("layers"))
        .expect("read layers/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected: Vec<String> = (0..N).map(|i| format!("f{i:03}")).collect();
    assert_eq!(names, expected, "every layer's file is visible");
    for i in 0..N {
        assert_eq!(
            read(&c.merged.join(format!("layers/f{i:03}"))),
            format!("file {i}\n")
        );
    }
    assert_eq!(
        read(&c.merged.join("shared")),
        format!("layer {}\n", N - 1),
        "the top layer's shared file wins"
    );

    let v = env.strata.inspect("big");
    let g = Graph::of(&v);
    assert_eq!(g.lower.len(), N + 1, "LowerDir entries: init + {N}");
    assert_eq!(g.lower, c.lower);
    let image_graph = Graph::of(&env.strata.inspect(&reference));
    check_container_layout(&env.strata, &c, &image_graph);

    // Writes still work on such a deep stack.
    fs::write(c.merged.join("shared"), "container\n").expect("write shared");
    assert_eq!(read(&c.upper.join("shared")), "container\n");
    assert_eq!(
        read(&image_graph.upper.join("shared")),
        format!("layer {}\n", N - 1)
    );
}

/// With the image stored, `--pull missing` needs no registry; `--pull never` refuses an
/// image that is not stored; `--pull always` needs the registry.
#[test]
fn warm_start_without_registry() {
    let mut env = Env::new();
    let (img, reference) = env.push_alpine();
    let first = env.pull_and_mount(Some("first"), &[], &reference);
    env.stop_registry();

    let second = env.pull_and_mount(Some("second"), &[], &reference);
    assert!(overlay_mounted(&second.merged));
    assert_eq!(second.image_id, img.config_digest);
    assert_eq!(second.lower[1..], first.lower[1..]);
    assert_eq!(read(&second.merged.join("etc/alpine-release")), "3.20.3\n");
    let third = env.pull_and_mount(Some("third"), &["--pull", "never"], &reference);
    assert!(overlay_mounted(&third.merged));

    let dirs = env.strata.layer_dirs();
    let missing = env.r("library/never-pulled:1");
    let out = env.run(&["pull-and-mount", "--pull", "never", "--name", "x", &missing]);
    out.assert_error(&["never-pulled", "not present", "never"]);

    let out = env.run(&[
        "pull-and-mount",
        "--pull",
        "always",
        "--name",
        "y",
        &reference,
    ]);
    out.assert_error(&["cannot reach registry", &env.addr]);

    assert_eq!(
        env.strata.layer_dirs(),
        dirs,
        "failed runs left dirs behind"
    );
    let mut names: Vec<String> = env.ps().into_iter().map(|c| c.name).collect();
    names.sort();
    assert_eq!(names, ["first", "second", "third"]);
}

/// `strata run` with the real runc: output, exit code, -e, -w, -u, --rm cleanup, a missing
/// runtime.
#[test]
fn run_with_runc() {
    support::require_tool("runc");
    let env = Env::new();
    let (img, reference) = env.push_alpine();
    let r = reference.as_str();

    let out = env
        .run(&["run", "--rm", r, "cat", "/etc/alpine-release"])
        .ok();
    assert_eq!(out.stdout, "3.20.3\n", "{}", out.describe());
    assert_no_containers_left(&env.strata, &img);

    let out = env.run(&["run", "--rm", r, "sh", "-c", "exit 7"]);
    assert_eq!(
        out.code(),
        Some(7),
        "exit code passed through:\n{}",
        out.describe()
    );
    assert_no_containers_left(&env.strata, &img);

    let cases: [(&[&str], &str); 4] = [
        (&["-e", "FOO=bar", r, "sh", "-c", "echo $FOO"], "bar\n"),
        (&["-w", "/tmp", r, "pwd"], "/tmp\n"),
        (&["-u", "nobody", r, "id", "-u"], "65534\n"),
        (&["-u", "nobody", r, "id", "-g"], "65534\n"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["run", "--rm"];
        all.extend(args);
        let out = env.run(&all).ok();
        assert_eq!(out.stdout, expected, "{}", out.describe());
    }
    assert_no_containers_left(&env.strata, &img);

    // The container sees its own writable layer; without --rm it stays.
    let out = env
        .run(&[
            "run",
            "--name",
            "keep",
            r,
            "sh",
            "-c",
            "echo kept > /root/out && cat /etc/hostname",
        ])
        .ok();
    assert!(!out.stdout.contains("localhost"), "{}", out.describe());
    let ps = env.ps();
    assert_eq!(ps.len(), 1, "run without --rm keeps the container");
    assert_eq!(ps[0].name, "keep");
    assert_eq!(read(&ps[0].upper.join("root/out")), "kept\n");
    env.run(&["rm", "-f", "keep"]).ok();
    assert_no_containers_left(&env.strata, &img);

    // strata's own failure: Docker's 125 for `run`.
    let out = env
        .run(&["run", "--rm", "--runtime", "does-not-exist", r, "true"])
        .fails_with(125);
    assert!(out.stderr.contains("error: ") && out.stderr.contains("does-not-exist"));
    let out = env.run(&[
        "run",
        "--runtime",
        "does-not-exist",
        "--name",
        "n",
        r,
        "true",
    ]);
    let out = out.fails_with(125);
    assert!(out.stderr.contains("not found"), "{}", out.describe());
    assert_no_containers_left(&env.strata, &img);
}

/// `strata bundle` writes a config.json runc runs: root.path is the merged dir and
/// process.args the image's Cmd (or the args after `--`).
#[test]
fn bundle_runs_with_runc() {
    support::require_tool("runc");
    let env = Env::new();
    let (arch, variant) = image::alpine_platform(support::host_alpine_arch());
    let img = ImageBuilder::new(Flavor::Oci)
        .platform("linux", arch, variant)
        .layer(
            Layer::from_tar_gz(&support::alpine_tarball(support::host_alpine_arch())),
            Compression::Gzip,
        )
        .container_config(json!({
            "Env": [image::PATH_ENV, "GREETING=hello"],
            "Cmd": ["cat", "/etc/alpine-release"],
            "WorkingDir": "/etc",
        }))
        .build();
    env.push.image("test/alpine-cmd", Some("v1"), &img);
    let reference = env.r("test/alpine-cmd:v1");
    let c = env.pull_and_mount(Some("web"), &[], &reference);
    let tmp = support::tempdir("bundles");
    let runc_prefix = format!("strata-it-{}-{}", std::process::id(), &c.id[..8]);

    let config_of = |dir: &Path| -> Value {
        serde_json::from_str(&read(&dir.join("config.json"))).expect("config.json is JSON")
    };
    let runc_run = |dir: &Path, id: &str| -> (RuncGuard, std::process::Output) {
        let guard = RuncGuard(id.to_string());
        let out = Command::new("runc")
            .arg("run")
            .arg("--bundle")
            .arg(dir)
            .arg(id)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run runc");
        (guard, out)
    };
    let show = |o: &std::process::Output| {
        format!(
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    // The image's Cmd.
    let dir1 = tmp.path().join("one");
    let out = env
        .run(&["bundle", "web", dir1.to_str().expect("utf-8")])
        .ok();
    assert_eq!(
        out.stdout,
        format!("{}\n", dir1.join("config.json").display())
    );
    let cfg = config_of(&dir1);
    assert_eq!(
        cfg["root"]["path"].as_str().map(|p| canon(Path::new(p))),
        Some(canon(&c.merged)),
        "root.path in {cfg:#}"
    );
    assert_eq!(
        cfg["process"]["args"],
        json!(["cat", "/etc/alpine-release"])
    );
    assert_eq!(cfg["process"]["cwd"], json!("/etc"));
    let env_list = cfg["process"]["env"].as_array().expect("process.env");
    assert!(env_list.contains(&json!("GREETING=hello")), "{env_list:?}");
    assert!(env_list.contains(&json!(image::PATH_ENV)), "{env_list:?}");
    let (_g1, o) = runc_run(&dir1, &format!("{runc_prefix}-1"));
    assert!(o.status.success(), "runc run: {}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "3.20.3\n",
        "{}",
        show(&o)
    );

    // Args after --, with -e and -w; after umount, bundle mounts again.
    env.run(&["umount", "web"]).ok();
    assert!(!overlay_mounted(&c.merged));
    let dir2 = tmp.path().join("two");
    let out = env
        .run(&[
            "bundle",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "web",
            dir2.to_str().expect("utf-8"),
            "--",
            "sh",
            "-c",
            "echo $GREETING $FOO; pwd; echo out > /root/from-runc",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        format!("{}\n", dir2.join("config.json").display())
    );
    assert!(
        overlay_mounted(&c.merged),
        "bundle must mount the container"
    );
    let cfg = config_of(&dir2);
    assert_eq!(
        cfg["process"]["args"],
        json!([
            "sh",
            "-c",
            "echo $GREETING $FOO; pwd; echo out > /root/from-runc"
        ])
    );
    assert_eq!(cfg["process"]["cwd"], json!("/tmp"));
    let (_g2, o) = runc_run(&dir2, &format!("{runc_prefix}-2"));
    assert!(o.status.success(), "runc run: {}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello bar\n/tmp\n",
        "{}",
        show(&o)
    );
    assert_eq!(
        read(&c.upper.join("root/from-runc")),
        "out\n",
        "runc wrote into the container's upper dir"
    );
}

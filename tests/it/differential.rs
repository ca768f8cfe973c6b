//! Differential tests: tricky images built with real tools (umoci repack of ordinary
//! filesystem changes; GNU tar in its posix, gnu and ustar formats), pulled by strata and
//! unpacked by `umoci unpack`, compared file by file (type, mode, owner, content, symlink
//! target, device numbers, xattrs, mtime, hard-link groups):
//!
//! - the union of strata's layers (mounted read-only) against umoci's unpack of the image;
//! - each of strata's layer directories against umoci's unpack of an image made of that layer
//!   alone. Two differences are expected there and checked separately: strata keeps whiteouts
//!   as 0/0 character devices (umoci, unpacking onto nothing, has nothing to delete), and a
//!   directory the layer only implies (no member of its own) gets the applier's time.
//!
//! Documented exceptions (where umoci itself is lossy or the formats cannot agree) are listed
//! with each comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::image::{Compression, Flavor, ImageBuilder, Layer};
use crate::support::strata::{Graph, Union};
use crate::support::tree::{self, Options};
use crate::support::{self, Env, run_ok, umoci};

// ---------------------------------------------------------------------------------------
// Building source trees

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL")
}

fn lchown(p: &Path, uid: u32, gid: u32) {
    // SAFETY: valid C string.
    let rc = unsafe { libc::lchown(cpath(p).as_ptr(), uid, gid) };
    assert_eq!(
        rc,
        0,
        "lchown {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// Sets atime and mtime (seconds, may be negative) without following a symlink.
fn set_mtime(p: &Path, secs: i64) {
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: valid C string and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn lsetxattr(p: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).expect("xattr name");
    // SAFETY: valid C strings and a buffer of value.len() bytes.
    let rc = unsafe {
        libc::lsetxattr(
            cpath(p).as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {name} on {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn mknod(p: &Path, kind: libc::mode_t, mode: u32, major: u32, minor: u32) {
    // SAFETY: valid C string.
    let rc = unsafe { libc::mknod(cpath(p).as_ptr(), kind | mode, libc::makedev(major, minor)) };
    assert_eq!(
        rc,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn write(p: &Path, data: impl AsRef<[u8]>) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("parent dirs");
    }
    fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// `security.capability` v2: cap_net_bind_service=ep.
const CAP_NET_BIND_SERVICE_EP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    0x00, 0x04, 0x00, 0x00, // permitted (low): bit 10
    0x00, 0x00, 0x00, 0x00, // inheritable (low)
    0x00, 0x00, 0x00, 0x00, // permitted (high)
    0x00, 0x00, 0x00, 0x00, // inheritable (high)
];

const PRE_1970: i64 = -315_619_200; // 1960-01-01
const POST_2038: i64 = 4_102_444_800; // 2100-01-01
const T0: i64 = 1_600_000_000;

/// Sets every directory's mtime under `root` (deepest first), so children do not change
/// them afterwards.
fn settle_dirs(root: &Path, secs: i64) {
    let mut dirs: Vec<PathBuf> = tree::scan(root)
        .into_iter()
        .filter(|(_, n)| n.kind == "dir")
        .map(|(p, _)| root.join(p))
        .collect();
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in dirs {
        set_mtime(&d, secs);
    }
}

// ---------------------------------------------------------------------------------------
// Comparing

/// What a layer tar holds: member names (normalised: no `./`, no trailing `/`; `.` for the
/// root), the whiteouts (as the paths they delete), and the mtimes of directory members.
struct TarNames {
    names: BTreeSet<PathBuf>,
    whiteouts: BTreeSet<PathBuf>,
    dir_mtimes: BTreeMap<PathBuf, i64>,
}

fn tar_names(tar: &[u8]) -> TarNames {
    let mut names = BTreeSet::new();
    let mut whiteouts = BTreeSet::new();
    let mut dir_mtimes = BTreeMap::new();
    let mut a = tar::Archive::new(tar);
    for e in a.entries().expect("tar entries") {
        let e = e.expect("tar entry");
        let raw = e.path_bytes().into_owned();
        let norm: Vec<&[u8]> = raw
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        let p: PathBuf = if norm.is_empty() {
            PathBuf::from(".")
        } else {
            norm.iter().map(|c| OsStr::from_bytes(c)).collect()
        };
        match p.file_name().map(|n| n.as_bytes()) {
            Some(b".wh..wh..opq") => {}
            Some(n) if n.starts_with(b".wh.") => {
                whiteouts.insert(p.with_file_name(OsStr::from_bytes(&n[4..])));
            }
            _ => {
                if e.header().entry_type().is_dir() {
                    let mtime = e.header().mtime().expect("mtime");
                    dir_mtimes.insert(p.clone(), i64::try_from(mtime).expect("mtime"));
                }
                names.insert(p);
            }
        }
    }
    TarNames {
        names,
        whiteouts,
        dir_mtimes,
    }
}

/// Compares strata's layer dir with umoci's unpack of the layer alone.
fn assert_layer_matches(
    label: &str,
    layer_dir: &Path,
    umoci_rootfs: &Path,
    tar: &[u8],
    opts: &Options,
) {
    let TarNames {
        names,
        whiteouts,
        dir_mtimes,
    } = tar_names(tar);
    let mut ours = tree::scan(layer_dir);
    // Whiteouts: strata keeps them as 0/0 char devices, exactly where the layer has them
    // (and not where the layer also has the name itself).
    let devices: BTreeSet<PathBuf> = ours
        .iter()
        .filter(|(_, n)| n.kind == "char device" && n.rdev == Some((0, 0)))
        .map(|(p, _)| p.clone())
        .collect();
    let expected: BTreeSet<PathBuf> = whiteouts
        .iter()
        .filter(|p| !names.contains(*p))
        .filter(|p| {
            // Nothing to hide below a non-directory of this layer.
            p.ancestors()
                .skip(1)
                .all(|a| ours.get(a).is_none_or(|n| n.kind == "dir"))
        })
        .cloned()
        .collect();
    assert_eq!(
        devices, expected,
        "{label}: whiteout devices in strata's layer dir"
    );
    ours.retain(|p, _| !devices.contains(p));
    let mut opts = opts.clone();
    // Directories the layer does not have a member for: umoci creates them at its own time
    // as 0755 root; strata gives them the lower layers' metadata (compared in the unions).
    for (p, n) in &ours {
        if n.kind == "dir" && !names.contains(p) {
            opts.ignore_mtime_of
                .push((p.clone(), "directory implied by the layer"));
            opts.ignore_meta_of.push((
                p.clone(),
                "directory implied by the layer: lower layers' metadata",
            ));
        }
    }
    // Exception: umoci leaves the directories it applied a whiteout in with the time of the
    // unpack (it sets a directory's times from its member, then removes the whited-out name
    // below it). strata's must be the member's.
    for w in &whiteouts {
        let dir = match w.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let (Some(want), Some(node)) = (dir_mtimes.get(&dir), ours.get(&dir)) {
            assert_eq!(
                node.mtime,
                *want,
                "{label}: mtime of {} (holds a whiteout) must be its member's",
                dir.display()
            );
            opts.ignore_mtime_of.push((
                dir,
                "umoci: a directory holding a whiteout gets the unpack time",
            ));
        }
        // umoci stamps the parent also when the layer has no member for it, and may touch the
        // directories above (e.g. when it replaces a lower directory there).
        for a in w.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
            opts.ignore_mtime_of.push((
                a.to_path_buf(),
                "umoci: a directory above a whiteout may get the unpack time",
            ));
        }
    }
    let theirs = tree::scan(umoci_rootfs);
    let diffs = tree::diff_scans("strata layer", &ours, "umoci", &theirs, &opts);
    tree::assert_no_diffs(label, layer_dir, "umoci", umoci_rootfs, &diffs);
}

/// Pulls `repo:v1` and checks the union against umoci's unpack; then each layer (uncompressed
/// tars given bottom first) against umoci's unpack of a one-layer image of it. Returns every
/// difference found, one block per comparison (empty: all equal).
fn compare_image(
    env: &Env,
    repo: &str,
    layer_tars: &[Vec<u8>],
    union_opts: &Options,
    layer_opts: Option<&Options>,
) -> Vec<String> {
    let reference = env.r(&format!("{repo}:v1"));
    let out = env.strata.pull(&reference);
    assert!(out.status.success(), "pull failed:\n{}", out.describe());
    let graph = Graph::of(&env.strata.inspect(&reference));
    let mut layers = graph.layers_top_first();
    layers.reverse();
    assert_eq!(layers.len(), layer_tars.len());
    let mut problems = Vec::new();

    let union = Union::of(&graph);
    let reference_unpack = umoci::unpack(&env.reg, &format!("{repo}:v1"), None);
    let diffs = tree::diff(
        "strata union",
        union.path(),
        "umoci",
        &reference_unpack.rootfs(),
        union_opts,
    );
    if !diffs.is_empty() {
        problems.push(format!("{repo}: union vs umoci:\n  {}", diffs.join("\n  ")));
    }
    drop(union);

    let Some(layer_opts) = layer_opts else {
        return problems;
    };
    for (i, (dir, tar)) in layers.iter().zip(layer_tars).enumerate() {
        let single = ImageBuilder::new(Flavor::Oci)
            .layer(Layer::from_tar(tar.clone()), Compression::Gzip)
            .build();
        let single_repo = format!("{repo}-layer{i}");
        env.push.image(&single_repo, Some("v1"), &single);
        let unpacked = umoci::unpack(&env.reg, &format!("{single_repo}:v1"), None);
        let label = format!("{repo} layer {i}");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_layer_matches(&label, dir, &unpacked.rootfs(), tar, layer_opts)
        }));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            problems.push(msg);
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------
// (a) umoci repack of ordinary filesystem changes

/// `umoci unpack` the layout's image into a fresh bundle, let `change` edit the rootfs,
/// `umoci repack`.
fn umoci_step(layout: &Path, work: &Path, change: impl FnOnce(&Path)) {
    let bundle = work.join("bundle");
    if bundle.exists() {
        fs::remove_dir_all(&bundle).expect("remove bundle");
    }
    let image = format!("{}:img", layout.display());
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image", &image])
            .arg(&bundle),
    );
    change(&bundle.join("rootfs"));
    run_ok(
        Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&bundle),
    );
}

/// The uncompressed layer tars of the layout's image, bottom first.
fn layout_layers(layout: &Path) -> Vec<Vec<u8>> {
    let blob = |digest: &str| {
        fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("blob")
    };
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let gz = blob(l["digest"].as_str().unwrap());
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut tar)
                .expect("gunzip");
            tar
        })
        .collect()
}

fn base_rootfs(r: &Path) {
    for d in [
        "etc",
        "usr/bin",
        "var/lib/app",
        "data/d1/sub",
        "data/d2",
        "data/d3",
        "opt/keep",
    ] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    write(&r.join("etc/hostname"), "base\n");
    write(&r.join("etc/config"), "v1\n");
    write(&r.join("usr/bin/tool"), "#!/bin/sh\necho tool\n");
    chmod(&r.join("usr/bin/tool"), 0o755);
    write(&r.join("usr/bin/suid"), "suid\n");
    chmod(&r.join("usr/bin/suid"), 0o4755);
    write(&r.join("usr/bin/capped"), "needs caps\n");
    lsetxattr(
        &r.join("usr/bin/capped"),
        "security.capability",
        &CAP_NET_BIND_SERVICE_EP,
    );
    write(&r.join("data/d1/sub/f"), "deep\n");
    write(&r.join("data/d2/g"), "g\n");
    write(&r.join("data/d3/a"), "a\n");
    write(&r.join("data/d3/b"), "b\n");
    write(&r.join("data/orig"), "shared inode\n");
    fs::hard_link(r.join("data/orig"), r.join("data/hl")).unwrap();
    write(&r.join("data/x-attrs"), "xattrs\n");
    lsetxattr(&r.join("data/x-attrs"), "user.x", b"hello");
    lsetxattr(&r.join("data/d1"), "user.dir", b"on a dir");
    std::os::unix::fs::symlink("../etc/hostname", r.join("data/link")).unwrap();
    std::os::unix::fs::symlink("/nowhere", r.join("data/dangling")).unwrap();
    mknod(&r.join("data/fifo"), libc::S_IFIFO, 0o644, 0, 0);
    mknod(&r.join("data/null"), libc::S_IFCHR, 0o666, 1, 3);
    mknod(&r.join("data/blk"), libc::S_IFBLK, 0o660, 4095, 1_048_575);
    fs::create_dir(r.join("tmp")).unwrap();
    chmod(&r.join("tmp"), 0o1777);
    write(&r.join("home/user/file"), "owned\n");
    lchown(&r.join("home/user/file"), 1000, 1000);
    lchown(&r.join("home/user"), 1000, 1000);
    chmod(&r.join("home"), 0o750);
    lchown(&r.join("home"), 0, 1000);
    write(&r.join("home/big/file"), "big ids\n");
    lchown(&r.join("home/big/file"), 100_000, 100_000);
    lchown(&r.join("home/big"), 100_000, 100_001);
}

fn second_rootfs(r: &Path) {
    write(&r.join("etc/added"), "added in 2\n");
    fs::remove_file(r.join("etc/hostname")).unwrap(); // file deleted (data/link now dangles)
    fs::remove_dir_all(r.join("data/d1")).unwrap(); // dir with content deleted
    fs::remove_dir_all(r.join("data/d2")).unwrap(); // dir replaced by a file
    write(&r.join("data/d2"), "now a file\n");
    fs::remove_file(r.join("etc/config")).unwrap(); // file replaced by a symlink
    std::os::unix::fs::symlink("added", r.join("etc/config")).unwrap();
    chmod(&r.join("usr/bin/tool"), 0o700);
    lchown(&r.join("var/lib/app"), 33, 33);
    lsetxattr(&r.join("data/x-attrs"), "user.x", b"changed");
    fs::hard_link(r.join("etc/added"), r.join("usr/bin/added-link")).unwrap();
}

fn third_rootfs(r: &Path) {
    for e in fs::read_dir(r.join("data/d3")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap(); // emptied ...
    }
    write(&r.join("data/d3/c"), "refilled\n"); // ... and refilled
    fs::remove_file(r.join("data/d2")).unwrap(); // file replaced by a dir
    write(&r.join("data/d2/inner"), "dir again\n");
    write(&r.join("data/d1/sub/f"), "re-added\n"); // deleted path re-added
    write(&r.join("data/orig"), "rewritten in place\n"); // one name of a hardlink group
    mknod(&r.join("data/fifo2"), libc::S_IFIFO, 0o600, 0, 0);
}

fn fourth_rootfs(r: &Path) {
    // A change below home/user: the layer has home/user/ but not home/ (0750 root:1000 below),
    // so home is a parent the layer only implies.
    write(&r.join("home/user/new"), "layer 4\n");
    fs::rename(r.join("opt/keep"), r.join("opt/moved")).unwrap();
    write(&r.join("old"), "before 1970\n");
    set_mtime(&r.join("old"), PRE_1970);
    write(&r.join("future"), "after 2038\n");
    set_mtime(&r.join("future"), POST_2038);
    fs::remove_file(r.join("usr/bin/capped")).unwrap();
    write(&r.join("usr/bin/capped"), "new binary, new caps\n");
    lsetxattr(
        &r.join("usr/bin/capped"),
        "security.capability",
        &CAP_NET_BIND_SERVICE_EP,
    );
    fs::remove_dir_all(r.join("tmp")).unwrap();
}

#[test]
fn umoci_repacked_layers_match_umoci_unpack() {
    let env = Env::new();
    let work = support::tempdir("umoci-build");
    let layout = work.path().join("layout");
    run_ok(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
    );
    run_ok(
        Command::new("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:img", layout.display())),
    );
    umoci_step(&layout, work.path(), base_rootfs);
    umoci_step(&layout, work.path(), second_rootfs);
    umoci_step(&layout, work.path(), third_rootfs);
    umoci_step(&layout, work.path(), fourth_rootfs);
    run_ok(
        Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:img", layout.display()))
            .arg(format!("docker://{}/diff/umoci:v1", env.reg.addr())),
    );
    let tars = layout_layers(&layout);
    assert_eq!(tars.len(), 4);
    let problems = compare_image(
        &env,
        "diff/umoci",
        &tars,
        &Options::default().ignore_mtime(".", "root of a multi-layer union: the top layer's ./"),
        Some(&Options::default()),
    );
    assert!(
        problems.is_empty(),
        "{} comparison(s) differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// (b) GNU tar layers in posix, gnu and ustar formats

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fmt {
    Posix,
    Gnu,
    Ustar,
}

impl Fmt {
    fn name(self) -> &'static str {
        match self {
            Fmt::Posix => "posix",
            Fmt::Gnu => "gnu",
            Fmt::Ustar => "ustar",
        }
    }
}

const GIB: u64 = 1 << 30;

/// A 1 GiB sparse file `<dir>/sparse`: data at the start, in the middle and at the end.
fn sparse_file(dir: &Path) {
    use std::os::unix::fs::FileExt as _;
    let file = fs::File::create(dir.join("sparse")).unwrap();
    file.set_len(GIB).unwrap();
    file.write_all_at(b"start", 0).unwrap();
    file.write_all_at(&[0xab; 8192], GIB / 2).unwrap();
    file.write_all_at(b"end", GIB - 3).unwrap();
}

/// A tree exercising what format `f` can store, under `<f>/` (so the three layers can be
/// stacked), plus `shared` (overwritten by each layer).
fn gnu_tar_tree(root: &Path, f: Fmt) {
    let b = root.join(f.name());
    fs::create_dir_all(&b).unwrap();
    write(
        &root.join("shared"),
        format!("written by the {} layer\n", f.name()),
    );

    // Modes 0000-7777.
    for (i, mode) in [0o000, 0o644, 0o777, 0o4755, 0o2755, 0o1777, 0o7777, 0o6711]
        .iter()
        .enumerate()
    {
        let p = b.join(format!("mode-{mode:04o}-{i}"));
        write(&p, format!("mode {mode:o}\n"));
        chmod(&p, *mode);
    }
    fs::create_dir(b.join("sticky-dir")).unwrap();
    write(&b.join("sticky-dir/f"), "in a sticky dir\n");
    chmod(&b.join("sticky-dir"), 0o1777);
    fs::create_dir(b.join("locked-dir")).unwrap();
    write(&b.join("locked-dir/f"), "in a 0000 dir\n");
    // Owners beyond 65535.
    write(&b.join("big-owner"), "uid 100000\n");
    lchown(&b.join("big-owner"), 100_000, 100_000);
    std::os::unix::fs::symlink("big-owner", b.join("big-owner-link")).unwrap();
    lchown(&b.join("big-owner-link"), 200_000, 65_536);
    // Devices with large major/minor, a fifo, hard links, symlinks.
    mknod(&b.join("char"), libc::S_IFCHR, 0o600, 4095, 1_048_575);
    mknod(&b.join("block"), libc::S_IFBLK, 0o640, 259, 65_536);
    mknod(&b.join("fifo"), libc::S_IFIFO, 0o620, 0, 0);
    write(&b.join("hard-a"), "one inode, three names\n");
    fs::hard_link(b.join("hard-a"), b.join("hard-b")).unwrap();
    fs::create_dir(b.join("hdir")).unwrap();
    fs::hard_link(b.join("hard-a"), b.join("hdir/hard-c")).unwrap();
    std::os::unix::fs::symlink("/does/not/exist", b.join("dangling")).unwrap();
    std::os::unix::fs::symlink("loop-b", b.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", b.join("loop-b")).unwrap();
    // Names at the ustar limits: a 100-byte name, a 155-byte prefix.
    write(&b.join("n".repeat(100)), "100-byte name\n");
    // GNU tar names members `./<f>/...`: the prefix `./<f>/p..p/q..q` is exactly 155 bytes.
    let used = 2 + f.name().len() + 1;
    let prefix_dir = format!("{}/{}", "p".repeat(50), "q".repeat(155 - used - 51));
    assert_eq!(used + prefix_dir.len(), 155);
    write(
        &b.join(&prefix_dir).join("m".repeat(100)),
        "155-byte prefix + 100-byte name\n",
    );
    // Times before 1970 cannot be written in ustar (octal fields are unsigned); after 2038 can.
    write(&b.join("future"), "2100\n");
    set_mtime(&b.join("future"), POST_2038);
    // Non-UTF-8 names.
    write(&b.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")), "0xe9\n");
    write(&b.join(OsStr::from_bytes(b"bytes-\xff\xfe")), "0xff 0xfe\n");

    if f != Fmt::Ustar {
        // Long names and targets: 255-byte components, 4095-byte symlink targets.
        let long = "l".repeat(255);
        write(&b.join(&long), "255-byte name\n");
        fs::create_dir(b.join(format!("{}dir", "d".repeat(252)))).unwrap();
        write(
            &b.join(format!("{}dir", "d".repeat(252))).join(&long),
            "two 255-byte components\n",
        );
        let target: String = "t/".repeat(2047) + "x";
        assert_eq!(target.len(), 4095);
        std::os::unix::fs::symlink(&target, b.join("long-target")).unwrap();
        std::os::unix::fs::symlink(&long, b.join("link-to-long")).unwrap();
        write(&b.join("past"), "1960\n");
        set_mtime(&b.join("past"), PRE_1970);
    }
    if f == Fmt::Posix {
        // umoci cannot unpack GNU old-style sparse members (typeflag 'S': "unknown typeflag"),
        // so only the posix layer (PAX sparse 1.0) has one for the comparison with umoci; the
        // gnu format's sparse file is checked against its source tree instead.
        sparse_file(&b);
    }
    if f == Fmt::Posix {
        // Only the posix format stores xattrs.
        write(&b.join("xattrs"), "xattrs\n");
        lsetxattr(&b.join("xattrs"), "user.x", b"value");
        lsetxattr(&b.join("xattrs"), "user.binary", &[0, 1, 2, 0xff]);
        lsetxattr(&b.join("hdir"), "user.dir", b"dir xattr");
        write(&b.join("capped"), "cap_net_bind_service=ep\n");
        lsetxattr(
            &b.join("capped"),
            "security.capability",
            &CAP_NET_BIND_SERVICE_EP,
        );
    }
    chmod(&b.join("locked-dir"), 0o000);
    settle_dirs(root, T0);
    set_mtime(&b.join("big-owner-link"), T0 + 5);
}

/// `tar --format=F -c` of `root` (members `./...`, sorted, numeric owners).
fn gnu_tar(root: &Path, f: Fmt) -> Vec<u8> {
    let mut cmd = Command::new("tar");
    cmd.arg(format!("--format={}", f.name()))
        .args(["--numeric-owner", "--sort=name", "-C"])
        .arg(root)
        .args(["-cf", "-"]);
    if f != Fmt::Ustar {
        cmd.arg("--sparse");
    }
    if f == Fmt::Posix {
        cmd.args([
            "--xattrs",
            "--xattrs-include=*",
            "--pax-option=delete=atime,delete=ctime",
        ]);
    }
    cmd.arg(".");
    let out = cmd.output().expect("run tar");
    assert!(
        out.status.success(),
        "tar --format={} failed: {}",
        f.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The on-disk size of the sparse files in a tree.
fn sparse_usage(root: &Path) -> Vec<(PathBuf, u64, u64)> {
    tree::scan(root)
        .into_iter()
        .filter(|(p, n)| n.kind == "file" && p.ends_with("sparse"))
        .map(|(p, n)| {
            let md = fs::metadata(root.join(&p)).unwrap();
            (p, n.size, md.blocks() * 512)
        })
        .collect()
}

#[test]
fn gnu_tar_formats_match_umoci_unpack() {
    let env = Env::new();
    let mut tars = Vec::new();
    for f in [Fmt::Posix, Fmt::Gnu, Fmt::Ustar] {
        let src = support::tempdir(&format!("gnutar-{}", f.name()));
        gnu_tar_tree(src.path(), f);
        let tar = gnu_tar(src.path(), f);
        eprintln!("{} layer: {} bytes of tar", f.name(), tar.len());
        // For debugging: STRATA_DIFF_DUMP=DIR keeps the layer tars.
        if let Some(dir) = std::env::var_os("STRATA_DIFF_DUMP") {
            fs::write(Path::new(&dir).join(format!("{}.tar", f.name())), &tar).expect("dump");
        }
        tars.push(tar);
    }
    // One image per format (the layer dir is the whole image; plain tar, umoci 0.4.7 has no
    // zstd) and one stacking all three (gzip).
    let mut problems = Vec::new();
    let mut single_dirs = Vec::new();
    for (f, tar) in [Fmt::Posix, Fmt::Gnu, Fmt::Ustar].iter().zip(&tars) {
        let img = ImageBuilder::new(Flavor::Oci)
            .layer(Layer::from_tar(tar.clone()), Compression::None)
            .build();
        let repo = format!("diff/gnutar-{}", f.name());
        env.push.image(&repo, Some("v1"), &img);
        problems.extend(compare_image(
            &env,
            &repo,
            std::slice::from_ref(tar),
            &Options::default(),
            None,
        ));
        let graph = Graph::of(&env.strata.inspect(&env.r(&format!("{repo}:v1"))));
        if *f == Fmt::Posix {
            let usage = sparse_usage(&graph.upper);
            assert_eq!(usage.len(), 1, "{}: the sparse file", f.name());
            for (p, size, disk) in usage {
                assert_eq!(size, GIB);
                assert!(
                    disk < 1 << 20,
                    "{} layer: {} takes {disk} bytes of disk for {size} bytes: not sparse",
                    f.name(),
                    p.display()
                );
            }
        }
        single_dirs.push(graph.upper);
    }
    // GNU old-style sparse members ('S'), which umoci cannot read: strata's result against
    // the source tree GNU tar read (root mtime aside: tar's ./ is the source dir's).
    {
        let src = support::tempdir("gnutar-sparse");
        fs::create_dir(src.path().join("s")).unwrap();
        sparse_file(&src.path().join("s"));
        settle_dirs(src.path(), T0);
        let tar = gnu_tar(src.path(), Fmt::Gnu);
        assert!(
            tar.len() < 1 << 20,
            "GNU tar --sparse stored {} bytes",
            tar.len()
        );
        let img = ImageBuilder::new(Flavor::Oci)
            .layer(Layer::from_tar(tar), Compression::Zstd)
            .build();
        env.push.image("diff/gnutar-sparse", Some("v1"), &img);
        let reference = env.r("diff/gnutar-sparse:v1");
        let out = env.strata.pull(&reference);
        assert!(out.status.success(), "pull failed:\n{}", out.describe());
        let graph = Graph::of(&env.strata.inspect(&reference));
        let diffs = tree::diff(
            "strata layer",
            &graph.upper,
            "GNU tar's source",
            src.path(),
            &Options::default(),
        );
        if !diffs.is_empty() {
            problems.push(format!("gnu sparse:\n  {}", diffs.join("\n  ")));
        }
        for (p, size, disk) in sparse_usage(&graph.upper) {
            assert_eq!(size, GIB);
            assert!(
                disk < 1 << 20,
                "gnu sparse: {} takes {disk} bytes of disk for {size} bytes: not sparse",
                p.display()
            );
        }
    }

    let mut b = ImageBuilder::new(Flavor::Oci);
    for tar in &tars {
        b = b.layer(Layer::from_tar(tar.clone()), Compression::Gzip);
    }
    env.push.image("diff/gnutar-stack", Some("v1"), &b.build());
    problems.extend(compare_image(
        &env,
        "diff/gnutar-stack",
        &tars,
        &Options::default().ignore_mtime(".", "root of a multi-layer union: the top layer's ./"),
        None,
    ));
    // The stack's layer dirs hold what the one-layer images' do (compared with umoci above).
    let graph = Graph::of(&env.strata.inspect(&env.r("diff/gnutar-stack:v1")));
    let mut stack_dirs = graph.layers_top_first();
    stack_dirs.reverse();
    for (i, (a, b)) in stack_dirs.iter().zip(&single_dirs).enumerate() {
        let diffs = tree::diff("stack layer", a, "one-layer image", b, &Options::default());
        if !diffs.is_empty() {
            problems.push(format!("stack layer {i}:\n  {}", diffs.join("\n  ")));
        }
    }
    assert!(
        problems.is_empty(),
        "{} comparison(s) differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// (c) Binary xattr values holding newlines and NULs (GNU tar, posix format)

/// `security.capability` v2, effective, permitted CAP_DAC_OVERRIDE | CAP_FOWNER: 0x0a, a
/// newline, in the PAX record's value.
const CAP_DAC_OVERRIDE_FOWNER_EP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    0x0a, 0x00, 0x00, 0x00, // permitted (low): bits 1 and 3
    0x00, 0x00, 0x00, 0x00, // inheritable (low)
    0x00, 0x00, 0x00, 0x00, // permitted (high)
    0x00, 0x00, 0x00, 0x00, // inheritable (high)
];

/// PAX records are split by their length prefixes, not by newlines: xattr values with 0x0a
/// and 0x00 bytes (which strata's former tar reader refused) come out byte for byte, as umoci
/// (Go's archive/tar) unpacks them, and the members after them are framed alike.
#[test]
fn binary_xattr_values_with_newlines_match_umoci_unpack() {
    let env = Env::new();
    let src = support::tempdir("gnutar-binary-xattrs");
    let root = src.path();
    let user_value: &[u8] = b"\n\0line one\nline two\0\n=\n";
    write(
        &root.join("bin/user-x"),
        "user.* xattr with 0x0a and 0x00\n",
    );
    lsetxattr(&root.join("bin/user-x"), "user.bin", user_value);
    write(&root.join("bin/capped"), "security.capability with 0x0a\n");
    lsetxattr(
        &root.join("bin/capped"),
        "security.capability",
        &CAP_DAC_OVERRIDE_FOWNER_EP,
    );
    write(&root.join("bin/z-after"), "after them\n");
    settle_dirs(root, T0);
    let tar = gnu_tar(root, Fmt::Posix);
    // GNU tar stores the values raw (a newline inside a record).
    for value in [user_value, &CAP_DAC_OVERRIDE_FOWNER_EP] {
        assert!(
            tar.windows(value.len()).any(|w| w == value),
            "GNU tar did not store {value:?} raw"
        );
    }
    let img = ImageBuilder::new(Flavor::Oci)
        .layer(Layer::from_tar(tar.clone()), Compression::Gzip)
        .build();
    env.push.image("diff/binary-xattrs", Some("v1"), &img);
    let problems = compare_image(
        &env,
        "diff/binary-xattrs",
        std::slice::from_ref(&tar),
        &Options::default(),
        None,
    );
    assert!(
        problems.is_empty(),
        "{} comparison(s) differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Byte for byte, whatever umoci does.
    let graph = Graph::of(&env.strata.inspect(&env.r("diff/binary-xattrs:v1")));
    assert_eq!(
        tree::get_xattr(&graph.upper.join("bin/user-x"), "user.bin").as_deref(),
        Some(user_value)
    );
    assert_eq!(
        tree::get_xattr(&graph.upper.join("bin/capped"), "security.capability").as_deref(),
        Some(&CAP_DAC_OVERRIDE_FOWNER_EP[..])
    );
    assert_eq!(
        fs::read(graph.upper.join("bin/z-after")).unwrap(),
        b"after them\n"
    );
}

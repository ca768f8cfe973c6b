//! Flatten mode: layers applied on top of each other into one directory. Run as root (the
//! overlay comparison mounts; the unprivileged test re-runs itself as nobody).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt as _;
use std::path::Path;

use super::super::Flattener;
use super::*;

fn flat_opts() -> ApplyOptions {
    ApplyOptions {
        flatten: true,
        ..root_opts()
    }
}

impl Scratch {
    /// Flattens the layers, bottom first, into `dest`.
    fn flatten(&self, layers: &[Vec<u8>]) -> Result<(), ArchiveError> {
        let mut f = Flattener::new(&self.dest, &flat_opts());
        for layer in layers {
            f.apply_layer(&layer[..])?;
        }
        f.finish()
    }

    fn names(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.p(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn layer(entries: Vec<E>) -> Vec<u8> {
    let mut t = Tar::new();
    for m in entries {
        t.add(m);
    }
    t.finish()
}

fn wh(name: &str) -> E {
    file(name, b"")
}

/// Every path below `root` with its type, mode, owner, content or target, device and user.*
/// xattrs (what a merged view and a flattened tree must agree on).
fn scan(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let what = if ft.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!("file {:?}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
            } else if ft.is_char_device() {
                format!("char {:x}", md.rdev())
            } else if ft.is_fifo() {
                "fifo".to_string()
            } else {
                "other".to_string()
            };
            let mut xattrs = Vec::new();
            let mut names = vec![0u8; 4096];
            let n = rustix::fs::llistxattr(&p, &mut names[..]).unwrap_or(0);
            for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
                let name = String::from_utf8_lossy(name).into_owned();
                if name.starts_with("user.") {
                    xattrs.push(format!("{name}={:?}", xattr(&p, &name)));
                }
            }
            xattrs.sort();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(
                rel,
                format!(
                    "{what} {:o} {}:{} {}",
                    md.mode() & 0o7777,
                    md.uid(),
                    md.gid(),
                    xattrs.join(",")
                ),
            );
        }
    }
    out
}

/// Applies the layers in overlay mode into their own directories and mounts them as one
/// read-only overlay; returns the mount's tree. The reference for flatten mode.
fn overlay_view(layers: &[Vec<u8>]) -> BTreeMap<String, String> {
    let tmp = tempfile::tempdir().unwrap();
    let mut lowers = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = tmp.path().join(format!("l{i}"));
        fs::create_dir(&d).unwrap();
        apply_layer(&l[..], &d, &root_opts()).unwrap();
        lowers.push(d.display().to_string());
    }
    lowers.reverse();
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let opts = format!("lowerdir={}", lowers.join(":"));
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        Some(std::ffi::CString::new(opts).unwrap().as_c_str()),
    )
    .unwrap();
    let view = scan(&merged);
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH).unwrap();
    view
}

/// Flattening the layers gives exactly the tree an overlay mount of them shows.
fn assert_same_as_overlay(layers: &[Vec<u8>]) -> Scratch {
    let s = Scratch::new();
    s.flatten(layers).unwrap();
    let flat = scan(&s.dest);
    let view = overlay_view(layers);
    if flat != view {
        let mut msg = String::from("flatten differs from the overlay mount:\n");
        for (k, v) in &flat {
            match view.get(k) {
                Some(w) if w == v => {}
                Some(w) => msg.push_str(&format!("  {k}: flat {v} | overlay {w}\n")),
                None => msg.push_str(&format!("  {k}: only flat: {v}\n")),
            }
        }
        for (k, w) in &view {
            if !flat.contains_key(k) {
                msg.push_str(&format!("  {k}: only overlay: {w}\n"));
            }
        }
        panic!("{msg}");
    }
    s.assert_canary_untouched();
    s
}

fn base() -> Vec<u8> {
    layer(base_entries())
}

fn base_entries() -> Vec<E> {
    vec![
        dir("etc"),
        file("etc/keep", b"keep"),
        file("etc/gone", b"gone"),
        dir("tree"),
        dir("tree/sub"),
        file("tree/sub/deep", b"deep"),
        file("tree/top", b"top"),
        dir("opq"),
        file("opq/old", b"old"),
        dir("opq/olddir"),
        file("opq/olddir/f", b"f"),
        dir("opq/kept"),
        file("opq/kept/lower", b"lower"),
    ]
}

#[test]
fn whiteouts_delete_lower_files_and_trees() {
    let l2 = layer(vec![
        dir("etc"),
        wh("etc/.wh.gone"),
        wh(".wh.tree"),
        // A whiteout of a missing name is fine; nothing is created for it.
        wh("etc/.wh.never"),
    ]);
    let s = assert_same_as_overlay(&[base(), l2]);
    assert_eq!(s.read("etc/keep"), b"keep");
    assert!(!s.exists("etc/gone") && !s.exists("tree") && !s.exists("etc/never"));
    for name in ["etc/.wh.gone", ".wh.tree"] {
        assert!(!s.exists(name), "{name}");
    }
    // Not even its parent (an overlay-mode layer has a directory there; the overlay mount
    // then lists a name it cannot look up, so it is no reference here).
    let s = Scratch::new();
    s.flatten(&[base(), layer(vec![wh("missing/.wh.x")])])
        .unwrap();
    assert!(!s.exists("missing"), "nothing is created for a whiteout");
}

#[test]
fn own_entries_win_over_whiteouts_in_either_order() {
    let l2 = layer(vec![
        // Entry first.
        dir("etc"),
        file("etc/gone", b"new"),
        wh("etc/.wh.gone"),
        // Whiteout first.
        wh(".wh.tree"),
        dir("tree"),
        file("tree/added", b"added"),
        // Only an implicit parent of a later entry.
        wh(".wh.opq"),
        file("opq/kept/new", b"new"),
    ]);
    let s = assert_same_as_overlay(&[base(), l2]);
    assert_eq!(s.read("etc/gone"), b"new");
    assert_eq!(s.read("tree/added"), b"added");
    // The whiteouts still delete the lower directories: only the layer's own entries are
    // left in them (the overlay-mode layer has them opaque).
    assert_eq!(s.names("tree"), ["added"]);
    assert_eq!(s.names("opq"), ["kept"]);
    assert_eq!(s.names("opq/kept"), ["new"]);
    assert_eq!(s.read("opq/kept/new"), b"new");
    // Entry first, the same.
    let l2 = layer(vec![
        dir("tree"),
        file("tree/added", b"added"),
        file("opq/kept/new", b"new"),
        wh(".wh.tree"),
        wh(".wh.opq"),
    ]);
    let s = assert_same_as_overlay(&[base(), l2]);
    assert_eq!(s.names("tree"), ["added"]);
    assert_eq!(s.names("opq"), ["kept"]);
    assert_eq!(s.names("opq/kept"), ["new"]);
}

#[test]
fn entries_apply_in_order_within_a_layer() {
    // A non-directory replaces the lower directory whole, so a directory member after it is
    // a new one (overlay mode makes it opaque), with nothing of the lower one; also when an
    // opaque marker was below it.
    let l2 = layer(vec![
        file("tree", b"file"),
        dir("tree"),
        file("tree/new", b"new"),
        wh("opq/kept/.wh..wh..opq"),
        symlink("opq", "etc"),
        dir("opq"),
    ]);
    let s = assert_same_as_overlay(&[base(), l2]);
    assert_eq!(s.names("tree"), ["new"]);
    assert_eq!(s.names("opq"), Vec::<String>::new());
    assert_eq!(s.names("etc"), ["gone", "keep"]);
}

#[test]
fn opaque_clears_lower_children_but_keeps_own_entries() {
    let l2 = layer(vec![
        dir("opq"),
        file("opq/before", b"before"),
        dir("opq/kept"),
        file("opq/kept/mine", b"mine"),
        wh("opq/.wh..wh..opq"),
        file("opq/after", b"after"),
        // A marker for a directory that does not exist yet makes it.
        wh("newdir/.wh..wh..opq"),
    ]);
    let s = assert_same_as_overlay(&[base(), l2]);
    assert_eq!(s.names("opq"), ["after", "before", "kept"]);
    // Below a kept directory, what the layer did not create goes too.
    assert_eq!(s.names("opq/kept"), ["mine"]);
    assert!(s.meta("newdir").is_dir());
    assert_eq!(s.names("newdir"), Vec::<String>::new());
    assert!(!s.exists("opq/.wh..wh..opq"));
    assert_eq!(xattr(&s.p("opq"), "trusted.overlay.opaque"), None);
}

#[test]
fn whiteouts_and_markers_through_symlinks_remove_nothing() {
    let s = Scratch::new();
    let canary = s.canary.to_str().unwrap().to_string();
    let l1 = layer(vec![
        dir("real"),
        file("real/victim", b"v"),
        symlink("link", "real"),
        symlink("host", &canary),
        symlink("up", "../.."),
    ]);
    let l2 = layer(vec![
        wh("link/.wh.victim"),
        wh("link/.wh..wh..opq"),
        wh("host/.wh.file"),
        wh("host/.wh..wh..opq"),
        wh("up/.wh.canary"),
        wh("up/canary/.wh.file"),
    ]);
    s.flatten(&[l1, l2]).unwrap();
    assert_eq!(s.read("real/victim"), b"v");
    assert!(s.meta("link").file_type().is_symlink());
    assert!(!s.exists(canary.trim_start_matches('/')));
    s.assert_canary_untouched();
}

#[test]
fn type_changes_across_layers() {
    let l1 = layer(vec![
        file("f2d", b"file"),
        dir("d2f"),
        file("d2f/child", b"c"),
        symlink("l2d", "target"),
        dir("target"),
        file("target/t", b"t"),
        dir("d2l"),
        file("d2l/x", b"x"),
        file("f2l", b"f"),
    ]);
    let l2 = layer(vec![
        dir("f2d"),
        file("f2d/in", b"in"),
        file("d2f", b"now a file"),
        // Replacing the symlink must not write into its target.
        dir("l2d"),
        file("l2d/own", b"own"),
        symlink("d2l", "target"),
        symlink("f2l", "d2f"),
    ]);
    let s = assert_same_as_overlay(&[l1, l2]);
    assert_eq!(s.read("f2d/in"), b"in");
    assert_eq!(s.read("d2f"), b"now a file");
    assert!(s.meta("l2d").is_dir());
    assert_eq!(s.names("target"), ["t"]);
    assert_eq!(fs::read_link(s.p("d2l")).unwrap(), Path::new("target"));
}

#[test]
fn directory_over_directory_takes_the_new_metadata_and_keeps_content() {
    let s = Scratch::new();
    let mut l1 = Tar::new();
    l1.pax(&[("SCHILY.xattr.user.old", b"1")])
        .add(dir("d").mode(0o700).owner(1, 1).mtime(1_000));
    l1.add(file("d/f", b"f"));
    let mut l2 = Tar::new();
    l2.pax(&[("SCHILY.xattr.user.new", b"2")])
        .add(dir("d").mode(0o750).owner(2, 3).mtime(2_000));
    let layers = [l1.finish(), l2.finish()];
    let view = overlay_view(&layers);
    s.flatten(&layers).unwrap();
    assert_eq!(scan(&s.dest), view);
    let md = s.meta("d");
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
        (0o750, 2, 3, 2_000)
    );
    assert_eq!(xattr(&s.p("d"), "user.old"), None);
    assert_eq!(xattr(&s.p("d"), "user.new").as_deref(), Some(&b"2"[..]));
    assert_eq!(s.read("d/f"), b"f");
}

#[test]
fn hardlinks_may_point_into_lower_layers_confined() {
    let s = Scratch::new();
    let canary = s.canary.join("file");
    let l1 = layer(vec![dir("bin"), file("bin/busybox", b"bb")]);
    let l2 = layer(vec![
        hardlink("bin/sh", "bin/busybox"),
        hardlink("bin/escape", canary.to_str().unwrap()),
    ]);
    let err = s.flatten(&[l1.clone(), l2]).unwrap_err().to_string();
    assert!(
        err.contains("bin/escape") && err.contains("does not exist"),
        "{err}"
    );
    s.assert_canary_untouched();
    let s = Scratch::new();
    s.flatten(&[l1, layer(vec![hardlink("bin/sh", "bin/busybox")])])
        .unwrap();
    assert_eq!(s.meta("bin/sh").ino(), s.meta("bin/busybox").ino());
}

#[test]
fn entries_through_symlinks_are_tracked_by_real_path() {
    // `var/run -> /run`: `var/run/x` lands at `run/x`, and the opaque marker on `run` in the
    // same layer keeps it (what a layer created is known by real path).
    let l1 = layer(vec![dir("run"), file("run/old", b"old")]);
    let l2 = layer(vec![
        dir("var"),
        symlink("var/run", "/run"),
        file("var/run/x", b"x"),
        dir("run"),
        wh("run/.wh..wh..opq"),
    ]);
    let s = assert_same_as_overlay(&[l1.clone(), l2]);
    assert_eq!(s.names("run"), ["x"]);

    // A symlink of a lower layer is followed too, as umoci and containerd do (an overlay
    // mount would show a directory `var/run` made for the upper layer's `var/run/x`).
    let l2 = layer(vec![dir("var"), symlink("var/run", "/run")]);
    let l3 = layer(vec![file("var/run/y", b"y"), wh("run/.wh.old")]);
    let s = Scratch::new();
    s.flatten(&[l1, l2, l3]).unwrap();
    assert_eq!(s.names("run"), ["y"]);
    assert!(s.meta("var/run").file_type().is_symlink());
}

#[test]
fn unlisted_directories_keep_their_times() {
    let s = Scratch::new();
    let l1 = layer(vec![
        dir(".").mtime(1_100),
        dir("a").mtime(1_000),
        file("a/old", b"old"),
        dir("b").mtime(2_000),
        file("b/old", b"old"),
        dir("c").mtime(3_000),
        dir("c/d").mtime(4_000),
        file("c/d/old", b"old"),
    ]);
    // Changes below a, b, c/d and the root without listing them; c is listed.
    let l2 = layer(vec![
        file("a/new", b"new"),
        wh("b/.wh.old"),
        dir("c").mtime(5_000),
        wh("c/.wh..wh..opq"),
        file("top", b"top"),
    ]);
    s.flatten(&[l1, l2]).unwrap();
    assert_eq!(s.names("a"), ["new", "old"]);
    assert_eq!(s.names("b"), Vec::<String>::new());
    assert_eq!(s.names("c"), Vec::<String>::new());
    for (p, mtime) in [(".", 1_100), ("a", 1_000), ("b", 2_000), ("c", 5_000)] {
        assert_eq!(s.meta(p).mtime(), mtime, "{p}");
    }
}

#[test]
fn directory_modes_are_restored_after_all_layers() {
    let s = Scratch::new();
    let l1 = layer(vec![dir("ro").mode(0o555), file("ro/a", b"a")]);
    let l2 = layer(vec![file("ro/b", b"b"), wh("ro/.wh.a")]);
    s.flatten(&[l1, l2]).unwrap();
    assert_eq!(s.names("ro"), ["b"]);
    assert_eq!(s.meta("ro").mode() & 0o7777, 0o555);
}

#[test]
fn overlay_mode_is_unchanged_by_the_option_default() {
    assert!(!ApplyOptions::default().flatten);
}

/// Set by the parent test: the directory the child (run as nobody) flattens into.
const CHILD_ENV: &str = "STRATA_FLATTEN_UNPRIVILEGED_DIR";

/// The unprivileged half of `unprivileged_flatten`; does nothing unless that test started it.
#[test]
fn unprivileged_child() {
    let Some(dir_var) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let root = Path::new(&dir_var);
    assert!(!rustix::process::geteuid().is_root());
    let opts = ApplyOptions {
        flatten: true,
        ..ApplyOptions::default()
    };
    assert!(!opts.same_owner);
    let mut l1 = Tar::new();
    l1.add(dir("ro").mode(0o555))
        .add(file("ro/a", b"a").owner(0, 0))
        .pax(&[
            ("SCHILY.xattr.trusted.x", b"t"),
            ("SCHILY.xattr.user.x", b"u"),
        ])
        .add(file("x", b"x").mode(0o4755))
        .add(e(b'6', "fifo", 0o600));
    let l2 = layer(vec![
        file("ro/b", b"b"),
        wh("ro/.wh.a"),
        dir("ro/sub").mode(0o500),
    ]);
    let out = root.join("ok");
    fs::create_dir(&out).unwrap();
    let mut f = Flattener::new(&out, &opts);
    f.apply_layer(&l1.finish()[..]).unwrap();
    f.apply_layer(&l2[..]).unwrap();
    f.finish().unwrap();
    let names: Vec<_> = fs::read_dir(out.join("ro"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["b", "sub"]);
    let md = |p: &str| fs::symlink_metadata(out.join(p)).unwrap();
    assert_eq!(md("ro").permissions().mode() & 0o7777, 0o555);
    assert_eq!(md("ro/sub").permissions().mode() & 0o7777, 0o500);
    assert_eq!(md("x").mode() & 0o7777, 0o4755);
    assert_eq!(md("x").uid(), rustix::process::geteuid().as_raw());
    assert!(md("fifo").file_type().is_fifo());
    assert_eq!(xattr(&out.join("x"), "user.x").as_deref(), Some(&b"u"[..]));

    // A device node cannot be made: a clear error naming it.
    let bad = root.join("bad");
    fs::create_dir(&bad).unwrap();
    let dev = layer(vec![e(b'3', "dev/null", 0o666).dev(1, 3)]);
    let err = Flattener::new(&bad, &opts)
        .apply_layer(&dev[..])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dev/null") && err.contains("needs root"),
        "{err}"
    );
}

/// Flattening as an unprivileged user (nobody): no chown, `trusted.*` xattrs skipped,
/// restrictive directories still changeable by later layers, devices a clear error.
#[test]
fn unprivileged_flatten() {
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(tmp.path(), Some(65534), Some(65534)).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "archive::tests::flatten::unprivileged_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, tmp.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run:\n{text}"
    );
    assert!(tmp.path().join("ok/ro/b").exists());
}

/// Path -> mtime (seconds, nanoseconds) of everything below `root`.
fn mtimes(root: &Path) -> BTreeMap<String, (i64, i64)> {
    scan(root)
        .keys()
        .map(|rel| {
            let md = fs::symlink_metadata(root.join(rel)).unwrap();
            (rel.clone(), (md.mtime(), md.mtime_nsec()))
        })
        .collect()
}

/// Layers applied in overlay mode, written back as tars and flattened, give the same tree as
/// the original layers flattened: whiteouts, opaque markers, hardlinks, xattrs, devices,
/// long names and times survive the round trip.
#[test]
fn overlay_layer_directories_round_trip_through_tar() {
    let long = format!("deep/{}/{}", "d".repeat(90), "f".repeat(120));
    let mut l1 = Tar::new();
    l1.add(dir(".").mtime(1_100))
        .add(dir("deep"))
        .add(dir(&format!("deep/{}", "d".repeat(90))))
        .pax(&[("path", long.as_bytes()), ("mtime", b"1234.5")])
        .add(file("placeholder", b"long"))
        .pax(&[("SCHILY.xattr.user.a", b"1")])
        .add(file("x", b"x").owner(7, 8).mode(0o4711))
        .add(hardlink("x2", "x"))
        .pax(&[("linkpath", "t".repeat(150).as_bytes())])
        .add(symlink("s", "placeholder"))
        .add(e(b'3', "null", 0o666).dev(1, 3))
        .add(e(b'6', "fifo", 0o600));
    for entry in base_entries() {
        l1.add(entry);
    }
    let l2 = layer(vec![
        dir("etc"),
        wh("etc/.wh.gone"),
        wh(".wh.tree"),
        dir("opq"),
        wh("opq/.wh..wh..opq"),
        dir("opq/kept"),
        file("opq/kept/mine", b"mine"),
        wh(".wh.x2"),
    ]);
    let layers = [l1.finish(), l2];

    let want = Scratch::new();
    want.flatten(&layers).unwrap();
    assert_eq!(
        fs::read(want.p(&long)).unwrap(),
        b"long",
        "the long name made it"
    );

    // Overlay-mode layer directories, written back as tars.
    let tmp = tempfile::tempdir().unwrap();
    let mut tars = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = tmp.path().join(format!("l{i}"));
        fs::create_dir(&d).unwrap();
        apply_layer(&l[..], &d, &root_opts()).unwrap();
        let mut out = Vec::new();
        let n = super::super::write_layer_tar(&d, &mut out, i == 0).unwrap();
        assert!(n > 5, "{n} members");
        tars.push(out);
    }
    let got = Scratch::new();
    got.flatten(&tars).unwrap();
    assert_eq!(scan(&got.dest), scan(&want.dest));
    assert_eq!(mtimes(&got.dest), mtimes(&want.dest));
    assert_eq!(got.meta("x").nlink(), 1, "x2 was whited out");
    assert_eq!(got.names("opq"), ["kept"]);
    assert_eq!(fs::read_link(got.p("s")).unwrap().as_os_str().len(), 150);
}

//! Real mounts. They need root (CAP_SYS_ADMIN); without it each test prints a notice and passes.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::*;

fn privileged() -> bool {
    match check_privileges() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipping mount test: {e}");
            false
        }
    }
}

/// Lazily unmounts the target on drop, so a failing test leaves nothing mounted.
struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        while unmount(&self.0, true).is_ok() {}
    }
}

/// A tempdir with `n` layers `l<i>/` holding `f<i>` (and `shared` saying `i`), plus u/, w/, m/.
struct Layers {
    dir: tempfile::TempDir,
    lower: Vec<PathBuf>,
}

impl Layers {
    fn new(n: usize) -> Self {
        Self::create(n, tempfile::tempdir().unwrap())
    }

    /// On tmpfs when there is one: creating hundreds of layers on a journaled disk takes seconds.
    fn many(n: usize) -> Self {
        let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir());
        Self::create(n, dir.unwrap())
    }

    fn create(n: usize, dir: tempfile::TempDir) -> Self {
        let lower = (0..n)
            .map(|i| {
                let l = dir.path().join(format!("l{i}"));
                fs::create_dir(&l).unwrap();
                fs::write(l.join(format!("f{i}")), i.to_string()).unwrap();
                fs::write(l.join("shared"), i.to_string()).unwrap();
                l
            })
            .collect();
        for d in ["u", "w", "m"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        Self { dir, lower }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn spec(&self, upper: bool) -> OverlaySpec {
        OverlaySpec {
            lower: self.lower.clone(),
            upper: upper.then(|| (self.path("u"), self.path("w"))),
            target: self.path("m"),
            userxattr: false,
            legacy: None,
        }
    }

    fn assert_all_visible(&self) {
        let m = self.path("m");
        for i in 0..self.lower.len() {
            let got = fs::read_to_string(m.join(format!("f{i}")));
            assert_eq!(
                got.ok().as_deref(),
                Some(i.to_string().as_str()),
                "layer {i}"
            );
        }
        // The nearest layer (index 0) wins.
        assert_eq!(fs::read_to_string(m.join("shared")).unwrap(), "0");
    }
}

#[test]
fn mount_with_upper_shows_layers_and_writes_to_upper() {
    if !privileged() {
        return;
    }
    let t = Layers::new(5);
    let spec = t.spec(true);
    let _g = Guard(spec.target.clone());
    assert_eq!(mount_overlay(&spec).unwrap(), MountMethod::NewApi);
    assert!(is_mounted(&spec.target).unwrap());
    let sys = LinuxMount::default();
    assert_eq!(sys.mount_root(&spec.target).unwrap(), MountRoot::Overlay);
    assert_eq!(
        sys.mount_root(&t.path("m/f0")).unwrap(),
        MountRoot::NotMounted
    );
    t.assert_all_visible();
    fs::write(t.path("m/new"), "hello").unwrap();
    fs::write(t.path("m/f3"), "changed").unwrap();
    assert_eq!(fs::read_to_string(t.path("u/new")).unwrap(), "hello");
    assert_eq!(fs::read_to_string(t.path("u/f3")).unwrap(), "changed");
    assert_eq!(
        fs::read_to_string(t.path("l3/f3")).unwrap(),
        "3",
        "lower untouched"
    );

    unmount(&spec.target, false).unwrap();
    assert!(!is_mounted(&spec.target).unwrap());
    assert_eq!(sys.mount_root(&spec.target).unwrap(), MountRoot::NotMounted);
    assert!(!t.path("m/f0").exists());
    assert!(matches!(
        unmount(&spec.target, false),
        Err(MountError::NotMounted { .. })
    ));
}

#[test]
fn mount_200_layers_all_visible() {
    if !privileged() {
        return;
    }
    let t = Layers::many(200);
    let spec = t.spec(true);
    let _g = Guard(spec.target.clone());
    mount_overlay(&spec).unwrap();
    t.assert_all_visible();
}

#[test]
fn mount_500_layers_and_refuse_501() {
    if !privileged() {
        return;
    }
    let mut t = Layers::many(500);
    let spec = t.spec(true);
    let _g = Guard(spec.target.clone());
    mount_overlay(&spec).unwrap();
    assert!(t.path("m/f499").exists() && t.path("m/f0").exists());
    unmount(&spec.target, false).unwrap();

    t.lower.push(t.path("u"));
    let err = mount_overlay(&t.spec(true)).unwrap_err();
    assert!(
        matches!(
            err,
            MountError::TooManyLayers {
                count: 501,
                max: 500
            }
        ),
        "{err:?}"
    );
    assert!(!is_mounted(&spec.target).unwrap());
}

#[test]
fn read_only_lower_only_mount() {
    if !privileged() {
        return;
    }
    let t = Layers::new(2);
    let spec = t.spec(false);
    let _g = Guard(spec.target.clone());
    mount_overlay(&spec).unwrap();
    t.assert_all_visible();
    let err = fs::write(t.path("m/new"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    let one = OverlaySpec {
        lower: vec![t.lower[0].clone()],
        ..t.spec(false)
    };
    assert!(matches!(
        mount_overlay(&one),
        Err(MountError::InvalidSpec { .. })
    ));
}

#[test]
fn busy_unmount_needs_detach() {
    if !privileged() {
        return;
    }
    let t = Layers::new(2);
    let spec = t.spec(true);
    let _g = Guard(spec.target.clone());
    mount_overlay(&spec).unwrap();
    let open = fs::File::open(t.path("m/f1")).unwrap();
    let err = unmount(&spec.target, false).unwrap_err();
    assert!(matches!(err, MountError::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("in use"));
    assert!(is_mounted(&spec.target).unwrap());
    unmount(&spec.target, true).unwrap();
    assert!(!is_mounted(&spec.target).unwrap());
    drop(open);
}

#[test]
fn long_paths_need_no_string_limit() {
    if !privileged() {
        return;
    }
    // Layer paths over fsconfig's 255-byte string limit go in as fds.
    let t = Layers::new(0);
    let deep = t.path(&"d".repeat(250));
    let lower: Vec<PathBuf> = (0..2)
        .map(|i| {
            let l = deep.join(format!("l{i}"));
            fs::create_dir_all(&l).unwrap();
            fs::write(l.join(format!("f{i}")), i.to_string()).unwrap();
            l
        })
        .collect();
    assert!(lower[0].as_os_str().len() > 255);
    let spec = OverlaySpec {
        lower,
        ..t.spec(true)
    };
    let _g = Guard(spec.target.clone());
    assert_eq!(mount_overlay(&spec).unwrap(), MountMethod::NewApi);
    assert!(t.path("m/f1").exists());
}

#[test]
fn kernel_message_in_error() {
    if !privileged() {
        return;
    }
    // Overlayfs logs parse-time errors to the fs context; the 501st layer is one of them
    // (mount_overlay refuses it before asking, so drive the calls directly).
    let t = Layers::new(1);
    let sys = LinuxMount::default();
    let fs = sys.fsopen("overlay").unwrap();
    let dir = sys.open_dir(&t.lower[0]).unwrap();
    for _ in 0..MAX_LOWER_LAYERS {
        sys.fsconfig_set_fd(&fs, "lowerdir+", &dir).unwrap();
    }
    let err = sys.fsconfig_set_fd(&fs, "lowerdir+", &dir).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    let log = super::overlay::clean_log(sys.read_fs_log(&fs));
    assert_eq!(log, ["too many lower directories, limit is 500"]);
    assert!(sys.read_fs_log(&fs).is_empty(), "reading drains the log");
}

#[test]
fn create_error_names_target_and_step() {
    if !privileged() {
        return;
    }
    let t = Layers::new(2);
    // Upper and work on the same dir: refused at create (with the reason only in dmesg).
    let spec = OverlaySpec {
        upper: Some((t.path("u"), t.path("u"))),
        ..t.spec(true)
    };
    let _g = Guard(spec.target.clone());
    let err = mount_overlay(&spec).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "overlay at {}: fsconfig create: ",
            spec.target.display()
        )),
        "{msg}"
    );
    assert!(!is_mounted(&spec.target).unwrap());
}

/// `mount(2)` only, as on kernels without the new mount API.
fn legacy_only() -> LinuxMount {
    LinuxMount {
        new_api: false,
        ..LinuxMount::default()
    }
}

#[test]
fn string_layers_when_fds_are_refused() {
    if !privileged() {
        return;
    }
    // As on Linux 6.8-6.12: lowerdir+ as path strings, one fsconfig per layer.
    let sys = LinuxMount {
        fd_layers: false,
        ..LinuxMount::default()
    };
    let t = Layers::new(60);
    let spec = t.spec(true);
    let _g = Guard(spec.target.clone());
    assert_eq!(
        mount_overlay_with(&sys, &spec).unwrap(),
        MountMethod::NewApi
    );
    t.assert_all_visible();
    let entry = super::info::top_mount_at(&sys, &spec.target)
        .unwrap()
        .unwrap();
    assert_eq!(
        (entry.fs_type.as_str(), entry.source.as_str()),
        ("overlay", "overlay")
    );
    unmount(&spec.target, false).unwrap();

    // A path over 255 bytes cannot go as a string: mount(2) takes over.
    let deep = t.path(&"d".repeat(250));
    fs::create_dir(&deep).unwrap();
    let mut long = t.spec(true);
    long.lower[59] = deep;
    assert_eq!(
        mount_overlay_with(&sys, &long).unwrap(),
        MountMethod::Legacy
    );
}

#[test]
fn legacy_mount_with_absolute_paths_and_escapes() {
    if !privileged() {
        return;
    }
    let t = Layers::new(3);
    let odd = t.path("a:b,c");
    fs::rename(&t.lower[1], &odd).unwrap();
    let mut spec = t.spec(true);
    spec.lower[1] = odd;
    let _g = Guard(spec.target.clone());
    let method = mount_overlay_with(&legacy_only(), &spec).unwrap();
    assert_eq!(method, MountMethod::Legacy);
    t.assert_all_visible();
    fs::write(t.path("m/new"), "x").unwrap();
    assert!(t.path("u/new").exists());
}

#[test]
fn legacy_mount_with_short_links_keeps_cwd() {
    if !privileged() {
        return;
    }
    // 100 layers at ~60-byte absolute paths exceed a page; Docker's l/<short> form fits.
    let n = 100;
    let t = Layers::new(0);
    let base = t.path(&format!("overlay2-{}", "p".repeat(20)));
    fs::create_dir_all(base.join("l")).unwrap();
    fs::create_dir_all(base.join("c/diff")).unwrap();
    fs::create_dir_all(base.join("c/work")).unwrap();
    let mut lower = Vec::new();
    let mut short = Vec::new();
    for i in 0..n {
        let diff = base.join(format!("{i:030}/diff"));
        fs::create_dir_all(&diff).unwrap();
        fs::write(diff.join(format!("f{i}")), "").unwrap();
        let link = format!("l/{i:026}");
        std::os::unix::fs::symlink(format!("../{i:030}/diff"), base.join(&link)).unwrap();
        lower.push(diff);
        short.push(link);
    }
    let spec = OverlaySpec {
        lower,
        upper: Some((base.join("c/diff"), base.join("c/work"))),
        target: t.path("m"),
        userxattr: false,
        legacy: Some(LegacyPaths {
            base: base.clone(),
            lower: short,
            upper: "c/diff".into(),
            work: "c/work".into(),
        }),
    };
    let cwd = std::env::current_dir().unwrap();
    let _g = Guard(spec.target.clone());
    let sys = legacy_only();
    assert_eq!(
        mount_overlay_with(&sys, &spec).unwrap(),
        MountMethod::Legacy
    );
    assert_eq!(std::env::current_dir().unwrap(), cwd);
    for i in 0..n {
        assert!(t.path(&format!("m/f{i}")).exists(), "layer {i}");
    }
    fs::write(t.path("m/new"), "x").unwrap();
    assert!(base.join("c/diff/new").exists());
    unmount(&spec.target, false).unwrap();

    // Without the short form the absolute options do not fit: refused, nothing mounted.
    let no_short = OverlaySpec {
        legacy: None,
        ..spec.clone()
    };
    let err = mount_overlay_with(&sys, &no_short).unwrap_err();
    assert!(
        matches!(err, MountError::OptionsTooLong { layers: 100, .. }),
        "{err:?}"
    );
    assert!(!is_mounted(&spec.target).unwrap());
}

#[test]
fn missing_target_is_reported() {
    if !privileged() {
        return;
    }
    let t = Layers::new(2);
    let spec = OverlaySpec {
        target: t.path("no/such/dir"),
        ..t.spec(true)
    };
    let err = mount_overlay(&spec).unwrap_err();
    let MountError::Overlay { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&spec.target.display().to_string()));
}

#[test]
fn is_mounted_on_plain_and_missing_dirs() {
    let t = Layers::new(0);
    assert!(!is_mounted(t.dir.path()).unwrap());
    assert!(!is_mounted(&t.path("missing")).unwrap());
    assert!(is_mounted(Path::new("/proc")).unwrap());
}

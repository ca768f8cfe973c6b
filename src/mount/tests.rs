//! Unit tests over a recording fake: no root needed.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, OsStr};
use std::io;
use std::path::{Path, PathBuf};

use super::info::{parse_mountinfo, unescape};
use super::overlay::{clean_log, legacy_options};
use super::*;

/// Records every call as a line; fails calls whose line starts with a rule's prefix.
struct Fake {
    calls: RefCell<Vec<String>>,
    /// (call prefix, errno, messages the kernel would log)
    rules: Vec<(&'static str, i32, Vec<&'static str>)>,
    log: RefCell<Vec<String>>,
    labels: RefCell<Vec<String>>,
    mounted: RefCell<Vec<PathBuf>>,
    /// false: successful mounts do not show in mountinfo.
    visible: Cell<bool>,
    /// true: `mount_root` answers (from `mounted`), as on Linux 5.8+; false: unsupported.
    statx: Cell<bool>,
    mountinfo_reads: Cell<usize>,
    max_options: usize,
}

impl Fake {
    fn new() -> Self {
        Self {
            calls: RefCell::default(),
            rules: Vec::new(),
            log: RefCell::default(),
            labels: RefCell::default(),
            mounted: RefCell::default(),
            visible: Cell::new(true),
            statx: Cell::new(false),
            mountinfo_reads: Cell::new(0),
            max_options: 4095,
        }
    }

    fn fail(mut self, prefix: &'static str, errno: i32, log: &[&'static str]) -> Self {
        self.rules.push((prefix, errno, log.to_vec()));
        self
    }

    fn call(&self, line: String) -> io::Result<()> {
        self.calls.borrow_mut().push(line.clone());
        self.apply_rules(&line)
    }

    /// Fails `line` if a rule says so (lookups go unrecorded: they do not change the system).
    fn apply_rules(&self, line: &str) -> io::Result<()> {
        for (prefix, errno, log) in &self.rules {
            if line.starts_with(prefix) {
                self.log
                    .borrow_mut()
                    .extend(log.iter().map(|m| m.to_string()));
                return Err(io::Error::from_raw_os_error(*errno));
            }
        }
        Ok(())
    }

    fn handle(&self, label: String) -> usize {
        let mut l = self.labels.borrow_mut();
        l.push(label);
        l.len() - 1
    }

    fn label(&self, fd: usize) -> String {
        self.labels.borrow()[fd].clone()
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn mark_mounted(&self, target: &Path) {
        if self.visible.get() {
            self.mounted.borrow_mut().push(target.to_path_buf());
        }
    }
}

impl MountSyscalls for Fake {
    type Fd = usize;

    fn fsopen(&self, fs_type: &str) -> io::Result<usize> {
        self.call(format!("fsopen {fs_type}"))?;
        Ok(self.handle("fs".into()))
    }
    fn open_dir(&self, path: &Path) -> io::Result<usize> {
        self.call(format!("open {}", path.display()))?;
        Ok(self.handle(path.display().to_string()))
    }
    fn fsconfig_set_fd(&self, _fs: &usize, key: &str, fd: &usize) -> io::Result<()> {
        self.call(format!("set_fd {key} {}", self.label(*fd)))
    }
    fn fsconfig_set_string(&self, _fs: &usize, key: &str, value: &OsStr) -> io::Result<()> {
        self.call(format!("set_string {key} {}", value.to_string_lossy()))
    }
    fn fsconfig_set_flag(&self, _fs: &usize, key: &str) -> io::Result<()> {
        self.call(format!("set_flag {key}"))
    }
    fn fsconfig_create(&self, _fs: &usize) -> io::Result<()> {
        self.call("create".into())
    }
    fn fsmount(&self, _fs: &usize) -> io::Result<usize> {
        self.call("fsmount".into())?;
        Ok(self.handle("mnt".into()))
    }
    fn move_mount(&self, _mnt: &usize, target: &Path) -> io::Result<()> {
        self.call(format!("move_mount {}", target.display()))?;
        self.mark_mounted(target);
        Ok(())
    }
    fn read_fs_log(&self, _fs: &usize) -> Vec<String> {
        std::mem::take(&mut *self.log.borrow_mut())
    }
    fn mount_legacy(&self, target: &Path, options: &CStr, cwd: Option<&Path>) -> io::Result<()> {
        let cwd = cwd.map_or("-".to_string(), |c| c.display().to_string());
        let line = format!(
            "mount {} cwd={cwd} {}",
            target.display(),
            options.to_string_lossy()
        );
        self.call(line)?;
        self.mark_mounted(target);
        Ok(())
    }
    fn umount(&self, target: &Path, detach: bool) -> io::Result<()> {
        self.call(format!("umount {} detach={detach}", target.display()))
    }
    fn mountinfo(&self) -> io::Result<String> {
        self.mountinfo_reads.set(self.mountinfo_reads.get() + 1);
        let mut s = String::from("22 1 0:21 / / rw - ext4 /dev/root rw\n");
        for (i, t) in self.mounted.borrow().iter().enumerate() {
            s += &format!(
                "{} 22 0:{} / {} rw - overlay overlay rw,lowerdir+=x\n",
                100 + i,
                50 + i,
                t.display().to_string().replace(' ', "\\040")
            );
        }
        Ok(s)
    }
    fn mount_root(&self, target: &Path) -> io::Result<MountRoot> {
        self.apply_rules(&format!("mount_root {}", target.display()))?;
        if !self.statx.get() {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let mounted = self.mounted.borrow().iter().any(|m| m == target);
        Ok(if mounted {
            MountRoot::Overlay
        } else {
            MountRoot::NotMounted
        })
    }
    fn max_options_len(&self) -> usize {
        self.max_options
    }
}

fn spec(lowers: usize, upper: bool) -> OverlaySpec {
    OverlaySpec {
        lower: (0..lowers)
            .map(|i| PathBuf::from(format!("/s/l{i}")))
            .collect(),
        upper: upper.then(|| (PathBuf::from("/s/u"), PathBuf::from("/s/w"))),
        target: PathBuf::from("/nonexistent-strata-test/merged"),
        userxattr: false,
        legacy: None,
    }
}

fn count(calls: &[String], prefix: &str) -> usize {
    calls.iter().filter(|c| c.starts_with(prefix)).count()
}

#[test]
fn new_api_passes_layers_as_fds_nearest_first() {
    let fake = Fake::new();
    let method = mount_overlay_with(&fake, &spec(3, true)).unwrap();
    assert_eq!(method, MountMethod::NewApi);
    assert_eq!(
        fake.calls(),
        [
            "fsopen overlay",
            "set_string source overlay",
            "open /s/l0",
            "set_fd lowerdir+ /s/l0",
            "open /s/l1",
            "set_fd lowerdir+ /s/l1",
            "open /s/l2",
            "set_fd lowerdir+ /s/l2",
            "open /s/u",
            "set_fd upperdir /s/u",
            "open /s/w",
            "set_fd workdir /s/w",
            "create",
            "fsmount",
            "move_mount /nonexistent-strata-test/merged",
        ]
    );
}

#[test]
fn userxattr_flag_and_no_upper() {
    let fake = Fake::new();
    let mut s = spec(2, false);
    s.userxattr = true;
    mount_overlay_with(&fake, &s).unwrap();
    let calls = fake.calls();
    assert_eq!(count(&calls, "set_flag userxattr"), 1);
    assert_eq!(count(&calls, "set_fd upperdir"), 0);
    assert_eq!(count(&calls, "set_fd workdir"), 0);
    // The flag comes after the layers, before create.
    let flag = calls
        .iter()
        .position(|c| c == "set_flag userxattr")
        .unwrap();
    let create = calls.iter().position(|c| c == "create").unwrap();
    assert!(flag < create && flag > 3);
}

#[test]
fn enosys_falls_back_to_mount2_with_absolute_paths() {
    let fake = Fake::new().fail("fsopen", libc::ENOSYS, &[]);
    let mut s = spec(2, true);
    s.userxattr = true;
    assert_eq!(mount_overlay_with(&fake, &s).unwrap(), MountMethod::Legacy);
    assert_eq!(
        fake.calls(),
        [
            "fsopen overlay",
            "mount /nonexistent-strata-test/merged cwd=- \
             lowerdir=/s/l0:/s/l1,upperdir=/s/u,workdir=/s/w,userxattr"
        ]
    );
}

#[test]
fn fd_rejected_retries_with_strings() {
    // Linux 6.8-6.12: lowerdir+ takes only strings.
    let fake = Fake::new().fail(
        "set_fd lowerdir+",
        libc::EINVAL,
        &["e overlay: Bad value for 'lowerdir+'\n"],
    );
    assert_eq!(
        mount_overlay_with(&fake, &spec(2, true)).unwrap(),
        MountMethod::NewApi
    );
    let calls = fake.calls();
    assert_eq!(
        count(&calls, "fsopen"),
        2,
        "fresh context for the retry: {calls:?}"
    );
    let tail: Vec<_> = calls
        .iter()
        .skip_while(|c| !c.starts_with("set_string lowerdir+"))
        .collect();
    assert_eq!(
        tail,
        [
            "set_string lowerdir+ /s/l0",
            "set_string lowerdir+ /s/l1",
            "set_string upperdir /s/u",
            "set_string workdir /s/w",
            "create",
            "fsmount",
            "move_mount /nonexistent-strata-test/merged",
        ]
    );
}

#[test]
fn no_lowerdir_plus_falls_back_to_mount2() {
    // Linux 6.5-6.7: overlay has fsconfig keys but not lowerdir+.
    let fake = Fake::new()
        .fail(
            "set_fd lowerdir+",
            libc::EINVAL,
            &["e overlay: Unknown parameter 'lowerdir+'"],
        )
        .fail(
            "set_string lowerdir+",
            libc::EINVAL,
            &["e overlay: Unknown parameter 'lowerdir+'"],
        );
    assert_eq!(
        mount_overlay_with(&fake, &spec(2, false)).unwrap(),
        MountMethod::Legacy
    );
    assert_eq!(count(&fake.calls(), "mount "), 1);
}

#[test]
fn legacy_fs_context_goes_straight_to_mount2() {
    // Linux < 6.5: the legacy context refuses fds, naming itself.
    let fake = Fake::new().fail(
        "set_fd lowerdir+",
        libc::EINVAL,
        &["e VFS: Legacy: Parameter type for 'lowerdir+' not supported"],
    );
    assert_eq!(
        mount_overlay_with(&fake, &spec(2, true)).unwrap(),
        MountMethod::Legacy
    );
    let calls = fake.calls();
    assert_eq!(count(&calls, "fsopen"), 1);
    assert_eq!(count(&calls, "set_string lowerdir+"), 0);
}

#[test]
fn silent_create_failure_in_string_mode_falls_back() {
    // A legacy context that accepted the strings fails at create, logging only to dmesg.
    let fake = Fake::new()
        .fail("set_fd lowerdir+", libc::EINVAL, &[])
        .fail("create", libc::EINVAL, &[]);
    assert_eq!(
        mount_overlay_with(&fake, &spec(2, true)).unwrap(),
        MountMethod::Legacy
    );
}

#[test]
fn create_failure_with_fds_is_reported_with_kernel_message() {
    let fake = Fake::new().fail(
        "create",
        libc::EINVAL,
        &["e overlay: upper fs missing required features\n"],
    );
    let err = mount_overlay_with(&fake, &spec(2, true)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("overlay at /nonexistent-strata-test/merged: upper fs missing required features (fsconfig create: "),
        "{msg}"
    );
    assert_eq!(count(&fake.calls(), "mount "), 0);
}

#[test]
fn kernel_log_names_the_failing_layer() {
    let fake = Fake::new().fail(
        "set_fd lowerdir+ /s/l1",
        libc::EINVAL,
        &["e overlay: too many lower directories, limit is 500\n"],
    );
    let err = mount_overlay_with(&fake, &spec(3, true)).unwrap_err();
    match &err {
        MountError::Overlay { kernel_log, op, .. } => {
            assert_eq!(kernel_log, &["too many lower directories, limit is 500"]);
            assert_eq!(op, "fsconfig lowerdir+ (layer 2: /s/l1)");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("overlay at /nonexistent-strata-test/merged: too many lower directories"),
        "{err}"
    );
    // A failure after the first layer is real: no fallback.
    assert_eq!(count(&fake.calls(), "fsopen"), 1);
    assert_eq!(count(&fake.calls(), "mount "), 0);
}

#[test]
fn real_error_on_first_layer_is_not_a_fallback() {
    let fake = Fake::new().fail(
        "set_fd lowerdir+",
        libc::EINVAL,
        &["e overlay: /s/l0 is not a directory"],
    );
    let err = mount_overlay_with(&fake, &spec(2, true)).unwrap_err();
    assert!(
        err.to_string().contains("/s/l0 is not a directory"),
        "{err}"
    );
    assert_eq!(count(&fake.calls(), "fsopen"), 1);
}

#[test]
fn missing_layer_dir_is_reported() {
    let fake = Fake::new().fail("open /s/l1", libc::ENOENT, &[]);
    let err = mount_overlay_with(&fake, &spec(2, true)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("opening /s/l1") && msg.contains("No such file"),
        "{msg}"
    );
}

#[test]
fn too_many_layers_before_any_syscall() {
    let fake = Fake::new();
    let err = mount_overlay_with(&fake, &spec(MAX_LOWER_LAYERS + 1, true)).unwrap_err();
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
    assert!(fake.calls().is_empty());
    assert!(mount_overlay_with(&fake, &spec(MAX_LOWER_LAYERS, true)).is_ok());
}

#[test]
fn invalid_specs_are_refused_before_any_syscall() {
    let fake = Fake::new();
    let one_ro = mount_overlay_with(&fake, &spec(1, false)).unwrap_err();
    assert!(
        one_ro.to_string().contains("at least 2 lower layers"),
        "{one_ro}"
    );
    let none = mount_overlay_with(&fake, &spec(0, true)).unwrap_err();
    assert!(matches!(none, MountError::InvalidSpec { .. }));
    let mut rel = spec(2, true);
    rel.lower[1] = PathBuf::from("relative/l1");
    let err = mount_overlay_with(&fake, &rel).unwrap_err();
    assert!(
        err.to_string()
            .contains("relative/l1 is not an absolute path"),
        "{err}"
    );
    let mut bad_legacy = spec(2, true);
    bad_legacy.legacy = Some(LegacyPaths {
        base: "/s".into(),
        lower: vec!["l/A".into()],
        upper: "c/diff".into(),
        work: "c/work".into(),
    });
    assert!(matches!(
        mount_overlay_with(&fake, &bad_legacy),
        Err(MountError::InvalidSpec { .. })
    ));
    assert!(fake.calls().is_empty());
    // A single lower with an upper is fine.
    assert!(mount_overlay_with(&fake, &spec(1, true)).is_ok());
}

fn long_spec(layers: usize, with_legacy: bool) -> OverlaySpec {
    // 90-byte absolute paths, like /var/lib/docker/overlay2/<64 hex>/diff.
    let dir = |i: usize| PathBuf::from(format!("/var/lib/strata/overlay2/{:064}/diff", i));
    OverlaySpec {
        lower: (0..layers).map(dir).collect(),
        upper: Some((dir(9999), PathBuf::from("/var/lib/strata/overlay2/c/work"))),
        target: PathBuf::from("/nonexistent-strata-test/merged"),
        userxattr: false,
        legacy: with_legacy.then(|| LegacyPaths {
            base: PathBuf::from("/var/lib/strata/overlay2"),
            lower: (0..layers).map(|i| format!("l/{:026}", i)).collect(),
            upper: "c/diff".into(),
            work: "c/work".into(),
        }),
    }
}

#[test]
fn legacy_uses_relative_short_links_when_absolute_is_too_long() {
    let fake = Fake::new().fail("fsopen", libc::ENOSYS, &[]);
    let s = long_spec(60, true);
    assert_eq!(mount_overlay_with(&fake, &s).unwrap(), MountMethod::Legacy);
    let calls = fake.calls();
    let mount = calls.iter().find(|c| c.starts_with("mount ")).unwrap();
    assert!(
        mount.contains("cwd=/var/lib/strata/overlay2 lowerdir=l/00000000000000000000000000:l/")
    );
    assert!(
        mount.ends_with(",upperdir=c/diff,workdir=c/work"),
        "{mount}"
    );
}

#[test]
fn legacy_short_form_only_when_needed() {
    let fake = Fake::new().fail("fsopen", libc::ENOSYS, &[]);
    mount_overlay_with(&fake, &long_spec(5, true)).unwrap();
    assert!(fake.calls()[1].contains("cwd=- lowerdir=/var/lib/strata/overlay2/"));
}

#[test]
fn legacy_refuses_options_longer_than_a_page() {
    let fake = Fake::new().fail("fsopen", libc::ENOSYS, &[]);
    // 45 absolute layers: ~4 KiB, the case the kernel would cut silently.
    let err = mount_overlay_with(&fake, &long_spec(45, false)).unwrap_err();
    match err {
        MountError::OptionsTooLong { layers: 45, bytes } => assert!(bytes > 4095),
        other => panic!("{other:?}"),
    }
    // Short links fit ~140 layers; 200 do not.
    let err = mount_overlay_with(&fake, &long_spec(200, true)).unwrap_err();
    assert!(
        matches!(err, MountError::OptionsTooLong { layers: 200, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Linux 6.8+"));
    assert_eq!(
        count(&fake.calls(), "mount "),
        0,
        "never mounts a cut option string"
    );
}

#[test]
fn legacy_limit_is_inclusive_of_page_minus_nul() {
    let mut fake = Fake::new().fail("fsopen", libc::ENOSYS, &[]);
    let s = spec(2, false);
    let len = "lowerdir=/s/l0:/s/l1".len();
    fake.max_options = len;
    assert!(mount_overlay_with(&fake, &s).is_ok());
    fake.max_options = len - 1;
    assert!(matches!(
        mount_overlay_with(&fake, &s),
        Err(MountError::OptionsTooLong { bytes, .. }) if bytes == len
    ));
}

#[test]
fn string_mode_skips_paths_over_255_bytes() {
    let fake = Fake::new().fail("set_fd lowerdir+", libc::EINVAL, &[]);
    let mut s = spec(2, true);
    s.lower[1] = PathBuf::from(format!("/{}", "x".repeat(255)));
    assert_eq!(mount_overlay_with(&fake, &s).unwrap(), MountMethod::Legacy);
    assert_eq!(count(&fake.calls(), "set_string lowerdir+"), 0);
}

#[test]
fn legacy_options_escape_separators() {
    let o = legacy_options(&[b"/a:b", b"/c,d\\e"], Some((b"/u", b"/w")), false);
    assert_eq!(o, b"lowerdir=/a\\:b:/c\\,d\\\\e,upperdir=/u,workdir=/w");
}

#[test]
fn unverified_mount_is_an_error() {
    let fake = Fake::new();
    fake.visible.set(false);
    let err = mount_overlay_with(&fake, &spec(2, true)).unwrap_err();
    assert!(matches!(err, MountError::NotVerified { .. }), "{err:?}");
}

#[test]
fn unmount_maps_errnos() {
    let t = Path::new("/m");
    let fake = Fake::new();
    unmount_with(&fake, t, true).unwrap();
    assert_eq!(fake.calls(), ["umount /m detach=true"]);
    let busy = unmount_with(&Fake::new().fail("umount", libc::EBUSY, &[]), t, false).unwrap_err();
    assert!(matches!(busy, MountError::Busy { .. }));
    assert!(busy.to_string().contains("in use"), "{busy}");
    let not = unmount_with(&Fake::new().fail("umount", libc::EINVAL, &[]), t, false).unwrap_err();
    assert!(matches!(not, MountError::NotMounted { .. }));
    let other = unmount_with(&Fake::new().fail("umount", libc::EPERM, &[]), t, false).unwrap_err();
    assert!(matches!(other, MountError::Unmount { .. }));
}

#[test]
fn mountinfo_parsing_with_escapes() {
    let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:40 / /tmp/with\\040space rw shared:2 master:1 - overlay overlay rw,lowerdir+=/a
37 22 0:41 / /tmp/tab\\011and\\134back rw - tmpfs tmp\\040fs rw
garbage line
";
    let e = parse_mountinfo(text);
    assert_eq!(e.len(), 3);
    assert_eq!(e[1].mount_point, Path::new("/tmp/with space"));
    assert_eq!(e[1].fs_type, "overlay");
    assert_eq!(e[2].mount_point, Path::new("/tmp/tab\tand\\back"));
    assert_eq!(e[2].source, "tmp fs");
    // Not an escape: a backslash without three octal digits stays.
    assert_eq!(unescape("a\\8b\\04"), b"a\\8b\\04");
}

#[test]
fn is_mounted_matches_exact_path_only() {
    let fake = Fake::new();
    fake.mounted
        .borrow_mut()
        .push("/nonexistent-strata/a b".into());
    assert!(is_mounted_with(&fake, Path::new("/nonexistent-strata/a b")).unwrap());
    assert!(!is_mounted_with(&fake, Path::new("/nonexistent-strata/a")).unwrap());
    assert!(!is_mounted_with(&fake, Path::new("/nonexistent-strata/a b/c")).unwrap());
}

#[test]
fn is_mounted_asks_the_kernel_before_reading_mountinfo() {
    let fake = Fake::new();
    fake.statx.set(true);
    fake.mounted
        .borrow_mut()
        .push("/nonexistent-strata/m".into());
    assert!(is_mounted_with(&fake, Path::new("/nonexistent-strata/m")).unwrap());
    assert!(!is_mounted_with(&fake, Path::new("/nonexistent-strata/n")).unwrap());
    assert_eq!(fake.mountinfo_reads.get(), 0);

    // A missing target has nothing on it; other errors are reported, naming the target.
    let gone = Fake::new().fail("mount_root", libc::ENOENT, &[]);
    assert!(!is_mounted_with(&gone, Path::new("/nonexistent-strata/x")).unwrap());
    let denied = Fake::new().fail("mount_root", libc::EACCES, &[]);
    let err = is_mounted_with(&denied, Path::new("/nonexistent-strata/x")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent-strata/x"), "{err}");

    // Before Linux 5.8 the kernel cannot say: mountinfo decides.
    let old = Fake::new();
    old.mounted
        .borrow_mut()
        .push("/nonexistent-strata/m".into());
    assert!(is_mounted_with(&old, Path::new("/nonexistent-strata/m")).unwrap());
    assert_eq!(old.mountinfo_reads.get(), 1);
}

#[test]
fn the_kernel_tells_mount_roots_and_their_kind() {
    let sys = LinuxMount::default();
    assert_eq!(
        sys.mount_root(Path::new("/proc")).unwrap(),
        MountRoot::Other
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    assert_eq!(
        sys.mount_root(&dir.path().join("sub")).unwrap(),
        MountRoot::NotMounted
    );
    let missing = sys.mount_root(&dir.path().join("missing")).unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
}

#[test]
fn fs_log_cleanup() {
    let raw = vec![
        "e overlay: too many lower directories, limit is 500\n".to_string(),
        "w overlay: something odd".to_string(),
        "e VFS: Legacy: Parameter type for 'lowerdir+' not supported".to_string(),
        "\n".to_string(),
    ];
    assert_eq!(
        clean_log(raw),
        [
            "too many lower directories, limit is 500",
            "warning: something odd",
            "VFS: Legacy: Parameter type for 'lowerdir+' not supported",
        ]
    );
}

#[test]
fn privileges_from_capeff() {
    let status = |caps: &str| format!("Name:\tx\nCapInh:\t0\nCapEff:\t{caps}\nCapBnd:\t0\n");
    assert!(privileges_from_status(&status("000001ffffffffff")).is_ok());
    assert!(privileges_from_status(&status("0000000000200000")).is_ok());
    let err = privileges_from_status(&status("0000000000000000")).unwrap_err();
    assert!(matches!(err, MountError::NotPermitted { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("CAP_SYS_ADMIN") && !msg.contains("strata"),
        "{msg}"
    );
    assert!(matches!(
        privileges_from_status("Name: x\n"),
        Err(MountError::Io { .. })
    ));
}

//! Run the real `strata` binary against a temp root, read what it stored, and mount the
//! union of an image's layers.

use std::ffi::{CString, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde_json::Value;

/// The binary under test: cargo's build of `strata`, or `$STRATA_TEST_BIN` when set (to
/// test another build, e.g. `target/release/strata`).
pub fn bin() -> PathBuf {
    std::env::var_os("STRATA_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strata")))
}

/// One `strata --root <tempdir>`.
pub struct Strata {
    root: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// Panic with the full output unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Output {
        assert!(self.status.success(), "strata failed:\n{}", self.describe());
        self
    }
    /// Panic with the full output unless the command failed with exit code `code`.
    #[track_caller]
    pub fn fails_with(self, code: i32) -> Output {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}:\n{}",
            self.describe()
        );
        self
    }
    /// Asserts a failed run: exit code 1, an `error: ` message mentioning every needle, no panic.
    #[track_caller]
    pub fn assert_error(&self, needles: &[&str]) {
        assert_eq!(
            self.code(),
            Some(1),
            "expected exit code 1:\n{}",
            self.describe()
        );
        assert!(
            self.stderr.contains("error: "),
            "the message must start with \"error: \":\n{}",
            self.describe()
        );
        assert!(
            !self.stderr.contains("panicked"),
            "strata panicked:\n{}",
            self.describe()
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "the error should mention {n:?}:\n{}",
                self.describe()
            );
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "$ strata {}\nexit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

impl Strata {
    pub fn new() -> Strata {
        Strata {
            root: super::tempdir("root"),
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn overlay2(&self) -> PathBuf {
        self.root().join("overlay2")
    }

    /// Run `strata --root <root> ARGS...` (stdin closed, not a tty).
    pub fn run(&self, args: &[&str]) -> Output {
        let bin = bin();
        let mut cmd = Command::new(&bin);
        cmd.arg("--root").arg(self.root()).args(args);
        cmd.stdin(Stdio::null());
        // The tests say everything on the command line.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("STRATA_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let mut all = vec!["--root".to_string(), self.root().display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: all,
        }
    }

    pub fn pull(&self, reference: &str) -> Output {
        self.run(&["pull", reference])
    }

    /// `strata inspect IMAGE`: the one object of the JSON array.
    pub fn inspect(&self, image: &str) -> Value {
        let out = self.run(&["inspect", image]).ok();
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("inspect output is not JSON ({e}):\n{}", out.describe()));
        let arr = v
            .as_array()
            .unwrap_or_else(|| panic!("inspect output is not an array:\n{}", out.describe()));
        assert_eq!(arr.len(), 1, "inspect {image}: one object expected");
        arr[0].clone()
    }

    /// `strata images --json`.
    pub fn images(&self) -> Vec<Value> {
        let out = self.run(&["images", "--json"]).ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "images --json output is not JSON ({e}):\n{}",
                out.describe()
            )
        });
        v.as_array()
            .unwrap_or_else(|| panic!("images --json is not an array:\n{}", out.describe()))
            .clone()
    }

    /// Directories of `overlay2/` other than `l` (the layer directories), sorted.
    pub fn layer_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = match fs::read_dir(self.overlay2()) {
            Ok(rd) => rd
                .map(|e| {
                    e.expect("overlay2 entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .filter(|n| n != "l")
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", self.overlay2().display()),
        };
        v.sort();
        v
    }

    /// Entries of `overlay2/l/`, sorted.
    pub fn short_links(&self) -> Vec<String> {
        let l = self.overlay2().join("l");
        let mut v: Vec<String> = match fs::read_dir(&l) {
            Ok(rd) => rd
                .map(|e| {
                    e.expect("l entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", l.display()),
        };
        v.sort();
        v
    }
}

/// The GraphDriver data of an inspect object.
#[derive(Debug, Clone)]
pub struct Graph {
    pub upper: PathBuf,
    /// Nearest first.
    pub lower: Vec<PathBuf>,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl Graph {
    pub fn of(inspect: &Value) -> Graph {
        let gd = &inspect["GraphDriver"];
        assert_eq!(gd["Name"], "overlay2", "GraphDriver.Name in {inspect:#}");
        let data = &gd["Data"];
        let s = |k: &str| -> PathBuf {
            PathBuf::from(
                data[k]
                    .as_str()
                    .unwrap_or_else(|| panic!("GraphDriver.Data.{k} missing in {inspect:#}")),
            )
        };
        let lower = match data.get("LowerDir") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split(':').map(PathBuf::from).collect(),
            Some(other) => panic!("LowerDir is not a string: {other}"),
        };
        Graph {
            upper: s("UpperDir"),
            lower,
            work: s("WorkDir"),
            merged: s("MergedDir"),
        }
    }

    /// All layer diff dirs, top first.
    pub fn layers_top_first(&self) -> Vec<PathBuf> {
        let mut v = vec![self.upper.clone()];
        v.extend(self.lower.iter().cloned());
        v
    }
}

/// A read-only overlay mount of all of an image's layers (all as lower dirs), unmounted on
/// drop.
pub struct UnionMount {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl UnionMount {
    pub fn new(graph: &Graph) -> UnionMount {
        let dir = super::tempdir("union");
        let lowers: Vec<String> = graph
            .layers_top_first()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let opts = format!("lowerdir={}", lowers.join(":"));
        // mount(2) copies at most one page of options (a longer string is cut silently).
        assert!(opts.len() < 4000, "overlay options too long for mount(2)");
        let target = CString::new(dir.path().as_os_str().as_bytes()).expect("path");
        let c_opts = CString::new(opts.clone()).expect("options");
        // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
        let rc = unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                target.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_RDONLY,
                c_opts.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount -t overlay -o {opts} {}: {}",
            dir.path().display(),
            std::io::Error::last_os_error()
        );
        UnionMount { dir, mounted: true }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for UnionMount {
    fn drop(&mut self) {
        if self.mounted {
            let target = CString::new(self.dir.path().as_os_str().as_bytes()).expect("path");
            // SAFETY: valid C string.
            let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!(
                    "umount {}: {}",
                    self.dir.path().display(),
                    std::io::Error::last_os_error()
                );
            }
            self.mounted = false;
        }
    }
}

/// The merged view of an image: the overlay mount for several layers, or the single
/// layer's diff directory itself.
pub enum Union {
    Mounted(UnionMount),
    Single(PathBuf),
}

impl Union {
    pub fn of(graph: &Graph) -> Union {
        if graph.lower.is_empty() {
            Union::Single(graph.upper.clone())
        } else {
            Union::Mounted(UnionMount::new(graph))
        }
    }
    pub fn path(&self) -> &Path {
        match self {
            Union::Mounted(m) => m.path(),
            Union::Single(p) => p,
        }
    }
}

/// Every path (relative) under `root` whose name contains `needle`, and every regular file
/// whose content contains it.
pub fn find_mentions(root: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    find_rec(root, root, needle.as_bytes(), &mut out);
    out
}

fn find_rec(root: &Path, dir: &Path, needle: &[u8], out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        let name = e.file_name();
        if contains(name.as_bytes(), needle) {
            out.push(format!("{rel} (name)"));
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            find_rec(root, &p, needle, out);
        } else if ft.is_file()
            && let Ok(data) = fs::read(&p)
            && contains(&data, needle)
        {
            out.push(format!("{rel} (content)"));
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// Containers and mounts

/// One line of `/proc/self/mountinfo`: mount point and filesystem type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// Every mount of this mount namespace, in mount order (the kernel's `\ooo` escapes undone).
pub fn mounts() -> Vec<MountInfo> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let fs_type = right.split(' ').next()?;
            Some(MountInfo {
                mount_point: PathBuf::from(OsString::from_vec(unescape_mountinfo(mount_point))),
                fs_type: fs_type.to_string(),
            })
        })
        .collect()
}

fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(d) = octal {
            out.push(
                d.iter()
                    .fold(0u8, |acc, c| acc.wrapping_mul(8) + (c - b'0')),
            );
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The mounts whose mount point is `dir` (mountinfo shows resolved paths).
pub fn mounts_at(dir: &Path) -> Vec<MountInfo> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    mounts()
        .into_iter()
        .filter(|m| m.mount_point == dir)
        .collect()
}

impl Strata {
    /// `strata ps --json`.
    pub fn ps(&self) -> Vec<Value> {
        let out = self.run(&["ps", "--json"]).ok();
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("ps --json output is not JSON ({e}):\n{}", out.describe()));
        v.as_array()
            .unwrap_or_else(|| panic!("ps --json is not an array:\n{}", out.describe()))
            .clone()
    }

    /// Mount points at or below the root (resolved), in mount order.
    pub fn mounts_under_root(&self) -> Vec<PathBuf> {
        let root = fs::canonicalize(self.root()).unwrap_or_else(|_| self.root().to_path_buf());
        mounts()
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(&root))
            .collect()
    }

    /// Best-effort cleanup that never panics (it runs in `Drop`, possibly while a test is
    /// failing): `strata rm -f` every container `ps --json` lists, then a lazy unmount of
    /// anything still mounted under the root, so the root's temp dir can be removed.
    pub fn remove_all_containers(&self) {
        let listed = Command::new(bin())
            .arg("--root")
            .arg(self.root())
            .args(["ps", "--json"])
            .stdin(Stdio::null())
            .output();
        let ids: Vec<String> = listed
            .ok()
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect();
        if !ids.is_empty() {
            let rm = Command::new(bin())
                .arg("--root")
                .arg(self.root())
                .args(["rm", "-f"])
                .args(&ids)
                .stdin(Stdio::null())
                .output();
            if let Ok(o) = rm
                && !o.status.success()
            {
                eprintln!(
                    "cleanup: strata rm -f failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        // Innermost first.
        for p in self.mounts_under_root().iter().rev() {
            eprintln!("cleanup: {} still mounted, detaching it", p.display());
            let Ok(target) = CString::new(p.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: valid C string.
            let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!(
                    "cleanup: umount {}: {}",
                    p.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

//! A pull that runs out of space: it fails naming the layer and "no space left on device",
//! leaves nothing partial, and works once there is room.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::image::{Compression, Entry, Flavor, ImageBuilder};
use crate::support::strata::{Output, bin};
use crate::support::{self, Env};

/// A tmpfs of `size` mounted on a temp dir; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = support::tempdir("tmpfs");
        Tmpfs::call(dir.path(), &format!("size={size},mode=0755"), 0);
        Tmpfs { dir }
    }

    /// Gives it a new size (the files stay).
    fn resize(&self, size: &str) {
        Tmpfs::call(self.dir.path(), &format!("size={size}"), libc::MS_REMOUNT);
    }

    fn call(target: &Path, data: &str, flags: libc::c_ulong) {
        let source = CString::new("tmpfs").unwrap();
        let target_c = CString::new(target.as_os_str().as_bytes()).unwrap();
        let data_c = CString::new(data).unwrap();
        // SAFETY: valid C strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target_c.as_ptr(),
                source.as_ptr(),
                flags,
                data_c.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount tmpfs on {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        );
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn run(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
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

/// Everything under `dir`, relative.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_pull_out_of_space_fails_cleanly_and_works_with_room() {
    let env = Env::new();
    // Incompressible data: 6 MB of it does not fit in 4 MB.
    let mut rng = fastrand::Rng::with_seed(7);
    let big: Vec<u8> = (0..6 << 20).map(|_| rng.u8(..)).collect();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("small", "x\n")], Compression::Gzip)
        .entries(&[Entry::file("big", big)], Compression::Gzip)
        .build();
    env.push.image("test/big", Some("v1"), &img);
    let reference = env.r("test/big:v1");
    let fs = Tmpfs::mount("4m");
    let root = fs.root();

    let out = run(&root, &["pull", &reference]);
    let top = &img.chain_ids()[1];
    // The layer, then what was being written (not the OS's "No space left on device").
    out.assert_error(&[
        "layer ",
        "no space left on device (entry \"big\": writing file data)",
    ]);
    assert!(
        out.stderr.contains(&img.layers[1].digest) || out.stderr.contains(top),
        "the error names the layer:\n{}",
        out.describe()
    );
    let top_hex = support::image::hex_of(top);
    assert_eq!(entries(&root.join("staging")), Vec::<String>::new());
    assert!(
        !root.join("overlay2").join(top_hex).exists(),
        "a partial layer is left"
    );
    assert!(!root.join("layers").join(format!("{top_hex}.json")).exists());
    assert_eq!(entries(&root.join("images")), Vec::<String>::new());

    fs.resize("64m");
    run(&root, &["pull", &reference]).ok();
    let merged = run(&root, &["pull-and-mount", "--name", "c", &reference]).ok();
    let merged = PathBuf::from(merged.stdout.trim());
    assert_eq!(fs::metadata(merged.join("big")).unwrap().len(), 6 << 20);
    run(&root, &["rm", "-f", "c"]).ok();
}

#[test]
fn an_export_out_of_space_names_the_layer_and_what_was_written() {
    let env = Env::new();
    let mut rng = fastrand::Rng::with_seed(8);
    let big: Vec<u8> = (0..6 << 20).map(|_| rng.u8(..)).collect();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("small", "x\n")], Compression::Gzip)
        .entries(&[Entry::file("big", big)], Compression::Gzip)
        .build();
    env.push.image("test/big", Some("v1"), &img);
    let reference = env.r("test/big:v1");
    let fs = Tmpfs::mount("4m");
    let dest = fs.dir.path().join("out");

    // From the registry, then from the store: the same wording.
    for pull in ["always", "missing"] {
        if pull == "missing" {
            env.strata.pull(&reference).ok();
        }
        let out = run(
            env.strata.root(),
            &["export", "--pull", pull, &reference, dest.to_str().unwrap()],
        );
        out.assert_error(&[
            "layer ",
            "no space left on device (entry \"big\": writing file data)",
        ]);
        assert!(
            !out.stderr.contains("os error 28"),
            "the OS's text instead:\n{}",
            out.describe()
        );
        let _ = fs::remove_dir_all(&dest);
    }
}

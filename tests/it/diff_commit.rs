//! `diff`, `commit` and `mount --image` against a real registry, real overlay mounts and runc.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::dockerd::Dockerd;
use crate::support::image::{self, Flavor};
use crate::support::tree::{self, Options};
use crate::support::{self, Env};

/// The changes made through the container's merged dir, and what `strata diff` lists for them:
/// the set `docker diff` of dockerd 20.10 prints (checked against a real one below), in
/// strata's fixed order. `/etc` changed as the parent of changes, `rm -rf` of a lower dir and
/// `rm` of a file as `D`; a dir removed and made again (opaque) is `C` with its new entry `A`
/// and each entry of the image's dir `D`.
const EXPECTED: &[&str] = &[
    "C /etc",
    "C /etc/motd",
    "A /etc/new",
    "D /etc/apk",
    "D /etc/issue",
    "C /media",
    "A /media/x",
    "D /media/cdrom",
    "D /media/floppy",
    "D /media/usb",
    "A /newfile",
];

/// The init layer's paths, in the merged view but not changes of the container.
const INIT: &[&str] = &[
    "dev/console",
    "dev/pts",
    "dev/shm",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/mtab",
];

struct World {
    env: Env,
    image: String,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
        env.push.image("library/alpine", Some("3.20.3"), &img);
        let image = env.r("library/alpine:3.20.3");
        World { env, image }
    }

    fn run(&self, args: &[&str]) -> crate::support::strata::Output {
        self.env.strata.run(args)
    }

    /// A container `name` with the changes of [`EXPECTED`] made in its merged dir; returns it.
    fn changed_container(&self, name: &str) -> PathBuf {
        let out = self
            .run(&["pull-and-mount", "--name", name, &self.image])
            .ok();
        let merged = PathBuf::from(out.stdout.trim());
        fs::write(merged.join("newfile"), "new\n").unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(merged.join("etc/motd"))
            .unwrap()
            .write_all(b"changed\n")
            .unwrap();
        fs::write(merged.join("etc/new"), "x").unwrap();
        fs::remove_file(merged.join("etc/issue")).unwrap();
        fs::remove_dir_all(merged.join("etc/apk")).unwrap();
        fs::remove_dir_all(merged.join("media")).unwrap();
        fs::create_dir(merged.join("media")).unwrap();
        fs::write(merged.join("media/x"), "x").unwrap();
        merged
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for image in ["localhost/committed:1", self.image.as_str()] {
            let _ = self.env.strata.run(&["umount", "--image", image]);
        }
        self.env.strata.remove_all_containers();
    }
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

#[test]
fn diff_lists_changes_as_docker_mounted_or_not() {
    let w = World::new();
    w.changed_container("c1");
    let out = w.run(&["diff", "c1"]).ok();
    assert_eq!(lines(&out.stdout), EXPECTED, "{}", out.describe());

    let json: Value = serde_json::from_str(&w.run(&["diff", "--json", "c1"]).ok().stdout).unwrap();
    let as_lines: Vec<String> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let kind = match c["Kind"].as_u64() {
                Some(0) => "C",
                Some(1) => "A",
                Some(2) => "D",
                other => panic!("Kind {other:?}"),
            };
            format!("{kind} {}", c["Path"].as_str().unwrap())
        })
        .collect();
    assert_eq!(as_lines, EXPECTED);

    // Unmounted: the upper dir is read all the same.
    w.run(&["umount", "c1"]).ok();
    assert_eq!(lines(&w.run(&["diff", "c1"]).ok().stdout), EXPECTED);

    // A fresh container changed nothing.
    w.run(&["pull-and-mount", "--name", "c2", &w.image]).ok();
    assert_eq!(w.run(&["diff", "c2"]).ok().stdout, "");
    w.run(&["diff", "nosuch"]).assert_error(&["nosuch"]);
}

#[test]
fn commit_exports_runs_inspects_mounts_and_removes_like_an_image() {
    let w = World::new();
    let merged = w.changed_container("c1");
    // What a layer tar must carry over: hard links, an xattr, a fifo, a symlink out of the
    // rootfs (kept as a link, never followed); a socket is left out, as Docker does.
    let data = merged.join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a"), "linked").unwrap();
    fs::hard_link(data.join("a"), data.join("b")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", data.join("out")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(data.join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
    let status = std::process::Command::new("setfattr")
        .args(["-n", "user.note", "-v", "kept"])
        .arg(data.join("a"))
        .status()
        .unwrap();
    assert!(status.success());
    // Bound from inside the directory: its absolute path is longer than a socket address.
    let status = std::process::Command::new("python3")
        .current_dir(&data)
        .args([
            "-c",
            "import socket; socket.socket(socket.AF_UNIX).bind('sock')",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let out = w
        .run(&[
            "commit",
            "-m",
            "my message",
            "--author",
            "Me <me@example.com>",
            "-c",
            "ENV X=1",
            "-c",
            "CMD [\"cat\", \"/newfile\"]",
            "c1",
            "localhost/committed:1",
        ])
        .ok();
    let id = out.stdout.trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "{}",
        out.describe()
    );

    // export equals the container's merged view minus the init layer's files.
    let scratch = support::tempdir("commit");
    let exported = scratch.path().join("rootfs");
    w.run(&[
        "export",
        "--pull",
        "never",
        "localhost/committed:1",
        exported.to_str().unwrap(),
    ])
    .ok();
    // The init layer's files shadow the image's own (alpine has /etc/hosts): left out on
    // both sides.
    let mut view = tree::scan(&merged);
    let mut image_view = tree::scan(&exported);
    for p in INIT {
        view.remove(Path::new(p));
        image_view.remove(Path::new(p));
    }
    assert!(view.remove(Path::new("data/sock")).is_some());
    let mut opts = Options::default().ignore_mtime(".", "the root is in no layer tar");
    // /dev is the init layer's in the container, the image's in the export.
    opts = opts.ignore_mtime("dev", "the init layer's /dev");
    opts.ignore_meta_of
        .push((PathBuf::from("dev"), "the init layer's /dev"));
    let diffs = tree::diff_scans("container", &view, "export", &image_view, &opts);
    tree::assert_no_diffs("container", &merged, "export", &exported, &diffs);
    assert!(!exported.join("etc/apk").exists() && !exported.join("etc/issue").exists());
    assert_eq!(fs::read_to_string(exported.join("media/x")).unwrap(), "x");
    assert!(
        !exported.join("media/cdrom").exists(),
        "the opaque dir hides the lower's"
    );

    // inspect: one more layer, the history entry.
    let inspect = w.env.strata.inspect("localhost/committed:1");
    let layers = inspect["RootFS"]["Layers"].as_array().unwrap().clone();
    assert_eq!(layers.len(), 2, "{inspect:#}");
    let config = fs::read(
        w.env
            .strata
            .root()
            .join("images")
            .join(&id["sha256:".len()..])
            .join("config.json"),
    )
    .unwrap();
    assert_eq!(
        support::sha256_digest(&config),
        id,
        "image id = sha256 of the config"
    );
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"], Value::Array(layers));
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["comment"], "my message");
    assert_eq!(last["author"], "Me <me@example.com>");
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("X=1"))
    );

    // It runs.
    let out = w
        .run(&["run", "--rm", "--pull", "never", "localhost/committed:1"])
        .ok();
    assert_eq!(out.stdout, "new\n", "{}", out.describe());
    let out = w
        .run(&[
            "run",
            "--rm",
            "--pull",
            "never",
            "localhost/committed:1",
            "sh",
            "-c",
            "echo $X; cat /etc/motd | tail -n 1",
        ])
        .ok();
    assert_eq!(out.stdout, "1\nchanged\n", "{}", out.describe());

    // Mounted read-only, equal to the export; rmi refused while mounted.
    let mounted = PathBuf::from(
        w.run(&["mount", "--image", "localhost/committed:1"])
            .ok()
            .stdout
            .trim(),
    );
    let again = w.run(&["mount", "--image", "localhost/committed:1"]).ok();
    assert_eq!(PathBuf::from(again.stdout.trim()), mounted, "idempotent");
    let err = fs::write(mounted.join("newfile"), "no").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    tree::assert_same(
        "image mount",
        &mounted,
        "export",
        &exported,
        &Options::default().ignore_mtime(".", "the root is in no layer tar"),
    );
    w.run(&["rmi", "localhost/committed:1"])
        .assert_error(&["mounted"]);
    w.run(&["umount", "--image", "localhost/committed:1"]).ok();
    assert!(crate::support::strata::mounts_at(&mounted).is_empty());

    // rmi removes it and keeps the parent (the container still uses it anyway).
    w.run(&["rm", "-f", "c1"]).ok();
    w.run(&["rmi", "localhost/committed:1"]).ok();
    let images = w.env.strata.images();
    assert_eq!(images.len(), 1, "{images:#?}");
    w.run(&["check"]).ok();
}

#[test]
fn a_one_layer_image_mounts_read_only_at_a_given_dir() {
    let w = World::new();
    w.env.strata.pull(&w.image).ok();
    let scratch = support::tempdir("imgmount");
    let dir = scratch.path().join("mnt");
    let out = w
        .run(&["mount", "--image", &w.image, dir.to_str().unwrap()])
        .ok();
    assert_eq!(PathBuf::from(out.stdout.trim()), dir);
    assert!(fs::create_dir(dir.join("x")).is_err());
    let exported = scratch.path().join("rootfs");
    w.run(&[
        "export",
        "--pull",
        "never",
        &w.image,
        exported.to_str().unwrap(),
    ])
    .ok();
    tree::assert_same(
        "image mount",
        &dir,
        "export",
        &exported,
        &Options::default().ignore_mtime(".", "the mount point is not the image's root"),
    );
    w.run(&["check"]).ok();
    w.run(&["image", "prune", "-a", "-f"]).ok();
    assert_eq!(w.env.strata.images().len(), 1, "a mounted image is in use");
    w.run(&["rmi", "-f", &w.image]).assert_error(&["mounted"]);
    // Another directory while mounted is refused; the same one is a no-op.
    let other = scratch.path().join("other");
    w.run(&["mount", "--image", &w.image, other.to_str().unwrap()])
        .assert_error(&["mounted at"]);
    w.run(&["mount", "--image", &w.image, dir.to_str().unwrap()])
        .ok();
    w.run(&["umount", "--image", &w.image]).ok();
    assert!(crate::support::strata::mounts_at(&dir).is_empty());
    w.run(&["rmi", &w.image]).ok();
    assert!(w.env.strata.images().is_empty());
}

/// The changes of [`EXPECTED`], as a shell script run inside a container.
const SCRIPT: &str = "echo new > /newfile; echo changed >> /etc/motd; echo x > /etc/new; \
     rm /etc/issue; rm -rf /etc/apk; rm -rf /media; mkdir /media; echo x > /media/x";

#[test]
fn diff_equals_docker_diff_of_a_private_dockerd() {
    let w = World::new();
    let dockerd = Dockerd::start("overlay2");
    // A loopback registry is insecure for dockerd by default.
    dockerd.docker(&["pull", "-q", &w.image]);
    dockerd.docker(&[
        "run",
        "--name",
        "c1",
        "--network",
        "none",
        &w.image,
        "sh",
        "-c",
        SCRIPT,
    ]);
    let docker = dockerd.docker(&["diff", "c1"]);

    w.run(&["run", "--name", "c1", &w.image, "sh", "-c", SCRIPT])
        .ok();
    let strata = w.run(&["diff", "c1"]).ok().stdout;
    // dockerd lists in Go map order (it varies from run to run): compared as sets.
    let sorted = |text: &str| {
        let mut v: Vec<String> = text.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&strata),
        sorted(&docker),
        "strata diff:\n{strata}docker diff:\n{docker}"
    );
    assert_eq!(lines(&strata), EXPECTED);
}

#[test]
fn an_interrupted_commit_exits_130_and_records_nothing() {
    let w = World::new();
    let out = w.run(&["pull-and-mount", "--name", "c1", &w.image]).ok();
    let merged = PathBuf::from(out.stdout.trim());
    // Large enough that the commit is still storing its layer when the signal comes.
    let mut big = fs::File::create(merged.join("big")).unwrap();
    let block = vec![0xab_u8; 1 << 20];
    for _ in 0..768 {
        big.write_all(&block).unwrap();
    }
    drop(big);
    let root = w.env.strata.root().to_path_buf();
    let child = Command::new(crate::support::strata::bin())
        .arg("--root")
        .arg(&root)
        .args(["commit", "c1", "localhost/big:1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the layer is being unpacked into staging/ (a state, not a time).
    let staging = root.join("staging");
    let mut child = child;
    let mut signalled = false;
    while child.try_wait().unwrap().is_none() {
        if fs::read_dir(&staging).unwrap().next().is_some() {
            let pid = i32::try_from(child.id()).unwrap();
            unsafe { libc::kill(pid, libc::SIGINT) };
            signalled = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        signalled,
        "the commit ended before it was seen storing its layer"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(w.env.strata.images().len(), 1, "no image was recorded");
    let left: Vec<_> = fs::read_dir(&staging).unwrap().collect();
    assert!(left.is_empty(), "staging left: {left:?}");
    // The container is untouched and commits afterwards.
    w.run(&["commit", "c1", "localhost/big:1"]).ok();
    assert_eq!(w.env.strata.images().len(), 2);
}

#[test]
fn a_committed_image_commits_again_on_top() {
    let w = World::new();
    let merged = w.changed_container("c1");
    fs::write(merged.join("first"), "1\n").unwrap();
    w.run(&["commit", "c1", "localhost/stack:1"]).ok();
    let out = w
        .run(&["pull-and-mount", "--name", "c2", "localhost/stack:1"])
        .ok();
    let merged2 = PathBuf::from(out.stdout.trim());
    fs::write(merged2.join("second"), "2\n").unwrap();
    fs::remove_file(merged2.join("first")).unwrap();
    assert_eq!(
        lines(&w.run(&["diff", "c2"]).ok().stdout),
        ["A /second", "D /first"]
    );
    let id = w.run(&["commit", "c2"]).ok().stdout.trim().to_string();
    let inspect = w.env.strata.inspect(&id);
    assert_eq!(inspect["RootFS"]["Layers"].as_array().unwrap().len(), 3);
    assert_eq!(inspect["RepoTags"], serde_json::json!([]), "dangling");
    // A dangling image runs by its id, full or short, as Docker's does (no registry asked).
    let short = &id.trim_start_matches("sha256:")[..12];
    for by_id in [id.as_str(), short] {
        let out = w.run(&["run", "--rm", by_id, "cat", "/second"]).ok();
        assert_eq!(out.stdout, "2\n", "{}", out.describe());
    }
    w.run(&["tag", &id, "localhost/stack:2"]).ok();
    let out = w
        .run(&[
            "run",
            "--rm",
            "--pull",
            "never",
            "localhost/stack:2",
            "sh",
            "-c",
            "cat /newfile /second; test ! -e /first && test ! -e /etc/issue",
        ])
        .ok();
    assert_eq!(out.stdout, "new\n2\n", "{}", out.describe());
}

//! Several strata processes on one root at once: pulls, containers coming and going, rmi and
//! prunes. Every command succeeds or fails with a documented conflict, surviving containers
//! mount with all their layers, and the store stays consistent.

use std::fs;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lifecycle::{assert_layer_whole, assert_skeleton, push_pair};
use crate::support::Env;
use crate::support::strata::{Output, bin};

/// How long the processes loop.
const SPAN: Duration = Duration::from_secs(15);

/// The messages of the conflicts a command may meet, each documented.
const CONFLICTS: [&str; 3] = [
    // rmi of an image another process removed first.
    "no such image",
    // rmi of an image a container of the mounting loop uses.
    "(must force) - image is being used by container",
    // A container created on an image removed between its lookup and the creation.
    "was removed by another strata process meanwhile",
];

/// The command succeeded, or failed with one of [`CONFLICTS`] (and never panicked).
#[track_caller]
fn ok_or_conflict(out: &Output) -> bool {
    if out.status.success() {
        return true;
    }
    assert!(
        out.code() == Some(1) && CONFLICTS.iter().any(|c| out.stderr.contains(c)),
        "neither success nor a documented conflict:\n{}",
        out.describe()
    );
    false
}

#[test]
fn pulls_containers_rmi_and_prunes_at_once_keep_the_store_consistent() {
    let env = Env::new();
    let (a, b) = push_pair(&env);
    let (ra, rb) = (env.r("test/a:v1"), env.r("test/b:v1"));
    let s = &env.strata;
    let end = Instant::now() + SPAN;
    let mut counts = [0usize; 3];
    std::thread::scope(|scope| {
        let pulls = scope.spawn(|| {
            let mut n = 0;
            while Instant::now() < end {
                s.pull(&ra).ok();
                s.pull(&rb).ok();
                n += 2;
            }
            n
        });
        let containers = scope.spawn(|| {
            let mut n = 0;
            while Instant::now() < end {
                let name = format!("c{n}");
                let out = s.run(&["pull-and-mount", "--name", &name, &ra]);
                if ok_or_conflict(&out) {
                    let merged = Path::new(out.stdout.trim());
                    assert_eq!(
                        fs::read_to_string(merged.join("app/a")).unwrap(),
                        "image a\n"
                    );
                    assert!(
                        merged.join("bin/busybox").is_file(),
                        "the base layer is mounted"
                    );
                    s.run(&["rm", "-f", &name]).ok();
                }
                n += 1;
            }
            n
        });
        let removals = scope.spawn(|| {
            let mut n = 0;
            while Instant::now() < end {
                ok_or_conflict(&s.run(&["rmi", &ra]));
                ok_or_conflict(&s.run(&["rmi", &rb]));
                s.run(&["image", "prune", "-a", "-f"]).ok();
                n += 3;
            }
            n
        });
        counts = [
            pulls.join().unwrap(),
            containers.join().unwrap(),
            removals.join().unwrap(),
        ];
    });
    eprintln!("rounds (pulls, containers, removals): {counts:?}");
    assert!(counts.iter().all(|&n| n >= 2), "too few rounds: {counts:?}");

    // Every image left has all its layers; a container on it mounts.
    for (reference, image) in [(&ra, &a), (&rb, &b)] {
        if s.run(&["inspect", reference]).status.success() {
            for chain in image.chain_ids() {
                assert_layer_whole(s, &chain);
            }
        }
    }
    // Nothing the concurrent commands did left the store inconsistent, nor anything for a
    // recovery to do: no trash (removals empty it side by side), no intent marker (every
    // command ended), a name index entry for each container and no other.
    s.run(&["check"]).ok();
    let entries = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(s.root().join(dir))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    assert_eq!(entries("trash"), Vec::<String>::new());
    assert_eq!(entries("intents"), Vec::<String>::new());
    let mut names: Vec<String> = s
        .ps()
        .iter()
        .filter_map(|c| c["Name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(entries("container-names"), names);
    s.pull(&ra).ok();
    s.run(&["check"]).ok();
    let out = s.run(&["pull-and-mount", "--name", "last", &ra]).ok();
    assert!(Path::new(out.stdout.trim()).join("app/a").is_file());
    s.run(&["rm", "-f", "last"]).ok();
    s.run(&["system", "prune", "-a", "-f"]).ok();
    s.run(&["check"]).ok();
    assert_skeleton(s);
}

/// A command that cannot have the store lock at once waits, says so once, and goes on.
#[test]
fn a_command_waiting_for_the_store_lock_says_so_and_goes_on() {
    let env = Env::new();
    let s = &env.strata;
    s.run(&["images"]).ok();
    let lock = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(s.root().join("locks/store.lock"))
        .expect("open store.lock");
    // SAFETY: a valid open fd.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_SH) }, 0);
    let child = Command::new(bin())
        .arg("--root")
        .arg(s.root())
        .args(["image", "prune", "-f"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    std::thread::sleep(Duration::from_millis(1800));
    drop(lock);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = format!(
        "warning: waiting for other strata processes on {}\n",
        s.root().display()
    );
    assert_eq!(stderr, line);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Total reclaimed space: 0B\n"
    );
}

//! `diff` against a real registry, real overlay mounts and runc.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::support::image::{self, Flavor};
use crate::support::{self, Env};

/// The changes made through the container's merged dir, and what `docker diff` (dockerd 20.10's
/// overlay2 rules) lists for them: `/etc` changed as the parent of added and deleted entries,
/// `rm -rf` of a lower dir a whiteout (`D`), a dir removed and made again opaque (`D`, then its
/// new entries `A`).
const EXPECTED: &[&str] = &[
    "C /etc",
    "D /etc/apk",
    "D /etc/issue",
    "C /etc/motd",
    "A /etc/new",
    "D /media",
    "A /media/x",
    "A /newfile",
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

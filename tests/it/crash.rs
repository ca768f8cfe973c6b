//! Commands killed with SIGKILL at random points: the next mutating command recovers, and
//! removing everything brings the root back to its bare skeleton.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lifecycle::{assert_layer_whole, assert_skeleton, push_pair};
use crate::support::Env;
use crate::support::strata::{Strata, bin};

/// Kills, at most.
const ROUNDS: usize = 24;

/// Time for the kills, at most.
const SPAN: Duration = Duration::from_secs(20);

/// Starts `strata --root ROOT ARGS`, lets it run for `ms`, then kills it with SIGKILL.
fn kill_after(s: &Strata, args: &[&str], ms: u64) {
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(s.root())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strata");
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    let _ = child.wait();
}

/// The ids `ps --json` lists.
fn container_ids(s: &Strata) -> Vec<String> {
    s.ps()
        .iter()
        .filter_map(|c: &Value| c["Id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn commands_killed_at_random_points_leave_a_recoverable_store() {
    let env = Env::new();
    let (a, _) = push_pair(&env);
    let (ra, rb) = (env.r("test/a:v1"), env.r("test/b:v1"));
    let s = &env.strata;
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let end = Instant::now() + SPAN;
    for round in 0..ROUNDS {
        if Instant::now() >= end {
            break;
        }
        let name = format!("k{round}");
        let ids = container_ids(s);
        let rm: Vec<&str> = ["rm", "-f"]
            .into_iter()
            .chain(ids.iter().map(String::as_str))
            .collect();
        let args: Vec<&str> = match round % 6 {
            0 => vec!["pull", &ra],
            1 => vec!["pull-and-mount", "--name", &name, &rb],
            2 if ids.is_empty() => vec!["pull", &rb],
            2 => rm,
            3 => vec!["rmi", "-f", &ra],
            4 => vec!["image", "prune", "-a", "-f"],
            _ => vec!["system", "prune", "-a", "-f"],
        };
        kill_after(s, &args, rng.u64(5..400));
    }

    // A mutating command recovers and works.
    s.pull(&ra).ok();
    for chain in a.chain_ids() {
        assert_layer_whole(s, &chain);
    }
    let out = s.run(&["pull-and-mount", "--name", "after", &ra]).ok();
    assert!(Path::new(out.stdout.trim()).join("app/a").is_file());
    // Recovered: the store checks clean.
    s.run(&["check"]).ok();

    let ids = container_ids(s);
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    s.run(&rm).ok();
    s.run(&["system", "prune", "-a", "-f"]).ok();
    s.run(&["check"]).ok();
    assert_skeleton(s);
}

/// The marker a command killed while changing the store leaves: nobody holds its lock.
fn plant_killed_marker(s: &Strata) {
    std::fs::write(s.root().join("intents/999999999-00000000deadbeef"), b"")
        .expect("plant a marker");
}

#[test]
fn a_killed_commands_marker_gets_the_store_scanned_and_the_name_index_repaired() {
    let env = Env::new();
    push_pair(&env);
    let ra = env.r("test/a:v1");
    let s = &env.strata;
    s.run(&["pull-and-mount", "--name", "web", &ra]).ok();
    let root = s.root();
    // What a creation killed after claiming its name, and a removal killed after the
    // container's record went, leave.
    let ghost = root.join("container-names/ghost");
    std::os::unix::fs::symlink("ab".repeat(32), &ghost).expect("plant an index entry");
    let orphan = root.join("overlay2").join("cd".repeat(32));
    std::fs::create_dir(&orphan).expect("plant an orphan");

    // Every command so far ended cleanly: the store is not scanned.
    s.pull(&ra).ok();
    assert!(orphan.exists() && ghost.symlink_metadata().is_ok());
    // The name of a killed creation is free all the same.
    s.run(&["pull-and-mount", "--name", "ghost", &ra]).ok();

    let other = root.join("container-names/other");
    std::os::unix::fs::symlink("ef".repeat(32), &other).expect("plant an index entry");
    plant_killed_marker(s);
    s.pull(&ra).ok();
    assert!(!orphan.exists(), "the scan did not run");
    assert!(other.symlink_metadata().is_err(), "the stale entry stayed");
    assert_eq!(
        std::fs::read_dir(root.join("intents"))
            .expect("intents")
            .count(),
        0,
        "markers left after a clean end"
    );
    // The live containers keep their names.
    let out = s.run(&["pull-and-mount", "--name", "web", &ra]);
    out.assert_error(&["already in use"]);
    s.run(&["check"]).ok();
    s.remove_all_containers();
    s.run(&["system", "prune", "-a", "-f"]).ok();
    assert_skeleton(s);
}

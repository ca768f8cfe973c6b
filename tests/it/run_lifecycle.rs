//! `strata run`'s lifecycle with the real runc: Docker's exit codes (0, 1, 124, 125, 126,
//! 127), signals sent to strata reaching the container, `--stop-timeout`, `stop` and `kill`
//! from another process, `ps` states, and `--rm` cleanup after each path.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

use crate::support::image::{self, Flavor};
use crate::support::strata::{self as strata_bin, Output};
use crate::support::{self, Env};

/// The test's world; every container goes on drop, also when the test failed.
struct World {
    env: Env,
    reference: String,
}

impl World {
    fn new() -> World {
        support::require_tool("runc");
        let env = Env::new();
        let img = image::alpine(Flavor::Oci, support::host_alpine_arch());
        env.push.image("library/alpine", Some("3.20.3"), &img);
        let reference = env.r("library/alpine:3.20.3");
        World { env, reference }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.env.strata.run(args)
    }

    /// `strata run ARGS... IMAGE CMD...`, which must end with `code`, leaving no container.
    #[track_caller]
    fn run_rm(&self, flags: &[&str], cmd: &[&str], code: i32) -> Output {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.push(&self.reference);
        args.extend(cmd);
        let out = self.run(&args).fails_with(code);
        self.assert_no_containers();
        out
    }

    #[track_caller]
    fn assert_no_containers(&self) {
        let ps = self.env.strata.ps();
        assert!(ps.is_empty(), "--rm left containers: {ps:?}");
        assert!(
            self.env.strata.mounts_under_root().is_empty(),
            "mounts left under the root"
        );
    }

    /// Starts `strata run FLAGS... IMAGE sh -c SCRIPT` in the background (stdin not a
    /// terminal), and waits until the script printed `ready`.
    fn start(&self, flags: &[&str], script: &str) -> Running {
        let mut child = Command::new(strata_bin::bin())
            .arg("--root")
            .arg(self.env.strata.root())
            .arg("run")
            .args(flags)
            .arg(&self.reference)
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start strata run");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        assert_eq!(line, "ready\n", "the container did not start: {line:?}");
        Running { child, stdout }
    }

    /// The container `ps --json` lists as `name`.
    fn ps_entry(&self, name: &str) -> Value {
        self.env
            .strata
            .ps()
            .into_iter()
            .find(|c| c["Name"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed"))
    }

    /// The `ps` table row of `name`.
    fn ps_row(&self, name: &str) -> String {
        let out = self.run(&["ps"]).ok();
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} not in:\n{}", out.describe()))
            .to_string()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.env.strata.remove_all_containers();
    }
}

/// A `strata run` in the background.
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    fn signal(&self, signal: i32) {
        // SAFETY: sends a signal to our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Waits for it; returns its exit code and the rest of its stdout and its stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        use std::io::Read as _;
        let mut rest = String::new();
        for line in (&mut self.stdout).lines() {
            rest.push_str(&line.unwrap_or_default());
            rest.push('\n');
        }
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let status = self.child.wait().expect("wait for strata run");
        (status.code(), rest, stderr)
    }
}

impl Running {
    /// Kills strata alone (SIGKILL) and reaps it, without reading its output: the runtime it
    /// started runs on and keeps the pipes open.
    fn kill_strata(mut self) -> Option<i32> {
        self.signal(libc::SIGKILL);
        self.child.wait().expect("wait for strata run").code()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LOOP: &str = "while true; do sleep 0.1; done";

#[test]
fn run_exit_codes_are_dockers() {
    let w = World::new();
    w.run_rm(&[], &["true"], 0);
    w.run_rm(&[], &["sh", "-c", "exit 1"], 1);

    // strata's own failures: 125.
    let missing_image = w.env.r("library/nothing:here");
    let out = w
        .run(&["run", "--rm", &missing_image, "true"])
        .fails_with(125);
    assert!(out.stderr.contains("error: "), "{}", out.describe());
    let out = w.run_rm(&["-u", "nosuchuser"], &["true"], 125);
    assert!(out.stderr.contains("nosuchuser"), "{}", out.describe());

    // A command that cannot be executed: 126; one not found: 127 (Docker's wording).
    for (cmd, reason) in [
        ("/etc/passwd", "permission denied"),
        ("/etc", "is a directory"),
    ] {
        let out = w.run_rm(&[], &[cmd], 126);
        assert!(
            out.stderr.contains(&format!("exec: \"{cmd}\": {reason}")),
            "{}",
            out.describe()
        );
    }
    let out = w.run_rm(&[], &["nosuchcommand"], 127);
    assert!(
        out.stderr
            .contains("exec: \"nosuchcommand\": executable file not found in $PATH"),
        "{}",
        out.describe()
    );
    w.run_rm(&[], &["/no/such/file"], 127);
    // A script whose interpreter is missing: runc's own failure, recognised from its log.
    w.run_rm(
        &[],
        &[
            "sh",
            "-c",
            "printf '#!/no/shell\\n' > /s && chmod +x /s && exec /s",
        ],
        127,
    );

    // The time limit: SIGTERM (pid 1 ignores it), SIGKILL after the stop timeout, exit 124.
    let out = w.run_rm(
        &["--timeout", "1", "--stop-timeout", "1"],
        &["sleep", "30"],
        124,
    );
    assert!(out.stderr.contains("timed out"), "{}", out.describe());
    // A run within its limit keeps its own code.
    w.run_rm(&["--timeout", "30"], &["sh", "-c", "exit 3"], 3);
}

#[test]
fn signals_reach_the_container_and_stop_timeout_kills() {
    let w = World::new();

    // SIGTERM to strata's pid alone reaches the container's trap.
    let run = w.start(
        &["--rm"],
        &format!("trap 'echo got TERM; exit 42' TERM; echo ready; {LOOP}"),
    );
    run.signal(libc::SIGTERM);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(42), "{stdout}\n{stderr}");
    assert_eq!(stdout, "got TERM\n");
    w.assert_no_containers();

    // SIGINT (a CI runner cancelling the job) and other proxied signals too.
    for (signal, name) in [(libc::SIGINT, "INT"), (libc::SIGUSR1, "USR1")] {
        let run = w.start(
            &["--rm"],
            &format!("trap 'echo got {name}; exit 5' {name}; echo ready; {LOOP}"),
        );
        run.signal(signal);
        let (code, stdout, stderr) = run.finish();
        assert_eq!(code, Some(5), "{stdout}\n{stderr}");
        assert_eq!(stdout, format!("got {name}\n"));
        w.assert_no_containers();
    }

    // A process that ignores SIGTERM is killed after --stop-timeout.
    let run = w.start(
        &["--rm", "--stop-timeout", "1"],
        &format!("trap '' TERM; echo ready; {LOOP}"),
    );
    run.signal(libc::SIGTERM);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(137), "{stdout}\n{stderr}");
    w.assert_no_containers();
}

#[test]
fn stop_kill_rm_and_ps_states_across_processes() {
    let w = World::new();

    // Created and mounted, never run.
    w.run(&["pull-and-mount", "--name", "m", &w.reference]).ok();
    assert_eq!(w.ps_entry("m")["State"], "created");
    let row = w.ps_row("m");
    assert!(
        row.contains(" mounted ") && row.contains("Created"),
        "{row}"
    );
    w.run(&["umount", "m"]).ok();
    assert!(w.ps_row("m").contains(" created "), "{}", w.ps_row("m"));
    w.run(&["rm", "m"]).ok();

    // Running: ps shows it; rm refuses without -f; stop from another process.
    let run = w.start(&["--name", "s1"], &format!("echo ready; {LOOP}"));
    let entry = w.ps_entry("s1");
    assert_eq!(entry["State"], "running", "{entry}");
    assert!(entry["Pid"].as_u64().is_some_and(|p| p > 0), "{entry}");
    // `inspect` carries Docker's State object.
    let state = &w.env.strata.inspect("s1")["State"];
    assert_eq!(state["Status"], "running", "{state}");
    assert_eq!(state["Running"], true, "{state}");
    assert_eq!(state["Pid"], entry["Pid"], "{state}");
    assert!(w.ps_row("s1").contains(" Up "), "{}", w.ps_row("s1"));
    let out = w.run(&["ps", "--format", "json"]).ok();
    assert!(
        out.stdout.contains("\"State\":\"running\""),
        "{}",
        out.describe()
    );
    w.run(&["rm", "s1"]).assert_error(&["s1", "running"]);
    let out = w.run(&["kill", "-s", "NOPE", "s1"]);
    assert_ne!(out.code(), Some(0), "{}", out.describe());
    // sh as pid 1 ignores SIGTERM: SIGKILL after 1 s.
    let out = w.run(&["stop", "-t", "1", "s1"]).ok();
    assert_eq!(out.stdout, "s1\n");
    let (code, _, stderr) = run.finish();
    assert_eq!(code, Some(137), "{stderr}");
    let entry = w.ps_entry("s1");
    assert_eq!(entry["State"], "exited", "{entry}");
    assert_eq!(entry["ExitCode"], 137, "{entry}");
    let state = &w.env.strata.inspect("s1")["State"];
    assert_eq!(
        (&state["Status"], &state["Running"], &state["ExitCode"]),
        (&json!("exited"), &json!(false), &json!(137)),
        "{state}"
    );
    let row = w.ps_row("s1");
    assert!(
        row.contains("exited (137)") && row.contains("Exited (137) "),
        "{row}"
    );
    // Stopping a stopped container is harmless; killing it is an error.
    w.run(&["stop", "s1"]).ok();
    w.run(&["kill", "s1"]).assert_error(&["s1", "not running"]);
    w.run(&["rm", "s1"]).ok();

    // kill -s with a name: the container's trap decides the exit code.
    let run = w.start(
        &["--name", "k1"],
        &format!("trap 'exit 3' USR1; echo ready; {LOOP}"),
    );
    let out = w.run(&["kill", "-s", "SIGUSR1", "k1"]).ok();
    assert_eq!(out.stdout, "k1\n");
    let (code, _, stderr) = run.finish();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(w.ps_row("k1").contains("exited (3)"), "{}", w.ps_row("k1"));
    w.run(&["rm", "k1"]).ok();

    // kill (default KILL) of a --rm run: it is cleaned up.
    let run = w.start(&["--rm", "--name", "k2"], &format!("echo ready; {LOOP}"));
    w.run(&["kill", "k2"]).ok();
    let (code, _, stderr) = run.finish();
    assert_eq!(code, Some(137), "{stderr}");
    w.assert_no_containers();

    // rm -f of a running --rm container: killed and removed, and its run ends cleanly.
    let run = w.start(&["--rm", "--name", "f1"], &format!("echo ready; {LOOP}"));
    w.run(&["rm", "-f", "f1"]).ok();
    let (code, _, stderr) = run.finish();
    assert_eq!(code, Some(137), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    w.assert_no_containers();

    // A `strata run` killed with SIGKILL: the container runs on, ps still knows it, stop
    // ends it, and then it is exited with an unknown code.
    let run = w.start(&["--name", "z"], &format!("echo ready; {LOOP}"));
    assert_eq!(run.kill_strata(), None, "killed by a signal");
    assert_eq!(w.ps_entry("z")["State"], "running");
    w.run(&["stop", "-t", "0", "z"]).ok();
    let entry = w.ps_entry("z");
    assert_eq!(entry["State"], "exited", "{entry}");
    assert!(entry["ExitCode"].is_null(), "{entry}");
    assert!(
        w.ps_row("z").contains("exited (unknown)"),
        "{}",
        w.ps_row("z")
    );
    w.run(&["rm", "z"]).ok();
    w.assert_no_containers();
}

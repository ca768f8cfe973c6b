//! A private dockerd for one test: its own data root, exec root and socket, no networking
//! set-up (`--bridge=none --iptables=false`), stopped on drop with its containers removed.

use std::fs;
use std::process::{Child, Command};
use std::time::Duration;

/// A running private dockerd.
pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Dockerd {
    /// Starts dockerd with the storage driver `driver` (`overlay2`, `vfs`) and waits until it
    /// answers.
    pub fn start(driver: &str) -> Dockerd {
        super::require_tool("dockerd");
        super::require_tool("docker");
        let dir = super::tempdir("dockerd");
        let d = dir.path();
        let log = fs::File::create(d.join("log")).expect("dockerd log");
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("sock").display()))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .arg(format!("--storage-driver={driver}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let dockerd = Dockerd { dir, child };
        for _ in 0..60 {
            let up = Command::new("docker")
                .args(dockerd.host())
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return dockerd;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "dockerd did not come up:\n{}",
            fs::read_to_string(dockerd.dir.path().join("log")).unwrap_or_default()
        );
    }

    /// `-H unix://SOCKET`, for a `docker` command of this daemon.
    pub fn host(&self) -> [String; 2] {
        [
            "-H".to_string(),
            format!("unix://{}", self.dir.path().join("sock").display()),
        ]
    }

    /// `docker -H <sock> ARGS...`: its stdout; panics when it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        super::run_ok(Command::new("docker").args(self.host()).args(args))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let listed = Command::new("docker")
            .args(self.host())
            .args(["ps", "-aq"])
            .output();
        if let Ok(out) = listed {
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(self.host())
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
        // SIGTERM: dockerd stops the containerd it started, then exits.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

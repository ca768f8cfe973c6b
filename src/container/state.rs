//! Whether a container runs, across processes: `strata run` writes `<state dir>/state.json`
//! when the runtime starts and again when it exits (with the exit code); readers check a
//! "running" file against the runtime (`<runtime> state`), so that a `strata run` killed
//! before it could write the end is not believed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::ContainerError;
use super::lifecycle::Container;
use crate::bundle::runtime;
use crate::sys::atomic::{self, Durability};

/// Docker's container states (`State.Status`), as far as strata knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created (and maybe mounted), never started.
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// It ran and has stopped.
    Exited,
}

impl Status {
    /// Docker's word for it: `created`, `running`, `exited`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// A container's run state (`state.json`, Docker's capitalised keys).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunState {
    /// created, running or exited.
    #[serde(rename = "Status", default)]
    pub status: Status,
    /// The OCI runtime binary running it (absolute).
    #[serde(rename = "Runtime", default)]
    pub runtime: PathBuf,
    /// The container's init process on the host, while it runs (0: unknown or stopped).
    #[serde(rename = "Pid", default)]
    pub pid: u32,
    /// The `strata run` process supervising it.
    #[serde(rename = "SupervisorPid", default)]
    pub supervisor_pid: u32,
    /// The exit code once exited (128 + the signal for a signal death); `None` while it runs
    /// or when its supervisor died before it could write it.
    #[serde(rename = "ExitCode", default)]
    pub exit_code: Option<i32>,
    /// RFC 3339 start time ("" before the first start).
    #[serde(rename = "StartedAt", default)]
    pub started_at: String,
    /// RFC 3339 end time ("" while it runs, or when unknown).
    #[serde(rename = "FinishedAt", default)]
    pub finished_at: String,
}

impl RunState {
    /// Whether the container's process runs (as recorded or checked).
    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }

    /// Whether the container ran and has stopped.
    pub fn is_exited(&self) -> bool {
        self.status == Status::Exited
    }
}

impl Container {
    fn state_file(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    /// Records the run state (atomically: readers see the old or the new file).
    pub fn write_run_state(&self, state: &RunState) -> Result<(), ContainerError> {
        let path = self.state_file();
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| ContainerError::State {
            action: "write",
            path: path.clone(),
            source: e.into(),
        })?;
        bytes.push(b'\n');
        // Not synced: after a reboot no container runs, whatever the file says.
        atomic::write_file(&path, &bytes, 0o600, Durability::NoSync).map_err(|e| {
            ContainerError::State {
                action: "write",
                path: e.path,
                source: e.source,
            }
        })
    }

    /// The run state as recorded, without asking the runtime ([`RunState::default`], i.e.
    /// created, when it never ran).
    pub fn recorded_run_state(&self) -> Result<RunState, ContainerError> {
        read_state(&self.state_file())
    }

    /// The run state now: a recorded "running" is checked with the runtime, and becomes
    /// "exited" (exit code unknown) when the runtime has no such running container any more,
    /// e.g. after its `strata run` was killed and the container stopped.
    pub fn run_state(&self) -> Result<RunState, ContainerError> {
        let mut state = self.recorded_run_state()?;
        if state.status != Status::Running {
            return Ok(state);
        }
        match runtime::container_state(&state.runtime, self.id()) {
            Ok(Some(now)) if now.is_alive() => state.pid = now.pid,
            Ok(_) => {
                // The supervisor may be writing the exit code right now: read once more.
                state = self.recorded_run_state()?;
                if state.status == Status::Running {
                    state.status = Status::Exited;
                    state.pid = 0;
                }
            }
            Err(e) => {
                tracing::warn!(
                    "container {}: cannot ask the runtime about it ({e}); taken as exited",
                    self.name()
                );
                state.status = Status::Exited;
                state.pid = 0;
            }
        }
        Ok(state)
    }

    /// Whether the container's process runs now (see [`Container::run_state`]).
    pub fn is_running(&self) -> Result<bool, ContainerError> {
        Ok(self.run_state()?.status == Status::Running)
    }
}

fn read_state(path: &Path) -> Result<RunState, ContainerError> {
    let err = |source| ContainerError::State {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(e.into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunState::default()),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_wrote_and_older_or_missing_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state.json");
        assert_eq!(read_state(&path).unwrap(), RunState::default());
        std::fs::write(&path, r#"{"Status":"exited","ExitCode":3}"#).unwrap();
        let state = read_state(&path).unwrap();
        assert_eq!(state.status, Status::Exited);
        assert_eq!(state.exit_code, Some(3));
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["Status"], "exited");
        assert_eq!(json["ExitCode"], 3);
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            read_state(&path),
            Err(ContainerError::State { .. })
        ));
    }
}

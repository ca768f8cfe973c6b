//! Signalling a container that runs under a `strata run` in another process: `kill` and
//! `stop` (SIGTERM, then SIGKILL after a timeout), through the runtime recorded in its run
//! state.

use std::time::{Duration, Instant};

use super::error::ContainerError;
use super::lifecycle::Container;
use super::state::RunState;
use crate::bundle::runtime;

/// How often a stopping container is looked at.
const POLL: Duration = Duration::from_millis(100);
/// How long a container may take to go once SIGKILL was sent.
const KILL_GRACE: Duration = Duration::from_secs(30);

impl Container {
    /// The run state of a running container, else [`ContainerError::NotRunning`].
    fn running_state(&self) -> Result<RunState, ContainerError> {
        let state = self.run_state()?;
        if state.status != super::state::Status::Running {
            return Err(ContainerError::NotRunning {
                name: self.name().to_string(),
            });
        }
        Ok(state)
    }

    /// Sends `signal` to the container's main process (`docker kill -s`).
    pub fn kill(&self, signal: i32) -> Result<(), ContainerError> {
        let state = self.running_state()?;
        if !runtime::kill_container(&state.runtime, self.id(), signal)? {
            // It stopped between the look and the signal.
            return Err(ContainerError::NotRunning {
                name: self.name().to_string(),
            });
        }
        Ok(())
    }

    /// Stops the container as `docker stop -t` does: SIGTERM, then SIGKILL when it still runs
    /// after `timeout`; returns once it has stopped. A container that does not run is left
    /// as it is.
    pub fn stop(&self, timeout: Duration) -> Result<(), ContainerError> {
        let state = self.run_state()?;
        if state.status != super::state::Status::Running {
            return Ok(());
        }
        let alive = || -> Result<bool, ContainerError> {
            Ok(runtime::container_state(&state.runtime, self.id())?.is_some_and(|s| s.is_alive()))
        };
        if !timeout.is_zero() {
            runtime::kill_container(&state.runtime, self.id(), libc::SIGTERM)?;
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if !alive()? {
                    return Ok(());
                }
                std::thread::sleep(POLL);
            }
        }
        runtime::kill_container(&state.runtime, self.id(), libc::SIGKILL)?;
        let deadline = Instant::now() + KILL_GRACE;
        while Instant::now() < deadline {
            if !alive()? {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        Err(ContainerError::RuntimeFailed {
            message: format!(
                "container {} still runs {}s after SIGKILL",
                self.name(),
                KILL_GRACE.as_secs()
            ),
            exit_code: 125,
        })
    }
}

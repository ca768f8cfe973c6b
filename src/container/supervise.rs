//! Running the container in the foreground as `docker run` does: the runtime runs as a child,
//! signals sent to this process go to the container's process (`--sig-proxy`), a SIGTERM or
//! SIGINT, or the run's time limit, is followed by SIGKILL after the stop timeout, and the
//! run state is recorded for other processes (`ps`, `stop`, `kill`, `rm`).
//!
//! Signals reach the container through `<runtime> kill`, not through the runtime's own
//! forwarding: a signal that comes before the container exists is kept and sent again, rather
//! than killing the runtime half-way.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use super::error::ContainerError;
use super::lifecycle::Container;
use super::state::{RunState, Status};
use crate::bundle::{BundleError, runtime};
use crate::store::now_rfc3339;
use crate::sys::signal_queue::{self, SignalQueue};

/// The signals `docker run` proxies to the container by default (those a process can catch,
/// but SIGCHLD, SIGPIPE, SIGWINCH and the job-control ones).
pub const PROXIED_SIGNALS: [i32; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGALRM,
    libc::SIGCONT,
];

/// The signals of a supervised run, caught from [`RunSignals::catch`] on: caught before the
/// run is prepared (bundle, mounts), a signal that comes meanwhile is not lost but sent to the
/// container once it exists. One at a time per process.
#[derive(Debug)]
pub struct RunSignals(SignalQueue);

impl RunSignals {
    /// Catches [`PROXIED_SIGNALS`] (those not ignored) and SIGCHLD until dropped.
    pub fn catch() -> Result<Self, ContainerError> {
        let mut signals = PROXIED_SIGNALS.to_vec();
        signals.push(libc::SIGCHLD);
        let queue =
            signal_queue::queue(&signals, &[libc::SIGCHLD]).map_err(|source| BundleError::Io {
                action: "install the signal handlers",
                path: PathBuf::from("strata"),
                source,
            })?;
        Ok(RunSignals(queue))
    }
}

/// How a foreground run is supervised.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// The OCI runtime binary (see [`runtime::find_runtime`]).
    pub runtime: PathBuf,
    /// After a SIGTERM or SIGINT (or the time limit), how long the container has before
    /// SIGKILL (`--stop-timeout`, Docker's default 10 s).
    pub stop_timeout: Duration,
    /// The run's time limit (`--timeout`): then SIGTERM, and SIGKILL after `stop_timeout`.
    pub timeout: Option<Duration>,
    /// Start the runtime in a process group of its own (when stdin is not a terminal): then
    /// a signal to the whole group (a CI runner cancelling the job, Ctrl-C) reaches the
    /// container once, through this process. Otherwise the terminal's SIGINT and SIGQUIT
    /// reach the runtime directly, which forwards them itself, and are not sent again.
    pub own_process_group: bool,
}

/// How a supervised run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// The container's exit code (128 + the signal when a signal ended it).
    pub exit_code: i32,
    /// Whether the time limit stopped it.
    pub timed_out: bool,
}

/// Pending work of the supervision loop.
#[derive(Debug, Default)]
struct Stopping {
    /// Signals the runtime has not accepted yet (the container did not exist yet).
    pending: Vec<i32>,
    /// When SIGKILL is due.
    kill_at: Option<Instant>,
    timed_out: bool,
}

impl Container {
    /// Runs the bundle [`Container::write_state_bundle`] wrote in the foreground with this
    /// process' stdio, supervised as [`Supervision`] says; returns the container's exit code.
    ///
    /// `signals` are forwarded (see [`RunSignals`]). A runtime failure before the command
    /// ran is an error ([`ContainerError::RuntimeFailed`], with Docker's exit code for it).
    pub fn run_supervised(
        &self,
        how: &Supervision,
        signals: &RunSignals,
    ) -> Result<RunOutcome, ContainerError> {
        let queue = &signals.0;
        let log = self.state_dir().join("runtime.log");
        let _ = std::fs::remove_file(&log);
        let mut state = RunState {
            status: Status::Running,
            runtime: how.runtime.clone(),
            supervisor_pid: std::process::id(),
            started_at: now_rfc3339(),
            ..RunState::default()
        };
        self.write_run_state(&state)?;
        let spawned = runtime::spawn_run(
            &how.runtime,
            &self.state_dir(),
            self.id(),
            &runtime::SpawnOptions {
                log: log.clone(),
                own_process_group: how.own_process_group,
            },
        );
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = self.write_run_state(&RunState::default());
                return Err(e.into());
            }
        };
        let waited = self.supervise(&mut child, queue, how);
        let (exit_code, timed_out) = match waited {
            Ok(done) => done,
            Err(e) => {
                // Nothing may outlive a supervisor that gives up.
                let _ = runtime::kill_container(&how.runtime, self.id(), libc::SIGKILL);
                let _ = child.wait();
                return Err(e);
            }
        };
        let failure = std::fs::read_to_string(&log)
            .ok()
            .and_then(|text| runtime::runtime_error(&text))
            .filter(|_| exit_code != 0 && !timed_out);
        let exit_code = match &failure {
            Some(message) => runtime::exec_failure_code(message).unwrap_or(125),
            None => exit_code,
        };
        state.status = Status::Exited;
        state.exit_code = Some(exit_code);
        state.finished_at = now_rfc3339();
        if let Err(e) = self.write_run_state(&state) {
            // Removed meanwhile (`rm -f` from another process): nothing left to record.
            tracing::debug!("container {}: {e}", self.name());
        }
        if let Some(message) = failure {
            return Err(ContainerError::RuntimeFailed { message, exit_code });
        }
        Ok(RunOutcome {
            exit_code,
            timed_out,
        })
    }

    /// The loop: waits for the runtime to exit, forwarding signals and keeping the
    /// deadlines. Returns its exit code and whether the time limit struck.
    fn supervise(
        &self,
        child: &mut Child,
        queue: &SignalQueue,
        how: &Supervision,
    ) -> Result<(i32, bool), ContainerError> {
        let io = |source| BundleError::Io {
            action: "wait for the OCI runtime",
            path: how.runtime.clone(),
            source,
        };
        let deadline = how.timeout.map(|t| Instant::now() + t);
        let mut stopping = Stopping::default();
        loop {
            if let Some(status) = child.try_wait().map_err(io)? {
                return Ok((runtime::exit_code(status), stopping.timed_out));
            }
            let now = Instant::now();
            if !stopping.timed_out && deadline.is_some_and(|d| now >= d) {
                stopping.timed_out = true;
                stopping.pending.push(libc::SIGTERM);
                stopping.kill_at.get_or_insert(now + how.stop_timeout);
            }
            if stopping.kill_at.is_some_and(|k| now >= k) {
                runtime::kill_container(&how.runtime, self.id(), libc::SIGKILL)?;
                // Sent again while the runtime lives on.
                stopping.kill_at = Some(now + Duration::from_secs(1));
            }
            if !stopping.pending.is_empty() {
                let mut unsent = Vec::new();
                for signal in std::mem::take(&mut stopping.pending) {
                    if !runtime::kill_container(&how.runtime, self.id(), signal)? {
                        unsent.push(signal);
                    }
                }
                stopping.pending = unsent;
            }
            // SIGCHLD wakes the wait below; the cap only bounds a missed wake-up.
            let mut wait = Duration::from_secs(1);
            if !stopping.pending.is_empty() {
                wait = Duration::from_millis(50);
            }
            for at in [deadline.filter(|_| !stopping.timed_out), stopping.kill_at]
                .into_iter()
                .flatten()
            {
                wait = wait.min(at.saturating_duration_since(now));
            }
            let Some(signal) = queue.next(Some(wait)).map_err(io)? else {
                continue;
            };
            if signal == libc::SIGCHLD {
                continue;
            }
            let from_terminal = matches!(signal, libc::SIGINT | libc::SIGQUIT);
            if how.own_process_group || !from_terminal {
                stopping.pending.push(signal);
            }
            if matches!(signal, libc::SIGINT | libc::SIGTERM) {
                stopping.kill_at.get_or_insert(now + how.stop_timeout);
            }
        }
    }
}

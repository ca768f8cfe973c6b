//! Waiting for another process to end, by its pid (it is not our child: no `waitpid`).

use std::time::{Duration, Instant};

use rustix::process::{Pid, test_kill_process};

/// How often the process is looked at.
const POLL: Duration = Duration::from_millis(10);

/// Waits at most `within` for the process `pid` to be gone; whether it is. A pid that cannot
/// name a process (0, or beyond `i32`) counts as gone.
pub fn wait_gone(pid: u32, within: Duration) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    let deadline = Instant::now() + within;
    // EPERM (another user's process) means it exists too: only ESRCH is gone.
    while !matches!(test_kill_process(pid), Err(rustix::io::Errno::SRCH)) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_is_waited_for_and_an_ended_one_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!wait_gone(pid, Duration::from_millis(50)), "still runs");
        // A zombie still has its pid: reap it, then it is gone.
        child.wait().unwrap();
        assert!(wait_gone(pid, Duration::from_secs(1)));
        assert!(wait_gone(0, Duration::ZERO));
    }
}

//! Signals received one by one, for a process that supervises a child (`strata run`): every
//! signal caught is queued (not only the first, as with [`super::signals::catch`]) and read
//! with a timeout, so that one loop can forward signals, notice the child's exit (SIGCHLD) and
//! keep deadlines without threads.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The write end of the pipe the handler queues signals into (-1: none).
static QUEUE_FD: AtomicI32 = AtomicI32::new(-1);

/// The handler: writes the signal number to the pipe (`write` is async-signal-safe).
extern "C" fn queue_signal(signal: libc::c_int) {
    super::signals::write_signal_byte(QUEUE_FD.load(Ordering::SeqCst), signal);
}

/// Signals queued for as long as it lives; dropping it restores the previous dispositions.
/// One queue at a time per process. Children started meanwhile get the default dispositions
/// back when they exec.
#[derive(Debug)]
pub struct SignalQueue {
    /// The signals and the dispositions they had.
    previous: Vec<(libc::c_int, libc::sigaction)>,
    /// Both ends non-blocking: a flood of signals cannot block the handler (extra ones are
    /// dropped once the pipe is full), and reading never waits but in `poll`.
    read: OwnedFd,
    _write: OwnedFd,
}

/// Queues `signals` until the returned [`SignalQueue`] is dropped. A signal the process
/// ignores is left ignored unless `even_ignored` contains it (a shell starts background jobs
/// with SIGINT ignored, which they should keep; SIGCHLD is wanted whatever its disposition).
pub fn queue(signals: &[libc::c_int], even_ignored: &[libc::c_int]) -> io::Result<SignalQueue> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are new and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    QUEUE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
    let mut queue = SignalQueue {
        previous: Vec::new(),
        read,
        _write: write,
    };
    super::signals::install(queue_signal, signals, even_ignored, &mut queue.previous)?;
    Ok(queue)
}

impl SignalQueue {
    /// The next queued signal, waiting up to `timeout` (`None`: for ever); `Ok(None)` when
    /// none came in time.
    pub fn next(&self, timeout: Option<Duration>) -> io::Result<Option<libc::c_int>> {
        let millis = timeout.map_or(-1, |t| {
            libc::c_int::try_from(t.as_millis().max(1)).unwrap_or(libc::c_int::MAX)
        });
        let mut pfd = libc::pollfd {
            fd: self.read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: polls one live pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, millis) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                return Ok(None);
            }
            let mut byte = 0u8;
            // SAFETY: reads at most one byte into a live local.
            let r = unsafe { libc::read(self.read.as_raw_fd(), (&raw mut byte).cast(), 1) };
            if r == 1 {
                return Ok(Some(libc::c_int::from(byte)));
            }
            let err = io::Error::last_os_error();
            if !matches!(
                err.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) {
                return Err(err);
            }
        }
    }
}

impl Drop for SignalQueue {
    fn drop(&mut self) {
        super::signals::restore(&mut self.previous);
        QUEUE_FD.store(-1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_every_signal_in_order() {
        let q = queue(&[libc::SIGUSR1, libc::SIGWINCH], &[]).unwrap();
        assert_eq!(q.next(Some(Duration::from_millis(1))).unwrap(), None);
        for signal in [libc::SIGUSR1, libc::SIGWINCH, libc::SIGUSR1] {
            // SAFETY: raise only delivers a signal our handler catches.
            assert_eq!(unsafe { libc::raise(signal) }, 0);
        }
        let got: Vec<_> = (0..3)
            .map(|_| q.next(Some(Duration::from_secs(5))).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                Some(libc::SIGUSR1),
                Some(libc::SIGWINCH),
                Some(libc::SIGUSR1)
            ]
        );
        drop(q);
        // SAFETY: a zeroed sigaction is a valid query argument.
        let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut now) },
            0
        );
        assert_eq!(now.sa_sigaction, libc::SIG_DFL, "restored");
    }
}

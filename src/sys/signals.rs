//! Signal dispositions, and catching termination signals ([`catch`]) so that a command can
//! stop cleanly.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

/// The write end of the pipe the handler reports caught signals to (-1: none).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// Makes the process ignore `signal` (`signal(signal, SIG_IGN)`); children it starts keep
/// ignoring it unless they reset it. `EINVAL` for an invalid number, `SIGKILL` or `SIGSTOP`.
pub fn ignore(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler code, so no code of ours runs in signal context;
    // signal() only changes the process's disposition table.
    let previous = unsafe { libc::signal(signal, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The handler: writes the signal number to the pipe (`write` is async-signal-safe).
extern "C" fn handle_signal(signal: libc::c_int) {
    write_signal_byte(WAKE_FD.load(Ordering::SeqCst), signal);
}

/// Writes `signal` as one byte to the pipe `fd` (none when negative), keeping errno: what a
/// signal handler of this module does.
pub(super) fn write_signal_byte(fd: libc::c_int, signal: libc::c_int) {
    if fd >= 0 {
        let byte = u8::try_from(signal).unwrap_or(u8::MAX);
        // SAFETY: writes one byte from a live local to a pipe fd that stays open while the
        // handler is installed; errno is saved and restored around it.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, (&raw const byte).cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// Signals caught for as long as it lives: the first one runs the callback of [`catch`] on a
/// thread of its own. Dropping it restores the previous dispositions.
#[derive(Debug)]
pub struct Catcher {
    /// The signals and the dispositions they had.
    previous: Vec<(libc::c_int, libc::sigaction)>,
    /// The pipe's write end (non-blocking, so that a flood of signals cannot block the
    /// handler; a 0 byte stops the thread).
    write: OwnedFd,
    /// The read end, kept open until the catcher goes so that no write meets a closed pipe
    /// (SIGPIPE) once the thread has returned.
    _read: Arc<OwnedFd>,
    /// The thread waiting on the pipe's read end.
    thread: Option<JoinHandle<()>>,
}

/// Catches `signals` (those not ignored: a shell starts background jobs with SIGINT ignored,
/// which they should keep) until the returned [`Catcher`] is dropped: the first one caught
/// runs `on_signal` with its number, on another thread; later ones are only counted as
/// caught. One catcher at a time per process.
pub fn catch(
    signals: &[libc::c_int],
    on_signal: impl FnOnce(libc::c_int) + Send + 'static,
) -> io::Result<Catcher> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are new and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on an fd we own, with an int argument.
    if unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let read = Arc::new(read);
    let thread_read = read.clone();
    let thread = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut byte = 0u8;
            let n = loop {
                // SAFETY: reads at most one byte into a live local.
                let n = unsafe { libc::read(thread_read.as_raw_fd(), (&raw mut byte).cast(), 1) };
                if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break n;
                }
            };
            if n == 1 && byte != 0 {
                on_signal(libc::c_int::from(byte));
            }
        })?;
    WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
    let mut catcher = Catcher {
        previous: Vec::new(),
        write,
        _read: read,
        thread: Some(thread),
    };
    install(handle_signal, signals, &[], &mut catcher.previous)?;
    Ok(catcher)
}

/// Installs `handler` (which must only do async-signal-safe work) for each of `signals` but
/// those ignored now (unless listed in `even_ignored`), with `SA_RESTART`; each replaced
/// disposition goes onto `previous` as soon as it is replaced, so that a failure part-way
/// leaves everything done so far for [`restore`].
pub(super) fn install(
    handler: extern "C" fn(libc::c_int),
    signals: &[libc::c_int],
    even_ignored: &[libc::c_int],
    previous: &mut Vec<(libc::c_int, libc::sigaction)>,
) -> io::Result<()> {
    for &signal in signals {
        // SAFETY: a zeroed sigaction is a valid "query" argument; sigaction only reads and
        // writes the two structs it is given.
        let mut was: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(signal, std::ptr::null(), &mut was) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if was.sa_sigaction == libc::SIG_IGN && !even_ignored.contains(&signal) {
            continue;
        }
        // SAFETY: as above; the handler only does async-signal-safe work (its contract).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: see above.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        previous.push((signal, was));
    }
    Ok(())
}

/// Puts back the dispositions [`install`] replaced.
pub(super) fn restore(previous: &mut Vec<(libc::c_int, libc::sigaction)>) {
    for (signal, was) in previous.drain(..) {
        // SAFETY: restores a disposition sigaction returned earlier.
        unsafe { libc::sigaction(signal, &was, std::ptr::null_mut()) };
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        restore(&mut self.previous);
        WAKE_FD.store(-1, Ordering::SeqCst);
        let stop = 0u8;
        // SAFETY: writes one byte from a live local to our own pipe.
        unsafe { libc::write(self.write.as_raw_fd(), (&raw const stop).cast(), 1) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigkill_cannot_be_ignored() {
        let err = ignore(libc::SIGKILL).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn a_caught_signal_runs_the_callback_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        let catcher = catch(&[libc::SIGUSR2], move |signal| {
            let _ = tx.send(signal);
        })
        .unwrap();
        // SAFETY: raise only delivers a signal our handler catches.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
        let got = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(got, libc::SIGUSR2);
        drop(catcher);
        // SAFETY: a zeroed sigaction is a valid query argument.
        let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut now) },
            0
        );
        assert_eq!(now.sa_sigaction, libc::SIG_DFL, "restored");
    }
}

//! Signal dispositions.

use std::io;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigkill_cannot_be_ignored() {
        let err = ignore(libc::SIGKILL).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}

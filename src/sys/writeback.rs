//! Starting a file's writeback without waiting for it.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Starts writing the dirty pages of the file `fd` to disk and returns at once
/// (`sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)`). Nothing is made durable: no metadata,
/// no journal commit, no disk cache flush.
pub fn start_writeback(fd: impl AsFd) -> io::Result<()> {
    // SAFETY: sync_file_range only reads its integer arguments; the fd is borrowed, so open.
    let rc =
        unsafe { libc::sync_file_range(fd.as_fd().as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn starts_writeback_of_a_written_file() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 8192]).unwrap();
        start_writeback(&f).unwrap();
    }

    #[test]
    fn a_pipe_is_refused() {
        let (r, _w) = std::io::pipe().unwrap();
        assert_eq!(
            start_writeback(&r).unwrap_err().raw_os_error(),
            Some(libc::ESPIPE)
        );
    }
}

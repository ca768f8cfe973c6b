//! How much of a file range is in the page cache (`cachestat`, Linux 6.5).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// `cachestat`'s number on every architecture (syscalls from 424 on share one table); the
/// libc crate does not name it for all of them.
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range`.
#[repr(C)]
struct Range {
    off: u64,
    len: u64,
}

/// `struct cachestat`.
#[repr(C)]
#[derive(Default)]
struct Stat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Pages of a file range in the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    /// Pages cached (clean or dirty).
    pub pages: u64,
    /// Of those, pages not yet written back (dirty or under writeback).
    pub unwritten: u64,
}

/// The pages of `len` bytes at `offset` of the file `fd` that are in the page cache. Fails
/// with `ENOSYS` before Linux 6.5.
pub fn cached(fd: impl AsFd, offset: u64, len: u64) -> io::Result<Cached> {
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: both pointers are to live, properly laid-out structs for the call's duration;
    // the kernel only reads `range` and writes `stat`; the fd is borrowed, so open.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd.as_fd().as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if rc == 0 {
        Ok(Cached {
            pages: stat.nr_cache,
            unwritten: stat.nr_dirty + stat.nr_writeback,
        })
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn counts_a_written_files_pages() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 64 * 1024]).unwrap();
        match cached(&f, 0, 0) {
            Ok(c) => {
                assert!(c.pages >= 1, "{c:?}");
                assert!(c.unwritten <= c.pages, "{c:?}");
            }
            // Kernels before 6.5.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOSYS)),
        }
    }

    #[test]
    fn a_range_past_the_end_has_no_pages() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 64 * 1024]).unwrap();
        if let Ok(c) = cached(&f, 1 << 30, 4096) {
            assert_eq!(
                c,
                Cached {
                    pages: 0,
                    unwritten: 0
                }
            );
        }
    }
}

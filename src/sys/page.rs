//! The memory page size.

/// The size of a memory page in bytes (`sysconf(_SC_PAGESIZE)`); `None` if the system does not
/// say.
pub fn page_size() -> Option<usize> {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_power_of_two_of_at_least_4_kib() {
        let size = page_size().unwrap();
        assert!(size >= 4096 && size.is_power_of_two(), "{size}");
    }
}

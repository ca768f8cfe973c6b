//! Tuning of glibc's allocator.

/// Caps the number of glibc malloc arenas at `max` (`mallopt(M_ARENA_MAX, max)`); best called
/// before other threads start, since a thread keeps the arena it picked. Returns whether the
/// allocator took the setting: always false where the C library is not glibc.
pub fn set_arena_max(max: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter, under the allocator's own lock; it
        // takes no pointers.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, max) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = max;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_setting() {
        let glibc = cfg!(all(target_os = "linux", target_env = "gnu"));
        // The default, 8 arenas per core, changes nothing for the tests around.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(set_arena_max(8 * cores as i32), glibc);
    }
}

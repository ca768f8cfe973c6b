//! Safe wrappers over the system calls strata makes beyond what std offers: atomic file
//! writes, extended attributes, confined `openat2`, inode flags, and a few raw libc calls.
//!
//! This is the only module of the crate allowed `unsafe` code (`unsafe_code` is denied
//! everywhere else), and only the files that need it get the allowance. Each `unsafe` block
//! carries a `// SAFETY:` comment; every function here is safe to call. The helpers return
//! `std::io` or `rustix::io` results (or [`atomic::AtomicWriteError`], which names the
//! failed step): callers map them to their own typed errors.

pub mod atomic;
#[allow(unsafe_code)]
pub mod cachestat;
pub mod inode_flags;
#[allow(unsafe_code)]
pub mod malloc;
#[allow(unsafe_code)]
pub mod namespace;
pub mod openat2;
#[allow(unsafe_code)]
pub mod page;
pub mod process;
#[allow(unsafe_code)]
pub mod signal_queue;
#[allow(unsafe_code)]
pub mod signals;
#[allow(unsafe_code)]
pub mod thread;
#[allow(unsafe_code)]
pub mod writeback;
pub mod xattr;

//! Integration tests: the real `strata` binary against a real registry.
//!
//! One test binary (`cargo test --test it`). Each test starts its own `docker-registry` on a
//! free loopback port and uses its own `--root`, so tests run in parallel. They need root
//! (overlay mounts, device nodes, `trusted.*` xattrs) and the tools installed by
//! `scripts/setup.sh`.

// The harness checks strata from the outside with raw calls of its own (mount, mknod, wait4
// for the child's rusage, ...); the crate's rule that unsafe code lives in src/sys only is
// for the library and the binary.
#![allow(unsafe_code)]

mod support;

mod archive_props;
mod check;
mod cli_failures;
mod cli_output;
mod concurrency;
mod containers;
mod crash;
mod diff_commit;
mod differential;
mod enospc;
mod export;
mod hostile;
mod images;
mod info;
mod lifecycle;
mod load;
mod pull;
mod pull_through;
mod registry_auth;
mod registry_faults;
mod registry_ranges;
mod registry_rounds;
mod rootless;
mod run_config;
mod run_lifecycle;
mod support_selftest;

//! Integration tests: the real `strata` binary against a real registry.
//!
//! One test binary (`cargo test --test it`). Each test starts its own `docker-registry` on a
//! free loopback port and uses its own `--root`, so tests run in parallel. They need root
//! (overlay mounts, device nodes, `trusted.*` xattrs) and the tools installed by
//! `scripts/setup.sh`.

mod support;

mod archive_props;
mod containers;
mod differential;
mod export;
mod hostile;
mod pull;
mod registry_auth;
mod registry_faults;
mod support_selftest;

//! The image store's lookups and listings: by digest and platform, tags that move, dangling
//! images, `images` flags, `system df`, and a store root that cannot be created.

use std::process::Command;

use crate::support::strata;

/// `strata ARGS...` without a `--root` of the harness (the test gives its own).
fn strata_bare(args: &[&str]) -> std::process::Output {
    Command::new(strata::bin())
        .args(args)
        .env_remove("STRATA_ROOT")
        .output()
        .expect("run strata")
}

#[test]
fn a_store_root_that_cannot_be_created_is_a_clear_error() {
    crate::support::require_root();
    // procfs refuses mkdir with ENOENT although /proc exists: this once overflowed the stack.
    let out = strata_bare(&["--root", "/proc/strata", "images"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("error: ")
            && stderr.contains("cannot create store directory /proc/strata: "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("overflow") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

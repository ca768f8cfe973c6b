//! The reference unpack: `skopeo copy` from the registry into an OCI layout, then
//! `umoci unpack` into a bundle; its `rootfs/` is what the union of strata's layers must
//! equal.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::registry::Registry;
use super::run_ok;

pub struct Unpacked {
    dir: tempfile::TempDir,
}

impl Unpacked {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Unpack `repo:tag` (or `repo@digest`) from the registry. For a multi-platform index,
/// `platform` = `Some((arch, variant))` selects the manifest skopeo copies (umoci cannot
/// unpack an index with several manifests); `None` copies the image as it is (single
/// manifest).
pub fn unpack(
    registry: &Registry,
    repo_ref: &str,
    platform: Option<(&str, Option<&str>)>,
) -> Unpacked {
    super::require_tool("skopeo");
    super::require_tool("umoci");
    let dir = super::tempdir("umoci");
    let layout = dir.path().join("layout");
    let mut copy = Command::new("skopeo");
    copy.args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
    ]);
    if let Some((arch, variant)) = platform {
        copy.args(["--override-os", "linux", "--override-arch", arch]);
        if let Some(v) = variant {
            copy.args(["--override-variant", v]);
        }
    }
    copy.arg(format!("docker://{}/{repo_ref}", registry.addr()))
        .arg(format!("oci:{}:img", layout.display()));
    run_ok(&mut copy);
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:img", layout.display()))
            .arg(dir.path().join("bundle")),
    );
    Unpacked { dir }
}

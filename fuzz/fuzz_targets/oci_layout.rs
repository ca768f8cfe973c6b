//! An OCI image layout directory around arbitrary JSON: the input's NUL-separated parts are
//! `oci-layout`, `index.json` and up to four blobs, each written to `blobs/sha256/<its
//! digest>`, so that `index.json` and the manifests can point at each other (an index at an
//! index, a manifest at a config). The layout is opened (`index.json`, the ref name choice)
//! and resolved as a pull would (manifest or index, platform, config). Errors are fine; a
//! panic, a hang or a stack overflow is a bug.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use strata::source::OciLayoutSource;

fuzz_target!(|input: &[u8]| {
    let p = common::parts(input, 6);
    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir blobs");
    std::fs::write(dir.path().join("oci-layout"), p.first().copied().unwrap_or_default())
        .expect("write oci-layout");
    std::fs::write(dir.path().join("index.json"), p.get(1).copied().unwrap_or_default())
        .expect("write index.json");
    for blob in p.iter().skip(2) {
        std::fs::write(blobs.join(common::sha256_hex(blob)), blob).expect("write blob");
    }
    for name in [None, Some("latest"), Some("example.com/app:1")] {
        if let Ok(source) = OciLayoutSource::open(dir.path(), name) {
            let _ = source.ref_name();
            common::resolve(&source);
        }
    }
    let layout = strata::transport::Transport::OciLayout {
        dir: dir.path().to_path_buf(),
        ref_name: None,
    };
    let _ = layout.name();
});

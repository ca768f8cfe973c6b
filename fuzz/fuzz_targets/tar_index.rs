//! Arbitrary bytes as an image archive file (`strata load`, `oci-archive:`,
//! `docker-archive:`): the archive is indexed in place (`tar_index`), then read as a
//! `docker save` archive and as a tar of an OCI layout, and each image found is resolved as
//! a pull would. Errors are fine; a panic, a hang or unbounded memory is a bug.
//!
//! The first input byte picks a mode: even = the bytes as they are; odd = every tar header's
//! checksum fixed up first, so the fuzzer explores what members mean.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use strata::source::OciLayoutSource;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut tar = rest.to_vec();
    if mode & 1 == 1 {
        common::fix_checksums(&mut tar);
    }
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &tar).expect("write the archive");
    if let Ok(images) = strata::transport::archive_images(file.path()) {
        for image in images {
            let _ = image.name();
        }
    }
    if let Ok(source) = OciLayoutSource::open_archive(file.path(), None) {
        common::resolve(&source);
    }
    if let Ok((source, _)) = OciLayoutSource::open_docker_archive(file.path(), None) {
        common::resolve(&source);
    }
});

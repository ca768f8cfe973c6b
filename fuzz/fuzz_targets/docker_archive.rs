//! A `docker save` archive around arbitrary JSON: the input's NUL-separated parts are
//! `manifest.json`, a config, a layer and `repositories`, put into a well-formed tar under the
//! names both forms use (`<hex>.json`, `config.json`, `<id>/layer.tar` (legacy, a symlink to
//! `../layer.tar` as skopeo writes it), `layer.tar`, `blobs/sha256/<hex>` (Docker 25+)), so
//! the fuzzer spends its time on `manifest.json`'s paths, names and counts rather than on tar
//! headers. The archive is opened by every name it gives and each image resolved as a pull
//! would. Errors are fine; a panic is a bug.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use strata::source::OciLayoutSource;

fuzz_target!(|input: &[u8]| {
    let p = common::parts(input, 4);
    let part = |i: usize| p.get(i).copied().unwrap_or_default();
    let (manifest, config, layer, repositories) = (part(0), part(1), part(2), part(3));
    let config_hex = common::sha256_hex(config);
    let layer_hex = common::sha256_hex(layer);
    let tar = common::tar_of(&[
        ("manifest.json".into(), Some(manifest)),
        ("repositories".into(), Some(repositories)),
        (format!("{config_hex}.json"), Some(config)),
        ("config.json".into(), Some(config)),
        ("layer.tar".into(), Some(layer)),
        ("id".into(), None),
        ("@id/layer.tar".into(), Some(b"../layer.tar")),
        ("blobs/sha256".into(), None),
        (format!("blobs/sha256/{config_hex}"), Some(config)),
        (format!("blobs/sha256/{layer_hex}"), Some(layer)),
    ]);
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &tar).expect("write the archive");
    let Ok(images) = strata::transport::archive_images(file.path()) else {
        return;
    };
    for image in images.iter().take(4) {
        let _ = image.name();
        if let strata::transport::Transport::DockerArchive { file, name } = image
            && let Ok((source, _)) = OciLayoutSource::open_docker_archive(file, name.as_deref())
        {
            common::resolve(&source);
        }
    }
});

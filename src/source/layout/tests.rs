//! Unit tests of the layout source: choosing the image and confining the files.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;

use super::*;

fn named(digest_byte: u8, name: Option<&str>) -> Descriptor {
    Descriptor {
        media_type: crate::image::media_type::OCI_MANIFEST.to_string(),
        digest: Digest::of(&[digest_byte]),
        size: 1,
        platform: None,
        urls: None,
        annotations: name.map(|n| BTreeMap::from([(REF_NAME_ANNOTATION.to_string(), n.into())])),
    }
}

#[test]
fn choose_picks_by_name_or_the_only_image() {
    let dir = Path::new("/l");
    let list = [named(1, Some("a")), named(2, Some("b"))];
    assert_eq!(choose(&list, Some("b"), dir).unwrap(), list[1]);
    let err = choose(&list, Some("c"), dir).unwrap_err().to_string();
    assert!(err.contains("\"c\"") && err.contains("a, b"), "{err}");
    let err = choose(&list, None, dir).unwrap_err().to_string();
    assert!(err.contains("lists 2 images"), "{err}");
    assert_eq!(choose(&list[..1], None, dir).unwrap(), list[0]);
    assert!(choose(&[], None, dir).is_err());
}

/// A minimal layout with an empty index.
fn layout() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    fs::create_dir_all(tmp.path().join("blobs/sha256")).unwrap();
    tmp
}

#[test]
fn index_json_must_be_the_layouts_own_file() {
    let tmp = layout();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("index.json");
    fs::write(&target, r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
    symlink(&target, tmp.path().join("index.json")).unwrap();
    let err = OciLayoutSource::open(tmp.path(), None).unwrap_err();
    assert!(matches!(err, LayoutError::Symlink { .. }), "{err}");

    fs::remove_file(tmp.path().join("index.json")).unwrap();
    fs::hard_link(&target, tmp.path().join("index.json")).unwrap();
    let err = OciLayoutSource::open(tmp.path(), None).unwrap_err();
    assert!(
        matches!(err, LayoutError::HardLinked { links: 2, .. }),
        "{err}"
    );
}

#[test]
fn a_directory_without_oci_layout_is_not_a_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let err = OciLayoutSource::open(tmp.path(), None).unwrap_err();
    assert!(matches!(err, LayoutError::NotLayout { .. }), "{err}");
}

#[test]
fn oversized_index_json_is_refused_unread() {
    let tmp = layout();
    let file = fs::File::create(tmp.path().join("index.json")).unwrap();
    file.set_len(MAX_MANIFEST_SIZE + 1).unwrap();
    let err = OciLayoutSource::open(tmp.path(), None).unwrap_err();
    assert!(matches!(err, LayoutError::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn blobs_are_verified_against_their_descriptor() {
    let tmp = layout();
    let manifest = br#"{"schemaVersion":2}"#;
    let digest = Digest::of(manifest);
    fs::write(tmp.path().join(blob_path(&digest)), b"something else").unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{}}}]}}"#,
        manifest.len()
    );
    fs::write(tmp.path().join("index.json"), index).unwrap();
    let source = OciLayoutSource::open(tmp.path(), None).unwrap();
    let err = source.manifest().await.unwrap_err().to_string();
    assert!(
        err.contains(digest.hex()) && err.contains("mismatch"),
        "{err}"
    );

    fs::write(tmp.path().join(blob_path(&digest)), manifest).unwrap();
    assert_eq!(source.manifest().await.unwrap().bytes, manifest);
}

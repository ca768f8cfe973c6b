use std::fs;

use super::*;
use crate::id::ChainId;
use crate::store::layer::tests::{chain_id, record};

/// Commits a layer with one file; `parent` below it.
fn commit(store: &Store, name: &[u8], parent: Option<&ChainId>) -> ChainId {
    let chain = chain_id(name);
    let ancestors: Vec<ChainId> = parent.into_iter().cloned().collect();
    let staging = store.begin_layer(&chain, &ancestors).unwrap();
    fs::write(staging.diff_dir().join("f"), name).unwrap();
    let mut record = record(&chain, staging.link());
    record.parent = parent.cloned();
    staging.commit(&record).unwrap();
    chain
}

fn kinds(problems: &[Problem]) -> Vec<(ProblemKind, String)> {
    problems
        .iter()
        .map(|p| (p.kind, p.object.clone()))
        .collect()
}

#[test]
fn committed_layers_check_clean() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let base = commit(&store, b"base", None);
    commit(&store, b"top", Some(&base));
    assert_eq!(store.check().unwrap(), vec![]);
}

#[test]
fn repair_removes_the_broken_layer_only() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let base = commit(&store, b"base", None);
    let top = commit(&store, b"top", Some(&base));
    fs::write(store.layer_dir(&top).join("lower"), "l/WRONG").unwrap();
    fs::create_dir(store.overlay_dir().join("junk")).unwrap();
    let problems = store.check().unwrap();
    assert_eq!(
        kinds(&problems),
        vec![
            (ProblemKind::Lower, top.to_string()),
            (ProblemKind::OrphanDir, "overlay2/junk".to_string()),
        ]
    );
    assert!(problems.iter().all(Problem::repairable));
    let outcomes = store.repair(&problems).unwrap();
    assert_eq!(outcomes, vec![Outcome::Removed, Outcome::Removed]);
    assert!(store.layer(&top).unwrap().is_none());
    assert!(!store.layer_dir(&top).exists());
    assert!(store.layer(&base).unwrap().is_some());
    assert_eq!(store.check().unwrap(), vec![]);
}

#[test]
fn a_layer_fixed_meanwhile_or_being_pulled_is_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let base = commit(&store, b"base", None);
    let link = store.layer_dir(&base).join("link");
    let good = fs::read(&link).unwrap();
    fs::write(&link, "WRONG").unwrap();
    let problems = store.check().unwrap();
    assert_eq!(
        kinds(&problems),
        vec![(ProblemKind::LinkFile, base.to_string())]
    );
    // A pull holds the layer: not judged, not removed.
    let held = store.lock_layer(&base).unwrap();
    assert_eq!(store.check().unwrap(), vec![]);
    assert_eq!(store.repair(&problems).unwrap(), vec![Outcome::Busy]);
    drop(held);
    fs::write(&link, good).unwrap();
    assert_eq!(store.repair(&problems).unwrap(), vec![Outcome::Passes]);
    assert!(store.layer(&base).unwrap().is_some());
}

#[test]
fn corrupt_images_and_stray_links_are_repaired() {
    use crate::digest::Digest;
    use crate::id::ImageId;
    use crate::store::ImageRecord;

    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let config = b"{\"config\":1}";
    let id = ImageId::new(Digest::of(config));
    let record = ImageRecord {
        id: id.clone(),
        manifest_digest: Digest::of(b"{}"),
        manifest_media_type: String::new(),
        platform: "linux/amd64".into(),
        layers: vec![],
        repo_digests: vec![],
        pulled_at: String::new(),
    };
    store.put_image(&record, b"{}", config).unwrap();
    store.tag("example.com/x:1", &id).unwrap();
    assert_eq!(store.check().unwrap(), vec![]);

    fs::write(
        root.path()
            .join("images")
            .join(id.hex())
            .join("config.json"),
        b"{}",
    )
    .unwrap();
    std::os::unix::fs::symlink("../gone/diff", store.links_dir().join("STRAY")).unwrap();
    let problems = store.check().unwrap();
    assert_eq!(
        kinds(&problems),
        vec![
            (ProblemKind::DanglingLink, "l/STRAY".to_string()),
            (ProblemKind::Image, id.to_string()),
        ]
    );
    assert_eq!(
        problems[1].affects,
        vec!["image example.com/x:1".to_string()]
    );
    assert_eq!(
        store.repair(&problems).unwrap(),
        vec![Outcome::Removed, Outcome::Removed]
    );
    // The reference stays, for the next pull.
    assert_eq!(
        kinds(&store.check().unwrap()),
        vec![(ProblemKind::Tag, "example.com/x:1".to_string())]
    );
    assert!(fs::symlink_metadata(store.links_dir().join("STRAY")).is_err());
}

#[test]
fn temporary_files_of_killed_writes_are_leftovers_that_repair_removes() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let img = crate::store::containers::tests::image(&store, &[chain_id(b"base")]);
    let gone = ".image.json.tmp-999999999-1-0badf00d";
    fs::write(store.image_dir(&img.id).join(gone), b"{").unwrap();
    fs::write(
        root.path()
            .join(".repositories.json.tmp-999999999-2-0badf00d"),
        b"{",
    )
    .unwrap();
    // A running writer's (this process's) is no leftover.
    let ours = format!(".repositories.json.tmp-{}-3-0badf00d", std::process::id());
    fs::write(root.path().join(&ours), b"{").unwrap();
    // (The test image's files do not match its digests: those problems are not looked at.)
    let temp = |problems: Vec<Problem>| -> Vec<Problem> {
        problems
            .into_iter()
            .filter(|p| p.kind == ProblemKind::TempFile)
            .collect()
    };
    let problems = temp(store.check().unwrap());
    assert_eq!(
        kinds(&problems),
        vec![
            (
                ProblemKind::TempFile,
                ".repositories.json.tmp-999999999-2-0badf00d".to_string()
            ),
            (
                ProblemKind::TempFile,
                format!("images/{}/{gone}", img.id.hex())
            ),
        ]
    );
    store.repair(&problems).unwrap();
    assert_eq!(temp(store.check().unwrap()), vec![]);
    assert!(root.path().join(ours).exists());
}

#[test]
fn name_index_entries_of_no_container_and_containers_without_one_are_repaired() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let img = crate::store::containers::tests::image(&store, &[chain_id(b"base")]);
    let web = store.create_container(&img, "x", Some("web")).unwrap();
    let dir = store.names_dir();
    std::os::unix::fs::symlink("ab".repeat(32), dir.join("ghost")).unwrap();
    fs::remove_file(dir.join("web")).unwrap();
    let index = |problems: Vec<Problem>| -> Vec<Problem> {
        problems
            .into_iter()
            .filter(|p| p.kind == ProblemKind::NameIndex)
            .collect()
    };
    let problems = index(store.check().unwrap());
    assert_eq!(
        kinds(&problems),
        vec![
            (ProblemKind::NameIndex, "container-names/ghost".to_string()),
            (ProblemKind::NameIndex, "container-names/web".to_string()),
        ]
    );
    assert_eq!(
        store.repair(&problems).unwrap(),
        vec![Outcome::Removed, Outcome::Removed]
    );
    assert_eq!(index(store.check().unwrap()), vec![]);
    assert_eq!(store.named("web").unwrap(), Some(web.id));
}

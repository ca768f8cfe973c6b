//! The content digest: the hashes taken while applying give the listing that reading the
//! files gives, and the listing finds what changed since.

use std::os::unix::fs::PermissionsExt;

use super::super::{ChangeKind, TreeListing};
use super::*;

/// A layer with every kind of member, replaced members, hardlinks, whiteouts, an opaque
/// marker, holes and a sparse file.
fn layer() -> Vec<u8> {
    let mut zeros = vec![0u8; 64 * 1024];
    zeros[40_000] = 1;
    let mut data = b"2\n0\n3\n10\n2\n".to_vec();
    data.resize(512, 0);
    data.extend_from_slice(b"abcde");
    let mut t = Tar::new();
    t.add(dir("etc").mode(0o750).owner(1, 2))
        .add(file("etc/a", b"first"))
        .add(file("etc/a", b"second"))
        .add(file("etc/b", b"linked"))
        .add(hardlink("etc/c", "etc/b"))
        .add(file("etc/b", b"replaced after the link"))
        .add(file("holes", &zeros))
        .add(symlink("etc/l", "../holes"))
        .add(file("x/.wh.gone", b""))
        .add(file("o/.wh..wh..opq", b""))
        .add(e(b'3', "tty", 0o620).dev(4, 1))
        .add(e(b'6', "fifo", 0o600));
    t.pax(&[
        ("GNU.sparse.major", b"1"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"sparse"),
        ("GNU.sparse.realsize", b"16"),
    ])
    .add(file("GNUSparseFile.0/sparse", &data));
    t.finish()
}

/// Overlay mode, hashing files.
fn hashing() -> ApplyOptions {
    ApplyOptions {
        hash_files: true,
        ..root_opts()
    }
}

#[test]
fn hashes_taken_while_applying_match_the_files() {
    let s = Scratch::new();
    let stats = s.apply_with(&layer(), &hashing()).unwrap();
    // etc/a twice, etc/b twice, holes, the sparse file; hardlinks and the rest hash nothing.
    assert!(stats.file_hashes.len() >= 4, "{:?}", stats.file_hashes);
    let recorded = TreeListing::of_dir(&s.dest, Some(&stats.file_hashes)).unwrap();
    let read = TreeListing::of_dir(&s.dest, None).unwrap();
    assert_eq!(recorded, read);
    assert_eq!(recorded.digest(), read.digest());
    assert!(recorded.changes(&read).is_empty());
    // The same tree gives the same digest.
    let again = Scratch::new();
    let stats = again.apply_with(&layer(), &hashing()).unwrap();
    let other = TreeListing::of_dir(&again.dest, Some(&stats.file_hashes)).unwrap();
    assert_eq!(other.digest(), recorded.digest());
    // Flatten mode hashes nothing.
    let flat = Scratch::new();
    let opts = ApplyOptions {
        flatten: true,
        ..root_opts()
    };
    assert!(
        flat.apply_with(&layer(), &opts)
            .unwrap()
            .file_hashes
            .is_empty()
    );
}

#[test]
fn changes_since_are_named() {
    let s = Scratch::new();
    let stats = s.apply_with(&layer(), &hashing()).unwrap();
    let recorded = TreeListing::of_dir(&s.dest, Some(&stats.file_hashes)).unwrap();
    fs::write(s.p("etc/a"), b"edited").unwrap();
    fs::set_permissions(s.p("holes"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(s.p("etc/new"), b"").unwrap();
    fs::remove_file(s.p("x/gone")).unwrap();
    let now = TreeListing::of_dir(&s.dest, None).unwrap();
    assert_ne!(now.digest(), recorded.digest());
    let changes: Vec<(String, ChangeKind)> = recorded
        .changes(&now)
        .into_iter()
        .map(|c| (c.path, c.kind))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("etc/a".to_string(), ChangeKind::Changed(vec!["content"])),
            ("etc/new".to_string(), ChangeKind::Added),
            ("holes".to_string(), ChangeKind::Changed(vec!["mode"])),
            ("x/gone".to_string(), ChangeKind::Removed),
        ]
    );
}

#[test]
fn trees_deeper_than_path_max_are_listed() {
    let deep = "abcdefghijklmnop/".repeat(300) + "f";
    let mut t = Tar::new();
    t.pax(&[("path", deep.as_bytes())]).add(file("x", b"deep"));
    let s = Scratch::new();
    let stats = s.apply_with(&t.finish(), &hashing()).unwrap();
    let recorded = TreeListing::of_dir(&s.dest, Some(&stats.file_hashes)).unwrap();
    assert_eq!(recorded.len(), 302);
    assert_eq!(TreeListing::of_dir(&s.dest, None).unwrap(), recorded);
}

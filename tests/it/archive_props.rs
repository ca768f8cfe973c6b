//! Property test: random layer stacks applied by `strata::archive::apply_layer`, each into its
//! own directory, then mounted as one read-only overlay (lowerdir=top:...:bottom), must show
//! exactly the tree an in-memory model of the OCI layer semantics gives (type, file content,
//! symlink target). Each layer directory on its own must also hold exactly what the
//! documented per-layer rules say (entries, 0/0 whiteout devices, opaque xattrs; whiteouts and
//! opaque markers applied once more against the final tree at the end of the layer).
//!
//! Generated layers use names from a three-letter alphabet up to three deep: files, dirs,
//! symlinks (dangling, absolute, relative), hardlinks to earlier files, whiteouts and opaque
//! markers, in random order. Members the applier would refuse or resolve through a symlink of
//! the same layer (a parent that is a file or a symlink of this layer) are left out, so every
//! generated layer is valid and its meaning does not depend on symlink resolution.
//!
//! The model is the OCI image spec's: a layer's whiteouts and opaque markers apply to the
//! lower layers only, whatever their position in the layer, and never hide the layer's own
//! entries; the layer's entries then overlay what is left, in order (directories merge with
//! lower directories, anything else replaces: a directory entry after a non-directory entry of
//! the same path is a new directory, as the spec's "changeset over existing files" says).
//! Missing parent directories behave like directory entries.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::image::{Entry, tar_bytes};
use crate::support::strata::{Graph, UnionMount};
use crate::support::{self, tree};

const NAMES: [&str; 3] = ["a", "b", "c"];
const TARGETS: [&str; 5] = ["a", "b/c", "/a/b", "../../c", "dangling"];

#[derive(Clone, Debug)]
enum Op {
    File(String, u8),
    Dir(String),
    Symlink(String, &'static str),
    Hardlink(String, String),
    Whiteout(String),
    Opaque(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    /// A 0/0 character device (only in a layer directory).
    Whiteout,
}

/// One layer: its tar entries and what applying it must give.
#[derive(Clone, Debug, Default)]
struct LayerModel {
    entries: Vec<Entry>,
    /// The layer directory as strata's documented rules make it.
    tree: BTreeMap<String, Node>,
    /// Directories of the layer directory carrying the opaque xattr.
    opaque_xattr: BTreeSet<String>,
    /// Spec semantics: paths this layer's whiteouts delete from the lower layers.
    deleted: BTreeSet<String>,
    /// Spec semantics: directories whose lower contents this layer hides.
    opaque: BTreeSet<String>,
    /// Spec semantics: paths where the layer has a non-directory entry, which replaces the
    /// lower path whole (entries apply in order: a directory entry that replaces it later is
    /// a new directory).
    replaced: BTreeSet<String>,
}

fn parents(p: &str) -> Vec<String> {
    let comps: Vec<&str> = p.split('/').collect();
    (1..comps.len()).map(|i| comps[..i].join("/")).collect()
}

fn within(p: &str, ancestor: &str) -> bool {
    p == ancestor || p.starts_with(&format!("{ancestor}/"))
}

fn content(p: &str, seed: u8) -> Vec<u8> {
    format!("{p} #{seed}\n")
        .repeat(usize::from(seed % 4) + 1)
        .into_bytes()
}

impl LayerModel {
    /// Whether every parent of `p` is a directory, a whiteout or missing in this layer (so
    /// resolving it follows no symlink and meets no file).
    fn parents_ok(&self, p: &str) -> bool {
        parents(p)
            .iter()
            .all(|q| matches!(self.tree.get(q), None | Some(Node::Dir | Node::Whiteout)))
    }

    /// Missing parents (and whiteout devices in their place) become directories.
    fn make_parents(&mut self, p: &str) {
        for q in parents(p) {
            if !matches!(self.tree.get(&q), Some(Node::Dir)) {
                self.tree.insert(q, Node::Dir);
            }
        }
    }

    fn remove(&mut self, p: &str) {
        self.tree.retain(|k, _| !within(k, p));
        self.opaque_xattr.retain(|k| !within(k, p));
    }

    /// Applies one op; returns false (and changes nothing) when it is left out.
    fn apply(&mut self, op: &Op) -> bool {
        match op {
            Op::File(p, seed) => {
                if !self.parents_ok(p) {
                    return false;
                }
                self.make_parents(p);
                self.remove(p);
                self.replaced.insert(p.clone());
                let data = content(p, *seed);
                self.tree.insert(p.clone(), Node::File(data.clone()));
                self.entries.push(Entry::file(p, data));
            }
            Op::Dir(p) => {
                if !self.parents_ok(p) {
                    return false;
                }
                self.make_parents(p);
                if self.tree.get(p) != Some(&Node::Dir) {
                    // Replacing a non-directory of the layer (which replaced the lower path
                    // whole): a new directory, opaque.
                    let replacing = self.tree.contains_key(p);
                    self.remove(p);
                    self.tree.insert(p.clone(), Node::Dir);
                    if replacing {
                        self.opaque_xattr.insert(p.clone());
                    }
                }
                self.entries.push(Entry::dir(p));
            }
            Op::Symlink(p, target) => {
                if !self.parents_ok(p) {
                    return false;
                }
                self.make_parents(p);
                self.remove(p);
                self.replaced.insert(p.clone());
                self.tree
                    .insert(p.clone(), Node::Symlink(target.to_string()));
                self.entries.push(Entry::symlink(p, target));
            }
            Op::Hardlink(p, target) => {
                let Some(Node::File(data)) = self.tree.get(target).cloned() else {
                    return false;
                };
                if p == target
                    || within(target, p)
                    || !self.parents_ok(p)
                    || !parents(target)
                        .iter()
                        .all(|q| self.tree.get(q) == Some(&Node::Dir))
                {
                    return false;
                }
                self.make_parents(p);
                self.remove(p);
                self.replaced.insert(p.clone());
                self.tree.insert(p.clone(), Node::File(data));
                self.entries.push(Entry::hardlink(p, target));
            }
            Op::Whiteout(p) => {
                if !self.parents_ok(p) {
                    return false;
                }
                self.make_parents(p);
                self.tree.entry(p.clone()).or_insert(Node::Whiteout);
                self.deleted.insert(p.clone());
                self.entries.push(Entry::whiteout(p));
            }
            Op::Opaque(p) => {
                if !self.parents_ok(p)
                    || !matches!(self.tree.get(p), None | Some(Node::Dir | Node::Whiteout))
                {
                    return false;
                }
                self.make_parents(&format!("{p}/x"));
                self.opaque_xattr.insert(p.clone());
                self.opaque.insert(p.clone());
                self.entries.push(Entry::opaque(p));
            }
        }
        true
    }

    /// The end of the layer: its whiteouts and opaque markers once more, against the final
    /// tree (later members may have replaced what they applied to). A whited-out or opaque
    /// directory of the layer is opaque (the lower one is deleted, or its contents are); a
    /// whited-out name that is missing in a directory of the layer gets its device.
    fn finish(&mut self) {
        for p in &self.deleted {
            match self.tree.get(p) {
                Some(Node::Dir) => {
                    self.opaque_xattr.insert(p.clone());
                }
                Some(_) => {}
                None => {
                    if parents(p)
                        .iter()
                        .all(|q| self.tree.get(q) == Some(&Node::Dir))
                    {
                        self.tree.insert(p.clone(), Node::Whiteout);
                    }
                }
            }
        }
        for p in &self.opaque {
            if self.tree.get(p) == Some(&Node::Dir) {
                self.opaque_xattr.insert(p.clone());
            }
        }
    }
}

/// The flattened tree of a stack (bottom first), by the spec.
fn flatten(layers: &[LayerModel]) -> BTreeMap<String, Node> {
    let mut state: BTreeMap<String, Node> = BTreeMap::new();
    for l in layers {
        for d in l.deleted.iter().chain(&l.replaced) {
            state.retain(|k, _| !within(k, d));
        }
        for o in &l.opaque {
            state.retain(|k, _| !(within(k, o) && k != o));
        }
        // Parents sort before their children (the alphabet has no byte below '/').
        for (p, node) in &l.tree {
            match node {
                Node::Whiteout => {}
                Node::Dir => {
                    if !matches!(state.get(p), Some(Node::Dir)) {
                        state.retain(|k, _| !within(k, p));
                        state.insert(p.clone(), Node::Dir);
                    }
                }
                other => {
                    state.retain(|k, _| !within(k, p));
                    state.insert(p.clone(), other.clone());
                }
            }
        }
    }
    state
}

/// What is in a directory: type, content, symlink target; 0/0 char devices as whiteouts.
fn scan(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for (rel, node) in tree::scan(root) {
        if rel == Path::new(".") {
            continue;
        }
        let p = rel.display().to_string();
        let n = match node.kind {
            "dir" => Node::Dir,
            "file" => Node::File(fs::read(root.join(&rel)).expect("read file")),
            "symlink" => Node::Symlink(node.target.expect("target").display().to_string()),
            "char device" if node.rdev == Some((0, 0)) => Node::Whiteout,
            other => panic!("unexpected {other} at {p}"),
        };
        out.insert(p, n);
    }
    out
}

/// The mounted union: like [`scan`], but a readdir entry that is a character device and
/// cannot be looked up is a whiteout that overlayfs lists without hiding: in a directory that
/// exists in one layer only ("not merged"), overlayfs passes readdir through to that layer,
/// whiteout devices included, while lookups treat them as absent (`ls` shows `c?????????`).
/// Docker and containerd mounts behave the same. Those names are returned separately.
fn scan_union(root: &Path) -> (BTreeMap<String, Node>, BTreeSet<String>) {
    let mut out = BTreeMap::new();
    let mut phantoms = BTreeSet::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in fs::read_dir(root.join(&rel)).expect("readdir union") {
            let e = e.expect("dir entry");
            let child = rel.join(e.file_name());
            let p = child.display().to_string();
            let abs = root.join(&child);
            let md = match fs::symlink_metadata(&abs) {
                Ok(md) => md,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    use std::os::unix::fs::FileTypeExt as _;
                    assert!(
                        e.file_type().expect("d_type").is_char_device(),
                        "{p}: listed but absent, and not a whiteout"
                    );
                    phantoms.insert(p);
                    continue;
                }
                Err(err) => panic!("lstat {p}: {err}"),
            };
            let ft = md.file_type();
            let n = if ft.is_dir() {
                todo.push(child);
                Node::Dir
            } else if ft.is_file() {
                Node::File(fs::read(&abs).expect("read"))
            } else if ft.is_symlink() {
                Node::Symlink(fs::read_link(&abs).expect("readlink").display().to_string())
            } else {
                panic!("unexpected file type at {p}: {ft:?}");
            };
            out.insert(p, n);
        }
    }
    (out, phantoms)
}

fn opaque_dirs(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (rel, node) in tree::scan(root) {
        if node.kind == "dir"
            && rel != Path::new(".")
            && tree::get_xattr(&root.join(&rel), "trusted.overlay.opaque").as_deref() == Some(b"y")
        {
            out.insert(rel.display().to_string());
        }
    }
    out
}

fn show(ops: &[Vec<Op>], layers: &[LayerModel]) -> String {
    let mut s = String::new();
    for (i, (o, l)) in ops.iter().zip(layers).enumerate() {
        s.push_str(&format!("layer {i} ops {o:?}\n  tar: "));
        for e in &l.entries {
            s.push_str(&format!(
                "{}{} ",
                e.path,
                match &e.kind {
                    crate::support::image::Kind::Dir => "/".to_string(),
                    crate::support::image::Kind::Symlink(t) => format!(" -> {t}"),
                    crate::support::image::Kind::Hardlink(t) => format!(" link to {t}"),
                    _ => String::new(),
                }
            ));
        }
        s.push('\n');
    }
    s
}

fn check_stack(ops: &[Vec<Op>]) -> Result<(), TestCaseError> {
    let layers: Vec<LayerModel> = ops
        .iter()
        .map(|layer_ops| {
            let mut m = LayerModel::default();
            for op in layer_ops {
                m.apply(op);
            }
            m.finish();
            m
        })
        .collect();
    let work = support::tempdir("props");
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let dir = work.path().join(format!("layer{i}"));
        fs::create_dir(&dir).expect("layer dir");
        let tar = tar_bytes(&l.entries);
        strata::archive::apply_layer(&tar[..], &dir, &strata::archive::ApplyOptions::default())
            .map_err(|e| {
                TestCaseError::fail(format!("layer {i} refused: {e}\n{}", show(ops, &layers)))
            })?;
        let got = scan(&dir);
        prop_assert_eq!(&got, &l.tree, "layer {} dir\n{}", i, show(ops, &layers));
        let opaque = opaque_dirs(&dir);
        prop_assert_eq!(
            &opaque,
            &l.opaque_xattr,
            "layer {} opaque dirs\n{}",
            i,
            show(ops, &layers)
        );
        dirs.push(dir);
    }
    let mut top_first = dirs.clone();
    top_first.reverse();
    let graph = Graph {
        upper: top_first[0].clone(),
        lower: top_first[1..].to_vec(),
        work: work.path().join("unused-work"),
        merged: work.path().join("unused-merged"),
    };
    let mount = UnionMount::new(&graph);
    let (union, phantoms) = scan_union(mount.path());
    let want = flatten(&layers);
    for p in &phantoms {
        prop_assert!(
            !want.contains_key(p),
            "{} is listed as a whiteout in the union but the model has it\n{}",
            p,
            show(ops, &layers)
        );
    }
    if union != want {
        let mut d = String::new();
        for (p, n) in &want {
            match union.get(p) {
                None => d.push_str(&format!("  {p}: missing in the union (model: {n:?})\n")),
                Some(u) if u != n => d.push_str(&format!("  {p}: union {u:?} != model {n:?}\n")),
                _ => {}
            }
        }
        for (p, u) in &union {
            if !want.contains_key(p) {
                d.push_str(&format!("  {p}: only in the union ({u:?})\n"));
            }
        }
        return Err(TestCaseError::fail(format!(
            "mounted union differs from the model:\n{d}{}",
            show(ops, &layers)
        )));
    }
    Ok(())
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&NAMES[..]), 1..=3).prop_map(|v| v.join("/"))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (path(), any::<u8>()).prop_map(|(p, s)| Op::File(p, s)),
        3 => path().prop_map(Op::Dir),
        2 => (path(), prop::sample::select(&TARGETS[..])).prop_map(|(p, t)| Op::Symlink(p, t)),
        1 => (path(), path()).prop_map(|(p, t)| Op::Hardlink(p, t)),
        2 => path().prop_map(Op::Whiteout),
        1 => path().prop_map(Op::Opaque),
    ]
}

fn stack() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..12), 2..=4)
}

/// Runs the property; `PROPTEST_CASES` overrides the number of cases (default 128).
#[test]
fn random_layer_stacks_match_the_model() {
    support::require_root();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&stack(), |ops| check_stack(&ops));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Hand-picked stacks for the cases the issue names (also a regression list for what the
/// random search found).
#[test]
fn known_tricky_stacks() {
    support::require_root();
    let f = |p: &str, s: u8| Op::File(p.into(), s);
    let d = |p: &str| Op::Dir(p.into());
    let w = |p: &str| Op::Whiteout(p.into());
    let o = |p: &str| Op::Opaque(p.into());
    let l = |p: &str, t: &'static str| Op::Symlink(p.into(), t);
    let stacks: Vec<(&str, Vec<Vec<Op>>)> = vec![
        (
            "whiteout a file",
            vec![vec![d("a"), f("a/b", 1)], vec![w("a/b")]],
        ),
        (
            "whiteout a dir",
            vec![vec![d("a"), f("a/b", 1)], vec![w("a")]],
        ),
        (
            "opaque dir refilled",
            vec![vec![f("a/b", 1), f("a/c", 2)], vec![o("a"), f("a/c", 3)]],
        ),
        (
            "opaque marker after the entries",
            vec![vec![f("a/b", 1)], vec![f("a/c", 3), o("a")]],
        ),
        (
            "file -> dir -> symlink across layers",
            vec![vec![f("a", 1)], vec![f("a/b", 2)], vec![l("a", "b/c")]],
        ),
        (
            "re-add a deleted path",
            vec![vec![f("a/b", 1)], vec![w("a")], vec![f("a/c", 2)]],
        ),
        (
            "whiteout then own file of the same name",
            vec![vec![f("a", 1)], vec![w("a"), f("a", 2)]],
        ),
        (
            "own dir then whiteout of it",
            vec![vec![f("a/b", 1)], vec![f("a/c", 2), w("a")]],
        ),
        (
            "whiteout then own dir of the same name",
            vec![vec![f("a/b", 1)], vec![w("a"), f("a/c", 2)]],
        ),
        (
            "whiteout below a dir the layer then replaces and re-creates",
            vec![vec![f("b/a", 1)], vec![w("b/a"), l("b", "a"), d("b")]],
        ),
        (
            "opaque then dir replaced in the same layer",
            vec![vec![f("a/b", 1)], vec![o("a"), f("a", 2), d("a")]],
        ),
        (
            "opaque below a dir the layer replaces and re-creates",
            vec![vec![d("a/b/a")], vec![o("a/b"), l("a", "a"), d("a")]],
        ),
        (
            "file then dir of the same name over a lower dir",
            vec![vec![f("a/b", 1)], vec![f("a", 2), d("a"), f("a/c", 3)]],
        ),
    ];
    let mut failures = Vec::new();
    for (name, ops) in &stacks {
        if let Err(e) = check_stack(ops) {
            failures.push(format!("--- {name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} stacks differ:\n{}",
        failures.len(),
        stacks.len(),
        failures.join("\n")
    );
}

//! `strata check [--repair] [--json]`: each kind of breakage made by hand is reported with what
//! it affects, `--repair` removes it so that the next pull fetches it again, and a healthy
//! layer next to a broken one is never touched.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::Env;
use crate::support::image::{Compression, Entry, Flavor, Image, ImageBuilder};
use crate::support::strata::Output;

/// Two images: `test/app:v1` (base + top) with an unmounted container `c` on it, and
/// `test/other:v1` (one layer of its own), all pulled.
struct World {
    env: Env,
    app: String,
    other: String,
    /// Chain hex of app's base and top layers and of other's layer.
    base: String,
    top: String,
    healthy: String,
}

fn hexes(img: &Image) -> Vec<String> {
    img.chain_ids()
        .iter()
        .map(|c| c.trim_start_matches("sha256:").to_string())
        .collect()
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let app = ImageBuilder::new(Flavor::Oci)
            .entries(
                &[Entry::dir("etc"), Entry::file("etc/base", "base\n")],
                Compression::Gzip,
            )
            .entries(
                &[
                    Entry::dir("opt"),
                    Entry::file("opt/top", "top\n").mode(0o640),
                ],
                Compression::Gzip,
            )
            .build();
        let other = ImageBuilder::new(Flavor::Oci)
            .entries(
                &[Entry::dir("srv"), Entry::file("srv/other", "other\n")],
                Compression::Gzip,
            )
            .build();
        env.push.image("test/app", Some("v1"), &app);
        env.push.image("test/other", Some("v1"), &other);
        let (app_ref, other_ref) = (env.r("test/app:v1"), env.r("test/other:v1"));
        env.strata.run(&["--content-digest", "pull", &app_ref]).ok();
        env.strata
            .run(&["--content-digest", "pull", &other_ref])
            .ok();
        env.strata
            .run(&["pull-and-mount", "--name", "c", &app_ref])
            .ok();
        env.strata.run(&["umount", "c"]).ok();
        let chains = hexes(&app);
        World {
            base: chains[0].clone(),
            top: chains[1].clone(),
            healthy: hexes(&other)[0].clone(),
            app: app_ref,
            other: other_ref,
            env,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.env.strata.run(args)
    }

    fn layer(&self, hex: &str) -> PathBuf {
        self.env.strata.overlay2().join(hex)
    }

    fn link_of(&self, hex: &str) -> String {
        fs::read_to_string(self.layer(hex).join("link")).expect("link file")
    }

    /// `check --json`, with its exit code.
    fn check(&self) -> (Option<i32>, Vec<Value>) {
        let out = self.run(&["check", "--json"]);
        let v: Vec<Value> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!("check --json is not a JSON list ({e}):\n{}", out.describe())
        });
        (out.code(), v)
    }

    #[track_caller]
    fn assert_clean(&self) {
        let (code, problems) = self.check();
        assert_eq!(problems, Vec::<Value>::new());
        assert_eq!(code, Some(0));
        let out = self.run(&["check"]).ok();
        assert_eq!(out.stdout, "", "{}", out.describe());
        assert!(
            out.stderr.contains("No problems found"),
            "{}",
            out.describe()
        );
    }

    /// Asserts a problem of `kind` about `object` that affects every one of `affects`.
    #[track_caller]
    fn assert_problem(problems: &[Value], kind: &str, object: &str, affects: &[&str]) {
        let found = problems
            .iter()
            .find(|p| p["Kind"] == kind && p["Object"] == object);
        let Some(p) = found else {
            panic!("no {kind} problem about {object} in {problems:#?}");
        };
        assert!(p["Detail"].as_str().is_some_and(|d| !d.is_empty()), "{p:#}");
        let listed: Vec<&str> = p["Affects"]
            .as_array()
            .expect("affects is a list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for a in affects {
            assert!(
                listed.contains(a),
                "{kind} {object} should affect {a}: {p:#}"
            );
        }
    }

    /// What `affects` says of app and its container.
    fn app_users(&self) -> [String; 2] {
        [format!("image {}", self.app), "container c".to_string()]
    }

    /// Repairs (exit 0 or 1, never an error), pulls app again, and checks clean.
    fn repair_and_pull(&self) {
        let out = self.run(&["check", "--repair"]);
        assert!(
            matches!(out.code(), Some(0 | 1)),
            "check --repair:\n{}",
            out.describe()
        );
        self.run(&["--content-digest", "pull", &self.app]).ok();
        self.assert_clean();
        // The container works again.
        self.run(&["mount", "c"]).ok();
        self.run(&["umount", "c"]).ok();
    }
}

/// Inode and mtime of a layer's directory and its `diff/`: unchanged when untouched.
fn stamp(dir: &Path) -> Vec<(u64, i64, i64)> {
    [
        dir.to_path_buf(),
        dir.join("diff"),
        dir.join("diff/srv/other"),
    ]
    .iter()
    .map(|p| {
        let md = fs::symlink_metadata(p).expect("stat");
        (md.ino(), md.mtime(), md.mtime_nsec())
    })
    .collect()
}

#[test]
fn clean_store_checks_clean() {
    let w = World::new();
    w.assert_clean();
    // The table form of a problem, and --repair --json's shape.
    fs::create_dir(w.env.strata.overlay2().join("junk")).unwrap();
    let out = w.run(&["check"]).fails_with(1);
    assert!(out.stdout.starts_with("KIND"), "{}", out.describe());
    assert!(
        out.stdout.contains("orphan-dir  overlay2/junk"),
        "{}",
        out.describe()
    );
    let out = w.run(&["check", "--repair", "--json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["Found"][0]["Kind"], "orphan-dir");
    assert_eq!(v["Found"][0]["Repair"], "removed");
    assert_eq!(v["Remaining"], Value::Array(vec![]));
    assert!(!w.env.strata.overlay2().join("junk").exists());
    w.assert_clean();
}

#[test]
fn each_breakage_is_reported_repaired_and_refetched() {
    let w = World::new();
    let users = w.app_users();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let healthy = stamp(&w.layer(&w.healthy));
    let top_chain = format!("sha256:{}", w.top);
    let base_chain = format!("sha256:{}", w.base);

    // A deleted link file.
    fs::remove_file(w.layer(&w.top).join("link")).unwrap();
    let (code, problems) = w.check();
    assert_eq!(code, Some(1));
    World::assert_problem(&problems, "link-file", &top_chain, &users);
    let base_before = stamp_layer(&w.layer(&w.base));
    w.repair_and_pull();
    // Only the broken layer was removed and fetched again.
    assert_eq!(stamp_layer(&w.layer(&w.base)), base_before);

    // A broken l/ link.
    let link = w.env.strata.overlay2().join("l").join(w.link_of(&w.top));
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../nowhere/diff", &link).unwrap();
    let (_, problems) = w.check();
    World::assert_problem(&problems, "short-link", &top_chain, &users);
    World::assert_problem(
        &problems,
        "dangling-link",
        &format!("l/{}", w.link_of(&w.top)),
        &[],
    );
    w.repair_and_pull();

    // A removed record: the directory and its short link belong to nothing.
    fs::remove_file(
        w.env
            .strata
            .root()
            .join("layers")
            .join(format!("{}.json", w.top)),
    )
    .unwrap();
    let (_, problems) = w.check();
    World::assert_problem(
        &problems,
        "orphan-dir",
        &format!("overlay2/{}", w.top),
        &users,
    );
    World::assert_problem(
        &problems,
        "foreign-link",
        &format!("l/{}", w.link_of(&w.top)),
        &users,
    );
    let app_id = w.env.strata.inspect(&w.app)["Id"]
        .as_str()
        .expect("image id")
        .to_string();
    World::assert_problem(&problems, "image-layer", &app_id, &users);
    World::assert_problem(&problems, "container-layer", "c", &["container c"]);
    w.repair_and_pull();

    // An orphan directory.
    fs::create_dir_all(w.env.strata.overlay2().join("leftover/diff")).unwrap();
    let (_, problems) = w.check();
    World::assert_problem(&problems, "orphan-dir", "overlay2/leftover", &[]);
    w.repair_and_pull();
    assert!(!w.env.strata.overlay2().join("leftover").exists());

    // A parent's directory deleted.
    fs::remove_dir_all(w.layer(&w.base)).unwrap();
    let (_, problems) = w.check();
    World::assert_problem(&problems, "orphan-record", &base_chain, &users);
    World::assert_problem(&problems, "container-layer", "c", &["container c"]);
    let top_before = stamp_layer(&w.layer(&w.top));
    w.repair_and_pull();
    // The child layer passes every check: kept as it was.
    assert_eq!(stamp_layer(&w.layer(&w.top)), top_before);

    // A corrupt lower file.
    fs::write(w.layer(&w.top).join("lower"), "l/NOTALINK").unwrap();
    let (_, problems) = w.check();
    World::assert_problem(&problems, "lower", &top_chain, &users);
    w.repair_and_pull();

    // The other image's layer was never touched.
    assert_eq!(stamp(&w.layer(&w.healthy)), healthy);
    w.run(&["pull", &w.other]).ok();
    assert_eq!(stamp(&w.layer(&w.healthy)), healthy);
}

/// Inode and mtime of a layer's directory and `diff/`.
fn stamp_layer(dir: &Path) -> Vec<(u64, i64, i64)> {
    [dir.to_path_buf(), dir.join("diff")]
        .iter()
        .map(|p| {
            let md = fs::symlink_metadata(p).expect("stat");
            (md.ino(), md.mtime(), md.mtime_nsec())
        })
        .collect()
}

#[test]
fn leftovers_of_killed_commands_are_reported_and_removed() {
    let w = World::new();
    let root = w.env.strata.root();
    let staging = root.join("staging").join("ab".repeat(32));
    fs::create_dir_all(staging.join("diff")).unwrap();
    fs::write(root.join("unsynced").join(&w.top), "another-boot").unwrap();
    let (code, problems) = w.check();
    assert_eq!(code, Some(1));
    World::assert_problem(
        &problems,
        "staging",
        &format!("staging/{}", "ab".repeat(32)),
        &[],
    );
    let users = w.app_users();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    World::assert_problem(&problems, "unsynced", &format!("sha256:{}", w.top), &users);
    w.repair_and_pull();
    assert!(!staging.exists());
    assert!(!root.join("unsynced").join(&w.top).exists());
}

/// `check --content --json`, with its exit code.
fn check_content(w: &World, extra: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut args = vec!["check", "--content", "--json"];
    args.extend(extra);
    let out = w.run(&args);
    let v: Vec<Value> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check --content --json: not a list ({e}):\n{}",
            out.describe()
        )
    });
    (out.code(), v)
}

#[test]
fn content_check_finds_files_changed_by_hand() {
    let w = World::new();
    assert_eq!(check_content(&w, &[]), (Some(0), vec![]));
    let healthy = stamp(&w.layer(&w.healthy));
    let users = w.app_users();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();

    // Content, mode and an added file.
    fs::write(w.layer(&w.top).join("diff/opt/top"), "edited\n").unwrap();
    fs::set_permissions(
        w.layer(&w.base).join("diff/etc/base"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::write(w.layer(&w.base).join("diff/etc/added"), "").unwrap();
    // The structural check does not look at files.
    w.assert_clean();
    let (code, problems) = check_content(&w, &[]);
    assert_eq!(code, Some(1));
    let top = format!("sha256:{}", w.top);
    let base = format!("sha256:{}", w.base);
    World::assert_problem(&problems, "content", &top, &users);
    World::assert_problem(&problems, "content", &base, &users);
    let detail = |object: &str| {
        problems
            .iter()
            .find(|p| p["Object"] == object)
            .and_then(|p| p["Detail"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        detail(&top).contains("opt/top changed (content)"),
        "{problems:#?}"
    );
    assert!(
        detail(&base).contains("etc/base changed (mode)"),
        "{problems:#?}"
    );
    assert!(detail(&base).contains("etc/added added"), "{problems:#?}");
    assert_eq!(problems.len(), 2, "{problems:#?}");

    // Repaired: both layers removed, fetched again, clean; the other image untouched.
    let out = w.run(&["check", "--content", "--repair"]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    w.run(&["--content-digest", "pull", &w.app]).ok();
    assert_eq!(check_content(&w, &[]), (Some(0), vec![]));
    assert_eq!(stamp(&w.layer(&w.healthy)), healthy);
    let content = fs::read_to_string(w.layer(&w.top).join("diff/opt/top")).unwrap();
    assert_eq!(content, "top\n");
}

#[test]
fn layers_of_an_older_strata_are_a_notice() {
    let w = World::new();
    let record = w
        .env
        .strata
        .root()
        .join("layers")
        .join(format!("{}.json", w.healthy));
    let mut v: Value = serde_json::from_slice(&fs::read(&record).unwrap()).unwrap();
    assert!(v["content_digest"].is_string(), "{v:#}");
    v.as_object_mut().unwrap().remove("content_digest");
    fs::write(&record, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, problems) = check_content(&w, &[]);
    assert_eq!(code, Some(0), "{problems:#?}");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    World::assert_problem(
        &problems,
        "no-content-digest",
        &format!("sha256:{}", w.healthy),
        &[&format!("image {}", w.other)],
    );
    assert!(problems[0]["Detail"].as_str().unwrap().contains(
        "no content digest recorded (pulled by an older strata, or without --content-digest)"
    ));
    // Nothing to repair: the layer stays.
    let before = stamp(&w.layer(&w.healthy));
    w.run(&["check", "--content", "--repair"]).ok();
    assert_eq!(stamp(&w.layer(&w.healthy)), before);
    w.assert_clean();
    // Nor has a layer pulled without --content-digest.
    let other = crate::support::strata::Strata::new();
    other.pull(&w.other).ok();
    let out = other.run(&["check", "--content", "--json"]).ok();
    let problems: Vec<Value> = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0]["Kind"], "no-content-digest");
    assert!(
        !other
            .overlay2()
            .join(&w.healthy)
            .join("content.gz")
            .exists()
    );
    assert!(w.layer(&w.top).join("content.gz").is_file());
}

#[test]
fn a_container_whose_layers_are_gone_is_reported_not_repaired() {
    let w = World::new();
    let ps = w.env.strata.ps();
    let id = ps[0]["Id"].as_str().expect("container id").to_string();
    fs::remove_dir_all(w.env.strata.overlay2().join(format!("{id}-init"))).unwrap();
    let (code, problems) = w.check();
    assert_eq!(code, Some(1));
    World::assert_problem(&problems, "container", "c", &["container c"]);
    let out = w.run(&["check", "--repair", "--json"]).fails_with(1);
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let found = v["Found"].as_array().expect("found");
    assert!(
        found.iter().any(|p| p["Kind"] == "container"
            && p["Repair"] == "left"
            && p["Detail"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot be repaired")),
        "{v:#}"
    );
    // Its other directory and the image's layers are untouched.
    assert!(w.env.strata.overlay2().join(&id).join("diff").is_dir());
    assert!(w.layer(&w.top).join("diff").is_dir());
    w.run(&["rm", "-f", "c"]).ok();
    w.assert_clean();
}

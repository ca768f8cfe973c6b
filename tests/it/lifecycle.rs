//! The store's lifecycle: `tag`, `rmi` (`image rm`), `image prune`, `container prune` and
//! `system prune` against a real registry, and what they leave in `overlay2/`, `l/` and
//! `layers/`.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::image::{Compression, Entry, Flavor, Image, ImageBuilder, Layer, hex_of};
use crate::support::strata::{Output, Strata};
use crate::support::{self, Env};

/// Two images sharing the Alpine base layer, pushed as `test/a:v1` and `test/b:v1`.
pub(crate) fn push_pair(env: &Env) -> (Image, Image) {
    let base = Layer::from_tar_gz(&support::alpine_tarball(support::host_alpine_arch()));
    let a = ImageBuilder::new(Flavor::Oci)
        .layer(base.clone(), Compression::Gzip)
        .entries(
            &[Entry::dir("app"), Entry::file("app/a", "image a\n")],
            Compression::Gzip,
        )
        .build();
    let b = ImageBuilder::new(Flavor::Oci)
        .layer(base, Compression::Gzip)
        .entries(
            &[Entry::dir("app"), Entry::file("app/b", "image b\n")],
            Compression::Gzip,
        )
        .build();
    env.push.image("test/a", Some("v1"), &a);
    env.push.image("test/b", Some("v1"), &b);
    (a, b)
}

/// The hex of each `layers/<hex>.json` record, sorted.
pub(crate) fn layer_records(s: &Strata) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(s.root().join("layers"))
        .map(|rd| {
            rd.filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Hex names, sorted.
fn hexes(chains: &[String]) -> Vec<String> {
    let mut v: Vec<String> = chains.iter().map(|c| hex_of(c).to_string()).collect();
    v.sort();
    v
}

/// The layer is fully in the store: its directory, its record, and its short link.
#[track_caller]
pub(crate) fn assert_layer_whole(s: &Strata, chain: &str) {
    let hex = hex_of(chain);
    let dir = s.overlay2().join(hex);
    assert!(dir.join("diff").is_dir(), "overlay2/{hex}/diff is missing");
    assert!(
        s.root()
            .join("layers")
            .join(format!("{hex}.json"))
            .is_file(),
        "layers/{hex}.json is missing"
    );
    let link = fs::read_to_string(dir.join("link")).expect("link file");
    let target = fs::read_link(s.overlay2().join("l").join(&link)).expect("short link");
    assert_eq!(target, Path::new(&format!("../{hex}/diff")));
}

/// The layer left everything: directory, record and short link.
#[track_caller]
fn assert_layer_gone(s: &Strata, chain: &str) {
    let hex = hex_of(chain);
    assert!(!s.overlay2().join(hex).exists(), "overlay2/{hex} is left");
    assert!(
        !layer_records(s).contains(&hex.to_string()),
        "layers/{hex}.json is left"
    );
    for link in s.short_links() {
        let target = fs::read_link(s.overlay2().join("l").join(&link)).expect("short link");
        assert!(
            !target.to_string_lossy().contains(hex),
            "l/{link} still points at {hex}"
        );
    }
}

/// The root holds nothing but the skeleton: its empty directories and lock files.
#[track_caller]
pub(crate) fn assert_skeleton(s: &Strata) {
    let mut left = Vec::new();
    for entry in fs::read_dir(s.root()).expect("root") {
        let entry = entry.expect("root entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !path.is_dir() {
            // `kind` (who made the store) is part of the skeleton.
            if name != "kind" {
                left.push(name);
            }
            continue;
        }
        for inner in walk(&path) {
            let rel = inner
                .strip_prefix(s.root())
                .expect("under root")
                .to_path_buf();
            let lock = name == "locks" && inner.is_file();
            let skeleton = rel == Path::new("overlay2/l") && inner.is_dir();
            if !lock && !skeleton {
                left.push(rel.display().to_string());
            }
        }
    }
    assert!(left.is_empty(), "not the bare skeleton, left: {left:?}");
}

/// Everything below `dir` (not `dir` itself), not following symlinks.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

fn lines(out: &Output) -> Vec<&str> {
    out.stdout.lines().collect()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.describe()))
}

#[test]
fn tag_then_rmi_by_tag_keeps_shared_layers_and_removes_the_rest() {
    let env = Env::new();
    let (a, b) = push_pair(&env);
    let (ra, rb) = (env.r("test/a:v1"), env.r("test/b:v1"));
    env.strata.pull(&ra).ok();
    env.strata.pull(&rb).ok();
    let (ca, cb) = (a.chain_ids(), b.chain_ids());
    assert_eq!(ca[0], cb[0], "the images share their base");

    // tag: by reference and by id prefix; prints nothing.
    let other = env.r("other/a:x");
    let out = env.strata.run(&["tag", &ra, &other]).ok();
    assert_eq!(out.stdout, "");
    let id12 = &hex_of(&a.config_digest)[..12];
    env.strata.run(&["tag", id12, &env.r("other/a:y")]).ok();
    assert_eq!(env.strata.inspect(&other)["Id"], a.config_digest);
    env.strata
        .run(&[
            "tag",
            &ra,
            &format!("{}@{}", env.r("x/y"), a.manifest_digest),
        ])
        .assert_error(&["digest"]);
    env.strata
        .run(&["tag", "nosuchimage", &other])
        .assert_error(&["nosuchimage"]);

    // Untagging one of several tags: only that.
    let out = env.strata.run(&["rmi", &other]).ok();
    assert_eq!(lines(&out), vec![format!("Untagged: {other}")]);
    let out = env.strata.run(&["image", "rm", &env.r("other/a:y")]).ok();
    assert_eq!(
        lines(&out),
        vec![format!("Untagged: {}", env.r("other/a:y"))]
    );
    assert_layer_whole(&env.strata, &ca[1]);

    // The last tag: the image and its own layer go, the shared base stays for b.
    let out = env.strata.run(&["rmi", &ra]).ok();
    assert_eq!(
        lines(&out),
        vec![
            format!("Untagged: {ra}"),
            format!("Untagged: {}@{}", env.r("test/a"), a.manifest_digest),
            format!("Deleted: {}", a.config_digest),
            format!("Deleted: {}", ca[1]),
        ]
    );
    assert_layer_gone(&env.strata, &ca[1]);
    assert_layer_whole(&env.strata, &cb[0]);
    assert_layer_whole(&env.strata, &cb[1]);
    assert!(
        !env.strata
            .root()
            .join("images")
            .join(hex_of(&a.config_digest))
            .exists()
    );
    env.strata
        .run(&["rmi", &ra])
        .assert_error(&["no such image"]);
    assert_eq!(layer_records(&env.strata), hexes(&cb));

    // The last image: everything goes.
    let out = env.strata.run(&["rmi", "--json", &rb]).ok();
    let items = json(&out);
    assert_eq!(items[0]["Untagged"], rb.as_str());
    let deleted: Vec<&str> = items
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["Deleted"].as_str())
        .collect();
    assert_eq!(deleted, vec![b.config_digest.as_str(), &cb[1], &cb[0]]);
    assert_skeleton(&env.strata);
}

#[test]
fn rmi_by_id_with_tags_in_several_repositories_needs_force() {
    let env = Env::new();
    let (a, _) = push_pair(&env);
    let ra = env.r("test/a:v1");
    env.strata.pull(&ra).ok();
    env.strata.run(&["tag", &ra, &env.r("test/a:v2")]).ok();
    let id12 = &hex_of(&a.config_digest)[..12];

    // Two tags of one repository: removing by id untags both.
    let out = env.strata.run(&["rmi", id12]).ok();
    assert_eq!(
        lines(&out)[..2],
        [
            format!("Untagged: {ra}"),
            format!("Untagged: {}", env.r("test/a:v2"))
        ]
    );
    assert!(
        out.stdout
            .contains(&format!("Deleted: {}", a.config_digest))
    );

    env.strata.pull(&ra).ok();
    env.strata.run(&["tag", &ra, &env.r("elsewhere/a:v1")]).ok();
    env.strata.run(&["rmi", id12]).assert_error(&[
        &format!("conflict: unable to delete {id12} (must be forced)"),
        "image is referenced in multiple repositories",
    ]);
    assert_eq!(env.strata.images().len(), 2);
    let out = env.strata.run(&["rmi", "-f", &a.config_digest]).ok();
    assert!(
        out.stdout
            .contains(&format!("Untagged: {}", env.r("elsewhere/a:v1")))
    );
    assert!(
        out.stdout
            .contains(&format!("Deleted: {}", a.config_digest))
    );
    assert_skeleton(&env.strata);
}

#[test]
fn rmi_of_an_image_in_use_is_refused_and_force_keeps_the_containers_layers() {
    let env = Env::new();
    let (a, b) = push_pair(&env);
    let (ra, rb) = (env.r("test/a:v1"), env.r("test/b:v1"));
    env.strata.pull(&rb).ok();
    env.strata
        .run(&["pull-and-mount", "--name", "c1", &ra])
        .ok();

    // Refused for a, b still removed, exit 1.
    let out = env.strata.run(&["rmi", &ra, &rb]);
    out.assert_error(&[&format!(
        "unable to remove image {ra} (must force) - image is being used by container c1"
    )]);
    assert!(
        out.stdout
            .contains(&format!("Deleted: {}", b.config_digest))
    );
    assert_layer_whole(&env.strata, &a.chain_ids()[0]);
    assert_layer_whole(&env.strata, &a.chain_ids()[1]);

    // Forced: the image goes, the container's layers stay and it mounts again.
    let out = env.strata.run(&["rmi", "-f", &ra]).ok();
    assert_eq!(
        lines(&out),
        vec![
            format!("Untagged: {ra}"),
            format!("Untagged: {}@{}", env.r("test/a"), a.manifest_digest),
            format!("Deleted: {}", a.config_digest),
        ]
    );
    for chain in a.chain_ids() {
        assert_layer_whole(&env.strata, &chain);
    }
    env.strata.run(&["umount", "c1"]).ok();
    let merged = env.strata.run(&["mount", "c1"]).ok();
    assert_eq!(
        fs::read_to_string(Path::new(merged.stdout.trim()).join("app/a")).unwrap(),
        "image a\n"
    );

    // Without users, the layers are garbage for image prune.
    env.strata.run(&["rm", "-f", "c1"]).ok();
    let out = env.strata.run(&["image", "prune", "-f"]).ok();
    assert!(
        out.stdout.starts_with("Deleted Images:\n"),
        "{}",
        out.describe()
    );
    for chain in a.chain_ids() {
        assert!(
            out.stdout.contains(&format!("deleted: {chain}")),
            "{}",
            out.describe()
        );
        assert_layer_gone(&env.strata, &chain);
    }
    assert!(out.stdout.contains("Total reclaimed space: "));
    assert_skeleton(&env.strata);
}

#[test]
fn prunes_remove_dangling_then_unused_images_and_unmounted_containers() {
    let env = Env::new();
    let (a, b) = push_pair(&env);
    let (ra, rb) = (env.r("test/a:v1"), env.r("test/b:v1"));
    env.strata.pull(&ra).ok();
    env.strata.pull(&rb).ok();
    // a loses its only tag: dangling.
    env.strata.run(&["tag", &rb, &ra]).ok();

    // No terminal, no -f: refused, nothing removed.
    for args in [
        &["image", "prune"][..],
        &["container", "prune"],
        &["system", "prune", "-a"],
    ] {
        env.strata.run(args).assert_error(&["not a terminal", "-f"]);
    }
    assert_eq!(layer_records(&env.strata).len(), 3);

    let out = env.strata.run(&["image", "prune", "-f"]).ok();
    assert_eq!(
        lines(&out)[..4],
        [
            "Deleted Images:".to_string(),
            format!("untagged: {}@{}", env.r("test/a"), a.manifest_digest),
            format!("deleted: {}", a.config_digest),
            format!("deleted: {}", a.chain_ids()[1]),
        ]
    );
    assert!(
        lines(&out)
            .last()
            .unwrap()
            .starts_with("Total reclaimed space: ")
    );
    assert_layer_gone(&env.strata, &a.chain_ids()[1]);
    // Nothing dangling left.
    let out = env.strata.run(&["image", "prune", "-f"]).ok();
    assert_eq!(out.stdout, "Total reclaimed space: 0B\n");

    // Containers: an unmounted one goes, a mounted one stays (and keeps its image).
    env.strata
        .run(&["pull-and-mount", "--name", "idle", &rb])
        .ok();
    env.strata.run(&["umount", "idle"]).ok();
    let busy = env
        .strata
        .run(&["pull-and-mount", "--json", "--name", "busy", &rb])
        .ok();
    let busy_id = json(&busy)["Id"].as_str().expect("id").to_string();
    let idle_id = env.strata.ps()[0]["Id"].as_str().expect("id").to_string();
    let out = env.strata.run(&["container", "prune", "-f"]).ok();
    assert_eq!(lines(&out)[..2], ["Deleted Containers:", idle_id.as_str()]);
    assert_eq!(env.strata.ps().len(), 1);
    let trash = fs::read_dir(env.strata.root().join("trash"))
        .unwrap()
        .count();
    assert_eq!(
        trash, 0,
        "a removed container's files are gone, not only trashed"
    );

    let out = env
        .strata
        .run(&["system", "prune", "-a", "-f", "--json"])
        .ok();
    let report = json(&out);
    assert_eq!(report["ContainersDeleted"], serde_json::json!([]));
    assert_eq!(report["ImagesDeleted"], serde_json::json!([]));
    assert_eq!(report["SpaceReclaimed"], 0);
    assert_layer_whole(&env.strata, &b.chain_ids()[1]);

    env.strata.run(&["umount", "busy"]).ok();
    let out = env.strata.run(&["system", "prune", "-a", "-f"]).ok();
    assert_eq!(lines(&out)[..2], ["Deleted Containers:", busy_id.as_str()]);
    assert!(out.stdout.contains("\nDeleted Images:\n"));
    assert!(out.stdout.contains(&format!("untagged: {ra}")));
    assert!(out.stdout.contains(&format!("untagged: {rb}")));
    assert!(
        out.stdout
            .contains(&format!("deleted: {}", b.config_digest))
    );
    assert_skeleton(&env.strata);
}

/// `strata --root ROOT ARGS` on a terminal (util-linux `script`), answering `answer`.
fn on_terminal(s: &Strata, args: &str, answer: &str) -> String {
    support::require_tool("script");
    let command = format!(
        "{} --root {} {args}",
        crate::support::strata::bin().display(),
        s.root().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn script");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("answer");
    let out = child.wait_with_output().expect("wait for script");
    assert!(out.status.success(), "{args}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn prunes_ask_on_a_terminal_and_only_yes_removes() {
    let env = Env::new();
    let (a, b) = push_pair(&env);
    let ra = env.r("test/a:v1");
    env.strata.pull(&ra).ok();
    // The tag moves to b: a is dangling.
    env.push.image("test/a", Some("v1"), &b);
    env.strata.pull(&ra).ok();

    let out = on_terminal(&env.strata, "image prune", "n\n");
    assert!(
        out.contains("WARNING! This will remove all dangling images.")
            && out.contains("Are you sure you want to continue? [y/N]"),
        "{out}"
    );
    assert!(!out.contains("Total reclaimed space"), "{out}");
    assert_layer_whole(&env.strata, &a.chain_ids()[1]);

    let out = on_terminal(&env.strata, "system prune -a", "y\n");
    assert!(out.contains("  - all images without at least one container associated to them"));
    assert!(
        out.contains(&format!("deleted: {}", a.config_digest)),
        "{out}"
    );
    assert_skeleton(&env.strata);
}

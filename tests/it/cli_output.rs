//! What the command line shows: each command's `--help` offers its own options (the global
//! ones under one heading), `-q` prints ids only.

use std::process::Command;

use crate::support::Env;
use crate::support::image::{Compression, Entry, Flavor, ImageBuilder};
use crate::support::strata;

/// `strata ARGS... --help`'s text.
fn help(args: &[&str]) -> String {
    let out = Command::new(strata::bin())
        .args(args)
        .arg("--help")
        .output()
        .expect("run strata");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many option lines of `text` define `option` (`      --name <V>`, `  -q, --quiet`).
fn offers(text: &str, option: &str) -> usize {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line =
                line.split_once(", ").map_or(
                    line,
                    |(short, rest)| {
                        if short.len() == 2 { rest } else { line }
                    },
                );
            line.split_whitespace().next()
        })
        .filter(|name| *name == option)
        .count()
}

const PULL_ONLY: [&str; 7] = [
    "--platform",
    "--max-concurrent-downloads",
    "--no-sync",
    "--content-digest",
    "--mirror",
    "--insecure-registry",
    "--certs-dir",
];

#[test]
fn commands_that_do_not_pull_offer_no_pull_options() {
    for command in [
        &["ps"][..],
        &["rm"],
        &["umount"],
        &["mount"],
        &["images"],
        &["tag"],
        &["rmi"],
        &["check"],
        &["system", "df"],
        &["logout"],
    ] {
        let text = help(command);
        for option in PULL_ONLY {
            assert_eq!(
                offers(&text, option),
                0,
                "`{}` offers {option}:\n{text}",
                command.join(" ")
            );
        }
        assert_eq!(text.matches("Global options:").count(), 1, "{text}");
        assert_eq!(offers(&text, "--root"), 1, "{text}");
    }
}

#[test]
fn commands_that_pull_offer_the_pull_options_once() {
    for command in ["pull", "pull-and-mount", "run", "export"] {
        let text = help(&[command]);
        for option in PULL_ONLY
            .iter()
            .chain(&["--root", "--config", "--log-level"])
        {
            assert_eq!(
                offers(&text, option),
                1,
                "`{command}` must offer {option} once:\n{text}"
            );
        }
        assert!(text.contains("Pull options:") && text.contains("Registry options:"));
    }
    let login = help(&["login"]);
    assert!(
        login.contains("--mirror") && !login.contains("--platform"),
        "{login}"
    );
    let inspect = help(&["inspect"]);
    assert!(
        inspect.contains("--platform") && !inspect.contains("--mirror"),
        "{inspect}"
    );
}

#[test]
fn the_top_level_help_shows_global_options_only() {
    let text = help(&[]);
    for option in PULL_ONLY {
        assert_eq!(offers(&text, option), 0, "{text}");
    }
    assert!(
        text.contains("--log-level") && text.contains("--root"),
        "{text}"
    );
}

#[test]
fn pull_options_are_accepted_before_and_after_the_command() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("f", "before and after\n")], Compression::Gzip)
        .build();
    env.push.image("test/order", Some("v1"), &img);
    let reference = env.r("test/order:v1");
    env.strata
        .run(&["--max-concurrent-downloads", "1", "pull", &reference])
        .ok();
    env.strata
        .run(&[
            "pull",
            "--max-concurrent-downloads",
            "1",
            "--no-sync",
            &reference,
        ])
        .ok();
    // A usage error (exit 2), as a malformed option value is for clap.
    let out = env
        .strata
        .run(&["pull", "--max-concurrent-downloads", "0", &reference])
        .fails_with(2);
    assert!(
        out.stderr
            .contains("--max-concurrent-downloads must be at least 1"),
        "{}",
        out.describe()
    );
    // An option for pulls given to a command that does not pull is a usage error.
    env.strata
        .run(&["ps", "--platform", "linux/amd64"])
        .fails_with(2);
}

#[test]
fn images_and_ps_q_print_ids_only() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("f", "ids only\n")], Compression::Gzip)
        .build();
    env.push.image("test/ids", Some("v1"), &img);
    let reference = env.r("test/ids:v1");
    env.strata
        .run(&["pull-and-mount", "--name", "c1", &reference])
        .ok();
    let images = env.strata.run(&["images", "-q"]).ok();
    let image_id = img.config_digest.trim_start_matches("sha256:");
    assert_eq!(images.stdout, format!("{}\n", &image_id[..12]));
    let ps = env.strata.run(&["ps", "-q"]).ok();
    let lines: Vec<&str> = ps.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", ps.describe());
    assert!(
        lines[0].len() == 12 && lines[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "{}",
        ps.describe()
    );
    env.strata.run(&["rm", "-f", "c1"]).ok();
}

#[test]
fn a_pull_by_digest_names_the_digest_and_counts_say_1_layer() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("f", "by digest\n")], Compression::Gzip)
        .build();
    env.push.image("test/bydigest", Some("v1"), &img);
    let by_digest = env.r(&format!("test/bydigest@{}", img.manifest_digest));
    let out = env.strata.run(&["pull", &by_digest]).ok();
    assert!(
        out.stderr.contains(&format!(
            "{}: Pulling from test/bydigest",
            img.manifest_digest
        )),
        "{}",
        out.describe()
    );
    assert!(
        !out.stderr.contains("digest: Pulling"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains(&format!("Digest: {}", img.manifest_digest)),
        "{}",
        out.describe()
    );

    let dir = crate::support::tempdir("export");
    let target = dir.path().join("rootfs");
    let out = env
        .strata
        .run(&["export", &by_digest, target.to_str().expect("utf-8 path")])
        .ok();
    assert!(out.stderr.contains("(1 layer, "), "{}", out.describe());
}

#[test]
fn ps_shows_how_long_ago_a_container_was_created() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("f", "age\n")], Compression::Gzip)
        .build();
    env.push.image("test/age", Some("v1"), &img);
    env.strata
        .run(&["pull-and-mount", "--name", "aged", &env.r("test/age:v1")])
        .ok();
    let ps = env.strata.run(&["ps"]).ok();
    let row = ps.stdout.lines().nth(1).unwrap_or_default().to_string();
    env.strata.run(&["rm", "-f", "aged"]).ok();
    assert!(
        row.ends_with(" ago") && !row.contains('T'),
        "{}",
        ps.describe()
    );
}

#[test]
fn completion_scripts_load_in_their_shell_and_man_pages_are_written() {
    let dir = crate::support::tempdir("completion");
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(strata::bin())
            .args(["completion", shell])
            .output()
            .expect("run strata");
        assert!(out.status.success(), "{out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("strata"), "{shell}: {script}");
        assert!(script.contains("pull-and-mount"), "{shell}: {script}");
        let path = dir.path().join(format!("strata.{shell}"));
        std::fs::write(&path, &out.stdout).expect("write the script");
        if shell == "bash" {
            let sourced = Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "set -e; source {}; complete -p strata",
                    path.display()
                ))
                .output()
                .expect("run bash");
            assert!(
                sourced.status.success()
                    && String::from_utf8_lossy(&sourced.stdout).contains("_strata strata"),
                "{sourced:?}"
            );
        }
    }
    let man = dir.path().join("man");
    let out = Command::new(strata::bin())
        .arg("man")
        .arg(&man)
        .output()
        .expect("run strata");
    assert!(out.status.success(), "{out:?}");
    for page in [
        "strata.1",
        "strata-pull.1",
        "strata-info.1",
        "strata-system-df.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).expect(page);
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
    let pull = std::fs::read_to_string(man.join("strata-pull.1")).expect("strata-pull.1");
    assert!(pull.contains("platform"), "{pull}");
}

#[test]
fn without_a_terminal_a_downloading_layer_gets_a_line_now_and_then() {
    use crate::support::netenv::{noise_image, run_env};
    use std::ffi::OsString;

    let env = Env::new();
    let img = noise_image(15, 1, 8 << 20);
    env.push.image("test/slow", Some("v1"), &img);
    let reference = env.r("test/slow:v1");
    let docker = crate::support::tempdir("docker-config");
    let short = img.layers[0].short_id().to_string();

    // Every chance to print: lines come while the layer downloads, before it completes.
    let interval = [("STRATA_PROGRESS_INTERVAL", OsString::from("0"))];
    let out = run_env(
        &env.strata,
        &["pull", &reference],
        docker.path(),
        &interval,
        None,
    );
    assert!(out.status.success(), "{}", out.describe());
    let lines: Vec<&str> = out.stderr.lines().collect();
    let downloading: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with(&format!("{short}: Downloading ")))
        .collect();
    let complete = lines
        .iter()
        .position(|l| *l == format!("{short}: Pull complete"))
        .expect("a Pull complete line");
    assert!(!downloading.is_empty(), "{}", out.describe());
    assert!(
        downloading.iter().all(|&i| i < complete),
        "{}",
        out.describe()
    );
    assert!(
        lines[downloading[0]].contains("B/") && lines[downloading[0]].ends_with("MB"),
        "{}",
        out.describe()
    );

    // The default interval (seconds) keeps a quick pull to its usual lines.
    let other = strata::Strata::new();
    let out = run_env(&other, &["pull", &reference], docker.path(), &[], None);
    assert!(out.status.success(), "{}", out.describe());
    assert!(!out.stderr.contains("Downloading"), "{}", out.describe());
}

/// Each stdout line as a JSON object.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn format_json_prints_one_docker_shaped_object_per_line() {
    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("f", "format json\n")], Compression::Gzip)
        .build();
    env.push.image("test/fmt", Some("v1"), &img);
    let reference = env.r("test/fmt:v1");
    env.strata
        .run(&["pull-and-mount", "--name", "fmt", &reference])
        .ok();
    let id = &img.config_digest.trim_start_matches("sha256:")[..12];

    let images = json_lines(&env.strata.run(&["images", "--format", "json"]).ok().stdout);
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["ID"], id);
    assert_eq!(images[0]["Repository"], env.r("test/fmt"));
    assert_eq!(images[0]["Tag"], "v1");
    for key in ["CreatedSince", "Size", "Digest", "CreatedAt"] {
        assert!(images[0][key].is_string(), "{key}: {:?}", images[0]);
    }

    let ps = json_lines(&env.strata.run(&["ps", "--format", "json"]).ok().stdout);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0]["Names"], "fmt");
    assert_eq!(ps[0]["Image"], reference);
    assert_eq!(ps[0]["State"], "created");
    assert!(
        ps[0]["RunningFor"]
            .as_str()
            .is_some_and(|s| s.ends_with(" ago")),
        "{:?}",
        ps[0]
    );

    let df = json_lines(
        &env.strata
            .run(&["system", "df", "--format", "json"])
            .ok()
            .stdout,
    );
    let types: Vec<&str> = df.iter().filter_map(|v| v["Type"].as_str()).collect();
    assert_eq!(types, ["Images", "Containers"]);
    assert_eq!(df[0]["TotalCount"], "1");
    assert_eq!(df[1]["Active"], "1");
    env.strata.run(&["rm", "-f", "fmt"]).ok();

    // `--json` stays strata's one document; the two do not combine.
    env.strata
        .run(&["images", "--json", "--format", "json"])
        .fails_with(2);
}

#[test]
fn log_level_and_rust_log_show_requests_and_decisions() {
    use crate::support::netenv::run_env;
    use std::ffi::OsString;

    let env = Env::new();
    let img = ImageBuilder::new(Flavor::Oci)
        .entries(&[Entry::file("f", "logs\n")], Compression::Gzip)
        .build();
    env.push.image("test/logs", Some("v1"), &img);
    let reference = env.r("test/logs:v1");
    let docker = crate::support::tempdir("docker-config");
    let layer = &img.layers[0].digest;

    let out = run_env(
        &env.strata,
        &["--log-level", "debug", "pull", &reference],
        docker.path(),
        &[],
        None,
    );
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("debug: GET http://") && out.stderr.contains(": 200 OK"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains(&format!("info: layer {layer}: fetched and committed")),
        "{}",
        out.describe()
    );

    // RUST_LOG's level, here for strata only; the pull finds the layer present.
    let rust_log = [("RUST_LOG", OsString::from("hyper=trace,strata=info"))];
    let out = run_env(
        &env.strata,
        &["pull", &reference],
        docker.path(),
        &rust_log,
        None,
    );
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stderr
            .contains(&format!("info: layer {layer}: present, not fetched"))
            && !out.stderr.contains("debug: "),
        "{}",
        out.describe()
    );

    // By default (RUST_LOG empty): no log lines.
    let empty = [("RUST_LOG", OsString::new())];
    let out = run_env(
        &env.strata,
        &["pull", &reference],
        docker.path(),
        &empty,
        None,
    );
    assert!(
        !out.stderr.contains("info: ") && !out.stderr.contains("debug: "),
        "{}",
        out.describe()
    );
}

/// The rows `strata pull` drew on a terminal `cols` wide (run under `script`), escape
/// sequences removed, each redraw apart.
fn terminal_rows(strata: &strata::Strata, reference: &str, cols: u16) -> Vec<String> {
    let command = format!(
        "stty rows 24 cols {cols}; {} --root {} pull {reference}",
        strata::bin().display(),
        strata.root().display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("run script");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(|row| row.trim_end().to_string())
        .filter(|row| !row.is_empty())
        .collect()
}

#[test]
fn a_narrow_terminal_gets_the_rows_without_the_bar() {
    crate::support::require_tool("script");
    let env = Env::new();
    let img = crate::support::netenv::noise_image(16, 1, 16 << 20);
    env.push.image("test/narrow", Some("v1"), &img);
    let reference = env.r("test/narrow:v1");
    let short = img.layers[0].short_id().to_string();
    let layer_rows = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .filter(|r| r.starts_with(&format!("{short}: ")) && !r.contains("Pull complete"))
            .cloned()
            .collect()
    };

    let wide = layer_rows(&terminal_rows(&env.strata, &reference, 200));
    assert!(!wide.is_empty(), "no progress rows drawn");
    assert!(wide.iter().any(|r| r.chars().count() > 70), "{wide:#?}");

    let narrow_root = strata::Strata::new();
    let narrow = layer_rows(&terminal_rows(&narrow_root, &reference, 60));
    assert!(!narrow.is_empty(), "no progress rows drawn");
    assert!(
        narrow.iter().all(|r| r.chars().count() <= 60),
        "{narrow:#?}"
    );
}

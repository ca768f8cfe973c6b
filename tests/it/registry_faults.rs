//! The registry client on a bad network: a link that cuts every blob transfer twice and
//! stalls once (resumed with `Range` requests, digests still verified over whole blobs), and
//! mirrors that are dead (skipped with a warning), from the command line and the config file.

use std::fs;
use std::time::{Duration, Instant};

use crate::support::netenv::{assert_pulled, filled_registry, noise_image, run_env};
use crate::support::proxy::{FaultProxy, Faults};
use crate::support::registry::{self, Registry, Setup};
use crate::support::strata::{Graph, Strata};
use crate::support::{self, tempdir};

#[test]
fn pull_through_a_link_that_cuts_every_blob_transfer_twice() {
    support::preflight();
    let work = tempdir("faults");
    let img = noise_image(4, 3, 150_000);
    let reg = filled_registry(&[("test/app", "v1", &img)]);
    let upstream = reg.addr().parse().expect("registry address");
    let proxy = FaultProxy::start(
        upstream,
        Faults {
            cuts: 2,
            stall_once: true,
            stall_for: Duration::from_secs(8),
            strip_range_once: true,
        },
    );
    let config = work.path().join("config.toml");
    fs::write(&config, "stall-timeout = 2\nretries = 6\n").unwrap();
    let reference = format!("{}/test/app:v1", proxy.addr());
    let s = Strata::new();
    let start = Instant::now();
    let out = run_env(
        &s,
        &["--config", config.to_str().unwrap(), "pull", &reference],
        work.path(),
        &[],
        None,
    )
    .ok();
    let took = start.elapsed();
    assert_pulled(&s, &reference, &img);
    // The files arrived intact (the pull verified every digest and diff_id too).
    let graph = Graph::of(&s.inspect(&reference));
    let top = graph.layers_top_first()[0].clone();
    assert_eq!(
        fs::read(top.join("data/layer2.bin")).unwrap(),
        crate::support::netenv::noise(402, 150_000)
    );

    // Every blob (config and layers) was cut twice, then resumed from where it stopped.
    let blobs = proxy.blobs();
    assert_eq!(blobs.len(), 4, "{blobs:#?}");
    let mut stalls = 0;
    let mut stripped = 0;
    for (path, seen) in &blobs {
        assert!(seen.len() >= 3, "{path}: {seen:#?}");
        assert_eq!(seen[0].action, "cut", "{path}: {seen:#?}");
        assert_eq!(seen[1].action, "cut", "{path}: {seen:#?}");
        assert_eq!(seen[0].range, None, "{path}");
        for later in &seen[1..] {
            let range = later.range.as_deref().unwrap_or_default();
            assert!(
                range.starts_with("bytes=") && range.ends_with('-') && range != "bytes=0-",
                "{path}: resumed without a useful Range: {seen:#?}"
            );
        }
        stalls += seen.iter().filter(|r| r.action == "stall").count();
        stripped += seen.iter().filter(|r| r.range_stripped).count();
        assert_eq!(
            seen.last().map(|r| r.action),
            Some("pass"),
            "{path}: {seen:#?}"
        );
    }
    assert_eq!(stalls, 1, "{blobs:#?}");
    assert_eq!(
        stripped, 1,
        "one server answer without Range support: {blobs:#?}"
    );
    assert!(
        out.stderr.contains("interrupted") && out.stderr.contains("stalled: no data for 2.0 s"),
        "{}",
        out.describe()
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn a_link_that_never_delivers_fails_clearly() {
    support::preflight();
    let work = tempdir("faults-fatal");
    let img = noise_image(5, 1, 50_000);
    let reg = filled_registry(&[("test/app", "v1", &img)]);
    let proxy = FaultProxy::start(
        reg.addr().parse().expect("registry address"),
        Faults {
            cuts: 100,
            stall_once: false,
            stall_for: Duration::ZERO,
            strip_range_once: false,
        },
    );
    let config = work.path().join("config.toml");
    fs::write(&config, "retries = 2\n").unwrap();
    let out = run_env(
        &Strata::new(),
        &[
            "--config",
            config.to_str().unwrap(),
            "pull",
            &format!("{}/test/app:v1", proxy.addr()),
        ],
        work.path(),
        &[],
        None,
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("gave up after 3 attempts"),
        "{}",
        out.describe()
    );
}

#[test]
fn dead_mirrors_are_skipped() {
    support::preflight();
    let work = tempdir("mirrors");
    let img = noise_image(6, 2, 10_000);
    let reg = filled_registry(&[("test/app", "v1", &img)]);
    // A second registry serving the same storage: the good mirror.
    let mirror = Registry::start_with(Setup {
        storage: Some(reg.storage()),
        ..Setup::default()
    });
    let dead = format!("http://127.0.0.1:{}", registry::free_port());

    // The registry itself is unreachable: the pull works through the second mirror.
    let gone = format!("127.0.0.1:{}", registry::free_port());
    let reference = format!("{gone}/test/app:v1");
    let s = Strata::new();
    let out = run_env(
        &s,
        &[
            "--mirror",
            &format!("{gone}={dead}"),
            "--mirror",
            &format!("{gone}={}", mirror.url()),
            "pull",
            &reference,
        ],
        work.path(),
        &[],
        None,
    )
    .ok();
    assert!(
        out.stderr
            .contains(&format!("warning: mirror {dead} failed")),
        "{}",
        out.describe()
    );
    assert_pulled(&s, &reference, &img);

    // Mirrors from the config file; all dead: the registry itself answers.
    let config = work.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "max-concurrent-downloads = 2\n\n[mirrors]\n\"{}\" = [\"{dead}\"]\n",
            reg.addr()
        ),
    )
    .unwrap();
    let reference = format!("{}/test/app:v1", reg.addr());
    let s = Strata::new();
    let out = run_env(
        &s,
        &["--config", config.to_str().unwrap(), "pull", &reference],
        work.path(),
        &[],
        None,
    )
    .ok();
    assert!(
        out.stderr
            .contains(&format!("warning: mirror {dead} failed")),
        "{}",
        out.describe()
    );
    assert_pulled(&s, &reference, &img);

    // A broken config file is reported with its path.
    fs::write(&config, "mirrors = 3\n").unwrap();
    let out = run_env(
        &Strata::new(),
        &["--config", config.to_str().unwrap(), "pull", &reference],
        work.path(),
        &[],
        None,
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains(&config.display().to_string()) && out.stderr.contains("mirrors"),
        "{}",
        out.describe()
    );
}

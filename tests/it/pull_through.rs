//! A fleet behind a pull-through cache: Distribution in proxy mode (`proxy: remoteurl:`) as
//! the mirror of an upstream registry. Two strata roots (two hosts) pull through one cache;
//! the second is served from it; with the cache down, strata falls back to the upstream.

use std::collections::BTreeMap;
use std::fs;

use crate::support::image::{self, Flavor};
use crate::support::pull_cache::{CountingRelay, PullCache, Request};
use crate::support::strata::{Output, Strata};
use crate::support::{self, Env};

const REPO: &str = "library/alpine";

/// Blob GETs per blob path that reached the upstream, from clients whose `User-Agent`
/// starts with `agent` (empty: any client).
fn blob_gets(requests: &[Request], agent: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| r.is_blob_get() && r.user_agent.starts_with(agent))
    {
        *m.entry(r.path.clone()).or_insert(0) += 1;
    }
    m
}

fn from_strata(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.user_agent.starts_with("strata/"))
        .collect()
}

fn assert_pulled(out: &Output, reference: &str) {
    assert!(out.status.success(), "pull failed:\n{}", out.describe());
    assert_eq!(out.stdout.trim(), reference, "{}", out.describe());
}

#[test]
fn two_roots_share_a_pull_through_cache_and_fall_back_to_the_upstream_without_it() {
    let env = Env::new();
    let idx = image::alpine_multi(Flavor::Oci);
    env.push.index(REPO, "latest", &idx);
    let amd64 = idx.image_for("amd64");
    let blobs: Vec<&str> = [amd64.config_digest.as_str()]
        .into_iter()
        .chain(amd64.layers.iter().map(|l| l.digest.as_str()))
        .collect();

    // The upstream as strata and the cache see it: a relay that counts what reaches it.
    let upstream = CountingRelay::start(env.reg.addr().parse().expect("registry address"));
    let mut cache = PullCache::start(&format!("http://{}", upstream.addr()));
    let reference = format!("{}/{REPO}:latest", upstream.addr());

    // Host A: the cache as the upstream's mirror in its config file.
    let dir = support::tempdir("pull-through-config");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[mirrors]\n\"{}\" = [\"{}\"]\n",
            upstream.addr(),
            cache.url()
        ),
    )
    .expect("write config.toml");
    let config = config.display().to_string();
    let host_a = &env.strata;
    let out = host_a.run(&[
        "--config",
        &config,
        "pull",
        "--platform",
        "linux/amd64",
        &reference,
    ]);
    assert_pulled(&out, &reference);
    cache.wait_stored(REPO, &blobs);

    let after_a = upstream.requests();
    assert!(
        from_strata(&after_a).is_empty(),
        "host A must pull through the cache only, the upstream saw: {:#?}",
        from_strata(&after_a)
    );
    let filled = blob_gets(&after_a, "");
    for b in &blobs {
        let path = format!("/v2/{REPO}/blobs/{b}");
        // Distribution 2.8 fetches a missing blob twice: a stream to the client and a copy
        // to store.
        let n = filled.get(&path).copied().unwrap_or(0);
        assert!(
            (1..=2).contains(&n),
            "the cache must have fetched {path} from the upstream once or twice: {filled:#?}"
        );
    }

    // Host B: another root, the mirror given on the command line. Served from the cache: no
    // blob reaches the upstream again (only the tag is checked there).
    let host_b = Strata::new();
    let mirror = format!("--mirror={}={}", upstream.addr(), cache.url());
    let out = host_b.run(&[&mirror, "pull", "--platform", "linux/amd64", &reference]);
    assert_pulled(&out, &reference);
    let after_b = upstream.requests();
    assert_eq!(
        blob_gets(&after_b, ""),
        filled,
        "the second host's pull must be served from the cache: new upstream requests {:#?}",
        &after_b[after_a.len()..]
    );
    assert!(from_strata(&after_b).is_empty());
    assert_eq!(
        host_b.inspect(&reference)["Id"],
        host_a.inspect(&reference)["Id"],
        "both hosts must hold the same image"
    );
    assert_eq!(
        host_b.inspect(&reference)["RootFS"],
        host_a.inspect(&reference)["RootFS"]
    );

    // The cache fails: host C still pulls, from the upstream itself, with a warning.
    cache.stop();
    let host_c = Strata::new();
    let out = host_c.run(&[&mirror, "pull", "--platform", "linux/amd64", &reference]);
    assert_pulled(&out, &reference);
    assert!(
        out.stderr.contains("mirror") && out.stderr.contains(&cache.url()),
        "the fallback must be reported:\n{}",
        out.describe()
    );
    let after_c = upstream.requests();
    let direct = blob_gets(&after_c[after_b.len()..], "strata/");
    for b in &blobs {
        let path = format!("/v2/{REPO}/blobs/{b}");
        assert_eq!(
            direct.get(&path),
            Some(&1),
            "host C must fetch {path} once from the upstream: {direct:#?}"
        );
    }
    assert_eq!(
        host_c.inspect(&reference)["Id"],
        host_a.inspect(&reference)["Id"]
    );
}

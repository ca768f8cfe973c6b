//! `-v/--volume`, `--mount` and `--tmpfs`: parsed as `docker run` parses them, then turned
//! into runtime-spec mounts whose targets are resolved confined to the container's root
//! ([`super::mountpoint`]).
//!
//! A missing host path is created (as a directory) for `-v`, as Docker does, and is an error
//! for `--mount`. Host paths must be absolute: a relative `-v name:/x` is a named volume in
//! Docker, which strata does not have.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use super::BundleError;
use super::mountpoint::{MountPointKind, prepare_mount_point};

/// Options tmpfs mounts get before the user's (Docker's).
pub const TMPFS_DEFAULT_OPTIONS: [&str; 3] = ["nosuid", "nodev", "noexec"];

/// Bind propagation modes accepted in `-v` options and `bind-propagation=`.
const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// What to mount at a [`MountRequest`]'s target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A host file or directory, bind-mounted recursively.
    Bind {
        /// Absolute host path.
        source: PathBuf,
        /// Create `source` as a directory when missing (`-v`), instead of failing (`--mount`).
        create: bool,
        /// Mounted read-only.
        read_only: bool,
        /// Mount propagation (default `rprivate`).
        propagation: Option<String>,
    },
    /// A new tmpfs.
    Tmpfs {
        /// Mount options after [`TMPFS_DEFAULT_OPTIONS`] (`size=`, `mode=`, `ro`, ...).
        options: Vec<String>,
    },
}

/// One user mount: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// Absolute path inside the container (resolved confined to the rootfs when built).
    pub target: String,
    /// What is mounted there.
    pub source: MountSource,
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> BundleError {
    BundleError::InvalidFlag {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn check_target(flag: &'static str, value: &str, target: &str) -> Result<(), BundleError> {
    if !target.starts_with('/') {
        return Err(invalid(flag, value, "the container path must be absolute"));
    }
    if target.trim_matches('/').is_empty() {
        return Err(invalid(
            flag,
            value,
            "cannot mount over the container's root",
        ));
    }
    Ok(())
}

fn check_source(flag: &'static str, value: &str, source: &str) -> Result<(), BundleError> {
    if source.is_empty() {
        return Err(invalid(flag, value, "no host path given"));
    }
    if !source.starts_with('/') {
        return Err(invalid(
            flag,
            value,
            format!(
                "the host path {source:?} is not absolute (strata has no named volumes: give an absolute host path)"
            ),
        ));
    }
    Ok(())
}

/// `-v HOST:CTR[:OPTS]`, OPTS a comma-separated list of `ro`, `rw` and a propagation mode
/// (`z`, `Z` and `nocopy` are accepted and ignored: strata sets no SELinux labels and has no
/// named volumes to copy into).
pub fn parse_volume(value: &str) -> Result<MountRequest, BundleError> {
    const FLAG: &str = "--volume";
    let parts: Vec<&str> = value.split(':').collect();
    let (source, target, opts) = match parts[..] {
        [s, t] => (s, t, ""),
        [s, t, o] => (s, t, o),
        [_] => {
            return Err(invalid(
                FLAG,
                value,
                "expected HOST:CONTAINER[:OPTIONS] (strata has no anonymous volumes)",
            ));
        }
        _ => return Err(invalid(FLAG, value, "too many ':' separated fields")),
    };
    check_source(FLAG, value, source)?;
    check_target(FLAG, value, target)?;
    let (mut read_only, mut propagation) = (false, None);
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "z" | "Z" | "nocopy" => {}
            p if PROPAGATIONS.contains(&p) => propagation = Some(p.to_string()),
            other => return Err(invalid(FLAG, value, format!("unknown option {other:?}"))),
        }
    }
    Ok(MountRequest {
        target: target.to_string(),
        source: MountSource::Bind {
            source: PathBuf::from(source),
            create: true,
            read_only,
            propagation,
        },
    })
}

/// A boolean `--mount` option: bare (true) or `=true|false|1|0`.
fn mount_bool(value: &str, key: &str, v: Option<&str>) -> Result<bool, BundleError> {
    match v {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(invalid(
            "--mount",
            value,
            format!("{key}={other}: expected true or false"),
        )),
    }
}

/// The value of a `--mount` `key=value` option that needs one.
fn need<'a>(value: &str, key: &str, v: Option<&'a str>) -> Result<&'a str, BundleError> {
    v.ok_or_else(|| invalid("--mount", value, format!("{key} needs a value")))
}

/// A size with an optional `k`/`m`/`g` unit (powers of 1024, as Docker reads `tmpfs-size`),
/// in bytes.
fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, mult) = match lower.char_indices().last()? {
        (i, 'k') => (&lower[..i], 1u64 << 10),
        (i, 'm') => (&lower[..i], 1 << 20),
        (i, 'g') => (&lower[..i], 1 << 30),
        _ => (lower, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// `--mount type=bind|tmpfs,...` with Docker's keys: `source`/`src`, `target`/`destination`/
/// `dst`, `readonly`/`ro`, `bind-propagation`, `tmpfs-size`, `tmpfs-mode`. A missing bind
/// source is an error when the container is built.
pub fn parse_mount(value: &str) -> Result<MountRequest, BundleError> {
    const FLAG: &str = "--mount";
    let (mut typ, mut source, mut target) = (None, None, None);
    let (mut read_only, mut propagation) = (false, None);
    let mut tmpfs_options = Vec::new();
    for field in value.split(',').filter(|f| !f.is_empty()) {
        let (key, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => typ = Some(need(value, key, v)?.to_string()),
            "source" | "src" => source = Some(need(value, key, v)?.to_string()),
            "target" | "destination" | "dst" => target = Some(need(value, key, v)?.to_string()),
            "readonly" | "ro" => read_only = mount_bool(value, key, v)?,
            "bind-propagation" => {
                let p = need(value, key, v)?;
                if !PROPAGATIONS.contains(&p) {
                    return Err(invalid(
                        FLAG,
                        value,
                        format!("unknown bind-propagation {p:?}"),
                    ));
                }
                propagation = Some(p.to_string());
            }
            "tmpfs-size" => {
                let size = need(value, key, v)?;
                let bytes = parse_size(size)
                    .ok_or_else(|| invalid(FLAG, value, format!("invalid tmpfs-size {size:?}")))?;
                tmpfs_options.push(format!("size={bytes}"));
            }
            "tmpfs-mode" => {
                let mode = need(value, key, v)?;
                u32::from_str_radix(mode, 8).map_err(|_| {
                    invalid(FLAG, value, format!("invalid tmpfs-mode {mode:?} (octal)"))
                })?;
                tmpfs_options.push(format!("mode={mode}"));
            }
            "consistency" => {}
            _ => return Err(invalid(FLAG, value, format!("unknown option {key:?}"))),
        }
    }
    let target = target.ok_or_else(|| invalid(FLAG, value, "no target= given"))?;
    check_target(FLAG, value, &target)?;
    let source = match typ.as_deref() {
        Some("bind") => {
            let source = source.ok_or_else(|| invalid(FLAG, value, "type=bind needs source="))?;
            check_source(FLAG, value, &source)?;
            if !tmpfs_options.is_empty() {
                return Err(invalid(FLAG, value, "tmpfs options on a bind mount"));
            }
            MountSource::Bind {
                source: PathBuf::from(source),
                create: false,
                read_only,
                propagation,
            }
        }
        Some("tmpfs") => {
            if source.is_some() || propagation.is_some() {
                return Err(invalid(
                    FLAG,
                    value,
                    "type=tmpfs takes no source or bind option",
                ));
            }
            if read_only {
                tmpfs_options.push("ro".to_string());
            }
            MountSource::Tmpfs {
                options: tmpfs_options,
            }
        }
        None | Some("volume") => {
            return Err(invalid(
                FLAG,
                value,
                "volumes are not supported: give type=bind or type=tmpfs",
            ));
        }
        Some(other) => return Err(invalid(FLAG, value, format!("unsupported type {other:?}"))),
    };
    Ok(MountRequest { target, source })
}

/// `--tmpfs PATH[:OPTIONS]`, OPTIONS being tmpfs mount options (`size=64m,mode=1777,exec`).
pub fn parse_tmpfs(value: &str) -> Result<MountRequest, BundleError> {
    let (target, opts) = value.split_once(':').unwrap_or((value, ""));
    check_target("--tmpfs", value, target)?;
    Ok(MountRequest {
        target: target.to_string(),
        source: MountSource::Tmpfs {
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect(),
        },
    })
}

fn oci_mount(destination: PathBuf, typ: &str, source: &Path, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination)
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.to_path_buf()))
        .set_options(Some(options));
    m
}

/// The runtime-spec mounts for `requests` on the container root `rootfs`: each target is
/// created and resolved confined to `rootfs`, and the resolved path is the destination. A
/// missing bind source is created as a directory when the request says so, else an error;
/// two requests for one target are an error. Shallower targets come first.
pub fn spec_mounts(rootfs: &Path, requests: &[MountRequest]) -> Result<Vec<Mount>, BundleError> {
    let mut seen = std::collections::HashSet::new();
    let mut mounts = Vec::new();
    for req in requests {
        let normal: PathBuf = Path::new(&req.target).components().collect();
        if !seen.insert(normal) {
            return Err(invalid("mount", &req.target, "duplicate mount point"));
        }
        let point = |kind| {
            prepare_mount_point(rootfs, &req.target, kind).map_err(|source| {
                BundleError::MountPoint {
                    target: req.target.clone(),
                    source,
                }
            })
        };
        match &req.source {
            MountSource::Bind {
                source,
                create,
                read_only,
                propagation,
            } => {
                let meta = match std::fs::metadata(source) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && *create => {
                        std::fs::create_dir_all(source).map_err(|e| BundleError::BindSource {
                            path: source.clone(),
                            source: e,
                        })?;
                        std::fs::metadata(source)
                    }
                    r => r,
                }
                .map_err(|e| BundleError::BindSource {
                    path: source.clone(),
                    source: e,
                })?;
                let kind = if meta.is_dir() {
                    MountPointKind::Dir
                } else {
                    MountPointKind::File
                };
                let options = vec![
                    "rbind".to_string(),
                    if *read_only { "ro" } else { "rw" }.to_string(),
                    propagation
                        .clone()
                        .unwrap_or_else(|| "rprivate".to_string()),
                ];
                mounts.push(oci_mount(point(kind)?, "bind", source, options));
            }
            MountSource::Tmpfs { options } => {
                let all = TMPFS_DEFAULT_OPTIONS
                    .iter()
                    .map(|o| o.to_string())
                    .chain(options.iter().cloned())
                    .collect();
                mounts.push(oci_mount(
                    point(MountPointKind::Dir)?,
                    "tmpfs",
                    Path::new("tmpfs"),
                    all,
                ));
            }
        }
    }
    // Parents before children, as Docker orders them, so a mount inside another stays visible;
    // by the resolved paths, which the runtime mounts on.
    mounts.sort_by_key(|m| m.destination().components().count());
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: &str, create: bool, read_only: bool) -> MountSource {
        MountSource::Bind {
            source: source.into(),
            create,
            read_only,
            propagation: None,
        }
    }

    #[test]
    fn volume_syntax() {
        let m = parse_volume("/src:/work").unwrap();
        assert_eq!(
            (m.target.as_str(), m.source),
            ("/work", bind("/src", true, false))
        );
        let m = parse_volume("/src:/work:ro").unwrap();
        assert_eq!(m.source, bind("/src", true, true));
        let m = parse_volume("/src:/work:rw,rshared").unwrap();
        assert!(
            matches!(m.source, MountSource::Bind { propagation: Some(p), .. } if p == "rshared")
        );
        for bad in [
            "name:/x",
            "/x",
            "/a:rel",
            "/a:/b:bogus",
            "/a:/b:ro:x",
            ":/x",
            "/a:/",
        ] {
            let err = parse_volume(bad).unwrap_err();
            assert!(
                matches!(err, BundleError::InvalidFlag { .. }),
                "{bad}: {err}"
            );
        }
        assert!(
            parse_volume("vol:/x")
                .unwrap_err()
                .to_string()
                .contains("named volumes")
        );
    }

    #[test]
    fn mount_syntax() {
        let m = parse_mount("type=bind,src=/a,dst=/b,readonly").unwrap();
        assert_eq!(
            (m.target.as_str(), m.source),
            ("/b", bind("/a", false, true))
        );
        let m = parse_mount("type=bind,source=/a,target=/b,ro=false").unwrap();
        assert_eq!(m.source, bind("/a", false, false));
        let m = parse_mount("type=bind,source=/a,destination=/b,bind-propagation=rslave").unwrap();
        assert!(matches!(
            m.source,
            MountSource::Bind {
                propagation: Some(_),
                ..
            }
        ));
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            m.source,
            MountSource::Tmpfs {
                options: vec!["size=67108864".into(), "mode=1770".into()]
            }
        );
        for bad in [
            "src=/a,dst=/b",
            "type=volume,src=v,dst=/b",
            "type=bind,dst=/b",
            "type=bind,src=rel,dst=/b",
            "type=bind,src=/a",
            "type=tmpfs,dst=/t,tmpfs-size=lots",
            "type=tmpfs,dst=/t,tmpfs-mode=999",
            "type=bind,src=/a,dst=/b,colour=red",
            "type=bind,src=/a,dst=/b,readonly=maybe",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("2GB"), Some(2 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("m"), None);
    }

    #[test]
    fn tmpfs_syntax() {
        let m = parse_tmpfs("/run:size=1m,exec").unwrap();
        assert_eq!(
            m.source,
            MountSource::Tmpfs {
                options: vec!["size=1m".into(), "exec".into()]
            }
        );
        assert!(parse_tmpfs("run").is_err());
    }

    #[test]
    fn spec_mounts_resolve_confined_and_create() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("root");
        std::fs::create_dir_all(rootfs.join("mnt")).unwrap();
        std::os::unix::fs::symlink("/../../../../etc", rootfs.join("mnt/x")).unwrap();
        let host_dir = tmp.path().join("host/new");
        let host_file = tmp.path().join("file");
        std::fs::write(&host_file, "x").unwrap();
        let reqs = vec![
            parse_volume(&format!("{}:/mnt/x:ro", host_dir.display())).unwrap(),
            parse_mount(&format!("type=bind,src={},dst=/etc/f", host_file.display())).unwrap(),
            parse_tmpfs("/scratch:size=1m").unwrap(),
        ];
        let mounts = spec_mounts(&rootfs, &reqs).unwrap();
        assert!(host_dir.is_dir(), "-v creates a missing host dir");
        let dests: Vec<_> = mounts.iter().map(|m| m.destination().clone()).collect();
        assert_eq!(
            dests,
            [PathBuf::from("/etc"), "/scratch".into(), "/etc/f".into()]
        );
        assert!(rootfs.join("etc/f").is_file() && rootfs.join("scratch").is_dir());
        assert_eq!(
            mounts[0].options().as_deref().unwrap(),
            ["rbind", "ro", "rprivate"]
        );
        assert_eq!(mounts[1].typ().as_deref(), Some("tmpfs"));
        assert_eq!(
            mounts[1].options().as_deref().unwrap(),
            ["nosuid", "nodev", "noexec", "size=1m"]
        );
        // --mount with a missing source fails; so does a duplicate target.
        let missing = parse_mount(&format!(
            "type=bind,src={}/nope,dst=/a",
            tmp.path().display()
        ))
        .unwrap();
        let err = spec_mounts(&rootfs, &[missing]).unwrap_err();
        assert!(matches!(err, BundleError::BindSource { .. }), "{err}");
        let twice = [parse_tmpfs("/a").unwrap(), parse_tmpfs("/a/").unwrap()];
        assert!(spec_mounts(&rootfs, &twice).is_err());
    }
}

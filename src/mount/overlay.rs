//! The decisions: validation, new mount API (fds, then strings), `mount(2)` fallback, checks.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::info::mount_root_at;
use super::{MAX_LOWER_LAYERS, MountError, MountMethod, MountRoot, MountSyscalls, OverlaySpec};

/// `fsconfig` copies string values with `strndup_user(value, 256)`: 255 bytes plus the NUL.
const FSCONFIG_STRING_MAX: usize = 255;

/// How layers are handed to `fsconfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layers {
    /// `FSCONFIG_SET_FD` with an `O_PATH` fd (Linux 6.13+).
    Fd,
    /// `FSCONFIG_SET_STRING` with the path (`lowerdir+` is Linux 6.8+).
    Strings,
}

/// Why a new-API attempt did not mount.
enum Attempt {
    /// The kernel lacks what this attempt needs; try the next method.
    Unsupported(Next),
    /// A real failure: report it.
    Failed(MountError),
}

enum Next {
    Strings,
    Legacy,
}

/// [`super::mount_overlay`] over given system calls.
pub fn mount_overlay_with<S: MountSyscalls>(
    sys: &S,
    spec: &OverlaySpec,
) -> Result<MountMethod, MountError> {
    validate(spec)?;
    let method = match new_api(sys, spec, Layers::Fd) {
        Ok(()) => MountMethod::NewApi,
        Err(Attempt::Failed(e)) => return Err(e),
        Err(Attempt::Unsupported(Next::Legacy)) => legacy(sys, spec)?,
        Err(Attempt::Unsupported(Next::Strings)) => match new_api(sys, spec, Layers::Strings) {
            Ok(()) => MountMethod::NewApi,
            Err(Attempt::Failed(e)) => return Err(e),
            Err(Attempt::Unsupported(_)) => legacy(sys, spec)?,
        },
    };
    verify(sys, &spec.target)?;
    Ok(method)
}

/// [`super::unmount`] over given system calls.
pub fn unmount_with<S: MountSyscalls>(
    sys: &S,
    target: &Path,
    detach: bool,
) -> Result<(), MountError> {
    sys.umount(target, detach).map_err(|source| {
        let target = target.to_path_buf();
        match source.raw_os_error() {
            Some(libc::EBUSY) => MountError::Busy { target },
            Some(libc::EINVAL | libc::ENOENT) => MountError::NotMounted { target },
            _ => MountError::Unmount { target, source },
        }
    })
}

fn validate(spec: &OverlaySpec) -> Result<(), MountError> {
    let invalid = |reason: String| MountError::InvalidSpec {
        target: spec.target.clone(),
        reason,
    };
    if spec.lower.is_empty() {
        return Err(invalid("no lower layers given".into()));
    }
    if spec.lower.len() > MAX_LOWER_LAYERS {
        return Err(MountError::TooManyLayers {
            count: spec.lower.len(),
            max: MAX_LOWER_LAYERS,
        });
    }
    if spec.upper.is_none() && spec.lower.len() == 1 {
        return Err(invalid(
            "a read-only overlay (no upper dir) needs at least 2 lower layers; add an empty \
             directory as a second lower or give an upper dir"
                .into(),
        ));
    }
    let mut paths: Vec<&Path> = spec.lower.iter().map(PathBuf::as_path).collect();
    if let Some((upper, work)) = &spec.upper {
        paths.extend([upper.as_path(), work.as_path()]);
    }
    paths.push(&spec.target);
    for p in paths {
        if !p.is_absolute() {
            return Err(invalid(format!("{} is not an absolute path", p.display())));
        }
        if p.as_os_str().as_bytes().contains(&0) {
            return Err(invalid(format!("{} contains a NUL byte", p.display())));
        }
    }
    if let Some(l) = &spec.legacy {
        if l.lower.len() != spec.lower.len() {
            return Err(invalid(format!(
                "legacy paths list {} lower layers, the spec {}",
                l.lower.len(),
                spec.lower.len()
            )));
        }
        if spec.upper.is_some() && (l.upper.is_empty() || l.work.is_empty()) {
            return Err(invalid("legacy paths lack the upper or work dir".into()));
        }
    }
    Ok(())
}

fn is_errno(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// Strips the severity (`e `, `w `, `i `) and `overlay: ` prefixes from fs context messages.
pub(crate) fn clean_log(raw: Vec<String>) -> Vec<String> {
    raw.iter()
        .map(|m| {
            let m = m.trim_end();
            let (warn, m) = match m.split_at_checked(2) {
                Some(("e ", rest)) | Some(("i ", rest)) => (false, rest),
                Some(("w ", rest)) => (true, rest),
                _ => (false, m),
            };
            let m = m.strip_prefix("overlay: ").unwrap_or(m);
            if warn {
                format!("warning: {m}")
            } else {
                m.to_string()
            }
        })
        .filter(|m| !m.is_empty())
        .collect()
}

/// Whether a first-`lowerdir+` EINVAL means "not supported" rather than "bad layer": the old
/// kernels name the key ("Unknown parameter 'lowerdir+'", "Bad value for 'lowerdir+'") or the
/// legacy context ("VFS: Legacy: ..."), or say nothing.
fn looks_unsupported(log: &[String]) -> bool {
    log.is_empty()
        || log
            .iter()
            .any(|m| m.contains("'lowerdir+'") || m.contains("Legacy"))
}

fn new_api<S: MountSyscalls>(sys: &S, spec: &OverlaySpec, mode: Layers) -> Result<(), Attempt> {
    let target = &spec.target;
    if mode == Layers::Strings
        && layer_paths(spec).any(|p| p.as_os_str().len() > FSCONFIG_STRING_MAX)
    {
        return Err(Attempt::Unsupported(Next::Legacy));
    }
    let fs = match sys.fsopen("overlay") {
        Ok(fs) => fs,
        Err(e) if is_errno(&e, libc::ENOSYS) => return Err(Attempt::Unsupported(Next::Legacy)),
        Err(e) => return Err(failed(target, "fsopen overlay".into(), e, Vec::new())),
    };
    let log = || clean_log(sys.read_fs_log(&fs));

    // A source name makes mountinfo show "overlay overlay" as Docker's mounts do.
    sys.fsconfig_set_string(&fs, "source", "overlay".as_ref())
        .map_err(|e| failed(target, "fsconfig source".into(), e, log()))?;

    for (i, dir) in spec.lower.iter().enumerate() {
        if let Err(e) = set_layer(sys, &fs, "lowerdir+", dir, mode) {
            let op = format!("fsconfig lowerdir+ (layer {}: {})", i + 1, dir.display());
            let e = match e {
                LayerError::Open(e) => return Err(open_failed(target, dir, e)),
                LayerError::Config(e) => e,
            };
            let messages = log();
            if i == 0 && is_errno(&e, libc::EINVAL) && looks_unsupported(&messages) {
                let legacy_ctx = messages.iter().any(|m| m.contains("Legacy"));
                return Err(Attempt::Unsupported(match mode {
                    Layers::Fd if !legacy_ctx => Next::Strings,
                    _ => Next::Legacy,
                }));
            }
            return Err(failed(target, op, e, messages));
        }
    }
    if let Some((upper, work)) = &spec.upper {
        for (key, dir) in [("upperdir", upper), ("workdir", work)] {
            set_layer(sys, &fs, key, dir, mode).map_err(|e| match e {
                LayerError::Open(e) => open_failed(target, dir, e),
                LayerError::Config(e) => {
                    let op = format!("fsconfig {key} ({})", dir.display());
                    failed(target, op, e, log())
                }
            })?;
        }
    }
    if spec.userxattr {
        sys.fsconfig_set_flag(&fs, "userxattr")
            .map_err(|e| failed(target, "fsconfig userxattr".into(), e, log()))?;
    }
    if let Err(e) = sys.fsconfig_create(&fs) {
        let messages = log();
        // Before Linux 6.5 overlay has only the legacy fs context: it accepts any string key
        // and then rejects "lowerdir+" here, logging to dmesg only.
        if mode == Layers::Strings && is_errno(&e, libc::EINVAL) && messages.is_empty() {
            return Err(Attempt::Unsupported(Next::Legacy));
        }
        return Err(failed(target, "fsconfig create".into(), e, messages));
    }
    let mnt = sys
        .fsmount(&fs)
        .map_err(|e| failed(target, "fsmount".into(), e, log()))?;
    sys.move_mount(&mnt, target)
        .map_err(|e| failed(target, "move_mount".into(), e, Vec::new()))
}

fn layer_paths(spec: &OverlaySpec) -> impl Iterator<Item = &Path> {
    let upper = spec
        .upper
        .iter()
        .flat_map(|(u, w)| [u.as_path(), w.as_path()]);
    spec.lower.iter().map(PathBuf::as_path).chain(upper)
}

enum LayerError {
    Open(io::Error),
    Config(io::Error),
}

fn set_layer<S: MountSyscalls>(
    sys: &S,
    fs: &S::Fd,
    key: &str,
    dir: &Path,
    mode: Layers,
) -> Result<(), LayerError> {
    match mode {
        Layers::Fd => {
            let fd = sys.open_dir(dir).map_err(LayerError::Open)?;
            sys.fsconfig_set_fd(fs, key, &fd)
        }
        Layers::Strings => sys.fsconfig_set_string(fs, key, dir.as_os_str()),
    }
    .map_err(LayerError::Config)
}

fn failed(target: &Path, op: String, source: io::Error, kernel_log: Vec<String>) -> Attempt {
    Attempt::Failed(MountError::Overlay {
        target: target.to_path_buf(),
        op,
        source,
        kernel_log,
    })
}

fn open_failed(target: &Path, dir: &Path, source: io::Error) -> Attempt {
    failed(
        target,
        format!("opening {}", dir.display()),
        source,
        Vec::new(),
    )
}

/// Appends `p` to an overlay option value, escaping the separators `,` and `:` (and `\`) with
/// a backslash as overlayfs' option parser expects.
fn push_escaped(out: &mut Vec<u8>, p: &[u8]) {
    for &b in p {
        if matches!(b, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// `lowerdir=a:b:...[,upperdir=U,workdir=W][,userxattr]`.
pub(crate) fn legacy_options(
    lower: &[&[u8]],
    upper: Option<(&[u8], &[u8])>,
    userxattr: bool,
) -> Vec<u8> {
    let mut o = b"lowerdir=".to_vec();
    for (i, l) in lower.iter().enumerate() {
        if i > 0 {
            o.push(b':');
        }
        push_escaped(&mut o, l);
    }
    if let Some((u, w)) = upper {
        o.extend_from_slice(b",upperdir=");
        push_escaped(&mut o, u);
        o.extend_from_slice(b",workdir=");
        push_escaped(&mut o, w);
    }
    if userxattr {
        o.extend_from_slice(b",userxattr");
    }
    o
}

fn legacy<S: MountSyscalls>(sys: &S, spec: &OverlaySpec) -> Result<MountMethod, MountError> {
    let max = sys.max_options_len();
    let lower: Vec<&[u8]> = spec
        .lower
        .iter()
        .map(|p| p.as_os_str().as_bytes())
        .collect();
    let upper = spec
        .upper
        .as_ref()
        .map(|(u, w)| (u.as_os_str().as_bytes(), w.as_os_str().as_bytes()));
    let absolute = legacy_options(&lower, upper, spec.userxattr);
    let (options, cwd) = if absolute.len() <= max {
        (absolute, None)
    } else if let Some(l) = &spec.legacy {
        let lower: Vec<&[u8]> = l.lower.iter().map(|s| s.as_bytes()).collect();
        let upper = spec
            .upper
            .as_ref()
            .map(|_| (l.upper.as_bytes(), l.work.as_bytes()));
        let relative = legacy_options(&lower, upper, spec.userxattr);
        if relative.len() > max {
            return Err(too_long(spec, relative.len()));
        }
        (relative, Some(l.base.as_path()))
    } else {
        return Err(too_long(spec, absolute.len()));
    };
    let options = CString::new(options).map_err(|_| MountError::InvalidSpec {
        target: spec.target.clone(),
        reason: "legacy paths contain a NUL byte".into(),
    })?;
    let op = match cwd {
        Some(base) => format!("mount(2) from {}", base.display()),
        None => "mount(2)".to_string(),
    };
    sys.mount_legacy(&spec.target, &options, cwd)
        .map_err(|source| MountError::Overlay {
            target: spec.target.clone(),
            op,
            source,
            kernel_log: Vec::new(),
        })?;
    Ok(MountMethod::Legacy)
}

fn too_long(spec: &OverlaySpec, bytes: usize) -> MountError {
    MountError::OptionsTooLong {
        layers: spec.lower.len(),
        bytes,
    }
}

fn verify<S: MountSyscalls>(sys: &S, target: &Path) -> Result<(), MountError> {
    match mount_root_at(sys, target)? {
        MountRoot::Overlay => Ok(()),
        MountRoot::NotMounted | MountRoot::Other => Err(MountError::NotVerified {
            target: target.to_path_buf(),
        }),
    }
}

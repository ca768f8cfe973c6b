//! Finding the container's command before the runtime starts it, as runc's `exec.LookPath`
//! will: a name with a `/` is taken as a path (relative to the working directory), a bare
//! name is searched on the process' `PATH`. Everything is resolved inside the rootfs
//! (`openat2` with `RESOLVE_IN_ROOT`): a symlink in the image cannot point the check at a
//! host file. A command that is missing or cannot be executed gets Docker's message and exit
//! code (127, 126) without the runtime's noise.

use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::error::ContainerError;
use crate::bundle::Spec;
use crate::sys::openat2::openat2;

/// What a candidate path is, seen from inside the rootfs.
enum Found {
    Executable,
    Missing,
    /// Exists but cannot be executed: why, in Go's words.
    NotExecutable(&'static str),
}

fn probe(root: &impl std::os::fd::AsFd, path: &str) -> Result<Found, Errno> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let fd = match openat2(root, rel, OFlags::PATH | OFlags::CLOEXEC, resolve) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(Found::Missing),
        Err(e) => return Err(e),
    };
    let st = rfs::fstat(&fd)?;
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Found::NotExecutable("is a directory"),
        _ if st.st_mode & 0o111 == 0 => Found::NotExecutable("permission denied"),
        _ => Found::Executable,
    })
}

/// Whether `path` (absolute, in the container) lies on one of the spec's mounts (a volume, a
/// tmpfs, `/proc`...): what is there is not in the rootfs, so only the runtime can tell.
fn on_a_mount(spec: &Spec, path: &str) -> bool {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let normal = format!("/{}", parts.join("/"));
    spec.mounts().iter().flatten().any(|m| {
        let dest = m.destination().to_string_lossy();
        let dest = dest.trim_end_matches('/');
        dest.is_empty() || normal == dest || normal.starts_with(&format!("{dest}/"))
    })
}

/// Checks that the spec's command exists in `rootfs` and is executable; a check that cannot
/// be made (no `openat2`, an unreadable directory, a path on a volume or tmpfs) lets the
/// runtime decide.
pub fn check_command(rootfs: &Path, spec: &Spec) -> Result<(), ContainerError> {
    let Some(process) = spec.process().as_ref() else {
        return Ok(());
    };
    let Some(command) = process.args().as_ref().and_then(|a| a.first()) else {
        return Ok(());
    };
    let Ok(root) = rfs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(());
    };
    if command.contains('/') {
        let path = if command.starts_with('/') {
            command.clone()
        } else {
            format!("{}/{command}", process.cwd().display())
        };
        if on_a_mount(spec, &path) {
            return Ok(());
        }
        return match probe(&root, &path) {
            Ok(Found::Missing) => Err(ContainerError::CommandNotFound {
                command: command.clone(),
                reason: format!("stat {command}: no such file or directory"),
            }),
            Ok(Found::NotExecutable(reason)) => Err(ContainerError::CommandNotExecutable {
                command: command.clone(),
                reason: reason.to_string(),
            }),
            Ok(Found::Executable) | Err(_) => Ok(()),
        };
    }
    let path_var = process
        .env()
        .as_ref()
        .and_then(|env| env.iter().rev().find_map(|e| e.strip_prefix("PATH=")))
        .unwrap_or("");
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() {
            process.cwd().display().to_string()
        } else if dir.starts_with('/') {
            dir.to_string()
        } else {
            format!("{}/{dir}", process.cwd().display())
        };
        if on_a_mount(spec, &dir) {
            return Ok(());
        }
        match probe(&root, &format!("{dir}/{command}")) {
            // Go's LookPath skips what it cannot execute and keeps looking.
            Ok(Found::Missing | Found::NotExecutable(_)) => {}
            Ok(Found::Executable) | Err(_) => return Ok(()),
        }
    }
    Err(ContainerError::CommandNotFound {
        command: command.clone(),
        reason: "executable file not found in $PATH".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use oci_spec::runtime::ProcessBuilder;

    use super::*;

    fn spec(args: &[&str], path: &str) -> Spec {
        let process = ProcessBuilder::default()
            .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
            .env(vec![format!("PATH={path}")])
            .cwd("/work")
            .build()
            .unwrap();
        let mut spec = Spec::default();
        spec.set_process(Some(process));
        spec
    }

    #[test]
    fn finds_commands_like_runc_confined_to_the_rootfs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        for dir in ["bin", "work", "etc"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let exe = |p: &Path, mode| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        exe(&root.join("bin/sh"), 0o755);
        exe(&root.join("etc/passwd"), 0o644);
        exe(&root.join("work/run.sh"), 0o755);
        // Outside the root: an executable a symlink in the image points at.
        exe(&tmp.path().join("host-only"), 0o755);
        symlink(tmp.path().join("host-only"), root.join("bin/escape")).unwrap();

        let check = |args: &[&str]| check_command(&root, &spec(args, "/usr/bin:/bin"));
        check(&["sh", "-c", "true"]).unwrap();
        check(&["/bin/sh"]).unwrap();
        check(&["./run.sh"]).unwrap();
        check(&["run.sh"]).unwrap_err();
        for missing in [&["nosuch"][..], &["/nosuch"], &["escape"], &["/bin/escape"]] {
            let err = check(missing).unwrap_err();
            assert!(
                matches!(err, ContainerError::CommandNotFound { .. }),
                "{missing:?}: {err:?}"
            );
        }
        let err = check(&["nosuch"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        for (args, reason) in [
            ("/etc/passwd", "permission denied"),
            ("/etc", "is a directory"),
        ] {
            let err = check(&[args]).unwrap_err();
            assert!(
                matches!(&err, ContainerError::CommandNotExecutable { reason: r, .. } if r == reason),
                "{err:?}"
            );
        }
        // A bare name is looked up on PATH only.
        check_command(&root, &spec(&["sh"], "/usr/bin")).unwrap_err();
        check_command(&root, &spec(&["sh"], "")).unwrap_err();
    }

    #[test]
    fn commands_on_a_mount_are_left_to_the_runtime() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("work")).unwrap();
        let with_mount = |args: &[&str], path: &str| {
            let mut s = spec(args, path);
            let mount = oci_spec::runtime::MountBuilder::default()
                .destination("/work")
                .typ("bind")
                .source("/host/ws")
                .build()
                .unwrap();
            s.set_mounts(Some(vec![mount]));
            s
        };
        // The volume holds what the rootfs does not: only the runtime can tell.
        check_command(&root, &with_mount(&["./smoke.sh"], "/bin")).unwrap();
        check_command(&root, &with_mount(&["/work/sub/../smoke.sh"], "/bin")).unwrap();
        check_command(&root, &with_mount(&["tool"], "/bin:/work/bin")).unwrap();
        // Beside the mount, the rootfs still decides.
        check_command(&root, &with_mount(&["/workshop/x"], "/bin")).unwrap_err();
        check_command(&root, &with_mount(&["/work/../x"], "/bin")).unwrap_err();
    }
}

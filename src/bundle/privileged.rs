//! `--privileged`: the host's devices, as Docker gives them to a privileged container.
//!
//! The rest of what `--privileged` changes (every capability, no seccomp filter, no masked or
//! read-only paths, writable `/sys` and cgroup mounts, all devices allowed) is applied in
//! [`super::spec`].

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

/// Directories of `/dev` not walked: the container gets its own of these.
const SKIPPED_DIRS: [&str; 5] = ["pts", "shm", "mqueue", "fd", ".udev"];

/// The character and block devices below `dev` (normally `/dev`), sorted by path, as
/// runtime-spec devices at the same paths; `/dev/console` is left out (the runtime sets up
/// the container's console). Unreadable directories are skipped.
pub fn host_devices(dev: &Path) -> Vec<LinuxDevice> {
    let mut devices = Vec::new();
    walk(dev, dev, &mut devices);
    devices.sort_by(|a, b| a.path().cmp(b.path()));
    devices
}

fn walk(top: &Path, dir: &Path, out: &mut Vec<LinuxDevice>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let skipped = dir == top
                && SKIPPED_DIRS
                    .iter()
                    .any(|s| entry.file_name() == std::ffi::OsStr::new(s));
            if !skipped {
                walk(top, &path, out);
            }
            continue;
        }
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        if dir == top && entry.file_name() == "console" {
            continue;
        }
        let Ok(rel) = path.strip_prefix(top) else {
            continue;
        };
        let rdev = meta.rdev();
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from("/dev").join(rel))
            .set_typ(typ)
            .set_major(i64::from(rustix::fs::major(rdev)))
            .set_minor(i64::from(rustix::fs::minor(rdev)))
            .set_file_mode(Some(meta.mode() & 0o7777))
            .set_uid(Some(meta.uid()))
            .set_gid(Some(meta.gid()));
        out.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_host_devices() {
        let devs = host_devices(Path::new("/dev"));
        let null = devs
            .iter()
            .find(|d| d.path() == Path::new("/dev/null"))
            .expect("/dev/null");
        assert_eq!((null.major(), null.minor()), (1, 3));
        assert_eq!(null.typ(), LinuxDeviceType::C);
        assert!(devs.iter().all(|d| !d.path().starts_with("/dev/pts")));
        assert!(devs.iter().all(|d| d.path() != Path::new("/dev/console")));
    }
}

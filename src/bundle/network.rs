//! `--network none|host`.
//!
//! `none` (the default) gives the container a new network namespace with loopback only.
//! `host` leaves it in the host's network namespace, with the host's `/etc/resolv.conf` and
//! `/etc/hosts` bind-mounted read-only over the image's, and the host's name as default
//! hostname, as Docker does.

use std::path::Path;

use super::BundleError;
use super::mounts::{MountRequest, MountSource};

/// The host files a `--network host` container sees in place of its own.
pub const HOST_NETWORK_FILES: [&str; 2] = ["/etc/resolv.conf", "/etc/hosts"];

/// The container's network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Network {
    /// A new network namespace with loopback only.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

impl std::str::FromStr for Network {
    type Err = BundleError;

    fn from_str(s: &str) -> Result<Self, BundleError> {
        match s {
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            _ => Err(BundleError::InvalidFlag {
                flag: "--network",
                value: s.to_string(),
                reason: "strata supports none (loopback only) and host; it has no bridge or user-defined networks".to_string(),
            }),
        }
    }
}

/// The read-only bind mounts of the host's resolver files for `--network host` (those the
/// host has), unless the user mounts something at the same place.
pub fn host_file_mounts(user: &[MountRequest]) -> Vec<MountRequest> {
    HOST_NETWORK_FILES
        .iter()
        .filter(|f| Path::new(f).exists())
        .filter(|f| !user.iter().any(|m| Path::new(&m.target) == Path::new(f)))
        .map(|f| MountRequest {
            target: f.to_string(),
            source: MountSource::Bind {
                source: f.into(),
                create: false,
                read_only: true,
                propagation: None,
            },
        })
        .collect()
}

/// The host's name (as `uname -n`), the default hostname of a `--network host` container;
/// `None` when `/proc/sys/kernel/hostname` cannot be read.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim_end().to_string()).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_host_files() {
        assert_eq!("none".parse::<Network>().unwrap(), Network::None);
        assert_eq!("host".parse::<Network>().unwrap(), Network::Host);
        let err = "bridge".parse::<Network>().unwrap_err();
        assert!(err.to_string().contains("bridge"), "{err}");
        let all = host_file_mounts(&[]);
        for m in &all {
            assert!(matches!(
                m.source,
                MountSource::Bind {
                    read_only: true,
                    ..
                }
            ));
        }
        let user = [super::super::mounts::parse_tmpfs("/etc/hosts").unwrap()];
        assert!(
            host_file_mounts(&user)
                .iter()
                .all(|m| m.target != "/etc/hosts")
        );
        assert!(host_name().is_some_and(|n| !n.contains('\n')));
    }
}

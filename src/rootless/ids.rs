//! The id mappings of the user namespace: the user as 0, then their subordinate ranges from
//! `/etc/subuid` and `/etc/subgid` as 1..N, as rootless podman maps them.

use std::path::Path;

use super::error::{RootlessError, io_err};

/// `/etc/subuid`.
pub const SUBUID_FILE: &str = "/etc/subuid";
/// `/etc/subgid`.
pub const SUBGID_FILE: &str = "/etc/subgid";

/// One line of an id map: `len` ids from `inside` in the namespace are `outside` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id in the namespace.
    pub inside: u32,
    /// First id on the host.
    pub outside: u32,
    /// How many ids.
    pub len: u32,
}

/// The uid and gid maps of strata's user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    /// uid map: the user as 0, then the subordinate uids.
    pub uids: Vec<IdRange>,
    /// gid map: the user's group as 0, then the subordinate gids.
    pub gids: Vec<IdRange>,
}

impl IdMaps {
    /// The maps of user `uid` (primary group `gid`) from `/etc/subuid` and `/etc/subgid`;
    /// fails naming the file when either has no range for them.
    pub fn for_user(uid: u32, gid: u32) -> Result<Self, RootlessError> {
        let user = user_name(uid);
        let uids = map_for(uid, user.as_deref(), uid, "uid", Path::new(SUBUID_FILE))?;
        let gids = map_for(uid, user.as_deref(), gid, "gid", Path::new(SUBGID_FILE))?;
        Ok(Self { uids, gids })
    }
}

impl IdRange {
    /// The host id of `id` in the namespace, if this range maps it.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        let offset = id.checked_sub(self.inside)?;
        (offset < self.len).then(|| self.outside + offset)
    }
}

/// The host id of namespace id `id` under `map`, if mapped.
pub fn to_host(map: &[IdRange], id: u32) -> Option<u32> {
    map.iter().find_map(|r| r.to_host(id))
}

/// The arguments of `newuidmap`/`newgidmap` after the pid: `inside outside len` triples.
pub fn map_args(map: &[IdRange]) -> Vec<String> {
    map.iter()
        .flat_map(|r| [r.inside, r.outside, r.len].map(|n| n.to_string()))
        .collect()
}

fn map_for(
    uid: u32,
    user: Option<&str>,
    own: u32,
    kind: &'static str,
    file: &Path,
) -> Result<Vec<IdRange>, RootlessError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_err(format!("reading {}", file.display()))(e)),
    };
    let ranges = subordinate_ranges(&text, uid, user);
    if ranges.is_empty() {
        return Err(RootlessError::NoSubordinateIds {
            user: user.map_or_else(|| uid.to_string(), str::to_string),
            uid,
            kind,
            file: file.to_path_buf(),
        });
    }
    Ok(build_map(own, &ranges))
}

/// The `(start, count)` ranges of `/etc/subuid`-style `text` for the user, named by name or
/// by uid, in file order (malformed lines and empty ranges skipped).
pub(crate) fn subordinate_ranges(text: &str, uid: u32, user: Option<&str>) -> Vec<(u32, u32)> {
    let uid_text = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (who, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            if who != uid_text && Some(who) != user {
                return None;
            }
            let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
            (count > 0 && start.checked_add(count - 1).is_some()).then_some((start, count))
        })
        .collect()
}

/// `own` as 0, then the ranges one after another from 1 (ids past u32::MAX left out).
pub(crate) fn build_map(own: u32, ranges: &[(u32, u32)]) -> Vec<IdRange> {
    let mut map = vec![IdRange {
        inside: 0,
        outside: own,
        len: 1,
    }];
    let mut next: u32 = 1;
    for &(start, count) in ranges {
        let len = count.min(u32::MAX - next);
        if len == 0 {
            break;
        }
        map.push(IdRange {
            inside: next,
            outside: start,
            len,
        });
        next += len;
    }
    map
}

/// The name `/etc/passwd` gives `uid`, if any.
pub fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd_name(&text, uid)
}

fn passwd_name(text: &str, uid: u32) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_uid_in_file_order() {
        let text =
            "bob:100000:65536\n1000:300000:10\nalice:200000:5\n# x\nalice:bad:1\nalice:7:0\n";
        assert_eq!(
            subordinate_ranges(text, 1000, Some("alice")),
            vec![(300000, 10), (200000, 5)]
        );
        assert_eq!(subordinate_ranges(text, 1001, Some("carol")), vec![]);
    }

    #[test]
    fn the_user_is_zero_and_the_ranges_follow() {
        let map = build_map(1000, &[(100000, 65536), (300000, 10)]);
        assert_eq!(to_host(&map, 0), Some(1000));
        assert_eq!(to_host(&map, 1), Some(100000));
        assert_eq!(to_host(&map, 65536), Some(165535));
        assert_eq!(to_host(&map, 65537), Some(300000));
        assert_eq!(to_host(&map, 65547), None);
        assert_eq!(
            map_args(&map[..2]),
            ["0", "1000", "1", "1", "100000", "65536"]
        );
    }

    #[test]
    fn passwd_lookup() {
        let text = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(passwd_name(text, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(text, 5), None);
    }
}

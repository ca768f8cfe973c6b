//! Users and groups inside the container: `/etc/passwd` and `/etc/group` parsing, reading
//! them confined to the container's root, and resolving a `user[:group]` string the way runc's
//! `libcontainer/user.GetExecUser` (and so Docker) does.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::BundleError;
use crate::sys::openat2::openat2;

/// Largest `/etc/passwd` or `/etc/group` read from an image.
pub const MAX_ID_FILE_SIZE: u64 = 64 << 20;

/// Highest uid/gid accepted, as in runc (`1<<31 - 1`).
pub const MAX_ID: u32 = i32::MAX as u32;

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (empty when the line has no such field).
    pub home: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// User names listed as members.
    pub members: Vec<String>,
}

/// The process identity that ends up in `process.user`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups (only when no group was given explicitly, as in runc).
    pub additional_gids: Vec<u32>,
    /// The passwd entry's name, when one matched.
    pub name: Option<String>,
    /// The passwd entry's home directory, when one matched.
    pub home: Option<String>,
}

/// The meaningful lines of a colon-separated database, split into fields.
///
/// Skips blank lines, `#` comments and NIS compat entries (`+...`, `-...`).
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .map(|l| l.split(':').collect())
}

/// Parses `/etc/passwd` (`name:password:uid:gid:gecos:home:shell`).
///
/// Lines without a name or without numeric uid and gid fields are skipped rather than given
/// id 0 (runc would default them to 0; skipping is the safer reading of a broken line).
/// Trailing fields (gecos, home, shell) may be missing.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    records(text)
        .filter_map(|f| {
            let name = *f.first()?;
            if name.is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: name.to_string(),
                uid: f.get(2)?.trim().parse().ok()?,
                gid: f.get(3)?.trim().parse().ok()?,
                home: f.get(5).map(|h| h.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// Parses `/etc/group` (`name:password:gid:member,member`).
///
/// Lines without a name or a numeric gid are skipped; the member list may be missing.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    records(text)
        .filter_map(|f| {
            let name = *f.first()?;
            if name.is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: name.to_string(),
                gid: f.get(2)?.trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// `Some(id)` when `s` is all ASCII digits; an error when such an id is out of range.
fn numeric_id(s: &str, spec: &str) -> Result<Option<u32>, BundleError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_ID) => Ok(Some(n as u32)),
        _ => Err(BundleError::InvalidUser {
            spec: spec.to_string(),
            reason: format!("id {s} is out of range (0..={MAX_ID})"),
        }),
    }
}

/// Resolves `user[:group]` (names or numeric ids) against parsed passwd and group databases.
///
/// `None` for a database means the file does not exist in the image. The rules are runc's:
/// - an empty user means uid 0 (its passwd entry, if any, still supplies gid and groups);
/// - a user (name or uid) found in passwd takes its primary gid from there; a numeric uid
///   that is not listed gets gid 0; an unknown name is an error;
/// - an explicit group (name or gid) replaces the primary gid and no supplementary groups are
///   added; an unknown group name is an error, an unlisted numeric gid is used as is;
/// - without an explicit group, every group listing the matched user's name as a member
///   becomes a supplementary group.
///
/// `rootfs` is only used in error messages.
pub fn resolve_user(
    spec: &str,
    passwd: Option<&[PasswdEntry]>,
    group: Option<&[GroupEntry]>,
    rootfs: &Path,
) -> Result<ResolvedUser, BundleError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    let uid_arg = numeric_id(user_part, spec)?;
    let users = passwd.unwrap_or_default();
    let matched = users.iter().find(|e| {
        if user_part.is_empty() {
            e.uid == 0
        } else if let Some(uid) = uid_arg {
            e.uid == uid
        } else {
            e.name == user_part
        }
    });
    let mut out = match (matched, uid_arg) {
        (Some(e), _) => ResolvedUser {
            uid: e.uid,
            gid: e.gid,
            additional_gids: Vec::new(),
            name: Some(e.name.clone()),
            home: Some(e.home.clone()),
        },
        (None, Some(uid)) => ResolvedUser {
            uid,
            ..ResolvedUser::default()
        },
        (None, None) if user_part.is_empty() => ResolvedUser::default(),
        (None, None) => {
            return Err(BundleError::UnknownUser {
                name: user_part.to_string(),
                rootfs: rootfs.to_path_buf(),
            });
        }
    };

    let groups = group.unwrap_or_default();
    if let Some(group_part) = group_part {
        let gid_arg = numeric_id(group_part, spec)?;
        let found = groups.iter().find(|g| match gid_arg {
            Some(gid) => g.gid == gid,
            None => g.name == group_part,
        });
        out.gid = match (found, gid_arg) {
            (Some(g), _) => g.gid,
            (None, Some(gid)) => gid,
            (None, None) => {
                return Err(BundleError::UnknownGroup {
                    name: group_part.to_string(),
                    rootfs: rootfs.to_path_buf(),
                });
            }
        };
    } else if let Some(name) = &out.name {
        for g in groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
        {
            if !out.additional_gids.contains(&g.gid) {
                out.additional_gids.push(g.gid);
            }
        }
    }
    Ok(out)
}

/// Reads `/etc/passwd` and `/etc/group` from `rootfs` (confined) and resolves `spec`.
pub fn lookup_user(rootfs: &Path, spec: &str) -> Result<ResolvedUser, BundleError> {
    let read = |path: &str| -> Result<Option<String>, BundleError> {
        read_file_in_root(rootfs, path, MAX_ID_FILE_SIZE)
            .map(|o| o.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .map_err(|source| BundleError::ReadInRoot {
                path: path.to_string(),
                rootfs: rootfs.to_path_buf(),
                source,
            })
    };
    // Numeric ids with no group name need no files at all, but runc still looks the uid up
    // (for the primary gid and supplementary groups), so always read what exists.
    let passwd = read("/etc/passwd")?.map(|t| parse_passwd(&t));
    let group = read("/etc/group")?.map(|t| parse_group(&t));
    resolve_user(spec, passwd.as_deref(), group.as_deref(), rootfs)
}

/// Reads a regular file at `path` as seen from inside `rootfs`, never leaving it.
///
/// The path is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: absolute
/// symlinks and `..` are resolved against `rootfs` as a container would see them, so a
/// symlinked `/etc/passwd` cannot reach host files. Returns `Ok(None)` when the file (or a
/// parent directory) does not exist. Anything other than a regular file (a FIFO, a device, a
/// directory) is an error, as is a file larger than `limit` bytes. Needs Linux 5.6+.
pub fn read_file_in_root(rootfs: &Path, path: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let root = rfs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let fd = match openat2(&root, rel, flags, resolve) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(None),
        Err(Errno::NOSYS) => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "openat2 is unavailable (Linux 5.6 or later is needed to read files confined to the container root)",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let st = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut buf = Vec::new();
    File::from(fd).take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# comment line
root:x:0:0:root:/root:/bin/ash
bin:x:1:1:bin:/bin:/sbin/nologin

  daemon:x:2:2:daemon:/sbin:/sbin/nologin
short:x:1500
nogid:x:1600:
bad:x:notanumber:5:bad:/:/bin/sh
+nisuser::::::
:x:7:7::/:/bin/sh
app:x:1000:1000:App User:/home/app:/bin/sh
noshell:x:1001:1001
nobody:x:65534:65534:nobody:/:/sbin/nologin
";

    const GROUP: &str = "\
# groups
root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
wheel:x:10:root, app
app:x:1000:
staff:x:50:app
nomembers:x:60
broken:x:xx:app
nobody:x:65534:
";

    fn dbs() -> (Vec<PasswdEntry>, Vec<GroupEntry>) {
        (parse_passwd(PASSWD), parse_group(GROUP))
    }

    fn resolve(spec: &str) -> Result<ResolvedUser, BundleError> {
        let (p, g) = dbs();
        resolve_user(spec, Some(&p), Some(&g), Path::new("/rootfs"))
    }

    #[test]
    fn parses_passwd() {
        let p = parse_passwd(PASSWD);
        let names: Vec<_> = p.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["root", "bin", "daemon", "app", "noshell", "nobody"],
            "comments, NIS, nameless, short and non-numeric lines are skipped"
        );
        assert_eq!(
            p[3],
            PasswdEntry {
                name: "app".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/app".into()
            }
        );
        assert_eq!(p[4].home, "", "missing trailing fields are empty");
        // CRLF files.
        let crlf = parse_passwd("a:x:5:6:a:/home/a:/bin/sh\r\nb:x:7:8\r\n");
        assert_eq!(
            (crlf[0].uid, crlf[0].gid, crlf[0].home.as_str()),
            (5, 6, "/home/a")
        );
        assert_eq!((crlf[1].uid, crlf[1].gid), (7, 8));
    }

    #[test]
    fn parses_group() {
        let g = parse_group(GROUP);
        let names: Vec<_> = g.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "root",
                "bin",
                "daemon",
                "wheel",
                "app",
                "staff",
                "nomembers",
                "nobody"
            ]
        );
        assert_eq!(g[1].members, ["root", "bin", "daemon"]);
        assert_eq!(g[3].members, ["root", "app"], "members are trimmed");
        assert!(g[4].members.is_empty());
        assert!(g[6].members.is_empty(), "a missing member field is fine");
    }

    #[test]
    fn resolves_names_and_ids() {
        // Name: primary gid from passwd, supplementary groups from membership.
        let u = resolve("app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, [10, 50]);
        assert_eq!(u.home.as_deref(), Some("/home/app"));
        // Numeric uid listed in passwd: same as the name.
        let u = resolve("1000").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.as_slice()),
            (1000, 1000, &[10, 50][..])
        );
        // Numeric uid not listed: gid 0, no groups.
        let u = resolve("4242").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        assert!(u.additional_gids.is_empty() && u.name.is_none());
        // Empty user: root, with root's groups.
        let u = resolve("").unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.additional_gids, [0, 1, 2, 10]);
        let u = resolve("nobody").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534));
        assert!(u.additional_gids.is_empty());
    }

    #[test]
    fn resolves_explicit_groups() {
        // name:group
        let u = resolve("app:staff").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert!(
            u.additional_gids.is_empty(),
            "explicit group: no supplementary groups"
        );
        // uid:gid, neither listed
        let u = resolve("4242:4343").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 4343));
        // name:gid and uid:name
        assert_eq!(resolve("app:10").unwrap().gid, 10);
        let u = resolve("4242:wheel").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 10));
        // "user:" is the same as "user".
        assert_eq!(resolve("app:").unwrap(), resolve("app").unwrap());
        // ":group" is root with that group.
        let u = resolve(":staff").unwrap();
        assert_eq!((u.uid, u.gid), (0, 50));
    }

    #[test]
    fn unknown_names_are_errors() {
        let err = resolve("ghost").unwrap_err();
        assert!(
            matches!(&err, BundleError::UnknownUser { name, .. } if name == "ghost"),
            "{err:?}"
        );
        assert!(err.to_string().contains("ghost"), "{err}");
        assert!(err.to_string().contains("/rootfs"), "{err}");
        let err = resolve("app:ghosts").unwrap_err();
        assert!(
            matches!(&err, BundleError::UnknownGroup { name, .. } if name == "ghosts"),
            "{err:?}"
        );
        // A line with a non-numeric uid does not make "bad" a user.
        assert!(matches!(
            resolve("bad").unwrap_err(),
            BundleError::UnknownUser { .. }
        ));
        let err = resolve("4294967296").unwrap_err();
        assert!(matches!(err, BundleError::InvalidUser { .. }), "{err:?}");
        let err = resolve("2147483648:0").unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        assert_eq!(resolve("2147483647").unwrap().uid, MAX_ID);
    }

    #[test]
    fn missing_files() {
        let r = Path::new("/r");
        // Numeric ids need no files.
        let u = resolve_user("1000:1000", None, None, r).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let u = resolve_user("", None, None, r).unwrap();
        assert_eq!(u, ResolvedUser::default());
        assert!(matches!(
            resolve_user("app", None, None, r).unwrap_err(),
            BundleError::UnknownUser { .. }
        ));
        let (p, _) = dbs();
        let u = resolve_user("app", Some(&p), None, r).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert!(u.additional_gids.is_empty());
        assert!(matches!(
            resolve_user("app:staff", Some(&p), None, r).unwrap_err(),
            BundleError::UnknownGroup { .. }
        ));
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn confined_read_stays_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("a");
        let rootfs = base.join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        // The canary sits outside the rootfs, where a naive resolution would land.
        let canary = base.join("canary");
        write(&canary, "canary:x:4242:4242::/:/bin/sh\n");
        write(&rootfs.join("etc/group"), "canary:x:4242:canary\n");

        // Relative escape: <rootfs>/etc/../../canary is <base>/canary on the host.
        std::os::unix::fs::symlink("../../canary", rootfs.join("etc/passwd")).unwrap();
        assert_eq!(
            std::fs::read_to_string(rootfs.join("etc/passwd"))
                .unwrap()
                .len(),
            30
        );
        assert_eq!(
            read_file_in_root(&rootfs, "/etc/passwd", 1 << 20).unwrap(),
            None
        );
        assert!(matches!(
            lookup_user(&rootfs, "canary").unwrap_err(),
            BundleError::UnknownUser { .. }
        ));

        // Absolute escape: /etc/../../../../<host path of the canary>.
        std::fs::remove_file(rootfs.join("etc/passwd")).unwrap();
        let target = format!(
            "/etc/../../../../../../../../..{}",
            canary.to_str().unwrap()
        );
        std::os::unix::fs::symlink(&target, rootfs.join("etc/passwd")).unwrap();
        assert!(std::fs::read_to_string(rootfs.join("etc/passwd")).is_ok());
        assert_eq!(
            read_file_in_root(&rootfs, "etc/passwd", 1 << 20).unwrap(),
            None
        );
        assert!(lookup_user(&rootfs, "canary").is_err());

        // A symlink that resolves inside the root (absolute, as an image would have it) works.
        std::fs::remove_file(rootfs.join("etc/passwd")).unwrap();
        write(
            &rootfs.join("usr/share/passwd"),
            "app:x:1000:1001::/home/app:/bin/sh\n",
        );
        std::os::unix::fs::symlink("/../usr/share/passwd", rootfs.join("etc/passwd")).unwrap();
        let u = lookup_user(&rootfs, "app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
    }

    #[test]
    fn confined_read_refuses_odd_files() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path();
        std::fs::create_dir_all(rootfs.join("etc/passwd")).unwrap();
        let err = lookup_user(rootfs, "root").unwrap_err();
        assert!(matches!(err, BundleError::ReadInRoot { .. }), "{err:?}");
        std::fs::remove_dir(rootfs.join("etc/passwd")).unwrap();

        // A FIFO must not hang the lookup.
        rfs::mknodat(
            rfs::CWD,
            rootfs.join("etc/passwd"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = lookup_user(rootfs, "root").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_file(rootfs.join("etc/passwd")).unwrap();

        write(
            &rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n",
        );
        let err = read_file_in_root(rootfs, "etc/passwd", 10).unwrap_err();
        assert!(err.to_string().contains("larger than 10"), "{err}");
        assert!(
            read_file_in_root(rootfs, "etc/passwd/x", 10)
                .unwrap()
                .is_none()
        );
        // No /etc at all: numeric ids are fine.
        let empty = tempfile::tempdir().unwrap();
        let u = lookup_user(empty.path(), "10:20").unwrap();
        assert_eq!((u.uid, u.gid), (10, 20));
    }
}

//! An unprivileged user of this machine (made with `useradd`, given a subordinate id range in
//! /etc/subuid and /etc/subgid) and its own HOME / XDG dirs, to run strata rootless.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The user with subordinate ids the tests run strata as.
pub const USER: &str = "strata-rl";
/// A user with none.
pub const NO_SUBIDS_USER: &str = "strata-rl-nosub";
/// A user with several ranges.
pub const MULTI_USER: &str = "strata-rl-multi";
/// The range given to [`USER`] when the tests create it.
pub const SUBID_START: u32 = 400_000;
pub const SUBID_COUNT: u32 = 65_536;

/// Tests create users and edit the subid files one at a time.
static USERS: Mutex<()> = Mutex::new(());

/// A user of this machine: name, uid, gid and their first subordinate range (if any).
#[derive(Clone, Debug)]
pub struct User {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub subids: Option<(u32, u32)>,
}

impl User {
    /// The host id of `id` in the user namespace (0 is the user, 1.. the first range).
    pub fn host_uid(&self, id: u32) -> u32 {
        let (start, count) = self.subids.expect("subordinate ids");
        match id {
            0 => self.uid,
            n if n <= count => start + n - 1,
            n => panic!("{n} is outside the mapping"),
        }
    }

    pub fn host_gid(&self, id: u32) -> u32 {
        match id {
            0 => self.gid,
            n => self.host_uid(n),
        }
    }
}

fn id_of(name: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The first `name:start:count` range of `file` for `name`.
pub fn subid_range(file: &str, name: &str) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).unwrap_or_default();
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

/// Creates `name` (no home, no subordinate ids from useradd) unless it exists; with
/// `subids`, gives it [`SUBID_START`].. in /etc/subuid and /etc/subgid unless it has a range.
pub fn ensure_user(name: &'static str, subids: bool) -> User {
    ensure_user_with(
        name,
        if subids {
            &[(SUBID_START, SUBID_COUNT)]
        } else {
            &[]
        },
    )
}

/// Creates `name` unless it exists, and gives it `ranges` (in this order) in /etc/subuid and
/// /etc/subgid unless it has a range already.
pub fn ensure_user_with(name: &'static str, ranges: &[(u32, u32)]) -> User {
    super::require_root();
    let _serial = USERS.lock().unwrap_or_else(|e| e.into_inner());
    if id_of(name, "-u").is_none() {
        super::run_ok(Command::new("useradd").args([
            "-M",
            "-s",
            "/bin/sh",
            "-K",
            "SUB_UID_COUNT=0",
            "-K",
            "SUB_GID_COUNT=0",
            name,
        ]));
    }
    if !ranges.is_empty() {
        for file in ["/etc/subuid", "/etc/subgid"] {
            if subid_range(file, name).is_none() {
                let mut text = fs::read_to_string(file).unwrap_or_default();
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                for (start, count) in ranges {
                    text.push_str(&format!("{name}:{start}:{count}\n"));
                }
                fs::write(file, text).expect("write subid file");
            }
        }
    }
    let user = User {
        name,
        uid: id_of(name, "-u").expect("uid"),
        gid: id_of(name, "-g").expect("gid"),
        subids: subid_range("/etc/subuid", name),
    };
    assert_eq!(
        user.subids,
        subid_range("/etc/subgid", name),
        "the tests expect the same uid and gid ranges for {name}"
    );
    if ranges.is_empty() {
        assert_eq!(user.subids, None, "{name} must have no subordinate ids");
    }
    user
}

/// A user's own HOME, `$XDG_DATA_HOME` (`data/`) and `$XDG_RUNTIME_DIR` (`run/`) in a temp
/// dir. Dropping it kills the pause process (ending its namespaces and their mounts).
pub struct UserDirs {
    pub user: User,
    dir: tempfile::TempDir,
}

impl UserDirs {
    pub fn new(user: User) -> UserDirs {
        let dir = super::tempdir("rootless");
        for sub in ["", "home", "run", "data"] {
            let p = dir.path().join(sub);
            fs::create_dir_all(&p).expect("create user dir");
            std::os::unix::fs::chown(&p, Some(user.uid), Some(user.gid)).expect("chown");
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        UserDirs { user, dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default store: `$XDG_DATA_HOME/strata`.
    pub fn root(&self) -> PathBuf {
        self.path().join("data/strata")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("run/strata")
    }

    /// `strata` run as the user (`setpriv`, so the pid is strata's), with only PATH, HOME
    /// and the XDG dirs set.
    pub fn strata(&self) -> Command {
        let d = self.path();
        let name = self.user.name;
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", name, "--regid", name, "--init-groups"])
            .arg("env")
            .arg("-i")
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(format!("HOME={}", d.join("home").display()))
            .arg(format!("XDG_DATA_HOME={}", d.join("data").display()))
            .arg(format!("XDG_RUNTIME_DIR={}", d.join("run").display()))
            .arg(super::strata::bin())
            .current_dir(d);
        cmd
    }

    /// The pid of the process keeping the namespaces, if one was started.
    pub fn pause_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.state_dir().join("pause.pid")).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }
}

impl Drop for UserDirs {
    fn drop(&mut self) {
        if let Some(pid) = self.pause_pid() {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

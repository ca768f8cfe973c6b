//! Applying whole layers built in memory. Run as root (chown, devices, trusted.* xattrs).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::{ApplyOptions, ApplyStats, ArchiveError, apply_layer};

mod content;
mod flatten;

const MTIME: u64 = 1_600_000_000;

/// One member to write.
#[derive(Clone)]
struct E {
    kind: u8,
    name: Vec<u8>,
    link: Vec<u8>,
    data: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    dev: (u32, u32),
    gnu: bool,
}

fn e(kind: u8, name: &str, mode: u32) -> E {
    E {
        kind,
        name: name.as_bytes().to_vec(),
        link: Vec::new(),
        data: Vec::new(),
        mode,
        uid: 0,
        gid: 0,
        mtime: MTIME,
        dev: (0, 0),
        gnu: false,
    }
}
fn file(name: &str, data: &[u8]) -> E {
    E {
        data: data.to_vec(),
        ..e(b'0', name, 0o644)
    }
}
fn dir(name: &str) -> E {
    e(b'5', name, 0o755)
}
fn symlink(name: &str, target: &str) -> E {
    E {
        link: target.as_bytes().to_vec(),
        ..e(b'2', name, 0o777)
    }
}
fn hardlink(name: &str, target: &str) -> E {
    E {
        link: target.as_bytes().to_vec(),
        ..e(b'1', name, 0o644)
    }
}

impl E {
    fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    fn mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }
    fn dev(mut self, major: u32, minor: u32) -> Self {
        self.dev = (major, minor);
        self
    }
}

/// A tar stream written by hand, so that names the tar crate's builder would refuse can be
/// written too.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Self {
        Self::default()
    }

    fn raw(&mut self, header: &Header, data: &[u8]) {
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.resize(self.0.len() + pad, 0);
    }

    fn header(m: &E, size: u64) -> Header {
        let mut h = if m.gnu {
            Header::new_gnu()
        } else {
            Header::new_ustar()
        };
        assert!(
            m.name.len() <= 100 && m.link.len() <= 100,
            "use pax/gnu long names"
        );
        h.as_old_mut().name[..m.name.len()].copy_from_slice(&m.name);
        h.as_old_mut().linkname[..m.link.len()].copy_from_slice(&m.link);
        h.set_entry_type(EntryType::new(m.kind));
        // EntryType::new(0) would write '0'.
        h.as_old_mut().linkflag[0] = m.kind;
        h.set_size(size);
        h.set_mode(m.mode);
        h.set_uid(m.uid);
        h.set_gid(m.gid);
        h.set_mtime(m.mtime);
        if matches!(m.kind, b'3' | b'4') {
            h.set_device_major(m.dev.0).unwrap();
            h.set_device_minor(m.dev.1).unwrap();
        }
        h.set_cksum();
        h
    }

    fn add(&mut self, m: E) -> &mut Self {
        let h = Self::header(&m, m.data.len() as u64);
        self.raw(&h, &m.data);
        self
    }

    /// A PAX extended header for the next member.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = 1 + k.len() + 1 + v.len() + 1; // " key=value\n"
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let h = Self::header(
            &E {
                kind: b'x',
                data: Vec::new(),
                ..e(b'x', "PaxHeaders/x", 0o644)
            },
            data.len() as u64,
        );
        self.raw(&h, &data);
        self
    }

    /// A GNU long name (`L`) or long link (`K`) for the next member.
    fn gnu_long(&mut self, kind: u8, value: &[u8]) -> &mut Self {
        let mut data = value.to_vec();
        data.push(0);
        let m = E {
            gnu: true,
            ..e(kind, "././@LongLink", 0o644)
        };
        let h = Self::header(&m, data.len() as u64);
        self.raw(&h, &data);
        self
    }

    /// With the end-of-archive marker.
    fn finish(&self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.resize(v.len() + 1024, 0);
        v
    }

    /// Without it: ends right after the last member.
    fn unterminated(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// A scratch area: `dest` (empty, the layer root) and `canary` next to it.
struct Scratch {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    canary: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let canary = tmp.path().join("canary");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&canary).unwrap();
        fs::write(canary.join("file"), b"canary").unwrap();
        Self {
            _tmp: tmp,
            dest,
            canary,
        }
    }

    fn apply_with(&self, bytes: &[u8], opts: &ApplyOptions) -> Result<ApplyStats, ArchiveError> {
        apply_layer(bytes, &self.dest, opts)
    }

    fn apply(&self, bytes: &[u8]) -> Result<ApplyStats, ArchiveError> {
        self.apply_with(bytes, &root_opts())
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }

    fn meta(&self, rel: &str) -> fs::Metadata {
        fs::symlink_metadata(self.p(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.p(rel)).is_ok()
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.p(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// The canary next to dest is exactly as created.
    fn assert_canary_untouched(&self) {
        let names: Vec<_> = fs::read_dir(&self.canary)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file"], "canary dir changed");
        assert_eq!(fs::read(self.canary.join("file")).unwrap(), b"canary");
        let parent: Vec<_> = fs::read_dir(self.dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            parent.len(),
            2,
            "something appeared next to dest: {parent:?}"
        );
    }
}

fn root_opts() -> ApplyOptions {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests run as root"
    );
    ApplyOptions {
        userxattr: false,
        same_owner: true,
        flatten: false,
        writeback: true,
        hash_files: false,
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

fn err_string(r: Result<ApplyStats, ArchiveError>) -> String {
    match r {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_entry_type_with_metadata() {
    let s = Scratch::new();
    let cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let mut t = Tar::new();
    t.add(dir("d").mode(0o2750).owner(11, 12).mtime(1000))
        .pax(&[
            ("SCHILY.xattr.user.color", b"blue"),
            ("SCHILY.xattr.security.capability", cap),
            ("mtime", b"1234.5"),
        ])
        .add(
            file("d/suid", b"#!/bin/sh\n")
                .mode(0o4755)
                .owner(1000, 1001),
        )
        .add(
            file("d/plain", b"hello")
                .mode(0o600)
                .owner(7, 8)
                .mtime(2000),
        )
        .add(symlink("d/sym", "plain").owner(21, 22).mtime(3000))
        .add(hardlink("d/hard", "d/plain"))
        .add(e(b'3', "d/null", 0o666).dev(1, 3).owner(5, 6))
        .add(e(b'4', "d/blk", 0o660).dev(7, 9))
        .add(e(b'6', "d/fifo", 0o640).owner(3, 4).mtime(4000))
        .add(file("d/sticky", b"").mode(0o1777));
    let stats = s.apply(&t.finish()).unwrap();
    assert_eq!(stats.entries, 9);
    assert_eq!(stats.bytes, 15);

    let d = s.meta("d");
    assert!(d.is_dir());
    assert_eq!(d.mode() & 0o7777, 0o2750);
    assert_eq!((d.uid(), d.gid()), (11, 12));
    assert_eq!(d.mtime(), 1000);

    let m = s.meta("d/suid");
    assert!(m.file_type().is_file());
    assert_eq!(m.mode() & 0o7777, 0o4755, "setuid kept after chown");
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1234, 500_000_000));
    assert_eq!(
        xattr(&s.p("d/suid"), "user.color").as_deref(),
        Some(&b"blue"[..])
    );
    assert_eq!(
        xattr(&s.p("d/suid"), "security.capability").as_deref(),
        Some(&cap[..]),
        "capability kept after chown"
    );
    assert_eq!(s.read("d/suid"), b"#!/bin/sh\n");

    let m = s.meta("d/plain");
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!((m.uid(), m.gid(), m.mtime()), (7, 8, 2000));
    assert_eq!(m.nlink(), 2);

    let m = s.meta("d/sym");
    assert!(m.file_type().is_symlink());
    assert_eq!(fs::read_link(s.p("d/sym")).unwrap(), Path::new("plain"));
    assert_eq!((m.uid(), m.gid(), m.mtime()), (21, 22, 3000));

    assert_eq!(s.meta("d/hard").ino(), s.meta("d/plain").ino());

    let m = s.meta("d/null");
    assert!(m.file_type().is_char_device());
    assert_eq!(
        (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())),
        (1, 3)
    );
    assert_eq!(m.mode() & 0o7777, 0o666);
    assert_eq!((m.uid(), m.gid()), (5, 6));

    let m = s.meta("d/blk");
    assert!(m.file_type().is_block_device());
    assert_eq!(
        (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())),
        (7, 9)
    );
    assert_eq!(m.mode() & 0o7777, 0o660);

    let m = s.meta("d/fifo");
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!((m.uid(), m.gid(), m.mtime()), (3, 4, 4000));

    assert_eq!(s.meta("d/sticky").mode() & 0o7777, 0o1777);
}

#[test]
fn directory_metadata_is_applied_after_children() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(dir("ro").mode(0o555).mtime(100))
        .add(dir("ro/sub").mode(0o500).mtime(200))
        .add(file("ro/sub/f", b"x").mtime(300))
        .add(file("ro/g", b"y"))
        .add(dir("ro/sub/deeper").mtime(400))
        .add(file("ro/sub/deeper/h", b"z"));
    s.apply(&t.finish()).unwrap();
    let m = s.meta("ro");
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o555, 100));
    let m = s.meta("ro/sub");
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o500, 200));
    assert_eq!(s.meta("ro/sub/deeper").mtime(), 400);
    assert_eq!(s.meta("ro/sub/f").mtime(), 300);
    assert_eq!(s.read("ro/sub/deeper/h"), b"z");
}

#[test]
fn missing_parents_are_created_0755() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("a/b/c/f", b"x").owner(9, 9));
    s.apply(&t.finish()).unwrap();
    for d in ["a", "a/b", "a/b/c"] {
        let m = s.meta(d);
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o755, "{d}");
        assert_eq!((m.uid(), m.gid()), (0, 0), "{d}");
    }
    assert_eq!(s.meta("a/b/c/f").uid(), 9);
}

fn implicit(stats: &ApplyStats) -> Vec<&str> {
    stats
        .implicit_dirs
        .iter()
        .map(|p| p.to_str().unwrap())
        .collect()
}

#[test]
fn implicit_parents_are_reported_parents_first() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("usr/local/bin/tool", b"x"))
        .add(dir("etc"))
        .add(file("etc/conf/f", b"y"))
        .add(file("./z/f", b""));
    let stats = s.apply(&t.finish()).unwrap();
    assert_eq!(
        implicit(&stats),
        ["etc/conf", "usr", "usr/local", "usr/local/bin", "z"]
    );
    // Nothing implicit: nothing reported (also not the root).
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(dir("."))
        .add(dir("a"))
        .add(file("a/f", b""))
        .add(file("g", b""));
    assert!(s.apply(&t.finish()).unwrap().implicit_dirs.is_empty());
}

#[test]
fn implicit_dirs_named_later_or_replaced_are_not_reported() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("a/b/c/f", b""))
        // Named by a directory member after all: explicit.
        .add(dir("a").mode(0o700))
        // Replaced by a file (with its tree): gone.
        .add(file("a/b", b""))
        .add(file("x/y/f", b""))
        // Replaced by a symlink.
        .add(symlink("x", "elsewhere"))
        // Removed with its tree, then made again: explicit "r", implicit "r/s" again.
        .add(file("r/s/t", b""))
        .add(file("r", b""))
        .add(dir("r"))
        .add(file("r/s/u", b""))
        // Removed, then made again as a directory member.
        .add(file("q/p/f", b""))
        .add(file("q/p", b""))
        .add(dir("q/p"));
    let stats = s.apply(&t.finish()).unwrap();
    assert_eq!(implicit(&stats), ["q", "r/s"]);
    assert_eq!(s.meta("a").mode() & 0o7777, 0o700);
}

#[test]
fn implicit_dirs_of_whiteouts_markers_and_symlinks_are_real_paths() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("wh/.wh.gone", b""))
        .add(file("opq/.wh..wh..opq", b""))
        // A whiteout of this layer replaced by an implicit parent.
        .add(file(".wh.w", b""))
        .add(file("w/f", b""))
        // Through a symlink of the layer: the directory made is "run", the symlink's parent
        // "var" is implicit too.
        .add(symlink("var/run", "/run"))
        .add(file("var/run/app.pid", b"1"));
    let stats = s.apply(&t.finish()).unwrap();
    assert_eq!(implicit(&stats), ["opq", "run", "var", "w", "wh"]);
    assert!(s.meta("w").is_dir());
    assert_eq!(
        xattr(&s.p("opq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
}

#[test]
fn implicit_dirs_reported_are_bounded() {
    // One member 3,000 directories deep (more than PATH_MAX): the paths of all its parents
    // would add up to 9 MB; about the first 1 MiB of them are reported (at most 16384
    // directories are, too).
    let deep = "a/".repeat(3_000) + "f";
    let mut t = Tar::new();
    t.pax(&[("path", deep.as_bytes())]).add(file("x", b"deep"));
    let s = Scratch::new();
    let stats = s.apply(&t.finish()).unwrap();
    let n = stats.implicit_dirs.len();
    assert!((1000..1100).contains(&n), "{n} reported");
    assert_eq!(stats.implicit_dirs[0], Path::new("a"));
    assert_eq!(stats.implicit_dirs[n - 1], Path::new(&deep[..2 * n - 1]));
}

#[test]
fn flatten_mode_reports_no_implicit_dirs() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("usr/local/bin/tool", b"x"));
    let opts = ApplyOptions {
        flatten: true,
        ..root_opts()
    };
    let stats = s.apply_with(&t.finish(), &opts).unwrap();
    assert!(stats.implicit_dirs.is_empty());
    assert!(s.meta("usr/local/bin").is_dir());
}

#[test]
fn root_entry_applies_to_dest() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(dir("./").mode(0o750).owner(3, 4).mtime(777))
        .add(file("./f", b"x"));
    s.apply(&t.finish()).unwrap();
    let m = fs::metadata(&s.dest).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
        (0o750, 3, 4, 777)
    );

    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file(".", b"x"));
    let msg = err_string(s.apply(&t.finish()));
    assert!(
        msg.contains("entry \".\"") && msg.contains("only be a directory"),
        "{msg}"
    );
}

#[test]
fn long_names_pax_and_gnu() {
    let s = Scratch::new();
    let long_dir = format!("{}/{}", "d".repeat(80), "e".repeat(80));
    let pax_name = format!("{long_dir}/pax-{}", "p".repeat(120));
    let gnu_name = format!("{long_dir}/gnu-{}", "g".repeat(120));
    let mut t = Tar::new();
    t.pax(&[("path", pax_name.as_bytes())])
        .add(file("truncated-name-ignored", b"pax"))
        .gnu_long(b'L', gnu_name.as_bytes())
        .add(E {
            gnu: true,
            ..file("ignored", b"gnu")
        })
        .pax(&[("path", b"pax-link"), ("linkpath", pax_name.as_bytes())])
        .add(hardlink("x", "y"))
        .gnu_long(b'K', gnu_name.as_bytes())
        .add(E {
            gnu: true,
            ..symlink("gnu-sym", "short")
        });
    s.apply(&t.finish()).unwrap();
    assert_eq!(s.read(&pax_name), b"pax");
    assert_eq!(s.read(&gnu_name), b"gnu");
    assert_eq!(s.meta("pax-link").ino(), s.meta(&pax_name).ino());
    assert_eq!(fs::read_link(s.p("gnu-sym")).unwrap(), Path::new(&gnu_name));
    assert!(!s.exists("truncated-name-ignored") && !s.exists("ignored"));
}

#[test]
fn hardlinks_are_confined_and_need_an_earlier_member() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("f", b"data"))
        .add(symlink("sym", "/etc/passwd"))
        .add(hardlink("abs", "/f"))
        .add(hardlink("dot", "./f"))
        .add(hardlink("link-to-sym", "sym"));
    s.apply(&t.finish()).unwrap();
    assert_eq!(s.meta("abs").ino(), s.meta("f").ino());
    assert_eq!(s.meta("dot").ino(), s.meta("f").ino());
    // The symlink itself is linked, not followed.
    assert!(s.meta("link-to-sym").file_type().is_symlink());
    assert_eq!(s.meta("link-to-sym").ino(), s.meta("sym").ino());

    for (target, expect) in [
        ("missing", "does not exist"),
        ("../canary/file", "escapes the layer"),
        ("/../canary/file", "escapes the layer"),
        ("etc/passwd", "does not exist"),
        ("nodir/x", "does not exist"),
        ("d", "is a directory"),
    ] {
        let s = Scratch::new();
        let mut t = Tar::new();
        t.add(file("f", b"data"))
            .add(dir("d"))
            .add(hardlink("l", target));
        let msg = err_string(s.apply(&t.finish()));
        assert!(
            msg.starts_with("entry \"l\": hardlink target") && msg.contains(expect),
            "{target}: {msg}"
        );
        s.assert_canary_untouched();
    }
}

#[test]
fn hardlink_through_symlinked_dir_stays_inside() {
    let s = Scratch::new();
    let canary = s.canary.to_str().unwrap().to_string();
    let mut t = Tar::new();
    // An absolute symlink to the host canary dir resolves inside dest (where nothing is).
    t.add(symlink("evil", &canary))
        .add(hardlink("stolen", "evil/file"));
    let msg = err_string(s.apply(&t.finish()));
    assert!(msg.contains("does not exist"), "{msg}");
    s.assert_canary_untouched();
}

#[test]
fn duplicates_later_wins_with_type_changes() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("f2s", b"file"))
        .add(symlink("f2s", "target"))
        .add(file("target", b"orig"))
        .add(symlink("s2f", "target"))
        .add(file("s2f", b"new"))
        .add(dir("d2f"))
        .add(dir("d2f/sub"))
        .add(file("d2f/sub/x", b"x"))
        .add(file("d2f", b"now a file"))
        .add(file("f2d", b"x"))
        .add(dir("f2d").mode(0o700))
        .add(file("f2d/child", b"c"))
        .add(dir("keep").mode(0o700).mtime(10))
        .add(file("keep/child", b"c"))
        .add(dir("keep").mode(0o711).owner(5, 5).mtime(20))
        .add(dir("back").owner(5, 6))
        .add(dir("back").owner(0, 0))
        .add(file("orig", b"shared"))
        .add(hardlink("other", "orig"))
        .add(file("other", b"replaced"))
        .add(file("dup", b"first"))
        .add(file("dup", b"second"));
    s.apply(&t.finish()).unwrap();
    assert!(s.meta("f2s").file_type().is_symlink());
    // Replacing a symlink by a file does not write through the link.
    assert!(s.meta("s2f").file_type().is_file());
    assert_eq!(s.read("s2f"), b"new");
    assert_eq!(s.read("target"), b"orig");
    // dir -> file removes the tree.
    assert!(s.meta("d2f").file_type().is_file());
    assert_eq!(s.read("d2f"), b"now a file");
    // file -> dir.
    assert!(s.meta("f2d").is_dir());
    assert_eq!(s.meta("f2d").mode() & 0o7777, 0o700);
    assert_eq!(s.read("f2d/child"), b"c");
    // dir -> dir keeps children; the later metadata wins.
    let m = s.meta("keep");
    assert_eq!((m.mode() & 0o7777, m.uid(), m.mtime()), (0o711, 5, 20));
    assert_eq!(s.read("keep/child"), b"c");
    let m = s.meta("back");
    assert_eq!(
        (m.uid(), m.gid()),
        (0, 0),
        "a later directory member resets the owner"
    );
    // Replacing one name of a hardlinked pair does not write through to the other.
    assert_eq!(s.read("orig"), b"shared");
    assert_eq!(s.read("other"), b"replaced");
    assert_eq!(s.read("dup"), b"second");
}

#[test]
fn symlink_to_host_file_replaced_by_file_does_not_write_through() {
    let s = Scratch::new();
    let host_file = s.canary.join("file");
    let mut t = Tar::new();
    t.add(symlink("f", host_file.to_str().unwrap()))
        .add(file("f", b"pwned"));
    s.apply(&t.finish()).unwrap();
    assert_eq!(s.read("f"), b"pwned");
    s.assert_canary_untouched();
}

#[test]
fn entries_through_symlinks_stay_inside_dest() {
    let s = Scratch::new();
    let canary = s.canary.to_str().unwrap().to_string();
    let mut t = Tar::new();
    t.add(symlink("var/run", "/run"))
        .add(file("var/run/app.pid", b"1"))
        .add(symlink("up", "../../../../.."))
        .add(file("up/canary/file", b"pwned"))
        .add(symlink("abs", &canary))
        .add(file("abs/new", b"pwned"))
        .add(dir("abs/newdir"))
        .add(symlink("loop", "loop"));
    s.apply(&t.finish()).unwrap();
    assert_eq!(s.read("run/app.pid"), b"1");
    assert!(s.meta("var/run").file_type().is_symlink());
    assert_eq!(s.read("canary/file"), b"pwned");
    let inside = canary.trim_start_matches('/');
    assert_eq!(s.read(&format!("{inside}/new")), b"pwned");
    assert!(s.meta(&format!("{inside}/newdir")).is_dir());
    s.assert_canary_untouched();

    // A symlink loop as a parent is an error, not a hang.
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(symlink("loop", "loop")).add(file("loop/x", b""));
    let msg = err_string(s.apply(&t.finish()));
    assert!(msg.starts_with("entry \"loop/x\""), "{msg}");
}

#[test]
fn whiteouts_become_char_devices_owned_like_the_header() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(dir("etc"))
        .add(file("etc/.wh.passwd", b"").owner(1234, 5678))
        .add(file("a/b/.wh.gone", b""))
        .add(file(".wh..hidden", b""));
    let stats = s.apply(&t.finish()).unwrap();
    assert_eq!(stats.entries, 4);
    for (name, owner) in [
        ("etc/passwd", (1234, 5678)),
        ("a/b/gone", (0, 0)),
        (".hidden", (0, 0)),
    ] {
        let m = s.meta(name);
        assert!(m.file_type().is_char_device(), "{name}");
        assert_eq!(m.rdev(), 0, "{name}");
        assert_eq!((m.uid(), m.gid()), owner, "{name}");
    }
    assert!(!s.exists("etc/.wh.passwd"));
    assert!(s.meta("a/b").is_dir());
}

#[test]
fn opaque_markers_set_the_xattr() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(dir("d"))
        .add(file("d/.wh..wh..opq", b""))
        .add(file("d/kept", b"k"))
        .add(file("missing/.wh..wh..opq", b""))
        .add(file(".wh..wh..opq", b""));
    s.apply(&t.finish()).unwrap();
    for d in ["d", "missing"] {
        assert_eq!(
            xattr(&s.p(d), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "{d}"
        );
        assert!(!s.exists(&format!("{d}/.wh..wh..opq")));
    }
    assert_eq!(
        xattr(&s.dest, "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(s.read("d/kept"), b"k");
}

#[test]
fn userxattr_option_uses_the_user_namespace() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(dir("d"))
        .add(file("d/.wh..wh..opq", b""))
        .add(file("d/.wh.x", b""));
    s.apply_with(
        &t.finish(),
        &ApplyOptions {
            userxattr: true,
            same_owner: true,
            flatten: false,
            writeback: true,
            hash_files: false,
        },
    )
    .unwrap();
    assert_eq!(
        xattr(&s.p("d"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr(&s.p("d"), "trusted.overlay.opaque"), None);
    assert!(s.meta("d/x").file_type().is_char_device());
}

#[test]
fn overlay_xattrs_from_the_layer_are_dropped() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.overlay.opaque", b"y"),
        ("SCHILY.xattr.trusted.other", b"kept"),
    ])
    .add(dir("d"));
    s.apply(&t.finish()).unwrap();
    assert_eq!(xattr(&s.p("d"), "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&s.p("d"), "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&s.p("d"), "user.overlay.opaque"), None);
    assert_eq!(
        xattr(&s.p("d"), "trusted.other").as_deref(),
        Some(&b"kept"[..])
    );
}

#[test]
fn same_layer_entry_and_whiteout_in_either_order() {
    let s = Scratch::new();
    let mut t = Tar::new();
    // Entry first: the whiteout is ignored.
    t.add(file("a", b"a")).add(file(".wh.a", b""));
    t.add(dir("dd"))
        .add(file("dd/x", b"x"))
        .add(file(".wh.dd", b""));
    // Whiteout first: the entry replaces the device.
    t.add(file(".wh.b", b"")).add(file("b", b"b"));
    t.add(file(".wh.c", b"")).add(symlink("c", "a"));
    t.add(file(".wh.e", b"")).add(dir("e"));
    // ... also when it is only an implicit parent of a later entry.
    t.add(file("p/.wh.q", b"")).add(file("p/q/r", b"r"));
    s.apply(&t.finish()).unwrap();
    assert_eq!(s.read("a"), b"a");
    assert_eq!(s.read("dd/x"), b"x");
    assert_eq!(s.read("b"), b"b");
    assert!(s.meta("c").file_type().is_symlink());
    assert!(s.meta("e").is_dir());
    assert!(s.meta("p/q").is_dir());
    assert_eq!(s.read("p/q/r"), b"r");
}

#[test]
fn whiteouts_and_markers_are_applied_again_at_the_end() {
    let s = Scratch::new();
    let mut t = Tar::new();
    // A whited-out name that is a directory of the layer (in either order, listed or not):
    // opaque, so that nothing of the deleted lower directory shows through.
    t.add(file("a/c", b"c")).add(file(".wh.a", b""));
    t.add(file(".wh.b", b"")).add(file("b/c", b"c"));
    t.add(file(".wh.e", b"")).add(dir("e"));
    // A file of the layer: nothing.
    t.add(file("f", b"f")).add(file(".wh.f", b""));
    // The device goes with its parent, the parent comes back: so does the device.
    t.add(file("p/.wh.q", b"").owner(7, 8))
        .add(symlink("p", "a"))
        .add(dir("p"));
    // A directory that replaces a non-directory of the layer (which replaced the lower one
    // whole: entries apply in order) is opaque; one over a directory is not.
    t.add(file("h", b"h")).add(dir("h"));
    t.add(dir("k")).add(dir("k"));
    // The marked directory is replaced, then comes back: opaque again.
    t.add(file("o/.wh..wh..opq", b""))
        .add(file("o", b"o"))
        .add(dir("o"));
    // Replaced by a file: nothing to hide below it (no error either).
    t.add(file("g/.wh..wh..opq", b""))
        .add(file("g", b"g"))
        .add(file("g/.wh.x", b""))
        .add(file("g/y/.wh..wh..opq", b""));
    s.apply(&t.finish()).unwrap();
    for d in ["a", "b", "e", "o", "p", "h"] {
        assert_eq!(
            xattr(&s.p(d), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "{d}"
        );
    }
    assert_eq!(xattr(&s.p("k"), "trusted.overlay.opaque"), None);
    let q = s.meta("p/q");
    assert!(q.file_type().is_char_device() && q.rdev() == 0);
    assert_eq!((q.uid(), q.gid()), (7, 8));
    assert_eq!(s.read("a/c"), b"c");
    assert_eq!(s.read("f"), b"f");
    assert_eq!(s.read("g"), b"g");
}

#[test]
fn whiteouts_through_symlinks_are_ignored() {
    let s = Scratch::new();
    let canary = s.canary.to_str().unwrap().to_string();
    let mut t = Tar::new();
    t.add(dir("real"))
        .add(file("real/victim", b"v"))
        .add(symlink("link", "real"))
        .add(file("link/.wh.victim", b""))
        .add(file("link/.wh.new", b""))
        .add(file("link/.wh..wh..opq", b""))
        .add(symlink("host", &canary))
        .add(file("host/.wh.file", b""))
        .add(file("host/sub/.wh.x", b""));
    s.apply(&t.finish()).unwrap();
    assert_eq!(s.read("real/victim"), b"v");
    assert!(!s.exists("real/new"));
    assert_eq!(xattr(&s.p("real"), "trusted.overlay.opaque"), None);
    assert!(!s.exists(canary.trim_start_matches('/')));
    s.assert_canary_untouched();
}

#[test]
fn look_alike_names_are_ordinary_files() {
    let s = Scratch::new();
    let mut t = Tar::new();
    for name in [
        ".wh",
        "a.wh.b",
        "..wh..opq",
        "wh.x",
        ".wh.x/inside",
        "x.wh.",
    ] {
        t.add(file(name, b"ordinary"));
    }
    s.apply(&t.finish()).unwrap();
    for name in [
        ".wh",
        "a.wh.b",
        "..wh..opq",
        "wh.x",
        ".wh.x/inside",
        "x.wh.",
    ] {
        assert!(s.meta(name).file_type().is_file(), "{name}");
        assert_eq!(s.read(name), b"ordinary");
    }
    assert!(s.meta(".wh.x").is_dir());
}

#[test]
fn bad_whiteout_names_are_refused() {
    for (name, expect) in [
        (".wh.", "names no file"),
        ("d/.wh..", "\".\" or \"..\""),
        ("d/.wh...", "\".\" or \"..\""),
    ] {
        let s = Scratch::new();
        let mut t = Tar::new();
        t.add(file(name, b""));
        let msg = err_string(s.apply(&t.finish()));
        assert!(
            msg.starts_with(&format!("entry {name:?}: whiteout")) && msg.contains(expect),
            "{name}: {msg}"
        );
    }
}

#[test]
fn dotdot_and_bad_names_are_refused_naming_the_entry() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("etc/../../x", b"x"));
    assert_eq!(
        err_string(s.apply(&t.finish())),
        "entry \"etc/../../x\": path escapes the layer (\"..\")"
    );
    s.assert_canary_untouched();

    for name in ["..", "../canary/file", "/../x", "a/.."] {
        let s = Scratch::new();
        let mut t = Tar::new();
        t.add(file(name, b"x"));
        let msg = err_string(s.apply(&t.finish()));
        assert!(
            msg.contains(&format!("{name:?}")) && msg.contains("escapes"),
            "{msg}"
        );
        s.assert_canary_untouched();
    }

    // Via PAX: a NUL, and an empty name in the header (an empty PAX path keeps the header's,
    // as in Go).
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("path", b"a\0b")]).add(file("x", b""));
    assert!(err_string(s.apply(&t.finish())).contains("NUL"));
    let mut t = Tar::new();
    t.pax(&[("path", b"")]).add(file("", b""));
    assert!(err_string(s.apply(&t.finish())).contains("empty name"));
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("path", b"")]).add(file("x", b""));
    s.apply(&t.finish()).unwrap();
    assert!(s.exists("x"));
}

#[test]
fn leading_slash_and_dot_slash_are_stripped() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("/abs/f", b"1")).add(file("./rel//./g", b"2"));
    s.apply(&t.finish()).unwrap();
    assert_eq!(s.read("abs/f"), b"1");
    assert_eq!(s.read("rel/g"), b"2");
    s.assert_canary_untouched();
}

#[test]
fn file_below_a_file_is_an_error() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("f", b"")).add(file("f/g", b""));
    let msg = err_string(s.apply(&t.finish()));
    assert!(
        msg.starts_with("entry \"f/g\"") && msg.contains("not a directory"),
        "{msg}"
    );
}

#[test]
fn end_of_stream_handling() {
    let mut t = Tar::new();
    t.add(file("a", b"hello")).add(file("b", &[7u8; 1000]));
    // No end-of-archive marker: a clean EOF at a header boundary is fine.
    let s = Scratch::new();
    let stats = s.apply(&t.unterminated()).unwrap();
    assert_eq!((stats.entries, stats.bytes), (2, 1005));
    assert_eq!(s.read("b"), vec![7u8; 1000]);

    // Trailing bytes after the marker are not read.
    let s = Scratch::new();
    let mut bytes = t.finish();
    bytes.extend_from_slice(b"garbage that is not a header");
    s.apply(&bytes).unwrap();

    // Cut inside the data of "b".
    let bytes = t.unterminated();
    let s = Scratch::new();
    let r = s.apply(&bytes[..512 + 512 + 512 + 300]);
    match r {
        Err(ArchiveError::Io {
            entry: Some(entry),
            source,
        }) => {
            assert_eq!(entry, "b");
            assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof);
        }
        other => panic!("{other:?}"),
    }
    // Cut inside a header.
    let s = Scratch::new();
    assert!(matches!(
        s.apply(&bytes[..512 + 512 + 100]),
        Err(ArchiveError::Io { .. })
    ));
    // Cut inside the padding after "b"'s data, or right after it: the end, as Go reads it.
    for cut in [512 + 512 + 512 + 1000 + 5, 512 + 512 + 512 + 1000] {
        let s = Scratch::new();
        let stats = s.apply(&bytes[..cut]).unwrap();
        assert_eq!((stats.entries, stats.bytes), (2, 1005), "cut at {cut}");
        assert_eq!(s.read("b"), vec![7u8; 1000]);
    }
}

#[test]
fn corrupt_header_is_an_io_error() {
    let mut t = Tar::new();
    t.add(file("a", b"x"));
    let mut bytes = t.finish();
    bytes[10] ^= 0xff;
    let s = Scratch::new();
    let msg = err_string(s.apply(&bytes));
    assert!(msg.contains("checksum"), "{msg}");
}

#[test]
fn header_only_members_must_not_carry_data() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(E {
        data: b"hidden".to_vec(),
        ..symlink("s", "t")
    });
    let msg = err_string(s.apply(&t.finish()));
    assert!(msg.contains("must not carry data"), "{msg}");
}

#[test]
fn malformed_or_duplicate_pax_records_are_refused() {
    // A record whose length prefix does not end it with a newline; a binary xattr value with
    // a newline is fine (records are split by their lengths).
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("SCHILY.xattr.user.bin", b"a\nb")])
        .add(file("f", b""));
    let mut bytes = t.finish();
    let at = bytes
        .windows(4)
        .position(|w| w == b"a\nb\n")
        .expect("the record");
    bytes[at + 3] = b'x';
    let msg = err_string(s.apply(&bytes));
    assert!(msg.starts_with("entry \"f\": malformed PAX"), "{msg}");
    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("SCHILY.xattr.user.bin", b"a\nb")])
        .add(file("f", b""));
    s.apply(&t.finish()).unwrap();
    assert_eq!(xattr(&s.p("f"), "user.bin").as_deref(), Some(&b"a\nb"[..]));

    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("path", b"one"), ("path", b"two")])
        .add(file("f", b""));
    assert!(err_string(s.apply(&t.finish())).contains("duplicate PAX record"));

    let s = Scratch::new();
    let mut t = Tar::new();
    t.pax(&[("mtime", b"soon")]).add(file("f", b""));
    assert!(err_string(s.apply(&t.finish())).contains("invalid PAX record \"mtime\""));
}

#[test]
fn unsupported_types_are_refused() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(e(b'D', "dumpdir", 0o755));
    let msg = err_string(s.apply(&t.finish()));
    assert!(msg.contains("unsupported entry type 'D'"), "{msg}");
}

#[test]
fn global_headers_and_old_style_directories() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(E {
        data: b"20 comment=whatever\n".to_vec(),
        ..e(b'g', "global", 0o644)
    })
    .add(e(0, "olddir/", 0o700))
    .add(file("olddir/f", b"x"));
    let stats = s.apply(&t.finish()).unwrap();
    assert_eq!(stats.entries, 2);
    assert!(s.meta("olddir").is_dir());
    assert_eq!(s.meta("olddir").mode() & 0o777, 0o700);
}

#[test]
fn unprivileged_mode_skips_chown() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(file("f", b"x").owner(1000, 1000))
        .add(dir("d").owner(5, 5));
    s.apply_with(
        &t.finish(),
        &ApplyOptions {
            userxattr: false,
            same_owner: false,
            flatten: false,
            writeback: true,
            hash_files: false,
        },
    )
    .unwrap();
    assert_eq!(s.meta("f").uid(), 0);
    assert_eq!(s.meta("d").uid(), 0);
}

#[test]
fn gnu_sparse_files_stay_sparse() {
    // Old GNU sparse: 1 MiB file with 4 KiB of data at 0 and 4 KiB at 512 KiB.
    let real: u64 = 1 << 20;
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..6].copy_from_slice(b"sparse");
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_mtime(MTIME);
    h.set_size(8192);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(4096);
        gnu.sparse[1].set_offset(512 * 1024);
        gnu.sparse[1].set_length(4096);
        // GNU tar ends a file that ends in a hole with an empty fragment at the real size.
        gnu.sparse[2].set_offset(real);
        gnu.sparse[2].set_length(0);
        gnu.set_real_size(real);
    }
    h.set_cksum();
    let mut data = vec![b'a'; 4096];
    data.extend_from_slice(&[b'b'; 4096]);
    let mut t = Tar::new();
    t.raw(&h, &data);
    let s = Scratch::new();
    let stats = s.apply(&t.finish()).unwrap();
    assert_eq!(stats.bytes, real);
    let content = s.read("sparse");
    assert_eq!(content.len() as u64, real);
    assert!(content[..4096].iter().all(|&b| b == b'a'));
    assert!(content[4096..512 * 1024].iter().all(|&b| b == 0));
    assert!(
        content[512 * 1024..512 * 1024 + 4096]
            .iter()
            .all(|&b| b == b'b')
    );
    assert!(
        s.meta("sparse").blocks() * 512 < real / 4,
        "not sparse: {} blocks",
        s.meta("sparse").blocks()
    );
}

#[test]
fn pax_sparse_files() {
    // Format 1.0: map at the start of the data, real name in GNU.sparse.name.
    let mut data = b"2\n0\n3\n10\n2\n".to_vec();
    data.resize(512, 0);
    data.extend_from_slice(b"abcde");
    let mut t = Tar::new();
    t.pax(&[
        ("GNU.sparse.major", b"1"),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.name", b"dir/real-name"),
        ("GNU.sparse.realsize", b"16"),
    ])
    .add(file("dir/GNUSparseFile.0/real-name", &data));
    // Format 0.1: map in a PAX record.
    t.pax(&[
        ("GNU.sparse.size", b"8"),
        ("GNU.sparse.numblocks", b"1"),
        ("GNU.sparse.map", b"6,2"),
        ("GNU.sparse.name", b"zero-one"),
    ])
    .add(file("mangled", b"xy"));
    let s = Scratch::new();
    let stats = s.apply(&t.finish()).unwrap();
    assert_eq!(stats.bytes, 24);
    assert_eq!(s.read("dir/real-name"), b"abc\0\0\0\0\0\0\0de\0\0\0\0");
    assert_eq!(s.read("zero-one"), b"\0\0\0\0\0\0xy");
    assert!(!s.exists("dir/GNUSparseFile.0") && !s.exists("mangled"));
}

#[test]
fn errors_name_the_entry() {
    let err = ArchiveError::Invalid {
        path: "x".into(),
        reason: "r".into(),
    };
    assert_eq!(err.entry(), Some("x"));
    let s = Scratch::new();
    let missing = s.dest.join("nope");
    let r = apply_layer(&b""[..], &missing, &root_opts());
    assert!(matches!(r, Err(ArchiveError::Dest { .. })));
    // An empty stream is an empty layer.
    assert_eq!(s.apply(b"").unwrap().entries, 0);
}

#[test]
fn parent_cache_follows_replacements() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(dir("a/b"))
        .add(file("a/b/f1", b"1"))
        // The cached parent "a/b" is replaced by a symlink: later members follow the link.
        .add(symlink("a/b", "../c"))
        .add(file("a/b/f2", b"2"))
        .add(symlink("x", "y"))
        .add(file("x/1", b"1"))
        // ... and a symlink replaced by a directory is not followed any more.
        .add(dir("x"))
        .add(file("x/2", b"2"))
        // A directory removed with its tree, then recreated implicitly.
        .add(dir("r/s").mode(0o700).mtime(5))
        .add(file("r", b""))
        .add(file("r/s/t", b"t"));
    let msg = err_string(s.apply(&t.finish()));
    assert!(
        msg.starts_with("entry \"r/s/t\"") && msg.contains("not a directory"),
        "{msg}"
    );
    assert!(s.meta("a/b").file_type().is_symlink());
    assert_eq!(s.read("c/f2"), b"2");
    assert!(!s.exists("c/f1"));
    assert_eq!(s.read("y/1"), b"1");
    assert!(s.meta("x").is_dir());
    assert_eq!(s.read("x/2"), b"2");
    assert!(!s.exists("y/2"));

    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(dir("r/s").mode(0o700).mtime(5))
        .add(file("r", b""))
        .add(dir("r"))
        .add(file("r/s/t", b"t"));
    s.apply(&t.finish()).unwrap();
    // The old record for "r/s" died with its tree: the new implicit "r/s" keeps 0755.
    assert_eq!(s.meta("r/s").mode() & 0o7777, 0o755);
    assert_eq!(s.read("r/s/t"), b"t");
}

#[test]
fn dangling_symlink_parents_are_created_inside_dest() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.add(symlink("var/run", "/run"))
        .add(symlink("rel", "../../x/../y/./z"))
        .add(file("var/run/app.pid", b"1"))
        .add(file("rel/f", b"2"))
        .add(symlink("p/q/l", "../r/./s/../t"))
        .add(file("p/q/l/f", b"3"))
        .add(symlink("l1", "l2"))
        .add(symlink("l2", "l1"))
        .add(file("l1/f", b""));
    let msg = err_string(s.apply(&t.finish()));
    assert!(msg.starts_with("entry \"l1/f\""), "{msg}");
    assert_eq!(s.read("run/app.pid"), b"1");
    assert_eq!(s.read("y/z/f"), b"2");
    assert_eq!(s.read("p/r/t/f"), b"3");
    s.assert_canary_untouched();
}

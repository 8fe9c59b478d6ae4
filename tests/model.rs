//! Reference model: random sequences of create/write at offset, truncate, rename (files and
//! directories), unlink, mkdir, rmdir, read and stat go through a real mount and through an
//! in-memory model of a POSIX tree; after every step the result (value or errno), the whole
//! tree and every file's bytes must agree. Runs on local, memory and S3 (with and without a
//! long `cache_ttl`) in one daemon each;
//! `GENRO_LONG=1` runs many more and longer cases. Failures shrink to a minimal sequence,
//! which proptest keeps in `tests/model.proptest-regressions` and replays first.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{Daemon, Kind};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

#[test]
fn model_local() {
    run(Kind::Local)
}
#[test]
fn model_memory() {
    run(Kind::Memory)
}
#[test]
fn model_s3() {
    run(Kind::S3)
}
/// The same on S3 with `cache_ttl = 300`: every answer then comes from what the daemon
/// learned and changed itself (listings, attributes, absences), and must still agree.
#[test]
fn model_s3_cached() {
    run_on(
        Kind::S3,
        Daemon::start_with(Kind::S3, &[], |c| {
            c.cache_ttl(std::time::Duration::from_secs(300))
        }),
    )
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        p: String,
        off: u32,
        len: u32,
        seed: u8,
    },
    Truncate {
        p: String,
        len: u32,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink(String),
    Mkdir(String),
    Rmdir(String),
    Read(String),
    Stat(String),
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3)
        .prop_map(|v| v.join("/"))
}

/// Every operation on every path; on a server that keeps no directory markers (s3s-fs, the
/// in-process default; `.ci/run` runs the whole model again on moto) files at the top only.
fn op(dirs: bool) -> BoxedStrategy<Op> {
    if !dirs {
        let p = || prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from);
        return prop_oneof![
            4 => (p(), 0..70_000u32, 0..9_000u32, any::<u8>())
                .prop_map(|(p, off, len, seed)| Op::Write { p, off, len, seed }),
            1 => (p(), 0..80_000u32).prop_map(|(p, len)| Op::Truncate { p, len }),
            2 => (p(), p()).prop_map(|(from, to)| Op::Rename { from, to }),
            1 => p().prop_map(Op::Unlink),
            1 => p().prop_map(Op::Read),
            1 => p().prop_map(Op::Stat),
        ]
        .boxed();
    }
    prop_oneof![
        4 => (path(), 0..70_000u32, 0..9_000u32, any::<u8>())
            .prop_map(|(p, off, len, seed)| Op::Write { p, off, len, seed }),
        1 => (path(), 0..80_000u32).prop_map(|(p, len)| Op::Truncate { p, len }),
        2 => (path(), path()).prop_map(|(from, to)| Op::Rename { from, to }),
        1 => path().prop_map(Op::Unlink),
        3 => path().prop_map(Op::Mkdir),
        1 => path().prop_map(Op::Rmdir),
        1 => path().prop_map(Op::Read),
        1 => path().prop_map(Op::Stat),
    ]
    .boxed()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
}

/// The model: every path below the case's root, with what it is.
#[derive(Default, Debug)]
struct Model(BTreeMap<String, Node>);

type Outcome = Result<Option<Vec<u8>>, i32>;

impl Model {
    /// The errno of resolving `p`'s ancestors: ENOENT for a missing one, ENOTDIR for a file.
    fn walk(&self, p: &str) -> Result<(), i32> {
        let mut at = 0;
        while let Some(i) = p[at..].find('/') {
            match self.0.get(&p[..at + i]) {
                None => return Err(libc::ENOENT),
                Some(Node::File(_)) => return Err(libc::ENOTDIR),
                Some(Node::Dir) => at += i + 1,
            }
        }
        Ok(())
    }

    fn has_children(&self, p: &str) -> bool {
        let pre = format!("{p}/");
        self.0
            .range(pre.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&pre))
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Write { p, off, len, seed } => {
                self.walk(p)?;
                let data = bytes(*len, *seed);
                match self.0.entry(p.clone()).or_insert(Node::File(Vec::new())) {
                    Node::Dir => Err(libc::EISDIR),
                    Node::File(v) => {
                        let (off, end) = (*off as usize, *off as usize + data.len());
                        if !data.is_empty() {
                            if v.len() < end {
                                v.resize(end, 0);
                            }
                            v[off..end].copy_from_slice(&data);
                        }
                        Ok(None)
                    }
                }
            }
            Op::Truncate { p, len } => {
                self.walk(p)?;
                match self.0.get_mut(p) {
                    None => Err(libc::ENOENT),
                    Some(Node::Dir) => Err(libc::EISDIR),
                    Some(Node::File(v)) => {
                        v.resize(*len as usize, 0);
                        Ok(None)
                    }
                }
            }
            Op::Unlink(p) => {
                self.walk(p)?;
                match self.0.get(p) {
                    None => Err(libc::ENOENT),
                    Some(Node::Dir) => Err(libc::EISDIR),
                    Some(Node::File(_)) => {
                        self.0.remove(p);
                        Ok(None)
                    }
                }
            }
            Op::Mkdir(p) => {
                self.walk(p)?;
                if self.0.contains_key(p) {
                    return Err(libc::EEXIST);
                }
                self.0.insert(p.clone(), Node::Dir);
                Ok(None)
            }
            Op::Rmdir(p) => {
                self.walk(p)?;
                match self.0.get(p) {
                    None => Err(libc::ENOENT),
                    Some(Node::File(_)) => Err(libc::ENOTDIR),
                    Some(Node::Dir) if self.has_children(p) => Err(libc::ENOTEMPTY),
                    Some(Node::Dir) => {
                        self.0.remove(p);
                        Ok(None)
                    }
                }
            }
            Op::Read(p) => {
                self.walk(p)?;
                match self.0.get(p) {
                    None => Err(libc::ENOENT),
                    Some(Node::Dir) => Err(libc::EISDIR),
                    Some(Node::File(v)) => Ok(Some(v.clone())),
                }
            }
            Op::Stat(p) => {
                self.walk(p)?;
                match self.0.get(p) {
                    None => Err(libc::ENOENT),
                    Some(n) => Ok(Some(describe(n))),
                }
            }
            Op::Rename { from, to } => self.rename(from, to),
        }
    }

    /// rename(2) as Linux orders its checks.
    fn rename(&mut self, from: &str, to: &str) -> Outcome {
        self.walk(from)?;
        self.walk(to)?;
        let Some(src) = self.0.get(from).cloned() else {
            return Err(libc::ENOENT);
        };
        if from == to {
            return Ok(None);
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(libc::EINVAL);
        }
        // the target is an ancestor of the source (the VFS's "trap"), whatever the types
        if from.starts_with(&format!("{to}/")) {
            return Err(libc::ENOTEMPTY);
        }
        match (&src, self.0.get(to)) {
            (Node::File(_), Some(Node::Dir)) => return Err(libc::EISDIR),
            (Node::Dir, Some(Node::File(_))) => return Err(libc::ENOTDIR),
            (Node::Dir, Some(Node::Dir)) if self.has_children(to) => return Err(libc::ENOTEMPTY),
            _ => {}
        }
        let pre = format!("{from}/");
        let moved: Vec<(String, Node)> = self
            .0
            .iter()
            .filter(|(k, _)| *k == from || k.starts_with(&pre))
            .map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v.clone()))
            .collect();
        self.0.retain(|k, _| k != from && !k.starts_with(&pre));
        self.0.remove(to);
        self.0.extend(moved);
        Ok(None)
    }
}

fn bytes(len: u32, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn describe(n: &Node) -> Vec<u8> {
    match n {
        Node::Dir => b"dir".to_vec(),
        Node::File(v) => format!("file {}", v.len()).into_bytes(),
    }
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// The same operation on the real mount.
fn real(root: &Path, op: &Op) -> Outcome {
    let r = |p: &str| root.join(p);
    match op {
        Op::Write { p, off, len, seed } => {
            let f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(r(p))
                .map_err(errno)?;
            f.write_all_at(&bytes(*len, *seed), *off as u64)
                .map_err(errno)?;
            drop(f);
            Ok(None)
        }
        Op::Truncate { p, len } => {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(r(p))
                .map_err(errno)?;
            f.set_len(*len as u64).map_err(errno)?;
            Ok(None)
        }
        Op::Rename { from, to } => fs::rename(r(from), r(to)).map(|_| None).map_err(errno),
        Op::Unlink(p) => fs::remove_file(r(p)).map(|_| None).map_err(errno),
        Op::Mkdir(p) => fs::create_dir(r(p)).map(|_| None).map_err(errno),
        Op::Rmdir(p) => fs::remove_dir(r(p)).map(|_| None).map_err(errno),
        Op::Read(p) => fs::read(r(p)).map(Some).map_err(errno),
        Op::Stat(p) => {
            let m = fs::metadata(r(p)).map_err(errno)?;
            Ok(Some(if m.is_dir() {
                b"dir".to_vec()
            } else {
                format!("file {}", m.len()).into_bytes()
            }))
        }
    }
}

/// The whole tree under `root` as the mount shows it.
fn snapshot(root: &Path, rel: &str, out: &mut BTreeMap<String, Node>) -> std::io::Result<()> {
    for e in fs::read_dir(root.join(rel))? {
        let e = e?;
        let name = e.file_name().into_string().unwrap();
        let p = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type()?.is_dir() {
            out.insert(p.clone(), Node::Dir);
            snapshot(root, &p, out)?;
        } else {
            out.insert(p.clone(), Node::File(fs::read(root.join(&p))?));
        }
    }
    Ok(())
}

fn check(root: &Path, ops: &[Op]) -> Result<(), TestCaseError> {
    fs::create_dir(root).map_err(|e| TestCaseError::fail(format!("mkdir case root: {e}")))?;
    let mut model = Model::default();
    for (i, op) in ops.iter().enumerate() {
        let want = model.apply(op);
        let got = real(root, op);
        prop_assert_eq!(&got, &want, "step {} {:?}", i, op);
        let mut tree = BTreeMap::new();
        snapshot(root, "", &mut tree).map_err(|e| TestCaseError::fail(format!("walk: {e}")))?;
        if tree != model.0 {
            let show = |t: &BTreeMap<String, Node>| -> Vec<String> {
                t.iter()
                    .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(&describe(v))))
                    .collect()
            };
            return Err(TestCaseError::fail(format!(
                "after step {i} {op:?}: mount {:?} != model {:?}",
                show(&tree),
                show(&model.0)
            )));
        }
    }
    Ok(())
}

fn run(kind: Kind) {
    run_on(kind, Daemon::start(kind))
}

fn run_on(kind: Kind, d: Daemon) {
    let (cases, steps) = if common::long_mode() {
        (400, 80)
    } else {
        (12, 30)
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        source_file: Some(file!()),
        max_shrink_iters: 400,
        ..Config::default()
    });
    let n = std::cell::Cell::new(0);
    let dirs = kind != Kind::S3 || common::external_s3().is_some();
    let result = runner.run(&prop::collection::vec(op(dirs), 1..steps), |ops| {
        n.set(n.get() + 1);
        check(&d.path(&format!("case{}", n.get())), &ops)
    });
    if let Err(e) = result {
        panic!("{kind:?}: {e}\ndaemon log: {}", d.log_text());
    }
}

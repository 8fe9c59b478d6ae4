//! An fsx-style integrity exerciser: one file through a real mount takes random writes,
//! reads, truncates (grow and shrink), fsyncs and reopens; every read, and the whole file at
//! every reopen, is checked against a shadow buffer. 10,000 operations per backend in
//! `cargo test`, 1,000,000 with `GENRO_LONG=1` (`GENRO_FSX_OPS=n` sets any count,
//! `GENRO_FSX_SEED=n` replays a run).

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{Daemon, Kind, Rng};

#[test]
fn fsx_local() {
    run(Kind::Local, MAX_LEN, 10_000)
}
#[test]
fn fsx_memory() {
    run(Kind::Memory, MAX_LEN, 10_000)
}
#[test]
fn fsx_s3() {
    run(Kind::S3, MAX_LEN, 10_000)
}
/// Files past 1 MiB: a memory mount hands their staged pages to its store at upload and
/// copies them before the next change (the integrity of the file through that path; that the
/// store's bytes never change underneath is checked in `fs_core`).
#[test]
fn fsx_memory_large() {
    run(Kind::Memory, 3 << 20, 3_000)
}

const MAX_LEN: u64 = 256 * 1024;
const MAX_IO: u64 = 64 * 1024;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn open(p: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap_or_else(|e| panic!("reopen {}: {e}", p.display()))
}

/// `fast_ops` operations on a file of at most `max_len` bytes (100 times as many in long
/// mode, up to 1,000,000).
fn run(kind: Kind, max_len: u64, fast_ops: u64) {
    let long = common::long_mode();
    let ops = env_u64("GENRO_FSX_OPS").unwrap_or(if long {
        (fast_ops * 100).min(1_000_000)
    } else {
        fast_ops
    });
    let seed = env_u64("GENRO_FSX_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1
    });
    let d = Daemon::start(kind);
    let p = d.path("fsx.bin");
    std::fs::write(&p, b"").unwrap();
    let mut f = open(&p);
    let mut shadow: Vec<u8> = Vec::new();
    let mut rng = Rng(seed);
    let mut log: std::collections::VecDeque<String> = Default::default();
    let mut counts = [0u64; 5];
    for i in 0..ops {
        let op = match rng.below(100) {
            0..=39 => 0,  // write
            40..=79 => 1, // read
            80..=91 => 2, // truncate
            92..=95 => 3, // fsync
            _ => 4,       // reopen
        };
        counts[op] += 1;
        let what = match op {
            0 => {
                let off = rng.below(max_len);
                let len = rng.below(MAX_IO.min(max_len - off)) + 1;
                let tag = (i % 251) as u8;
                let data: Vec<u8> = (0..len)
                    .map(|j| tag.wrapping_add((j % 253) as u8))
                    .collect();
                f.write_all_at(&data, off)
                    .unwrap_or_else(|e| fail(kind, seed, i, &log, &format!("write: {e}")));
                let end = (off + len) as usize;
                if shadow.len() < end {
                    shadow.resize(end, 0);
                }
                shadow[off as usize..end].copy_from_slice(&data);
                format!("write {off}+{len}")
            }
            1 => {
                let off = rng.below(max_len);
                let len = rng.below(MAX_IO) + 1;
                let mut buf = vec![0u8; len as usize];
                let mut got = 0;
                while got < buf.len() {
                    match f.read_at(&mut buf[got..], off + got as u64) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) => fail(kind, seed, i, &log, &format!("read: {e}")),
                    }
                }
                let start = (off as usize).min(shadow.len());
                let end = (off as usize + len as usize).min(shadow.len());
                let want = &shadow[start..end];
                if &buf[..got] != want {
                    let at = buf[..got]
                        .iter()
                        .zip(want)
                        .position(|(a, b)| a != b)
                        .map(|x| x as u64 + off);
                    fail(
                        kind,
                        seed,
                        i,
                        &log,
                        &format!(
                            "read {off}+{len}: got {got} bytes, want {}; first difference at {at:?}",
                            want.len()
                        ),
                    );
                }
                format!("read {off}+{len}")
            }
            2 => {
                let len = rng.below(max_len + 1);
                f.set_len(len)
                    .unwrap_or_else(|e| fail(kind, seed, i, &log, &format!("truncate: {e}")));
                shadow.resize(len as usize, 0);
                format!("truncate {len}")
            }
            3 => {
                f.sync_all()
                    .unwrap_or_else(|e| fail(kind, seed, i, &log, &format!("fsync: {e}")));
                "fsync".to_string()
            }
            _ => {
                drop(f);
                let whole = std::fs::read(&p)
                    .unwrap_or_else(|e| fail(kind, seed, i, &log, &format!("read back: {e}")));
                if whole != shadow {
                    fail(
                        kind,
                        seed,
                        i,
                        &log,
                        &format!(
                            "after close the file has {} bytes, the shadow {}",
                            whole.len(),
                            shadow.len()
                        ),
                    );
                }
                f = open(&p);
                "reopen".to_string()
            }
        };
        if log.len() == 30 {
            log.pop_front();
        }
        log.push_back(format!("#{i} {what}"));
    }
    drop(f);
    let whole = std::fs::read(&p).unwrap();
    assert!(
        whole == shadow,
        "{kind:?} seed {seed}: final contents differ"
    );
    eprintln!(
        "fsx {kind:?}: {ops} ops (write {}, read {}, truncate {}, fsync {}, reopen {}), seed {seed}, ok",
        counts[0], counts[1], counts[2], counts[3], counts[4]
    );
}

fn fail(kind: Kind, seed: u64, i: u64, log: &std::collections::VecDeque<String>, what: &str) -> ! {
    panic!(
        "fsx {kind:?} op #{i}: {what}\nreplay with GENRO_FSX_SEED={seed}\nlast operations:\n{}",
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    )
}

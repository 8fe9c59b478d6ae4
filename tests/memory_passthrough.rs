//! Memory mounts through FUSE passthrough: the kernel reads and writes the staged memory
//! file itself, and the daemon still answers sizes and times from it while it is open,
//! keeps times set after writes (tar, cp -a), and stores what shared mappings wrote at the
//! last release.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime};

use common::{http_get, Daemon, Kind};

/// The count of FUSE requests `op` the daemon served for mount `t` (0 when none).
fn served(port: u16, op: &str) -> u64 {
    let series = format!(r#"genro_storage_fuse_requests_total{{mount="t",op="{op}"}}"#);
    http_get(port, "/metrics")
        .lines()
        .find(|l| l.starts_with(&series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A new open after the last release finds what the store holds (the open file the
/// released handles shared is gone once its release was served).
fn settled() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn memory_files_are_read_and_written_by_the_kernel_and_stored_at_close() {
    let port = common::servers::free_port(0);
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(Kind::Memory, &["--metrics", &addr], |c| c);
    let (writes, reads) = (served(port, "write"), served(port, "read"));
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut f = fs::File::create(d.path("big")).unwrap();
    f.write_all(&data[..4 << 20]).unwrap();
    // while open, the size is the kernel's writes (answered from the memory file)
    assert_eq!(fs::metadata(d.path("big")).unwrap().len(), 4 << 20);
    f.write_all(&data[4 << 20..]).unwrap();
    assert_eq!(fs::metadata(d.path("big")).unwrap().len(), 8 << 20);
    drop(f);
    settled();
    assert_eq!(fs::read(d.path("big")).unwrap(), data);
    // small files too, read back after their release
    fs::write(d.path("small"), b"small file").unwrap();
    settled();
    assert_eq!(fs::read(d.path("small")).unwrap(), b"small file");
    assert_eq!(
        (served(port, "write") - writes, served(port, "read") - reads),
        (0, 0),
        "the kernel served the reads and writes itself (passthrough)"
    );
    // an overwrite in place of a stored file, and a truncate while open
    let f = fs::OpenOptions::new()
        .write(true)
        .open(d.path("big"))
        .unwrap();
    f.write_all_at(b"XYZ", 1 << 20).unwrap();
    f.set_len(2 << 20).unwrap();
    assert_eq!(fs::metadata(d.path("big")).unwrap().len(), 2 << 20);
    drop(f);
    settled();
    let got = fs::read(d.path("big")).unwrap();
    let mut want = data[..2 << 20].to_vec();
    want[1 << 20..(1 << 20) + 3].copy_from_slice(b"XYZ");
    assert!(got == want, "{} bytes read back", got.len());
}

#[test]
fn times_set_after_writes_stay_and_writes_move_them() {
    let d = Daemon::start(Kind::Memory);
    let p = d.path("f");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    // as tar and cp -a do: write, set the times, close
    let mut f = fs::File::create(&p).unwrap();
    f.write_all(b"contents").unwrap();
    f.set_modified(old).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), old);
    settled();
    assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), old);
    // a write through the kernel after that moves the mtime again
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(b"C", 0).unwrap();
    let m = fs::metadata(&p).unwrap().modified().unwrap();
    assert!(m > old + Duration::from_secs(1 << 20), "{m:?}");
    drop(f);
    settled();
    assert_eq!(fs::read(&p).unwrap(), b"Contents");
    let stored = fs::metadata(&p).unwrap().modified().unwrap();
    assert!(stored > old + Duration::from_secs(1 << 20), "{stored:?}");
    // opened for writing and closed with no write: nothing moves
    let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
    drop(f);
    settled();
    assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), stored);
}

/// A shared mapping written after close, on pages written before it (a page written again
/// after its first fault moves no times): the store holds those bytes once the mapping is
/// gone.
#[test]
fn writes_through_a_shared_mapping_after_close_are_stored() {
    let d = Daemon::start(Kind::Memory);
    fs::write(d.path("m"), vec![b'.'; 8192]).unwrap();
    settled();
    let out = d.sh("python3 -c \"
import mmap, os
fd = os.open('m', os.O_RDWR)
m = mmap.mmap(fd, 8192)
m[0:5] = b'first'
m[4096:4101] = b'page2'
os.close(fd)
m[0:6] = b'second'
m[4096:4101] = b'again'
m.close()
print('ok')
\"");
    assert_eq!(out.trim(), "ok");
    settled();
    let got = fs::read(d.path("m")).unwrap();
    assert_eq!(&got[..6], b"second");
    assert_eq!(&got[4096..4101], b"again");
    assert_eq!(got.len(), 8192);
}

//! Faults: the S3 server dies or hangs under a real mount (a proxy in front of the tests' S3
//! server cuts or stalls its connections). The application gets EIO within a bounded time set
//! by the mount's `timeout` and `retries`, the daemon lives, what was durable stays intact, no
//! partial object appears, other mounts are not stalled, and work resumes when the server is
//! back. SIGINT with files open for writing loses none of their bytes (SIGTERM and `kill -9`
//! are in `fuse_mount.rs`).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use common::{Daemon, FaultProxy, Kind};

/// Per attempt deadline and retries of the S3 mount under test: an operation on a dead server
/// fails after at most (1 + 1) × 2 s plus backoff; the bound asserted leaves room for the
/// several requests one system call may need (a flush is stat + upload).
const TIMEOUT: Duration = Duration::from_secs(2);
const BOUND: Duration = Duration::from_secs(45);

fn daemon_behind(proxy: &FaultProxy) -> Daemon {
    let endpoint = proxy.endpoint();
    Daemon::start_with(Kind::S3, &[], move |c| {
        c.endpoint_url(endpoint).timeout(TIMEOUT).retries(1)
    })
}

fn alive(d: &mut Daemon) {
    assert!(
        d.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the daemon died: {}",
        d.log_text()
    );
    assert!(fs::read_dir(&d.mnt).unwrap().count() >= 2);
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 * 31 + seed as u32) as u8)
        .collect()
}

fn backend_read(d: &Daemon, path: &str) -> Option<Vec<u8>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = d.backend_storage().await;
        let n = s.node(&format!("t:{path}")).unwrap();
        if n.exists().await.unwrap() {
            Some(n.read().await.unwrap())
        } else {
            None
        }
    })
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[test]
fn s3_dies_mid_write() {
    let proxy = FaultProxy::start();
    let mut d = daemon_behind(&proxy);
    let before = pattern(1 << 20, 1);
    fs::write(d.path("keep.bin"), &before).unwrap();

    // A new file streaming its parts, and an overwrite of a durable one, both cut mid-way.
    let mut fresh = fs::File::create(d.path("new.bin")).unwrap();
    fresh.write_all(&pattern(20 << 20, 2)).unwrap();
    let over = fs::OpenOptions::new()
        .write(true)
        .open(d.path("keep.bin"))
        .unwrap();
    over.write_all_at(b"overwritten", 0).unwrap();
    proxy.down();
    let t = Instant::now();
    let rest = fresh.write_all(&pattern(12 << 20, 3));
    let synced = rest.and_then(|_| fresh.sync_all());
    let e = synced.expect_err("fsync of a file whose upload was cut must fail");
    assert_eq!(errno(&e), libc::EIO, "{e}");
    let e = over
        .sync_all()
        .expect_err("fsync with the server down must fail");
    assert_eq!(errno(&e), libc::EIO, "{e}");
    assert!(t.elapsed() < BOUND, "EIO took {:?}", t.elapsed());
    drop(fresh);
    drop(over);
    alive(&mut d);

    proxy.up();
    // The release that follows a failed close may upload the whole file once the server is
    // back: the backend holds the old object or the whole new one, never a part of either.
    let mut after = before.clone();
    after[..11].copy_from_slice(b"overwritten");
    let mut whole = pattern(20 << 20, 2);
    whole.extend(pattern(12 << 20, 3));
    let keep = backend_read(&d, "keep.bin").expect("keep.bin vanished");
    assert!(
        keep == before || keep == after,
        "keep.bin corrupt: {} bytes",
        keep.len()
    );
    if let Some(new) = backend_read(&d, "new.bin") {
        assert!(
            new == whole,
            "a partial object appeared: {} bytes",
            new.len()
        );
    }
    // The next operations work, and the mount shows the backend's truth: at once, or once
    // the release still retrying its upload is done (it may land after the read above).
    fs::write(d.path("after.txt"), "back").unwrap();
    assert_eq!(fs::read_to_string(d.path("after.txt")).unwrap(), "back");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = fs::read(d.path("keep.bin")).unwrap();
        assert!(
            seen == before || seen == after,
            "keep.bin shows {} bytes of neither",
            seen.len()
        );
        if backend_read(&d, "keep.bin").as_ref() == Some(&seen) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mount and the backend still differ"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn s3_dies_mid_read() {
    let proxy = FaultProxy::start();
    let mut d = daemon_behind(&proxy);
    let data = pattern(48 << 20, 7);
    d.backend_write("big.bin", &data);

    let mut f = fs::File::open(d.path("big.bin")).unwrap();
    let mut head = vec![0u8; 1 << 20];
    f.read_exact(&mut head).unwrap();
    assert!(head == data[..1 << 20]);
    proxy.down();
    let t = Instant::now();
    let mut rest = Vec::new();
    let e = f
        .read_to_end(&mut rest)
        .expect_err("a read past what was fetched must fail with the server down");
    assert_eq!(errno(&e), libc::EIO, "{e}");
    assert!(t.elapsed() < BOUND, "EIO took {:?}", t.elapsed());
    drop(f);
    alive(&mut d);

    proxy.up();
    let got = fs::read(d.path("big.bin")).unwrap();
    assert!(got == data, "the object read back differs");
}

#[test]
fn transient_failures_are_retried() {
    let proxy = FaultProxy::start();
    let endpoint = proxy.endpoint();
    let d = Daemon::start_with(Kind::S3, &[], move |c| {
        c.endpoint_url(endpoint).timeout(TIMEOUT).retries(6)
    });
    let data = pattern(300_000, 9);
    fs::write(d.path("x.bin"), &data).unwrap();
    for i in 0..3 {
        proxy.down();
        let p = &proxy;
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(150));
                p.up();
            });
            // A write and a read that meet the outage: the backoff outlasts it.
            fs::write(d.path(&format!("y{i}.bin")), &data).unwrap();
        });
        proxy.down();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(150));
                p.up();
            });
            assert!(fs::read(d.path(&format!("y{i}.bin"))).unwrap() == data);
        });
    }
}

#[test]
fn hung_s3_does_not_stall_other_mounts() {
    let proxy = FaultProxy::start();
    let mut d = daemon_behind(&proxy);
    fs::write(d.path("x.txt"), "x").unwrap();
    proxy.hang();
    let t = Instant::now();
    std::thread::scope(|s| {
        let hung: Vec<_> = (0..16)
            .map(|i| {
                let p = d.path(&format!("missing-{i}"));
                let q = d.path(&format!("w-{i}"));
                s.spawn(move || {
                    let t = Instant::now();
                    let a = fs::metadata(&p).map(|_| ()).unwrap_err();
                    let took = t.elapsed();
                    // Creates in one directory hold its lock one at a time (the VFS's rule
                    // for every filesystem): four of them, not sixteen.
                    let b = (i < 4).then(|| fs::write(&q, "data").unwrap_err());
                    (errno(&a), b.map(|b| errno(&b)), took)
                })
            })
            .collect();
        // Meanwhile the memory mount answers as usual.
        std::thread::sleep(Duration::from_millis(200));
        let other = d.mnt.join("other");
        let m = Instant::now();
        for i in 0..200 {
            let p = other.join(format!("f{i}"));
            fs::write(&p, b"hello").unwrap();
            assert_eq!(fs::read(&p).unwrap(), b"hello");
        }
        assert!(
            m.elapsed() < Duration::from_secs(10),
            "the memory mount stalled behind a hung S3 mount: {:?}",
            m.elapsed()
        );
        for h in hung {
            let (a, b, took) = h.join().unwrap();
            assert_eq!(a, libc::EIO, "stat on a hung server");
            assert!(took < BOUND, "stat took {took:?}");
            assert!(
                matches!(b, None | Some(libc::EIO)),
                "write on a hung server: {b:?}"
            );
        }
    });
    assert!(t.elapsed() < BOUND * 2, "EIO took {:?}", t.elapsed());
    alive(&mut d);
    proxy.up();
    assert_eq!(fs::read_to_string(d.path("x.txt")).unwrap(), "x");
    fs::write(d.path("y.txt"), "y").unwrap();
    assert_eq!(fs::read_to_string(d.path("y.txt")).unwrap(), "y");
}

#[test]
fn sigint_uploads_open_files() {
    for kind in [Kind::Local, Kind::S3] {
        let mut d = Daemon::start(kind);
        let data = pattern(5_000_000, 4);
        let mut a = fs::File::create(d.path("a.bin")).unwrap();
        a.write_all(&data).unwrap();
        let b = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(d.path("b.bin"))
            .unwrap();
        b.write_all_at(b"tail", 1000).unwrap();
        let child = d.child.take().unwrap();
        // SAFETY: kill(2) with a valid pid and signal.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        d.child = Some(child);
        let status = wait_exit(&mut d);
        assert!(
            status.success(),
            "{kind:?}: exit {status}: {}",
            d.log_text()
        );
        drop((a, b));
        assert!(backend_read(&d, "a.bin").unwrap() == data, "{kind:?}");
        let mut want = vec![0u8; 1004];
        want[1000..].copy_from_slice(b"tail");
        assert_eq!(backend_read(&d, "b.bin").unwrap(), want, "{kind:?}");
    }
}

fn wait_exit(d: &mut Daemon) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = d.child.as_mut().unwrap().try_wait().unwrap() {
            d.child = None;
            return s;
        }
        assert!(Instant::now() < deadline, "no exit: {}", d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

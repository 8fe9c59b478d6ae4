//! FUSE over io_uring (`--io-uring`): where the kernel offers it, requests come on the
//! per-CPU rings (memory and local served on the ring threads, S3 answered from the
//! runtime's threads); where it does not, the daemon warns and serves /dev/fuse. The whole
//! suite also runs over the rings: `GENRO_STORAGE_IO_URING=1 cargo test` (`.ci/run` does).

mod common;

use std::fs;
use std::path::Path;

use common::{http_get, Daemon, Kind};

const PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// One metric's value (0 when absent).
fn metric(port: u16, series: &str) -> u64 {
    http_get(port, "/metrics")
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sets the kernel's `enable_uring` for the test's mounts, and puts it back on drop.
struct Param(Option<String>);

impl Param {
    fn set(v: &str) -> Param {
        let old = fs::read_to_string(PARAM).ok();
        if old.is_some() {
            fs::write(PARAM, v).unwrap_or_else(|e| panic!("cannot write {PARAM}: {e}"));
        }
        Param(old)
    }
}

impl Drop for Param {
    fn drop(&mut self) {
        if let Some(v) = &self.0 {
            let _ = fs::write(PARAM, v.trim());
        }
    }
}

/// Files of every size through the mount: names, small and large data (16 MiB, past one
/// ring buffer's 1 MiB), a listing, a rename and removals, checked byte for byte.
fn workload(d: &Daemon) {
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    fs::write(d.path("big"), &big).unwrap();
    for i in 0..50 {
        fs::write(d.path(&format!("f{i}")), format!("file {i}")).unwrap();
    }
    fs::create_dir(d.path("dir")).unwrap();
    fs::rename(d.path("f0"), d.path("dir/moved")).unwrap();
    let mut names: Vec<String> = fs::read_dir(d.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 51, "{names:?}");
    assert_eq!(fs::read(d.path("big")).unwrap(), big);
    for i in 1..50 {
        assert_eq!(
            fs::read_to_string(d.path(&format!("f{i}"))).unwrap(),
            format!("file {i}")
        );
        fs::remove_file(d.path(&format!("f{i}"))).unwrap();
    }
    assert_eq!(fs::read_to_string(d.path("dir/moved")).unwrap(), "file 0");
    // many requests at once: the ring threads and the runtime's replies together
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..25 {
                    let p = d.path(&format!("dir/t{t}-{i}"));
                    fs::write(&p, vec![t as u8; 10_000 + i]).unwrap();
                    assert_eq!(fs::read(&p).unwrap().len(), 10_000 + i);
                }
            });
        }
    });
    assert_eq!(fs::read_dir(d.path("dir")).unwrap().count(), 101);
}

fn served_over_the_rings(kind: Kind) {
    let offered = Path::new(PARAM).exists();
    if !offered && common::ci() {
        panic!("this kernel has no FUSE over io_uring ({PARAM} is missing; Linux 6.14+ with CONFIG_FUSE_IO_URING)");
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _p = Param::set("Y");
    let port = common::servers::free_port(0);
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(kind, &["--io-uring", "--metrics", &addr], |c| c);
    workload(&d);
    let ring = metric(port, "genro_storage_fuse_ring_requests_total");
    let uring = metric(
        port,
        r#"genro_storage_fuse_transport{transport="io_uring"}"#,
    );
    if offered {
        assert_eq!(uring, 1, "{}", d.log_text());
        // (each file above costs several requests)
        assert!(ring > 500, "only {ring} requests came on the rings");
        assert!(
            !d.log_text().contains("serving /dev/fuse"),
            "{}",
            d.log_text()
        );
    } else {
        // a kernel without it: the daemon says so and serves /dev/fuse
        assert_eq!((uring, ring), (0, 0));
        assert!(
            d.log_text().contains("serving /dev/fuse"),
            "{}",
            d.log_text()
        );
    }
}

#[test]
fn served_over_the_rings_memory() {
    served_over_the_rings(Kind::Memory);
}

#[test]
fn served_over_the_rings_local() {
    served_over_the_rings(Kind::Local);
}

#[test]
fn served_over_the_rings_s3() {
    served_over_the_rings(Kind::S3);
}

/// With `enable_uring` off the kernel does not offer the rings at INIT: the daemon warns,
/// names the switch, and serves every request on /dev/fuse.
#[test]
fn falls_back_to_dev_fuse() {
    // (the param is global: the other tests of this binary set it to Y, so run alone)
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _p = Param::set("N");
    let port = common::servers::free_port(0);
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(Kind::Memory, &["--io-uring", "--metrics", &addr], |c| c);
    workload(&d);
    assert_eq!(metric(port, "genro_storage_fuse_ring_requests_total"), 0);
    assert_eq!(
        metric(
            port,
            r#"genro_storage_fuse_transport{transport="dev_fuse"}"#
        ),
        1
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !d.log_text().contains("enable_uring") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        d.log_text().contains("serving /dev/fuse") && d.log_text().contains("enable_uring"),
        "{}",
        d.log_text()
    );
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

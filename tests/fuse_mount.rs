//! Real mounts: `genro-storage mount` on local, memory and S3, driven by `std::fs` and by
//! ordinary tools. Needs root and /dev/fuse; a test that cannot mount fails.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::{http_get, Daemon, Kind};

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod local { $( #[test] fn $case() { super::$case(super::Kind::Local) } )* }
        mod memory { $( #[test] fn $case() { super::$case(super::Kind::Memory) } )* }
        mod s3 { $( #[test] fn $case() { super::$case(super::Kind::S3) } )* }
    };
}

suite!(
    root_lists_the_mounts,
    cp_tree_and_diff,
    tar_round_trip,
    mv_files_and_directories,
    rm_r_find_grep,
    append_truncate_dd_sed,
    file_100mib_checksum,
    concurrent_writers,
    create_unlink_rmdir_errors,
    handles_share_writes,
    rename_semantics,
    cp_a_and_tar_x_preserve,
    large_directory,
    sigterm_uploads_open_file,
    unlinked_open_file_keeps_working,
    symlinks_are_objects,
);

/// A small source tree with no empty directory (s3s-fs keeps no directory markers).
fn make_tree(root: &std::path::Path) {
    for (p, n) in [
        ("a.txt", 10),
        ("sub/b.bin", 70_000),
        ("sub/deep/c.txt", 1),
        ("sub/deep/d.txt", 0),
        ("e f.txt", 5),
    ] {
        let f = root.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, (0..n).map(|i| (i % 253) as u8).collect::<Vec<u8>>()).unwrap();
    }
}

fn root_lists_the_mounts(k: Kind) {
    let d = Daemon::start(k);
    let mut names: Vec<String> = fs::read_dir(&d.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["other", "t"]);
    let e = fs::create_dir(d.mnt.join("new")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    let e = fs::write(d.mnt.join("f"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    let e = fs::remove_dir(d.mnt.join("t")).unwrap_err();
    assert!(
        matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EBUSY)),
        "{e}"
    );
    let out = d.sh("df -P . | tail -1");
    assert!(out.contains("genro-storage"), "{out}");
}

fn cp_tree_and_diff(k: Kind) {
    let d = Daemon::start(k);
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let s = src.path().display();
    d.sh(&format!("cp -r {s} copy && diff -r {s} copy && cp -r copy ../other/copy && diff -r {s} ../other/copy"));
    let out = d.sh("ls -l copy/sub");
    assert!(out.contains("70000"), "{out}");
}

fn tar_round_trip(k: Kind) {
    let d = Daemon::start(k);
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let s = src.path().display();
    d.sh(&format!(
        "tar -C {s} -cf - . | tar -xf - && diff -r {s} . --exclude=x.tar && tar -cf ../other/x.tar . && mkdir -p ../other/out && tar -C ../other/out -xf ../other/x.tar && diff -r {s} ../other/out"
    ));
}

fn mv_files_and_directories(k: Kind) {
    let d = Daemon::start(k);
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let s = src.path().display();
    d.sh(&format!(
        "cp -r {s} tree && mv tree/a.txt tree/a2.txt && test ! -e tree/a.txt && mv tree moved && test ! -e tree && \
         diff <(cd {s} && find . -type f | sort) <(cd moved && find . -type f | sed s/a2.txt/a.txt/ | sort) && \
         mv moved/sub ../other/sub && test ! -e moved/sub && diff -r {s}/sub ../other/sub && \
         mv ../other/sub back && diff -r {s}/sub back"
    ));
}

fn rm_r_find_grep(k: Kind) {
    let d = Daemon::start(k);
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    d.sh(&format!(
        "cp -r {} tree && mkdir -p made/x/y && echo needle > made/x/y/hay.txt",
        src.path().display()
    ));
    let found = d.sh("find . -type f | sort");
    assert_eq!(
        found.lines().collect::<Vec<_>>(),
        [
            "./made/x/y/hay.txt",
            "./tree/a.txt",
            "./tree/e f.txt",
            "./tree/sub/b.bin",
            "./tree/sub/deep/c.txt",
            "./tree/sub/deep/d.txt"
        ]
    );
    assert_eq!(d.sh("grep -rl needle ."), "./made/x/y/hay.txt\n");
    d.sh("rm -r tree made && test -z \"$(ls -A)\"");
}

fn append_truncate_dd_sed(k: Kind) {
    let d = Daemon::start(k);
    d.sh("echo one > log && echo two >> log && echo three >> log");
    assert_eq!(
        fs::read_to_string(d.path("log")).unwrap(),
        "one\ntwo\nthree\n"
    );
    d.sh("truncate -s 4 log");
    assert_eq!(fs::read_to_string(d.path("log")).unwrap(), "one\n");
    d.sh("truncate -s 10 log");
    assert_eq!(fs::read(d.path("log")).unwrap(), b"one\n\0\0\0\0\0\0");
    d.sh("printf 0123456789 > dd.bin && printf XY | dd of=dd.bin bs=1 seek=4 conv=notrunc status=none");
    assert_eq!(fs::read_to_string(d.path("dd.bin")).unwrap(), "0123XY6789");
    d.sh("printf 'hello world\\nbye world\\n' > s.txt && sed -i 's/world/there/' s.txt");
    assert_eq!(
        fs::read_to_string(d.path("s.txt")).unwrap(),
        "hello there\nbye there\n"
    );
    d.sh("dd if=/dev/zero of=sparse bs=1 count=1 seek=5000000 status=none");
    assert_eq!(fs::metadata(d.path("sparse")).unwrap().len(), 5_000_001);
}

fn file_100mib_checksum(k: Kind) {
    let d = Daemon::start(k);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big");
    d.sh(&format!("head -c 104857600 /dev/urandom > {0} && cp {0} big && cmp {0} big && cp big ../other/big && cmp {0} ../other/big", src.display()));
    let a = d.sh(&format!("sha256sum < {}", src.display()));
    let b = d.sh("sha256sum < big");
    assert_eq!(a, b);
}

fn concurrent_writers(k: Kind) {
    let d = Daemon::start(k);
    fs::create_dir(d.path("par")).unwrap();
    std::thread::scope(|s| {
        for i in 0..16 {
            let p = d.path(&format!("par/w{i}"));
            s.spawn(move || {
                let mut f = fs::File::create(&p).unwrap();
                for j in 0..64 {
                    f.write_all(&vec![(i * 7 + j) as u8; 16 * 1024]).unwrap();
                }
            });
        }
    });
    for i in 0..16 {
        let data = fs::read(d.path(&format!("par/w{i}"))).unwrap();
        assert_eq!(data.len(), 64 * 16 * 1024);
        for j in 0..64 {
            assert!(data[j * 16384..(j + 1) * 16384]
                .iter()
                .all(|b| *b == (i * 7 + j) as u8));
        }
    }
}

fn create_unlink_rmdir_errors(k: Kind) {
    let d = Daemon::start(k);
    fs::write(d.path("f"), "x").unwrap();
    let e = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(d.path("f"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    // O_CREAT|O_RDONLY creates an empty file
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CREAT)
        .open(d.path("empty"))
        .unwrap();
    assert_eq!(fs::metadata(d.path("empty")).unwrap().len(), 0);
    assert!(d.sh("ls").contains("empty"));
    let e = fs::remove_file(d.path("missing")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    fs::create_dir(d.path("dir")).unwrap();
    fs::write(d.path("dir/x"), "x").unwrap();
    let e = fs::remove_dir(d.path("dir")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    let e = fs::remove_file(d.path("dir")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EISDIR));
    let e = fs::remove_dir(d.path("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    let e = fs::create_dir(d.path("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    let e = fs::write(d.path(&"n".repeat(256)), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    fs::remove_file(d.path("dir/x")).unwrap();
    fs::remove_dir(d.path("dir")).unwrap();
    assert!(!d.path("dir").exists());
    let sym = std::os::unix::fs::symlink("f", d.path("link"));
    sym.unwrap();
    assert_eq!(fs::read_link(d.path("link")).unwrap().to_str(), Some("f"));
    assert_eq!(fs::read_to_string(d.path("link")).unwrap(), "x");
    assert!(fs::symlink_metadata(d.path("link"))
        .unwrap()
        .file_type()
        .is_symlink());
}

fn handles_share_writes(k: Kind) {
    let d = Daemon::start(k);
    let p = d.path("shared.bin");
    let mut w = fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    w.write_all(b"hello").unwrap();
    // read-your-writes through another handle, before any close
    let mut r = fs::File::open(&p).unwrap();
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!(s, "hello");
    // a dup'd descriptor: closing one does not lose the other's writes
    let w2 = w.try_clone().unwrap();
    drop(w);
    w2.write_all_at(b"HE", 0).unwrap();
    w2.set_len(8).unwrap();
    drop(w2);
    assert_eq!(fs::read(&p).unwrap(), b"HEllo\0\0\0");
    // O_APPEND always writes at the end
    let mut a = fs::OpenOptions::new().append(true).open(&p).unwrap();
    a.write_all(b"!").unwrap();
    drop(a);
    assert_eq!(fs::read(&p).unwrap(), b"HEllo\0\0\0!");
    // random and sparse writes, ftruncate shrink
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    f.seek(SeekFrom::Start(20)).unwrap();
    f.write_all(b"Z").unwrap();
    f.sync_all().unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 21);
    f.set_len(3).unwrap();
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"HEl");
    // O_TRUNC
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
}

fn rename_semantics(k: Kind) {
    let d = Daemon::start(k);
    fs::write(d.path("a"), "A").unwrap();
    fs::write(d.path("b"), "B").unwrap();
    fs::rename(d.path("a"), d.path("b")).unwrap(); // replaces
    assert_eq!(fs::read_to_string(d.path("b")).unwrap(), "A");
    assert!(!d.path("a").exists());
    let e = fs::rename(d.path("b"), d.mnt.join("other/b")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
    fs::write(d.path("c"), "C").unwrap();
    let from = std::ffi::CString::new(d.path("c").to_str().unwrap()).unwrap();
    let to = std::ffi::CString::new(d.path("b").to_str().unwrap()).unwrap();
    // SAFETY: valid paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EEXIST)
    );
    fs::create_dir_all(d.path("d1/sub")).unwrap();
    fs::write(d.path("d1/sub/f"), "F").unwrap();
    fs::rename(d.path("d1"), d.path("d2")).unwrap();
    assert_eq!(fs::read_to_string(d.path("d2/sub/f")).unwrap(), "F");
    assert!(!d.path("d1").exists());
    let e = fs::rename(d.path("d2"), d.path("d2/sub/inside")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    // editors save by writing a temp file and renaming it over the original
    let mut t = fs::File::create(d.path(".b.swp")).unwrap();
    t.write_all(b"edited").unwrap();
    t.sync_all().unwrap();
    drop(t);
    fs::rename(d.path(".b.swp"), d.path("b")).unwrap();
    assert_eq!(fs::read_to_string(d.path("b")).unwrap(), "edited");
}

fn cp_a_and_tar_x_preserve(k: Kind) {
    let d = Daemon::start(k);
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let s = src.path().display();
    d.sh(&format!("chmod 600 {s}/a.txt && touch -d '2001-02-03 04:05:06' {s}/a.txt && cp -a {s} copy && tar -C {s} -cf ../other/t.tar . && mkdir x && tar -C x -xf ../other/t.tar"));
    for dir in ["copy", "x"] {
        let m = fs::metadata(d.path(&format!("{dir}/a.txt"))).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{dir}");
        assert_eq!(
            m.mtime(),
            fs::metadata(src.path().join("a.txt")).unwrap().mtime(),
            "{dir}"
        );
    }
    d.sh("touch -d '2010-01-01' copy/a.txt && chmod 640 copy/a.txt");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = fs::metadata(d.path("copy/a.txt")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o640);
    assert_eq!(m.mtime(), 1262304000);
}

fn large_directory(k: Kind) {
    let d = Daemon::start(k);
    let n = if k == Kind::S3 { 1200 } else { 10_000 };
    fs::create_dir(d.path("big")).unwrap();
    for i in 0..n {
        fs::write(d.path(&format!("big/f{i:05}")), "").unwrap();
    }
    let mut names: Vec<String> = fs::read_dir(d.path("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), n);
    assert_eq!(names[0], "f00000");
    assert_eq!(d.sh("ls -l big | wc -l").trim(), (n + 1).to_string());
}

fn sigterm_uploads_open_file(k: Kind) {
    let mut d = Daemon::start(k);
    if k == Kind::Memory {
        // Memory dies with the daemon; SIGTERM must still exit 0 with a file open.
        let mut f = fs::File::create(d.path("open")).unwrap();
        f.write_all(b"bytes").unwrap();
        assert!(d.stop().success(), "{}", d.log_text());
        return;
    }
    let mut f = fs::File::create(d.path("open.bin")).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    f.write_all(&data).unwrap();
    let status = d.stop();
    assert!(status.success(), "exit {status}: {}", d.log_text());
    drop(f);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(async {
        let s = d.backend_storage().await;
        s.node("t:open.bin").unwrap().read().await.unwrap()
    });
    assert_eq!(got.len(), data.len());
    assert!(got == data);
}

#[test]
fn read_only_flag_gives_erofs() {
    let d = Daemon::start_with(Kind::Memory, &["--read-only"], |c| c);
    let e = fs::write(d.path("x"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    let e = fs::create_dir(d.path("x")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
}

#[test]
fn readonly_mount_refuses_changes_and_readwrite_refuses_deletes() {
    let d = Daemon::start_with(Kind::Local, &[], |c| {
        c.permissions(genro_storage::Permissions::ReadOnly)
    });
    let genro_storage::Backend::Local { root, .. } = d.config.backend.clone() else {
        unreachable!()
    };
    fs::write(root.join("there"), "x").unwrap();
    assert_eq!(fs::read_to_string(d.path("there")).unwrap(), "x");
    for e in [
        fs::write(d.path("new"), "x").unwrap_err(),
        fs::remove_file(d.path("there")).unwrap_err(),
        fs::OpenOptions::new()
            .append(true)
            .open(d.path("there"))
            .unwrap_err(),
    ] {
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    }
    let d = Daemon::start_with(Kind::Memory, &[], |c| {
        c.permissions(genro_storage::Permissions::ReadWrite)
    });
    fs::write(d.path("f"), "x").unwrap();
    let e = fs::remove_file(d.path("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));
}

#[test]
fn refused_before_mounting_with_one_line() {
    let bin = env!("CARGO_BIN_EXE_genro-storage");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("m.toml");
    fs::write(&cfg, "[[mount]]\nname = \"m\"\nprotocol = \"memory\"\n").unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        err
    };
    let missing = dir.path().join("nope");
    assert!(run(&[
        "mount",
        missing.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap()
    ])
    .contains("does not exist"));
    let full = dir.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("x"), "").unwrap();
    assert!(run(&[
        "mount",
        full.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap()
    ])
    .contains("not empty"));
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[[mount]]\nname = \"m\"\nprotocol = \"smb\"\n").unwrap();
    let e = run(&[
        "mount",
        dir.path().to_str().unwrap(),
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert!(
        e.contains("bad.toml:3: mount \"m\": key \"protocol\""),
        "{e}"
    );
}

#[test]
fn stale_mount_of_a_killed_daemon_is_cleared() {
    let mut d = Daemon::start(Kind::Memory);
    let mut child = d.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let e = fs::metadata(&d.mnt).unwrap_err();
    // ECONNABORTED or ECANCELED when the stat meets the teardown of the killed daemon's
    // connection (seen on both transports)
    assert!(
        matches!(
            e.raw_os_error(),
            Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED)
        ),
        "{e}"
    );
    let mnt = d.mnt.clone();
    let cfg = d.dir.path().join("mounts.toml");
    let log = fs::File::create(d.dir.path().join("again.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_genro-storage"))
        .args([
            "mount",
            mnt.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .stderr(log)
        .spawn()
        .unwrap();
    d.child = Some(child);
    let again = || fs::read_to_string(d.dir.path().join("again.log")).unwrap_or_default();
    // the kernel may still answer cached attributes of the dead mount: wait for the new one
    for _ in 0..400 {
        if again().contains("mounted") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(again().contains("clearing a stale mount"), "{}", again());
    fs::write(d.path("works"), "yes").unwrap_or_else(|e| panic!("{e}: {}", again()));
    assert_eq!(fs::read_to_string(d.path("works")).unwrap(), "yes");
    assert!(d.stop().success());
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn metrics_served_during_a_copy(kind: Kind) {
    let port = common::servers::free_port(0);
    let addr = format!("127.0.0.1:{port}");
    let mut d = Daemon::start_with(kind, &["--metrics", &addr], |c| c);
    let src = d.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..20 {
        fs::write(src.join(format!("f{i}")), vec![7u8; 50_000]).unwrap();
    }
    // scrape while cp runs, and after
    let mut cp = std::process::Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(d.path("tree"))
        .spawn()
        .unwrap();
    let during = http_get(port, "/metrics");
    assert!(during.starts_with("HTTP/1.0 200"), "{during}");
    assert!(cp.wait().unwrap().success());
    let _ = fs::read(d.path("missing"));
    let text = http_get(port, "/metrics");
    assert!(text.contains("application/openmetrics-text"), "{text}");
    assert!(
        metric(
            &text,
            r#"genro_storage_fuse_requests_total{mount="t",op="create"}"#
        ) >= 20
    );
    // (the kernel writes memory files itself, through passthrough: no WRITE reaches the
    // daemon, whose written bytes count only what it served)
    let served = matches!(kind, Kind::Memory).then_some(0);
    let written = |op: &str| {
        let series = format!(r#"genro_storage_fuse_requests_total{{mount="t",op="{op}"}}"#);
        match text.contains(&series) {
            true => metric(&text, &series),
            false => 0,
        }
    };
    match served {
        Some(none) => assert_eq!(written("write"), none),
        None => assert!(written("write") >= 20),
    }
    assert!(
        metric(
            &text,
            r#"genro_storage_backend_requests_total{mount="t",kind="write"}"#
        ) >= 20
    );
    let fuse_bytes = metric(
        &text,
        r#"genro_storage_bytes_total{mount="t",direction="written",side="fuse"}"#,
    );
    match served {
        Some(none) => assert_eq!(fuse_bytes, none),
        None => assert!(fuse_bytes >= 1_000_000),
    }
    assert!(
        metric(
            &text,
            r#"genro_storage_bytes_total{mount="t",direction="written",side="backend"}"#
        ) >= 1_000_000
    );
    assert!(
        metric(
            &text,
            r#"genro_storage_fuse_errors_total{mount="t",errno="ENOENT"}"#
        ) >= 1
    );
    // (the kernel sends RELEASE after close returns: the last ones may still be served)
    let open = |t: &str| metric(t, r#"genro_storage_open_files{mount="t"}"#);
    let mut text = text;
    for _ in 0..50 {
        if open(&text) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        text = http_get(port, "/metrics");
    }
    assert_eq!(open(&text), 0);
    assert_eq!(
        metric(
            &text,
            r#"genro_storage_backend_requests_total{mount="other",kind="write"}"#
        ),
        0
    );
    assert!(http_get(port, "/other").starts_with("HTTP/1.0 404"));
    assert!(d.stop().success());
}

#[test]
fn metrics_served_during_a_copy_memory() {
    metrics_served_during_a_copy(Kind::Memory);
}

#[test]
fn metrics_served_during_a_copy_s3() {
    metrics_served_during_a_copy(Kind::S3);
}

/// On S3 a small file's lookup is one ranged GET whose body serves the open and read that
/// follow (a HEAD, a LIST and a GET before). A name the daemon knew nothing of is asked by
/// the GET and a LIST together (one round trip: a file, a directory or nothing); a file it
/// knew (expired) by the GET alone.
#[test]
fn s3_small_file_read_is_one_request() {
    let port = common::servers::free_port(0);
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(Kind::S3, &["--metrics", &addr], |c| c);
    d.backend_write("small", b"one request");
    d.backend_write("big", &vec![3u8; 300 << 10]);
    let requests = || {
        let text = http_get(port, "/metrics");
        ["stat", "read", "list"].map(|k| {
            metric(
                &text,
                &format!(r#"genro_storage_backend_requests_total{{mount="t",kind="{k}"}}"#),
            )
        })
    };
    let delta = |a: [u64; 3], b: [u64; 3]| [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let before = requests();
    assert_eq!(fs::read(d.path("small")).unwrap(), b"one request");
    // [stat, read, list]
    assert_eq!(delta(before, requests()), [0, 1, 1], "an unknown name");
    // past the TTL: a file known before is asked by its GET alone
    std::thread::sleep(Duration::from_millis(1500));
    let before = requests();
    assert_eq!(fs::read(d.path("small")).unwrap(), b"one request");
    assert_eq!(
        delta(before, requests()),
        [0, 1, 0],
        "a known file, expired"
    );
    // an empty file: its ranged GET is refused (416) without metadata, so a HEAD follows;
    // known and expired, the HEAD alone
    d.backend_write("empty", b"");
    let before = requests();
    assert_eq!(fs::read(d.path("empty")).unwrap(), b"");
    assert_eq!(
        delta(before, requests()),
        [1, 1, 1],
        "an unknown empty file"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = requests();
    assert_eq!(fs::metadata(d.path("empty")).unwrap().len(), 0);
    assert_eq!(
        delta(before, requests()),
        [1, 0, 0],
        "a known empty file, expired"
    );
    // a listing asks small files by a GET of their bytes: `ls -l` then `cat` costs nothing
    // more than the listing
    for i in 0..5 {
        d.backend_write(&format!("l/f{i}"), format!("listed {i}").as_bytes());
    }
    let sizes: Vec<u64> = fs::read_dir(d.path("l"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(sizes, [8; 5]);
    let before = requests();
    for i in 0..5 {
        assert_eq!(
            fs::read(d.path(&format!("l/f{i}"))).unwrap(),
            format!("listed {i}").as_bytes()
        );
    }
    assert_eq!(delta(before, requests()), [0, 0, 0], "read after a listing");
    // a larger file: its lookup's bytes are not served (its later ranges could mix
    // versions); it reads right
    assert_eq!(fs::read(d.path("big")).unwrap(), vec![3u8; 300 << 10]);
    // a directory and a missing name are still told apart
    d.backend_write("dir/x", b"x");
    assert!(fs::metadata(d.path("dir")).unwrap().is_dir());
    assert_eq!(
        fs::metadata(d.path("nothing")).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
}

/// `genro-storage mount` of `config` with `args`, which must fail: its stderr.
fn mount_must_fail(config: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("mnt")).unwrap();
    fs::write(dir.path().join("m.toml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_genro-storage"))
        .arg("mount")
        .arg(dir.path().join("mnt"))
        .arg("--config")
        .arg(dir.path().join("m.toml"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!common::is_mounted(&dir.path().join("mnt")));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn metrics_on_a_taken_port_or_a_bad_address_fail_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let memory = "[[mount]]\nname = \"m\"\nprotocol = \"memory\"\n";
    let err = mount_must_fail(memory, &["--metrics", &addr]);
    assert!(err.contains("--metrics") && err.contains(&addr), "{err}");
    // a bad [fuse] metrics value names its key
    let err = mount_must_fail(&format!("[fuse]\nmetrics = \"nine\"\n{memory}"), &[]);
    assert!(err.contains("[fuse]: key \"metrics\""), "{err}");
}

#[test]
fn relative_mounts_are_directories_of_their_own() {
    for kind in [Kind::Local, Kind::Memory, Kind::S3] {
        let extra = "[[mount]]\nname = \"rel\"\nprotocol = \"relative\"\nparent = \"t\"\npath = \"2026/reports\"\n\
                     [[mount]]\nname = \"ro\"\nprotocol = \"relative\"\nparent = \"t\"\npath = \"2026\"\npermissions = \"readonly\"\n";
        let mut d = Daemon::start_with_toml(kind, &[], extra);
        fs::create_dir_all(d.mnt.join("rel/q1")).unwrap();
        fs::write(d.mnt.join("rel/q1/a.txt"), "A").unwrap();
        assert_eq!(
            fs::read_to_string(d.path("2026/reports/q1/a.txt")).unwrap(),
            "A"
        );
        // (another mount's view of the same object: its cache may be a TTL late)
        std::thread::sleep(Duration::from_millis(1100));
        let ro = d.mnt.join("ro/reports/q1/a.txt");
        assert_eq!(fs::read_to_string(&ro).unwrap(), "A", "{kind:?}");
        let e = fs::write(d.mnt.join("ro/reports/b.txt"), "no").unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES)),
            "{kind:?}: {e}"
        );
        let names: Vec<String> = fs::read_dir(&d.mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.contains(&"rel".to_string()) && names.contains(&"ro".to_string()),
            "{names:?}"
        );
        assert!(d.stop().success());
    }
}

#[test]
fn sigusr1_reports_counters_per_mount_and_failures_are_logged() {
    // (on S3, whose reads and writes the daemon serves: memory files are read and written
    // by the kernel itself, through passthrough)
    let d = Daemon::start(Kind::S3);
    fs::write(d.path("f"), vec![1u8; 10_000]).unwrap();
    assert_eq!(fs::read(d.path("f")).unwrap().len(), 10_000);
    let _ = fs::read(d.path("missing"));
    let e = fs::remove_dir(d.path("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    let open = fs::File::create(d.path("open")).unwrap();
    (&open).write_all(b"pending").unwrap();
    // SAFETY: kill(2) with a valid pid and signal.
    unsafe { libc::kill(d.child.as_ref().unwrap().id() as i32, libc::SIGUSR1) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        let log = d.log_text();
        if let Some(l) = log.lines().find(|l| l.contains("mount t:")) {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stats after SIGUSR1: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for want in [
        "write ",
        "read ",
        "create ",
        "written 10007 B",
        "read 10000 B",
        "1 pending uploads",
    ] {
        assert!(line.contains(want), "stats line lacks {want:?}: {line}");
    }
    assert!(
        d.log_text().contains("mount other: 0 requests"),
        "{}",
        d.log_text()
    );
    drop(open);
}

#[test]
fn special_files_on_local_and_eperm_elsewhere() {
    let d = Daemon::start_with(Kind::Local, &["--allow-other"], |c| c);
    d.sh("mkfifo p && test -p p && mknod c0 c 1 3 && test -c c0 && python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind(\"sock\")' && test -S sock");
    let out = d.sh("stat -c '%F %t,%T' c0");
    assert_eq!(out.trim(), "character special file 1,3");
    // a set-group-ID directory gives its group to what other users create in it
    d.sh("mkdir g && chown 0:4321 g && chmod 2777 g");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fs::set_permissions(d.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let t = d.path("g").display().to_string();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("touch {t}/f && mkdir {t}/d && mkfifo {t}/q"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in ["g/f", "g/d", "g/q"] {
        let md = fs::symlink_metadata(d.path(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 4321), "{p}");
    }
    assert!(fs::metadata(d.path("g/d")).unwrap().mode() & libc::S_ISGID != 0);
    drop(d);
    for k in [Kind::Memory, Kind::S3] {
        let d = Daemon::start(k);
        d.sh("mkfifo -m 0640 p && test -p p && mknod c c 1 3 && test -c c && mknod b b 7 0 && test -b b");
        assert_eq!(
            fs::symlink_metadata(d.path("p")).unwrap().mode() & 0o7777,
            0o640
        );
        let c = fs::symlink_metadata(d.path("c")).unwrap();
        assert_eq!((c.rdev(), c.len()), (libc::makedev(1, 3), 0), "{k:?}");
        d.sh("mv p p2 && test -p p2 && rm p2 c b");
    }
}

/// Symlinks on object backends are objects whose body is the target (s3fs's way).
fn symlinks_are_objects(k: Kind) {
    let d = Daemon::start(k);
    d.sh("mkdir d && echo hi > d/f && ln -s f d/l && ln -s d/f top && test -L d/l");
    assert_eq!(d.sh("readlink d/l && cat d/l top"), "f\nhi\nhi\n");
    assert!(d.sh("ls -l d").contains("l -> f"));
    let e = fs::remove_dir(d.path("d")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    d.sh("mv d/l d/l2 && test -L d/l2 && ! test -e d/l && echo new > d/g && mv d/g d/l2 && ! test -L d/l2 && cat d/l2 >/dev/null");
    assert_eq!(d.sh("cat d/l2"), "new\n");
    d.sh("ln -s f d/l3 && mv d top2 && test -L top2/l3 && readlink top2/l3 && rm -r top2 && ! test -e top2");
    let e = std::os::unix::fs::symlink("x", d.path("top")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    d.sh("rm top && ! test -L top");
}

/// Mode, owner, times, symlinks and FIFOs live with the objects' user metadata on S3, Azure
/// Blob and GCS: a new daemon shows them, and a script made executable runs.
#[test]
fn s3_metadata_survives_a_remount() {
    metadata_survives_a_remount(Kind::S3)
}

#[test]
fn azblob_metadata_survives_a_remount() {
    metadata_survives_a_remount(Kind::Azblob);
    directory_attributes_survive_a_remount(Kind::Azblob)
}

#[test]
fn gcs_metadata_survives_a_remount() {
    metadata_survives_a_remount(Kind::Gcs);
    directory_attributes_survive_a_remount(Kind::Gcs)
}

/// s3s-fs keeps no directory markers, so a directory has nothing to carry its attributes
/// there: `.ci/run` runs this on moto and Ceph RGW (`GENRO_S3_ENDPOINT`, `--include-ignored`).
#[test]
#[ignore = "needs an S3 server with directory markers; .ci/run runs it on moto"]
fn s3_directory_attributes_survive_a_remount() {
    assert!(
        common::external_s3().is_some(),
        "GENRO_S3_ENDPOINT must name a server with directory markers (moto, Ceph RGW)"
    );
    directory_attributes_survive_a_remount(Kind::S3)
}

/// A directory's mode, owner and times live in its marker `d/`: a new daemon shows them,
/// also once the directory has children.
fn directory_attributes_survive_a_remount(k: Kind) {
    let d = Daemon::start(k);
    d.sh(
        "mkdir -m 700 dir && chown 42:43 dir && echo x > dir/f && mkdir -m 750 empty \
         && touch -d '2001-02-03 04:05:06' empty",
    );
    let d = d.remount();
    assert_eq!(
        d.sh("stat -c '%a %u %g' dir && stat -c '%a %Y' empty"),
        "700 42 43\n750 981173106\n"
    );
}

fn metadata_survives_a_remount(k: Kind) {
    use std::os::unix::fs::MetadataExt;
    let d = Daemon::start(k);
    d.sh(
        "printf '#!/bin/sh\necho ran\n' > run.sh && chmod 755 run.sh && chown 1234:5678 run.sh \
          && touch -d '2001-02-03 04:05:06' run.sh && ln -s run.sh link && mkfifo -m 600 fifo \
          && mkdir -m 700 dir && chown 42:43 dir && echo x > dir/f && chmod 604 dir/f",
    );
    let d = d.remount();
    let md = fs::symlink_metadata(d.path("run.sh")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o755);
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_eq!(md.mtime(), 981173106, "{}", d.sh("stat run.sh"));
    assert_eq!(d.sh("./run.sh"), "ran\n");
    assert_eq!(
        d.sh("readlink link && test -p fifo && stat -c %a fifo"),
        "run.sh\n600\n"
    );
    assert_eq!(d.sh("stat -c %a dir/f"), "604\n");
    assert_eq!(d.sh("cat link"), "#!/bin/sh\necho ran\n");
}

/// The temporary-file pattern: open, unlink, then keep using the descriptor. fstat works
/// (no links left), writes read back, ftruncate cuts and grows; nothing comes back under
/// the old name, and the daemon forgets the file at close.
fn unlinked_open_file_keeps_working(k: Kind) {
    let d = Daemon::start(k);
    let p = d.path("tmp");
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .unwrap();
    f.write_all(b"0123456789").unwrap();
    fs::remove_file(&p).unwrap();
    assert_eq!(
        fs::metadata(&p).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    f.write_all(b"abc").unwrap();
    let m = f.metadata().unwrap();
    assert_eq!(m.len(), 13, "{k:?}: fstat of the unlinked file");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(m.nlink(), 0, "{k:?}: an unlinked file has no links");
    f.set_len(4).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 4, "{k:?}: ftruncate");
    f.set_len(6).unwrap();
    let mut back = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"0123\0\0", "{k:?}");
    drop(f);
    assert_eq!(
        fs::metadata(&p).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    assert!(
        fs::read_dir(d.path("")).unwrap().next().is_none(),
        "{k:?}: nothing left"
    );
}

/// S3 with `cache_ttl`: the daemon answers listings and absences from what it learned and
/// changed itself (no request), so an object written behind its back shows only once the
/// TTL ran out, while everything done through the mount shows at once.
#[test]
fn s3_cache_ttl_trusts_own_view_until_it_expires() {
    let ttl = Duration::from_secs(3);
    let d = Daemon::start_with(Kind::S3, &[], |c| c.cache_ttl(ttl));
    fs::create_dir(d.path("d")).unwrap();
    let listed = |d: &Daemon| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d.path("d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert!(listed(&d).is_empty());
    let t0 = std::time::Instant::now();
    fs::write(d.path("d/mine"), b"through the mount").unwrap();
    d.backend_write("d/theirs", b"behind");
    // Our own change shows at once; theirs not while the listing is trusted.
    assert_eq!(listed(&d), ["mine"]);
    let e = fs::metadata(d.path("d/theirs")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    assert!(
        t0.elapsed() < ttl,
        "the checks above took longer than the TTL"
    );
    std::thread::sleep(ttl + Duration::from_millis(500));
    assert_eq!(listed(&d), ["mine", "theirs"]);
    assert_eq!(fs::read(d.path("d/theirs")).unwrap(), b"behind");
    // Removals through the mount show at once too.
    fs::remove_file(d.path("d/theirs")).unwrap();
    assert_eq!(listed(&d), ["mine"]);
    assert_eq!(
        fs::metadata(d.path("d/theirs")).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    // An object replaced behind the daemon while its attributes are trusted. A small one,
    // whose lookup brought its bytes with its size in one response, is read whole as that
    // lookup found it, and as it is now once the TTL ran out.
    d.backend_write("e/changing", b"0123456789");
    assert_eq!(fs::metadata(d.path("e/changing")).unwrap().len(), 10);
    d.backend_write("e/changing", b"abc");
    assert_eq!(fs::read(d.path("e/changing")).unwrap(), b"0123456789");
    // A larger one, replaced by a shorter one, is read as it is now, not EIO (the failed
    // ranged read makes the daemon ask again).
    let big = vec![7u8; 300 << 10];
    d.backend_write("e/big", &big);
    assert_eq!(
        fs::metadata(d.path("e/big")).unwrap().len(),
        big.len() as u64
    );
    d.backend_write("e/big", b"abc");
    assert_eq!(fs::read(d.path("e/big")).unwrap(), b"abc");
    std::thread::sleep(ttl + Duration::from_millis(500));
    assert_eq!(fs::read(d.path("e/changing")).unwrap(), b"abc");
}

/// A lookup that finds nothing is kept by the kernel for the negative TTL (a repeated stat of
/// a missing name costs no request); a name made on the host meanwhile shows once it ran out,
/// at once with `--negative-ttl 0`, and a create through the mount is never refused by it.
#[test]
fn negative_entries_last_the_negative_ttl() {
    for (flags, wait) in [
        (
            &["--negative-ttl", "2"][..],
            Some(Duration::from_millis(2500)),
        ),
        (&["--negative-ttl", "0"][..], None),
    ] {
        let d = Daemon::start_with(Kind::Local, flags, |c| c);
        let genro_storage::Backend::Local { root, .. } = d.config.backend.clone() else {
            unreachable!()
        };
        let gone = |p: &str| fs::metadata(d.path(p)).unwrap_err().raw_os_error();
        assert_eq!(gone("host"), Some(libc::ENOENT));
        fs::write(root.join("host"), b"made on the host").unwrap();
        if let Some(w) = wait {
            assert_eq!(gone("host"), Some(libc::ENOENT), "{flags:?}");
            std::thread::sleep(w);
        }
        assert_eq!(fs::read(d.path("host")).unwrap(), b"made on the host");
        // a create right after a failed lookup (the negative entry is replaced)
        assert_eq!(gone("mine"), Some(libc::ENOENT));
        fs::write(d.path("mine"), b"x").unwrap();
        assert_eq!(fs::read(root.join("mine")).unwrap(), b"x");
        // and a create of a name made on the host meanwhile opens that file (no O_EXCL)
        assert_eq!(gone("both"), Some(libc::ENOENT));
        fs::write(root.join("both"), b"host ").unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(d.path("both"))
            .unwrap();
        f.write_all(b"mount").unwrap();
        drop(f);
        assert_eq!(fs::read(root.join("both")).unwrap(), b"host mount");
    }
}

/// The daemon's resident memory, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// A memory mount holds at most its `max_size`: a write past it is ENOSPC and what was
/// written before reads back whole; statfs shows the budget; a file beyond it is EFBIG; a
/// hole takes no memory, read or not.
#[test]
fn a_memory_mount_keeps_to_its_budget_and_holes_take_no_memory() {
    let d = Daemon::start_with(Kind::Memory, &[], |c| c.max_size(64 << 20));
    let block = vec![7u8; 1 << 20];
    let mut written = Vec::new();
    let mut refused = None;
    for i in 0..100 {
        let p = d.path(&format!("f{i}"));
        match fs::write(
            &p,
            [&block[..], &block[..], &block[..], &block[..]].concat(),
        ) {
            Ok(()) => written.push(p),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("100 × 4 MiB went into a 64 MiB mount");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    assert!(
        written.len() >= 12 && written.len() <= 16,
        "{} files fit",
        written.len()
    );
    for p in &written {
        let got = fs::read(p).unwrap();
        assert!(got.len() == 4 << 20 && got.iter().all(|b| *b == 7), "{p:?}");
    }
    let st = nix_statvfs(&d.path(""));
    assert_eq!(st.0 * st.1, 64 << 20, "statfs shows the budget");
    assert!(st.2 * st.1 >= 48 << 20, "and what is used");
    // beyond the budget a file is EFBIG, as beyond any filesystem's largest file
    let e = d.sh("truncate -s 999999999999999 big 2>&1 || true");
    assert!(e.contains("too large"), "{e}");
    for p in &written {
        fs::remove_file(p).unwrap();
    }
    // a 1 GiB hole, but for 4 KiB: neither writing nor reading it takes memory (the budget
    // is 64 MiB: it would not even fit)
    let pid = d.child.as_ref().unwrap().id();
    let before = rss_of(pid);
    d.sh(
        "truncate -s 1G hole && printf x | dd of=hole bs=1 seek=536870912 conv=notrunc status=none",
    );
    let sum = d.sh("cat hole | wc -c");
    assert_eq!(sum.trim(), "1073741824");
    assert_eq!(
        d.sh("dd if=hole bs=1 skip=536870912 count=1 status=none"),
        "x"
    );
    let grew = rss_of(pid).saturating_sub(before);
    assert!(
        grew < 16 << 20,
        "reading a 1 GiB hole raised RSS by {grew} bytes"
    );
    // a 4 TiB sparse file written in its middle: the daemon writes on the memory file the
    // store keeps (it does not fetch 4 TiB of holes first)
    d.sh("truncate -s 4T huge && printf y | dd of=huge bs=1 seek=2199023255552 conv=notrunc status=none");
    assert_eq!(
        d.sh("dd if=huge bs=1 skip=2199023255552 count=1 status=none"),
        "y"
    );
    d.sh("rm huge");
    // a reservation takes from the budget as a write does
    let out = d.sh("fallocate -l 100M resv 2>&1 || echo refused");
    assert!(
        out.contains("No space left") && out.contains("refused"),
        "{out}"
    );
    d.sh("fallocate -l 4M resv && test $(stat -c %s resv) = 4194304 && rm resv");
    // one file written past the budget before its first close: what it has staged counts
    let out = d.sh("head -c 100M /dev/zero 2>&1 >one || echo refused");
    assert!(out.contains("No space left"), "{out}");
    d.sh("rm -f one");
    let st = nix_statvfs(&d.path(""));
    assert!(
        st.2 * st.1 < 1 << 20,
        "the staged copy's bytes are returned: {} used",
        st.2 * st.1
    );
}

#[test]
fn object_staging_keeps_to_cache_max_size() {
    // an S3 mount stages what is written in the cache dir: at most --cache-max-size of it
    let d = Daemon::start_with(Kind::S3, &["--cache-max-size", "8MiB"], |c| c);
    let out = d.sh("head -c 20M /dev/urandom 2>&1 >big || echo refused");
    assert!(out.contains("No space left"), "{out}");
    assert!(out.contains("refused"), "{out}");
    d.sh("rm -f big");
    // the refused file's staged bytes were returned: files within the budget still fit
    for i in 0..3 {
        d.sh(&format!("head -c 4M /dev/urandom > f{i}"));
    }
    assert_eq!(d.sh("cat f0 f1 f2 | wc -c").trim(), "12582912");
}

/// (f_blocks, f_frsize, blocks used) of a path.
fn nix_statvfs(p: &std::path::Path) -> (u64, u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    (s.f_blocks, s.f_frsize, s.f_blocks - s.f_bfree)
}

/// fallocate and copy_file_range reach the host file on local mounts; on object backends
/// posix_fallocate grows the file, other modes are EOPNOTSUPP and copy_file_range falls back
/// to the kernel's copy.
#[test]
fn fallocate_and_copy_file_range() {
    for kind in [Kind::Local, Kind::Memory] {
        let d = Daemon::start(kind);
        d.sh("fallocate -l 1M f && test $(stat -c %s f) = 1048576");
        // punch and zero ranges: on the host file, or on a memory file's staged copy
        fs::write(d.path("p"), vec![7u8; 3 * 4096]).unwrap();
        d.sh("fallocate -p -o 4096 -l 4096 p && fallocate -z -o 8192 -l 8192 p");
        let got = fs::read(d.path("p")).unwrap();
        assert_eq!(got.len(), 4 * 4096, "{kind:?}: zero range grows the file");
        assert!(got[..4096].iter().all(|b| *b == 7), "{kind:?}");
        assert!(got[4096..].iter().all(|b| *b == 0), "{kind:?}");
        let collapsed = d.sh("fallocate -c -o 0 -l 4096 p 2>&1 || true");
        assert!(collapsed.contains("not supported"), "{kind:?}: {collapsed}");
        fs::write(d.path("src"), b"0123456789".repeat(1000)).unwrap();
        let out = d.sh(
            "python3 -c \"import os; a=os.open('src', os.O_RDONLY); b=os.open('dst', os.O_WRONLY|os.O_CREAT, 0o644); \
             n=os.copy_file_range(a, b, 10000, 0, 0); os.close(b); print(n)\"",
        );
        assert_eq!(out.trim(), "10000", "{kind:?}");
        assert_eq!(fs::read(d.path("dst")).unwrap(), b"0123456789".repeat(1000));
    }
}

/// The mount shows as type fuse.genro-storage with the source `-o fsname=` names (what
/// xfstests, `findmnt -t` and `df` go by).
#[test]
fn the_mount_is_typed_and_named() {
    let d = Daemon::start_with(Kind::Memory, &["-o", "fsname=genro-test-source"], |c| c);
    let want = d.mnt.to_str().unwrap().to_string();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
        .expect("the mount is in mountinfo");
    assert!(
        line.contains(" - fuse.genro-storage genro-test-source "),
        "{line}"
    );
}

/// A setgid directory passes its group on to what is made in it, and its setgid bit to new
/// directories, on object backends as on every POSIX filesystem.
#[test]
fn a_setgid_directory_passes_its_group_on() {
    let d = Daemon::start(Kind::Memory);
    let out = d.sh(
        "mkdir d && chgrp daemon d && chmod 2775 d && mkdir d/sub && touch d/f && \
         stat -c '%A %G' d/sub d/f",
    );
    assert_eq!(out, "drwxr-sr-x daemon\n-rw-r--r-- daemon\n", "{out}");
}

/// A WebDAV mount through the daemon with ordinary tools: directories, small and large
/// files (uploaded in one request at close), rename, listing and removal.
#[test]
fn webdav_through_the_daemon() {
    let d = Daemon::start(Kind::Webdav);
    let out = d.sh(
        "mkdir -p a/b && echo hi > a/b/f && cat a/b/f && mv a/b/f a/g && ls a && \
         head -c 12M /dev/urandom > src.bin && cp src.bin a/big && cmp src.bin a/big && \
         stat -c %s a/big && rm -r a && ls",
    );
    assert_eq!(out, "hi\nb\ng\n12582912\nsrc.bin\n", "{out}");
}

/// The ordinary-tool cases (scripts/tool-cases.sh) on a mount of `k`: every case passes but
/// those in `cannot`, what the README's semantics table says the backend cannot keep, and
/// those fail (so the table stays true).
fn tool_cases(k: Kind, cannot: &[&str]) {
    let d = Daemon::start(k);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tool-cases.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(d.mnt.join("t"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut failed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL  "))
        .map(|l| l.split(':').next().unwrap_or(l))
        .collect();
    failed.sort_unstable();
    let mut want = cannot.to_vec();
    want.sort_unstable();
    assert_eq!(failed, want, "{k:?}:\n{text}\ndaemon: {}", d.log_text());
    assert!(text.contains(" passed"), "{text}");
}

/// What a backend without POSIX attributes (WebDAV, SFTP, FTP) cannot do: chmod to another
/// mode and a time other than now fail with EOPNOTSUPP (cp -a, touch -d, tar x, gzip,
/// rsync -a set them); symlinks fail with EPERM.
const NO_ATTRIBUTES: &[&str] = &[
    "cp_a",
    "touch_date",
    "tar_x",
    "tar_gz",
    "chmod",
    "gzip",
    "ln_s",
    "rsync_a",
];

#[test]
fn tool_cases_on_local() {
    tool_cases(Kind::Local, &[])
}

#[test]
fn tool_cases_on_memory() {
    tool_cases(Kind::Memory, &[])
}

/// s3s-fs answers 500 to a HEAD of a name that is a directory on its disk, and each stat
/// then waits out the retries: the cases take minutes there. `.ci/run` runs this on moto and
/// Ceph RGW (`GENRO_S3_ENDPOINT`, `--include-ignored`).
#[test]
#[ignore = "slow on s3s-fs; .ci/run runs it on moto and Ceph RGW"]
fn tool_cases_on_s3() {
    assert!(
        common::external_s3().is_some(),
        "GENRO_S3_ENDPOINT must name the S3 server (moto, Ceph RGW)"
    );
    tool_cases(Kind::S3, &[])
}

#[test]
fn tool_cases_on_webdav() {
    tool_cases(Kind::Webdav, NO_ATTRIBUTES)
}

#[test]
fn tool_cases_on_sftp() {
    tool_cases(Kind::Sftp, NO_ATTRIBUTES)
}

#[test]
fn tool_cases_on_ftp() {
    tool_cases(Kind::Ftp, NO_ATTRIBUTES)
}

#[test]
fn tool_cases_on_azblob() {
    tool_cases(Kind::Azblob, &[])
}

#[test]
fn tool_cases_on_gcs() {
    tool_cases(Kind::Gcs, &[])
}

//! The command line: `--help`, `--version`, `config check` on a mixed config, `ls`, `cat`,
//! `stat`, `mkdir`, `rm`, `mv` and `cp -r` between mounts with each skip rule, exit statuses,
//! and mount(8)'s helper convention as an fstab line uses it.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_genro-storage");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A config with a local mount `data`, a memory mount `mem` and an S3 mount `s3` on the
/// tests' server, in a fresh directory.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("data")).unwrap();
    let prefix = format!("cli-{}", std::process::id());
    fs::write(
        dir.path().join("mounts.toml"),
        format!(
            "[[mount]]\nname = \"data\"\nprotocol = \"local\"\nroot_path = \"data\"\n\n\
             [[mount]]\nname = \"mem\"\nprotocol = \"memory\"\npermissions = \"readonly\"\n\n\
             [[mount]]\nname = \"s3\"\nprotocol = \"s3\"\nbucket = \"{}\"\nprefix = \"{prefix}\"\n\
             endpoint_url = \"{}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
            common::BUCKET,
            common::s3_endpoint(),
            common::ACCESS_KEY,
            common::SECRET_KEY
        ),
    )
    .unwrap();
    // it holds a secret: closed to group and others, or it is refused
    fs::set_permissions(
        dir.path().join("mounts.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    dir
}

#[test]
fn help_version_and_config_check() {
    let d = setup();
    let help = ok(d.path(), &["--help"]);
    for want in ["Examples:", "mount", "cp", "config", "Exit status"] {
        assert!(help.contains(want), "--help lacks {want}: {help}");
    }
    assert!(ok(d.path(), &["cp", "--help"]).contains("--skip"));
    assert!(ok(d.path(), &["--version"]).starts_with("genro-storage "));
    let check = ok(d.path(), &["config", "check"]);
    for want in [
        "valid, 3 mount(s)",
        "data  local",
        "native, atomic",
        "mem  memory",
        "native (directories too, at once)",
        "changes              refused (EROFS)",
        "s3  s3",
        "server-side copy + delete",
        "symlinks, FIFOs, sockets, devices as objects carrying their type; hard links no (EPERM)",
    ] {
        assert!(
            check.contains(want),
            "config check lacks {want:?}:\n{check}"
        );
    }
    fs::write(
        d.path().join("bad.toml"),
        "[[mount]]\nname = \"x\"\nprotocol = \"smb\"\n",
    )
    .unwrap();
    let out = run(d.path(), &["config", "check", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.toml:3: mount \"x\": key \"protocol\"")
    );
    let out = run(d.path(), &["ls"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing argument is a usage error"
    );
}

#[test]
fn file_commands_and_exit_statuses() {
    let d = setup();
    let p = d.path();
    fs::write(p.join("local.txt"), "hello\n").unwrap();
    ok(p, &["cp", "local.txt", "data:a/b.txt"]);
    ok(p, &["mkdir", "-p", "data:x/y"]);
    assert_eq!(ok(p, &["cat", "data:a/b.txt"]), "hello\n");
    assert_eq!(ok(p, &["ls", "data:"]), "a/\nx/\n");
    let long = ok(p, &["ls", "-l", "data:a"]);
    assert!(
        long.starts_with("-            6 ") && long.ends_with(" b.txt\n"),
        "{long}"
    );
    let st = ok(p, &["stat", "data:a/b.txt"]);
    assert!(st.contains("type: file") && st.contains("size: 6"), "{st}");
    ok(p, &["mv", "data:a/b.txt", "data:x"]);
    assert!(p.join("data/x/b.txt").exists());
    // failures: status 1, one line naming the path; the other arguments still done
    let out = run(p, &["cat", "data:nope", "data:x/b.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"hello\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data:nope") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        run(p, &["rm", "data:x"]).status.code(),
        Some(1),
        "a directory without -r"
    );
    assert_eq!(
        run(p, &["mkdir", "data:q/r"]).status.code(),
        Some(1),
        "no parent without -p"
    );
    assert_eq!(run(p, &["ls", "nomount:x"]).status.code(), Some(1));
    assert_eq!(run(p, &["rm", "-f", "data:missing"]).status.code(), Some(0));
    assert_eq!(
        run(p, &["mkdir", "mem:d"]).status.code(),
        Some(1),
        "a readonly mount"
    );
    ok(p, &["rm", "-r", "data:x"]);
    assert!(!p.join("data/x").exists());
}

#[test]
fn cp_r_between_mounts_with_each_skip_rule() {
    let d = setup();
    let p = d.path();
    let src = p.join("data/tree");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), "aaa").unwrap();
    fs::write(src.join("b.tmp"), "tmp").unwrap();
    fs::write(src.join("sub/c.bin"), vec![7u8; 200_000]).unwrap();
    // local → S3 (a new name: the tree itself; an existing directory: into it, as cp does),
    // piped: quiet (no progress bar)
    let out = run(p, &["cp", "-r", "data:tree", "s3:tree"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "cp wrote to a pipe: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok(p, &["cat", "s3:tree/a.txt"]), "aaa");
    // S3 → local, with an exclude glob
    ok(
        p,
        &["cp", "-r", "--exclude", "*.tmp", "s3:tree", "data:back"],
    );
    assert!(p.join("data/back/sub/c.bin").exists() && !p.join("data/back/b.tmp").exists());
    // skip rules: change a.txt (same size) and see which copy it
    fs::write(src.join("a.txt"), "AAA").unwrap();
    let cat = |p: &Path| ok(p, &["cat", "s3:tree/a.txt"]);
    for (rule, copied) in [
        ("exists", false),
        ("size", false),
        ("hash", true),
        ("never", true),
    ] {
        ok(p, &["cp", "-r", "data:tree", "s3:"]); // reset: same content everywhere
        fs::write(src.join("a.txt"), rule[..1].repeat(3)).unwrap();
        let before = cat(p);
        ok(p, &["cp", "-r", "--skip", rule, "data:tree", "s3:"]);
        let after = cat(p);
        assert_eq!(after != before, copied, "--skip {rule}: {before} → {after}");
    }
    // on a terminal (script(1) gives it one): the progress bar and a summary
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{BIN} cp -r data:tree s3:onterm"),
            "/dev/null",
        ])
        .current_dir(p)
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("ETA") && tty.contains("3/3 files"),
        "no progress bar: {tty:?}"
    );
    assert!(tty.contains("3 copied, 0 skipped, 0 failed"), "{tty:?}");
    let out = run(p, &["cp", "-r", "--skip", "maybe", "data:tree", "s3:t"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never, exists, size, hash"));
    let out = run(p, &["cp", "data:tree", "s3:t2"]);
    assert_eq!(out.status.code(), Some(1), "a directory without -r");
}

#[test]
fn fstab_helper_mounts_in_the_background() {
    let d = setup();
    let p = d.path();
    let mnt = p.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _unmount = common::UnmountOnDrop(mnt.clone());
    // mount(8) runs /sbin/mount.fuse.genro-storage SPEC DIR -o OPTIONS; fuse3's mount.fuse3
    // runs `genro-storage SPEC DIR -o OPTIONS`. Both forms, the second after an unmount.
    let link = p.join("mount.fuse.genro-storage");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let cfg = p.join("mounts.toml");
    for helper in [link.as_path(), Path::new(BIN)] {
        let out = Command::new(helper)
            .arg(&cfg)
            .arg(&mnt)
            .args([
                "-o",
                "rw,noauto,_netdev,x-systemd.automount,attr_ttl=2,allow_other",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helper: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            common::is_mounted(&mnt),
            "the helper returned before the mount was up"
        );
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.contains(mnt.to_str().unwrap()))
            .unwrap();
        assert!(
            line.contains("allow_other") && line.contains("genro-storage"),
            "{line}"
        );
        fs::write(mnt.join("data/via-fstab.txt"), "ok").unwrap();
        assert_eq!(
            fs::read_to_string(p.join("data/via-fstab.txt")).unwrap(),
            "ok"
        );
        // umount(8) ends the daemon
        let c = std::ffi::CString::new(mnt.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::umount2(c.as_ptr(), 0) }, 0);
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(25));
            !Command::new("pgrep")
                .args(["-f", mnt.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        });
        assert!(gone, "the daemon outlived umount");
    }
    // A helper that cannot mount says why and fails.
    let out = Command::new(&link)
        .arg(p.join("nope.toml"))
        .arg(&mnt)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

/// A daemon whose stderr is a pipe nobody reads any more (a helper or a shell that went
/// away) drops its log lines and goes on serving: tracing's own report of a failed write
/// (`eprintln!`, which panics on a closed pipe) took the daemon down at its first line.
#[test]
fn a_daemon_whose_stderr_closed_goes_on_serving() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::create_dir(p.join("data")).unwrap();
    fs::create_dir(p.join("mnt")).unwrap();
    let cfg = p.join("mounts.toml");
    fs::write(
        &cfg,
        format!(
            "[[mount]]\nname = \"data\"\nprotocol = \"local\"\nroot_path = \"{}\"\n",
            p.join("data").display()
        ),
    )
    .unwrap();
    let mnt = p.join("mnt");
    let mut child = Command::new(BIN)
        .arg("mount")
        .arg(&mnt)
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let up = (0..400).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        common::is_mounted(&mnt)
    });
    assert!(up, "not mounted");
    for i in 0..20 {
        let f = mnt.join(format!("data/f{i}"));
        fs::write(&f, "kept").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "kept");
        assert!(fs::metadata(mnt.join(format!("data/missing{i}"))).is_err());
    }
    assert!(child.try_wait().unwrap().is_none(), "the daemon died");
    assert_eq!(fs::read_to_string(p.join("data/f19")).unwrap(), "kept");
    let c = std::ffi::CString::new(mnt.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), 0) }, 0);
    assert!(child.wait().unwrap().success());
}

/// The systemd unit's ExecStart, with its paths moved to a temp dir, starts the daemon; with
/// the journal on stderr (JOURNAL_STREAM) each line carries its priority; SIGTERM (the
/// unit's KillSignal) stops it cleanly.
#[test]
fn systemd_unit_starts_logs_for_the_journal_and_stops() {
    let d = setup();
    let p = d.path();
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/genro-storage.service"
    ))
    .unwrap();
    assert!(unit.contains("KillSignal=SIGTERM"));
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mnt = p.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _unmount = common::UnmountOnDrop(mnt.clone());
    let cfg = p.join("mounts.toml");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            "/etc/genro-storage/mounts.toml" => cfg.to_str().unwrap().to_string(),
            "/srv/storage" => mnt.to_str().unwrap().to_string(),
            a => a.to_string(),
        })
        .collect();
    let log = p.join("journal.log");
    let mut child = Command::new(BIN)
        .args(&args)
        .env("JOURNAL_STREAM", "8:12345")
        .env_remove("RUST_LOG")
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !common::is_mounted(&mnt) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = fs::read(mnt.join("data/missing"));
    // SAFETY: kill(2) with a valid pid and signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let text = fs::read_to_string(&log).unwrap();
    let mounted = text
        .lines()
        .find(|l| l.contains("mounted"))
        .expect("a 'mounted' line");
    assert!(
        mounted.starts_with("<6>genro_storage"),
        "not journal style: {mounted:?}"
    );
    assert!(
        !text.contains('\x1b'),
        "colour codes in the journal: {text:?}"
    );
}

//! Hostile input: malformed configs (each refused with one line naming the culprit), hostile
//! names through a real mount, symlinks in a local root that point outside it, and other
//! users on a mount with and without `--allow-other`.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{Daemon, Kind};

const BIN: &str = env!("CARGO_BIN_EXE_genro-storage");

#[test]
fn malformed_configs_are_refused_with_one_line_naming_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let m = "[[mount]]\nname = \"m\"\n";
    let cases: Vec<(String, &str)> = vec![
        ("[[mount]\nname = \"m\"\n".into(), "m.toml:1"),
        (
            "[[mount]]\nprotocol = \"memory\"\n".into(),
            "key \"name\": missing",
        ),
        (
            "[[mount]]\nname = 7\nprotocol = \"memory\"\n".into(),
            "key \"name\": expected a string",
        ),
        (
            "[[mount]]\nname = \"a b\"\nprotocol = \"memory\"\n".into(),
            "key \"name\"",
        ),
        (
            "[[mount]]\nname = \"\"\nprotocol = \"memory\"\n".into(),
            "key \"name\"",
        ),
        (
            "[[mount]]\nname = \"../x\"\nprotocol = \"memory\"\n".into(),
            "key \"name\"",
        ),
        (m.to_string(), "mount \"m\": key \"protocol\": missing"),
        (
            format!("{m}protocol = \"smb\"\n"),
            "m.toml:3: mount \"m\": key \"protocol\": unknown protocol \"smb\"",
        ),
        (
            format!("{m}protocol = \"memory\"\nroot_path = \"/tmp\"\n"),
            "m.toml:4: mount \"m\": key \"root_path\": unknown key",
        ),
        (
            format!("{m}protocol = \"local\"\n"),
            "mount \"m\": key \"root_path\": missing",
        ),
        (
            format!("{m}protocol = \"local\"\nroot_path = \"/nonexistent/genro\"\n"),
            "m.toml:4: mount \"m\": key \"root_path\"",
        ),
        (
            format!(
                "{m}protocol = \"local\"\nroot_path = \"{}\"\n",
                file.display()
            ),
            "key \"root_path\"",
        ),
        (
            format!("{m}protocol = \"local\"\nroot_path = \"/tmp\"\ncreate = \"yes\"\n"),
            "m.toml:5: mount \"m\": key \"create\": expected a boolean",
        ),
        (
            format!("{m}protocol = \"s3\"\n"),
            "mount \"m\": key \"bucket\": missing",
        ),
        (
            format!("{m}protocol = \"s3\"\nbucket = \"b\"\ntimeout = -1\n"),
            "m.toml:5: mount \"m\": key \"timeout\"",
        ),
        (
            format!("{m}protocol = \"s3\"\nbucket = \"b\"\nretries = 100\n"),
            "m.toml:5: mount \"m\": key \"retries\"",
        ),
        (
            format!("{m}protocol = \"s3\"\nbucket = \"b\"\nmax_in_flight = 0\n"),
            "m.toml:5: mount \"m\": key \"max_in_flight\": expected a whole number from 1 to 4096, found 0",
        ),
        (
            format!("{m}protocol = \"memory\"\nmax_in_flight = 8\n"),
            "key \"max_in_flight\": unknown key for protocol memory",
        ),
        (
            format!("{m}protocol = \"s3\"\nbucket = \"b\"\ntimeout = \"1s\"\n"),
            "key \"timeout\": expected seconds",
        ),
        (
            format!("{m}protocol = \"s3\"\nbucket = \"b\"\ncache_ttl = -5\n"),
            "m.toml:5: mount \"m\": key \"cache_ttl\": -5 is out of range",
        ),
        (
            format!("{m}protocol = \"s3\"\nbucket = \"b\"\ncache_ttl = \"5m\"\n"),
            "key \"cache_ttl\": expected seconds",
        ),
        (
            format!("{m}protocol = \"local\"\nroot_path = \"/tmp\"\ncache_ttl = 5\n"),
            "key \"cache_ttl\": unknown key for protocol local",
        ),
        (
            format!("{m}protocol = \"memory\"\npermissions = \"root\"\n"),
            "m.toml:4: mount \"m\": key \"permissions\"",
        ),
        (
            format!("{m}protocol = \"memory\"\n[[mount]]\nname = \"m\"\nprotocol = \"memory\"\n"),
            "m.toml:5: mount \"m\": key \"name\": duplicate",
        ),
        ("[fuse]\nattr_ttl = \"soon\"\n".into(), "[fuse]"),
        ("[fuse]\nthreads = 1\nbogus = 2\n".into(), "bogus"),
        ("[mounts]\n".into(), "mounts"),
        ("\u{0}\u{1}binary".into(), "m.toml"),
    ];
    assert!(cases.len() >= 15);
    let cfg = dir.path().join("m.toml");
    for (text, culprit) in &cases {
        fs::write(&cfg, text).unwrap();
        let out = Command::new(BIN)
            .args(["mount", dir.path().to_str().unwrap(), "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{text:?} was not refused: {err}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{text:?}: not one line: {err}"
        );
        assert!(
            err.contains(culprit),
            "{text:?}: {err:?} does not name {culprit:?}"
        );
    }
}

#[test]
fn hostile_names_through_the_mount() {
    for kind in [Kind::Local, Kind::Memory] {
        let d = Daemon::start(kind);
        let long = "x".repeat(256);
        let e = fs::write(d.path(&long), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG), "{kind:?}");
        fs::write(d.path(&"y".repeat(255)), "ok").unwrap();
        // A NUL never reaches the daemon: the C library refuses it.
        assert!(fs::write(d.path("a\0b"), "x").is_err());
        // `..` is resolved by the kernel inside the mount tree; it reaches the other mount.
        fs::write(d.path("../other/dotdot"), "x").unwrap();
        assert!(d.mnt.join("other/dotdot").exists());
        assert!(d.mnt.join("t/../../").canonicalize().unwrap() != d.mnt);
        // Non-UTF-8 names fail with a clear errno and create nothing.
        let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
        let e = fs::write(d.mnt.join("t").join(bad), "x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{kind:?}");
        assert_eq!(fs::read_dir(d.path("")).unwrap().count(), 1, "{kind:?}");
    }
}

#[test]
fn symlinks_to_outside_the_root_are_never_followed_by_the_daemon() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "secret").unwrap();
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let before = fs::metadata(outside.path()).unwrap();
    let d = Daemon::start(Kind::Local);
    let genro_storage::Backend::Local { root, .. } = &d.config.backend else {
        unreachable!()
    };
    fs::create_dir(root.join("dir")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("dir/abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", root.join("dir/up")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.join("file")).unwrap();

    // The links show as links; changes to a link never reach what it points to.
    assert!(fs::symlink_metadata(d.path("dir/abs"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(d.path("dir/abs")).unwrap(), outside.path());
    std::os::unix::fs::lchown(d.path("dir/abs"), Some(4321), Some(4321)).unwrap();
    let e = Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg("2001-01-01")
        .arg(d.path("file"))
        .status()
        .unwrap();
    assert!(e.success());
    let after = fs::metadata(outside.path()).unwrap();
    assert_eq!((after.uid(), after.mode()), (before.uid(), before.mode()));
    assert!(fs::metadata(outside.path().join("secret")).unwrap().mtime() > 978_307_200);
    // O_NOFOLLOW on the link is ELOOP, as on any filesystem.
    use std::os::unix::fs::OpenOptionsExt;
    let e = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(d.path("file"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    // rm -r removes the links, never what they point to.
    d.sh("rm -r dir file");
    assert_eq!(
        fs::read_to_string(outside.path().join("secret")).unwrap(),
        "secret"
    );
    // The library refuses to go through them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = d.backend_storage().await;
        std::os::unix::fs::symlink(outside.path(), root.join("abs")).unwrap();
        assert!(s.node("t:abs/secret").unwrap().read().await.is_err());
        assert!(s.node("t:abs/new").unwrap().write_text("x").await.is_err());
        assert!(!outside.path().join("new").exists());
    });
}

/// Run `script` as user and group 65534 (nobody); returns (success, stderr).
fn as_nobody(script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .uid(65534)
        .gid(65534)
        .current_dir("/")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mount_options(d: &Daemon) -> String {
    let want = d.mnt.to_str().unwrap().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .unwrap()
        .to_string()
}

#[test]
fn other_users_are_kept_out_by_default_and_checked_with_allow_other() {
    for kind in [Kind::Local, Kind::Memory] {
        // Default: only the user who mounted gets in.
        let d = Daemon::start(kind);
        fs::set_permissions(d.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let opts = mount_options(&d);
        assert!(
            !opts.contains("allow_other") && !opts.contains("default_permissions"),
            "{opts}"
        );
        fs::write(d.path("public"), "public").unwrap();
        let (ok, err) = as_nobody(&format!("cat {}", d.path("public").display()));
        assert!(!ok, "{kind:?}: another user got in without --allow-other");
        assert!(err.contains("Permission denied"), "{err}");
        drop(d);

        // --allow-other: others get in, and the kernel checks the mode bits.
        let d = Daemon::start_with(kind, &["--allow-other"], |c| c);
        fs::set_permissions(d.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let opts = mount_options(&d);
        assert!(
            opts.contains("default_permissions") && opts.contains("allow_other"),
            "{opts}"
        );
        fs::write(d.path("public"), "public").unwrap();
        fs::write(d.path("private"), "private").unwrap();
        fs::set_permissions(d.path("private"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(d.path("public"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::create_dir(d.path("drop")).unwrap();
        fs::set_permissions(d.path("drop"), fs::Permissions::from_mode(0o777)).unwrap();
        let t = d.path("").display().to_string();
        assert!(
            as_nobody(&format!("cat {t}/public")).0,
            "{kind:?}: 0644 unreadable"
        );
        let (ok, err) = as_nobody(&format!("cat {t}/private"));
        assert!(
            !ok && err.contains("Permission denied"),
            "{kind:?}: 0600 read by another user: {err}"
        );
        let (ok, err) = as_nobody(&format!("echo x >> {t}/public"));
        assert!(
            !ok && err.contains("Permission denied"),
            "{kind:?}: 0644 written by another user: {err}"
        );
        let (ok, err) = as_nobody(&format!("touch {t}/mine"));
        assert!(
            !ok && err.contains("Permission denied"),
            "{kind:?}: created in a 0755 root-owned directory: {err}"
        );
        let (ok, err) = as_nobody(&format!("chmod 666 {t}/public"));
        assert!(
            !ok && err.contains("Operation not permitted"),
            "{kind:?}: chmod by a non-owner: {err}"
        );
        // What another user creates is theirs.
        let (ok, err) = as_nobody(&format!("echo hi > {t}/drop/mine && mkdir {t}/drop/sub"));
        assert!(ok, "{kind:?}: {err}");
        for p in ["drop/mine", "drop/sub"] {
            let md = fs::metadata(d.path(p)).unwrap();
            assert_eq!(
                (md.uid(), md.gid()),
                (65534, 65534),
                "{kind:?}: owner of {p}"
            );
        }
        assert!(as_nobody(&format!("chmod 600 {t}/drop/mine && cat {t}/drop/mine")).0);
    }
}

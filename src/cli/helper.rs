//! mount(8)'s helper convention, for `/etc/fstab` lines such as
//! `/etc/genro-storage/mounts.toml  /srv/storage  fuse.genro-storage  allow_other,attr_ttl=2  0 0`:
//! `genro-storage CONFIG MOUNTPOINT [-o OPTIONS] [-f] [-n] [-s] [-v]`, either through fuse3's
//! `mount.fuse3` (which runs the program named by the subtype) or through a link named
//! `mount.fuse.genro-storage` in `/sbin`. The helper starts the daemon in the background,
//! returns 0 once the mount is up, or the daemon's own failure when it cannot mount.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{EXIT_FAILED, EXIT_USAGE};

/// Options mount(8) and systemd use for themselves, never meant for the filesystem.
fn is_mount8_option(o: &str) -> bool {
    matches!(
        o,
        "" | "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "users"
            | "nouser"
            | "owner"
            | "group"
            | "_netdev"
            | "nofail"
            | "rw"
            | "exec"
    ) || o.starts_with("x-")
        || o.starts_with("comment=")
}

/// The daemon's command line for a helper invocation: `mount MOUNTPOINT --config CONFIG`
/// with `key=value` options turned into flags and the others kept as `-o`.
pub fn daemon_args(args: &[OsString]) -> Result<(Vec<OsString>, bool, PathBuf), String> {
    let mut positional: Vec<&OsString> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut foreground = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => {
                let v = it.next().ok_or("-o needs options")?;
                let v = v.to_str().ok_or("-o options are not UTF-8")?;
                options.extend(v.split(',').map(str::to_string));
            }
            Some(s) if s.starts_with("-o") => options.extend(s[2..].split(',').map(str::to_string)),
            Some("-f") => foreground = true,
            Some("-n" | "-s" | "-v") => {}
            Some("-t" | "-N") => {
                it.next();
            }
            Some(s) if s.starts_with('-') => return Err(format!("unknown helper flag {s}")),
            _ => positional.push(a),
        }
    }
    let [config, mountpoint] = positional[..] else {
        let first = args
            .first()
            .map(|a| a.to_string_lossy())
            .unwrap_or_default();
        return Err(format!(
            "{first:?} is not a command (see genro-storage --help); as mount(8)'s helper: genro-storage CONFIG MOUNTPOINT [-o OPTIONS]"
        ));
    };
    let mut out: Vec<OsString> = vec![
        "--config".into(),
        config.clone(),
        "mount".into(),
        mountpoint.clone(),
    ];
    let mut passed = Vec::new();
    for o in options.iter().filter(|o| !is_mount8_option(o)) {
        let (k, v) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        };
        let flag = |name: &str| -> Result<Vec<OsString>, String> {
            let v = v.ok_or(format!("option {k} needs a value ({k}=…)"))?;
            Ok(vec![format!("--{name}").into(), v.into()])
        };
        match k {
            "uid" | "gid" | "threads" => out.extend(flag(k)?),
            "file_mode" | "dir_mode" | "attr_ttl" | "negative_ttl" | "cache_dir"
            | "cache_max_size" | "log_level" | "log_file" => {
                out.extend(flag(&k.replace('_', "-"))?)
            }
            "read_only" => out.push("--read-only".into()),
            "io_uring" => out.push("--io-uring".into()),
            "io_uring_queue_depth" => out.extend(flag("io-uring-queue-depth")?),
            // mount(8) keeps `suid` and `dev` to itself (they are its defaults), so a mount
            // from fstab asks for setuid files and device nodes by these names; without them
            // it is nosuid,nodev, as libfuse mounts: whoever can write to the backend must
            // not be able to plant a setuid program or a device on the host
            "allow_suid" => passed.push("suid".into()),
            "allow_dev" => passed.push("dev".into()),
            _ => passed.push(o.clone()),
        }
    }
    // The source shows in /proc/mounts and df, as fstab gave it (xfstests finds its devices by
    // it); `fsname=` overrides it. A source with a comma cannot travel in -o and is left out.
    let source = config.to_string_lossy();
    if !passed.iter().any(|o| o.starts_with("fsname=")) && !source.contains(',') {
        passed.push(format!("fsname={source}"));
    }
    if !passed.is_empty() {
        out.push("-o".into());
        out.push(passed.join(",").into());
    }
    Ok((out, foreground, PathBuf::from(mountpoint)))
}

/// `mount -o remount,…`: change the flags of the mount at `mnt` in place (the daemon keeps
/// serving; the kernel enforces ro, nosuid, nodev, noexec and the atime flags itself).
/// Flags the options do not name stay as they are.
fn remount(mnt: &Path, options: &[String]) -> u8 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(mnt.as_os_str().as_bytes()) else {
        eprintln!("genro-storage: {}: not a path", mnt.display());
        return EXIT_USAGE;
    };
    // SAFETY: c is a valid path; st is written by statvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        eprintln!(
            "genro-storage: cannot remount {}: {}",
            mnt.display(),
            std::io::Error::last_os_error()
        );
        return EXIT_FAILED;
    }
    let kept = [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    let mut flags = kept
        .iter()
        .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
        .fold(0, |f, (_, ms)| f | ms);
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "noatime" => (libc::MS_NOATIME, libc::MS_RELATIME),
            "relatime" => (libc::MS_RELATIME, libc::MS_NOATIME),
            "strictatime" | "atime" => (0, libc::MS_NOATIME | libc::MS_RELATIME),
            _ => (0, 0),
        };
        flags = (flags | set) & !clear;
    }
    // SAFETY: c is a valid path; the other pointers may be null for a remount.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | flags,
            std::ptr::null(),
        )
    };
    if r != 0 {
        eprintln!(
            "genro-storage: cannot remount {}: {}",
            mnt.display(),
            std::io::Error::last_os_error()
        );
        return EXIT_FAILED;
    }
    0
}

/// Run as mount(8)'s helper; returns the exit status.
pub fn run(args: &[OsString]) -> u8 {
    if let Some((mnt, options)) = remount_request(args) {
        return remount(&mnt, &options);
    }
    let (daemon, foreground, mountpoint) = match daemon_args(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("genro-storage: {e}");
            return EXIT_USAGE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("genro-storage: cannot find my own executable: {e}");
            return EXIT_FAILED;
        }
    };
    let mut cmd = Command::new(exe);
    cmd.args(&daemon).stdin(Stdio::null()).stdout(Stdio::null());
    if foreground {
        return match cmd.status() {
            Ok(s) => s.code().unwrap_or(1) as u8,
            Err(e) => {
                eprintln!("genro-storage: {e}");
                EXIT_FAILED
            }
        };
    }
    // The daemon leaves mount(8)'s session so that it outlives it.
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    // The daemon's stderr: the journal when systemd runs us, the log file when one is named;
    // otherwise a pipe read until the mount is up, so that a daemon that cannot mount says
    // why here, and the caller's own pipes are not held open by the daemon.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let logs_to_file = daemon.iter().any(|a| a == "--log-file");
    if !journal && !logs_to_file {
        cmd.stderr(Stdio::piped());
        // the pipe closes when the helper returns: once mounted, the daemon points its
        // stderr at /dev/null rather than write (and fail, and panic) into a closed pipe
        cmd.env(crate::fuse::DETACH_STDERR, "1");
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("genro-storage: cannot start the daemon: {e}");
            return EXIT_FAILED;
        }
    };
    let early = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    // The daemon lets go of the pipe (says DETACHED_MARK and points its stderr at
    // /dev/null) once it has started in full: its transport chosen and "mounted" logged.
    // Returning only then keeps the pipe open for everything it writes while starting (a
    // write into a closed pipe fails); no pipe means nothing to wait for.
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    if let Some(mut err) = child.stderr.take() {
        let early = early.clone();
        let released = released.clone();
        released.store(false, std::sync::atomic::Ordering::Release);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut e = early.lock().unwrap_or_else(|e| e.into_inner());
                e.push_str(&String::from_utf8_lossy(&buf[..n]));
                if e.ends_with(crate::fuse::DETACHED_MARK) {
                    break;
                }
            }
            released.store(true, std::sync::atomic::Ordering::Release);
        });
    }
    let abs = std::path::absolute(&mountpoint).unwrap_or(mountpoint);
    let deadline = Instant::now() + Duration::from_secs(60);
    // once mounted, how long a daemon that keeps the pipe may take to let go of it
    let mut settle: Option<Instant> = None;
    loop {
        if mounted(&abs) {
            let since = *settle.get_or_insert_with(Instant::now);
            if released.load(std::sync::atomic::Ordering::Acquire)
                || since.elapsed() > Duration::from_secs(10)
            {
                return 0;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(50));
            let said = early.lock().unwrap_or_else(|e| e.into_inner()).clone();
            eprint!("{said}");
            return status.code().unwrap_or(1) as u8;
        }
        if Instant::now() > deadline {
            eprintln!(
                "genro-storage: {} was not mounted within 60 s",
                abs.display()
            );
            return EXIT_FAILED;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `SOURCE MOUNTPOINT -o remount,…`: the mountpoint and the options, if this is a remount.
fn remount_request(args: &[OsString]) -> Option<(PathBuf, Vec<String>)> {
    let mut options = Vec::new();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-o") => options.extend(it.next()?.to_str()?.split(',').map(str::to_string)),
            Some(s) if s.starts_with("-o") => options.extend(s[2..].split(',').map(str::to_string)),
            Some("-t" | "-N") => {
                it.next();
            }
            Some(s) if s.starts_with('-') => {}
            _ => positional.push(a),
        }
    }
    if !options.iter().any(|o| o == "remount") {
        return None;
    }
    Some((PathBuf::from(positional.last()?), options))
}

/// Is a FUSE filesystem mounted exactly at `p`? (Its type is `fuse.genro-storage`, or `fuse`
/// with an empty `subtype=`.)
fn mounted(p: &Path) -> bool {
    let real = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let want = real.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let fstype = l.split(" - ").nth(1).and_then(|t| t.split(' ').next());
            l.split(' ').nth(4) == Some(&want)
                && fstype.is_some_and(|t| t == "fuse" || t.starts_with("fuse."))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn fstab_options_become_flags() {
        let (args, fg, mnt) = daemon_args(&os(&[
            "/etc/g/mounts.toml",
            "/srv/s",
            "-o",
            "rw,noauto,_netdev,x-systemd.automount,allow_other,attr_ttl=2,uid=1000,read_only,noatime",
        ]))
        .unwrap();
        assert!(!fg);
        assert_eq!(mnt, PathBuf::from("/srv/s"));
        assert_eq!(
            args,
            os(&[
                "--config",
                "/etc/g/mounts.toml",
                "mount",
                "/srv/s",
                "--attr-ttl",
                "2",
                "--uid",
                "1000",
                "--read-only",
                "-o",
                "allow_other,noatime,fsname=/etc/g/mounts.toml"
            ])
        );
        let (args, _, _) =
            daemon_args(&os(&["cfg", "/m", "-o", "fsname=src,mount=a,allow_suid"])).unwrap();
        assert_eq!(args.last().unwrap(), "fsname=src,mount=a,suid");
        assert!(daemon_args(&os(&["only-one"])).is_err());
        assert!(daemon_args(&os(&["a", "b", "-o", "uid"]))
            .unwrap_err()
            .contains("uid"));
    }
}

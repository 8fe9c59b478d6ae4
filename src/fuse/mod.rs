//! The FUSE daemon: every configured mount as a directory of one mountpoint.
//!
//! `adapter.rs` speaks to the kernel, `fs/` is the async core (namespace, directories, I/O,
//! attributes), `inode.rs`, `attr_cache.rs`, `dir_attrs.rs` and `handles/` hold its state,
//! `local.rs` the native calls of local mounts.
//!
//! # Design
//!
//! **One seam per backend kind.** `Fs` resolves an inode or a name to a `Target`, applies
//! the checks every mount shares (the root, read-only, delete permission, across mounts),
//! and hands the operation, once, to the side chosen for the mount when `Fs` was made:
//! `fs/host.rs` (local mounts: the system calls a kernel filesystem would make on the root
//! directory) or `fs/object.rs` + `fs/object_ns.rs` (memory, S3 and every backend to come:
//! objects through the mount's `opendal::Operator`). Neither side calls into the other.
//! Only a file whose name is gone while it is open is served by what its `OpenFile` is (a
//! host descriptor or staged bytes), as it belongs to no path any more.
//!
//! **The adapter holds no policy.** It copies arguments, runs the core (inline for local and
//! memory mounts, spawned for network ones), and replies. Negative entries
//! (`Fs::lookup_entry`), readdirplus lookup counting (`Fs::reply_dir` through a
//! `DirReplier`), passthrough registrations (`Opened::passthrough`) and the errno of every
//! error (`Error::errno`, the one map) are the core's.
//!
//! **Where an attribute comes from.** The first rule that applies wins:
//! 1. The root: made up (the `[fuse]` directory mode, the daemon's start time).
//! 2. Local mounts: `lstat` of the host path, every time. The daemon caches nothing; the
//!    kernel keeps attributes for the attribute TTL.
//! 3. An object-backend file open and staged here: its `OpenFile` (the size as written, the
//!    POSIX attributes its upload will carry, the time of its last write).
//! 4. The attribute cache (bounded, per-mount TTL), filled by stat and listings; a fresh
//!    listing of the parent that lacks the name means the name does not exist.
//! 5. One stat of the backend: the object's user metadata (s3fs's keys: mode, uid, gid,
//!    mtime, ctime, atime, rdev), then Last-Modified, then the `[fuse]` defaults.
//!
//!    For a directory, what the daemon's bounded directory table holds (times of entry
//!    changes, what was set on a prefix-only directory) overrides its marker, and its link
//!    count is 2 plus the subdirectories the backend counts in O(1) (memory), 2 elsewhere.
//!
//! A change updates what it touches in place or invalidates it by key or by subtree (ordered
//! maps: a subtree costs what it holds), never the whole cache.
//!
//! **Lock order.** All locks but one are `std` locks taken for a few instructions and never
//! held across an `.await`:
//! 1. `Fs::ns` (local mounts only): held by a host rename or unlink, and by an open or
//!    getattr while it finds its host file by path, so that the host change and the inode
//!    table's change are one step for them.
//! 2. Inside it, one at a time and never nested in one another: the inode table, the handle
//!    tables (`Handles::open` is released before `Handles::files` is taken), the attribute
//!    cache, the listings, the directory table, the counters.
//! 3. An `OpenFile`'s passthrough slot is held only while the adapter replies to the open.
//!
//! The exception is an `OpenFile`'s body, a `tokio` mutex held across the awaits of one
//! file's staging, writes and upload (unrelated files never wait on each other); no `std`
//! lock is taken while waiting for it except the short ones of rule 2.

pub mod adapter;
pub mod attr_cache;
pub mod dir_attrs;
pub mod fs;
pub mod handles;
pub mod inode;
pub mod local;
pub mod metrics;
pub mod stats;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, FuseConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::manager::AsyncStorageManager;

pub use fs::{Caller, Fs, FsOptions};

/// Buffers of 256 KiB and more (reads, chunks, parts) are mapped and unmapped on their own,
/// so that a freed buffer goes back to the system. By default glibc raises that threshold up
/// to 32 MiB as large buffers are freed, after which each of the daemon's threads keeps the
/// megabytes of its last buffers in its own arena: reading through a 1 GiB hole grew the
/// daemon's resident memory by 68 MiB, with nothing held.
fn keep_heap_small() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
    }
}

/// Set by the helper for a daemon whose stderr is the helper's pipe (see `detach_stderr`).
pub const DETACH_STDERR: &str = "GENRO_STORAGE_DETACH_STDERR";

/// The last line a daemon writes into the helper's pipe: the helper returns when it sees it
/// (or the pipe ends), since the daemon's children (ssh for SFTP) may hold the pipe too.
pub const DETACHED_MARK: &str = "genro-storage: started; stderr detached\n";

/// Once mounted: a daemon started by the helper with its stderr on the helper's pipe points
/// stderr (and stdout) at /dev/null, since the pipe closes when the helper returns. Its logs
/// then go nowhere: give it `log_file=` (or run it under systemd) to keep them.
fn detach_stderr() {
    if std::env::var_os(DETACH_STDERR).is_none() {
        return;
    }
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let _ = std::io::stderr().write_all(DETACHED_MARK.as_bytes());
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto the standard descriptors, from a descriptor we own.
        unsafe {
            libc::dup2(null.as_raw_fd(), 2);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

/// As root, mount `/dev/fuse` at `mnt` ourselves with the type `fuse.genro-storage` (fuser's
/// own mount call always names the type `fuse`, and xfstests and `findmnt -t` look for the
/// subtype). None when not root: fuser then mounts through fusermount3.
fn mount_typed(mnt: &Path, opts: &DaemonOptions) -> Option<std::io::Result<std::os::fd::OwnedFd>> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    Some((|| {
        use std::os::fd::{AsRawFd, OwnedFd};
        use std::os::unix::fs::PermissionsExt;
        let rootmode = std::fs::metadata(mnt)?.permissions().mode() & libc::S_IFMT;
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")?;
        let fd = OwnedFd::from(dev);
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut data = format!(
            "fd={},rootmode={rootmode:o},user_id={uid},group_id={gid}",
            fd.as_raw_fd()
        );
        // nosuid and nodev unless `suid` / `dev` ask otherwise, as libfuse mounts: files of a
        // backend others can write must not become setuid programs or devices by default
        let (source, fstype, kernel_opts, mflags) = opts.kernel_mount();
        let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
        if opts.options.iter().any(|o| o == "suid") {
            flags &= !libc::MS_NOSUID;
        }
        if opts.options.iter().any(|o| o == "dev") {
            flags &= !libc::MS_NODEV;
        }
        for o in kernel_opts {
            data.push(',');
            data.push_str(&o);
        }
        flags |= mflags;
        let c =
            |s: &str| CString::new(s).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL));
        let (src, target, fstype, data) = (
            c(&source)?,
            CString::new(mnt.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?,
            c(&fstype)?,
            c(&data)?,
        );
        // SAFETY: four valid NUL-terminated strings and plain flags.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                flags,
                data.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    })())
}

/// Daemon settings: the `[fuse]` table, overridden by command-line flags.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Refuse every change with EROFS.
    pub read_only: bool,
    /// Let other users in (turns on `default_permissions`).
    pub allow_other: bool,
    /// Owner shown on object backends.
    pub uid: Option<u32>,
    /// Group shown on object backends.
    pub gid: Option<u32>,
    /// File mode on object backends.
    pub file_mode: Option<u16>,
    /// Directory mode on object backends.
    pub dir_mode: Option<u16>,
    /// Attribute TTL (default 1 s).
    pub attr_ttl: Option<Duration>,
    /// Negative entry TTL (default: the attribute TTL).
    pub negative_ttl: Option<Duration>,
    /// Where dirty data is staged.
    pub cache_dir: Option<PathBuf>,
    /// The most staged data may take there (default: half its filesystem's free space).
    pub cache_max_size: Option<u64>,
    /// Threads that read and serve FUSE requests (default 8).
    pub threads: Option<usize>,
    /// `-o` options.
    pub options: Vec<String>,
    /// Serve only this mount, at the mountpoint's root (`--mount NAME`, `-o mount=NAME`).
    pub only: Option<String>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (`--metrics`, `[fuse] metrics`).
    pub metrics: Option<std::net::SocketAddr>,
    /// Serve FUSE over io_uring where the kernel offers it (`--io-uring`, `[fuse] io_uring`).
    pub io_uring: bool,
    /// Entries per io_uring queue (default [`IO_URING_QUEUE_DEPTH`]).
    pub io_uring_queue_depth: Option<u16>,
}

/// Requests each io_uring queue holds at once unless told: enough for the S3 requests
/// that wait on the network while the queue serves others (each holds its entry).
pub const IO_URING_QUEUE_DEPTH: u16 = 32;

/// The largest WRITE the daemon takes (`max_write` at INIT), hence each io_uring entry's
/// payload buffer.
pub const MAX_WRITE: u32 = 1 << 20;

/// What the io_uring queues' buffers may hold together at the default depth. Each entry
/// keeps its payload buffer (`MAX_WRITE` and a page) resident once a request has filled it,
/// and there is one queue per possible CPU: 32 entries on 64 CPUs would be 2 GiB.
pub const IO_URING_BUFFER_BUDGET: u64 = 256 << 20;

/// The default queue depth with `cpus` queues: [`IO_URING_QUEUE_DEPTH`], fewer where that
/// would take the buffers past [`IO_URING_BUFFER_BUDGET`], and never fewer than 4.
pub fn io_uring_default_depth(cpus: usize) -> u16 {
    let entry = u64::from(MAX_WRITE) + 4096;
    let fit = IO_URING_BUFFER_BUDGET / (cpus.max(1) as u64 * entry);
    fit.clamp(4, u64::from(IO_URING_QUEUE_DEPTH)) as u16
}

/// A TTL in seconds: finite and not negative.
pub fn parse_secs(v: f64) -> std::result::Result<Duration, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{v} is not a number of seconds"))
    }
}

/// Parse an octal mode such as `0644` or `644`.
pub fn parse_mode(s: &str) -> std::result::Result<u16, String> {
    let t = s.trim_start_matches("0o");
    u16::from_str_radix(t, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal mode such as 0644"))
}

impl DaemonOptions {
    /// Fill what the command line left unset from the `[fuse]` table.
    pub fn merge(mut self, f: &FuseConfig) -> Result<Self> {
        let cfg = |k: &str, m: String| Error::config(format!("[fuse]: key \"{k}\""), m);
        self.read_only |= f.read_only.unwrap_or(false);
        self.allow_other |= f.allow_other.unwrap_or(false);
        self.uid = self.uid.or(f.uid);
        self.gid = self.gid.or(f.gid);
        if self.file_mode.is_none() {
            if let Some(m) = &f.file_mode {
                self.file_mode = Some(parse_mode(m).map_err(|e| cfg("file_mode", e))?);
            }
        }
        if self.dir_mode.is_none() {
            if let Some(m) = &f.dir_mode {
                self.dir_mode = Some(parse_mode(m).map_err(|e| cfg("dir_mode", e))?);
            }
        }
        let secs = |k: &str, v: f64| parse_secs(v).map_err(|e| cfg(k, e));
        if self.attr_ttl.is_none() {
            if let Some(v) = f.attr_ttl {
                self.attr_ttl = Some(secs("attr_ttl", v)?);
            }
        }
        if self.negative_ttl.is_none() {
            if let Some(v) = f.negative_ttl {
                self.negative_ttl = Some(secs("negative_ttl", v)?);
            }
        }
        self.cache_dir = self.cache_dir.or(f.cache_dir.clone());
        if self.cache_max_size.is_none() {
            if let Some(v) = &f.cache_max_size {
                self.cache_max_size = Some(v.bytes().map_err(|e| cfg("cache_max_size", e))?);
            }
        }
        self.threads = self.threads.or(f.threads);
        self.io_uring |= f.io_uring.unwrap_or(false);
        if self.io_uring_queue_depth.is_none() {
            if let Some(d) = f.io_uring_queue_depth {
                if !(1..=1024).contains(&d) {
                    return Err(cfg(
                        "io_uring_queue_depth",
                        format!("{d} is not between 1 and 1024"),
                    ));
                }
                self.io_uring_queue_depth = Some(d);
            }
        }
        if self.metrics.is_none() {
            if let Some(a) = &f.metrics {
                self.metrics = Some(a.parse().map_err(|_| {
                    cfg(
                        "metrics",
                        format!("{a:?} is not an address such as 127.0.0.1:9464"),
                    )
                })?);
            }
        }
        if let Some(o) = &f.options {
            let mut all = o.clone();
            all.append(&mut self.options);
            self.options = all;
        }
        Ok(self)
    }

    /// The core's options.
    pub fn fs_options(&self) -> FsOptions {
        let d = FsOptions::default();
        let attr_ttl = self.attr_ttl.unwrap_or(d.attr_ttl);
        FsOptions {
            uid: self.uid.unwrap_or(d.uid),
            gid: self.gid.unwrap_or(d.gid),
            file_mode: self.file_mode.unwrap_or(d.file_mode),
            dir_mode: self.dir_mode.unwrap_or(d.dir_mode),
            attr_ttl,
            negative_ttl: self.negative_ttl.unwrap_or(attr_ttl),
            read_only: self.read_only || self.options.iter().any(|o| o == "ro"),
            cache_dir: self.cache_dir.clone(),
            cache_max_size: self.cache_max_size,
            single: self.only_mount().is_some(),
            noatime: self.options.iter().any(|o| o == "noatime"),
        }
    }

    /// The one mount to serve at the root, if any: `--mount`, else `-o mount=NAME`.
    pub fn only_mount(&self) -> Option<&str> {
        self.only
            .as_deref()
            .or_else(|| self.options.iter().find_map(|o| o.strip_prefix("mount=")))
    }

    /// Who may enter: everyone with allow_other (`-o allow_other` too), else the owner.
    fn acl(&self) -> fuser::SessionACL {
        if self.allow_other || self.options.iter().any(|o| o == "allow_other") {
            fuser::SessionACL::All
        } else {
            fuser::SessionACL::Owner
        }
    }

    /// For our own mount(2): the source, the type (`fuse.SUBTYPE`, or `fuse` for an empty
    /// `subtype=`), the kernel's options and the mount flags that the options ask for (the
    /// same as `fuser_config` gives fuser).
    fn kernel_mount(&self) -> (String, String, Vec<String>, libc::c_ulong) {
        use fuser::MountOption as O;
        let mut source = "genro-storage".to_string();
        let mut fstype = "fuse.genro-storage".to_string();
        let mut opts = Vec::new();
        let mut flags: libc::c_ulong = 0;
        for o in self.fuser_config().mount_options {
            match o {
                O::FSName(n) => source = n,
                O::Subtype(t) if t.is_empty() => fstype = "fuse".into(),
                O::Subtype(t) => fstype = format!("fuse.{t}"),
                O::RO => flags |= libc::MS_RDONLY,
                O::NoAtime => flags |= libc::MS_NOATIME,
                O::NoExec => flags |= libc::MS_NOEXEC,
                O::NoSuid => flags |= libc::MS_NOSUID,
                O::NoDev => flags |= libc::MS_NODEV,
                O::Sync => flags |= libc::MS_SYNCHRONOUS,
                O::DirSync => flags |= libc::MS_DIRSYNC,
                O::DefaultPermissions => opts.push("default_permissions".to_string()),
                O::CUSTOM(c) => opts.push(c),
                _ => {}
            }
        }
        if matches!(self.acl(), fuser::SessionACL::All) {
            opts.push("allow_other".to_string());
        }
        (source, fstype, opts, flags)
    }

    fn fuser_config(&self) -> fuser::Config {
        use fuser::MountOption as O;
        let mut c = fuser::Config::default();
        c.mount_options = vec![
            O::FSName("genro-storage".into()),
            O::Subtype("genro-storage".into()),
        ];
        if self.fs_options().read_only {
            c.mount_options.push(O::RO);
        }
        if self.allow_other {
            c.acl = fuser::SessionACL::All;
            c.mount_options.push(O::DefaultPermissions);
        }
        for o in &self.options {
            match o.as_str() {
                "ro" | "rw" | "nonempty" | "allow_other" | "" | "suid" | "dev" | "exec" => {}
                o if o.starts_with("mount=") => {}
                o if o.starts_with("fsname=") => {
                    // the mount's source, as /proc/mounts and df show it
                    c.mount_options.retain(|x| !matches!(x, O::FSName(_)));
                    c.mount_options
                        .push(O::FSName(o["fsname=".len()..].to_string()));
                }
                o if o.starts_with("subtype=") => {
                    c.mount_options.retain(|x| !matches!(x, O::Subtype(_)));
                    c.mount_options
                        .push(O::Subtype(o["subtype=".len()..].to_string()));
                }
                "default_permissions" => c.mount_options.push(O::DefaultPermissions),
                "noatime" => c.mount_options.push(O::NoAtime),
                "noexec" => c.mount_options.push(O::NoExec),
                "nosuid" => c.mount_options.push(O::NoSuid),
                "nodev" => c.mount_options.push(O::NoDev),
                "sync" => c.mount_options.push(O::Sync),
                "dirsync" => c.mount_options.push(O::DirSync),
                other => c.mount_options.push(O::CUSTOM(other.to_string())),
            }
        }
        if self.options.iter().any(|o| o == "allow_other") && !self.allow_other {
            c.acl = fuser::SessionACL::All;
            c.mount_options.push(O::DefaultPermissions);
        }
        c.n_threads = Some(self.threads.unwrap_or(8).max(1));
        c.clone_fd = true;
        if self.io_uring {
            c.io_uring_queue_depth =
                Some(self.io_uring_queue_depth.unwrap_or_else(|| {
                    io_uring_default_depth(fuser::possible_cpus().unwrap_or(1))
                }));
        }
        c
    }
}

/// The session's transport once its loop has chosen it (at once, or within a second).
fn settled(t: &fuser::TransportState) -> fuser::Transport {
    let deadline = Instant::now() + Duration::from_secs(1);
    while t.get() == fuser::Transport::Starting && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    t.get()
}

fn mount_err(mnt: &Path, msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::Config,
        format!("mountpoint {}", mnt.display()),
        msg,
    )
}

/// Lazily unmount whatever is mounted at `mnt` (a stale mount of a killed daemon).
pub fn unmount(mnt: &Path, lazy: bool) -> std::io::Result<()> {
    let c = CString::new(mnt.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Check the mountpoint before mounting: it exists, is an empty directory (unless
/// `nonempty`), and a stale mount left by a killed daemon is cleared.
pub fn check_mountpoint(mnt: &Path, nonempty: bool) -> Result<PathBuf> {
    if !Path::new("/dev/fuse").exists() {
        return Err(Error::new(
            ErrorKind::Config,
            "/dev/fuse",
            "missing: load the fuse module (modprobe fuse) or run where FUSE is available",
        ));
    }
    match std::fs::metadata(mnt) {
        // ENOTCONN: the connection is gone; ECONNABORTED or ECANCELED: a request was caught
        // while the kernel tore it down (a killed daemon's connection ends asynchronously)
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ECANCELED)
            ) =>
        {
            tracing::warn!(mountpoint = %mnt.display(), "clearing a stale mount left by a daemon that died");
            unmount(mnt, true).map_err(|e| {
                mount_err(
                    mnt,
                    format!("a stale mount is in the way and cannot be cleared ({e}); run: umount -l {}", mnt.display()),
                )
            })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(mount_err(mnt, "does not exist (create it with mkdir)"))
        }
        Err(e) => return Err(mount_err(mnt, e.to_string())),
        Ok(m) if !m.is_dir() => return Err(mount_err(mnt, "is not a directory")),
        Ok(_) => {}
    }
    let mnt = mnt
        .canonicalize()
        .map_err(|e| mount_err(mnt, e.to_string()))?;
    if !nonempty {
        let mut rd = std::fs::read_dir(&mnt).map_err(|e| mount_err(&mnt, e.to_string()))?;
        if rd.next().is_some() {
            return Err(mount_err(
                &mnt,
                "is not empty (use -o nonempty to mount over it)",
            ));
        }
    }
    Ok(mnt)
}

/// Mount `config`'s mounts at `mountpoint` and serve until SIGINT, SIGTERM or umount; then
/// upload every dirty file, unmount and return.
pub fn run(config: &Config, mountpoint: &Path, opts: DaemonOptions) -> Result<()> {
    let opts = opts.merge(&config.fuse)?;
    let mnt = check_mountpoint(mountpoint, opts.options.iter().any(|o| o == "nonempty"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("genro-fuse")
        .enable_all()
        .build()
        .map_err(|e| Error::from_io("runtime", e))?;
    let storage = AsyncStorageManager::new();
    storage.configure_validated(config)?;
    let mut mounts = storage.mounts();
    if let Some(name) = opts.only_mount() {
        let names: Vec<String> = mounts.iter().map(|m| m.name().to_string()).collect();
        mounts.retain(|m| m.name() == name);
        if mounts.is_empty() {
            return Err(Error::config(
                "--mount",
                format!("no mount named {name:?}; configured: {}", names.join(", ")),
            ));
        }
    }
    let fs = Arc::new(Fs::new(mounts, opts.fs_options())?);
    let transport = fuser::TransportState::default();
    if let Some(addr) = opts.metrics {
        // bound before anything is mounted, so that a taken port fails the start cleanly
        rt.block_on(metrics::serve(addr, fs.clone(), transport.clone()))?;
    }
    let mut fuser_config = opts.fuser_config();
    fuser_config.transport = transport.clone();
    // The kernel hands every create its caller's mode with the caller's umask applied (or
    // beside it): the daemon's own umask must take nothing more away. What the daemon makes
    // for itself (staging, its marker, a log file opened before this) has explicit modes.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    keep_heap_small();
    let notifier = Arc::new(std::sync::OnceLock::new());
    let adapter = adapter::Adapter::new(fs.clone(), rt.handle().clone(), notifier.clone());
    let session = match mount_typed(&mnt, &opts) {
        // as root: our own mount(2), so that the type shows as fuse.genro-storage
        Some(Ok(fd)) => fuser::Session::from_fd(adapter, fd, opts.acl(), fuser_config)
            .map_err(|e| mount_err(&mnt, format!("mount failed: {e}")))?,
        Some(Err(e)) if e.raw_os_error() != Some(libc::EPERM) => {
            return Err(mount_err(&mnt, format!("mount failed: {e}")))
        }
        // otherwise (another user, or root without CAP_SYS_ADMIN, as in some containers)
        // fuser's mount, through fusermount3 where needed, typed plain fuse
        _ => fuser::Session::new(adapter, &mnt, &fuser_config)
            .map_err(|e| mount_err(&mnt, format!("mount failed: {e}")))?,
    };
    let _ = notifier.set(session.notifier());
    let bg = session
        .spawn()
        .map_err(|e| mount_err(&mnt, format!("cannot start the session: {e}")))?;
    let transport = settled(&transport);
    if opts.io_uring && transport != fuser::Transport::IoUring {
        tracing::warn!(
            "--io-uring: the kernel does not offer FUSE over io_uring (Linux 6.14+, \
             `echo Y > /sys/module/fuse/parameters/enable_uring` before mounting); serving /dev/fuse"
        );
    }
    tracing::info!(mountpoint = %mnt.display(), mounts = ?storage.mount_names(), ?transport, "mounted");
    detach_stderr();
    let signal = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| Error::from_io("signal", e))?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::from_io("signal", e))?;
        let mut usr1 =
            signal(SignalKind::user_defined1()).map_err(|e| Error::from_io("signal", e))?;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = term.recv() => return Ok::<_, Error>(Some("SIGTERM")),
                _ = int.recv() => return Ok(Some("SIGINT")),
                _ = usr1.recv() => {
                    for line in fs.stats_report().await {
                        tracing::info!(target: "genro_storage::stats", "{line}");
                    }
                    for m in fs.mounts() {
                        let kinds: Vec<String> = m
                            .backend_requests()
                            .snapshot()
                            .into_iter()
                            .filter(|(_, n)| *n > 0)
                            .map(|(k, n)| format!("{k} {n}"))
                            .collect();
                        tracing::info!(target: "genro_storage::stats", "mount {}: backend requests ({})", m.name(), kinds.join(", "));
                    }
                    tracing::info!(target: "genro_storage::stats", "{}", fs.tables());
                }
                _ = tick.tick() => if bg.guard.is_finished() { return Ok(None) },
            }
        }
    })?;
    let flushed = rt.block_on(fs.flush_all());
    match &flushed {
        Ok(n) => tracing::info!(uploaded = n, ?signal, "dirty files uploaded; unmounting"),
        Err(e) => tracing::error!(error = %e, "some dirty files could not be uploaded"),
    }
    if signal.is_some() {
        if let Err(e) = unmount(&mnt, false) {
            tracing::warn!(error = %e, "unmount busy; detaching lazily");
            let _ = unmount(&mnt, true);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while !bg.guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if bg.guard.is_finished() {
        let _ = bg.join();
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    flushed.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_uring_default_depth_keeps_the_buffers_in_budget() {
        // 32 entries of 1 MiB and a page on each CPU while they fit in 256 MiB
        assert_eq!(io_uring_default_depth(1), 32);
        assert_eq!(io_uring_default_depth(2), 32);
        assert_eq!(io_uring_default_depth(7), 32);
        assert_eq!(io_uring_default_depth(8), 31);
        assert_eq!(io_uring_default_depth(16), 15);
        // past that, fewer, down to 4 (64 CPUs: 256 MiB instead of 2 GiB)
        assert_eq!(io_uring_default_depth(64), 4);
        assert_eq!(io_uring_default_depth(256), 4);
        assert_eq!(io_uring_default_depth(0), 32);
        for cpus in 1..=63 {
            let d = u64::from(io_uring_default_depth(cpus));
            assert!(d * cpus as u64 * (u64::from(MAX_WRITE) + 4096) <= IO_URING_BUFFER_BUDGET);
        }
    }
}

//! The async filesystem core, kernel-free: every FUSE operation as an async method over
//! inode numbers that returns plain structs. `adapter.rs` only spawns, calls and replies.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuser::{FileAttr, FileType, INodeNo};

use crate::error::{Error, ErrorKind, Result};
use crate::fuse::attr_cache::AttrCache;
use crate::fuse::handles::{open_native, CacheDir, DirEntry, Handles, OpenFile};
use crate::fuse::inode::{Inodes, Target, ROOT};
use crate::fuse::local;
use crate::fuse::stats::{Snapshot, Stats};
use crate::storage::mount::{Entry, Mount};
use crate::storage::node::AsyncNode;
use crate::storage::path;

/// Attributes of an entry, before an inode number is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// File, directory or symlink.
    pub kind: FileType,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks used.
    pub blocks: u64,
    /// Last access.
    pub atime: SystemTime,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
    /// Permission bits.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u32,
}

/// A time to set: now, or a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    /// The current time.
    Now,
    /// This time.
    At(SystemTime),
}

impl TimeSet {
    fn resolve(self) -> SystemTime {
        match self {
            TimeSet::Now => SystemTime::now(),
            TimeSet::At(t) => t,
        }
    }
}

/// What a setattr changes.
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    /// New mode bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeSet>,
    /// New modification time.
    pub mtime: Option<TimeSet>,
}

/// Figures for statfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Blocks free for unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size.
    pub frsize: u32,
}

/// An open file handle and how the kernel may treat it.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The handle.
    pub fh: u64,
    /// Read-only handle: the kernel may keep its page cache (it drops it when the mtime or
    /// size changes).
    pub read_only: bool,
    /// Nothing to do at close: read-only handles, and local files (written in place), so the
    /// kernel need not send FLUSH.
    pub no_flush: bool,
    /// Local mounts: the open inode, whose host file the kernel may read and write directly
    /// (FUSE passthrough) with the same semantics.
    pub passthrough: Option<Arc<OpenFile>>,
}

/// Settings of the filesystem core.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Owner shown on object backends.
    pub uid: u32,
    /// Group shown on object backends.
    pub gid: u32,
    /// Mode of files on object backends (until chmod).
    pub file_mode: u16,
    /// Mode of directories on object backends (until chmod).
    pub dir_mode: u16,
    /// Attribute and entry TTL (kernel and our cache).
    pub attr_ttl: Duration,
    /// TTL of negative entries in our cache.
    pub negative_ttl: Duration,
    /// Refuse every change with EROFS.
    pub read_only: bool,
    /// Where dirty data is staged (a private temp dir when None).
    pub cache_dir: Option<PathBuf>,
}

impl Default for FsOptions {
    fn default() -> Self {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        FsOptions {
            uid,
            gid,
            file_mode: 0o644,
            dir_mode: 0o755,
            attr_ttl: Duration::from_secs(1),
            negative_ttl: Duration::from_secs(1),
            read_only: false,
            cache_dir: None,
        }
    }
}

/// Who asks for a new entry: it is created with this owner (on local mounts when the daemon
/// runs as root; on object backends in the daemon's overlay), as a kernel filesystem does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id of the calling process.
    pub uid: u32,
    /// Group id of the calling process.
    pub gid: u32,
}

impl Caller {
    /// The daemon's own user and group.
    pub fn daemon() -> Caller {
        // SAFETY: geteuid/getegid cannot fail.
        unsafe {
            Caller {
                uid: libc::geteuid(),
                gid: libc::getegid(),
            }
        }
    }
}

/// Mode, owner and times set by setattr on backends that keep none of them. They live as
/// long as the daemon.
#[derive(Debug, Clone, Default)]
struct Overlay {
    mode: Option<u16>,
    uid: Option<u32>,
    gid: Option<u32>,
    atime: Option<SystemTime>,
    mtime: Option<SystemTime>,
}

/// The filesystem: mounts, inode table, attribute cache, handles.
#[derive(Debug)]
pub struct Fs {
    mounts: Vec<Arc<Mount>>,
    opts: FsOptions,
    inodes: Inodes,
    cache: AttrCache<Meta>,
    handles: Handles<Meta>,
    stats: Stats,
    overlay: Mutex<HashMap<Target, Overlay>>,
    /// Directories made through this daemon on object backends: they exist even where the
    /// server keeps no directory markers, until removed.
    made_dirs: Mutex<HashSet<Target>>,
    cache_dir: CacheDir,
    started: SystemTime,
}

fn not_found(ctx: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotFound, ctx, "no such file or directory")
}

impl Fs {
    /// A filesystem over these mounts.
    pub fn new(mounts: Vec<Arc<Mount>>, opts: FsOptions) -> Result<Fs> {
        let cache_dir = CacheDir::new(opts.cache_dir.as_deref())?;
        let stats = Stats::new(mounts.iter().map(|m| m.name().to_string()).collect());
        Ok(Fs {
            mounts,
            stats,
            cache: AttrCache::new(opts.attr_ttl, opts.negative_ttl),
            opts,
            inodes: Inodes::new(),
            handles: Handles::default(),
            overlay: Mutex::default(),
            made_dirs: Mutex::default(),
            cache_dir,
            started: SystemTime::now(),
        })
    }

    /// The TTL the kernel may cache entries and attributes for.
    pub fn ttl(&self) -> Duration {
        self.opts.attr_ttl
    }

    /// The per-mount counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The mount an inode belongs to (None for the root and unknown inodes).
    pub fn mount_of(&self, ino: u64) -> Option<usize> {
        match self.inodes.target(ino) {
            Some(Target::Path(m, _)) => Some(m),
            _ => None,
        }
    }

    /// Every mount's counters, with the open files not uploaded yet.
    pub async fn stats_report(&self) -> Vec<Snapshot> {
        let mut pending = vec![0u64; self.mounts.len()];
        for (ino, f) in self.handles.all_open() {
            if let Some(m) = self.mount_of(ino) {
                if f.is_dirty().await {
                    pending[m] += 1;
                }
            }
        }
        self.stats.snapshot(&pending)
    }

    /// May a request on `ino` run on the FUSE thread that read it? Yes for the root and for
    /// local and memory mounts, whose operations never wait on the network.
    pub fn serves_inline(&self, ino: u64) -> bool {
        match self.inodes.target(ino) {
            Some(Target::Path(m, _)) => !self.mount(m).is_s3(),
            _ => true,
        }
    }

    /// The inode table (for tests and stats).
    pub fn inodes(&self) -> &Inodes {
        &self.inodes
    }

    /// A FUSE attribute struct for `ino`.
    pub fn attr(&self, ino: u64, m: &Meta) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: m.size,
            blocks: m.blocks,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
            crtime: m.ctime,
            kind: m.kind,
            perm: m.perm,
            nlink: m.nlink,
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            blksize: 128 * 1024,
            flags: 0,
        }
    }

    fn lock_dirs(&self) -> std::sync::MutexGuard<'_, HashSet<Target>> {
        self.made_dirs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_overlay(&self) -> std::sync::MutexGuard<'_, HashMap<Target, Overlay>> {
        self.overlay.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mount(&self, idx: usize) -> &Arc<Mount> {
        &self.mounts[idx]
    }

    fn ctx(&self, t: &Target) -> String {
        match t {
            Target::Root => "/".into(),
            Target::Path(m, p) => self.mount(*m).ctx(p),
        }
    }

    fn target(&self, ino: u64) -> Result<Target> {
        self.inodes
            .target(ino)
            .ok_or_else(|| not_found(format!("inode {ino}")))
    }

    fn path_of(&self, ino: u64) -> Result<(usize, String)> {
        match self.target(ino)? {
            Target::Path(m, p) => Ok((m, p)),
            Target::Root => Err(Error::new(
                ErrorKind::IsADirectory,
                "/",
                "the root lists the mounts",
            )),
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<Target> {
        let pt = self.target(parent)?;
        let name = name.to_str().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidPath,
                format!("{}/{}", self.ctx(&pt), name.to_string_lossy()),
                "names must be valid UTF-8",
            )
        })?;
        path::check_name(name).map_err(|(k, m)| Error::new(k, self.ctx(&pt), m))?;
        match pt {
            Target::Root => self
                .mounts
                .iter()
                .position(|m| m.name() == name)
                .map(|i| Target::Path(i, String::new()))
                .ok_or_else(|| not_found(format!("/{name}"))),
            Target::Path(m, p) => Ok(Target::Path(m, path::join(&p, name))),
        }
    }

    /// The target of a name about to be created, removed or renamed: never in the root,
    /// which lists the mounts.
    fn child_mut(&self, parent: u64, name: &OsStr) -> Result<Target> {
        if parent == ROOT {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("/{}", name.to_string_lossy()),
                "the root lists the mounts and cannot be changed",
            ));
        }
        self.child(parent, name)
    }

    /// The host path of a local entry: its parent is checked to stay inside the root, the
    /// entry itself is never followed.
    fn host(&self, m: usize, p: &str) -> Result<Option<PathBuf>> {
        let mount = self.mount(m);
        match mount.local_root() {
            None => Ok(None),
            Some(root) => {
                mount.check_inside(path::parent(p))?;
                Ok(Some(if p.is_empty() {
                    root.to_path_buf()
                } else {
                    root.join(p)
                }))
            }
        }
    }

    fn dir_meta(&self, t: Option<&Target>) -> Meta {
        let ov = t
            .and_then(|t| self.lock_overlay().get(t).cloned())
            .unwrap_or_default();
        let mtime = ov.mtime.unwrap_or(self.started);
        Meta {
            kind: FileType::Directory,
            size: 0,
            blocks: 0,
            atime: ov.atime.unwrap_or(mtime),
            mtime,
            ctime: mtime,
            perm: ov.mode.unwrap_or(self.opts.dir_mode),
            uid: ov.uid.unwrap_or(self.opts.uid),
            gid: ov.gid.unwrap_or(self.opts.gid),
            nlink: 2,
        }
    }

    fn entry_meta(&self, t: &Target, e: &Entry) -> Meta {
        if e.is_dir() {
            let mut m = self.dir_meta(Some(t));
            if self.lock_overlay().get(t).and_then(|o| o.mtime).is_none() {
                m.mtime = e.mtime;
                m.ctime = e.mtime;
                m.atime = e.mtime;
            }
            return m;
        }
        let ov = self.lock_overlay().get(t).cloned().unwrap_or_default();
        let mtime = ov.mtime.unwrap_or(e.mtime);
        Meta {
            kind: FileType::RegularFile,
            size: e.size,
            blocks: e.size.div_ceil(512),
            atime: ov.atime.unwrap_or(mtime),
            mtime,
            ctime: mtime,
            perm: ov.mode.unwrap_or(self.opts.file_mode),
            uid: ov.uid.unwrap_or(self.opts.uid),
            gid: ov.gid.unwrap_or(self.opts.gid),
            nlink: 1,
        }
    }

    /// Attributes of a target; `Ok(None)` when it does not exist.
    async fn meta(&self, t: &Target) -> Result<Option<Meta>> {
        let Target::Path(m, p) = t else {
            return Ok(Some(self.dir_meta(None)));
        };
        let meta = if let Some(host) = self.host(*m, p)? {
            local::lstat(&host).map_err(|e| Error::from_io(self.ctx(t), e))?
        } else if p.is_empty() {
            Some(self.dir_meta(Some(t)))
        } else if let Some(size) = self.staged_size(t) {
            // Open and written here: the daemon knows better than the backend.
            Some(self.staged_meta(t, size))
        } else if self.lock_dirs().contains(t) {
            Some(self.dir_meta(Some(t)))
        } else {
            match self.cache.get(t) {
                Some(v) => {
                    self.stats.add(*m, |s| &s.cache_hits, 1);
                    v
                }
                None => {
                    self.stats.add(*m, |s| &s.cache_misses, 1);
                    let v = self
                        .mount(*m)
                        .stat(p)
                        .await?
                        .map(|e| self.entry_meta(t, &e));
                    self.cache.put(t.clone(), v.clone());
                    v
                }
            }
        };
        Ok(meta)
    }

    fn staged_size(&self, t: &Target) -> Option<u64> {
        let ino = self.inodes.peek(t)?;
        self.handles.open_file(ino)?.staged_size()
    }

    fn staged_meta(&self, t: &Target, size: u64) -> Meta {
        let e = Entry {
            kind: crate::storage::mount::EntryKind::File,
            size,
            mtime: SystemTime::now(),
            etag: None,
        };
        self.entry_meta(t, &e)
    }

    async fn meta_required(&self, t: &Target) -> Result<Meta> {
        self.meta(t).await?.ok_or_else(|| not_found(self.ctx(t)))
    }

    /// Refuse changes on the root, on read-only filesystems and read-only mounts.
    fn check_change(&self, t: &Target) -> Result<()> {
        if self.opts.read_only {
            return Err(Error::new(
                ErrorKind::ReadOnly,
                self.ctx(t),
                "the filesystem is mounted read-only",
            ));
        }
        match t {
            Target::Root => Err(Error::new(
                ErrorKind::PermissionDenied,
                "/",
                "the root lists the mounts and cannot be changed",
            )),
            Target::Path(m, p) => {
                let mount = self.mount(*m);
                if !mount.permissions().can_write() {
                    return Err(Error::new(
                        ErrorKind::ReadOnly,
                        mount.ctx(p),
                        "the mount is read-only",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Refuse removing (or renaming away) a mount root, or anything on a mount without
    /// delete permission.
    fn check_remove(&self, t: &Target) -> Result<()> {
        self.check_change(t)?;
        if let Target::Path(m, p) = t {
            if p.is_empty() {
                return Err(Error::new(
                    ErrorKind::Busy,
                    self.ctx(t),
                    "a mount's root cannot be removed or renamed",
                ));
            }
            self.mount(*m).check_delete(p)?;
        }
        Ok(())
    }

    /// Look a name up; the inode's lookup count goes up by one.
    pub async fn lookup(&self, parent: u64, name: &OsStr) -> Result<(u64, Meta)> {
        let t = self.child(parent, name)?;
        let m = self.meta_required(&t).await?;
        Ok((self.inodes.lookup(t), m))
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
    }

    /// Attributes of an inode.
    pub async fn getattr(&self, ino: u64) -> Result<Meta> {
        let t = self.target(ino)?;
        self.meta_required(&t).await
    }

    /// Change attributes.
    pub async fn setattr(&self, ino: u64, set: SetAttr) -> Result<Meta> {
        let t = self.target(ino)?;
        self.check_change(&t)?;
        let Target::Path(m, p) = &t else {
            unreachable!("check_change refuses the root")
        };
        let (m, p) = (*m, p.as_str());
        let ctx = self.ctx(&t);
        let io = |e| Error::from_io(ctx.clone(), e);
        let current = self.meta_required(&t).await?;
        if let Some(host) = self.host(m, p)? {
            if let Some(size) = set.size {
                open_native(&host, true)
                    .and_then(|f| f.set_len(size))
                    .map_err(io)?;
            }
            if let Some(mode) = set.mode {
                if current.kind == FileType::Symlink {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        ctx,
                        "a symlink has no mode of its own",
                    ));
                }
                local::chmod_nofollow(&host, mode & 0o7777).map_err(io)?;
            }
            if set.uid.is_some() || set.gid.is_some() {
                std::os::unix::fs::lchown(&host, set.uid, set.gid).map_err(io)?;
            }
            if set.atime.is_some() || set.mtime.is_some() {
                local::set_times(&host, set.atime, set.mtime).map_err(io)?;
            }
        } else {
            if let Some(size) = set.size {
                if current.kind == FileType::Directory {
                    return Err(Error::is_a_directory(ctx));
                }
                self.truncate_object(ino, m, p, size, current.size).await?;
            }
            let mut ov = self.lock_overlay();
            let o = ov.entry(t.clone()).or_default();
            if let Some(mode) = set.mode {
                o.mode = Some((mode & 0o7777) as u16);
            }
            if let Some(uid) = set.uid {
                o.uid = Some(uid);
            }
            if let Some(gid) = set.gid {
                o.gid = Some(gid);
            }
            if let Some(a) = set.atime {
                o.atime = Some(a.resolve());
            }
            if let Some(mt) = set.mtime {
                o.mtime = Some(mt.resolve());
            } else if set.size.is_some() {
                o.mtime = Some(SystemTime::now());
            }
        }
        self.cache.invalidate(&t);
        self.meta_required(&t).await
    }

    async fn truncate_object(
        &self,
        ino: u64,
        m: usize,
        p: &str,
        size: u64,
        current: u64,
    ) -> Result<()> {
        let cache = self.cache_dir.path();
        match self.handles.open_file(ino) {
            Some(f) => f.truncate(p, cache, size).await,
            None => {
                let f = OpenFile::detached(self.mount(m).clone(), current);
                f.truncate(p, cache, size).await?;
                f.flush(Some(p), false).await.map(|_| ())
            }
        }
    }

    /// The target of a symlink (local mounts).
    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let (m, p) = self.path_of(ino)?;
        match self.host(m, &p)? {
            Some(h) => std::fs::read_link(&h)
                .map(|t| t.as_os_str().as_bytes().to_vec())
                .map_err(|e| Error::from_io(self.mount(m).ctx(&p), e)),
            None => Err(Error::new(
                ErrorKind::InvalidPath,
                self.mount(m).ctx(&p),
                "not a symlink",
            )),
        }
    }

    /// (The attribute cache is trusted here: the kernel looked the name up just before, and
    /// our own mutations keep the cache right.)
    async fn must_not_exist(&self, t: &Target) -> Result<()> {
        if self.meta(t).await?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, self.ctx(t), "exists"));
        }
        Ok(())
    }

    async fn parent_dir(&self, parent: u64) -> Result<()> {
        let pt = self.target(parent)?;
        match self.meta(&pt).await? {
            Some(m) if m.kind == FileType::Directory => Ok(()),
            Some(_) => Err(Error::not_a_directory(self.ctx(&pt))),
            None => Err(not_found(self.ctx(&pt))),
        }
    }

    fn new_entry(&self, t: Target, mode: Option<u16>, caller: Caller) -> Target {
        if let Target::Path(m, _) = &t {
            if self.mount(*m).local_root().is_none() {
                let mut ov = self.lock_overlay();
                let o = ov.entry(t.clone()).or_default();
                o.mode = mode.or(o.mode);
                if caller.uid != self.opts.uid {
                    o.uid = Some(caller.uid);
                }
                if caller.gid != self.opts.gid {
                    o.gid = Some(caller.gid);
                }
            }
        }
        self.cache.invalidate(&t);
        t
    }

    /// Give a new host entry to its caller when the daemon runs as root and the caller is
    /// someone else (without following a symlink).
    fn give_host(&self, t: &Target, host: &Path, caller: Caller) -> Result<()> {
        let me = Caller::daemon();
        if me.uid != 0 || caller == me {
            return Ok(());
        }
        std::os::unix::fs::lchown(host, Some(caller.uid), Some(caller.gid))
            .map_err(|e| Error::from_io(self.ctx(t), e))
    }

    /// Create a directory.
    pub async fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        let t = self.child_mut(parent, name)?;
        self.check_change(&t)?;
        self.parent_dir(parent).await?;
        self.must_not_exist(&t).await?;
        let Target::Path(m, p) = &t else {
            unreachable!()
        };
        let mode = (mode & !umask & 0o7777) as u16;
        if let Some(host) = self.host(*m, p)? {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(mode as u32)
                .create(&host)
                .map_err(|e| Error::from_io(self.ctx(&t), e))?;
            self.give_host(&t, &host, caller)?;
        } else {
            self.mount(*m).create_dir(p).await?;
            self.lock_dirs().insert(t.clone());
        }
        let t = self.new_entry(t, Some(mode), caller);
        let meta = match self.meta(&t).await? {
            Some(m) => m,
            // Some S3 servers keep no directory markers: the directory shows until the TTL.
            None => self.dir_meta(Some(&t)),
        };
        Ok((self.inodes.lookup(t), meta))
    }

    /// Create and open a file. On object backends nothing is written until the first
    /// close: the file is staged empty and shows in listings meanwhile.
    pub async fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(u64, Meta, Opened)> {
        let t = self.child_mut(parent, name)?;
        self.check_change(&t)?;
        let Target::Path(m, p) = t.clone() else {
            unreachable!()
        };
        if let Some(host) = self.host(m, &p)? {
            return self.create_local(t, &host, mode, umask, flags, caller);
        }
        self.parent_dir(parent).await?;
        let mut new_file = false;
        match self.meta(&t).await? {
            Some(_) if flags & libc::O_EXCL != 0 => {
                return Err(Error::new(ErrorKind::AlreadyExists, self.ctx(&t), "exists"))
            }
            Some(e) if e.kind == FileType::Directory => {
                return Err(Error::is_a_directory(self.ctx(&t)))
            }
            Some(_) => {}
            None => {
                let mode = (mode & !umask & 0o7777) as u16;
                new_file = true;
                self.touch(&t);
                self.new_entry(t.clone(), Some(mode), caller);
            }
        }
        let ino = self.inodes.lookup(t.clone());
        let fh = self.open_target(ino, &t, flags, new_file).await?;
        let meta = self.getattr(ino).await?;
        Ok((ino, meta, fh))
    }

    /// create(2) on a local mount is one open(2) of the host file: the host filesystem
    /// checks the parent, O_EXCL and the type, and the descriptor it returns serves the handle.
    fn create_local(
        &self,
        t: Target,
        host: &Path,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(u64, Meta, Opened)> {
        use std::os::unix::fs::OpenOptionsExt;
        let Target::Path(m, _) = &t else {
            unreachable!()
        };
        let err = |e| Error::from_io(self.ctx(&t), e);
        let open = |create: bool| {
            let mut o = std::fs::OpenOptions::new();
            o.read(true)
                .write(true)
                .truncate(flags & libc::O_TRUNC != 0)
                .mode(mode & !umask & 0o7777)
                .custom_flags(libc::O_NOFOLLOW);
            if create {
                o.create_new(true);
            }
            o.open(host)
        };
        // Exclusive first, so that we know whether this call made the file.
        let (file, made) = match open(true) {
            Ok(f) => (f, true),
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists && flags & libc::O_EXCL == 0 =>
            {
                (open(false).map_err(err)?, false)
            }
            Err(e) => return Err(err(e)),
        };
        let me = Caller::daemon();
        if made && me.uid == 0 && caller != me {
            std::os::unix::fs::fchown(&file, Some(caller.uid), Some(caller.gid)).map_err(err)?;
        }
        let meta = local::meta(
            &file
                .metadata()
                .map_err(|e| Error::from_io(self.ctx(&t), e))?,
        );
        let ino = self.inodes.lookup(t.clone());
        let (fh, h) =
            self.handles
                .open_file_with(ino, self.mount(*m), file, flags & libc::O_APPEND != 0);
        self.inodes.open(ino);
        Ok((
            ino,
            meta,
            Opened {
                fh,
                read_only: false,
                no_flush: true,
                passthrough: Some(h.file.clone()),
            },
        ))
    }

    /// Open a file.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<Opened> {
        let t = self.target(ino)?;
        self.open_target(ino, &t, flags, false).await
    }

    async fn open_target(
        &self,
        ino: u64,
        t: &Target,
        flags: i32,
        new_file: bool,
    ) -> Result<Opened> {
        let Target::Path(m, p) = t else {
            return Err(Error::is_a_directory("/"));
        };
        let size = if new_file {
            0
        } else {
            let meta = self.meta_required(t).await?;
            if meta.kind == FileType::Directory {
                return Err(Error::is_a_directory(self.ctx(t)));
            }
            meta.size
        };
        let acc = flags & libc::O_ACCMODE;
        let writable = acc != libc::O_RDONLY;
        let trunc = flags & libc::O_TRUNC != 0;
        if writable || trunc {
            self.check_change(t)?;
        }
        let host = self.host(*m, p)?;
        let (fh, h) = self.handles.open(
            ino,
            self.mount(*m),
            host.as_deref(),
            size,
            writable,
            flags & libc::O_APPEND != 0,
            new_file.then(|| self.cache_dir.path()),
        )?;
        self.inodes.open(ino);
        if trunc && size > 0 {
            if let Err(e) = h.file.truncate(p, self.cache_dir.path(), 0).await {
                self.release(ino, fh).await.ok();
                return Err(e);
            }
            self.touch(t);
        }
        let passthrough = host.is_some().then(|| h.file.clone());
        let read_only = !writable && !trunc;
        Ok(Opened {
            fh,
            read_only,
            no_flush: read_only || host.is_some(),
            passthrough,
        })
    }

    fn touch(&self, t: &Target) {
        if let Target::Path(m, _) = t {
            if self.mount(*m).local_root().is_none() {
                self.lock_overlay().entry(t.clone()).or_default().mtime = Some(SystemTime::now());
            }
        }
        self.cache.invalidate(t);
    }

    /// The path of an open inode (None once unlinked).
    fn open_path(&self, ino: u64) -> Option<(usize, String)> {
        match self.inodes.target(ino) {
            Some(Target::Path(m, p)) => Some((m, p)),
            _ => None,
        }
    }

    /// Read from an open file.
    pub async fn read(&self, ino: u64, fh: u64, off: u64, size: u32) -> Result<Bytes> {
        let h = self.handles.file(fh)?;
        let (m, p) = self.open_path(ino).unzip();
        let data = h.file.read(&p.unwrap_or_default(), &h, off, size).await?;
        if let Some(m) = m {
            self.stats.add(m, |s| &s.bytes_read, data.len() as u64);
        }
        Ok(data)
    }

    /// Write to an open file.
    pub async fn write(&self, ino: u64, fh: u64, off: u64, data: &[u8]) -> Result<u32> {
        let h = self.handles.file(fh)?;
        let mp = self.open_path(ino);
        let p = mp.as_ref().map(|(_, p)| p.as_str()).unwrap_or_default();
        let n = h
            .file
            .write(p, self.cache_dir.path(), &h, off, data)
            .await?;
        h.pending.store(true, Ordering::Release);
        if let Some((m, p)) = mp {
            self.stats.add(m, |s| &s.bytes_written, u64::from(n));
            if self.mount(m).local_root().is_none() {
                self.touch(&Target::Path(m, p));
            }
        }
        Ok(n)
    }

    async fn upload(&self, ino: u64, file: &OpenFile, sync: bool) -> Result<()> {
        let mp = self.open_path(ino);
        let uploaded = file
            .flush(mp.as_ref().map(|(_, p)| p.as_str()), sync)
            .await?;
        if let (true, Some((m, p))) = (uploaded, mp) {
            // The backend now holds what the daemon knows: no need to ask it again.
            let t = Target::Path(m, p);
            match file.staged_size() {
                Some(size) => self.cache.put(t.clone(), Some(self.staged_meta(&t, size))),
                None => self.cache.invalidate(&t),
            }
        }
        Ok(())
    }

    /// close(2) of a descriptor: the backend holds every byte once this returns Ok.
    pub async fn flush(&self, ino: u64, fh: u64) -> Result<()> {
        let h = self.handles.file(fh)?;
        h.pending.store(false, Ordering::Release);
        self.upload(ino, &h.file, false)
            .await
            .inspect_err(|_| h.pending.store(true, Ordering::Release))
    }

    /// fsync(2): as flush, and local data reaches the disk.
    pub async fn fsync(&self, ino: u64, fh: u64) -> Result<()> {
        let h = self.handles.file(fh)?;
        h.pending.store(false, Ordering::Release);
        self.upload(ino, &h.file, true)
            .await
            .inspect_err(|_| h.pending.store(true, Ordering::Release))
    }

    /// The last close of a handle.
    pub async fn release(&self, ino: u64, fh: u64) -> Result<()> {
        let h = self.handles.file(fh)?;
        // A handle uploads only its own writes since its last flush (writes through mmap
        // arrive after close): it must not upload another handle's half-written state (a
        // file just truncated by an open with O_TRUNC would reach the backend empty).
        let r = if h.pending.load(Ordering::Acquire) {
            self.upload(ino, &h.file, false).await
        } else {
            Ok(())
        };
        self.handles.release(fh);
        self.inodes.close(ino);
        r
    }

    /// Upload every dirty open file (at unmount and on signals).
    pub async fn flush_all(&self) -> Result<usize> {
        let mut n = 0;
        let mut first_err = None;
        for (ino, f) in self.handles.all_open() {
            if f.is_dirty().await {
                match self.upload(ino, &f, true).await {
                    Ok(()) => n += 1,
                    Err(e) => {
                        tracing::error!(error = %e, "upload at shutdown failed");
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    async fn list(&self, t: &Target) -> Result<Vec<DirEntry<Meta>>> {
        let mut out = Vec::new();
        match t {
            Target::Root => {
                for (i, m) in self.mounts.iter().enumerate() {
                    let ct = Target::Path(i, String::new());
                    let meta = self.meta_required(&ct).await?;
                    out.push(DirEntry {
                        name: m.name().to_string(),
                        target: Some(ct),
                        meta,
                    });
                }
            }
            Target::Path(m, p) => {
                if let Some(host) = self.host(*m, p)? {
                    let rd =
                        std::fs::read_dir(&host).map_err(|e| Error::from_io(self.ctx(t), e))?;
                    for de in rd {
                        let de = de.map_err(|e| Error::from_io(self.ctx(t), e))?;
                        let Some(name) = de.file_name().to_str().map(str::to_string) else {
                            tracing::warn!(dir = %self.ctx(t), name = ?de.file_name(), "a non-UTF-8 name is not shown");
                            continue;
                        };
                        let md = match de.metadata() {
                            Ok(md) => md,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(Error::from_io(self.ctx(t), e)),
                        };
                        out.push(DirEntry {
                            target: Some(Target::Path(*m, path::join(p, &name))),
                            name,
                            meta: local::meta(&md),
                        });
                    }
                } else {
                    for (name, e) in self.mount(*m).list(p).await? {
                        let ct = Target::Path(*m, path::join(p, &name));
                        let meta = self.entry_meta(&ct, &e);
                        self.cache.put(ct.clone(), Some(meta.clone()));
                        out.push(DirEntry {
                            name,
                            target: Some(ct),
                            meta,
                        });
                    }
                    let made: Vec<Target> = self
                        .lock_dirs()
                        .iter()
                        .filter(|d| matches!(d, Target::Path(dm, dp) if dm == m && !dp.is_empty() && path::parent(dp) == p))
                        .cloned()
                        .collect();
                    for d in made {
                        let Target::Path(_, dp) = &d else { continue };
                        let name = path::basename(dp).to_string();
                        if !out.iter().any(|e| e.name == name) {
                            out.push(DirEntry {
                                name,
                                meta: self.dir_meta(Some(&d)),
                                target: Some(d),
                            });
                        }
                    }
                    // Files open and written here, possibly not uploaded yet.
                    for (ino, f) in self.handles.all_open() {
                        let (Some(size), Some(ft)) = (f.staged_size(), self.inodes.target(ino))
                        else {
                            continue;
                        };
                        let Target::Path(fm, fp) = &ft else { continue };
                        if fm != m || fp.is_empty() || path::parent(fp) != p {
                            continue;
                        }
                        let meta = self.staged_meta(&ft, size);
                        let name = path::basename(fp).to_string();
                        match out.iter_mut().find(|e| e.name == name) {
                            Some(e) => e.meta = meta,
                            None => out.push(DirEntry {
                                name,
                                target: Some(ft.clone()),
                                meta,
                            }),
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Open a directory: its listing is taken now, so offsets stay stable.
    pub async fn opendir(&self, ino: u64) -> Result<u64> {
        let t = self.target(ino)?;
        let meta = self.meta_required(&t).await?;
        if meta.kind != FileType::Directory {
            return Err(Error::not_a_directory(self.ctx(&t)));
        }
        let parent_meta = match &t {
            Target::Path(m, p) if !p.is_empty() => self
                .meta(&Target::Path(*m, path::parent(p).to_string()))
                .await?
                .unwrap_or_else(|| self.dir_meta(None)),
            _ => self.dir_meta(None),
        };
        let mut entries = vec![
            DirEntry {
                name: ".".into(),
                target: None,
                meta,
            },
            DirEntry {
                name: "..".into(),
                target: None,
                meta: parent_meta,
            },
        ];
        entries.extend(self.list(&t).await?);
        Ok(self.handles.open_dir(ino, entries))
    }

    /// Entries of an open directory from `offset` on: (entry, offset of the next one).
    pub fn readdir(&self, fh: u64, offset: u64) -> Result<Vec<(DirEntry<Meta>, u64)>> {
        let d = self.handles.dir(fh)?;
        Ok(d.entries
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, e)| (e.clone(), i as u64 + 1))
            .collect())
    }

    /// The inode number to show for a listed entry. With `count`, a kernel lookup is
    /// counted (readdirplus); `.` and `..` never count.
    pub fn entry_ino(&self, dir_ino: u64, e: &DirEntry<Meta>, count: bool) -> u64 {
        match &e.target {
            None if e.name == "." => dir_ino,
            None => ROOT,
            Some(t) if count => self.inodes.lookup(t.clone()),
            Some(t) => self.inodes.peek(t).unwrap_or(u64::MAX >> 1),
        }
    }

    /// Close a directory.
    pub fn releasedir(&self, fh: u64) {
        self.handles.release_dir(fh);
    }

    /// On object stores a directory exists only through its children or a marker: keep
    /// the parent of a removed entry alive with a marker when it would vanish.
    async fn keep_parent(&self, m: usize, p: &str) -> Result<()> {
        let mount = self.mount(m);
        let parent = path::parent(p);
        if mount.local_root().is_some() || parent.is_empty() {
            return Ok(());
        }
        let pt = Target::Path(m, parent.to_string());
        self.cache.invalidate(&pt);
        if self.lock_dirs().contains(&pt) {
            // made here: it exists for as long as the daemon does, marker or not
            return Ok(());
        }
        if !mount.dir_has_entries(parent).await? {
            mount.create_dir(parent).await?;
        }
        Ok(())
    }

    fn forget_path(&self, t: &Target) {
        self.inodes.unlink(t);
        if let Target::Path(m, p) = t {
            self.cache.invalidate_tree(*m, p);
            self.lock_dirs().retain(|k| !k.is_within(*m, p));
            self.lock_overlay().retain(|k, _| !k.is_within(*m, p));
        }
    }

    /// Remove a file (or symlink).
    pub async fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let t = self.child_mut(parent, name)?;
        self.check_remove(&t)?;
        let meta = self.meta_required(&t).await?;
        if meta.kind == FileType::Directory {
            return Err(Error::is_a_directory(self.ctx(&t)));
        }
        let Target::Path(m, p) = &t else {
            unreachable!()
        };
        if let Some(host) = self.host(*m, p)? {
            std::fs::remove_file(&host).map_err(|e| Error::from_io(self.ctx(&t), e))?;
        } else {
            self.mount(*m).delete_file(p).await?;
            self.keep_parent(*m, p).await?;
        }
        self.forget_path(&t);
        Ok(())
    }

    /// Remove an empty directory.
    pub async fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let t = self.child_mut(parent, name)?;
        self.check_remove(&t)?;
        self.cache.invalidate(&t);
        let meta = self.meta_required(&t).await?;
        if meta.kind != FileType::Directory {
            return Err(Error::not_a_directory(self.ctx(&t)));
        }
        let Target::Path(m, p) = &t else {
            unreachable!()
        };
        if let Some(host) = self.host(*m, p)? {
            std::fs::remove_dir(&host).map_err(|e| Error::from_io(self.ctx(&t), e))?;
        } else {
            let mount = self.mount(*m);
            let has_made_child = self
                .lock_dirs()
                .iter()
                .any(|d| matches!(d, Target::Path(dm, dp) if dm == m && path::parent(dp) == p.as_str() && !dp.is_empty()));
            if has_made_child || !mount.list(p).await?.is_empty() {
                return Err(Error::new(
                    ErrorKind::DirectoryNotEmpty,
                    self.ctx(&t),
                    "directory not empty",
                ));
            }
            mount.remove_empty_dir(p).await?;
            self.keep_parent(*m, p).await?;
        }
        self.forget_path(&t);
        Ok(())
    }

    /// Rename inside a mount (across mounts: EXDEV, so `mv` copies).
    pub async fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<()> {
        let from = self.child_mut(parent, name)?;
        let to = self.child_mut(newparent, newname)?;
        self.check_remove(&from)?;
        self.check_change(&to)?;
        let (Target::Path(m, fp), Target::Path(m2, tp)) = (&from, &to) else {
            unreachable!("check_change refuses the root")
        };
        if m != m2 {
            return Err(Error::new(
                ErrorKind::CrossMount,
                self.ctx(&to),
                "rename across mounts",
            ));
        }
        if tp.is_empty() {
            return Err(Error::new(ErrorKind::Busy, self.ctx(&to), "a mount's root"));
        }
        let m = *m;
        if fp == tp {
            return Ok(());
        }
        if let (Some(hf), Some(ht)) = (self.host(m, fp)?, self.host(m, tp)?) {
            local::rename(&hf, &ht, flags).map_err(|e| Error::from_io(self.ctx(&from), e))?;
        } else {
            self.rename_object(m, &from, &to, fp, tp, flags).await?;
        }
        self.cache.invalidate_tree(m, fp);
        self.cache.invalidate_tree(m, tp);
        if flags & libc::RENAME_EXCHANGE != 0 {
            // Swap the two subtrees in the inode table (NUL never occurs in a real path).
            self.inodes.rename(m, tp, "\0swap");
            self.inodes.rename(m, fp, tp);
            self.inodes.rename(m, "\0swap", fp);
            return Ok(());
        }
        self.inodes.rename(m, fp, tp);
        let mut ov = self.lock_overlay();
        let moved: Vec<(Target, Overlay)> = ov
            .iter()
            .filter(|(k, _)| k.is_within(m, fp))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in moved {
            ov.remove(&k);
            if let Target::Path(km, kp) = k {
                ov.insert(Target::Path(km, format!("{tp}{}", &kp[fp.len()..])), v);
            }
        }
        drop(ov);
        let mut dirs = self.lock_dirs();
        let moved: Vec<Target> = dirs
            .iter()
            .filter(|k| k.is_within(m, fp))
            .cloned()
            .collect();
        for k in moved {
            dirs.remove(&k);
            if let Target::Path(km, kp) = k {
                dirs.insert(Target::Path(km, format!("{tp}{}", &kp[fp.len()..])));
            }
        }
        Ok(())
    }

    async fn rename_object(
        &self,
        m: usize,
        from: &Target,
        to: &Target,
        fp: &str,
        tp: &str,
        flags: u32,
    ) -> Result<()> {
        if flags & libc::RENAME_EXCHANGE != 0 {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                self.ctx(from),
                "RENAME_EXCHANGE is not supported on object backends",
            ));
        }
        self.cache.invalidate(from);
        self.cache.invalidate(to);
        let src = self.meta_required(from).await?;
        let src_dir = src.kind == FileType::Directory;
        if src_dir && tp.starts_with(&format!("{fp}/")) {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                self.ctx(to),
                "cannot move a directory into itself",
            ));
        }
        let mount = self.mount(m).clone();
        if let Some(dst) = self.meta(to).await? {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(Error::new(ErrorKind::AlreadyExists, self.ctx(to), "exists"));
            }
            let dst_dir = dst.kind == FileType::Directory;
            match (src_dir, dst_dir) {
                (false, true) => return Err(Error::is_a_directory(self.ctx(to))),
                (true, false) => return Err(Error::not_a_directory(self.ctx(to))),
                (true, true) => {
                    if !mount.list(tp).await?.is_empty() {
                        return Err(Error::new(
                            ErrorKind::DirectoryNotEmpty,
                            self.ctx(to),
                            "directory not empty",
                        ));
                    }
                    mount.remove_empty_dir(tp).await?;
                }
                (false, false) => {}
            }
        }
        // Dirty data of open files below the source reaches the backend before the copy.
        for (ino, f) in self.handles.all_open() {
            if self.inodes.target(ino).is_some_and(|t| t.is_within(m, fp)) {
                self.upload(ino, &f, false).await?;
            }
        }
        if src_dir && mount.stat(fp).await?.is_none() {
            // A directory only this daemon knows (the server keeps no markers): nothing to copy.
            mount.create_dir(tp).await?;
            return Ok(());
        }
        let src_node = AsyncNode::new(mount.clone(), fp.to_string());
        let dst_node = AsyncNode::new(mount.clone(), tp.to_string());
        src_node.copy(&dst_node).await?;
        if src_dir {
            mount.delete_tree(fp).await?;
        } else {
            mount.delete_file(fp).await?;
        }
        self.keep_parent(m, fp).await
    }

    /// Create a symlink (local mounts; elsewhere EPERM, as symlink(2) specifies).
    pub async fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        let t = self.child_mut(parent, name)?;
        self.check_change(&t)?;
        let Target::Path(m, p) = &t else {
            unreachable!()
        };
        match self.host(*m, p)? {
            Some(host) => {
                std::os::unix::fs::symlink(target, &host)
                    .map_err(|e| Error::from_io(self.ctx(&t), e))?;
                self.give_host(&t, &host, caller)?;
                let meta = self.meta_required(&t).await?;
                Ok((self.inodes.lookup(t), meta))
            }
            None => Err(Error::new(
                ErrorKind::NotPermitted,
                self.ctx(&t),
                "this backend cannot hold symlinks",
            )),
        }
    }

    /// Create a hard link (local mounts; elsewhere EPERM, as link(2) specifies).
    pub async fn link(&self, ino: u64, newparent: u64, newname: &OsStr) -> Result<(u64, Meta)> {
        let (m, p) = self.path_of(ino)?;
        let t = self.child_mut(newparent, newname)?;
        self.check_change(&t)?;
        let Target::Path(m2, p2) = &t else {
            unreachable!()
        };
        if *m2 != m {
            return Err(Error::new(
                ErrorKind::CrossMount,
                self.ctx(&t),
                "link across mounts",
            ));
        }
        match (self.host(m, &p)?, self.host(m, p2)?) {
            (Some(a), Some(b)) => {
                std::fs::hard_link(&a, &b).map_err(|e| Error::from_io(self.ctx(&t), e))?;
                let meta = self.meta_required(&t).await?;
                Ok((self.inodes.lookup(t), meta))
            }
            _ => Err(Error::new(
                ErrorKind::NotPermitted,
                self.ctx(&t),
                "this backend cannot hold hard links",
            )),
        }
    }

    /// Filesystem figures: the host disk's for local mounts, generous constants elsewhere.
    pub async fn statfs(&self, ino: u64) -> Result<Statfs> {
        if let Some(Target::Path(m, _)) = self.inodes.target(ino) {
            if let Some(root) = self.mount(m).local_root() {
                let s =
                    local::statvfs(root).map_err(|e| Error::from_io(self.mount(m).ctx(""), e))?;
                return Ok(Statfs {
                    blocks: s.f_blocks,
                    bfree: s.f_bfree,
                    bavail: s.f_bavail,
                    files: s.f_files,
                    ffree: s.f_ffree,
                    bsize: s.f_bsize as u32,
                    namelen: 255,
                    frsize: s.f_frsize as u32,
                });
            }
        }
        Ok(Statfs {
            blocks: 1 << 40,
            bfree: 1 << 40,
            bavail: 1 << 40,
            files: 1 << 32,
            ffree: 1 << 32,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
        })
    }
}

//! The async filesystem core, kernel-free: every FUSE operation as an async method over
//! inode numbers that returns plain structs. `adapter.rs` only spawns, calls and replies.

mod attrs;
mod dirs;
mod host;
mod io;
mod moving;
mod namespace;
mod object;
mod object_ns;
mod types;

pub use dirs::DirReplier;
use host::Host;
use object::Object;
pub use types::*;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuser::{FileAttr, FileType, INodeNo};

use crate::config::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::fuse::attr_cache::{AttrCache, Listings};
use crate::fuse::dir_attrs::DirAttrs;
use crate::fuse::handles::{CacheDir, DirEntry, Handles, OpenFile};
use crate::fuse::inode::{Inodes, Target, ROOT};
use crate::fuse::local;
use crate::fuse::stats::{Snapshot, Stats};
use crate::storage::mount::{Entry, EntryKind, Mount};
use crate::storage::node::AsyncNode;
use crate::storage::path;
use crate::storage::posix::PosixMeta;

/// The filesystem: mounts, inode table, attribute cache, handles.
#[derive(Debug)]
pub struct Fs {
    mounts: Vec<Arc<Mount>>,
    opts: FsOptions,
    inodes: Inodes,
    cache: AttrCache<Meta>,
    /// Names of whole listings of object-backend directories.
    listings: Listings,
    handles: Handles<Meta>,
    stats: Stats,
    /// Object backends: what the daemon knows of directories beyond their markers (bounded).
    dirs: DirAttrs,
    cache_dir: CacheDir,
    started: SystemTime,
    /// Local mounts: a host rename or unlink and the inode table's change are one step for
    /// an open, which finds its inode's host file by path (the kernel does not order opens
    /// with renames, so the path could otherwise name another file by then). Never held
    /// across an await.
    ns: std::sync::RwLock<()>,
    /// Per mount: which side of the core serves it.
    sides: Vec<Kind>,
    /// Object mounts: the paths renames and unlinks are changing now.
    moving: moving::Moving,
}

/// What an open asks for.
struct OpenMode {
    writable: bool,
    trunc: bool,
    append: bool,
}

/// Which side of the core serves a mount, fixed when the filesystem is made.
#[derive(Debug)]
enum Kind {
    /// A local mount: system calls below this host directory.
    Host(crate::fuse::local::HostRoot),
    /// Every other backend: objects through its operator.
    Object,
}

/// The one seam between the two halves of the core: every operation on a mount's entry is
/// handed, once, to the side that serves the mount, and runs there to the end. The host half
/// never consults the attribute cache, the listings or the directory table (the host
/// directory is the truth); the object half never makes a host system call.
enum Side<'a> {
    Host(Host<'a>),
    Object(Object<'a>),
}

/// The FUSE file type of an entry kind.
pub fn file_type(k: EntryKind) -> FileType {
    match k {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::Socket => FileType::Socket,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
    }
}

/// The `st_mode` type bits of a FUSE file type.
pub fn type_bits(k: FileType) -> u32 {
    match k {
        FileType::RegularFile => libc::S_IFREG,
        FileType::Directory => libc::S_IFDIR,
        FileType::Symlink => libc::S_IFLNK,
        FileType::NamedPipe => libc::S_IFIFO,
        FileType::Socket => libc::S_IFSOCK,
        FileType::CharDevice => libc::S_IFCHR,
        FileType::BlockDevice => libc::S_IFBLK,
    }
}

/// An object-backend entry's attributes: what it carries, the defaults for the rest.
fn object_meta(opts: &FsOptions, e: &Entry) -> Meta {
    let kind = file_type(e.kind);
    let perm = e.posix.perm().unwrap_or(match kind {
        FileType::Directory => opts.dir_mode,
        FileType::Symlink => 0o777,
        _ => opts.file_mode,
    });
    Meta {
        kind,
        size: e.size,
        blocks: e.size.div_ceil(512),
        atime: e.posix.atime.unwrap_or(e.mtime),
        mtime: e.mtime,
        ctime: e.posix.ctime.unwrap_or(e.mtime),
        perm,
        uid: e.posix.uid.unwrap_or(opts.uid),
        gid: e.posix.gid.unwrap_or(opts.gid),
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        rdev: e.posix.rdev.unwrap_or(0),
        blksize: OBJECT_BLKSIZE,
        host: None,
    }
}

/// The attributes to store for `m` (object backends): everything it shows.
fn posix_of(m: &Meta) -> PosixMeta {
    PosixMeta {
        mode: Some(type_bits(m.kind) | u32::from(m.perm)),
        uid: Some(m.uid),
        gid: Some(m.gid),
        mtime: Some(m.mtime),
        ctime: Some(m.ctime),
        atime: Some(m.atime),
        rdev: (m.rdev != 0).then_some(m.rdev),
    }
}

fn not_found(ctx: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotFound, ctx, "no such file or directory")
}

impl Fs {
    /// A filesystem over these mounts.
    pub fn new(mounts: Vec<Arc<Mount>>, opts: FsOptions) -> Result<Fs> {
        let cache_dir = CacheDir::new(opts.cache_dir.as_deref(), opts.cache_max_size)?;
        let inodes = if opts.single && mounts.len() == 1 {
            Inodes::rooted(Target::Path(0, String::new()))
        } else {
            Inodes::new()
        };
        let stats = Stats::new(mounts.iter().map(|m| m.name().to_string()).collect());
        // Per mount: S3's cache_ttl, or the daemon's TTLs. Local mounts ask their host
        // directory every time and keep no listings.
        let ttls: Vec<(Duration, Duration)> = mounts
            .iter()
            .map(|m| match &m.config().backend {
                Backend::S3 {
                    cache_ttl: Some(t), ..
                } => (*t, *t),
                _ => (opts.attr_ttl, opts.negative_ttl),
            })
            .collect();
        let listing_ttls = mounts
            .iter()
            .zip(&ttls)
            .map(|(m, (t, _))| match m.local_root() {
                Some(_) => Duration::ZERO,
                None => *t,
            })
            .collect();
        let sides = mounts
            .iter()
            .map(|m| match m.local_root() {
                Some(root) => crate::fuse::local::HostRoot::new(root)
                    .map(|r| Kind::Host(r.with_noatime(opts.noatime)))
                    .map_err(|e| Error::from_io(m.ctx(""), e)),
                None => Ok(Kind::Object),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Fs {
            cache: AttrCache::per_mount(ttls),
            listings: Listings::new(listing_ttls),
            mounts,
            stats,
            opts,
            inodes,
            handles: Handles::default(),
            dirs: DirAttrs::default(),
            cache_dir,
            started: SystemTime::now(),
            ns: std::sync::RwLock::new(()),
            sides,
            moving: moving::Moving::default(),
        })
    }

    /// The TTL the kernel may cache entries and attributes for.
    pub fn ttl(&self) -> Duration {
        self.opts.attr_ttl
    }

    /// Attributes of the root directory (also the filler of a negative entry's reply).
    pub fn root_meta(&self) -> Meta {
        self.dir_meta(None)
    }

    /// The TTL the kernel may remember that a name does not exist for.
    pub fn negative_ttl(&self) -> Duration {
        self.opts.negative_ttl
    }

    /// The per-mount counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The mount an inode belongs to (None for the root and unknown inodes).
    pub fn mount_of(&self, ino: u64) -> Option<usize> {
        self.inodes.mount_of(ino)
    }

    /// The mounts served, in order.
    pub fn mounts(&self) -> &[Arc<Mount>] {
        &self.mounts
    }

    /// Every mount's counters, with the open files not uploaded yet.
    pub async fn stats_report(&self) -> Vec<Snapshot> {
        let mut pending = vec![0u64; self.mounts.len()];
        let mut open = vec![0u64; self.mounts.len()];
        for (ino, f) in self.handles.all_open() {
            if let Some(m) = self.mount_of(ino) {
                open[m] += 1;
                if f.is_dirty().await {
                    pending[m] += 1;
                }
            }
        }
        self.stats.snapshot(&pending, &open)
    }

    /// The sizes of the daemon's tables, for the SIGUSR1 report: what it holds per file it
    /// has seen (inodes are held for as long as the kernel keeps a reference).
    pub fn tables(&self) -> String {
        let (dirs, names) = self.listings.sizes();
        format!(
            "tables: {} inodes, {} cached attributes, {dirs} listings of {names} names, {} directory attributes, {} open files",
            self.inodes.len(),
            self.cache.len(),
            self.dirs.len(),
            self.handles.all_open().len()
        )
    }

    /// May a request on an inode of `mount` ([`Fs::mount_of`]) run on the FUSE thread that
    /// read it? Yes for the root and for local and memory mounts, whose operations never wait
    /// on the network.
    pub fn serves_inline(&self, mount: Option<usize>) -> bool {
        mount.is_none_or(|m| !self.mount(m).is_remote())
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
            rdev: m.rdev,
            blksize: m.blksize,
            flags: 0,
        }
    }

    /// See `ns`: held by a local rename or unlink.
    fn ns_change(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.ns.write().unwrap_or_else(|e| e.into_inner())
    }

    /// See `ns`: held by an open while it finds its host file.
    fn ns_stable(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.ns.read().unwrap_or_else(|e| e.into_inner())
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
        if self.target(parent)? == Target::Root {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("/{}", name.to_string_lossy()),
                "the root lists the mounts and cannot be changed",
            ));
        }
        self.child(parent, name)
    }

    /// A name about to be made (mkdir, create, mknod, symlink, link): the target, checked to
    /// be changeable, with its mount and path.
    fn child_to_make(&self, parent: u64, name: &OsStr) -> Result<(Target, usize, String)> {
        let t = self.child_mut(parent, name)?;
        self.check_change(&t)?;
        let Target::Path(m, p) = &t else {
            unreachable!("check_change refuses the root")
        };
        let (m, p) = (*m, p.clone());
        Ok((t, m, p))
    }

    /// The side of the core that serves mount `m`: chosen once per mount (see [`Side`]).
    fn side(&self, m: usize) -> Side<'_> {
        let mount = &self.mounts[m];
        match &self.sides[m] {
            Kind::Host(root) => Side::Host(Host { fs: self, m, root }),
            Kind::Object => Side::Object(Object { fs: self, m, mount }),
        }
    }

    /// A name about to be removed (or renamed away): the target, checked to be removable,
    /// with its mount and path.
    fn child_to_remove(&self, parent: u64, name: &OsStr) -> Result<(Target, usize, String)> {
        let t = self.child_mut(parent, name)?;
        self.check_remove(&t)?;
        let Target::Path(m, p) = &t else {
            unreachable!("check_remove refuses the root")
        };
        let (m, p) = (*m, p.clone());
        Ok((t, m, p))
    }

    /// A directory's attributes with nothing known of it (the root, a bare prefix).
    fn dir_meta(&self, t: Option<&Target>) -> Meta {
        let e = Entry {
            kind: EntryKind::Dir,
            size: 0,
            mtime: self.started,
            etag: None,
            posix: PosixMeta::default(),
        };
        match t {
            Some(t) => self.entry_meta(t, &e),
            None => object_meta(&self.opts, &e),
        }
    }

    /// The attributes of an object-backend entry: what the object carries, the `[fuse]`
    /// defaults for what it does not; for a directory, what the daemon knows beyond its
    /// marker wins.
    fn entry_meta(&self, t: &Target, e: &Entry) -> Meta {
        let mut m = object_meta(&self.opts, e);
        if e.is_dir() {
            m.nlink = self.dir_nlink(t);
            if let Some(a) = self.dirs.get(t) {
                m.perm = a.perm.unwrap_or(m.perm);
                m.uid = a.uid.unwrap_or(m.uid);
                m.gid = a.gid.unwrap_or(m.gid);
                m.mtime = a.mtime.unwrap_or(m.mtime);
                m.ctime = a.ctime.unwrap_or(m.ctime);
                m.atime = a.atime.unwrap_or(m.atime);
            }
        }
        m
    }

    /// An object-backend directory's link count: 2 plus its subdirectories where the
    /// backend counts them in O(1) (memory); elsewhere 1, "unknown", as btrfs reports, so
    /// that `find` never takes a directory with subdirectories for a leaf (counting them
    /// would cost a listing per stat).
    fn dir_nlink(&self, t: &Target) -> u32 {
        match t {
            Target::Path(m, p) => self.mount(*m).subdirs(p).map_or(1, |n| {
                2u32.saturating_add(n.min(u64::from(u32::MAX)) as u32)
            }),
            Target::Root => 2,
        }
    }

    /// Attributes of a target; `Ok(None)` when it does not exist.
    async fn meta(&self, t: &Target) -> Result<Option<Meta>> {
        match t {
            Target::Root => Ok(Some(self.dir_meta(None))),
            Target::Path(m, p) => match self.side(*m) {
                Side::Host(h) => h.meta(p),
                Side::Object(o) => o.meta(t, p).await,
            },
        }
    }

    /// The attributes of an object-backend file open and staged here.
    fn staged(&self, t: &Target) -> Option<Meta> {
        let ino = self.inodes.peek(t)?;
        let f = self.handles.open_file(ino)?;
        f.staged_size().map(|size| self.staged_meta(&f, size))
    }

    /// An open file's attributes: its size as written, the attributes its upload will carry,
    /// and as times the last change through the daemon where it has no times of its own.
    fn staged_meta(&self, f: &OpenFile, size: u64) -> Meta {
        let posix = f.posix();
        let changed = f.changed().unwrap_or_else(SystemTime::now);
        let e = Entry {
            kind: EntryKind::File,
            size,
            mtime: posix.mtime.unwrap_or(changed),
            etag: None,
            posix: PosixMeta {
                ctime: posix.ctime.or(Some(changed)),
                ..posix
            },
        };
        object_meta(&self.opts, &e)
    }

    async fn meta_required(&self, t: &Target) -> Result<Meta> {
        self.meta(t).await?.ok_or_else(|| not_found(self.ctx(t)))
    }

    /// What open's `flags` ask of `t`: a change is checked to be allowed.
    fn open_mode(&self, t: &Target, flags: i32) -> Result<OpenMode> {
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let trunc = flags & libc::O_TRUNC != 0;
        if writable || trunc {
            self.check_change(t)?;
        }
        Ok(OpenMode {
            writable,
            trunc,
            append: flags & libc::O_APPEND != 0,
        })
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
        Ok((self.intern(t, &m), m))
    }

    /// Answer a LOOKUP: the entry, or (when the negative TTL is not zero) a negative entry,
    /// inode 0, that the kernel keeps for the negative TTL, so that the next lookup or a
    /// create of that name needs no LOOKUP. Other errors are errors.
    pub async fn lookup_entry(&self, parent: u64, name: &OsStr) -> Result<EntryOut> {
        match self.lookup(parent, name).await {
            Ok((ino, m)) => Ok(EntryOut {
                attr: self.attr(ino, &m),
                ttl: self.ttl(),
            }),
            Err(e) if e.errno() == libc::ENOENT && !self.negative_ttl().is_zero() => {
                self.stats.error(&e);
                tracing::debug!(op = "lookup", errno = libc::ENOENT, "{e}");
                let mut attr = self.attr(0, &self.root_meta());
                attr.ino = INodeNo(0);
                Ok(EntryOut {
                    attr,
                    ttl: self.negative_ttl(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The inode of `t`, whose attributes are `m`, with one more kernel lookup counted: the
    /// host file's inode on local mounts (one for all its names), the path's elsewhere.
    fn intern(&self, t: Target, m: &Meta) -> u64 {
        let Some(k) = self.host_key(&t, m) else {
            return self.inodes.lookup(t);
        };
        let ino = self.inodes.lookup_host(t.clone(), k);
        // A file met under a second name: a hard link, or renamed on the host behind the
        // daemon (another mount of the same directory, a host process). A name that no
        // longer stands for this file is dropped, so that the inode is never served by it.
        if let Target::Path(m, _) = &t {
            if let Side::Host(h) = self.side(*m) {
                for other in self.inodes.other_names(ino, &t) {
                    let Target::Path(_, p) = &other else { continue };
                    let still = h
                        .meta(p)
                        .ok()
                        .flatten()
                        .and_then(|om| self.host_key(&other, &om));
                    if still != Some(k) {
                        self.inodes.unlink(&other);
                    }
                }
            }
        }
        ino
    }

    /// The host file `t` is (local mounts), by the attributes `m` read of it.
    fn host_key(&self, t: &Target, m: &Meta) -> Option<crate::fuse::inode::HostKey> {
        match (t, m.host) {
            (Target::Path(mount, _), Some((dev, ino, birth))) => Some((*mount, dev, ino, birth)),
            _ => None,
        }
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
    }

    /// The target of a symlink: the host link's on local mounts, the object's body elsewhere.
    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let (m, p) = self.path_of(ino)?;
        match self.side(m) {
            Side::Host(h) => h.readlink(&p),
            Side::Object(o) => o.readlink(&Target::Path(m, p.clone()), &p).await,
        }
    }

    /// Filesystem figures: the host disk's for local mounts, generous constants elsewhere.
    pub async fn statfs(&self, ino: u64) -> Result<Statfs> {
        match self.inodes.target(ino) {
            Some(Target::Path(m, _)) => match self.side(m) {
                Side::Host(h) => h.statfs(),
                Side::Object(o) => Ok(o.statfs()),
            },
            _ => Ok(Object::unbounded()),
        }
    }
}

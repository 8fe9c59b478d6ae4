//! The plain structs the core returns and takes: attributes, times to set, statfs figures,
//! an open's answer, a lookup's answer, the core's settings and the caller of a request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{FileAttr, FileType};

use crate::fuse::handles::OpenFile;

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
    /// Device number of a device node (0 otherwise).
    pub rdev: u32,
    /// Preferred I/O size (`st_blksize`): the host's on local mounts, 4096 elsewhere.
    pub blksize: u32,
    /// Local mounts: the host file's (st_dev, st_ino, birth time in ns or 0). Its st_ino is
    /// shown, and all its names are one inode.
    pub host: Option<(u64, u64, u64)>,
}

/// `st_blksize` of entries on object backends (as tmpfs and ext4 show).
pub const OBJECT_BLKSIZE: u32 = 4096;

/// A time to set: now, or a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    /// The current time.
    Now,
    /// This time.
    At(SystemTime),
}

impl TimeSet {
    pub(super) fn resolve(self) -> SystemTime {
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

impl Opened {
    /// The kernel's passthrough registration of this handle's file, made on the inode's
    /// first open by `register` (the kernel's call) and shared by its later handles. None for
    /// files the daemon serves itself, and where the kernel refuses passthrough.
    pub fn passthrough(
        &self,
        register: impl FnOnce(&std::fs::File) -> std::io::Result<fuser::BackingId>,
    ) -> Option<std::sync::MutexGuard<'_, Option<fuser::BackingId>>> {
        self.passthrough.as_ref()?.passthrough(register)
    }
}

/// What a LOOKUP answers: the attributes (inode 0 for a negative entry) and their TTL.
#[derive(Debug, Clone)]
pub struct EntryOut {
    /// The entry's attributes.
    pub attr: FileAttr,
    /// How long the kernel may keep them.
    pub ttl: Duration,
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
    /// The most staged data may take there (default: half the free space it has at start).
    pub cache_max_size: Option<u64>,
    /// Serve the one mount given at the root (like `s3fs bucket /mnt`) instead of a root
    /// that lists the mounts.
    pub single: bool,
    /// The mount is `noatime`: local mounts open host files with O_NOATIME.
    pub noatime: bool,
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
            cache_max_size: None,
            single: false,
            noatime: false,
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
    /// The daemon's own user and group (asked once: they never change).
    pub fn daemon() -> Caller {
        static ME: std::sync::OnceLock<Caller> = std::sync::OnceLock::new();
        // SAFETY: geteuid/getegid cannot fail.
        *ME.get_or_init(|| unsafe {
            Caller {
                uid: libc::geteuid(),
                gid: libc::getegid(),
            }
        })
    }
}

//! The fuser `Filesystem` implementation: copy the arguments, spawn onto tokio, call the
//! async core in `fs/`, reply. No filesystem policy lives here: negative entries, readdirplus
//! lookup counting and passthrough registrations are the core's decisions, and errors become
//! errnos through the one map in `error.rs`.

use std::ffi::OsStr;

use futures::FutureExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};

use crate::error::Error;
use crate::fuse::fs::{Caller, DirReplier, Fs, Opened, SetAttr, TimeSet};

/// The bridge between the kernel and [`Fs`].
pub struct Adapter {
    fs: Arc<Fs>,
    rt: tokio::runtime::Handle,
    /// The session's notifier, set once the session exists (before it serves a request).
    notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
}

impl Adapter {
    /// An adapter running the core on `rt`; `notifier` is filled once the session exists.
    pub fn new(
        fs: Arc<Fs>,
        rt: tokio::runtime::Handle,
        notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    ) -> Self {
        Adapter { fs, rt, notifier }
    }

    /// Run one request: on this FUSE thread when its inode is on a local or memory mount
    /// (no thread hand-off: measured 1.5–2.3× more small-file operations per second), on the
    /// runtime when it may wait on the network, so that slow S3 requests never hold the
    /// threads that serve the other mounts.
    fn spawn<F>(&self, op: &'static str, ino: INodeNo, f: impl FnOnce(Arc<Fs>) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mount = self.fs.mount_of(ino.0);
        self.fs.stats().request(mount, op);
        run_caught(
            &self.rt,
            self.fs.serves_inline(mount),
            op,
            f(self.fs.clone()),
        );
    }
}

/// Run a request's future inline (blocking this thread) or on the runtime. A panic inside
/// it drops its reply, which answers EIO (fuser's reply does so on drop); it is logged and
/// the daemon goes on.
fn run_caught<F>(rt: &tokio::runtime::Handle, inline: bool, op: &'static str, f: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let fut = std::panic::AssertUnwindSafe(f).catch_unwind();
    if inline {
        if rt.block_on(fut).is_err() {
            tracing::error!(op, "request panicked; answered EIO");
        }
    } else {
        rt.spawn(async move {
            if fut.await.is_err() {
                tracing::error!(op, "request panicked; answered EIO");
            }
        });
    }
}

/// Answer a request that makes or finds an entry (lookup, mknod, mkdir, symlink, link).
fn reply_entry(
    fs: &Fs,
    op: &str,
    reply: ReplyEntry,
    r: crate::error::Result<(u64, crate::fuse::fs::Meta)>,
) {
    match r {
        Ok((ino, m)) => reply.entry(&fs.ttl(), &fs.attr(ino, &m), Generation(0)),
        Err(e) => reply.error(errno(fs, op, &e)),
    }
}

/// Log a failed operation once and turn it into the errno to answer.
fn errno(fs: &Fs, op: &str, e: &Error) -> Errno {
    fs.stats().error(e);
    let n = e.errno();
    if n == libc::ENOENT || n == libc::EEXIST || n == libc::ENOTEMPTY {
        tracing::debug!(op, errno = n, "{e}");
    } else {
        tracing::warn!(op, errno = n, "{e}");
    }
    Errno::from_i32(n)
}

/// The only open flags the kernel accepts beside FOPEN_PASSTHROUGH (others make it EIO).
const PASSTHROUGH_FLAGS: FopenFlags = FopenFlags::FOPEN_NOFLUSH
    .union(FopenFlags::FOPEN_DIRECT_IO)
    .union(FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES);

fn fopen(o: &Opened) -> FopenFlags {
    let mut f = FopenFlags::empty();
    if o.read_only {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.no_flush {
        f |= FopenFlags::FOPEN_NOFLUSH;
    }
    f
}

fn time(t: Option<TimeOrNow>) -> Option<TimeSet> {
    t.map(|t| match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(s) => TimeSet::At(s),
    })
}

impl Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(crate::fuse::MAX_WRITE);
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(256);
        let _ = config.set_congestion_threshold(192);
        // Local files are read and written by the kernel itself where it can (FUSE passthrough).
        if config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok() {
            let _ = config.set_max_stack_depth(1);
        }
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_DIO,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_AUTO_INVAL_DATA,
        ] {
            let _ = config.add_capabilities(flag);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        let fs = self.fs.clone();
        let _ = self.rt.block_on(async move { fs.flush_all().await });
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_owned();
        self.spawn("lookup", parent, |fs| async move {
            match fs.lookup_entry(parent.0, &name).await {
                Ok(e) => reply.entry(&e.ttl, &e.attr, Generation(0)),
                Err(e) => reply.error(errno(&fs, "lookup", &e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.spawn("getattr", ino, |fs| async move {
            match fs.getattr(ino.0).await {
                Ok(m) => reply.attr(&fs.ttl(), &fs.attr(ino.0, &m)),
                Err(e) => reply.error(errno(&fs, "getattr", &e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: time(atime),
            mtime: time(mtime),
        };
        self.spawn("setattr", ino, |fs| async move {
            match fs.setattr(ino.0, set).await {
                Ok(m) => reply.attr(&fs.ttl(), &fs.attr(ino.0, &m)),
                Err(e) => reply.error(errno(&fs, "setattr", &e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn("readlink", ino, |fs| async move {
            match fs.readlink(ino.0).await {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(errno(&fs, "readlink", &e)),
            }
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (name, caller) = (name.to_owned(), caller(req));
        self.spawn("mkdir", parent, |fs| async move {
            let r = fs.mkdir(parent.0, &name, mode, umask, caller).await;
            reply_entry(&fs, "mkdir", reply, r);
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn("unlink", parent, |fs| async move {
            match fs.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&fs, "unlink", &e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_owned();
        self.spawn("rmdir", parent, |fs| async move {
            match fs.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&fs, "rmdir", &e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (name, caller) = (name.to_owned(), caller(req));
        self.spawn("mknod", parent, |fs| async move {
            let r = fs.mknod(parent.0, &name, mode, umask, rdev, caller).await;
            reply_entry(&fs, "mknod", reply, r);
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, target, caller) = (link_name.to_owned(), target.to_owned(), caller(req));
        self.spawn("symlink", parent, |fs| async move {
            let r = fs.symlink(parent.0, &name, &target, caller).await;
            reply_entry(&fs, "symlink", reply, r);
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.spawn("rename", parent, |fs| async move {
            match fs
                .rename(parent.0, &name, newparent.0, &newname, flags.bits())
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&fs, "rename", &e)),
            }
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = newname.to_owned();
        self.spawn("link", ino, |fs| async move {
            let r = fs.link(ino.0, newparent.0, &newname).await;
            reply_entry(&fs, "link", reply, r);
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.spawn("open", ino, |fs| async move {
            match fs.open(ino.0, flags.0).await {
                Ok(o) => match o.passthrough(|f| reply.open_backing(f)) {
                    Some(id) => reply.opened_passthrough(
                        FileHandle(o.fh),
                        fopen(&o) & PASSTHROUGH_FLAGS,
                        id.as_ref().expect("registered"),
                    ),
                    None => reply.opened(FileHandle(o.fh), fopen(&o)),
                },
                Err(e) => reply.error(errno(&fs, "open", &e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.spawn("read", ino, |fs| async move {
            match fs.read(ino.0, fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno(&fs, "read", &e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        self.spawn("write", ino, |fs| async move {
            match fs.write(ino.0, fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&fs, "write", &e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.spawn("flush", ino, |fs| async move {
            match fs.flush(ino.0, fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&fs, "flush", &e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let notifier = self.notifier.clone();
        self.spawn("release", ino, |fs| async move {
            match fs.release(ino.0, fh.0).await {
                Ok(stale) => {
                    // before the reply: the release of a passthrough file holds the kernel's
                    // lock on nothing the notification needs
                    if let (true, Some(n)) = (stale, notifier.get()) {
                        // offset -1: the attributes only, no page cache (there is none)
                        if let Err(e) = n.inval_inode(ino, -1, 0) {
                            tracing::debug!(error = %e, ino = ino.0, "attribute invalidation");
                        }
                    }
                    reply.ok()
                }
                Err(e) => reply.error(errno(&fs, "release", &e)),
            }
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn("fsync", ino, |fs| async move {
            match fs.fsync(ino.0, fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&fs, "fsync", &e)),
            }
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.spawn("fallocate", ino, |fs| async move {
            match fs.fallocate(ino.0, fh.0, offset, length, mode).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&fs, "fallocate", &e)),
            }
        });
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.spawn("copy_file_range", ino_out, |fs| async move {
            match fs
                .copy_file_range(fh_in.0, offset_in, ino_out.0, fh_out.0, offset_out, len)
                .await
            {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&fs, "copy_file_range", &e)),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.spawn("opendir", ino, |fs| async move {
            match fs.opendir(ino.0).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(&fs, "opendir", &e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.spawn("readdir", ino, |fs| async move {
            match fs
                .reply_dir(ino.0, fh.0, offset, false, &mut Plain(&mut reply))
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&fs, "readdir", &e)),
            }
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.spawn("readdirplus", ino, |fs| async move {
            match fs
                .reply_dir(ino.0, fh.0, offset, true, &mut Plus(&mut reply))
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&fs, "readdirplus", &e)),
            }
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.spawn("statfs", ino, |fs| async move {
            match fs.statfs(ino.0).await {
                Ok(s) => reply.statfs(
                    s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
                ),
                Err(e) => reply.error(errno(&fs, "statfs", &e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (name, caller) = (name.to_owned(), caller(req));
        self.spawn("create", parent, |fs| async move {
            match fs.create(parent.0, &name, mode, umask, flags, caller).await {
                Ok((ino, m, o)) => match o.passthrough(|f| reply.open_backing(f)) {
                    Some(id) => reply.created_passthrough(
                        &fs.ttl(),
                        &fs.attr(ino, &m),
                        Generation(0),
                        FileHandle(o.fh),
                        fopen(&o) & PASSTHROUGH_FLAGS,
                        id.as_ref().expect("registered"),
                    ),
                    None => reply.created(
                        &fs.ttl(),
                        &fs.attr(ino, &m),
                        Generation(0),
                        FileHandle(o.fh),
                        fopen(&o),
                    ),
                },
                Err(e) => reply.error(errno(&fs, "create", &e)),
            }
        });
    }
}

/// A readdir reply buffer.
struct Plain<'a>(&'a mut ReplyDirectory);

impl DirReplier for Plain<'_> {
    fn add(&mut self, _ino: u64, attr: &FileAttr, next: u64, name: &str, _ttl: Duration) -> bool {
        // (d_ino is the st_ino a stat shows)
        self.0.add(attr.ino, next, attr.kind, name)
    }
}

/// A readdirplus reply buffer.
struct Plus<'a>(&'a mut ReplyDirectoryPlus);

impl DirReplier for Plus<'_> {
    fn add(&mut self, ino: u64, attr: &FileAttr, next: u64, name: &str, ttl: Duration) -> bool {
        self.0
            .add(INodeNo(ino), next, name, &ttl, attr, Generation(0))
    }
}

/// The process a request comes from, as the owner of what it creates.
fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply that records how it was answered; like fuser's, dropping it unanswered is EIO.
    struct Reply(std::sync::mpsc::Sender<i32>);
    impl Drop for Reply {
        fn drop(&mut self) {
            let _ = self.0.send(libc::EIO);
        }
    }

    #[test]
    fn a_panicking_request_answers_eio_and_the_next_one_runs() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        for inline in [true, false] {
            let (tx, rx) = std::sync::mpsc::channel();
            let reply = Reply(tx.clone());
            run_caught(rt.handle(), inline, "test", async move {
                let _reply = reply;
                panic!("a bug in one request");
            });
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(libc::EIO));
            run_caught(rt.handle(), inline, "test", async move {
                tx.send(0).unwrap();
            });
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(0));
        }
    }
}

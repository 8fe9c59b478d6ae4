//! The host-syscall half of the core: every operation on a local mount, as the system calls
//! on its root directory that a kernel filesystem would make. No attribute cache, listing or
//! object store is consulted here: the host directory is the truth, asked every time.

use super::*;
use crate::fuse::local::HostRoot;

/// A local mount's side of the core (see [`Side`]).
pub(super) struct Host<'a> {
    pub(super) fs: &'a Fs,
    pub(super) m: usize,
    pub(super) root: &'a HostRoot,
}

impl Host<'_> {
    fn mount(&self) -> &Arc<Mount> {
        self.fs.mount(self.m)
    }

    fn ctx(&self, p: &str) -> String {
        self.mount().ctx(p)
    }

    fn target(&self, p: &str) -> Target {
        Target::Path(self.m, p.to_string())
    }

    fn io(&self, p: &str) -> impl Fn(std::io::Error) -> Error + '_ {
        let ctx = self.ctx(p);
        move |e| Error::from_io(ctx.clone(), e)
    }

    /// Attributes of `p`; `Ok(None)` when it does not exist.
    pub(super) fn meta(&self, p: &str) -> Result<Option<Meta>> {
        self.root.stat(p).map_err(self.io(p))
    }

    fn meta_required(&self, p: &str) -> Result<Meta> {
        self.meta(p)?.ok_or_else(|| not_found(self.ctx(p)))
    }

    /// Attributes of what the inode is now, read with renames and unlinks held off (a rename
    /// may have put another file at the path it had a moment ago).
    pub(super) fn getattr(&self, ino: u64) -> Result<Meta> {
        let _ns = self.fs.ns_stable();
        match self.fs.inodes.target(ino) {
            Some(Target::Path(_, p)) => self.meta_required(&p),
            _ => self.fs.unlinked_meta(ino),
        }
    }

    /// setattr, applied to the host file the inode is now (see `getattr`).
    pub(super) async fn setattr(&self, ino: u64, set: &SetAttr) -> Result<Meta> {
        {
            let _ns = self.fs.ns_stable();
            if let Some(Target::Path(_, p)) = self.fs.inodes.target(ino) {
                return self.setattr_path(&p, set);
            }
        }
        self.fs.setattr_unlinked(ino, set).await
    }

    fn setattr_path(&self, p: &str, set: &SetAttr) -> Result<Meta> {
        let io = self.io(p);
        let current = self.meta_required(p)?;
        if let Some(size) = set.size {
            self.root
                .open(p, libc::O_WRONLY, 0)
                .and_then(|f| f.set_len(size))
                .map_err(&io)?;
        }
        if let Some(mode) = set.mode {
            if current.kind == FileType::Symlink {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    self.ctx(p),
                    "a symlink has no mode of its own",
                ));
            }
            self.root.chmod(p, mode & 0o7777).map_err(&io)?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            self.root.lchown(p, set.uid, set.gid).map_err(&io)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            self.root.set_times(p, set.atime, set.mtime).map_err(&io)?;
        }
        self.meta_required(p)
    }

    /// Give a new host entry to its caller when the daemon runs as root and the caller is
    /// someone else (without following a symlink).
    fn give(&self, p: &str, caller: Caller) -> Result<()> {
        let me = Caller::daemon();
        if me.uid != 0 || caller == me {
            return Ok(());
        }
        let gid = self.inherited_gid(p, caller);
        self.root
            .lchown(p, Some(caller.uid), gid)
            .map_err(self.io(p))
    }

    /// The group of a new host entry: the directory's own under a set-group-ID directory
    /// (the host has given it already: keep it), the caller's otherwise.
    fn inherited_gid(&self, p: &str, caller: Caller) -> Option<u32> {
        let setgid_dir = matches!(
            self.root.stat(path::parent(p)),
            Ok(Some(m)) if u32::from(m.perm) & libc::S_ISGID != 0
        );
        (!setgid_dir).then_some(caller.gid)
    }

    /// Make a host entry with `make`, give it to the caller, and look it up.
    fn make(
        &self,
        p: &str,
        caller: Caller,
        make: impl FnOnce(&HostRoot) -> std::io::Result<()>,
    ) -> Result<(u64, Meta)> {
        make(self.root).map_err(self.io(p))?;
        self.give(p, caller)?;
        let meta = self.meta_required(p)?;
        Ok((self.fs.intern(self.target(p), &meta), meta))
    }

    /// mkdir(2) of the host directory: the host checks the parent and the name.
    pub(super) fn mkdir(&self, p: &str, mode: u16, caller: Caller) -> Result<(u64, Meta)> {
        self.make(p, caller, |r| r.mkdir(p, u32::from(mode)))
    }

    /// create(2) is one open(2) of the host file: the host filesystem checks the parent,
    /// O_EXCL and the type, and the descriptor it returns serves the handle.
    pub(super) fn create(
        &self,
        p: &str,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(u64, Meta, Opened)> {
        let err = self.io(p);
        let mode = mode & !umask & 0o7777;
        let trunc = if flags & libc::O_TRUNC != 0 {
            libc::O_TRUNC
        } else {
            0
        };
        let open = |create: bool| {
            let excl = if create {
                libc::O_CREAT | libc::O_EXCL
            } else {
                0
            };
            self.root.open(p, libc::O_RDWR | trunc | excl, mode)
        };
        // Exclusive first, so that we know whether this call made the file.
        let (file, made) = match open(true) {
            Ok(f) => (f, true),
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists && flags & libc::O_EXCL == 0 =>
            {
                (open(false).map_err(&err)?, false)
            }
            Err(e) => return Err(err(e)),
        };
        let me = Caller::daemon();
        if made && me.uid == 0 && caller != me {
            std::os::unix::fs::fchown(&file, Some(caller.uid), self.inherited_gid(p, caller))
                .map_err(&err)?;
        }
        let meta = local::fstat(&file).map_err(&err)?;
        let ino = self.fs.intern(self.target(p), &meta);
        let (fh, h) = self.fs.handles.open_file_with(
            ino,
            self.mount(),
            file,
            meta.size,
            flags & libc::O_APPEND != 0,
        );
        self.fs.inodes.open(ino);
        Ok((ino, meta, self.opened(fh, false, h.file.clone())))
    }

    /// What the kernel is told of a host file's handle: nothing to do at close (written in
    /// place), and the host file for passthrough. Not on a `noatime` mount: the kernel
    /// opens its own backing file with the caller's flags, whose reads move the host
    /// file's atime; the daemon's descriptor has O_NOATIME.
    fn opened(&self, fh: u64, read_only: bool, file: Arc<OpenFile>) -> Opened {
        Opened {
            fh,
            read_only,
            no_flush: true,
            passthrough: (!self.fs.opts.noatime).then_some(file),
        }
    }

    /// open(2) of the host file the inode is now: found by path with renames and unlinks
    /// held off (the target the caller resolved may be stale). The host checks the type.
    pub(super) async fn open(&self, ino: u64, t: &Target, flags: i32) -> Result<Opened> {
        let OpenMode {
            writable,
            trunc,
            append,
        } = self.fs.open_mode(t, flags)?;
        let (fh, h, p) = {
            let _ns = self.fs.ns_stable();
            match self.fs.inodes.target(ino) {
                Some(Target::Path(m, p)) if m == self.m => {
                    let open = || self.root.open_shared(&p).map_err(self.io(&p));
                    let (fh, h) =
                        self.fs
                            .handles
                            .open_host(ino, self.mount(), open, writable, append)?;
                    (fh, h, Some(p))
                }
                // Unlinked meanwhile: only a handle still open on it can serve.
                _ => {
                    let (fh, h) = self
                        .fs
                        .handles
                        .open_existing(ino, writable, append)
                        .ok_or_else(|| not_found(self.fs.ctx(t)))?;
                    (fh, h, None)
                }
            }
        };
        self.fs.inodes.open(ino);
        if trunc {
            // (always: the file's size may have changed since any stat)
            let cache = &self.fs.cache_dir;
            if let Err(e) = h.file.truncate(p.as_deref(), cache, 0).await {
                self.fs.release(ino, fh).await.ok();
                return Err(e);
            }
        }
        Ok(self.opened(fh, !writable && !trunc, h.file.clone()))
    }

    /// unlink(2) says ENOENT, or EISDIR for a directory: no stat first. The host unlink and
    /// the inode table's change are one step for opens.
    pub(super) fn unlink(&self, t: &Target, p: &str) -> Result<()> {
        let _ns = self.fs.ns_change();
        self.root.unlink(p).map_err(self.io(p))?;
        self.fs.inodes.unlink(t);
        Ok(())
    }

    /// rmdir(2): the host checks the type and emptiness.
    pub(super) fn rmdir(&self, t: &Target, p: &str) -> Result<()> {
        let _ns = self.fs.ns_change();
        self.root.rmdir(p).map_err(self.io(p))?;
        self.fs.inodes.unlink(t);
        Ok(())
    }

    /// renameat2(2) (RENAME_NOREPLACE and RENAME_EXCHANGE included), and the inode table's
    /// change in the same step for opens.
    pub(super) fn rename(&self, fp: &str, tp: &str, flags: u32) -> Result<()> {
        let _ns = self.fs.ns_change();
        self.root.rename(fp, tp, flags).map_err(self.io(fp))?;
        self.fs.inodes.rename_entries(self.m, fp, tp, flags);
        Ok(())
    }

    /// mknod(2): FIFOs, sockets and device nodes, as the host makes them.
    pub(super) fn mknod(
        &self,
        p: &str,
        mode: u32,
        umask: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        let mode = (mode & libc::S_IFMT) | (mode & !umask & 0o7777);
        self.make(p, caller, |r| r.mknod(p, mode, rdev))
    }

    /// symlink(2).
    pub(super) fn symlink(&self, p: &str, target: &Path, caller: Caller) -> Result<(u64, Meta)> {
        self.make(p, caller, |r| r.symlink(target, p))
    }

    /// link(2).
    pub(super) fn link(&self, from: &str, to: &str) -> Result<(u64, Meta)> {
        self.root.link(from, to).map_err(self.io(to))?;
        let meta = self.meta_required(to)?;
        Ok((self.fs.intern(self.target(to), &meta), meta))
    }

    /// readlink(2).
    pub(super) fn readlink(&self, p: &str) -> Result<Vec<u8>> {
        self.root.readlink(p).map_err(self.io(p))
    }

    /// The host directory's entries (a non-UTF-8 name is left out with a warning; an entry
    /// removed while listed is skipped).
    pub(super) fn list(&self, p: &str) -> Result<Vec<DirEntry<Meta>>> {
        let mut out = Vec::new();
        for e in self.root.list(p).map_err(self.io(p))? {
            match e {
                Ok((name, meta)) => out.push(DirEntry {
                    target: Some(Target::Path(self.m, path::join(p, &name))),
                    name,
                    meta,
                }),
                Err(name) => {
                    tracing::warn!(dir = %self.ctx(p), name = %String::from_utf8_lossy(&name), "a non-UTF-8 name is not shown")
                }
            }
        }
        Ok(out)
    }

    /// The host disk's figures.
    pub(super) fn statfs(&self) -> Result<Statfs> {
        let s = self.root.statvfs().map_err(self.io(""))?;
        Ok(Statfs {
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
            bsize: s.f_bsize as u32,
            namelen: 255,
            frsize: s.f_frsize as u32,
        })
    }
}

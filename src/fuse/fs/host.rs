//! The host-syscall half of the core: every operation on a local mount, as the system calls
//! on its root directory that a kernel filesystem would make. No attribute cache, listing or
//! object store is consulted here: the host directory is the truth, asked every time.

use super::*;

/// A local mount's side of the core (see [`Side`]).
pub(super) struct Host<'a> {
    pub(super) fs: &'a Fs,
    pub(super) m: usize,
    pub(super) root: &'a Path,
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

    /// The host path of `p`: its parent is checked to stay inside the root, the entry
    /// itself is never followed.
    pub(super) fn path(&self, p: &str) -> Result<PathBuf> {
        self.mount().check_inside(path::parent(p))?;
        Ok(if p.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(p)
        })
    }

    /// Attributes of `p`; `Ok(None)` when it does not exist.
    pub(super) fn meta(&self, p: &str) -> Result<Option<Meta>> {
        local::lstat(&self.path(p)?).map_err(self.io(p))
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
        let host = self.path(p)?;
        let io = self.io(p);
        let current = self.meta_required(p)?;
        if let Some(size) = set.size {
            open_native(&host, true)
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
            local::chmod_nofollow(&host, mode & 0o7777).map_err(&io)?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            std::os::unix::fs::lchown(&host, set.uid, set.gid).map_err(&io)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            local::set_times(&host, set.atime, set.mtime).map_err(&io)?;
        }
        self.meta_required(p)
    }

    /// Give a new host entry to its caller when the daemon runs as root and the caller is
    /// someone else (without following a symlink).
    fn give(&self, p: &str, host: &Path, caller: Caller) -> Result<()> {
        let me = Caller::daemon();
        if me.uid != 0 || caller == me {
            return Ok(());
        }
        std::os::unix::fs::lchown(host, Some(caller.uid), inherited_gid(host, caller))
            .map_err(self.io(p))
    }

    /// Make a host entry with `make`, give it to the caller, and look it up.
    fn make(
        &self,
        p: &str,
        caller: Caller,
        make: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<(u64, Meta)> {
        let host = self.path(p)?;
        make(&host).map_err(self.io(p))?;
        self.give(p, &host, caller)?;
        let meta = self.meta_required(p)?;
        Ok((self.fs.intern(self.target(p), &meta), meta))
    }

    /// mkdir(2) of the host directory: the host checks the parent and the name.
    pub(super) fn mkdir(&self, p: &str, mode: u16, caller: Caller) -> Result<(u64, Meta)> {
        use std::os::unix::fs::DirBuilderExt;
        self.make(p, caller, |h| {
            std::fs::DirBuilder::new().mode(u32::from(mode)).create(h)
        })
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
        use std::os::unix::fs::OpenOptionsExt;
        let host = self.path(p)?;
        let err = self.io(p);
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
            o.open(&host)
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
            std::os::unix::fs::fchown(&file, Some(caller.uid), inherited_gid(&host, caller))
                .map_err(&err)?;
        }
        let meta = local::meta(&file.metadata().map_err(&err)?);
        let ino = self.fs.intern(self.target(p), &meta);
        let (fh, h) = self.fs.handles.open_file_with(
            ino,
            self.mount(),
            file,
            meta.size,
            flags & libc::O_APPEND != 0,
        );
        self.fs.inodes.open(ino);
        Ok((ino, meta, Self::opened(fh, false, h.file.clone())))
    }

    /// What the kernel is told of a host file's handle: nothing to do at close (written in
    /// place), and the host file for passthrough.
    fn opened(fh: u64, read_only: bool, file: Arc<OpenFile>) -> Opened {
        Opened {
            fh,
            read_only,
            no_flush: true,
            passthrough: Some(file),
        }
    }

    /// open(2) of the host file the inode is now: found by path with renames and unlinks
    /// held off (the target the caller resolved may be stale). The host checks the type.
    pub(super) async fn open(&self, ino: u64, t: &Target, flags: i32) -> Result<Opened> {
        let acc = flags & libc::O_ACCMODE;
        let writable = acc != libc::O_RDONLY;
        let trunc = flags & libc::O_TRUNC != 0;
        if writable || trunc {
            self.fs.check_change(t)?;
        }
        let append = flags & libc::O_APPEND != 0;
        let (fh, h, p) = {
            let _ns = self.fs.ns_stable();
            match self.fs.inodes.target(ino) {
                Some(Target::Path(m, p)) if m == self.m => {
                    let host = self.path(&p)?;
                    let (fh, h) =
                        self.fs
                            .handles
                            .open_host(ino, self.mount(), &host, writable, append)?;
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
            let cache = self.fs.cache_dir.path();
            if let Err(e) = h.file.truncate(p.as_deref(), cache, 0).await {
                self.fs.release(ino, fh).await.ok();
                return Err(e);
            }
        }
        Ok(Self::opened(fh, !writable && !trunc, h.file.clone()))
    }

    /// unlink(2) says ENOENT, or EISDIR for a directory: no stat first. The host unlink and
    /// the inode table's change are one step for opens.
    pub(super) fn unlink(&self, t: &Target, p: &str) -> Result<()> {
        let host = self.path(p)?;
        let _ns = self.fs.ns_change();
        std::fs::remove_file(&host).map_err(self.io(p))?;
        self.fs.inodes.unlink(t);
        Ok(())
    }

    /// rmdir(2): the host checks the type and emptiness.
    pub(super) fn rmdir(&self, t: &Target, p: &str) -> Result<()> {
        let host = self.path(p)?;
        let _ns = self.fs.ns_change();
        std::fs::remove_dir(&host).map_err(self.io(p))?;
        self.fs.inodes.unlink(t);
        Ok(())
    }

    /// renameat2(2) (RENAME_NOREPLACE and RENAME_EXCHANGE included), and the inode table's
    /// change in the same step for opens.
    pub(super) fn rename(&self, fp: &str, tp: &str, flags: u32) -> Result<()> {
        let (hf, ht) = (self.path(fp)?, self.path(tp)?);
        let _ns = self.fs.ns_change();
        local::rename(&hf, &ht, flags).map_err(self.io(fp))?;
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
        self.make(p, caller, |h| local::mknod(h, mode, rdev))
    }

    /// symlink(2).
    pub(super) fn symlink(&self, p: &str, target: &Path, caller: Caller) -> Result<(u64, Meta)> {
        self.make(p, caller, |h| std::os::unix::fs::symlink(target, h))
    }

    /// link(2).
    pub(super) fn link(&self, from: &str, to: &str) -> Result<(u64, Meta)> {
        std::fs::hard_link(self.path(from)?, self.path(to)?).map_err(self.io(to))?;
        let meta = self.meta_required(to)?;
        Ok((self.fs.intern(self.target(to), &meta), meta))
    }

    /// readlink(2).
    pub(super) fn readlink(&self, p: &str) -> Result<Vec<u8>> {
        std::fs::read_link(self.path(p)?)
            .map(|t| t.as_os_str().as_bytes().to_vec())
            .map_err(self.io(p))
    }

    /// The host directory's entries (a non-UTF-8 name is left out with a warning; an entry
    /// removed while listed is skipped).
    pub(super) fn list(&self, p: &str) -> Result<Vec<DirEntry<Meta>>> {
        let io = self.io(p);
        let mut out = Vec::new();
        for de in std::fs::read_dir(self.path(p)?).map_err(&io)? {
            let de = de.map_err(&io)?;
            let Some(name) = de.file_name().to_str().map(str::to_string) else {
                tracing::warn!(dir = %self.ctx(p), name = ?de.file_name(), "a non-UTF-8 name is not shown");
                continue;
            };
            let md = match de.metadata() {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            out.push(DirEntry {
                target: Some(Target::Path(self.m, path::join(p, &name))),
                name,
                meta: local::meta(&md),
            });
        }
        Ok(out)
    }

    /// The host disk's figures.
    pub(super) fn statfs(&self) -> Result<Statfs> {
        let s = local::statvfs(self.root).map_err(self.io(""))?;
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

/// The group of a new host entry: the directory's own under a set-group-ID directory (the host
/// has given it already: keep it), the caller's otherwise.
fn inherited_gid(host: &Path, caller: Caller) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let setgid_dir = host
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .is_some_and(|md| md.mode() & libc::S_ISGID != 0);
    (!setgid_dir).then_some(caller.gid)
}

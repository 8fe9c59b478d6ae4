//! Attributes: getattr and setattr on every backend, the local host calls, and an open file
//! that was unlinked.

use super::*;

impl Fs {
    /// Attributes of an inode.
    pub async fn getattr(&self, ino: u64) -> Result<Meta> {
        if let Some(meta) = self.getattr_local(ino)? {
            return Ok(meta);
        }
        match self.inodes.target(ino) {
            Some(t) => self.meta_required(&t).await,
            // unlinked and still open (fstat of an open temporary file)
            None => self.unlinked_meta(ino),
        }
    }

    /// An unlinked file still open: its attributes from what its handles hold (no links).
    fn unlinked_meta(&self, ino: u64) -> Result<Meta> {
        let ctx = || format!("inode {ino} (unlinked)");
        let f = self
            .handles
            .open_file(ino)
            .ok_or_else(|| not_found(ctx()))?;
        if let Some(native) = f.native_file() {
            let md = native.metadata().map_err(|e| Error::from_io(ctx(), e))?;
            return Ok(local::meta(&md));
        }
        let size = f.size();
        let now = SystemTime::now();
        Ok(Meta {
            kind: FileType::RegularFile,
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            perm: self.opts.file_mode,
            uid: self.opts.uid,
            gid: self.opts.gid,
            nlink: 0,
            rdev: 0,
        })
    }

    /// setattr on an unlinked file still open: on local mounts through its descriptor
    /// (ftruncate, fchmod, fchown, futimens of an open temporary file); an unlinked object
    /// keeps nothing to change (ENOENT, as before it is flushed nowhere).
    async fn setattr_unlinked(&self, ino: u64, set: &SetAttr) -> Result<Meta> {
        let ctx = format!("inode {ino} (unlinked)");
        if self.opts.read_only {
            return Err(Error::new(
                ErrorKind::ReadOnly,
                ctx,
                "the filesystem is mounted read-only",
            ));
        }
        let f = self
            .handles
            .open_file(ino)
            .ok_or_else(|| not_found(ctx.clone()))?;
        let Some(native) = f.native_file() else {
            // object backends: the staged bytes can be cut or grown; nothing else is kept
            if set.mode.is_some()
                || set.uid.is_some()
                || set.gid.is_some()
                || set.atime.is_some()
                || set.mtime.is_some()
            {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    ctx,
                    "an unlinked object keeps no mode, owner or times",
                ));
            }
            if let Some(size) = set.size {
                f.truncate(None, self.cache_dir.path(), size).await?;
            }
            return self.unlinked_meta(ino);
        };
        let io = |e| Error::from_io(ctx.clone(), e);
        if let Some(size) = set.size {
            native.set_len(size).map_err(io)?;
        }
        if let Some(mode) = set.mode {
            use std::os::unix::fs::PermissionsExt;
            native
                .set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io)?;
        }
        if set.uid.is_some() || set.gid.is_some() {
            std::os::unix::fs::fchown(&*native, set.uid, set.gid).map_err(io)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let mut times = std::fs::FileTimes::new();
            if let Some(a) = set.atime {
                times = times.set_accessed(a.resolve());
            }
            if let Some(m) = set.mtime {
                times = times.set_modified(m.resolve());
            }
            native.set_times(times).map_err(io)?;
        }
        self.unlinked_meta(ino)
    }

    /// Change attributes.
    pub async fn setattr(&self, ino: u64, set: SetAttr) -> Result<Meta> {
        let Some(t) = self.inodes.target(ino) else {
            return self.setattr_unlinked(ino, &set).await;
        };
        self.check_change(&t)?;
        let Target::Path(m, p) = &t else {
            unreachable!("check_change refuses the root")
        };
        let (m, p) = (*m, p.as_str());
        if self.mount(m).local_root().is_some() {
            if let Some(meta) = self.setattr_local(ino, &set)? {
                return Ok(meta);
            }
            return self.setattr_unlinked(ino, &set).await;
        }
        let ctx = self.ctx(&t);
        let mut current = self.meta_required(&t).await?;
        if let Some(size) = set.size {
            if current.kind == FileType::Directory {
                return Err(Error::is_a_directory(ctx));
            }
            self.truncate_object(ino, m, p, size, &current).await?;
            current.size = size;
            current.blocks = size.div_ceil(512);
            current.mtime = SystemTime::now();
        }
        let now = SystemTime::now();
        let mut next = current.clone();
        if let Some(mode) = set.mode {
            next.perm = (mode & 0o7777) as u16;
        }
        next.uid = set.uid.unwrap_or(next.uid);
        next.gid = set.gid.unwrap_or(next.gid);
        if let Some(a) = set.atime {
            next.atime = a.resolve();
        }
        if let Some(mt) = set.mtime {
            next.mtime = mt.resolve();
        }
        next.ctime = now;
        let only_size = set.mode.is_none()
            && set.uid.is_none()
            && set.gid.is_none()
            && set.atime.is_none()
            && set.mtime.is_none();
        if only_size {
            // the truncate's upload carried the new size and times
            self.cache.invalidate(&t);
            return self.meta_required(&t).await;
        }
        self.store_attrs(ino, &t, &next).await?;
        Ok(next)
    }

    /// Object backends: keep `next` as `t`'s attributes. A file open with data not uploaded
    /// yet takes them with its upload; any other object is changed in place (one request on
    /// S3, its bytes never re-uploaded); a directory keeps them in its marker and, for
    /// servers without markers, in the daemon's table.
    async fn store_attrs(&self, ino: u64, t: &Target, next: &Meta) -> Result<()> {
        let Target::Path(m, p) = t else {
            unreachable!("check_change refuses the root")
        };
        let posix = posix_of(next);
        let mount = self.mount(*m);
        if next.kind == FileType::Directory {
            self.dirs.update(t, |a| {
                a.perm = Some(next.perm);
                a.uid = Some(next.uid);
                a.gid = Some(next.gid);
                a.mtime = Some(next.mtime);
                a.ctime = Some(next.ctime);
                a.atime = Some(next.atime);
            });
            if !p.is_empty() {
                mount.set_meta(p, true, 0, &posix).await?;
            }
        } else {
            let open = self.handles.open_file(ino);
            let dirty = match &open {
                Some(f) => f.is_dirty().await,
                None => false,
            };
            if let Some(f) = &open {
                f.set_posix(|pm| *pm = posix.clone());
            }
            if !dirty {
                mount.set_meta(p, false, next.size, &posix).await?;
            }
        }
        self.cache.put(t.clone(), Some(next.clone()));
        Ok(())
    }

    /// Local mounts: attributes of what the inode is now, read with renames and unlinks held
    /// off (a rename may have put another file at the path it had a moment ago); None on
    /// other backends.
    fn getattr_local(&self, ino: u64) -> Result<Option<Meta>> {
        let mount = self.inodes.mount_of(ino);
        if mount.is_none_or(|m| self.mount(m).local_root().is_none()) {
            return Ok(None);
        }
        let _ns = self.ns_stable();
        let Some(t) = self.inodes.target(ino) else {
            return Ok(None);
        };
        let Target::Path(m, p) = &t else {
            return Ok(None);
        };
        let Some(host) = self.host(*m, p)? else {
            return Ok(None);
        };
        local::lstat(&host)
            .map_err(|e| Error::from_io(self.ctx(&t), e))?
            .ok_or_else(|| not_found(self.ctx(&t)))
            .map(Some)
    }

    /// setattr on a local mount: applied to the host file the inode is now (see
    /// `getattr_local`); None when it was unlinked.
    fn setattr_local(&self, ino: u64, set: &SetAttr) -> Result<Option<Meta>> {
        let _ns = self.ns_stable();
        let Some(t) = self.inodes.target(ino) else {
            return Ok(None);
        };
        let Target::Path(m, p) = &t else {
            unreachable!("check_change refuses the root")
        };
        let host = self.host(*m, p)?.expect("a local mount");
        let ctx = self.ctx(&t);
        let io = |e| Error::from_io(ctx.clone(), e);
        let current = local::lstat(&host)
            .map_err(io)?
            .ok_or_else(|| not_found(ctx.clone()))?;
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
        self.cache.invalidate(&t);
        local::lstat(&host)
            .map_err(io)?
            .ok_or_else(|| not_found(ctx.clone()))
            .map(Some)
    }

    async fn truncate_object(
        &self,
        ino: u64,
        m: usize,
        p: &str,
        size: u64,
        current: &Meta,
    ) -> Result<()> {
        let cache = self.cache_dir.path();
        match self.handles.open_file(ino) {
            // (uploaded now: a release racing with this truncate may have passed already)
            Some(f) => {
                f.truncate(Some(p), cache, size).await?;
                self.upload(ino, &f, false).await
            }
            None => {
                let f = OpenFile::detached(self.mount(m).clone(), current.size, posix_of(current));
                f.truncate(Some(p), cache, size).await?;
                f.flush(Some(p), false).await.map(|_| ())
            }
        }
    }
}

//! Attributes: getattr and setattr, handed to the mount's side, and those of a file that
//! was unlinked while open (from its descriptor, or from what its handles hold).

use super::*;

impl Fs {
    /// Attributes of an inode.
    pub async fn getattr(&self, ino: u64) -> Result<Meta> {
        match self.inodes.target(ino) {
            Some(Target::Root) => Ok(self.root_meta()),
            Some(t @ Target::Path(m, _)) => match self.side(m) {
                Side::Host(h) => h.getattr(ino),
                Side::Object(o) => {
                    let Target::Path(_, p) = &t else {
                        unreachable!()
                    };
                    o.meta_required(&t, p).await
                }
            },
            // unlinked and still open (fstat of an open temporary file)
            None => self.unlinked_meta(ino),
        }
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
        match self.side(*m) {
            Side::Host(h) => h.setattr(ino, &set).await,
            Side::Object(o) => o.setattr(ino, &t, p, set).await,
        }
    }

    /// An unlinked file still open: its attributes from what its handles hold (no links).
    pub(super) fn unlinked_meta(&self, ino: u64) -> Result<Meta> {
        let ctx = || format!("inode {ino} (unlinked)");
        let Some(f) = self.handles.open_file(ino) else {
            // a directory removed or replaced (rename over it) while open: as it was, with
            // no links
            let mut meta = self
                .handles
                .open_dir_meta(ino)
                .ok_or_else(|| not_found(ctx()))?;
            meta.nlink = 0;
            return Ok(meta);
        };
        if let Some(native) = f.native_file() {
            return local::fstat(&native).map_err(|e| Error::from_io(ctx(), e));
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
            blksize: OBJECT_BLKSIZE,
            host: None,
        })
    }

    /// setattr on an unlinked file still open: on local mounts through its descriptor
    /// (ftruncate, fchmod, fchown, futimens of an open temporary file); an unlinked object
    /// keeps nothing to change (ENOENT, as before it is flushed nowhere).
    pub(super) async fn setattr_unlinked(&self, ino: u64, set: &SetAttr) -> Result<Meta> {
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
                f.truncate(None, &self.cache_dir, size).await?;
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
}

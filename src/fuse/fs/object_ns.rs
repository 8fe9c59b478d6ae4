//! Namespace changes on object mounts: mkdir (a marker with the directory's attributes),
//! create (staged until close), unlink, rmdir, rename (native on memory, copy + delete on
//! S3), symlinks and special files as objects carrying their type in their mode. Each change
//! of a directory's entries sets its mtime and ctime in the daemon's directory table, and
//! invalidates what it touches: the entry, its subtree, its parent's listing.

use super::object::Object;
use super::*;
use crate::fuse::dir_attrs::DirAttr;

impl Object<'_> {
    /// The parent directory must exist and be one; the name must not exist. (The attribute
    /// cache is trusted here: the kernel looked the name up just before, and our own
    /// mutations keep the cache right.)
    async fn may_make(&self, parent: u64, t: &Target, p: &str) -> Result<Meta> {
        let dir = self.fs.parent_dir(parent).await?;
        if self.meta(t, p).await?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, self.ctx(p), "exists"));
        }
        Ok(dir)
    }

    /// Symlinks and special files are objects that carry their type in user metadata: EPERM
    /// where the backend keeps none (they would come back as plain files), as a filesystem
    /// without symlinks (vfat) answers.
    fn keeps_types(&self, p: &str) -> Result<()> {
        if self.mount.keeps_posix() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::NotPermitted,
            self.ctx(p),
            format!(
                "{} keeps no symlinks or special files",
                self.mount.config().backend.protocol()
            ),
        ))
    }

    /// Who a new entry in `dir` belongs to: the caller, with the directory's group when the
    /// directory is setgid (as on every POSIX filesystem); and whether a new directory there
    /// is setgid too.
    fn owner_in(dir: &Meta, caller: Caller) -> (Caller, bool) {
        if u32::from(dir.perm) & libc::S_ISGID == 0 {
            return (caller, false);
        }
        (
            Caller {
                uid: caller.uid,
                gid: dir.gid,
            },
            true,
        )
    }

    /// The attributes a new entry carries: type and mode, its creator.
    fn new_posix(&self, kind: u32, perm: u32, caller: Caller) -> PosixMeta {
        let now = SystemTime::now();
        // a backend that keeps no attributes shows the configured ones, from the start
        let (perm, caller) = if self.mount.keeps_posix() {
            (perm, caller)
        } else {
            let o = &self.fs.opts;
            let m = if kind == libc::S_IFDIR {
                o.dir_mode
            } else {
                o.file_mode
            };
            (
                u32::from(m),
                Caller {
                    uid: o.uid,
                    gid: o.gid,
                },
            )
        };
        PosixMeta {
            mode: Some(kind | (perm & 0o7777)),
            uid: Some(caller.uid),
            gid: Some(caller.gid),
            mtime: Some(now),
            ctime: Some(now),
            atime: Some(now),
            rdev: None,
        }
    }

    /// A name was made in its parent: its listing gains it, its times change.
    fn new_entry(&self, t: &Target, p: &str) {
        let fs = self.fs;
        fs.cache.invalidate(t);
        if let Some(parent) = t.parent() {
            fs.listings.add(&parent, path::basename(p));
            self.touch_dir(&parent);
        }
    }

    /// An entry of the directory `dir` changed: its mtime and ctime are now, and its link
    /// count is counted again (in the attribute cache too).
    fn touch_dir(&self, dir: &Target) {
        self.fs.dirs.touch(dir);
        let now = SystemTime::now();
        let nlink = self.fs.dir_nlink(dir);
        self.fs.cache.update(dir, |m| {
            m.mtime = now;
            m.ctime = now;
            m.nlink = nlink;
        });
    }

    /// `t` (and all below it) is gone: what is known of it goes, at a cost of what the
    /// subtree holds; its parent's times change.
    fn forget_path(&self, t: &Target, p: &str) {
        let fs = self.fs;
        fs.inodes.unlink(t);
        if let Some(parent) = t.parent() {
            fs.cache.invalidate_tree(self.m, p);
            fs.listings.remove(&parent, path::basename(p));
            fs.listings.drop_tree(self.m, p);
            fs.dirs.remove_tree(self.m, p);
            self.touch_dir(&parent);
        }
    }

    /// An object was just made at `t`: its parent learns of it, and it is looked up.
    async fn made(&self, t: Target, p: &str) -> Result<(u64, Meta)> {
        self.new_entry(&t, p);
        let meta = self.meta_required(&t, p).await?;
        Ok((self.fs.inodes.lookup(t), meta))
    }

    /// A directory exists only through its children or a marker: keep the parent of a
    /// removed entry alive with a marker when it would vanish.
    async fn keep_parent(&self, p: &str) -> Result<()> {
        let parent = path::parent(p);
        if parent.is_empty() {
            return Ok(());
        }
        let pt = self.target(parent);
        self.fs.cache.invalidate(&pt);
        if self.fs.dirs.is_made(&pt) {
            // made here: it exists for as long as the daemon does, marker or not
            return Ok(());
        }
        if self.fs.listings.has_other(&pt, path::basename(p)) == Some(true) {
            // a fresh listing has other entries: the parent stays
            return Ok(());
        }
        if !self.mount.dir_has_entries(parent).await? {
            self.mount.create_dir(parent).await?;
        }
        Ok(())
    }

    /// mkdir: a marker carrying the directory's mode, owner and times.
    pub(super) async fn mkdir(
        &self,
        parent: u64,
        t: Target,
        p: &str,
        mode: u16,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        let dir = self.may_make(parent, &t, p).await?;
        let (caller, sgid) = Self::owner_in(&dir, caller);
        let mode = if sgid {
            mode | libc::S_ISGID as u16
        } else {
            mode
        };
        let posix = self.new_posix(libc::S_IFDIR, u32::from(mode), caller);
        self.mount.set_meta(p, true, 0, &posix).await?;
        let now = SystemTime::now();
        self.fs.dirs.update(&t, |a| {
            *a = DirAttr {
                made: true,
                perm: Some(mode),
                uid: Some(caller.uid),
                gid: Some(caller.gid),
                mtime: Some(now),
                ctime: Some(now),
                atime: Some(now),
            }
        });
        // nothing was there (checked above): a listing of it is empty
        self.fs.listings.put_new(t.clone());
        self.new_entry(&t, p);
        let meta = match self.meta(&t, p).await? {
            Some(m) => m,
            // Some S3 servers keep no directory markers: the directory shows until the TTL.
            None => self.fs.dir_meta(Some(&t)),
        };
        Ok((self.fs.inodes.lookup(t), meta))
    }

    /// Create and open a file: nothing is written until the first close; the file is
    /// staged empty and shows in listings meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create(
        &self,
        parent: u64,
        t: Target,
        p: &str,
        mode: u32,
        umask: u32,
        flags: i32,
        caller: Caller,
    ) -> Result<(u64, Meta, Opened)> {
        let dir = self.fs.parent_dir(parent).await?;
        let (caller, _) = Self::owner_in(&dir, caller);
        let mut new_file = None;
        match self.meta(&t, p).await? {
            Some(_) if flags & libc::O_EXCL != 0 => {
                return Err(Error::new(ErrorKind::AlreadyExists, self.ctx(p), "exists"))
            }
            Some(e) if e.kind == FileType::Directory => {
                return Err(Error::is_a_directory(self.ctx(p)))
            }
            Some(_) => {}
            None => {
                new_file = Some(self.new_posix(libc::S_IFREG, mode & !umask, caller));
                self.new_entry(&t, p);
            }
        }
        let ino = self.fs.inodes.lookup(t.clone());
        let o = self.open(ino, &t, p, flags, new_file).await?;
        let meta = self.meta_required(&t, p).await?;
        Ok((ino, meta, o))
    }

    /// unlink: the object goes; its parent is kept by a marker when it would vanish.
    pub(super) async fn unlink(&self, t: &Target, p: &str) -> Result<()> {
        let meta = self.meta_required(t, p).await?;
        if meta.kind == FileType::Directory {
            return Err(Error::is_a_directory(self.ctx(p)));
        }
        // no upload of the file stores it again once it is deleted (see `fs::moving`)
        let _held = self.fs.hold_paths(self.m, &[p]).await;
        self.mount.delete_file(p).await?;
        tracing::trace!(p, "unlinked object");
        self.keep_parent(p).await?;
        self.forget_path(t, p);
        Ok(())
    }

    /// rmdir: refused while anything is below it (one O(log n) question, or a fresh
    /// listing), then the marker goes.
    pub(super) async fn rmdir(&self, t: &Target, p: &str) -> Result<()> {
        self.fs.cache.invalidate(t);
        if self.meta_required(t, p).await?.kind != FileType::Directory {
            return Err(Error::not_a_directory(self.ctx(p)));
        }
        let has_child = match self.fs.listings.is_empty(t) {
            Some(empty) => !empty,
            None => !self.mount.dir_is_empty(p).await?,
        };
        if has_child || self.fs.dirs.has_made_below(self.m, p) {
            return Err(Error::new(
                ErrorKind::DirectoryNotEmpty,
                self.ctx(p),
                "directory not empty",
            ));
        }
        self.mount.remove_empty_dir(p).await?;
        self.keep_parent(p).await?;
        self.forget_path(t, p);
        Ok(())
    }

    /// rename: POSIX's checks (type, emptiness, NOREPLACE; EXCHANGE is refused), dirty data
    /// below the source uploaded first, then one native move (memory) or copy + delete.
    pub(super) async fn rename(
        &self,
        from: &Target,
        to: &Target,
        fp: &str,
        tp: &str,
        flags: u32,
    ) -> Result<()> {
        // Listings of both parents are fetched again: forgotten now, and again when the
        // rename is over (however it ends), so that a listing fetched while it ran is not kept.
        let forget = ForgetListings {
            listings: &self.fs.listings,
            mount: self.m,
            paths: [fp.to_string(), tp.to_string()],
        };
        forget.forget();
        tracing::trace!(fp, tp, "rename");
        // no upload of an open file below either path lands at a path the move changed,
        // until the inode table knows the new paths (see `fs::moving`)
        let (held, _mark) = self.fs.hold_paths(self.m, &[fp, tp]).await;
        self.move_objects(from, to, fp, tp, flags, &held).await?;
        tracing::trace!(fp, tp, "renamed objects");
        let fs = self.fs;
        fs.cache.invalidate_tree(self.m, fp);
        fs.cache.invalidate_tree(self.m, tp);
        fs.inodes.rename(self.m, fp, tp);
        fs.dirs.remove_tree(self.m, tp);
        fs.dirs.rename_tree(self.m, fp, tp);
        drop(held);
        for parent in [from.parent(), to.parent()].into_iter().flatten() {
            self.touch_dir(&parent);
        }
        Ok(())
    }

    async fn move_objects(
        &self,
        from: &Target,
        to: &Target,
        fp: &str,
        tp: &str,
        flags: u32,
        held: &super::moving::Held,
    ) -> Result<()> {
        if flags & libc::RENAME_EXCHANGE != 0 {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                self.ctx(fp),
                "RENAME_EXCHANGE is not supported on object backends",
            ));
        }
        let fs = self.fs;
        fs.cache.invalidate(from);
        fs.cache.invalidate(to);
        let src = self.meta_required(from, fp).await?;
        let src_dir = src.kind == FileType::Directory;
        if src_dir && tp.starts_with(&format!("{fp}/")) {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                self.ctx(tp),
                "cannot move a directory into itself",
            ));
        }
        let mount = self.mount;
        if let Some(dst) = self.meta(to, tp).await? {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(Error::new(ErrorKind::AlreadyExists, self.ctx(tp), "exists"));
            }
            match (src_dir, dst.kind == FileType::Directory) {
                (false, true) => return Err(Error::is_a_directory(self.ctx(tp))),
                (true, false) => return Err(Error::not_a_directory(self.ctx(tp))),
                (true, true) => {
                    if !mount.dir_is_empty(tp).await? || fs.dirs.has_made_below(self.m, tp) {
                        return Err(Error::new(
                            ErrorKind::DirectoryNotEmpty,
                            self.ctx(tp),
                            "directory not empty",
                        ));
                    }
                    mount.remove_empty_dir(tp).await?;
                }
                (false, false) => {}
            }
        }
        // Dirty data of open files at or below the source reaches the backend first (the
        // inodes known in the subtree, not every open file); those being replaced at the
        // target are not uploaded.
        for (ino, f) in &held.files {
            if let Some((m, p)) = fs.open_path(*ino) {
                if super::moving::within(&p, fp) {
                    fs.upload_held(*ino, f, Some((m, p)), false).await?;
                }
            }
        }
        if src_dir && mount.stat(fp).await?.is_none() {
            // A directory only this daemon knows (the server keeps no markers): nothing to copy.
            mount.set_meta(tp, true, 0, &posix_of(&src)).await?;
            return Ok(());
        }
        // memory: one move in its store, whatever the subtree holds
        let native = if src_dir {
            mount.rename_tree_native(fp, tp)
        } else if mount.rename_native(fp, tp).await? {
            Some(Ok(()))
        } else {
            None
        };
        if let Some(r) = native {
            return r;
        }
        let src_node = AsyncNode::new(mount.clone(), fp.to_string());
        let dst_node = AsyncNode::new(mount.clone(), tp.to_string());
        src_node.copy(&dst_node).await?;
        if src_dir {
            mount.delete_tree(fp).await?;
        } else {
            mount.delete_file(fp).await?;
        }
        self.keep_parent(fp).await
    }

    /// mknod: a regular file is an empty object; a FIFO, socket or device node is an empty
    /// object whose mode carries its type (with `rdev`), as s3fs stores them.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn mknod(
        &self,
        parent: u64,
        t: Target,
        p: &str,
        mode: u32,
        umask: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        let kind = mode & libc::S_IFMT;
        if kind == libc::S_IFREG || kind == 0 {
            let flags = libc::O_EXCL | libc::O_RDONLY;
            let (ino, meta, o) = self
                .create(parent, t, p, mode, umask, flags, caller)
                .await?;
            self.fs.release(ino, o.fh).await?;
            return Ok((ino, meta));
        }
        self.keeps_types(p)?;
        let dir = self.may_make(parent, &t, p).await?;
        let (caller, _) = Self::owner_in(&dir, caller);
        let mut posix = self.new_posix(kind, mode & !umask, caller);
        posix.rdev = (rdev != 0).then_some(rdev);
        self.mount.put_special(p, &posix).await?;
        self.made(t, p).await
    }

    /// symlink: an object whose body is the target (as s3fs stores them).
    pub(super) async fn symlink(
        &self,
        parent: u64,
        t: Target,
        p: &str,
        target: &Path,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        self.keeps_types(p)?;
        let dir = self.may_make(parent, &t, p).await?;
        let (caller, _) = Self::owner_in(&dir, caller);
        let posix = self.new_posix(libc::S_IFLNK, 0o777, caller);
        let body = Bytes::copy_from_slice(target.as_os_str().as_bytes());
        self.mount.write_with_meta(p, body, &posix).await?;
        self.made(t, p).await
    }
}

/// Drops the listings of two paths' parents and subtrees when made and when dropped.
struct ForgetListings<'a> {
    listings: &'a Listings,
    mount: usize,
    paths: [String; 2],
}

impl ForgetListings<'_> {
    fn forget(&self) {
        for q in &self.paths {
            self.listings
                .forget(&Target::Path(self.mount, path::parent(q).to_string()));
            self.listings.drop_tree(self.mount, q);
        }
    }
}

impl Drop for ForgetListings<'_> {
    fn drop(&mut self) {
        self.forget();
    }
}

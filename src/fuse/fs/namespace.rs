//! Changes to the namespace: mkdir, create, unlink, rmdir, rename (native on local mounts and
//! memory, copy + delete on S3), symlink, mknod and link. On object backends a symlink or a
//! special file is an object carrying its type in its mode; a change of a directory's entries
//! sets its mtime and ctime in the daemon's directory table.

use super::*;
use crate::fuse::dir_attrs::DirAttr;

impl Fs {
    /// (The attribute cache is trusted here: the kernel looked the name up just before, and
    /// our own mutations keep the cache right.)
    pub(super) async fn must_not_exist(&self, t: &Target) -> Result<()> {
        if self.meta(t).await?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, self.ctx(t), "exists"));
        }
        Ok(())
    }

    pub(super) async fn parent_dir(&self, parent: u64) -> Result<()> {
        let pt = self.target(parent)?;
        match self.meta(&pt).await? {
            Some(m) if m.kind == FileType::Directory => Ok(()),
            Some(_) => Err(Error::not_a_directory(self.ctx(&pt))),
            None => Err(not_found(self.ctx(&pt))),
        }
    }

    /// A name was made in its parent: its listing gains it, its times change.
    pub(super) fn new_entry(&self, t: Target) -> Target {
        self.cache.invalidate(&t);
        if let (Target::Path(m, p), Some(parent)) = (&t, t.parent()) {
            self.listings.add(&parent, path::basename(p));
            if self.mount(*m).local_root().is_none() {
                self.touch_dir(&parent);
            }
        }
        t
    }

    /// An entry of the object-backend directory `dir` changed: its mtime and ctime are now
    /// (in the attribute cache too).
    fn touch_dir(&self, dir: &Target) {
        self.dirs.touch(dir);
        let now = SystemTime::now();
        self.cache.update(dir, |m| {
            m.mtime = now;
            m.ctime = now;
        });
    }

    /// The attributes a new object-backend entry carries: type and mode, its creator.
    fn new_posix(kind: u32, perm: u32, caller: Caller) -> PosixMeta {
        let now = SystemTime::now();
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

    /// Give a new host entry to its caller when the daemon runs as root and the caller is
    /// someone else (without following a symlink).
    pub(super) fn give_host(&self, t: &Target, host: &Path, caller: Caller) -> Result<()> {
        let me = Caller::daemon();
        if me.uid != 0 || caller == me {
            return Ok(());
        }
        std::os::unix::fs::lchown(host, Some(caller.uid), inherited_gid(host, caller))
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
        let (t, m, p) = self.child_to_make(parent, name)?;
        self.parent_dir(parent).await?;
        self.must_not_exist(&t).await?;
        let mode = (mode & !umask & 0o7777) as u16;
        if let Some(host) = self.host(m, &p)? {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(mode as u32)
                .create(&host)
                .map_err(|e| Error::from_io(self.ctx(&t), e))?;
            self.give_host(&t, &host, caller)?;
        } else {
            let posix = Self::new_posix(libc::S_IFDIR, mode as u32, caller);
            self.mount(m).set_meta(&p, true, 0, &posix).await?;
            let now = SystemTime::now();
            self.dirs.update(&t, |a| {
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
            self.listings.put_new(t.clone());
        }
        let t = self.new_entry(t);
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
        let (t, m, p) = self.child_to_make(parent, name)?;
        if let Some(host) = self.host(m, &p)? {
            return self.create_local(t, &host, mode, umask, flags, caller);
        }
        self.parent_dir(parent).await?;
        let mut new_file = None;
        match self.meta(&t).await? {
            Some(_) if flags & libc::O_EXCL != 0 => {
                return Err(Error::new(ErrorKind::AlreadyExists, self.ctx(&t), "exists"))
            }
            Some(e) if e.kind == FileType::Directory => {
                return Err(Error::is_a_directory(self.ctx(&t)))
            }
            Some(_) => {}
            None => {
                new_file = Some(Self::new_posix(libc::S_IFREG, mode & !umask, caller));
                self.new_entry(t.clone());
            }
        }
        let ino = self.inodes.lookup(t.clone());
        let fh = self.open_target(ino, &t, flags, new_file).await?;
        let meta = self.getattr(ino).await?;
        Ok((ino, meta, fh))
    }

    /// create(2) on a local mount is one open(2) of the host file: the host filesystem
    /// checks the parent, O_EXCL and the type, and the descriptor it returns serves the handle.
    pub(super) fn create_local(
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
            std::os::unix::fs::fchown(&file, Some(caller.uid), inherited_gid(host, caller))
                .map_err(err)?;
        }
        let meta = local::meta(
            &file
                .metadata()
                .map_err(|e| Error::from_io(self.ctx(&t), e))?,
        );
        let ino = self.inodes.lookup(t.clone());
        let (fh, h) = self.handles.open_file_with(
            ino,
            self.mount(*m),
            file,
            meta.size,
            flags & libc::O_APPEND != 0,
        );
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

    /// On object stores a directory exists only through its children or a marker: keep
    /// the parent of a removed entry alive with a marker when it would vanish.
    pub(super) async fn keep_parent(&self, m: usize, p: &str) -> Result<()> {
        let mount = self.mount(m);
        let parent = path::parent(p);
        if mount.local_root().is_some() || parent.is_empty() {
            return Ok(());
        }
        let pt = Target::Path(m, parent.to_string());
        self.cache.invalidate(&pt);
        if self.dirs.is_made(&pt) {
            // made here: it exists for as long as the daemon does, marker or not
            return Ok(());
        }
        if self.listings.has_other(&pt, path::basename(p)) == Some(true) {
            // a fresh listing has other entries: the parent stays
            return Ok(());
        }
        if !mount.dir_has_entries(parent).await? {
            mount.create_dir(parent).await?;
        }
        Ok(())
    }

    /// `t` (and all below it) is gone: what is known of it goes, at a cost of what the
    /// subtree holds; its parent's times change.
    pub(super) fn forget_path(&self, t: &Target) {
        self.inodes.unlink(t);
        if let (Target::Path(m, p), Some(parent)) = (t, t.parent()) {
            self.cache.invalidate_tree(*m, p);
            self.listings.remove(&parent, path::basename(p));
            self.listings.drop_tree(*m, p);
            if self.mount(*m).local_root().is_none() {
                self.dirs.remove_tree(*m, p);
                self.touch_dir(&parent);
            }
        }
    }

    /// Remove a file (or symlink).
    pub async fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let t = self.child_mut(parent, name)?;
        self.check_remove(&t)?;
        let Target::Path(m, p) = &t else {
            unreachable!("check_remove refuses the root")
        };
        if let Some(host) = self.host(*m, p)? {
            // unlink(2) itself says ENOENT, or EISDIR for a directory: no stat first.
            let _ns = self.ns_change();
            std::fs::remove_file(&host).map_err(|e| Error::from_io(self.ctx(&t), e))?;
            self.forget_path(&t);
            return Ok(());
        }
        let meta = self.meta_required(&t).await?;
        if meta.kind == FileType::Directory {
            return Err(Error::is_a_directory(self.ctx(&t)));
        }
        self.mount(*m).delete_file(p).await?;
        self.keep_parent(*m, p).await?;
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
            let has_child = match self.listings.is_empty(&t) {
                Some(empty) => !empty,
                None => !mount.dir_is_empty(p).await?,
            };
            if has_child || self.dirs.has_made_below(*m, p) {
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
        // Listings of both parents are fetched again: forgotten now, and again when the
        // rename is over (however it ends), so that a listing fetched while it ran is not kept.
        let forget = ForgetListings {
            listings: &self.listings,
            mount: m,
            paths: [fp.to_string(), tp.to_string()],
        };
        forget.forget();
        // Local: the host rename and the inode table change as one step for opens (below).
        let _ns = if let (Some(hf), Some(ht)) = (self.host(m, fp)?, self.host(m, tp)?) {
            let ns = self.ns_change();
            local::rename(&hf, &ht, flags).map_err(|e| Error::from_io(self.ctx(&from), e))?;
            Some(ns)
        } else {
            self.rename_object(m, &from, &to, fp, tp, flags).await?;
            None
        };
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
        if self.mount(m).local_root().is_none() {
            self.dirs.remove_tree(m, tp);
            self.dirs.rename_tree(m, fp, tp);
            for parent in [from.parent(), to.parent()].into_iter().flatten() {
                self.touch_dir(&parent);
            }
        }
        Ok(())
    }

    pub(super) async fn rename_object(
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
                    if !mount.dir_is_empty(tp).await? || self.dirs.has_made_below(m, tp) {
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
        // Dirty data of open files at or below the source reaches the backend first (the
        // inodes known in the subtree, not every open file).
        for ino in self.inodes.subtree(m, fp) {
            if let Some(f) = self.handles.open_file(ino) {
                self.upload(ino, &f, false).await?;
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
        self.keep_parent(m, fp).await
    }

    /// Make a host entry with `make`, give it to the caller, and look it up.
    async fn make_host(
        &self,
        t: Target,
        host: &Path,
        caller: Caller,
        make: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<(u64, Meta)> {
        make(host).map_err(|e| Error::from_io(self.ctx(&t), e))?;
        self.give_host(&t, host, caller)?;
        self.cache.invalidate(&t);
        let meta = self.meta_required(&t).await?;
        Ok((self.inodes.lookup(t), meta))
    }

    /// Create a FIFO, socket or device node (local mounts; elsewhere EPERM, as mknod(2)
    /// specifies for filesystems that cannot hold them).
    pub async fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        let (t, m, p) = self.child_to_make(parent, name)?;
        match self.host(m, &p)? {
            Some(host) => {
                let mode = (mode & libc::S_IFMT) | (mode & !umask & 0o7777);
                self.make_host(t, &host, caller, |h| local::mknod(h, mode, rdev))
                    .await
            }
            None => {
                let kind = mode & libc::S_IFMT;
                if kind == libc::S_IFREG || kind == 0 {
                    // mknod of a regular file: an empty object
                    let (ino, meta, o) = self
                        .create(
                            parent,
                            name,
                            mode,
                            umask,
                            libc::O_EXCL | libc::O_RDONLY,
                            caller,
                        )
                        .await?;
                    self.release(ino, o.fh).await?;
                    return Ok((ino, meta));
                }
                self.parent_dir(parent).await?;
                self.must_not_exist(&t).await?;
                let mut posix = Self::new_posix(kind, mode & !umask, caller);
                posix.rdev = (rdev != 0).then_some(rdev);
                self.mount(m).put_special(&p, &posix).await?;
                self.made_object(t).await
            }
        }
    }

    /// Create a symlink: on the host for local mounts, kept by the daemon for memory mounts;
    /// EPERM on S3, as symlink(2) specifies for filesystems that cannot hold them.
    pub async fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        let (t, m, p) = self.child_to_make(parent, name)?;
        match self.host(m, &p)? {
            Some(host) => {
                self.make_host(t, &host, caller, |h| std::os::unix::fs::symlink(target, h))
                    .await
            }
            None => {
                // an object whose body is the target (as s3fs stores them)
                self.parent_dir(parent).await?;
                self.must_not_exist(&t).await?;
                let posix = Self::new_posix(libc::S_IFLNK, 0o777, caller);
                let body = Bytes::copy_from_slice(target.as_os_str().as_bytes());
                self.mount(m).write_with_meta(&p, body, &posix).await?;
                self.made_object(t).await
            }
        }
    }

    /// An object was just made at `t`: its parent learns of it, and it is looked up.
    async fn made_object(&self, t: Target) -> Result<(u64, Meta)> {
        let t = self.new_entry(t);
        let meta = self.meta_required(&t).await?;
        Ok((self.inodes.lookup(t), meta))
    }

    /// Create a hard link (local mounts; elsewhere EPERM, as link(2) specifies).
    pub async fn link(&self, ino: u64, newparent: u64, newname: &OsStr) -> Result<(u64, Meta)> {
        let (m, p) = self.path_of(ino)?;
        let (t, m2, p2) = self.child_to_make(newparent, newname)?;
        if m2 != m {
            return Err(Error::new(
                ErrorKind::CrossMount,
                self.ctx(&t),
                "link across mounts",
            ));
        }
        match (self.host(m, &p)?, self.host(m, &p2)?) {
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

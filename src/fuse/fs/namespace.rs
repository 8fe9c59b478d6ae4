//! Changes to the namespace: mkdir, create, unlink, rmdir, rename (native on local mounts, copy + delete on object backends), symlink and link.

use super::*;

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

    pub(super) fn new_entry(&self, t: Target, mode: Option<u16>, caller: Caller) -> Target {
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
        if let Target::Path(m, p) = &t {
            let parent = Target::Path(*m, path::parent(p).to_string());
            self.listings.add(&parent, path::basename(p));
        }
        t
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
            self.mount(m).create_dir(&p).await?;
            self.lock_dirs().insert(t.clone());
            // nothing was there (checked above): a listing of it is empty
            self.listings.put_new(t.clone());
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
        let (t, m, p) = self.child_to_make(parent, name)?;
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
        if self.lock_dirs().contains(&pt) {
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

    pub(super) fn forget_path(&self, t: &Target) {
        self.inodes.unlink(t);
        if let Target::Path(m, p) = t {
            self.cache.invalidate_tree(*m, p);
            let parent = Target::Path(*m, path::parent(p).to_string());
            self.listings.remove(&parent, path::basename(p));
            self.listings.drop_tree(*m, p);
            self.lock_dirs().retain(|k| !k.is_within(*m, p));
            self.lock_links().retain(|k, _| !k.is_within(*m, p));
            self.lock_overlay().retain(|k, _| !k.is_within(*m, p));
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
        if meta.kind == FileType::Symlink {
            self.mount(*m).check_delete(p)?;
            self.lock_links().remove(&t);
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
            let child_of = |d: &Target| matches!(d, Target::Path(dm, dp) if dm == m && path::parent(dp) == p.as_str() && !dp.is_empty());
            let has_made_child =
                self.lock_dirs().iter().any(child_of) || self.lock_links().keys().any(child_of);
            let has_child = match self.listings.is_empty(&t) {
                Some(empty) => !empty,
                None => !mount.list(p).await?.is_empty(),
            };
            if has_made_child || has_child {
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
        let mut links = self.lock_links();
        let moved: Vec<Target> = links
            .keys()
            .filter(|k| k.is_within(m, fp))
            .cloned()
            .collect();
        for k in moved {
            if let (Some(v), Target::Path(km, kp)) = (links.remove(&k), &k) {
                links.insert(Target::Path(*km, format!("{tp}{}", &kp[fp.len()..])), v);
            }
        }
        drop(links);
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
                    let link_inside = self.lock_links().keys().any(|k| k.is_within(m, tp));
                    if link_inside || !mount.list(tp).await?.is_empty() {
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
        if src.kind == FileType::Symlink {
            // a memory mount's symlink: the daemon's entry moves, over what was at `to`
            mount.check_delete(fp)?;
            let was_link = self.lock_links().remove(to).is_some();
            if !was_link && mount.stat(tp).await?.is_some() {
                mount.delete_file(tp).await?;
            }
            let link = self.lock_links().remove(from);
            if let Some(link) = link {
                self.lock_links().insert(to.clone(), link);
            }
            return Ok(());
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
        self.lock_links().remove(to);
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
            None => Err(Error::new(
                ErrorKind::NotPermitted,
                self.ctx(&t),
                "this backend cannot hold special files",
            )),
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
            None if self.mount(m).is_memory() => {
                // kept by the daemon, as long as the memory mount's data
                self.parent_dir(parent).await?;
                self.must_not_exist(&t).await?;
                self.lock_links()
                    .insert(t.clone(), (target.to_path_buf(), SystemTime::now()));
                let t = self.new_entry(t, None, caller);
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

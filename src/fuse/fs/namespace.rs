//! Changes to the namespace (mkdir, create, unlink, rmdir, rename, mknod, symlink, link):
//! the checks every mount shares (the root, read-only, delete permission, across mounts),
//! then one hand-off to the mount's side, `host.rs` or `object_ns.rs`.

use super::*;

impl Fs {
    /// The parent must exist and be a directory.
    pub(super) async fn parent_dir(&self, parent: u64) -> Result<Meta> {
        let pt = self.target(parent)?;
        match self.meta(&pt).await? {
            Some(m) if m.kind == FileType::Directory => Ok(m),
            Some(_) => Err(Error::not_a_directory(self.ctx(&pt))),
            None => Err(not_found(self.ctx(&pt))),
        }
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
        let mode = (mode & !umask & 0o7777) as u16;
        match self.side(m) {
            Side::Host(h) => h.mkdir(&p, mode, caller),
            Side::Object(o) => o.mkdir(parent, t, &p, mode, caller).await,
        }
    }

    /// Create and open a file.
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
        match self.side(m) {
            Side::Host(h) => h.create(&p, mode, umask, flags, caller),
            Side::Object(o) => o.create(parent, t, &p, mode, umask, flags, caller).await,
        }
    }

    /// Remove a file (or symlink, or special file).
    pub async fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        let (t, m, p) = self.child_to_remove(parent, name)?;
        match self.side(m) {
            Side::Host(h) => h.unlink(&t, &p),
            Side::Object(o) => o.unlink(&t, &p).await,
        }
    }

    /// Remove an empty directory.
    pub async fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        let (t, m, p) = self.child_to_remove(parent, name)?;
        match self.side(m) {
            Side::Host(h) => h.rmdir(&t, &p),
            Side::Object(o) => o.rmdir(&t, &p).await,
        }
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
        let (from, m, fp) = self.child_to_remove(parent, name)?;
        let to = self.child_mut(newparent, newname)?;
        self.check_change(&to)?;
        let Target::Path(m2, tp) = &to else {
            unreachable!("check_change refuses the root")
        };
        if m != *m2 {
            return Err(Error::new(
                ErrorKind::CrossMount,
                self.ctx(&to),
                "rename across mounts",
            ));
        }
        if tp.is_empty() {
            return Err(Error::new(ErrorKind::Busy, self.ctx(&to), "a mount's root"));
        }
        if fp == *tp {
            return Ok(());
        }
        match self.side(m) {
            Side::Host(h) => h.rename(&fp, tp, flags),
            Side::Object(o) => o.rename(&from, &to, &fp, tp, flags).await,
        }
    }

    /// Create a FIFO, socket, device node or regular file.
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
        match self.side(m) {
            Side::Host(h) => h.mknod(&p, mode, umask, rdev, caller),
            Side::Object(o) => o.mknod(parent, t, &p, mode, umask, rdev, caller).await,
        }
    }

    /// Create a symlink.
    pub async fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> Result<(u64, Meta)> {
        let (t, m, p) = self.child_to_make(parent, name)?;
        match self.side(m) {
            Side::Host(h) => h.symlink(&p, target, caller),
            Side::Object(o) => o.symlink(parent, t, &p, target, caller).await,
        }
    }

    /// Create a hard link (local mounts; elsewhere EPERM, as link(2) specifies for
    /// filesystems that cannot hold them).
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
        match self.side(m) {
            Side::Host(h) => h.link(&p, &p2),
            Side::Object(_) => Err(Error::new(
                ErrorKind::NotPermitted,
                self.ctx(&t),
                "this backend cannot hold hard links",
            )),
        }
    }
}

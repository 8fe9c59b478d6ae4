//! The object half of the core (memory, S3 and every backend to come): attributes from the
//! object's metadata behind the bounded attribute cache, listings, opens staged on local
//! disk, setattr as one metadata request, symlinks as objects. Its namespace changes are in
//! `object_ns.rs`.

use super::*;
use crate::fuse::attr_cache::Cached;
use crate::fuse::handles::{Memory, MAP_MIN};
use crate::storage::mount::Was;

/// The bytes of a file a lookup fetches with its attributes where one request brings both
/// (S3): the kernel's first read-ahead, so that the first read of a small file, or the first
/// window of a large one, needs no request of its own.
const FIRST_BYTES: u64 = 128 << 10;

/// A listing asks S3 files of at most this size by a GET of their bytes rather than a HEAD
/// (the same one request each; `ls -l` then `cat` or `grep -r` reads them with no more).
/// Larger files are asked by a HEAD: a listing should not move much data.
const LIST_FIRST_BYTES: u64 = 16 << 10;

/// An object mount's side of the core (see [`Side`]).
pub(super) struct Object<'a> {
    pub(super) fs: &'a Fs,
    pub(super) m: usize,
    pub(super) mount: &'a Arc<Mount>,
}

impl Object<'_> {
    pub(super) fn ctx(&self, p: &str) -> String {
        self.mount.ctx(p)
    }

    pub(super) fn target(&self, p: &str) -> Target {
        Target::Path(self.m, p.to_string())
    }

    /// Attributes of `t` (a path of this mount); `Ok(None)` when it does not exist. A file
    /// open and written here is what the daemon knows; otherwise the cache, a fresh listing
    /// of the parent that lacks the name, or one request.
    pub(super) async fn meta(&self, t: &Target, p: &str) -> Result<Option<Meta>> {
        let fs = self.fs;
        if p.is_empty() {
            return Ok(Some(fs.dir_meta(Some(t))));
        }
        if let Some(meta) = fs.staged(t) {
            return Ok(Some(meta));
        }
        // what was known, expired: which request to send first, never the answer
        let was = match fs.cache.lookup(t) {
            Cached::Fresh(v) => {
                fs.stats.add(self.m, |s| &s.cache_hits, 1);
                return Ok(v);
            }
            Cached::Stale(Some(m)) if m.kind == FileType::Directory => Was::Dir,
            Cached::Stale(Some(m)) if m.size == 0 => Was::Empty,
            Cached::Stale(Some(_)) => Was::File,
            Cached::Stale(None) | Cached::Unknown => Was::Unknown,
        };
        let parent = self.target(path::parent(p));
        if fs.listings.has(&parent, path::basename(p)) == Some(false) {
            fs.stats.add(self.m, |s| &s.cache_hits, 1);
            return Ok(None);
        }
        fs.stats.add(self.m, |s| &s.cache_misses, 1);
        // (on S3 one ranged GET: the attributes, and a small file's bytes for its open)
        let (v, head) = match self.mount.stat_first(p, FIRST_BYTES, was).await? {
            Some(f) => (Some(fs.entry_meta(t, &f.entry)), f.first),
            // made here, on a server that keeps no markers
            None if fs.dirs.is_made(t) => (Some(fs.dir_meta(Some(t))), None),
            None => (None, None),
        };
        fs.cache.put_with_head(t.clone(), v.clone(), head);
        Ok(v)
    }

    pub(super) async fn meta_required(&self, t: &Target, p: &str) -> Result<Meta> {
        self.meta(t, p).await?.ok_or_else(|| not_found(self.ctx(p)))
    }

    /// Change attributes: a truncate goes through the open file (or a detached one), the
    /// rest is stored with the object in one request.
    pub(super) async fn setattr(
        &self,
        ino: u64,
        t: &Target,
        p: &str,
        set: SetAttr,
    ) -> Result<Meta> {
        let mut current = self.meta_required(t, p).await?;
        if let Some(size) = set.size {
            if current.kind == FileType::Directory {
                return Err(Error::is_a_directory(self.ctx(p)));
            }
            self.may_hold(p, size, 0)?; // (a hole takes no memory)
            self.truncate(ino, p, size, &current).await?;
            current.size = size;
            current.blocks = size.div_ceil(512);
            current.mtime = SystemTime::now();
        }
        let only_size = set.mode.is_none()
            && set.uid.is_none()
            && set.gid.is_none()
            && set.atime.is_none()
            && set.mtime.is_none();
        if only_size {
            // the truncate's upload carried the new size and times
            self.fs.cache.invalidate(t);
            return self.meta_required(t, p).await;
        }
        if !self.mount.keeps_posix() && current.kind != FileType::Directory {
            // (a directory's attributes live in the daemon's table while it runs)
            return self.setattr_unkept(ino, t, p, &set, current).await;
        }
        let mut next = current;
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
        next.ctime = SystemTime::now();
        self.store_attrs(ino, t, p, &next).await?;
        Ok(next)
    }

    /// setattr on a backend that keeps no attributes of ours (WebDAV, FTP, HTTP): a file
    /// about to be uploaded takes "now" as its times (its upload's Last-Modified will be
    /// that: `touch new` works); anything else is EOPNOTSUPP, never a change that the next
    /// stat would take back.
    async fn setattr_unkept(
        &self,
        ino: u64,
        t: &Target,
        p: &str,
        set: &SetAttr,
        current: Meta,
    ) -> Result<Meta> {
        // a mode or owner the entry shows already is no change (tar and git set them so)
        let same = set.mode.is_none_or(|m| (m & 0o7777) as u16 == current.perm)
            && set.uid.is_none_or(|u| u == current.uid)
            && set.gid.is_none_or(|g| g == current.gid);
        let times = set.atime.is_some() || set.mtime.is_some();
        if same && !times {
            return Ok(current);
        }
        let now_only = same
            && set.atime.is_none_or(|a| matches!(a, TimeSet::Now))
            && set.mtime.is_none_or(|m| matches!(m, TimeSet::Now));
        let pending = match self.fs.handles.open_file(ino) {
            Some(f) => f.is_dirty().await,
            None => false,
        };
        if let (true, false, Some(f)) = (now_only, pending, self.fs.handles.open_file(ino)) {
            // `touch` of an open file: its upload at close makes the times now (the whole
            // file is sent again: the backend has no other way to move them)
            f.touch(p, &self.fs.cache_dir).await?;
            return self.setattr_now(t, current);
        }
        if now_only && pending {
            return self.setattr_now(t, current);
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            self.ctx(p),
            format!(
                "{} keeps no modes, owners or set times",
                self.mount.config().backend.protocol()
            ),
        ))
    }

    fn setattr_now(&self, t: &Target, mut current: Meta) -> Result<Meta> {
        let now = SystemTime::now();
        current.mtime = now;
        current.atime = now;
        current.ctime = now;
        self.fs.cache.put(t.clone(), Some(current.clone()));
        Ok(current)
    }

    /// Keep `next` as `t`'s attributes. A file open with data not uploaded yet takes them
    /// with its upload; any other object is changed in place (one request on S3, its bytes
    /// never re-uploaded); a directory keeps them in its marker and, for servers without
    /// markers, in the daemon's table.
    async fn store_attrs(&self, ino: u64, t: &Target, p: &str, next: &Meta) -> Result<()> {
        let posix = posix_of(next);
        if next.kind == FileType::Directory {
            self.fs.dirs.update(t, |a| {
                a.perm = Some(next.perm);
                a.uid = Some(next.uid);
                a.gid = Some(next.gid);
                a.mtime = Some(next.mtime);
                a.ctime = Some(next.ctime);
                a.atime = Some(next.atime);
            });
            if !p.is_empty() {
                self.mount.set_meta(p, true, 0, &posix).await?;
            }
        } else {
            let open = self.fs.handles.open_file(ino);
            let dirty = match &open {
                Some(f) => f.is_dirty().await,
                None => false,
            };
            if let Some(f) = &open {
                f.set_posix(|pm| *pm = posix.clone());
            }
            if !dirty {
                self.mount.set_meta(p, false, next.size, &posix).await?;
            }
        }
        self.fs.cache.put(t.clone(), Some(next.clone()));
        Ok(())
    }

    /// Truncate: through the open file, uploaded at once (a release racing with this
    /// truncate may have passed already), or through a detached one.
    async fn truncate(&self, ino: u64, p: &str, size: u64, current: &Meta) -> Result<()> {
        let cache = &self.fs.cache_dir;
        match self.fs.handles.open_file(ino) {
            Some(f) => {
                f.truncate(Some(p), cache, size).await?;
                self.fs.upload(ino, &f, false).await
            }
            None => {
                let f = OpenFile::detached(self.mount.clone(), current.size, posix_of(current));
                f.truncate(Some(p), cache, size).await?;
                f.flush(Some(p), false).await.map(|_| ())
            }
        }
    }

    /// Open `t`; `new_file` is the attributes of a file just created here (staged empty,
    /// uploaded by its close).
    pub(super) async fn open(
        &self,
        ino: u64,
        t: &Target,
        p: &str,
        flags: i32,
        new_file: Option<PosixMeta>,
    ) -> Result<Opened> {
        let (size, posix) = match &new_file {
            Some(posix) => (0, posix.clone()),
            None => {
                let meta = self.meta_required(t, p).await?;
                if meta.kind == FileType::Directory {
                    return Err(Error::is_a_directory(self.ctx(p)));
                }
                (meta.size, posix_of(&meta))
            }
        };
        let new_file = new_file.is_some();
        let OpenMode {
            writable,
            trunc,
            append,
        } = self.fs.open_mode(t, flags)?;
        // A memory mount's file, not open yet, as a memory file the kernel reads and writes
        // itself (passthrough), made outside the table's lock; one kept in bytes and larger
        // than MAP_MIN is served by the daemon. (Every open of an inode shares its open file:
        // the kernel refuses a passthrough open beside a cached one.)
        let mut memory = match self.mount.memory_direct() && !new_file {
            true => Memory::Wanted,
            false => Memory::No,
        };
        let (fh, h) = loop {
            let opened = self.fs.handles.open_object(
                ino,
                self.mount,
                size,
                posix.clone(),
                writable,
                append,
                new_file.then_some(&self.fs.cache_dir),
                memory,
            )?;
            match opened {
                Some(opened) => break opened,
                None => {
                    memory = match self.mount.memory_open_file(p, MAP_MIN).transpose()? {
                        Some(made) => Memory::Made(made),
                        None => Memory::No,
                    }
                }
            }
        };
        self.fs.inodes.open(ino);
        tracing::trace!(ino, fh, p, writable, trunc, size = h.file.size(), "open");
        if let Some(first) = self.fs.cache.take_head(t) {
            // the bytes the lookup's request brought with the size used here
            // (a whole file only: a larger one's later ranges would come from the object as
            // it is then, and could mix two versions of it)
            if !writable && !trunc && size <= FIRST_BYTES && first.len() as u64 == size {
                h.seed(first, size);
            }
        }
        // (the open file's size: a memory file's own length, which a lookup's cached
        // attributes may not know yet)
        if trunc && h.file.size() > 0 {
            if let Err(e) = h.file.truncate(Some(p), &self.fs.cache_dir, 0).await {
                self.fs.release(ino, fh).await.ok();
                return Err(e);
            }
            self.fs.cache.invalidate(t);
        }
        let read_only = !writable && !trunc;
        Ok(Opened {
            fh,
            read_only,
            // a file just created is uploaded by its close (FLUSH), even when opened read-only:
            // were it left to the asynchronous RELEASE, an unlink right after close could run
            // before the upload lands, and the file would come back
            no_flush: read_only && !new_file,
            passthrough: h.file.is_direct().then(|| h.file.clone()),
        })
    }

    /// The object's body, when its mode says symlink.
    pub(super) async fn readlink(&self, t: &Target, p: &str) -> Result<Vec<u8>> {
        if self.meta_required(t, p).await?.kind != FileType::Symlink {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                self.ctx(p),
                "not a symlink",
            ));
        }
        Ok(self.mount.read_all(p).await?.to_vec())
    }

    /// The directory's entries: a fresh listing from the caches or one listing request,
    /// then the directories made here (servers without markers keep none of them) and the
    /// files open and written here, possibly not uploaded yet.
    pub(super) async fn list(&self, t: &Target, p: &str) -> Result<Vec<DirEntry<Meta>>> {
        let fs = self.fs;
        let mut out = match self.listed(t, p) {
            Some(listed) => listed,
            None => {
                let started = fs.listings.begin();
                let mut names = HashSet::new();
                let mut out = Vec::new();
                for (name, f) in self.mount.list_first(p, LIST_FIRST_BYTES).await? {
                    let ct = self.target(&path::join(p, &name));
                    let meta = fs.entry_meta(&ct, &f.entry);
                    fs.cache
                        .put_with_head(ct.clone(), Some(meta.clone()), f.first);
                    names.insert(name.clone());
                    out.push(DirEntry {
                        name,
                        target: Some(ct),
                        meta,
                    });
                }
                fs.listings.put(t.clone(), names, started);
                out
            }
        };
        let mut at: std::collections::HashMap<String, usize> = out
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        for d in fs.dirs.made_children(self.m, p) {
            let Target::Path(_, dp) = &d else { continue };
            let name = path::basename(dp).to_string();
            if !at.contains_key(&name) {
                at.insert(name.clone(), out.len());
                out.push(DirEntry {
                    name,
                    meta: fs.dir_meta(Some(&d)),
                    target: Some(d),
                });
            }
        }
        // (the inodes known inside this directory, not every open file)
        for (ft, ino) in fs.inodes.children(self.m, p) {
            let Some(f) = fs.handles.open_file(ino) else {
                continue;
            };
            let Some(size) = f.staged_size() else {
                continue;
            };
            let Target::Path(_, fp) = &ft else { continue };
            let meta = fs.staged_meta(&f, size);
            let name = path::basename(fp).to_string();
            match at.get(&name) {
                Some(&i) => out[i].meta = meta,
                None => out.push(DirEntry {
                    name,
                    target: Some(ft.clone()),
                    meta,
                }),
            }
        }
        Ok(out)
    }

    /// A listing answered from a fresh listing of its names and the attribute cache, with
    /// no request; `None` when any entry is unknown. Directories made here and staged files
    /// are merged by the caller, as after a request.
    fn listed(&self, t: &Target, p: &str) -> Option<Vec<DirEntry<Meta>>> {
        let fs = self.fs;
        let names = fs.listings.names(t)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let ct = self.target(&path::join(p, &name));
            match fs.cache.get(&ct) {
                Some(Some(meta)) => out.push(DirEntry {
                    name,
                    target: Some(ct),
                    meta,
                }),
                _ if fs.dirs.is_made(&ct) || fs.staged(&ct).is_some() => {}
                _ => return None,
            }
        }
        fs.stats.add(self.m, |s| &s.cache_hits, 1);
        Some(out)
    }

    /// May the file `p` grow to `end` bytes, with up to `new` bytes more to hold? EFBIG past
    /// the largest object the backend holds, ENOSPC past a memory mount's budget (what is
    /// held already is never lost: the write is refused before it happens).
    pub(super) fn may_hold(&self, p: &str, end: u64, new: u64) -> Result<()> {
        if let Some(max) = self.mount.max_file_size() {
            if end > max {
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    self.ctx(p),
                    format!("larger than the {max} bytes this backend holds in one file"),
                ));
            }
        }
        if let Some((max, used)) = self.mount.memory_usage() {
            if used.saturating_add(new) > max {
                return Err(Error::new(
                    ErrorKind::NoSpace,
                    self.ctx(p),
                    format!("no space left: the mount's max_size of {max} bytes is used"),
                ));
            }
        }
        Ok(())
    }

    /// Data was written to `p` through an open file: what is cached of it is stale.
    pub(super) fn wrote(&self, p: &str) {
        self.fs.cache.invalidate(&self.target(p));
    }

    /// The backend answered a read with a changed size, or not at all: ask it next time.
    pub(super) fn read_changed(&self, p: &str) {
        self.fs.cache.invalidate(&self.target(p));
        self.fs.listings.forget(&self.target(path::parent(p)));
    }

    /// A memory mount's budget and what its files take; constants for stores with no
    /// fixed size.
    pub(super) fn statfs(&self) -> Statfs {
        match self.mount.memory_usage() {
            Some((max, used)) => Statfs {
                blocks: max / 4096,
                bfree: max.saturating_sub(used) / 4096,
                bavail: max.saturating_sub(used) / 4096,
                files: 1 << 32,
                ffree: 1 << 32,
                bsize: 4096,
                namelen: 255,
                frsize: 4096,
            },
            None => Self::unbounded(),
        }
    }

    /// Figures of a store with no fixed size: generous constants.
    pub(super) fn unbounded() -> Statfs {
        Statfs {
            blocks: 1 << 40,
            bfree: 1 << 40,
            bavail: 1 << 40,
            files: 1 << 32,
            ffree: 1 << 32,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
        }
    }
}

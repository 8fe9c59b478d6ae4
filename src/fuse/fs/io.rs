//! Open files: open, read, write, flush, fsync and release, and uploads of staged data.

use super::*;

impl Fs {
    /// Open a file.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<Opened> {
        let t = self.target(ino)?;
        self.open_target(ino, &t, flags, None).await
    }

    /// Open `t`; `new_file` is the attributes of a file just created (object backends).
    pub(super) async fn open_target(
        &self,
        ino: u64,
        t: &Target,
        flags: i32,
        new_file: Option<PosixMeta>,
    ) -> Result<Opened> {
        let Target::Path(m, p) = t else {
            return Err(Error::is_a_directory("/"));
        };
        let host = self.host(*m, p)?;
        // (A local file is checked by opening it: no stat first.)
        let (size, posix) = match (&new_file, &host) {
            (Some(p), _) => (0, p.clone()),
            (None, Some(_)) => (0, PosixMeta::default()),
            (None, None) => {
                let meta = self.meta_required(t).await?;
                if meta.kind == FileType::Directory {
                    return Err(Error::is_a_directory(self.ctx(t)));
                }
                (meta.size, posix_of(&meta))
            }
        };
        let new_file = new_file.is_some();
        let acc = flags & libc::O_ACCMODE;
        let writable = acc != libc::O_RDONLY;
        let trunc = flags & libc::O_TRUNC != 0;
        if writable || trunc {
            self.check_change(t)?;
        }
        let append = flags & libc::O_APPEND != 0;
        let (fh, h) = if let Some(first) = &host {
            // The host file is found by path: by the inode's path now, with renames and
            // unlinks held off (the one above may be stale).
            let _ns = self.ns_stable();
            match self.inodes.target(ino) {
                Some(now) if &now == t => self.handles.open(
                    ino,
                    self.mount(*m),
                    Some(first),
                    size,
                    PosixMeta::default(),
                    writable,
                    append,
                    None,
                )?,
                Some(Target::Path(m2, p2)) if m2 == *m => self.handles.open(
                    ino,
                    self.mount(*m),
                    self.host(m2, &p2)?.as_deref(),
                    size,
                    PosixMeta::default(),
                    writable,
                    append,
                    None,
                )?,
                // Unlinked meanwhile: only a handle still open on it can serve.
                _ => self
                    .handles
                    .open_existing(ino, writable, append)
                    .ok_or_else(|| not_found(self.ctx(t)))?,
            }
        } else {
            self.handles.open(
                ino,
                self.mount(*m),
                None,
                size,
                posix,
                writable,
                append,
                new_file.then(|| self.cache_dir.path()),
            )?
        };
        self.inodes.open(ino);
        // (A local file's size may have changed since the stat above: always truncate it.)
        if trunc && (size > 0 || host.is_some()) {
            if let Err(e) = h.file.truncate(Some(p), self.cache_dir.path(), 0).await {
                self.release(ino, fh).await.ok();
                return Err(e);
            }
            self.touch(t);
        }
        let passthrough = host.is_some().then(|| h.file.clone());
        let read_only = !writable && !trunc;
        Ok(Opened {
            fh,
            read_only,
            // a file just created is uploaded by its close (FLUSH), even when opened read-only:
            // were it left to the asynchronous RELEASE, an unlink right after close could run
            // before the upload lands, and the file would come back
            no_flush: (read_only && !new_file) || host.is_some(),
            passthrough,
        })
    }

    /// The content of `t` changed here: what is cached of it is stale.
    pub(super) fn touch(&self, t: &Target) {
        self.cache.invalidate(t);
    }

    /// The path of an open inode (None once unlinked).
    pub(super) fn open_path(&self, ino: u64) -> Option<(usize, String)> {
        match self.inodes.target(ino) {
            Some(Target::Path(m, p)) => Some((m, p)),
            _ => None,
        }
    }

    /// Read from an open file.
    pub async fn read(&self, ino: u64, fh: u64, off: u64, size: u32) -> Result<Bytes> {
        let h = self.handles.file(fh)?;
        let (m, p) = self.open_path(ino).unzip();
        let before = h.file.size();
        let data = h
            .file
            .read(p.as_deref().unwrap_or_default(), &h, off, size)
            .await;
        if let (Some(m), Some(p)) = (m, p) {
            if h.file.size() != before || data.is_err() {
                // the object changed behind us (or is unreadable): ask the backend next time
                let parent = Target::Path(m, path::parent(&p).to_string());
                self.cache.invalidate(&Target::Path(m, p));
                self.listings.forget(&parent);
            }
            if let Ok(d) = &data {
                self.stats.add(m, |s| &s.bytes_read, d.len() as u64);
            }
        }
        data
    }

    /// Write to an open file.
    pub async fn write(&self, ino: u64, fh: u64, off: u64, data: &[u8]) -> Result<u32> {
        let h = self.handles.file(fh)?;
        let mp = self.open_path(ino);
        let p = mp.as_ref().map(|(_, p)| p.as_str()).unwrap_or_default();
        let n = h
            .file
            .write(p, self.cache_dir.path(), &h, off, data)
            .await?;
        h.pending.store(true, Ordering::Release);
        if let Some((m, p)) = mp {
            self.stats.add(m, |s| &s.bytes_written, u64::from(n));
            if self.mount(m).local_root().is_none() {
                self.touch(&Target::Path(m, p));
            }
        }
        Ok(n)
    }

    pub(super) async fn upload(&self, ino: u64, file: &OpenFile, sync: bool) -> Result<()> {
        let mp = self.open_path(ino);
        let uploaded = file
            .flush(mp.as_ref().map(|(_, p)| p.as_str()), sync)
            .await?;
        if let (true, Some((m, p))) = (uploaded, mp) {
            // The backend now holds what the daemon knows: no need to ask it again.
            self.listings.add(
                &Target::Path(m, path::parent(&p).to_string()),
                path::basename(&p),
            );
            let t = Target::Path(m, p);
            // (a streamed upload's object has the server's Last-Modified as its times, within
            // a second of the last write shown here until the TTL runs out)
            match file.staged_size() {
                Some(size) => self
                    .cache
                    .put(t.clone(), Some(self.staged_meta(file, size))),
                None => self.cache.invalidate(&t),
            }
        }
        Ok(())
    }

    /// close(2) of a descriptor: the backend holds every byte once this returns Ok.
    pub async fn flush(&self, ino: u64, fh: u64) -> Result<()> {
        self.flush_handle(ino, fh, false).await
    }

    /// fsync(2): as flush, and local data reaches the disk.
    pub async fn fsync(&self, ino: u64, fh: u64) -> Result<()> {
        self.flush_handle(ino, fh, true).await
    }

    /// Upload through handle `fh`; its writes stay pending (for its release) if that fails.
    async fn flush_handle(&self, ino: u64, fh: u64, sync: bool) -> Result<()> {
        let h = self.handles.file(fh)?;
        h.pending.store(false, Ordering::Release);
        self.upload(ino, &h.file, sync)
            .await
            .inspect_err(|_| h.pending.store(true, Ordering::Release))
    }

    /// The last close of a handle.
    pub async fn release(&self, ino: u64, fh: u64) -> Result<()> {
        let h = self.handles.file(fh)?;
        // A handle uploads only its own writes since its last flush (writes through mmap
        // arrive after close): it must not upload another handle's half-written state (a
        // file just truncated by an open with O_TRUNC would reach the backend empty).
        let r = if h.pending.load(Ordering::Acquire) {
            self.upload(ino, &h.file, false).await
        } else {
            Ok(())
        };
        self.handles.release(fh);
        self.inodes.close(ino);
        r
    }

    /// Upload every dirty open file (at unmount and on signals).
    pub async fn flush_all(&self) -> Result<usize> {
        let mut n = 0;
        let mut first_err = None;
        for (ino, f) in self.handles.all_open() {
            if f.is_dirty().await {
                match self.upload(ino, &f, true).await {
                    Ok(()) => n += 1,
                    Err(e) => {
                        tracing::error!(error = %e, "upload at shutdown failed");
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
}

//! Open files: open (handed to the mount's side), then read, write, flush, fsync and release
//! on the inode's [`OpenFile`], and uploads of staged data.

use super::*;

impl Fs {
    /// Open a file.
    pub async fn open(&self, ino: u64, flags: i32) -> Result<Opened> {
        let t = self.target(ino)?;
        let Target::Path(m, p) = &t else {
            return Err(Error::is_a_directory("/"));
        };
        match self.side(*m) {
            Side::Host(h) => h.open(ino, &t, flags).await,
            Side::Object(o) => o.open(ino, &t, p, flags, None).await,
        }
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
            if let (Side::Object(o), true) =
                (self.side(m), h.file.size() != before || data.is_err())
            {
                // the object changed behind us (or is unreadable): ask the backend next time
                o.read_changed(&p);
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
        if let Some((m, _)) = &mp {
            if let Side::Object(o) = self.side(*m) {
                let end = if h.append { h.file.size() } else { off } + data.len() as u64;
                o.may_hold(p, end, data.len() as u64)?;
            }
        }
        let n = h.file.write(p, &self.cache_dir, &h, off, data).await?;
        h.pending.store(true, Ordering::Release);
        if let Some((m, p)) = mp {
            self.stats.add(m, |s| &s.bytes_written, u64::from(n));
            if let Side::Object(o) = self.side(m) {
                o.wrote(&p);
            }
        }
        Ok(n)
    }

    /// fallocate(2). On a host file, the host does it (every mode it supports). On object
    /// backends, mode 0 (posix_fallocate) grows the file as a truncate would and
    /// FALLOC_FL_KEEP_SIZE alone has nothing to reserve; other modes (punching holes,
    /// collapsing or zeroing ranges) are EOPNOTSUPP.
    pub async fn fallocate(&self, ino: u64, fh: u64, off: u64, len: u64, mode: i32) -> Result<()> {
        let h = self.handles.file(fh)?;
        let ctx = || format!("inode {ino}");
        if let Some(native) = h.file.native_file() {
            use std::os::fd::AsRawFd;
            // SAFETY: a descriptor we hold; the other arguments are plain integers.
            let r = unsafe {
                libc::fallocate(
                    native.as_raw_fd(),
                    mode,
                    off as libc::off_t,
                    len as libc::off_t,
                )
            };
            if r != 0 {
                return Err(Error::from_io(ctx(), std::io::Error::last_os_error()));
            }
            h.file.native_resized();
            return Ok(());
        }
        let on_memory = self.mount(self.mount_of(ino).unwrap_or(0)).is_memory();
        match mode {
            // a memory mount reserves the range in the staged file's pages, from its budget
            // (ENOSPC past it), as a filesystem does; elsewhere a reservation means nothing
            0 | libc::FALLOC_FL_KEEP_SIZE if on_memory => self.punch(ino, &h, mode, off, len).await,
            libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            0 => {
                let end = off.saturating_add(len);
                if end <= h.file.size() {
                    return Ok(());
                }
                let set = SetAttr {
                    size: Some(end),
                    ..SetAttr::default()
                };
                self.setattr(ino, set).await.map(|_| ())
            }
            m if m & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0 => {
                self.punch(ino, &h, mode, off, len).await
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                ctx(),
                "collapse and insert ranges are not served on object backends",
            )),
        }
    }

    /// fallocate on an object file's staged copy, uploaded at close like any write.
    async fn punch(
        &self,
        ino: u64,
        h: &crate::fuse::handles::FileHandle,
        mode: i32,
        off: u64,
        len: u64,
    ) -> Result<()> {
        let mp = self.open_path(ino);
        if let Some((m, p)) = &mp {
            if let Side::Object(o) = self.side(*m) {
                o.may_hold(p, off.saturating_add(len), 0)?;
            }
        }
        let p = mp.as_ref().map(|(_, p)| p.as_str());
        h.file.punch(p, &self.cache_dir, mode, off, len).await?;
        h.pending.store(true, Ordering::Release);
        if let Some((m, p)) = &mp {
            if let Side::Object(o) = self.side(*m) {
                o.wrote(p);
            }
        }
        Ok(())
    }

    /// copy_file_range(2) between two host files, by the host (a reflink where the host
    /// filesystem can). Elsewhere EOPNOTSUPP: the kernel then copies through read and write.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_file_range(
        &self,
        fh_in: u64,
        off_in: u64,
        ino_out: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
    ) -> Result<u32> {
        let (a, b) = (self.handles.file(fh_in)?, self.handles.file(fh_out)?);
        let ctx = || format!("inode {ino_out}");
        let (Some(src), Some(dst)) = (a.file.native_file(), b.file.native_file()) else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                ctx(),
                "copy_file_range is served between local files only",
            ));
        };
        use std::os::fd::AsRawFd;
        let (mut oi, mut oo) = (off_in as libc::loff_t, off_out as libc::loff_t);
        let len = len.min(u64::from(u32::MAX) & !0xfff) as usize;
        // SAFETY: descriptors we hold, offsets we own.
        let n = unsafe {
            libc::copy_file_range(src.as_raw_fd(), &mut oi, dst.as_raw_fd(), &mut oo, len, 0)
        };
        if n < 0 {
            return Err(Error::from_io(ctx(), std::io::Error::last_os_error()));
        }
        b.file.native_resized();
        Ok(n as u32)
    }

    /// Upload what `file` holds that the backend does not, at the path it is at once no
    /// rename or unlink is changing it (nothing once unlinked). `verify`: the last close of
    /// a writable memory file, compared with the object first (see `OpenFile::verify_direct`).
    pub(super) async fn upload(&self, ino: u64, file: &OpenFile, sync: bool) -> Result<()> {
        self.upload_checked(ino, file, sync, false).await
    }

    async fn upload_checked(
        &self,
        ino: u64,
        file: &OpenFile,
        sync: bool,
        verify: bool,
    ) -> Result<()> {
        let (_held, mp) = self.settled_path(ino, file).await;
        if let (true, Some((_, p))) = (verify, &mp) {
            file.verify_direct(p).await;
        }
        self.upload_held(ino, file, mp, sync).await
    }

    /// [`Fs::upload`] of a file whose path lock the caller holds, at `mp`.
    pub(super) async fn upload_held(
        &self,
        ino: u64,
        file: &OpenFile,
        mp: Option<(usize, String)>,
        sync: bool,
    ) -> Result<()> {
        let uploaded = file
            .flush(mp.as_ref().map(|(_, p)| p.as_str()), sync)
            .await?;
        tracing::trace!(ino, path = ?mp, uploaded, size = ?file.staged_size(), "upload");
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

    /// The last close of a handle. True when the kernel's cached attributes of `ino` may be
    /// stale and must be dropped: a writable passthrough handle, whose writes through a
    /// shared mapping moved the host file's mtime and ctime without a request (write(2)
    /// through passthrough updates them in the kernel itself, mmap does not; and a host
    /// file's handle asks for no FLUSH, so its last unmap and close end here).
    pub async fn release(&self, ino: u64, fh: u64) -> Result<bool> {
        let h = self.handles.file(fh)?;
        let stale = h.writable && h.file.is_passthrough();
        // the kernel wrote a memory file itself, through write(2) or a shared mapping: what
        // changed is taken in now (see `OpenFile::absorb` and `OpenFile::verify_direct`)
        let verify = h.writable && h.file.is_direct();
        if verify {
            h.pending.store(true, Ordering::Release);
        }
        // A handle uploads only its own writes since its last flush (writes through mmap
        // arrive after close): it must not upload another handle's half-written state (a
        // file just truncated by an open with O_TRUNC would reach the backend empty).
        let r = if h.pending.load(Ordering::Acquire) {
            self.upload_checked(ino, &h.file, false, verify).await
        } else {
            Ok(())
        };
        let last = self.handles.release(fh).is_some_and(|(_, last)| last);
        tracing::trace!(ino, fh, last, path = ?self.open_path(ino), "release");
        if let (true, true, Some((m, p))) = (last, h.file.is_direct(), self.open_path(ino)) {
            // A memory file's last release: the attributes its uploads put (in order, under
            // the file's path lock, but a lookup may have put the store's between them) are
            // dropped, and the next lookup asks the store, which costs no request. (Every other handle's release, and
            // every flush, has ended by now; a new open file of the inode is asked first.)
            self.cache.invalidate(&Target::Path(m, p));
        }
        self.inodes.close(ino);
        r.map(|()| stale)
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

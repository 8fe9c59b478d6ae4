//! One open file: an [`OpenFile`] per inode shared by all its handles (the host file on local
//! mounts; on object backends remote reads with a growing read-ahead window, or a copy staged
//! on local disk that `flush`/`fsync` upload), and a [`FileHandle`] per open.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::staging::{CacheDir, Charge};

mod direct;
mod read;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::mount::{Mount, CHUNK};
use crate::storage::posix::PosixMeta;
use direct::Direct;
use read::ReadAhead;

#[derive(Debug)]
// (one per open file: the size of the staged variant does not matter)
#[allow(clippy::large_enum_variant)]
enum Body {
    /// Object backend, nothing staged: reads go to the backend.
    Remote,
    /// Local mount: the host file, opened once for all handles.
    Native(Arc<File>),
    /// Object backend: a private copy on local disk, uploaded when dirty. While a new file
    /// is written from its start in order, its bytes also stream to the backend as they
    /// come, so that close only finishes an upload already under way.
    Staged {
        file: Arc<File>,
        dirty: bool,
        stream: Stream,
        /// The backend's object, not fetched yet past what was overwritten in order from
        /// offset 0 (an overwrite from the start may never need it).
        base: Option<Base>,
        /// Memory mounts: the last upload handed the staged file's own pages to the store
        /// (a read-only mapping, no copy); the next change copies them first.
        shared: bool,
        /// What the staged copy takes, charged to the cache directory's budget (or to the
        /// memory mount's); cleared while the store holds it (`shared`).
        charge: Charge,
    },
}

/// An existing object under a staged copy, fetched only when needed.
#[derive(Debug, Clone, Copy)]
struct Base {
    /// Its size.
    old: u64,
    /// Bytes `0..prefix` were overwritten in order and need not be fetched.
    prefix: u64,
}

/// The streaming upload of a staged file.
enum Stream {
    /// Empty so far: the first write at offset 0 starts it.
    Unstarted,
    /// Every byte in `0..written` was handed to the writer, in order.
    Active {
        writer: opendal::Writer,
        written: u64,
        /// Where the upload goes (the file may be renamed or unlinked meanwhile).
        path: String,
        /// The attributes the upload was started with.
        meta: Box<PosixMeta>,
    },
    /// Not streaming: close uploads the staged copy.
    Off,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Unstarted => write!(f, "Unstarted"),
            Stream::Active { written, path, .. } => write!(f, "Active({path}, {written})"),
            Stream::Off => write!(f, "Off"),
        }
    }
}

impl Stream {
    /// Stop streaming; an upload under way is abandoned (nothing partial appears).
    fn stop(&mut self, mount: &Arc<Mount>) {
        if let Stream::Active { writer, path, .. } = std::mem::replace(self, Stream::Off) {
            let mount = mount.clone();
            tokio::spawn(async move {
                let _ = mount.abort_writer(&path, writer).await;
            });
        }
    }
}

/// The state of one open inode.
#[derive(Debug)]
pub struct OpenFile {
    mount: Arc<Mount>,
    /// Local mounts: the kernel's passthrough registration of the host file, shared by all
    /// handles of the inode and closed with its last one.
    backing: Mutex<Option<fuser::BackingId>>,
    native: Option<Arc<File>>,
    /// Memory mounts: the staged file the kernel reads and writes itself (passthrough).
    direct: Option<Direct>,
    /// Serialises staging, writes and uploads of this one file (an async lock; unrelated
    /// files never wait on each other).
    body: tokio::sync::Mutex<Body>,
    /// Held by an upload from resolving this file's path until the store holds its bytes,
    /// and by a rename or unlink of the path (see `fs::moving`).
    path_lock: Arc<tokio::sync::Mutex<()>>,
    /// Size as the kernel should see it while this file is open (kept outside the lock so
    /// that getattr never waits for an upload).
    size: AtomicU64,
    staged: std::sync::atomic::AtomicBool,
    pub(super) handles: AtomicUsize,
    /// Object backends: the POSIX attributes the next upload carries (the object's, changed
    /// by setattr while open). A write clears its times: the upload's Last-Modified is then
    /// the file's mtime and ctime.
    posix: Mutex<PosixMeta>,
    /// When this file was last written through the daemon (its mtime while staged).
    changed: Mutex<Option<std::time::SystemTime>>,
}

/// One open file handle.
#[derive(Debug)]
pub struct FileHandle {
    /// The inode.
    pub ino: u64,
    /// The shared state of the inode.
    pub file: Arc<OpenFile>,
    /// Opened for writing.
    pub writable: bool,
    /// Opened with O_APPEND: every write goes to the end.
    pub append: bool,
    /// Written through since its last flush (writes through mmap arrive after close): its
    /// release uploads them. Another handle's changes are that handle's to upload.
    pub pending: std::sync::atomic::AtomicBool,
    readahead: tokio::sync::Mutex<ReadAhead>,
}

fn io_err(ctx: &str, e: std::io::Error) -> Error {
    Error::from_io(ctx.to_string(), e)
}

impl FileHandle {
    pub(super) fn new(ino: u64, file: Arc<OpenFile>, writable: bool, append: bool) -> Self {
        FileHandle {
            ino,
            file,
            writable,
            append,
            pending: std::sync::atomic::AtomicBool::new(false),
            readahead: tokio::sync::Mutex::default(),
        }
    }
}

impl OpenFile {
    fn new(mount: Arc<Mount>, body: Body, size: u64, posix: PosixMeta) -> Self {
        OpenFile {
            posix: Mutex::new(posix),
            changed: Mutex::new(None),
            mount,
            backing: Mutex::new(None),
            native: match &body {
                Body::Native(f) => Some(f.clone()),
                _ => None,
            },
            direct: None,
            staged: std::sync::atomic::AtomicBool::new(matches!(body, Body::Staged { .. })),
            body: tokio::sync::Mutex::new(body),
            path_lock: Arc::default(),
            size: AtomicU64::new(size),
            handles: AtomicUsize::new(0),
        }
    }

    /// A host file of a local mount, of its current size.
    pub(super) fn native(mount: Arc<Mount>, file: File, size: u64) -> Self {
        OpenFile::new(
            mount,
            Body::Native(Arc::new(file)),
            size,
            PosixMeta::default(),
        )
    }

    /// A new file on an object backend, staged empty and dirty (its first upload happens at
    /// close).
    pub(super) fn new_staged(mount: Arc<Mount>, staged: (File, Charge), posix: PosixMeta) -> Self {
        let file = Arc::new(staged.0);
        let direct = mount.memory_direct().then(|| Direct::new(file.clone()));
        let body = Body::Staged {
            file,
            dirty: true,
            stream: Stream::Unstarted,
            base: None,
            shared: false,
            charge: staged.1,
        };
        let mut f = OpenFile::new(mount, body, 0, posix);
        f.direct = direct;
        f.touched();
        f
    }

    /// An existing file of a memory mount, as the store's [`Mount::memory_open_file`] made
    /// it (`shared`: the store holds this very file), read and written by the kernel itself
    /// (passthrough).
    pub(super) fn memory(
        mount: Arc<Mount>,
        (file, shared): (Arc<File>, bool),
        posix: PosixMeta,
    ) -> Self {
        let counter = mount.memory_staging().unwrap_or_default();
        let mut charge = Charge::new(counter);
        if shared {
            // the store counts these pages already: only their growth is charged here
            charge.baseline(&file);
        } else {
            charge.settle(&file);
        }
        let size = file.metadata().map_or(0, |m| m.len());
        let direct = Direct::new(file.clone());
        let body = Body::Staged {
            file,
            dirty: false,
            stream: Stream::Off,
            base: None,
            shared,
            charge,
        };
        let mut f = OpenFile::new(mount, body, size, posix);
        f.direct = Some(direct);
        f
    }

    /// A file read from its backend until written (also: a truncate without an open handle,
    /// not registered in the handle table).
    pub fn detached(mount: Arc<Mount>, size: u64, posix: PosixMeta) -> Self {
        OpenFile::new(mount, Body::Remote, size, posix)
    }

    /// Keep this file's path from changing under an upload, or uploads from storing at a
    /// path being changed (see `fs::moving`).
    pub async fn hold_path(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.path_lock.clone().lock_owned().await
    }

    /// The attributes the next upload carries.
    pub fn posix(&self) -> PosixMeta {
        self.posix.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Change the attributes the next upload carries.
    pub fn set_posix(&self, f: impl FnOnce(&mut PosixMeta)) {
        f(&mut self.posix.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// When the file was last changed through the daemon (None: not since it was opened).
    pub fn changed(&self) -> Option<std::time::SystemTime> {
        self.absorb();
        *self.changed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The content changed now: the upload's Last-Modified will be its mtime and ctime.
    fn touched(&self) {
        *self.changed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::SystemTime::now());
        self.set_posix(|p| {
            p.mtime = None;
            p.ctime = None;
        });
    }

    /// The size to report while staged (None: ask the backend).
    pub fn staged_size(&self) -> Option<u64> {
        self.absorb();
        if self.staged.load(Ordering::Acquire) {
            Some(self.size.load(Ordering::Acquire))
        } else {
            None
        }
    }

    /// The host file of a local mount, for kernel passthrough. (Kept outside the body lock:
    /// an open that found the lock busy and answered without passthrough while another handle
    /// of the inode uses it would get EIO from the kernel.)
    pub fn native_file(&self) -> Option<Arc<File>> {
        self.native.clone()
    }

    /// The kernel's passthrough registration of the host file (local mounts): made by
    /// `register` on the first call, shared by every handle of the inode, closed with the
    /// last one. None for staged files and where the kernel refuses it (then the daemon
    /// serves the I/O).
    pub fn passthrough(
        &self,
        register: impl FnOnce(&File) -> std::io::Result<fuser::BackingId>,
    ) -> Option<std::sync::MutexGuard<'_, Option<fuser::BackingId>>> {
        let native = self
            .native
            .as_ref()
            .or(self.direct.as_ref().map(Direct::file))?;
        let mut slot = self.backing.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            match register(native) {
                Ok(id) => *slot = Some(id),
                Err(e) => {
                    tracing::debug!(error = %e, "no passthrough");
                    return None;
                }
            }
        }
        Some(slot)
    }

    /// Is the kernel's I/O on this file going straight to the host file? (Then writes
    /// through a shared mapping change the host's mtime without the daemon seeing them.)
    pub fn is_passthrough(&self) -> bool {
        self.backing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The size as this file's handles see it.
    pub fn size(&self) -> u64 {
        self.absorb();
        self.size.load(Ordering::Acquire)
    }

    /// A host file's size changed outside `write` and `truncate` (fallocate, a copy into it).
    pub fn native_resized(&self) {
        if let Some(f) = &self.native {
            if let Ok(m) = f.metadata() {
                self.size.store(m.len(), Ordering::Release);
            }
        }
    }

    /// Number of open handles.
    pub fn handle_count(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }

    /// Make the body writable: the host file as it is, or a staged copy. An existing object
    /// is not fetched yet (`base`): see [`OpenFile::fill_base`].
    async fn writable_body<'a>(
        &self,
        body: &'a mut Body,
        cache: &CacheDir,
        path: Option<&str>,
        keep: bool,
        shrinks: bool,
    ) -> Result<&'a File> {
        if let (Body::Remote, Some(path), true) = (&*body, path, keep) {
            // A memory file kept in a memory file of its own: adopt it as the staged copy
            // (as after an upload) rather than fetch it, which would read every hole.
            let size = self.size.load(Ordering::Acquire);
            if let Some((file, _)) = self.mount.memory_file(path).filter(|(_, l)| *l == size) {
                let counter = self.mount.memory_staging().unwrap_or_default();
                *body = Body::Staged {
                    file,
                    dirty: false,
                    stream: Stream::Off,
                    base: None,
                    shared: true,
                    charge: Charge::new(counter),
                };
                self.staged.store(true, Ordering::Release);
            }
        }
        if let Body::Remote = body {
            let (file, charge) = staging_file(&self.mount, cache)?;
            let size = self.size.load(Ordering::Acquire);
            let base = (keep && size > 0).then_some(Base {
                old: size,
                prefix: 0,
            });
            if base.is_none() {
                self.size.store(0, Ordering::Release);
            }
            *body = Body::Staged {
                file: Arc::new(file),
                dirty: true,
                stream: Stream::Unstarted,
                base,
                shared: false,
                charge,
            };
            self.staged.store(true, Ordering::Release);
        }
        match body {
            Body::Native(f) => Ok(f),
            Body::Staged {
                file,
                dirty,
                shared,
                charge,
                ..
            } => {
                if *shared && (self.direct.is_some() || !shrinks && Arc::strong_count(file) <= 2) {
                    // (a file the kernel writes itself is never replaced: it is the one the
                    // kernel holds; the store copies it when it copies the object, and reads
                    // zeros past an end cut short here until the next upload)
                    // the store holds this file under this one name only (ours and its
                    // reference): go on writing it in place, as a file is; the store shows
                    // the writes as they land, within the length it holds, and takes the
                    // new length at the next upload. Only the growth is charged here.
                    charge.baseline(file);
                    *shared = false;
                } else if *shared {
                    // the store holds this file elsewhere too (a copy, a reader), or the
                    // change cuts it short: change a copy of it (its data only: holes stay
                    // holes)
                    let (copy, mut c) = staging_file(&self.mount, cache)?;
                    let held = file.metadata().map_err(|e| io_err("staged copy", e))?;
                    c.may_add(
                        &self.mount,
                        "staged copy",
                        std::os::unix::fs::MetadataExt::blocks(&held) * 512,
                    )?;
                    crate::storage::memory::copy_sparse(file, &copy)
                        .map_err(|e| io_err("staged copy", e))?;
                    c.settle(&copy);
                    *file = Arc::new(copy);
                    *charge = c;
                    *shared = false;
                }
                *dirty = true;
                Ok(file)
            }
            Body::Remote => unreachable!("staged above"),
        }
    }

    /// Fetch the object's bytes that the staged copy still lacks: everything past what was
    /// written in order from offset 0. After this the staged copy is the whole file.
    async fn fill_base(&self, body: &mut Body, path: &str) -> Result<()> {
        match body {
            Body::Staged {
                file, base, charge, ..
            } => self.fetch_base(file, base, charge, path).await,
            _ => Ok(()),
        }
    }

    /// [`OpenFile::fill_base`] on the parts of a staged body. `base` is cleared only once
    /// every byte arrived: after a failure the next flush fetches again, and never uploads
    /// the staged prefix alone in place of the whole object.
    async fn fetch_base(
        &self,
        file: &File,
        base: &mut Option<Base>,
        charge: &mut Charge,
        path: &str,
    ) -> Result<()> {
        let Some(Base { old, prefix }) = *base else {
            return Ok(());
        };
        let ctx = self.mount.ctx(path);
        if prefix < old {
            // The staged copy is sized first and only the chunks that hold data are written:
            // a hole of the object stays a hole here (in memory or on disk).
            let len = file.metadata().map_err(|e| io_err(&ctx, e))?.len();
            if len < old {
                file.set_len(old).map_err(|e| io_err(&ctx, e))?;
            }
            let reader = self.mount.reader(path).await?;
            let (mut off, mut old) = (prefix, old);
            while off < old {
                let end = (off + CHUNK as u64).min(old);
                let buf = match reader.read(off..end).await {
                    Ok(b) => b.to_bytes(),
                    // the object shrank meanwhile (another client): take what it holds now
                    Err(e) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => {
                        old = self.mount.stat(path).await?.map_or(0, |e| e.size);
                        continue;
                    }
                    Err(e) => return Err(Error::from_opendal(ctx.clone(), e)),
                };
                if buf.is_empty() {
                    break;
                }
                if buf.iter().any(|b| *b != 0) {
                    // (a chunk at a time: the object's holes take nothing here either)
                    charge.may_add(&self.mount, &ctx, buf.len() as u64)?;
                    file.write_all_at(&buf, off).map_err(|e| io_err(&ctx, e))?;
                    charge.settle(file);
                }
                off += buf.len() as u64;
            }
        }
        *base = None;
        Ok(())
    }

    /// Does a write at `off` continue the in-order overwrite (so the base can stay unfetched)?
    fn continues(body: &Body, off: u64) -> bool {
        match body {
            Body::Staged { base: Some(b), .. } => off == b.prefix,
            _ => true,
        }
    }

    /// Write `data` at `off` (at the end for O_APPEND handles).
    pub async fn write(
        &self,
        path: &str,
        cache: &CacheDir,
        fh: &FileHandle,
        off: u64,
        data: &[u8],
    ) -> Result<u32> {
        let err = |e| io_err(&self.mount.ctx(path), e);
        let mut body = self.body.lock().await;
        self.writable_body(&mut body, cache, Some(path), true, false)
            .await?;
        if fh.append || !Self::continues(&body, off) {
            self.fill_base(&mut body, path).await?;
        }
        let f = match &*body {
            Body::Native(f) => f.clone(),
            Body::Staged { file, charge, .. } => {
                charge.may_add(&self.mount, &self.mount.ctx(path), data.len() as u64)?;
                file.clone()
            }
            Body::Remote => unreachable!("writable above"),
        };
        let off = if fh.append {
            f.metadata().map_err(err)?.len()
        } else {
            off
        };
        f.write_all_at(data, off).map_err(err)?;
        if self.native.is_none() {
            self.touched();
        }
        let end = off + data.len() as u64;
        self.size.fetch_max(end, Ordering::AcqRel);
        self.restamp();
        if let Body::Staged {
            stream,
            base,
            charge,
            file,
            ..
        } = &mut *body
        {
            charge.settle(file);
            if let Some(b) = base {
                b.prefix = end;
            }
            self.feed(stream, path, off, data).await;
        }
        Ok(data.len() as u32)
    }

    /// Hand a write to the streaming upload when it continues it in order; anything else
    /// ends the streaming (the staged copy is then uploaded at close). A streaming failure
    /// is not the application's: the staged copy still holds the bytes.
    async fn feed(&self, stream: &mut Stream, path: &str, off: u64, data: &[u8]) {
        if matches!(stream, Stream::Unstarted)
            && (self.mount.is_memory() || !self.mount.can_stream())
        {
            // nothing to overlap on a memory mount: close hands the staged pages over; and a
            // backend whose uploads are one request (WebDAV) gets the file whole at close
            *stream = Stream::Off;
        }
        if matches!(stream, Stream::Unstarted) {
            let meta = self.posix();
            *stream = match (off, self.mount.writer_for(path, 0, &meta).await) {
                (0, Ok(writer)) => Stream::Active {
                    writer,
                    written: 0,
                    path: path.to_string(),
                    meta: Box::new(meta),
                },
                _ => Stream::Off,
            };
        }
        let ok = match stream {
            Stream::Active {
                writer, written, ..
            } if *written == off => match writer.write(Bytes::copy_from_slice(data)).await {
                Ok(()) => {
                    *written += data.len() as u64;
                    true
                }
                Err(e) => {
                    tracing::warn!(path = %self.mount.ctx(path), error = %e, "streaming upload failed; the staged copy is uploaded at close");
                    false
                }
            },
            Stream::Active { .. } => false,
            _ => true,
        };
        if !ok {
            stream.stop(&self.mount);
        }
    }

    /// Set the size (grow with zeros or shrink). `path` is None for an unlinked file: then
    /// only what is staged can be kept (the object it came from is gone).
    pub async fn truncate(&self, path: Option<&str>, cache: &CacheDir, size: u64) -> Result<()> {
        let ctx = self.mount.ctx(path.unwrap_or("(unlinked)"));
        let mut body = self.body.lock().await;
        let shrinks = size < self.size();
        self.writable_body(&mut body, cache, path, size > 0, shrinks)
            .await?;
        match path {
            Some(path) => self.fill_base(&mut body, path).await?,
            None if matches!(&*body, Body::Staged { base: Some(_), .. }) => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    ctx,
                    "the unlinked file's old contents are gone",
                ))
            }
            None => {}
        }
        let (Body::Native(f) | Body::Staged { file: f, .. }) = &*body else {
            unreachable!("writable above")
        };
        f.set_len(size).map_err(|e| io_err(&ctx, e))?;
        self.size.store(size, Ordering::Release);
        self.restamp();
        if self.native.is_none() {
            self.touched();
        }
        if let Body::Staged {
            stream,
            charge,
            file,
            ..
        } = &mut *body
        {
            charge.settle(file);
            stream.stop(&self.mount);
        }
        Ok(())
    }

    /// fallocate(2) with PUNCH_HOLE or ZERO_RANGE (and KEEP_SIZE) on the staged copy: the
    /// object is fetched first (what the range leaves stays), then the range becomes a hole
    /// or zeros there, and the file is dirty. `path` is None for an unlinked file.
    pub async fn punch(
        &self,
        path: Option<&str>,
        cache: &CacheDir,
        mode: i32,
        off: u64,
        len: u64,
    ) -> Result<()> {
        use std::os::fd::AsRawFd;
        let ctx = self.mount.ctx(path.unwrap_or("(unlinked)"));
        let mut body = self.body.lock().await;
        self.writable_body(&mut body, cache, path, true, false)
            .await?;
        if let Some(path) = path {
            self.fill_base(&mut body, path).await?;
        }
        let Body::Staged {
            file,
            charge,
            stream,
            ..
        } = &mut *body
        else {
            unreachable!("staged above (object backends only)")
        };
        // PUNCH_HOLE and ZERO_RANGE both become a punched hole (which reads as zeros and
        // takes nothing; tmpfs, where memory mounts stage, has no ZERO_RANGE), and
        // ZERO_RANGE without KEEP_SIZE then extends the file over it. A plain reservation
        // (mode 0 or KEEP_SIZE) allocates the range in the staged copy, from its budget.
        let reserve = mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) == 0;
        let how = if reserve {
            charge.may_add(&self.mount, &ctx, len)?;
            mode
        } else {
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
        };
        // SAFETY: a descriptor we hold; the other arguments are plain integers.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), how, off as i64, len as i64) };
        if r != 0 {
            return Err(io_err(&ctx, std::io::Error::last_os_error()));
        }
        let end = off.saturating_add(len);
        if mode & libc::FALLOC_FL_KEEP_SIZE == 0 && end > self.size() {
            file.set_len(end).map_err(|e| io_err(&ctx, e))?;
            self.size.fetch_max(end, Ordering::AcqRel);
        }
        charge.settle(file);
        stream.stop(&self.mount);
        self.touched();
        self.restamp();
        Ok(())
    }

    /// Make the backend hold every byte written so far. `path` is None when the file was
    /// unlinked: then nothing is uploaded (an unlinked file must not come back).
    pub async fn flush(&self, path: Option<&str>, sync: bool) -> Result<bool> {
        let mut body = self.body.lock().await;
        match &mut *body {
            Body::Remote => Ok(false),
            Body::Native(f) => {
                if sync {
                    f.sync_all()
                        .map_err(|e| io_err(&self.mount.ctx(path.unwrap_or("")), e))?;
                }
                Ok(false)
            }
            Body::Staged {
                file,
                dirty,
                stream,
                base,
                shared,
                charge,
            } => {
                let Some(path) = path else {
                    stream.stop(&self.mount);
                    *dirty = false;
                    return Ok(false);
                };
                if self.direct_dirty() {
                    *dirty = true;
                }
                if !*dirty {
                    return Ok(false);
                }
                // an in-order overwrite that stopped short of the old end: fetch the rest
                self.fetch_base(file, base, charge, path).await?;
                let size = file
                    .metadata()
                    .map_err(|e| io_err(&self.mount.ctx(path), e))?
                    .len();
                let mut posix = self.posix();
                match std::mem::replace(stream, Stream::Off) {
                    Stream::Active {
                        writer,
                        written,
                        path: to,
                        meta,
                    } if written == size && to == path => {
                        // the upload was under way: finish it
                        self.mount.close_writer(path, writer, written).await?;
                        if *meta != posix {
                            // attributes set while it streamed
                            self.mount.set_meta(path, false, size, &posix).await?;
                        }
                    }
                    mut other => {
                        other.stop(&self.mount);
                        // the object carries the time of the last write as its mtime and
                        // ctime (a streamed upload leaves them to its Last-Modified)
                        if let Some(t) = self.changed() {
                            posix.mtime.get_or_insert(t);
                            posix.ctime.get_or_insert(t);
                            self.set_posix(|p| *p = posix.clone());
                        }
                        if self.mount.is_memory() && size >= MAP_MIN {
                            // the store keeps the staged memory file: no copy, and holes
                            // stay holes; it counts against the budget there instead
                            charge.clear();
                            self.mount
                                .put_memory_file(path, file.clone(), size, &posix)
                                .inspect_err(|_| charge.settle(file))?;
                            *shared = true;
                        } else if self.mount.is_memory() {
                            // small: one copy costs less than a mapping and its unmapping
                            // (the budget check leaves out the staged copy it replaces)
                            let mut buf = vec![0u8; size as usize];
                            file.read_exact_at(&mut buf, 0)
                                .map_err(|e| io_err(&self.mount.ctx(path), e))?;
                            charge.clear();
                            let put = self
                                .mount
                                .write_with_meta(path, Bytes::from(buf), &posix)
                                .await;
                            charge.settle(file);
                            put?;
                        } else {
                            upload(&self.mount, path, file, size, &posix).await?;
                        }
                    }
                }
                *dirty = false;
                Ok(true)
            }
        }
    }

    /// Make the file dirty as it is, so that its next flush uploads it again (its times are
    /// then the upload's).
    pub async fn touch(&self, path: &str, cache: &CacheDir) -> Result<()> {
        let mut body = self.body.lock().await;
        self.writable_body(&mut body, cache, Some(path), true, false)
            .await?;
        if let Body::Staged { stream, .. } = &mut *body {
            stream.stop(&self.mount);
        }
        self.touched();
        Ok(())
    }

    /// Is there data the backend does not hold yet?
    pub async fn is_dirty(&self) -> bool {
        self.absorb();
        self.direct.as_ref().is_some_and(Direct::is_dirty)
            || matches!(&*self.body.lock().await, Body::Staged { dirty: true, .. })
    }
}

/// A private, unlinked file to stage a file being written, with the charge it holds: in
/// RAM (memfd) for memory mounts, whose data lives in RAM anyway, charged to the mount's
/// budget; otherwise in the cache directory, charged to its budget.
pub(super) fn staging_file(mount: &Mount, cache: &CacheDir) -> Result<(File, Charge)> {
    if let (Some(counter), Some(made)) = (mount.memory_staging(), mount.memory_new_file()) {
        let file = made.map_err(|e| io_err("memory file", e))?;
        return Ok((file, Charge::new(counter)));
    }
    let file = tempfile::tempfile_in(cache.path())
        .map_err(|e| Error::from_io(format!("cache dir {}", cache.path().display()), e))?;
    Ok((file, cache.charge()))
}

/// Memory mounts: staged files at least this large are handed to the store as a mapping;
/// smaller ones are copied (a mapping costs a page fault per page and, at unmap, a TLB
/// shootdown across the daemon's threads).
pub(crate) const MAP_MIN: u64 = 1 << 20;

async fn upload(mount: &Mount, path: &str, file: &File, size: u64, meta: &PosixMeta) -> Result<()> {
    let ctx = mount.ctx(path);
    if size == 0 {
        return mount.write_with_meta(path, Bytes::new(), meta).await;
    }
    if !mount.can_stream() {
        // one request with the whole file, its body the staged file's pages (mapped, not
        // copied into the daemon's memory)
        let body = crate::storage::mapped::Mapped::of(file, size).map_err(|e| io_err(&ctx, e))?;
        return mount
            .write_with_meta(path, Bytes::from_owner(body), meta)
            .await;
    }
    let mut w = mount.writer_for(path, size, meta).await?;
    let mut off = 0u64;
    while off < size {
        let n = (CHUNK as u64).min(size - off) as usize;
        let mut buf = vec![0u8; n];
        if let Err(e) = file.read_exact_at(&mut buf, off) {
            let _ = mount.abort_writer(path, w).await;
            return Err(io_err(&ctx, e));
        }
        if let Err(e) = w.write(buf).await {
            let _ = mount.abort_writer(path, w).await;
            return Err(Error::from_opendal(ctx, e));
        }
        off += n as u64;
    }
    mount.close_writer(path, w, size).await
}

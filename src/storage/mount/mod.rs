//! One mount: its `opendal::Operator` (built here, the backend factory) and the primitive
//! operations on normalised paths, with every opendal trap handled once. On object backends
//! each object carries its POSIX attributes (`posix.rs`), read with it and written with it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use opendal::{Capability, EntryMode, Metadata, Operator};

use crate::config::{Backend, MountConfig, Permissions, Service};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::memory::MemStore;
use crate::storage::objraw::ObjRaw;
use crate::storage::path;
use crate::storage::posix::PosixMeta;
use crate::storage::s3raw::S3Raw;

mod build;
pub mod counting;
mod extras;
mod first;
mod meta;
mod stat;

pub use extras::{Capabilities, Version};
pub use first::{Found, Was};

/// Size of the chunks used to stream and to upload (S3 multipart part size).
pub const CHUNK: usize = 8 << 20;
/// Part size of a large ranged read: such a range is fetched as parallel ranged GETs.
pub const RANGE_PART: usize = 4 << 20;
/// Parts uploaded or fetched in parallel.
pub const CONCURRENT: usize = 4;
/// Entries of one S3 listing asked for their metadata at once.
const LIST_STATS: usize = 32;

/// The multipart part size for a file of `size` bytes: [`CHUNK`], or more in whole MiB so
/// that the file fits in 9,000 parts.
pub fn part_size(size: u64) -> usize {
    let min = size.div_ceil(9_000).div_ceil(1 << 20) << 20;
    (min as usize).max(CHUNK)
}

/// What an entry is. On object backends the type comes from the object's `mode` metadata
/// (s3fs's convention); an object without one is a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (an object).
    File,
    /// A directory (a prefix on object stores).
    Dir,
    /// A symbolic link (on object backends an object whose body is the target).
    Symlink,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl EntryKind {
    /// The kind of a `st_mode`'s type bits (a regular file for none).
    pub fn from_mode(mode: u32) -> EntryKind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Symlink,
            libc::S_IFIFO => EntryKind::Fifo,
            libc::S_IFSOCK => EntryKind::Socket,
            libc::S_IFCHR => EntryKind::CharDevice,
            libc::S_IFBLK => EntryKind::BlockDevice,
            _ => EntryKind::File,
        }
    }

    /// The `st_mode` type bits.
    pub fn type_bits(self) -> u32 {
        match self {
            EntryKind::File => libc::S_IFREG,
            EntryKind::Dir => libc::S_IFDIR,
            EntryKind::Symlink => libc::S_IFLNK,
            EntryKind::Fifo => libc::S_IFIFO,
            EntryKind::Socket => libc::S_IFSOCK,
            EntryKind::CharDevice => libc::S_IFCHR,
            EntryKind::BlockDevice => libc::S_IFBLK,
        }
    }
}

/// What a stat or a listing knows of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification (the mount's start time where the backend keeps none).
    pub mtime: SystemTime,
    /// ETag or content hash, where the backend has one.
    pub etag: Option<String>,
    /// The POSIX attributes the object carries (object backends; empty elsewhere).
    pub posix: PosixMeta,
}

impl Entry {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

/// A configured mount: name, permissions and the operator that reaches its backend.
#[derive(Debug)]
pub struct Mount {
    config: MountConfig,
    op: Operator,
    caps: Capability,
    started: SystemTime,
    /// Memory mounts: the store behind the operator (metadata changes in place).
    mem: Option<Arc<MemStore>>,
    /// S3 mounts: the requests opendal cannot make.
    raw: Option<S3Raw>,
    /// Azure Blob and GCS mounts: the metadata requests opendal cannot make.
    obj_raw: Option<ObjRaw>,
    /// POSIX attributes go with uploads as user metadata.
    user_meta: bool,
    /// A relative mount: (the mount that owns the backend, the directory shown).
    relative: Option<(String, String)>,
    /// Backend requests by kind.
    counters: Arc<counting::BackendCounters>,
    /// S3: whole-object reads and writes in flight at once (`max_in_flight`). Taken only
    /// around one self-contained request, never while another is awaited: no deadlock.
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
}

impl Mount {
    /// The backend requests this mount made so far, by kind ([`counting::KINDS`]), and the
    /// bytes they moved.
    pub fn backend_requests(&self) -> &counting::BackendCounters {
        &self.counters
    }

    /// The mount's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }
    /// The mount's config.
    pub fn config(&self) -> &MountConfig {
        &self.config
    }
    /// The mount's permissions.
    pub fn permissions(&self) -> Permissions {
        match &self.config.backend {
            // a service that takes no writes (HTTP) is read-only whatever the config says
            Backend::Service(s) if !s.service.writable() => Permissions::ReadOnly,
            _ => self.config.permissions,
        }
    }
    /// The operator (for callers that need an opendal feature not wrapped here).
    pub fn operator(&self) -> &Operator {
        &self.op
    }
    /// What the backend can do.
    pub fn capability(&self) -> &Capability {
        &self.caps
    }
    /// The root directory of a local mount.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.config.backend {
            Backend::Local { root, .. } => Some(root),
            _ => None,
        }
    }
    /// True for S3 mounts.
    pub fn is_s3(&self) -> bool {
        matches!(self.config.backend, Backend::S3 { .. })
    }
    /// Are directories prefixes of keys (S3, Azure Blob, GCS)? Then a name can be a file and
    /// a prefix at once, a directory exists while something is below it or its marker `d/`
    /// does, and a stat asks both (HEAD and LIST). Elsewhere the server has real directories.
    pub fn prefix_dirs(&self) -> bool {
        match &self.config.backend {
            Backend::S3 { .. } => true,
            Backend::Service(s) => matches!(s.service, Service::Azblob | Service::Gcs),
            _ => false,
        }
    }
    /// Is this a read-only HTTP mount (no listing; directories known by their `d/` URL)?
    fn is_http(&self) -> bool {
        matches!(&self.config.backend, Backend::Service(s) if s.service == Service::Http)
    }
    fn is_azure(&self) -> bool {
        matches!(&self.config.backend, Backend::Service(s) if s.service == Service::Azblob)
    }
    fn is_webdav(&self) -> bool {
        matches!(&self.config.backend, Backend::Service(s) if s.service == Service::Webdav)
    }
    /// Does every operation wait on the network (everything but local and memory)?
    pub fn is_remote(&self) -> bool {
        !matches!(
            self.config.backend,
            Backend::Local { .. } | Backend::Memory { .. }
        )
    }
    /// True for memory mounts.
    pub fn is_memory(&self) -> bool {
        matches!(self.config.backend, Backend::Memory { .. })
    }
    /// When the mount was configured (the mtime of entries whose backend keeps none).
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// `"mount:path"`, the context of errors.
    pub fn ctx(&self, path: &str) -> String {
        format!("{}:{}", self.config.name, path)
    }

    fn err(&self, path: &str, e: opendal::Error) -> Error {
        Error::from_opendal(self.ctx(path), e)
    }

    /// Refuse a change on a read-only mount.
    pub fn check_write(&self, path: &str) -> Result<()> {
        if let Backend::Service(s) = &self.config.backend {
            if !s.service.writable() {
                return Err(Error::new(
                    ErrorKind::ReadOnly,
                    self.ctx(path),
                    format!("a {} mount is read-only", s.service.name()),
                ));
            }
        }
        if self.config.permissions.can_write() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                self.ctx(path),
                "the mount is read-only",
            ))
        }
    }

    /// Refuse a delete unless the mount has `delete` permission.
    pub fn check_delete(&self, path: &str) -> Result<()> {
        self.check_write(path)?;
        if self.config.permissions.can_delete() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                self.ctx(path),
                format!(
                    "the mount's permissions ({}) forbid deleting",
                    self.config.permissions.as_str()
                ),
            ))
        }
    }

    /// On a local mount, refuse a path that reaches outside the root through a symlink
    /// (dangling links included: writing through one would create its target).
    pub fn check_inside(&self, path: &str) -> Result<()> {
        let Some(root) = self.local_root() else {
            return Ok(());
        };
        let mut cur = root.to_path_buf();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur.push(comp);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => match cur.canonicalize() {
                    Ok(real) if real.starts_with(root) => {}
                    _ => {
                        return Err(Error::new(
                            ErrorKind::PermissionDenied,
                            self.ctx(path),
                            "a symlink leads outside the mount root",
                        ))
                    }
                },
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    fn entry_of(&self, meta: &Metadata) -> Entry {
        let posix = meta
            .user_metadata()
            .map(PosixMeta::from_user_metadata)
            .unwrap_or_default();
        self.entry_with(meta, posix)
    }

    /// The entry of an object with these metadata and POSIX attributes.
    fn entry_with(&self, meta: &Metadata, posix: PosixMeta) -> Entry {
        let kind = if meta.mode() == EntryMode::DIR {
            EntryKind::Dir
        } else {
            // a file object whose mode says directory is read as a file (s3fs does the same
            // for a key without a trailing slash)
            match posix.file_type().map(EntryKind::from_mode) {
                Some(EntryKind::Dir) | None => EntryKind::File,
                Some(k) => k,
            }
        };
        Entry {
            kind,
            size: if kind == EntryKind::Dir {
                0
            } else {
                meta.content_length()
            },
            mtime: posix.mtime.unwrap_or_else(|| {
                meta.last_modified()
                    .map(SystemTime::from)
                    .unwrap_or(self.started)
            }),
            etag: meta.etag().map(|s| s.trim_matches('"').to_string()),
            posix,
        }
    }

    fn dir_entry(&self) -> Entry {
        Entry {
            kind: EntryKind::Dir,
            size: 0,
            mtime: self.started,
            etag: None,
            posix: PosixMeta::default(),
        }
    }

    /// Finish a writer that received `written` bytes. A retried CompleteMultipartUpload can be
    /// refused (NoSuchUpload, or AccessDenied on some servers) after the first attempt did
    /// complete: then the object is checked, and accepted when it holds `written` bytes.
    pub async fn close_writer(
        &self,
        path: &str,
        mut w: opendal::Writer,
        written: u64,
    ) -> Result<()> {
        match w.close().await {
            Ok(_) => Ok(()),
            Err(e)
                if self.is_s3()
                    && matches!(
                        e.kind(),
                        opendal::ErrorKind::NotFound | opendal::ErrorKind::PermissionDenied
                    ) =>
            {
                // The first attempt may still be assembling the object: give it a moment.
                for attempt in 0..10u32 {
                    if let Ok(m) = self.op.stat(path).await {
                        if m.content_length() == written && m.is_file() {
                            tracing::warn!(path = %self.ctx(path), "upload completed on a retry");
                            return Ok(());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
                }
                Err(self.err(path, e))
            }
            Err(e) => Err(self.err(path, e)),
        }
    }

    /// Abandon a writer so that no partial file stays behind. opendal's fs service cannot
    /// abort (local writes go straight to the file), so there the partial file is removed.
    pub async fn abort_writer(&self, path: &str, mut w: opendal::Writer) -> Result<()> {
        match w.abort().await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::Unsupported && !path.is_empty() => {
                let _ = w.close().await;
                self.op.delete(path).await.map_err(|e| self.err(path, e))
            }
            Err(e) => Err(self.err(path, e)),
        }
    }

    /// Does the directory hold anything (a child, or its own marker)? One LIST on S3.
    pub async fn dir_has_entries(&self, path: &str) -> Result<bool> {
        if self.prefix_dirs() {
            self.prefix_exists(path).await
        } else {
            Ok(self.stat(path).await?.is_some())
        }
    }

    /// How many directories `path` holds directly, where the backend knows it in O(1)
    /// (memory: those with a marker); None elsewhere (S3 would need a listing).
    pub fn subdirs(&self, path: &str) -> Option<u64> {
        self.mem.as_ref().map(|store| store.subdirs(path))
    }

    /// Does the directory hold no entry (its own marker aside)? O(log n) on memory, one
    /// LIST of at most two keys on S3.
    pub async fn dir_is_empty(&self, path: &str) -> Result<bool> {
        if let Some(store) = &self.mem {
            return Ok(!store.has_children(path));
        }
        if let Some(root) = self.local_root() {
            let mut rd = std::fs::read_dir(root.join(path))
                .map_err(|e| Error::from_io(self.ctx(path), e))?;
            return Ok(rd.next().is_none());
        }
        let dir = format!("{path}/");
        let mut l = self
            .op
            .lister_with(&dir)
            .limit(2)
            .await
            .map_err(|e| self.err(path, e))?;
        loop {
            match l.try_next().await {
                Ok(Some(e)) if e.path().trim_start_matches('/') == dir => continue,
                Ok(Some(_)) => return Ok(false),
                Ok(None) => return Ok(true),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(true),
                Err(e) => return Err(self.err(path, e)),
            }
        }
    }

    /// Read bytes `start..end` (clamped to `size` when given).
    pub async fn read_range(&self, path: &str, start: u64, end: u64) -> Result<Bytes> {
        self.check_inside(path)?;
        if end <= start {
            return Ok(Bytes::new());
        }
        let buf = self
            .op
            .read_with(path)
            .range(start..end)
            .chunk(RANGE_PART)
            .concurrent(CONCURRENT)
            .await
            .map_err(|e| self.err(path, e))?;
        Ok(buf.to_bytes())
    }

    /// Read the whole file.
    pub async fn read_all(&self, path: &str) -> Result<Bytes> {
        self.check_inside(path)?;
        let buf = self
            .op
            .read_with(path)
            .chunk(CHUNK)
            .concurrent(CONCURRENT)
            .await
            .map_err(|e| self.err(path, e))?;
        Ok(buf.to_bytes())
    }

    /// Read the whole file in one request: a GET of the whole object, streamed (no HEAD
    /// first; [`Mount::read_all`] asks the size to fetch large files as parallel ranges).
    pub async fn read_whole(&self, path: &str) -> Result<Bytes> {
        self.check_inside(path)?;
        let _permit = self.in_flight().await;
        let buf = self.op.read(path).await.map_err(|e| self.err(path, e))?;
        Ok(buf.to_bytes())
    }

    /// A ranged reader over the file.
    pub async fn reader(&self, path: &str) -> Result<opendal::Reader> {
        self.check_inside(path)?;
        self.op
            .reader_with(path)
            .chunk(CHUNK)
            .concurrent(CONCURRENT)
            .await
            .map_err(|e| self.err(path, e))
    }

    /// Write a whole file at once (with no POSIX attributes).
    pub async fn write_all(&self, path: &str, data: Bytes) -> Result<()> {
        self.write_with_meta(path, data, &PosixMeta::default())
            .await
    }

    /// Write a whole file at once, carrying `meta` (object backends).
    pub async fn write_with_meta(&self, path: &str, data: Bytes, meta: &PosixMeta) -> Result<()> {
        self.check_write(path)?;
        self.check_inside(path)?;
        let mut w = self.op.write_with(path, data);
        if !meta.is_empty() && self.user_meta {
            w = w.user_metadata(meta.to_user_metadata());
        }
        let _permit = self.in_flight().await;
        w.await.map(|_| ()).map_err(|e| self.err(path, e))
    }

    /// A place among the whole-object requests in flight (S3's `max_in_flight`).
    async fn in_flight(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let s = self.in_flight.as_ref()?;
        // (never closed)
        s.clone().acquire_owned().await.ok()
    }

    /// Memory mounts: store the memory file `file` (its first `len` bytes) as `path`
    /// carrying `meta`, without a copy; its holes take no memory. ENOSPC past `max_size`.
    pub fn put_memory_file(
        &self,
        path: &str,
        file: Arc<std::fs::File>,
        len: u64,
        meta: &PosixMeta,
    ) -> Result<()> {
        self.check_write(path)?;
        let Some(store) = &self.mem else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                self.ctx(path),
                "only memory mounts hold memory files",
            ));
        };
        store
            .put_file(
                path,
                file,
                len,
                meta.to_user_metadata().into_iter().collect(),
            )
            .map_err(|e| self.err(path, e))
    }

    /// The largest file the backend holds: S3's 5 TiB object; 16 TiB on memory mounts, as
    /// on ext4 (a sparse file may be larger than the budget: its holes take nothing); None
    /// where the host decides (local).
    pub fn max_file_size(&self) -> Option<u64> {
        match &self.config.backend {
            Backend::S3 { .. } => Some(5 << 40),
            Backend::Memory { .. } => Some(16 << 40),
            Backend::Service(s) if s.service == crate::config::Service::Gcs => Some(5 << 40),
            Backend::Local { .. } | Backend::Service(_) | Backend::Relative { .. } => None,
        }
    }

    /// Memory mounts: (max_size, bytes its files take).
    pub fn memory_usage(&self) -> Option<(u64, u64)> {
        self.mem.as_ref().map(|m| m.usage())
    }

    /// Do uploads carry POSIX attributes as user metadata (S3, memory, Azure, GCS; WebDAV
    /// with `enable_user_metadata`)?
    pub fn keeps_user_metadata(&self) -> bool {
        self.user_meta
    }

    /// Does the backend keep the POSIX attributes the daemon sets (modes, owners, times,
    /// the types of symlinks and special files)? Memory does, and those whose uploads carry
    /// user metadata.
    pub fn keeps_posix(&self) -> bool {
        self.mem.is_some() || self.user_meta
    }

    /// Can one upload take several writes (multipart, or a stream)? Not on WebDAV, whose
    /// writes are one-shot: a file is uploaded there in one request of its whole body.
    pub fn can_stream(&self) -> bool {
        self.caps.write_can_multi
            && !matches!(&self.config.backend, Backend::Service(s) if !s.multipart)
    }

    /// Does a tree go in batch deletes (`batch_delete`, on by default, where the service has
    /// them), or one delete per object?
    fn batch_deletes(&self) -> bool {
        !matches!(&self.config.backend, Backend::Service(s) if !s.batch_delete)
    }

    /// Memory mounts: the memory file `path` is kept in and its length, if it is one.
    pub fn memory_file(&self, path: &str) -> Option<(Arc<std::fs::File>, u64)> {
        self.mem.as_ref()?.file_of(path)
    }

    /// Memory mounts: a new memory file (in the store's bounded tmpfs where it has one).
    pub fn memory_new_file(&self) -> Option<std::io::Result<std::fs::File>> {
        self.mem.as_ref().map(|m| m.files().create())
    }

    /// Memory mounts whose files the kernel may write without the daemon (FUSE
    /// passthrough): their files are made in a tmpfs bounded by `max_size`.
    pub fn memory_direct(&self) -> bool {
        self.mem.as_ref().is_some_and(|m| m.files().bounded())
    }

    /// Memory mounts: the object `path` as a memory file to open (see
    /// [`MemStore::open_file`](crate::storage::memory::MemStore::open_file)).
    pub fn memory_open_file(
        &self,
        path: &str,
        max_copy: u64,
    ) -> Option<Result<(Arc<std::fs::File>, bool)>> {
        let r = self.mem.as_ref()?.open_file(path, max_copy)?;
        Some(r.map_err(|e| Error::from_io(self.ctx(path), e)))
    }

    /// Memory mounts: the counter that copies staged in RAM outside the store charge, so
    /// that they count against `max_size` too.
    pub fn memory_staging(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        self.mem.as_ref().map(|m| m.staging_counter())
    }

    /// A streaming writer (multipart on S3, parallel parts).
    pub async fn writer(&self, path: &str) -> Result<opendal::Writer> {
        self.writer_for(path, 0, &PosixMeta::default()).await
    }

    /// A streaming writer for `size` bytes carrying `meta` (object backends): parts of at
    /// least [`CHUNK`], larger when needed to keep a file within 9,000 parts (S3 allows 10,000).
    pub async fn writer_for(
        &self,
        path: &str,
        size: u64,
        meta: &PosixMeta,
    ) -> Result<opendal::Writer> {
        self.check_write(path)?;
        self.check_inside(path)?;
        let mut w = self
            .op
            .writer_with(path)
            .chunk(part_size(size))
            .concurrent(CONCURRENT);
        if !meta.is_empty() && self.user_meta {
            w = w.user_metadata(meta.to_user_metadata());
        }
        w.await.map_err(|e| self.err(path, e))
    }

    /// Memory mounts: move a directory and everything below it at once (None elsewhere).
    pub fn rename_tree_native(&self, from: &str, to: &str) -> Option<Result<()>> {
        let store = self.mem.as_ref()?;
        Some(
            self.check_delete(from)
                .and_then(|_| self.check_write(to))
                .and_then(|_| store.rename_tree(from, to).map_err(|e| self.err(from, e))),
        )
    }

    /// Create a directory and its missing parents.
    pub async fn create_dir(&self, path: &str) -> Result<()> {
        self.check_write(path)?;
        self.check_inside(path)?;
        if path.is_empty() {
            return Ok(());
        }
        self.op
            .create_dir(&format!("{path}/"))
            .await
            .map_err(|e| self.err(path, e))
    }

    /// Delete one file. Missing is Ok here; callers that need ENOENT stat first.
    pub async fn delete_file(&self, path: &str) -> Result<()> {
        self.check_delete(path)?;
        self.check_inside(path)?;
        self.op.delete(path).await.map_err(|e| self.err(path, e))
    }

    /// Delete a directory and everything below it.
    pub async fn delete_tree(&self, path: &str) -> Result<()> {
        self.check_delete(path)?;
        self.check_inside(path)?;
        let dir = if path.is_empty() {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        if self.batch_deletes() {
            self.op
                .delete_with(&dir)
                .recursive(true)
                .await
                .map_err(|e| self.err(path, e))?;
        } else {
            let entries: Vec<opendal::Entry> = self
                .op
                .lister_with(&dir)
                .recursive(true)
                .await
                .map_err(|e| self.err(path, e))?
                .try_collect()
                .await
                .map_err(|e| self.err(path, e))?;
            let deletes = entries.into_iter().map(|e| {
                let op = self.op.clone();
                async move { op.delete(e.path()).await }
            });
            futures::stream::iter(deletes)
                .buffer_unordered(16)
                .try_collect::<Vec<()>>()
                .await
                .map_err(|e| self.err(path, e))?;
            if let Err(e) = self.op.delete(&dir).await {
                if e.kind() != opendal::ErrorKind::NotFound {
                    return Err(self.err(path, e));
                }
            }
        }
        if !self.prefix_dirs() && self.is_remote() && !path.is_empty() {
            // opendal's simulated recursive delete (FTP) removes what the listing shows,
            // which leaves an empty directory itself in place
            if let Err(e) = self.op.delete(&dir).await {
                if e.kind() != opendal::ErrorKind::NotFound {
                    return Err(self.err(path, e));
                }
            }
        }
        Ok(())
    }

    /// Remove an empty directory (the caller checked that it is empty).
    pub async fn remove_empty_dir(&self, path: &str) -> Result<()> {
        self.check_delete(path)?;
        self.check_inside(path)?;
        self.op
            .delete(&format!("{path}/"))
            .await
            .map_err(|e| self.err(path, e))
    }

    /// Server-side copy of one file inside this mount, when the backend has it.
    pub async fn copy_file(&self, from: &str, to: &str) -> Result<bool> {
        if !self.caps.copy {
            return Ok(false);
        }
        self.check_write(to)?;
        self.check_inside(from)?;
        self.check_inside(to)?;
        let mut attempts = 0;
        loop {
            match self.op.copy(from, to).await {
                Ok(_) => return Ok(true),
                // S3 copies the version it saw first (x-amz-copy-source-if-match); another
                // writer replaced the source meanwhile: copy what it holds now (or find it gone)
                Err(e) if e.kind() == opendal::ErrorKind::Conflict && attempts < 5 => {
                    attempts += 1;
                    tracing::debug!(from, to, attempts, "source changed during copy, again");
                }
                Err(e) => return Err(self.err(from, e)),
            }
        }
    }

    /// Native rename inside this mount, when the backend has it.
    pub async fn rename_native(&self, from: &str, to: &str) -> Result<bool> {
        if !self.caps.rename {
            return Ok(false);
        }
        self.check_delete(from)?;
        self.check_write(to)?;
        self.check_inside(from)?;
        self.check_inside(to)?;
        self.op
            .rename(from, to)
            .await
            .map(|_| true)
            .map_err(|e| self.err(from, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_that_huge_files_fit_in_10000_parts() {
        assert_eq!(part_size(0), CHUNK);
        assert_eq!(part_size(1 << 30), CHUNK);
        let huge = 500u64 << 30; // 500 GiB
        let p = part_size(huge) as u64;
        assert!(huge.div_ceil(p) <= 9_000, "{p}");
        assert_eq!(p % (1 << 20), 0);
    }
}

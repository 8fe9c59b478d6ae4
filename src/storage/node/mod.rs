//! `AsyncNode`: one `mount:path`, with the async file operations of the library API.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::error::{Error, ErrorKind, Result};
use crate::storage::mount::{Entry, EntryKind, Mount, CHUNK};
use crate::storage::path;
use crate::storage::posix::PosixMeta;

mod extras;
mod local_path;

pub use local_path::{LocalPath, LocalPathMode};

/// Children copied in parallel by a tree copy.
const COPY_PARALLEL: usize = 8;

/// A path on a mount. Cheap to clone; `Send + Sync + 'static`, so it moves into tasks.
#[derive(Clone, Debug)]
pub struct AsyncNode {
    mount: Arc<Mount>,
    path: String,
    /// A past version of the file (read-only), from [`AsyncNode::version`].
    version: Option<Arc<str>>,
}

impl AsyncNode {
    /// A node for a normalised path on a mount.
    pub fn new(mount: Arc<Mount>, path: String) -> Self {
        AsyncNode {
            mount,
            path,
            version: None,
        }
    }

    /// Refuse a change through a node that is a past version.
    fn check_current(&self) -> Result<()> {
        match &self.version {
            None => Ok(()),
            Some(v) => Err(Error::new(
                ErrorKind::ReadOnly,
                self.fullpath(),
                format!("version {v:?} is a past version: it cannot change"),
            )),
        }
    }

    async fn stat_required(&self) -> Result<Entry> {
        match &self.version {
            None => self.mount.stat_required(&self.path).await,
            Some(v) => self.stat().await?.ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    self.fullpath(),
                    format!("no version {v:?}"),
                )
            }),
        }
    }

    /// The next chunk (at most [`CHUNK`] bytes) of a `size`-byte file from `*off`, which it
    /// advances; None at the end.
    pub(crate) async fn next_chunk(
        &self,
        reader: &opendal::Reader,
        off: &mut u64,
        size: u64,
    ) -> Result<Option<opendal::Buffer>> {
        if *off >= size {
            return Ok(None);
        }
        let end = (*off + CHUNK as u64).min(size);
        let buf = reader
            .read(*off..end)
            .await
            .map_err(|err| Error::from_opendal(self.fullpath(), err))?;
        if buf.is_empty() {
            return Ok(None);
        }
        *off += buf.len() as u64;
        Ok(Some(buf))
    }

    /// The backend reader of this node (of its version, if it is one).
    async fn open_reader(&self) -> Result<opendal::Reader> {
        match &self.version {
            None => self.mount.reader(&self.path).await,
            Some(v) => self.mount.reader_version(&self.path, v).await,
        }
    }

    /// The mount this node lives on.
    pub fn mount(&self) -> &Arc<Mount> {
        &self.mount
    }
    /// `"mount:path"`.
    pub fn fullpath(&self) -> String {
        self.mount.ctx(&self.path)
    }
    /// The path inside the mount, normalised (`""` for the root).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The last component (`""` for the root).
    pub fn basename(&self) -> &str {
        path::basename(&self.path)
    }
    /// The basename without its last suffix (`"a.tar"` for `"a.tar.gz"`).
    pub fn stem(&self) -> &str {
        let b = self.basename();
        match b.rfind('.') {
            Some(i) if i > 0 => &b[..i],
            _ => b,
        }
    }
    /// The last suffix with its dot (`".gz"`), or `""`.
    pub fn suffix(&self) -> &str {
        let b = self.basename();
        match b.rfind('.') {
            Some(i) if i > 0 => &b[i..],
            _ => "",
        }
    }
    /// The parent directory (the root is its own parent).
    pub fn parent(&self) -> AsyncNode {
        AsyncNode::new(self.mount.clone(), path::parent(&self.path).to_string())
    }
    /// A child of this node; `name` may hold several `/`-separated components.
    pub fn child(&self, name: &str) -> Result<AsyncNode> {
        let joined = path::join(&self.path, name);
        let p =
            path::normalize(&joined).map_err(|(k, m)| Error::new(k, self.mount.ctx(&joined), m))?;
        if !(p == self.path || self.path.is_empty() || p.starts_with(&format!("{}/", self.path))) {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                self.mount.ctx(&joined),
                "a child may not climb out of its parent",
            ));
        }
        Ok(AsyncNode::new(self.mount.clone(), p))
    }

    fn not_found(&self) -> Error {
        Error::new(
            ErrorKind::NotFound,
            self.fullpath(),
            "no such file or directory",
        )
    }

    /// Stat: `None` when missing.
    pub async fn stat(&self) -> Result<Option<Entry>> {
        match &self.version {
            None => self.mount.stat(&self.path).await,
            Some(v) => self.mount.stat_version(&self.path, v).await,
        }
    }
    /// Does the path exist?
    pub async fn exists(&self) -> Result<bool> {
        Ok(self.stat().await?.is_some())
    }
    /// Is it a file? (missing: false)
    pub async fn is_file(&self) -> Result<bool> {
        Ok(matches!(self.stat().await?, Some(e) if e.kind == EntryKind::File))
    }
    /// Is it a directory? (missing: false)
    pub async fn is_dir(&self) -> Result<bool> {
        Ok(matches!(self.stat().await?, Some(e) if e.kind == EntryKind::Dir))
    }
    /// Size in bytes; missing is NotFound.
    pub async fn size(&self) -> Result<u64> {
        Ok(self.stat_required().await?.size)
    }
    /// Last modification time; missing is NotFound.
    pub async fn mtime(&self) -> Result<SystemTime> {
        Ok(self.stat_required().await?.mtime)
    }

    async fn require_file(&self) -> Result<Entry> {
        let e = self.stat_required().await?;
        if e.is_dir() {
            return Err(Error::is_a_directory(self.fullpath()));
        }
        Ok(e)
    }

    /// The whole content.
    pub async fn read(&self) -> Result<Vec<u8>> {
        if self.version.is_some() {
            let size = self.require_file().await?.size;
            return Ok(self.read_range(0, size).await?.to_vec());
        }
        // One GET, nothing asked first: whether a failure meant a directory or nothing is
        // asked only after it.
        match self.mount.read_whole(&self.path).await {
            Ok(b) => Ok(b.to_vec()),
            Err(e) => Err(self.explain_read(e).await),
        }
    }

    /// A failed read explained: IsADirectory for a directory, NotFound for nothing, else
    /// the error itself.
    async fn explain_read(&self, e: Error) -> Error {
        match self.stat().await {
            Ok(Some(x)) if x.is_dir() => Error::is_a_directory(self.fullpath()),
            Ok(None) => self.not_found(),
            _ => e,
        }
    }
    /// The whole content as UTF-8 text.
    pub async fn read_text(&self) -> Result<String> {
        String::from_utf8(self.read().await?).map_err(|_| {
            Error::new(
                ErrorKind::Backend,
                self.fullpath(),
                "the content is not UTF-8",
            )
        })
    }
    /// Bytes `start..end`, clamped to the file's size (past the end reads short or empty).
    pub async fn read_range(&self, start: u64, end: u64) -> Result<Bytes> {
        let size = self.require_file().await?.size;
        if self.version.is_some() {
            let (s, e) = (start.min(size), end.min(size));
            if e <= s {
                return Ok(Bytes::new());
            }
            return self
                .open_reader()
                .await?
                .read(s..e)
                .await
                .map(|b| b.to_bytes())
                .map_err(|err| Error::from_opendal(self.fullpath(), err));
        }
        self.mount
            .read_range(&self.path, start.min(size), end.min(size))
            .await
    }
    /// A reader for ranged and streaming access.
    pub async fn reader(&self) -> Result<NodeReader> {
        let size = self.require_file().await?.size;
        Ok(NodeReader {
            inner: self.open_reader().await?,
            size,
            ctx: self.fullpath(),
        })
    }

    /// Before creating something at this path: it must not be a directory (for a file),
    /// and on memory no ancestor may be a file (other backends refuse that themselves or,
    /// like S3, have no such rule).
    async fn check_create(&self, as_dir: bool) -> Result<Option<Entry>> {
        if !as_dir && self.path.is_empty() {
            return Err(Error::is_a_directory(self.fullpath()));
        }
        if !as_dir && self.mount.prefix_dirs() {
            // Object stores: a file is one request, the PUT. Whether the name is also a
            // prefix is not asked (S3 holds `d` beside `d/…`, and stat shows the file).
            return Ok(None);
        }
        let existing = self.stat().await?;
        if !as_dir && matches!(&existing, Some(e) if e.is_dir()) {
            return Err(Error::is_a_directory(self.fullpath()));
        }
        if self.mount.is_memory() && existing.is_none() {
            let mut p = path::parent(&self.path);
            while !p.is_empty() {
                if let Some(e) = self.mount.stat(p).await? {
                    if !e.is_dir() {
                        return Err(Error::new(
                            ErrorKind::NotADirectory,
                            self.fullpath(),
                            format!("{} is a file", self.mount.ctx(p)),
                        ));
                    }
                    break;
                }
                p = path::parent(p);
            }
        }
        Ok(existing)
    }

    /// A refused create explained: a server that answers 403 to a name below a file
    /// (WebDAV's dav-server) gets NotADirectory when an ancestor is a file (checked only
    /// on this error path).
    async fn explain(&self, e: Error) -> Error {
        // WebDAV answers 403, SFTP and FTP "no such file" (550) to a file created below a file
        if !matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::NotFound) {
            return e;
        }
        let mut p = path::parent(&self.path);
        while !p.is_empty() {
            match self.mount.stat(p).await {
                Ok(Some(x)) if !x.is_dir() => {
                    return Error::new(
                        ErrorKind::NotADirectory,
                        self.fullpath(),
                        format!("{} is a file", self.mount.ctx(p)),
                    )
                }
                Ok(Some(_)) => break,
                _ => p = path::parent(p),
            }
        }
        e
    }

    /// Write the whole content, replacing any. Takes `Vec<u8>`, `Bytes`, `String`, `&'static [u8]`.
    pub async fn write(&self, data: impl Into<Bytes>) -> Result<()> {
        self.check_current()?;
        self.mount.check_write(&self.path)?;
        self.check_create(false).await?;
        match self.mount.write_all(&self.path, data.into()).await {
            Err(e) => Err(self.explain(e).await),
            ok => ok,
        }
    }
    /// Write text.
    pub async fn write_text(&self, text: &str) -> Result<()> {
        self.write(Bytes::copy_from_slice(text.as_bytes())).await
    }
    /// A streaming writer; the file appears when it is closed.
    pub async fn writer(&self) -> Result<NodeWriter> {
        self.check_current()?;
        self.mount.check_write(&self.path)?;
        self.check_create(false).await?;
        let inner = if self.mount.can_stream() {
            Sink::Stream(self.mount.writer(&self.path).await?)
        } else {
            Sink::Spool(tempfile::tempfile().map_err(|e| Error::from_io(self.fullpath(), e))?)
        };
        Ok(NodeWriter {
            inner,
            node: self.clone(),
            written: 0,
        })
    }

    /// Create this directory and its parents (`mkdir -p`); Ok if it already is one.
    pub async fn mkdir(&self) -> Result<()> {
        self.check_current()?;
        self.mount.check_write(&self.path)?;
        match self.check_create(true).await? {
            Some(e) if e.is_dir() => Ok(()),
            Some(_) => Err(Error::new(
                ErrorKind::AlreadyExists,
                self.fullpath(),
                "a file exists at this path",
            )),
            None => self.mount.create_dir(&self.path).await,
        }
    }

    /// The children of this directory, sorted by name.
    pub async fn list(&self) -> Result<Vec<AsyncNode>> {
        match self.stat().await? {
            None => Err(self.not_found()),
            Some(e) if !e.is_dir() => Err(Error::not_a_directory(self.fullpath())),
            Some(_) => {
                let mut names: Vec<String> = self
                    .mount
                    .list(&self.path)
                    .await?
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                names.sort();
                Ok(names
                    .into_iter()
                    .map(|n| AsyncNode::new(self.mount.clone(), path::join(&self.path, &n)))
                    .collect())
            }
        }
    }

    /// The children with their attributes, as the backend lists them.
    pub async fn list_entries(&self) -> Result<Vec<(String, Entry)>> {
        self.mount.list(&self.path).await
    }

    fn same_place(&self, other: &AsyncNode) -> bool {
        Arc::ptr_eq(&self.mount, &other.mount) && self.path == other.path
    }

    fn contains(&self, other: &AsyncNode) -> bool {
        Arc::ptr_eq(&self.mount, &other.mount)
            && (self.path.is_empty() || other.path.starts_with(&format!("{}/", self.path)))
    }

    /// Copy this file or directory tree to `dest` (same mount or another). Files are
    /// streamed in chunks; inside one mount a server-side copy is used where the backend has it.
    pub async fn copy(&self, dest: &AsyncNode) -> Result<()> {
        dest.check_current()?;
        dest.mount.check_write(&dest.path)?;
        if self.same_place(dest) {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                dest.fullpath(),
                "source and destination are the same",
            ));
        }
        let e = self.stat_required().await?;
        if e.is_dir() && self.contains(dest) {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                dest.fullpath(),
                format!("cannot copy {} into itself", self.fullpath()),
            ));
        }
        self.copy_entry(dest, e).await
    }

    fn copy_entry<'a>(&'a self, dest: &'a AsyncNode, e: Entry) -> BoxFuture<'a, Result<()>> {
        async move {
            if !e.is_dir() {
                return self.copy_file(dest, e.size, &e.posix, &|_| {}).await;
            }
            dest.mkdir().await?;
            let children = self.mount.list(&self.path).await?;
            let results: Vec<Result<()>> =
                futures::stream::iter(children.into_iter().map(|(name, entry)| async move {
                    let src = AsyncNode::new(self.mount.clone(), path::join(&self.path, &name));
                    let dst = AsyncNode::new(dest.mount.clone(), path::join(&dest.path, &name));
                    src.copy_entry(&dst, entry).await
                }))
                .buffer_unordered(COPY_PARALLEL)
                .collect()
                .await;
            results.into_iter().collect()
        }
        .boxed()
    }

    /// Copy one file of `size` bytes, telling `on_bytes` of each chunk that arrived.
    pub(crate) async fn copy_file(
        &self,
        dest: &AsyncNode,
        size: u64,
        posix: &PosixMeta,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        dest.check_create(false).await?;
        if Arc::ptr_eq(&self.mount, &dest.mount)
            && self.version.is_none()
            && self.mount.copy_file(&self.path, &dest.path).await?
        {
            on_bytes(size);
            return Ok(());
        }
        let reader = self.open_reader().await?;
        if !dest.mount.can_stream() {
            // one-request uploads (WebDAV): the source goes to a private temporary file
            // first, then up in one request of its mapped pages
            return self
                .copy_via_temp(dest, reader, size, posix, on_bytes)
                .await;
        }
        // the copy carries the source's POSIX attributes (object backends keep them)
        let mut writer = dest.mount.writer_for(&dest.path, size, posix).await?;
        let (mut off, mut size) = (0u64, size);
        while off < size {
            let end = (off + CHUNK as u64).min(size);
            let buf = match reader.read(off..end).await {
                Ok(b) => b,
                // The source shrank while it was copied (another writer truncated it): copy
                // what it holds now.
                Err(e) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => {
                    size = self.mount.stat(&self.path).await?.map_or(0, |e| e.size);
                    continue;
                }
                Err(e) => {
                    let _ = dest.mount.abort_writer(&dest.path, writer).await;
                    return Err(Error::from_opendal(self.fullpath(), e));
                }
            };
            if buf.is_empty() {
                break;
            }
            off += buf.len() as u64;
            let n = buf.len() as u64;
            if let Err(e) = writer.write(buf).await {
                let _ = dest.mount.abort_writer(&dest.path, writer).await;
                return Err(Error::from_opendal(dest.fullpath(), e));
            }
            on_bytes(n);
        }
        dest.mount.close_writer(&dest.path, writer, off).await
    }

    /// [`AsyncNode::copy_file`] to a backend whose uploads are one request: through an
    /// unlinked temporary file, so that the daemon's memory never holds the file.
    async fn copy_via_temp(
        &self,
        dest: &AsyncNode,
        reader: opendal::Reader,
        size: u64,
        posix: &PosixMeta,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let tmp = tempfile::tempfile().map_err(|e| Error::from_io(dest.fullpath(), e))?;
        let mut off = 0u64;
        while off < size {
            let end = (off + CHUNK as u64).min(size);
            let buf = reader
                .read(off..end)
                .await
                .map_err(|e| Error::from_opendal(self.fullpath(), e))?;
            if buf.is_empty() {
                break;
            }
            tmp.write_all_at(&buf.to_bytes(), off)
                .map_err(|e| Error::from_io(dest.fullpath(), e))?;
            off += buf.len() as u64;
            on_bytes(buf.len() as u64);
        }
        let body = crate::storage::mapped::Mapped::of(&tmp, off)
            .map_err(|e| Error::from_io(dest.fullpath(), e))?;
        dest.mount
            .write_with_meta(&dest.path, Bytes::from_owner(body), posix)
            .await
    }

    /// Copy this file or tree to `dest` with skip rules, globs, bounded concurrency and
    /// callbacks (see [`CopyOptions`](crate::CopyOptions)). Single files that fail do not
    /// stop the others: they are listed in the report.
    pub async fn copy_with(
        &self,
        dest: &AsyncNode,
        opts: &crate::storage::copy::CopyOptions,
    ) -> Result<crate::storage::copy::CopyReport> {
        dest.check_current()?;
        crate::storage::copy::copy_with(self, dest, opts).await
    }

    /// Delete this file, or this directory with everything below it. Missing is Ok.
    pub async fn delete(&self) -> Result<()> {
        self.check_current()?;
        self.mount.check_delete(&self.path)?;
        match self.stat().await? {
            None => Ok(()),
            Some(e) if e.is_dir() => {
                if self.path.is_empty() {
                    return Err(Error::new(
                        ErrorKind::PermissionDenied,
                        self.fullpath(),
                        "refusing to delete a mount's root",
                    ));
                }
                self.mount.delete_tree(&self.path).await
            }
            Some(_) => self.mount.delete_file(&self.path).await,
        }
    }

    /// Move this file or tree to `dest`: a native rename inside a mount where the backend
    /// has one, otherwise copy then delete.
    pub async fn move_to(&self, dest: &AsyncNode) -> Result<()> {
        self.check_current()?;
        dest.check_current()?;
        self.mount.check_delete(&self.path)?;
        dest.mount.check_write(&dest.path)?;
        if self.same_place(dest) {
            return Ok(());
        }
        let e = self.mount.stat_required(&self.path).await?;
        if self.path.is_empty() || (e.is_dir() && self.contains(dest)) {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                dest.fullpath(),
                format!("cannot move {} into itself", self.fullpath()),
            ));
        }
        if Arc::ptr_eq(&self.mount, &dest.mount) && self.mount.capability().rename {
            dest.check_create(e.is_dir()).await?;
            if let Some(parent) = dest.path.rsplit_once('/').map(|(p, _)| p) {
                self.mount.create_dir(parent).await?;
            }
            if self.mount.rename_native(&self.path, &dest.path).await? {
                return Ok(());
            }
        }
        self.copy_entry(dest, e.clone()).await?;
        if e.is_dir() {
            self.mount.delete_tree(&self.path).await
        } else {
            self.mount.delete_file(&self.path).await
        }
    }
}

/// Ranged reads of one file; the size is known, so ranges are clamped.
pub struct NodeReader {
    inner: opendal::Reader,
    size: u64,
    ctx: String,
}

impl NodeReader {
    /// The file's size when the reader was opened.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Bytes `start..end`, clamped to the size.
    pub async fn read_range(&self, start: u64, end: u64) -> Result<Bytes> {
        let (s, e) = (start.min(self.size), end.min(self.size));
        if e <= s {
            return Ok(Bytes::new());
        }
        self.inner
            .read(s..e)
            .await
            .map(|b| b.to_bytes())
            .map_err(|err| Error::from_opendal(self.ctx.clone(), err))
    }
    /// The underlying opendal reader (streams and async-read adapters).
    pub fn into_inner(self) -> opendal::Reader {
        self.inner
    }
}

/// A streaming writer; nothing is visible until [`NodeWriter::close`].
pub struct NodeWriter {
    inner: Sink,
    node: AsyncNode,
    written: u64,
}

/// Where a [`NodeWriter`]'s bytes go: the backend's streaming writer, or (backends whose
/// uploads are one request, such as WebDAV) an unlinked temporary file uploaded at close.
enum Sink {
    Stream(opendal::Writer),
    Spool(std::fs::File),
}

impl NodeWriter {
    /// Append a chunk.
    pub async fn write(&mut self, data: impl Into<Bytes>) -> Result<()> {
        let data: Bytes = data.into();
        let off = self.written;
        self.written += data.len() as u64;
        match &mut self.inner {
            Sink::Stream(w) => w
                .write(data)
                .await
                .map_err(|e| Error::from_opendal(self.node.fullpath(), e)),
            Sink::Spool(f) => {
                use std::os::unix::fs::FileExt;
                f.write_all_at(&data, off)
                    .map_err(|e| Error::from_io(self.node.fullpath(), e))
            }
        }
    }
    /// Finish: the file exists with all the bytes once this returns Ok.
    pub async fn close(self) -> Result<()> {
        match self.inner {
            Sink::Stream(w) => {
                self.node
                    .mount
                    .close_writer(&self.node.path, w, self.written)
                    .await
            }
            Sink::Spool(f) => {
                let body = crate::storage::mapped::Mapped::of(&f, self.written)
                    .map_err(|e| Error::from_io(self.node.fullpath(), e))?;
                self.node
                    .mount
                    .write_all(&self.node.path, Bytes::from_owner(body))
                    .await
            }
        }
    }
    /// Give up: no (partial) file stays behind. (On local mounts the bytes go straight to
    /// the file while it is written, and abort removes it.)
    pub async fn abort(self) -> Result<()> {
        match self.inner {
            Sink::Stream(w) => self.node.mount.abort_writer(&self.node.path, w).await,
            Sink::Spool(_) => Ok(()), // nothing was sent
        }
    }
}

//! `StorageManager` / `StorageNode`: the library API for programs without async, on a runtime
//! of their own.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::config::{Config, MountConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::manager::AsyncStorageManager;
use crate::storage::mount::Entry;
use crate::storage::node::AsyncNode;

/// Owns the runtime, made at the first call that needs it (so that `StorageManager::new` is
/// infallible, like `AsyncStorageManager::new`); shuts it down without blocking so that
/// dropping it inside another runtime never panics.
#[derive(Debug, Default)]
struct Runtime(std::sync::OnceLock<tokio::runtime::Runtime>);

impl Runtime {
    fn get(&self) -> Result<&tokio::runtime::Runtime> {
        if let Some(rt) = self.0.get() {
            return Ok(rt);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("genro-storage")
            .enable_all()
            .build()
            .map_err(|e| Error::from_io("runtime", e))?;
        // (two first calls at once: one runtime is kept, the other shut down)
        if let Err(extra) = self.0.set(rt) {
            extra.shutdown_background();
        }
        Ok(self.0.get().expect("set above"))
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output> {
        match tokio::runtime::Handle::try_current() {
            Err(_) => Ok(self.get()?.block_on(f)),
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                let rt = self.get()?;
                Ok(tokio::task::block_in_place(|| rt.block_on(f)))
            }
            Ok(_) => Err(Error::new(
                ErrorKind::Runtime,
                "",
                "the blocking StorageManager was called from a current-thread tokio runtime; \
                 use AsyncStorageManager there (or a multi-thread runtime)",
            )),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The blocking form of [`AsyncStorageManager`], with the same API.
#[derive(Clone, Debug)]
pub struct StorageManager {
    inner: AsyncStorageManager,
    rt: Arc<Runtime>,
}

impl Default for StorageManager {
    fn default() -> Self {
        Self::new()
    }
}

/// The blocking form of [`AsyncNode`].
#[derive(Clone, Debug)]
pub struct StorageNode {
    inner: AsyncNode,
    rt: Arc<Runtime>,
}

impl StorageManager {
    /// A manager with its own runtime (two worker threads, started by the first call that
    /// needs them; a runtime that cannot start fails that call with ErrorKind::Runtime).
    pub fn new() -> Self {
        StorageManager {
            inner: AsyncStorageManager::new(),
            rt: Arc::new(Runtime::default()),
        }
    }
    /// Add mounts.
    pub fn configure(&self, mounts: Vec<MountConfig>) -> Result<()> {
        self.rt.block_on(self.inner.configure(mounts))?
    }
    /// Add the mounts of a config file.
    pub fn configure_file(&self, file: impl AsRef<std::path::Path>) -> Result<Config> {
        self.rt.block_on(self.inner.configure_file(file))?
    }
    /// A node for `"mount:path"`.
    pub fn node(&self, fullpath: &str) -> Result<StorageNode> {
        Ok(StorageNode {
            inner: self.inner.node(fullpath)?,
            rt: self.rt.clone(),
        })
    }
    /// What the mount `name` can do (see [`AsyncStorageManager::capabilities`]).
    pub fn capabilities(&self, name: &str) -> Result<crate::storage::mount::Capabilities> {
        self.inner.capabilities(name)
    }
    /// Remove the mount `name` (see [`AsyncStorageManager::remove_mount`]).
    pub fn remove_mount(&self, name: &str) -> bool {
        self.inner.remove_mount(name)
    }
    /// Is a mount with this name configured?
    pub fn has_mount(&self, name: &str) -> bool {
        self.inner.has_mount(name)
    }
    /// The configured mount names.
    pub fn mount_names(&self) -> Vec<String> {
        self.inner.mount_names()
    }
    /// Drop every mount.
    pub fn close_all(&self) -> Result<()> {
        self.rt.block_on(self.inner.close_all())?
    }
    /// The async manager behind this one.
    pub fn as_async(&self) -> &AsyncStorageManager {
        &self.inner
    }
}

macro_rules! blocking {
    ($( $(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        $( $(#[$doc])* pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
            self.rt.block_on(self.inner.$name($($arg),*))?
        } )*
    };
}

impl StorageNode {
    fn wrap(&self, inner: AsyncNode) -> StorageNode {
        StorageNode {
            inner,
            rt: self.rt.clone(),
        }
    }
    blocking! {
        /// Does the path exist?
        fn exists(&self) -> bool;
        /// Is it a file?
        fn is_file(&self) -> bool;
        /// Is it a directory?
        fn is_dir(&self) -> bool;
        /// Size in bytes.
        fn size(&self) -> u64;
        /// Last modification.
        fn mtime(&self) -> SystemTime;
        /// Stat (None when missing).
        fn stat(&self) -> Option<Entry>;
        /// The whole content.
        fn read(&self) -> Vec<u8>;
        /// The content as text.
        fn read_text(&self) -> String;
        /// Bytes `start..end`, clamped.
        fn read_range(&self, start: u64, end: u64) -> Bytes;
        /// Write text.
        fn write_text(&self, text: &str) -> ();
        /// `mkdir -p`.
        fn mkdir(&self) -> ();
        /// Delete (recursively); missing is Ok.
        fn delete(&self) -> ();
        /// The MD5 of the content, lowercase hex (see [`AsyncNode::md5hash`]).
        fn md5hash(&self) -> String;
        /// A URL for the file (see [`AsyncNode::url`]).
        fn url(&self, expires: std::time::Duration) -> Option<String>;
        /// The file's user metadata (see [`AsyncNode::metadata`]).
        fn metadata(&self) -> std::collections::HashMap<String, String>;
        /// Replace the file's user metadata in place (see [`AsyncNode::set_metadata`]).
        fn set_metadata(&self, map: std::collections::HashMap<String, String>) -> ();
        /// The stored versions, newest first (see [`AsyncNode::versions`]).
        fn versions(&self) -> Vec<crate::storage::mount::Version>;
    }
    /// Write unless the file already holds these bytes (see [`AsyncNode::write_if_changed`]).
    pub fn write_if_changed(&self, data: impl Into<Bytes>) -> Result<bool> {
        self.rt.block_on(self.inner.write_if_changed(data))?
    }
    /// A real OS path for the file (see [`AsyncNode::local_path`]).
    pub fn local_path(&self, mode: crate::LocalPathMode) -> Result<BlockingLocalPath> {
        let inner = self.rt.block_on(self.inner.local_path(mode))??;
        Ok(BlockingLocalPath {
            inner,
            rt: self.rt.clone(),
        })
    }
    /// A read-only node for one version (see [`AsyncNode::version`]).
    pub fn version(&self, id: &str) -> StorageNode {
        self.wrap(self.inner.version(id))
    }
    /// The MIME type guessed from the extension (see [`AsyncNode::mimetype`]).
    pub fn mimetype(&self) -> String {
        self.inner.mimetype()
    }
    /// The extension without its dot (see [`AsyncNode::ext`]).
    pub fn ext(&self) -> &str {
        self.inner.ext()
    }
    /// The parent as `"mount:dir"` (see [`AsyncNode::dirname`]).
    pub fn dirname(&self) -> String {
        self.inner.dirname()
    }
    /// Write the whole content.
    pub fn write(&self, data: impl Into<Bytes>) -> Result<()> {
        self.rt.block_on(self.inner.write(data))?
    }
    /// The children.
    pub fn list(&self) -> Result<Vec<StorageNode>> {
        let v = self.rt.block_on(self.inner.list())??;
        Ok(v.into_iter().map(|n| self.wrap(n)).collect())
    }
    /// Copy to `dest`.
    pub fn copy(&self, dest: &StorageNode) -> Result<()> {
        self.rt.block_on(self.inner.copy(&dest.inner))?
    }
    /// Copy to `dest` with skip rules, globs and callbacks.
    pub fn copy_with(
        &self,
        dest: &StorageNode,
        opts: &crate::CopyOptions,
    ) -> Result<crate::CopyReport> {
        let (src, dest, opts) = (self.inner.clone(), dest.inner.clone(), opts.clone());
        self.rt
            .block_on(async move { src.copy_with(&dest, &opts).await })?
    }
    /// Move to `dest`.
    pub fn move_to(&self, dest: &StorageNode) -> Result<()> {
        self.rt.block_on(self.inner.move_to(&dest.inner))?
    }
    /// `"mount:path"`.
    pub fn fullpath(&self) -> String {
        self.inner.fullpath()
    }
    /// The path inside the mount.
    pub fn path(&self) -> &str {
        self.inner.path()
    }
    /// The last component.
    pub fn basename(&self) -> &str {
        self.inner.basename()
    }
    /// The basename without its suffix.
    pub fn stem(&self) -> &str {
        self.inner.stem()
    }
    /// The suffix with its dot.
    pub fn suffix(&self) -> &str {
        self.inner.suffix()
    }
    /// The parent directory.
    pub fn parent(&self) -> StorageNode {
        self.wrap(self.inner.parent())
    }
    /// A child.
    pub fn child(&self, name: &str) -> Result<StorageNode> {
        Ok(self.wrap(self.inner.child(name)?))
    }
    /// The async node behind this one.
    pub fn as_async(&self) -> &AsyncNode {
        &self.inner
    }
}

/// The blocking form of [`LocalPath`](crate::LocalPath), from [`StorageNode::local_path`].
#[derive(Debug)]
pub struct BlockingLocalPath {
    inner: crate::LocalPath,
    rt: Arc<Runtime>,
}

impl BlockingLocalPath {
    /// The OS path to hand to other programs.
    pub fn path(&self) -> &std::path::Path {
        self.inner.path()
    }
    /// Is it a temporary copy (not the file of a local mount)?
    pub fn is_temporary(&self) -> bool {
        self.inner.is_temporary()
    }
    /// Upload the copy back (see [`LocalPath::commit`](crate::LocalPath::commit)).
    pub fn commit(self) -> Result<()> {
        let rt = self.rt.clone();
        rt.block_on(self.inner.commit())?
    }
}

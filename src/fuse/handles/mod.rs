//! Open files and directories: the table of handles (files and directories) and of the
//! per-inode [`OpenFile`] their handles share, so dup'd descriptors and other handles read
//! their writes; and the directory where staged data goes.

mod file;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::fuse::inode::Target;
use crate::storage::mount::Mount;
use crate::storage::posix::PosixMeta;

pub use file::{open_native, FileHandle, OpenFile};
use file::{open_shared, staging_file};

/// A directory entry snapshot taken by opendir.
#[derive(Debug, Clone)]
pub struct DirEntry<M> {
    /// Name in the directory.
    pub name: String,
    /// What it stands for (None for `.` and `..`).
    pub target: Option<Target>,
    /// Its attributes.
    pub meta: M,
}

/// An open directory: the listing, so offsets stay stable across readdir calls.
#[derive(Debug)]
pub struct DirHandle<M> {
    /// The directory's inode.
    pub ino: u64,
    /// The entries, `.` and `..` first.
    pub entries: Arc<Vec<DirEntry<M>>>,
}

/// The table of open handles and of per-inode open files.
#[derive(Debug)]
pub struct Handles<M> {
    next: AtomicU64,
    files: Mutex<HashMap<u64, Arc<FileHandle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle<M>>>>,
    open: Mutex<HashMap<u64, Arc<OpenFile>>>,
}

impl<M> Default for Handles<M> {
    fn default() -> Self {
        Handles {
            next: AtomicU64::new(1),
            files: Mutex::default(),
            dirs: Mutex::default(),
            open: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<M> Handles<M> {
    /// The open file of an inode, if any handle is open on it.
    pub fn open_file(&self, ino: u64) -> Option<Arc<OpenFile>> {
        lock(&self.open).get(&ino).cloned()
    }

    /// Every open file (for flushing at shutdown).
    pub fn all_open(&self) -> Vec<(u64, Arc<OpenFile>)> {
        lock(&self.open)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Open a handle on a local file just opened (or created) by the caller; when the inode
    /// is open already, its shared descriptor serves and `file` is closed.
    pub fn open_file_with(
        &self,
        ino: u64,
        mount: &Arc<Mount>,
        file: File,
        size: u64,
        append: bool,
    ) -> (u64, Arc<FileHandle>) {
        let shared = {
            let mut open = lock(&self.open);
            let f = open
                .entry(ino)
                .or_insert_with(|| Arc::new(OpenFile::native(mount.clone(), file, size)))
                .clone();
            f.handles.fetch_add(1, Ordering::AcqRel);
            f
        };
        self.add_handle(ino, shared, true, append)
    }

    /// Register a handle on `file`, whose count the caller raised while it held the table of
    /// open inodes (so that a last release racing with this open never drops it from the
    /// table: a second `OpenFile` for the same inode would register a second passthrough
    /// backing, which the kernel refuses with EIO).
    fn add_handle(
        &self,
        ino: u64,
        file: Arc<OpenFile>,
        writable: bool,
        append: bool,
    ) -> (u64, Arc<FileHandle>) {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(FileHandle::new(ino, file, writable, append));
        lock(&self.files).insert(fh, h.clone());
        (fh, h)
    }

    /// Open a handle on the host file `host` of a local mount (the inode's shared
    /// descriptor when it is open already).
    pub fn open_host(
        &self,
        ino: u64,
        mount: &Arc<Mount>,
        host: &Path,
        writable: bool,
        append: bool,
    ) -> Result<(u64, Arc<FileHandle>)> {
        let file = {
            let mut open = lock(&self.open);
            let file = match open.get(&ino) {
                Some(f) => f.clone(),
                None => {
                    let io = |e| Error::from_io(host.display().to_string(), e);
                    let f = open_shared(host).map_err(io)?;
                    let meta = f.metadata().map_err(io)?;
                    if meta.is_dir() {
                        return Err(Error::is_a_directory(host.display().to_string()));
                    }
                    let f = Arc::new(OpenFile::native(mount.clone(), f, meta.len()));
                    open.insert(ino, f.clone());
                    f
                }
            };
            file.handles.fetch_add(1, Ordering::AcqRel);
            file
        };
        Ok(self.add_handle(ino, file, writable, append))
    }

    /// Open a handle on `ino` of an object mount, whose object has `size` and `posix`;
    /// `new_file` starts the file empty and dirty, staged in that directory, so that its
    /// first upload happens at close.
    #[allow(clippy::too_many_arguments)]
    pub fn open_object(
        &self,
        ino: u64,
        mount: &Arc<Mount>,
        size: u64,
        posix: PosixMeta,
        writable: bool,
        append: bool,
        new_file: Option<&Path>,
    ) -> Result<(u64, Arc<FileHandle>)> {
        let file = {
            let mut open = lock(&self.open);
            let file = match open.get(&ino) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(match new_file {
                        Some(cache_dir) => OpenFile::new_staged(
                            mount.clone(),
                            staging_file(mount, cache_dir)?,
                            posix,
                        ),
                        None => OpenFile::detached(mount.clone(), size, posix),
                    });
                    open.insert(ino, f.clone());
                    f
                }
            };
            file.handles.fetch_add(1, Ordering::AcqRel);
            file
        };
        let (fh, h) = self.add_handle(ino, file, writable, append);
        // A file created by this handle is its to upload, even with no write and no flush
        // (O_CREAT|O_RDONLY gets no FLUSH from the kernel).
        h.pending.store(new_file.is_some(), Ordering::Release);
        Ok((fh, h))
    }

    /// A new handle on `ino` if it is open already (None otherwise).
    pub fn open_existing(
        &self,
        ino: u64,
        writable: bool,
        append: bool,
    ) -> Option<(u64, Arc<FileHandle>)> {
        let file = {
            let open = lock(&self.open);
            let f = open.get(&ino)?.clone();
            f.handles.fetch_add(1, Ordering::AcqRel);
            f
        };
        Some(self.add_handle(ino, file, writable, append))
    }

    /// A file handle.
    pub fn file(&self, fh: u64) -> Result<Arc<FileHandle>> {
        lock(&self.files).get(&fh).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidPath,
                format!("fh {fh}"),
                "bad file handle",
            )
        })
    }

    /// Drop a file handle; returns the open file and whether it was the inode's last handle.
    pub fn release(&self, fh: u64) -> Option<(Arc<FileHandle>, bool)> {
        let h = lock(&self.files).remove(&fh)?;
        // Counted down under the table's lock, as opens count up (see `add_handle`).
        let mut open = lock(&self.open);
        let last = h.file.handles.fetch_sub(1, Ordering::AcqRel) == 1;
        if last && open.get(&h.ino).is_some_and(|f| Arc::ptr_eq(f, &h.file)) {
            open.remove(&h.ino);
        }
        drop(open);
        Some((h, last))
    }

    /// Store a directory listing; returns its handle.
    pub fn open_dir(&self, ino: u64, entries: Vec<DirEntry<M>>) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(
            fh,
            Arc::new(DirHandle {
                ino,
                entries: Arc::new(entries),
            }),
        );
        fh
    }

    /// A directory handle.
    pub fn dir(&self, fh: u64) -> Result<Arc<DirHandle<M>>> {
        lock(&self.dirs).get(&fh).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidPath,
                format!("fh {fh}"),
                "bad directory handle",
            )
        })
    }

    /// Drop a directory handle.
    pub fn release_dir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }
}

/// Where staged data goes: a private directory, removed when dropped.
#[derive(Debug)]
pub struct CacheDir {
    path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl CacheDir {
    /// Use `dir` (created if missing), or a private temp dir.
    pub fn new(dir: Option<&Path>) -> Result<CacheDir> {
        match dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| Error::from_io(format!("cache dir {}", d.display()), e))?;
                Ok(CacheDir {
                    path: d.to_path_buf(),
                    _tmp: None,
                })
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("genro-storage-cache-")
                    .tempdir()
                    .map_err(|e| Error::from_io("cache dir", e))?;
                Ok(CacheDir {
                    path: t.path().to_path_buf(),
                    _tmp: Some(t),
                })
            }
        }
    }
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

//! Open files and directories: the table of handles (files and directories) and of the
//! per-inode [`OpenFile`] their handles share, so dup'd descriptors and other handles read
//! their writes.

mod file;
mod staging;

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::fuse::inode::Target;
use crate::storage::mount::Mount;
use crate::storage::posix::PosixMeta;

use file::staging_file;
pub(crate) use file::MAP_MIN;
pub use file::{FileHandle, OpenFile};
pub use staging::{remove_orphans, CacheDir, Charge};

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
    /// The directory's attributes at opendir (for fstat once it is removed).
    meta: M,
    /// The entries, `.` and `..` first: the listing taken by the last read from offset 0.
    entries: Mutex<Arc<Vec<DirEntry<M>>>>,
    /// A listing was taken.
    listed: std::sync::atomic::AtomicBool,
}

impl<M> DirHandle<M> {
    /// The entries as listed last.
    pub fn entries(&self) -> Arc<Vec<DirEntry<M>>> {
        lock(&self.entries).clone()
    }

    /// Must a read from `offset` list the directory? At offset 0 (the first read, or a
    /// rewinddir(3), which must show the names added since the opendir: POSIX), and when
    /// nothing was listed yet. Later offsets read the same listing, so they stay stable.
    pub fn lists_at(&self, offset: u64) -> bool {
        offset == 0 || !self.listed.load(Ordering::Acquire)
    }

    /// Keep a new listing.
    pub fn relist(&self, entries: Vec<DirEntry<M>>) {
        *lock(&self.entries) = Arc::new(entries);
        self.listed.store(true, Ordering::Release);
    }
}

/// How an object mount's file not open yet is opened (see [`Handles::open_object`]).
#[derive(Debug)]
pub enum Memory {
    /// Read from its backend until written (a detached [`OpenFile`]).
    No,
    /// A memory mount's file, to be made a memory file the kernel reads and writes itself.
    Wanted,
    /// That memory file, made (see [`Mount::memory_open_file`]; `true`: the store's own).
    Made((Arc<File>, bool)),
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

    /// Open a handle on a host file of a local mount: the inode's shared descriptor when it
    /// is open already, else the one `open` returns (a directory is EISDIR).
    pub fn open_host(
        &self,
        ino: u64,
        mount: &Arc<Mount>,
        open: impl FnOnce() -> Result<File>,
        writable: bool,
        append: bool,
    ) -> Result<(u64, Arc<FileHandle>)> {
        let file = {
            let mut open_files = lock(&self.open);
            let file = match open_files.get(&ino) {
                Some(f) => f.clone(),
                None => {
                    let f = open()?;
                    let ctx = || mount.ctx(&format!("inode {ino}"));
                    let meta = f.metadata().map_err(|e| Error::from_io(ctx(), e))?;
                    if meta.is_dir() {
                        return Err(Error::is_a_directory(ctx()));
                    }
                    let f = Arc::new(OpenFile::native(mount.clone(), f, meta.len()));
                    open_files.insert(ino, f.clone());
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
    /// first upload happens at close; `memory` is the memory file a memory mount's object
    /// was opened as, used when the inode is not open yet: `Ok(None)` when it is not open
    /// and `memory` is [`Memory::Wanted`] (the caller makes the memory file, outside this
    /// table's lock, and asks again).
    #[allow(clippy::too_many_arguments)]
    pub fn open_object(
        &self,
        ino: u64,
        mount: &Arc<Mount>,
        size: u64,
        posix: PosixMeta,
        writable: bool,
        append: bool,
        new_file: Option<&CacheDir>,
        memory: Memory,
    ) -> Result<Option<(u64, Arc<FileHandle>)>> {
        let file = {
            let mut open = lock(&self.open);
            let file = match open.get(&ino) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(match (new_file, memory) {
                        (Some(cache), _) => {
                            OpenFile::new_staged(mount.clone(), staging_file(mount, cache)?, posix)
                        }
                        (None, Memory::Made(made)) => OpenFile::memory(mount.clone(), made, posix),
                        (None, Memory::Wanted) => return Ok(None),
                        (None, Memory::No) => OpenFile::detached(mount.clone(), size, posix),
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
        Ok(Some((fh, h)))
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

    /// Open a directory handle on `ino`, whose attributes are `meta`; returns the handle.
    pub fn open_dir(&self, ino: u64, meta: M) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(
            fh,
            Arc::new(DirHandle {
                ino,
                meta,
                entries: Mutex::default(),
                listed: Default::default(),
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

    /// The attributes an open directory of `ino` had at opendir, if one is open:
    /// for fstat of a directory removed or replaced while open. (A scan of the open
    /// directories, on that rare path only.)
    pub fn open_dir_meta(&self, ino: u64) -> Option<M>
    where
        M: Clone,
    {
        let dirs = lock(&self.dirs);
        dirs.values().find(|d| d.ino == ino).map(|d| d.meta.clone())
    }

    /// Drop a directory handle.
    pub fn release_dir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }
}

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

use file::staging_file;
pub use file::{FileHandle, OpenFile};

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

/// Where staged data goes: a private directory (0700, removed when dropped), or the
/// `cache_dir` configured. Staged files in it are unlinked from birth, so a daemon that is
/// killed leaves none behind; a private directory holds an `owner` marker (pid and start
/// time), by which a later daemon removes the directories of daemons that no longer run.
#[derive(Debug)]
pub struct CacheDir {
    path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// The name every private staging directory starts with.
const PREFIX: &str = "genro-storage-cache-";

impl CacheDir {
    /// Use `dir` (created 0700 if missing), or a private temp dir.
    pub fn new(dir: Option<&Path>) -> Result<CacheDir> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match dir {
            Some(d) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d)
                    .map_err(|e| Error::from_io(format!("cache dir {}", d.display()), e))?;
                Ok(CacheDir {
                    path: d.to_path_buf(),
                    _tmp: None,
                })
            }
            None => {
                let tmp = std::env::temp_dir();
                remove_orphans(&tmp);
                let t = tempfile::Builder::new()
                    .prefix(PREFIX)
                    .permissions(std::fs::Permissions::from_mode(0o700))
                    .tempdir()
                    .map_err(|e| Error::from_io("cache dir", e))?;
                let me = std::process::id();
                let marker = format!("{me} {}\n", start_time(me).unwrap_or_default());
                {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let io = |e| Error::from_io(format!("cache dir {}", t.path().display()), e);
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(t.path().join("owner"))
                        .and_then(|mut f| f.write_all(marker.as_bytes()))
                        .map_err(io)?;
                }
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

/// A process's start time (clock ticks since boot, field 22 of `/proc/PID/stat`): with the
/// pid, it names one process even after the pid is reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may hold spaces
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Remove the private staging directories in `tmp` that this user's daemons left when they
/// were killed: those whose `owner` marker names a process that no longer runs. A directory
/// without a marker, of another user, or of a running daemon is left alone.
pub fn remove_orphans(tmp: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    if start_time(std::process::id()).is_none() {
        return 0; // no /proc: a marker cannot be checked
    }
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return 0;
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut removed = 0;
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = e.path();
        match std::fs::symlink_metadata(&dir) {
            Ok(md) if md.is_dir() && md.uid() == uid => {}
            _ => continue,
        }
        let Ok(marker) = std::fs::read_to_string(dir.join("owner")) else {
            continue;
        };
        let mut it = marker.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(started))) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        if start_time(pid) == Some(started) {
            continue; // still running
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                removed += 1;
                tracing::info!(dir = %dir.display(), pid, "removed the staging directory of a daemon that no longer runs");
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove an orphaned staging directory")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn removes_only_the_staging_directories_of_daemons_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let mk = |name: &str, marker: Option<String>| {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            if let Some(m) = marker {
                std::fs::write(d.join("owner"), m).unwrap();
            }
            d
        };
        let me = std::process::id();
        let alive = mk(
            &format!("{PREFIX}alive"),
            Some(format!("{me} {}", start_time(me).unwrap())),
        );
        // a pid that runs, but a start time that is not its own: the pid was reused
        let reused = mk(&format!("{PREFIX}reused"), Some(format!("{me} 1")));
        let gone = mk(&format!("{PREFIX}gone"), Some("4194304 5".into()));
        let unmarked = mk(&format!("{PREFIX}unmarked"), None);
        let other = mk("something-else", Some("4194304 5".into()));
        assert_eq!(remove_orphans(tmp.path()), 2);
        assert!(alive.exists() && unmarked.exists() && other.exists());
        assert!(!reused.exists() && !gone.exists());
    }

    #[test]
    fn a_private_staging_directory_is_0700_and_marked() {
        let c = CacheDir::new(None).unwrap();
        let mode = std::fs::metadata(c.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let marker = std::fs::read_to_string(c.path().join("owner")).unwrap();
        assert!(marker.starts_with(&format!("{} ", std::process::id())));
    }
}

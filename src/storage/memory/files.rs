//! Memory files of a memory mount: the private tmpfs they are made in, sized to the mount's
//! `max_size` so that the kernel itself refuses a write past it (ENOSPC), also the writes
//! the daemon never sees (FUSE passthrough); memfds where no such tmpfs can be made; the
//! store's objects kept in such files; and sparse copies of them (holes stay holes).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock};

use opendal::raw::Timestamp;
use opendal::{MetadataBuilder, Result};

use super::{Content, MemStore, Value};

/// Where a memory store makes its files: a detached tmpfs (`fsopen`, `fsmount`: mounted
/// nowhere, seen by no other process) of `size=` the budget, made on first use.
#[derive(Debug)]
pub struct MemFiles {
    budget: u64,
    tmpfs: OnceLock<Option<OwnedFd>>,
}

impl MemFiles {
    /// Files of a store whose budget is `budget` bytes.
    pub fn new(budget: u64) -> MemFiles {
        MemFiles {
            budget,
            tmpfs: OnceLock::new(),
        }
    }

    /// The tmpfs, once made (None where the kernel refuses one: no CAP_SYS_ADMIN, say).
    fn tmpfs(&self) -> Option<&OwnedFd> {
        self.tmpfs
            .get_or_init(|| match detached_tmpfs(self.budget) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::info!(error = %e, "no private tmpfs for memory files; memfds instead (no passthrough on memory mounts)");
                    None
                }
            })
            .as_ref()
    }

    /// Are the files made in the bounded tmpfs (so that writes the daemon does not see are
    /// bounded by the budget too)?
    pub fn bounded(&self) -> bool {
        self.tmpfs().is_some()
    }

    /// A new, empty, unnamed file: in the tmpfs, else a memfd.
    pub fn create(&self) -> std::io::Result<File> {
        if let Some(dir) = self.tmpfs() {
            // SAFETY: a valid NUL-terminated path relative to a descriptor we hold.
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    c".".as_ptr(),
                    libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                    0o600,
                )
            };
            if fd >= 0 {
                // SAFETY: a fresh descriptor that nothing else owns.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a valid NUL-terminated name; the returned descriptor is owned by the File.
        let fd = unsafe { libc::memfd_create(c"genro-memory".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }
}

impl MemStore {
    /// The memory file the object `path` is kept in, and its length, when it is one (a
    /// large file written through the daemon): the daemon adopts it to write on instead of
    /// fetching it, holes and all.
    pub fn file_of(&self, path: &str) -> Option<(Arc<std::fs::File>, u64)> {
        match &self.lock().get(&self.key(path))?.content {
            Content::File { file, len, .. } => Some((file.clone(), *len)),
            Content::Bytes(_) => None,
        }
    }

    /// The object `path` as a memory file for the daemon to open and hand to the kernel
    /// (FUSE passthrough): the file it is kept in, when nothing else holds it (`true`: the
    /// store shares it, and shows writes made in place within the length it holds); else a
    /// private copy, holes kept; else a copy of its bytes when there are at most
    /// `max_copy`. None when it is no file, or larger in bytes.
    pub fn open_file(
        &self,
        path: &str,
        max_copy: u64,
    ) -> Option<std::io::Result<(Arc<std::fs::File>, bool)>> {
        use std::os::unix::fs::FileExt;
        let content = self.lock().get(&self.key(path))?.content.clone();
        let made = match content {
            Content::File { file, len, .. } if Arc::strong_count(&file) <= 2 => {
                // (the map's and ours: the file is this object's alone; a failed store left
                // it longer than the object holds)
                file.metadata()
                    .and_then(|m| {
                        if m.len() != len {
                            file.set_len(len)
                        } else {
                            Ok(())
                        }
                    })
                    .map(|()| (file, true))
            }
            Content::File { file, len, .. } => self.files.create().and_then(|c| {
                copy_sparse(&file, &c)?;
                c.set_len(len)?;
                Ok((Arc::new(c), false))
            }),
            Content::Bytes(b) if b.len() as u64 <= max_copy => self.files.create().and_then(|c| {
                c.write_all_at(&b.to_bytes(), 0)?;
                Ok((Arc::new(c), false))
            }),
            Content::Bytes(_) => return None,
        };
        Some(made)
    }

    /// Store the memory file `file` (its first `len` bytes) as the object `path`, with user
    /// metadata: no copy, and its holes take no memory. ENOSPC past the budget.
    pub fn put_file(
        &self,
        path: &str,
        file: Arc<std::fs::File>,
        len: u64,
        pairs: Vec<(String, String)>,
    ) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let cost = file.metadata().map_or(len, |m| (m.blocks() * 512).min(len));
        let content = Content::File { file, len, cost };
        let mut b = MetadataBuilder::file(len);
        b.last_modified(Timestamp::now());
        b.user_metadata(pairs);
        let mut map = self.lock();
        let k = self.key(path);
        let old = map.get(&k).map_or(0, |v| v.content.cost());
        self.fits(&map, content.cost(), old)?;
        map.insert(
            k,
            Value {
                content,
                meta: b.build(),
            },
        );
        Ok(())
    }
}

impl Content {
    /// Before a copy of the object is stored: a memory file held outside the map too (the
    /// daemon has it open, and may write it in place through passthrough) is copied, so
    /// that the copy gets pages of its own (holes kept); anything else stays shared.
    pub(super) fn unshare(&mut self, files: &MemFiles) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        if let Content::File { file, len, cost } = self {
            // (the map's and the caller's clone)
            if Arc::strong_count(file) > 2 {
                let own = files.create()?;
                copy_sparse(file, &own)?;
                own.set_len(*len)?;
                *cost = own
                    .metadata()
                    .map_or(*len, |m| (m.blocks() * 512).min(*len));
                *file = Arc::new(own);
            }
        }
        Ok(())
    }
}

/// A tmpfs mounted nowhere, of at most `size` bytes, mode 0700.
fn detached_tmpfs(size: u64) -> std::io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let last = std::io::Error::last_os_error;
    // SAFETY: fsopen with a valid NUL-terminated name; the descriptor is owned below.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(last());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    // (tmpfs takes a size in bytes, rounded up to pages; with no budget of ours, its own
    // default: half the RAM)
    let size = std::ffi::CString::new(size.to_string()).expect("digits");
    let mut opts = vec![(c"mode", c"0700")];
    if size.as_bytes() != u64::MAX.to_string().as_bytes() {
        opts.push((c"size", size.as_c_str()));
    }
    for (k, v) in opts {
        // SAFETY: valid NUL-terminated strings, a descriptor we hold.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(last());
        }
    }
    // SAFETY: as above, with no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(last());
    }
    // SAFETY: fsmount on the configured context we hold.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    if mnt < 0 {
        return Err(last());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as i32) })
}

/// Copy `from` into the empty `to`: its size, and the bytes of its data ranges only
/// (SEEK_DATA / SEEK_HOLE), so that a hole takes no memory in the copy either.
pub fn copy_sparse(from: &File, to: &File) -> std::io::Result<()> {
    let size = from.metadata()?.len();
    to.set_len(size)?;
    let fd = from.as_raw_fd();
    let mut pos: i64 = 0;
    let mut buf = vec![0u8; 1 << 20];
    while (pos as u64) < size {
        // SAFETY: lseek on a descriptor we hold.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole is left
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut off = data as u64;
        while off < hole as u64 {
            let n = buf.len().min((hole as u64 - off) as usize);
            from.read_exact_at(&mut buf[..n], off)?;
            to.write_all_at(&buf[..n], off)?;
            off += n as u64;
        }
        pos = hole;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_bounded_by_the_budget_when_the_tmpfs_is_made() {
        let files = MemFiles::new(1 << 20);
        let f = files.create().expect("a memory file");
        let big = vec![7u8; 2 << 20];
        let r = f.write_all_at(&big, 0);
        // (as root, as CI runs, the kernel makes the tmpfs)
        assert!(files.bounded() || std::env::var_os("CI").is_none());
        if files.bounded() {
            let e = r.expect_err("a write past the tmpfs's size");
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        } else {
            // a memfd: the daemon checks the budget itself (no passthrough then)
            r.expect("a memfd takes it");
        }
    }

    #[tokio::test]
    async fn a_copy_of_a_file_held_open_gets_pages_of_its_own() {
        let store = Arc::new(MemStore::default());
        let op = opendal::Operator::new(super::super::MemoryBuilder::new(store.clone())).unwrap();
        let f = Arc::new(store.files().create().unwrap());
        f.write_all_at(b"original", 0).unwrap();
        store.put_file("a", f.clone(), 8, vec![]).unwrap();
        op.copy("a", "b").await.unwrap();
        // the daemon writes the file it holds in place (passthrough)
        f.write_all_at(b"CHANGED!", 0).unwrap();
        assert_eq!(op.read("a").await.unwrap().to_vec(), b"CHANGED!");
        assert_eq!(op.read("b").await.unwrap().to_vec(), b"original");
        // held by the map alone: the copy shares it (no bytes copied)
        drop(f);
        op.copy("a", "c").await.unwrap();
        let (a, c) = (store.file_of("a").unwrap().0, store.file_of("c").unwrap().0);
        assert!(Arc::ptr_eq(&a, &c));
        drop((a, c));
        // opened while two objects share it: a private copy; else the object's own file
        let (mine, shared) = store.open_file("a", 0).unwrap().unwrap();
        assert!(!shared);
        mine.write_all_at(b"mine", 0).unwrap();
        assert_eq!(op.read("a").await.unwrap().to_vec(), b"CHANGED!");
        drop(mine);
        let (_, shared) = store.open_file("b", 0).unwrap().unwrap();
        assert!(shared, "b's file is b's alone");
        // small objects in bytes are copied, up to `max_copy`
        op.write("s", "small").await.unwrap();
        assert!(store.open_file("s", 4).is_none());
        let (f, shared) = store.open_file("s", 5).unwrap().unwrap();
        assert!(!shared);
        let mut got = [0u8; 5];
        f.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(&got, b"small");
        // a file cut short in place reads as zeros past its end until stored again
        let (b, _) = store.file_of("b").unwrap();
        b.set_len(4).unwrap();
        assert_eq!(op.read("b").await.unwrap().to_vec(), b"orig\0\0\0\0");
    }

    #[test]
    fn a_sparse_copy_keeps_data_and_holes() {
        let files = MemFiles::new(u64::MAX);
        let (a, b) = (files.create().unwrap(), files.create().unwrap());
        a.set_len(8 << 20).unwrap();
        a.write_all_at(b"start", 0).unwrap();
        a.write_all_at(b"end", (8 << 20) - 3).unwrap();
        copy_sparse(&a, &b).unwrap();
        let mut got = vec![0u8; 5];
        b.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(&got, b"start");
        let mut got = vec![0u8; 3];
        b.read_exact_at(&mut got, (8 << 20) - 3).unwrap();
        assert_eq!(&got, b"end");
        use std::os::unix::fs::MetadataExt;
        let m = b.metadata().unwrap();
        assert_eq!(m.len(), 8 << 20);
        assert!(
            m.blocks() * 512 < 1 << 20,
            "holes stayed holes: {}",
            m.blocks()
        );
    }
}

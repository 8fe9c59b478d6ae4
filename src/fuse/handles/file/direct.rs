//! Memory files the kernel reads and writes itself (FUSE passthrough onto the staged memory
//! file): how the daemon learns of writes it never sees (the file's length and times,
//! compared with those it knew), and what it checks at the last close of a writable handle.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{OpenFile, MAP_MIN};

/// What the daemon last knew of the file: length, mtime and ctime (seconds, nanoseconds).
type Stamp = (u64, i64, i64, i64, i64);

fn stamp(m: &std::fs::Metadata) -> Stamp {
    (
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// The staged file of a memory mount registered with the kernel for passthrough.
#[derive(Debug)]
pub(super) struct Direct {
    file: Arc<File>,
    stamp: Mutex<Stamp>,
    /// The kernel wrote it since the last upload.
    dirty: AtomicBool,
}

impl Direct {
    pub(super) fn new(file: Arc<File>) -> Direct {
        let now = file.metadata().map(|m| stamp(&m)).unwrap_or_default();
        Direct {
            file,
            stamp: Mutex::new(now),
            dirty: AtomicBool::new(false),
        }
    }

    pub(super) fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub(super) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }
}

impl OpenFile {
    /// Take in what the kernel wrote itself since the daemon last looked: a changed length
    /// or time of the memory file makes it dirty, with its size and its mtime as the file's
    /// (the times set by the daemon are dropped: a write came after them). The stamp is
    /// taken before anything is read of the file, so a write racing with an upload shows
    /// as a change next time.
    pub fn absorb(&self) {
        let Some(d) = &self.direct else { return };
        let Ok(m) = d.file.metadata() else { return };
        let now = stamp(&m);
        let mut known = d.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if *known == now {
            return;
        }
        *known = now;
        drop(known);
        d.dirty.store(true, Ordering::Release);
        self.size.store(m.len(), Ordering::Release);
        *self.changed.lock().unwrap_or_else(|e| e.into_inner()) = Some(
            m.modified()
                .unwrap_or_else(|_| std::time::SystemTime::now()),
        );
        self.set_posix(|p| {
            p.mtime = None;
            p.ctime = None;
        });
    }

    /// The daemon changed the file itself (a truncate, a hole, a write it served): what
    /// the file is now is known, so that a later write of the kernel shows as a change
    /// even when it restores the length and lands within the same clock tick. (The change
    /// is the caller's to mark dirty.)
    pub(super) fn restamp(&self) {
        let Some(d) = &self.direct else { return };
        let Ok(m) = d.file.metadata() else { return };
        *d.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp(&m);
        self.size.store(m.len(), Ordering::Release);
    }

    /// Did the kernel write the file since its last upload? (Cleared: the caller uploads.)
    pub(super) fn direct_dirty(&self) -> bool {
        self.absorb();
        self.direct
            .as_ref()
            .is_some_and(|d| d.dirty.swap(false, Ordering::AcqRel))
    }

    /// Is the kernel reading and writing this file itself (a memory file)?
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The last close of a writable handle of a small memory file: a shared mapping may
    /// have changed pages without moving the file's times (a page written again after its
    /// first fault), and the store holds a copy of small files, not the file: compare them,
    /// and make the file dirty when they differ. (Called with the file's path held, so that
    /// `path` is the file's until its upload.) (A large file is the store's own: its
    /// pages are the object's.)
    pub async fn verify_direct(&self, path: &str) {
        let Some(d) = &self.direct else { return };
        // no upload may change the store between reading the file and the object (an
        // older copy of the file against a newer object would count as a change)
        let _body = self.body.lock().await;
        self.absorb();
        let len = self.size.load(Ordering::Acquire);
        if d.is_dirty() || len >= MAP_MIN {
            return;
        }
        let mut mine = vec![0u8; len as usize];
        if d.file.read_exact_at(&mut mine, 0).is_err() {
            return;
        }
        // (an object that is not there, or not readable, was moved or removed meanwhile, by
        // a rename or unlink that took this file's data first: nothing to store, and
        // storing it at this path would bring it back)
        let differs = match self.mount.read_all(path).await {
            Ok(theirs) => theirs.as_ref() != mine.as_slice(),
            Err(_) => false,
        };
        tracing::trace!(path, differs, len, "verify_direct");
        if differs {
            d.dirty.store(true, Ordering::Release);
            self.touched();
        }
    }
}

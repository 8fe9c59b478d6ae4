//! Object mounts: uploads of open files against renames and unlinks of their paths. An
//! upload resolves its file's path and writes the object as one step, and a rename or an
//! unlink changes the store and the inode table as one step: neither sees the other half
//! done (a late RELEASE that resolved the old name and stored after the move would bring
//! a renamed or unlinked file back).
//!
//! Two pieces do it. Each open file has a path lock ([`OpenFile::hold_path`]): an upload
//! holds it from resolving the path until the store holds the bytes; a rename or unlink
//! takes those of the open files at and below its paths (in inode order: no two of them
//! wait on each other) and keeps them until the inode table has changed. And the paths a
//! rename or unlink is changing are marked first: a file opened after the open files were
//! collected (not held by the rename) sees the mark and waits for it to clear before it
//! resolves its path.

use std::sync::Mutex;

use tokio::sync::{Notify, OwnedMutexGuard};

use super::*;

/// The paths renames and unlinks are changing now (a handful at most: one entry per
/// path of each one in flight).
#[derive(Debug, Default)]
pub(super) struct Moving {
    paths: Mutex<Vec<(usize, String)>>,
    cleared: Notify,
}

impl Moving {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(usize, String)>> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Is `p` of mount `m` at or below a path being changed?
    fn covers(&self, m: usize, p: &str) -> bool {
        self.lock().iter().any(|(mm, q)| *mm == m && within(p, q))
    }
}

/// Is `p` at or below `q`?
pub(super) fn within(p: &str, q: &str) -> bool {
    q.is_empty() || p == q || (p.starts_with(q) && p.as_bytes().get(q.len()) == Some(&b'/'))
}

/// The mark of one rename or unlink; cleared (and the uploads waiting on it woken) when
/// dropped, however the change ends.
pub(super) struct Mark<'a> {
    moving: &'a Moving,
    entries: Vec<(usize, String)>,
}

impl Drop for Mark<'_> {
    fn drop(&mut self) {
        let mut all = self.moving.lock();
        for e in &self.entries {
            if let Some(i) = all.iter().position(|x| x == e) {
                all.swap_remove(i);
            }
        }
        drop(all);
        self.moving.cleared.notify_waiters();
    }
}

/// The open files at and below a rename's or unlink's paths, their uploads held off.
pub(super) struct Held {
    pub(super) files: Vec<(u64, Arc<OpenFile>)>,
    _guards: Vec<OwnedMutexGuard<()>>,
}

impl Fs {
    /// Mark `paths` of mount `m` as changing, then hold every upload of an open file at or
    /// below them until both are dropped (in either order: an upload woken by the mark waits
    /// on its file's path lock if the rename still holds it).
    pub(super) async fn hold_paths(&self, m: usize, paths: &[&str]) -> (Held, Mark<'_>) {
        let entries: Vec<(usize, String)> = paths.iter().map(|p| (m, p.to_string())).collect();
        self.moving.lock().extend(entries.iter().cloned());
        let mark = Mark {
            moving: &self.moving,
            entries,
        };
        let mut files: Vec<(u64, Arc<OpenFile>)> = paths
            .iter()
            .flat_map(|p| self.inodes.subtree(m, p))
            .filter_map(|ino| self.handles.open_file(ino).map(|f| (ino, f)))
            .collect();
        files.sort_by_key(|(ino, _)| *ino);
        files.dedup_by_key(|(ino, _)| *ino);
        let mut guards = Vec::with_capacity(files.len());
        for (_, f) in &files {
            guards.push(f.hold_path().await);
        }
        let held = Held {
            files,
            _guards: guards,
        };
        (held, mark)
    }

    /// The path lock of `file` and the path it is at now (None once unlinked), once no
    /// rename or unlink is changing that path.
    pub(super) async fn settled_path(
        &self,
        ino: u64,
        file: &OpenFile,
    ) -> (OwnedMutexGuard<()>, Option<(usize, String)>) {
        loop {
            // (asked for before the check: a mark cleared between the two still wakes it)
            let cleared = self.moving.cleared.notified();
            tokio::pin!(cleared);
            cleared.as_mut().enable();
            let held = file.hold_path().await;
            let mp = self.open_path(ino);
            match &mp {
                Some((m, p)) if self.moving.covers(*m, p) => {}
                _ => return (held, mp),
            }
            drop(held);
            cleared.await;
        }
    }
}

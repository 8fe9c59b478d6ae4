//! The daemon's one table of directory attributes on object backends, bounded: what was set
//! on a directory that has no marker to carry it (a prefix), the times its entries' changes
//! gave it (create, unlink and rename change a directory's mtime and ctime, which the daemon
//! does not write to the bucket on every change), and the directories made here (so that they
//! show on servers that keep no markers). Everything else lives with the objects.
//!
//! When full, the oldest entries go first: a directory then shows what its marker carries.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::fuse::inode::Target;

/// Entries held at most.
const MAX: usize = 100_000;

/// What the daemon knows of one directory beyond its marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirAttr {
    /// Made here (it exists even where the server keeps no marker).
    pub made: bool,
    /// Permission bits set on it.
    pub perm: Option<u16>,
    /// Owner set on it.
    pub uid: Option<u32>,
    /// Group set on it.
    pub gid: Option<u32>,
    /// Last modification (set, or a change of its entries).
    pub mtime: Option<SystemTime>,
    /// Last status change.
    pub ctime: Option<SystemTime>,
    /// Last access.
    pub atime: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Table {
    map: BTreeMap<Target, (DirAttr, u64)>,
    /// Insertion order, for eviction.
    order: BTreeMap<u64, Target>,
    next: u64,
}

impl Table {
    fn remove(&mut self, t: &Target) -> Option<DirAttr> {
        let (a, seq) = self.map.remove(t)?;
        self.order.remove(&seq);
        Some(a)
    }

    fn insert(&mut self, t: Target, a: DirAttr) {
        self.remove(&t);
        while self.map.len() >= MAX {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&old);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert(seq, t.clone());
        self.map.insert(t, (a, seq));
    }
}

/// The table; every call takes its lock briefly, never across an `.await`.
#[derive(Debug, Default)]
pub struct DirAttrs {
    t: Mutex<Table>,
}

impl DirAttrs {
    /// Directories held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Is nothing held?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.t.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of `t`.
    pub fn get(&self, t: &Target) -> Option<DirAttr> {
        self.lock().map.get(t).map(|(a, _)| a.clone())
    }

    /// Change what is known of `t`.
    pub fn update(&self, t: &Target, f: impl FnOnce(&mut DirAttr)) {
        let mut tab = self.lock();
        let mut a = tab.remove(t).unwrap_or_default();
        f(&mut a);
        tab.insert(t.clone(), a);
    }

    /// An entry of `t` was made, removed or renamed: its mtime and ctime are now.
    pub fn touch(&self, t: &Target) {
        let now = SystemTime::now();
        self.update(t, |a| {
            a.mtime = Some(now);
            a.ctime = Some(now);
        });
    }

    /// Was `t` made here?
    pub fn is_made(&self, t: &Target) -> bool {
        self.lock().map.get(t).is_some_and(|(a, _)| a.made)
    }

    /// Is any directory below `path` made here? (rmdir's emptiness on servers without markers)
    pub fn has_made_below(&self, mount: usize, path: &str) -> bool {
        self.lock()
            .map
            .range(Target::below(mount, path))
            .any(|(_, (a, _))| a.made)
    }

    /// The directories made here directly inside `path`.
    pub fn made_children(&self, mount: usize, path: &str) -> Vec<Target> {
        self.lock()
            .map
            .range(Target::below(mount, path))
            .filter(|(k, (a, _))| {
                a.made && matches!(k, Target::Path(_, p) if crate::storage::path::parent(p) == path)
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// `path` and everything below it are gone.
    pub fn remove_tree(&self, mount: usize, path: &str) {
        let mut tab = self.lock();
        for k in Target::subtree(&tab.map, mount, path) {
            tab.remove(&k);
        }
    }

    /// `from` (and everything below it) became `to`.
    pub fn rename_tree(&self, mount: usize, from: &str, to: &str) {
        let mut tab = self.lock();
        for old in Target::subtree(&tab.map, mount, from) {
            let Target::Path(m, p) = &old else { continue };
            let new = Target::Path(*m, format!("{to}{}", &p[from.len()..]));
            if let Some(a) = tab.remove(&old) {
                tab.insert(new, a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Target {
        Target::Path(0, s.into())
    }

    #[test]
    fn subtrees_move_and_go() {
        let d = DirAttrs::default();
        d.update(&p("a"), |a| a.made = true);
        d.update(&p("a/b"), |a| a.made = true);
        d.update(&p("a/b/c"), |a| a.perm = Some(0o700));
        d.update(&p("ab"), |a| a.made = true);
        assert_eq!(d.made_children(0, "a"), vec![p("a/b")]);
        assert!(d.has_made_below(0, "a"));
        assert!(!d.has_made_below(0, "a/b"));
        d.rename_tree(0, "a", "z");
        assert!(d.is_made(&p("z/b")));
        assert_eq!(d.get(&p("z/b/c")).unwrap().perm, Some(0o700));
        assert!(d.get(&p("a/b")).is_none());
        assert!(d.is_made(&p("ab")));
        d.remove_tree(0, "z");
        assert!(d.get(&p("z/b/c")).is_none());
        assert!(d.is_made(&p("ab")));
    }

    #[test]
    fn the_table_is_bounded() {
        let d = DirAttrs::default();
        for i in 0..MAX + 10 {
            d.touch(&p(&format!("d{i}")));
        }
        assert_eq!(d.lock().map.len(), MAX);
        assert!(d.get(&p("d0")).is_none());
        assert!(d.get(&p(&format!("d{}", MAX + 9))).is_some());
    }
}

//! The inode table: inode number ↔ (mount, path), with the kernel's lookup counts and `forget`.
//!
//! An inode lives while the kernel holds a lookup on it (or a file on it is open); `forget`
//! drops it, so memory stays bounded while `find` walks a large tree. Its number is derived
//! from its path (local mounts: from its host file), so it is the same when looked up again.
//! Renames move paths; unlink detaches a path. All names of one host file are one inode.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

/// The inode number of the filesystem root (the directory listing the mounts).
pub const ROOT: u64 = 1;

/// What an inode stands for. Ordered by mount, then path, so that a subtree is one range of
/// an ordered map ([`Target::subtree`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The root directory that lists the mounts.
    Root,
    /// A path on a mount (by index in the mount list); `""` is the mount's root.
    Path(usize, String),
}

impl Target {
    /// Is this `path` on `mount`, or below it?
    pub fn is_within(&self, mount: usize, path: &str) -> bool {
        match self {
            Target::Path(m, p) => {
                *m == mount
                    && (path.is_empty()
                        || p == path
                        || (p.starts_with(path) && p.as_bytes().get(path.len()) == Some(&b'/')))
            }
            Target::Root => false,
        }
    }

    /// The bounds of every target strictly below `path` on `mount` (all of the mount for
    /// `""`): `p/` up to `p0` (`'0'` follows `'/'`), so that a subtree is one range.
    pub fn below(mount: usize, path: &str) -> (Bound<Target>, Bound<Target>) {
        if path.is_empty() {
            return (
                Bound::Excluded(Target::Path(mount, String::new())),
                Bound::Excluded(Target::Path(mount + 1, String::new())),
            );
        }
        (
            Bound::Included(Target::Path(mount, format!("{path}/"))),
            Bound::Excluded(Target::Path(mount, format!("{path}0"))),
        )
    }

    /// The keys of `map` at `path` and below it: O(log n + what the subtree holds).
    pub fn subtree<V>(map: &BTreeMap<Target, V>, mount: usize, path: &str) -> Vec<Target> {
        let me = Target::Path(mount, path.to_string());
        let mut out: Vec<Target> = map.contains_key(&me).then_some(me).into_iter().collect();
        out.extend(map.range(Self::below(mount, path)).map(|(k, _)| k.clone()));
        out
    }

    /// The mount and path of a target below the mount root (None for the root and mount roots).
    pub fn parent(&self) -> Option<Target> {
        match self {
            Target::Path(m, p) if !p.is_empty() => Some(Target::Path(
                *m,
                crate::storage::path::parent(p).to_string(),
            )),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Slot {
    /// The name operations use; None once every name was unlinked (the inode stays until
    /// forgotten).
    target: Option<Target>,
    /// Other names of the same host file (hard links on local mounts).
    others: Vec<Target>,
    /// Local mounts: the host file's (mount, st_dev, st_ino), by which its names meet.
    key: Option<HostKey>,
    lookups: u64,
    /// Open handles; an inode with open handles is not dropped by `forget`.
    opens: u64,
}

/// A host file of a local mount: (mount index, st_dev, st_ino, birth time in ns or 0). The
/// birth time tells a new file from an old one whose inode number the host reused.
pub type HostKey = (usize, u64, u64, u64);

#[derive(Debug, Default)]
struct Table {
    slots: HashMap<u64, Slot>,
    by_target: BTreeMap<Target, u64>,
    by_key: HashMap<HostKey, u64>,
}

/// FNV-1a, 64 bits: a hash that is the same in every build and run, so that an inode
/// number outlives the daemon too.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff; // a separator, so that ("ab", "c") and ("a", "bc") differ
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The inode number a target is first offered: on a local mount its host file's st_ino (so
/// that `stat` shows the host's number), elsewhere one derived from its mount and path, in
/// 2..2^63.
fn preferred(target: &Target, key: Option<HostKey>) -> u64 {
    let h = match (key, target) {
        (Some((_, _, ino, _)), _) => ino,
        (None, Target::Path(m, p)) => fnv(&[&(*m as u64).to_le_bytes(), p.as_bytes()]),
        (None, Target::Root) => ROOT,
    };
    (h & (u64::MAX >> 1)).max(ROOT + 1)
}

/// The inode table; every call takes the lock briefly and never across an `.await`.
///
/// Inode numbers are stable: a target's number is derived from its path (on local mounts, it
/// is its host file's st_ino), so that it comes back the same after the kernel forgot it,
/// with no table of every path ever seen. A number in use by another inode (a
/// collision, or the old inode of a path that was unlinked while still open) moves the new
/// one to the next free number.
#[derive(Debug)]
pub struct Inodes {
    t: Mutex<Table>,
}

impl Default for Inodes {
    fn default() -> Self {
        Self::new()
    }
}

impl Inodes {
    /// A table holding only the root.
    pub fn new() -> Self {
        Self::rooted(Target::Root)
    }

    /// A table whose root inode stands for `root` (a mount's root when one mount is
    /// served at the mountpoint).
    pub fn rooted(root: Target) -> Self {
        let mut t = Table::default();
        t.slots.insert(
            ROOT,
            Slot {
                target: Some(root.clone()),
                others: Vec::new(),
                key: None,
                lookups: 1,
                opens: 0,
            },
        );
        t.by_target.insert(root, ROOT);
        Inodes { t: Mutex::new(t) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.t.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What `ino` stands for, if it is known and not unlinked.
    pub fn target(&self, ino: u64) -> Option<Target> {
        self.lock().slots.get(&ino).and_then(|s| s.target.clone())
    }

    /// The mount of an inode (None for the root and unknown or unlinked inodes), without
    /// copying its path: asked once per kernel request.
    pub fn mount_of(&self, ino: u64) -> Option<usize> {
        match self.lock().slots.get(&ino).and_then(|s| s.target.as_ref()) {
            Some(Target::Path(m, _)) => Some(*m),
            _ => None,
        }
    }

    /// Is the inode known at all (unlinked ones included)?
    pub fn known(&self, ino: u64) -> bool {
        self.lock().slots.contains_key(&ino)
    }

    /// The inode number `target` (of the host file `key`, on local mounts) has, or would
    /// get if it were looked up now (readdir shows it without counting a lookup).
    pub fn number(&self, target: &Target, key: Option<HostKey>) -> u64 {
        let t = self.lock();
        if let Some(&ino) = t.by_target.get(target) {
            return ino;
        }
        if let Some(&ino) = key.as_ref().and_then(|k| t.by_key.get(k)) {
            return ino;
        }
        Self::free(&t, preferred(target, key))
    }

    /// The first number from `from` on that no inode uses.
    fn free(t: &Table, from: u64) -> u64 {
        let mut ino = from;
        while t.slots.contains_key(&ino) {
            ino = (ino + 1) & (u64::MAX >> 1);
            if ino <= ROOT {
                ino = ROOT + 1;
            }
        }
        ino
    }

    /// The inode of `target`, created if needed, with one more kernel lookup counted.
    /// Called before the reply is sent.
    pub fn lookup(&self, target: Target) -> u64 {
        self.lookup_key(target, None)
    }

    /// As [`Inodes::lookup`], for a name of the host file `key` (local mounts): every name of
    /// one host file is one inode.
    pub fn lookup_host(&self, target: Target, key: HostKey) -> u64 {
        self.lookup_key(target, Some(key))
    }

    fn lookup_key(&self, target: Target, key: Option<HostKey>) -> u64 {
        let mut t = self.lock();
        if let Some(&ino) = t.by_target.get(&target) {
            let same = match (key, t.slots.get(&ino).and_then(|s| s.key)) {
                (Some(k), Some(had)) => k == had,
                _ => true,
            };
            if same {
                if let Some(s) = t.slots.get_mut(&ino) {
                    s.lookups += 1;
                }
                return ino;
            }
            // the name now stands for another host file (changed behind the daemon)
            Self::detach(&mut t, &target);
        }
        if let Some(&ino) = key.as_ref().and_then(|k| t.by_key.get(k)) {
            // another name of a host file known already: a hard link
            if let Some(s) = t.slots.get_mut(&ino) {
                s.lookups += 1;
                match s.target {
                    None => s.target = Some(target.clone()),
                    Some(_) => s.others.push(target.clone()),
                }
            }
            t.by_target.insert(target, ino);
            return ino;
        }
        let ino = Self::free(&t, preferred(&target, key));
        t.slots.insert(
            ino,
            Slot {
                target: Some(target.clone()),
                others: Vec::new(),
                key,
                lookups: 1,
                opens: 0,
            },
        );
        t.by_target.insert(target, ino);
        if let Some(k) = key {
            t.by_key.insert(k, ino);
        }
        ino
    }

    /// The names of `ino` other than `but`: empty for a file with one name (the common case,
    /// no allocation).
    pub fn other_names(&self, ino: u64, but: &Target) -> Vec<Target> {
        let t = self.lock();
        let Some(s) = t.slots.get(&ino) else {
            return Vec::new();
        };
        if s.others.is_empty() {
            return Vec::new();
        }
        s.target
            .iter()
            .chain(s.others.iter())
            .filter(|n| *n != but)
            .cloned()
            .collect()
    }

    /// The inode of `target` if it has one, without counting a lookup (readdir).
    pub fn peek(&self, target: &Target) -> Option<u64> {
        self.lock().by_target.get(target).copied()
    }

    /// The kernel dropped `n` lookups.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut t = self.lock();
        let drop_it = match t.slots.get_mut(&ino) {
            Some(s) => {
                s.lookups = s.lookups.saturating_sub(n);
                s.lookups == 0 && s.opens == 0
            }
            None => false,
        };
        if drop_it {
            Self::remove(&mut t, ino);
        }
    }

    fn remove(t: &mut Table, ino: u64) {
        if let Some(s) = t.slots.remove(&ino) {
            for target in s.target.into_iter().chain(s.others) {
                if t.by_target.get(&target) == Some(&ino) {
                    t.by_target.remove(&target);
                }
            }
            if let Some(k) = s.key {
                if t.by_key.get(&k) == Some(&ino) {
                    t.by_key.remove(&k);
                }
            }
        }
    }

    /// `target` no longer names its inode: another of its names (if any) takes over.
    fn detach(t: &mut Table, target: &Target) -> Option<u64> {
        let ino = t.by_target.remove(target)?;
        let mut orphan_key = None;
        if let Some(s) = t.slots.get_mut(&ino) {
            if s.target.as_ref() == Some(target) {
                s.target = s.others.pop();
            } else {
                s.others.retain(|o| o != target);
            }
            if s.target.is_none() {
                // no name left that the daemon knows: the host may reuse the number for a
                // new file, which must not meet this inode
                orphan_key = s.key;
            }
        }
        if let Some(k) = orphan_key {
            if t.by_key.get(&k) == Some(&ino) {
                t.by_key.remove(&k);
            }
        }
        Some(ino)
    }

    /// A handle was opened on `ino`.
    pub fn open(&self, ino: u64) {
        if let Some(s) = self.lock().slots.get_mut(&ino) {
            s.opens += 1;
        }
    }

    /// A handle on `ino` was released.
    pub fn close(&self, ino: u64) {
        let mut t = self.lock();
        let drop_it = match t.slots.get_mut(&ino) {
            Some(s) => {
                s.opens = s.opens.saturating_sub(1);
                s.opens == 0 && s.lookups == 0 && ino != ROOT
            }
            None => false,
        };
        if drop_it {
            Self::remove(&mut t, ino);
        }
    }

    /// The path was removed: its inode (if any) keeps living for open handles, and for its
    /// other names, but no longer stands for the path.
    pub fn unlink(&self, target: &Target) {
        Self::detach(&mut self.lock(), target);
    }

    /// `from` became `to` (with everything below it). A file that `to` replaced is unlinked.
    pub fn rename(&self, mount: usize, from: &str, to: &str) {
        let mut t = self.lock();
        Self::detach(&mut t, &Target::Path(mount, to.to_string()));
        for old in Target::subtree(&t.by_target, mount, from) {
            let Some(ino) = t.by_target.remove(&old) else {
                continue;
            };
            let Target::Path(m, p) = &old else { continue };
            let new = Target::Path(*m, format!("{to}{}", &p[from.len()..]));
            if let Some(s) = t.slots.get_mut(&ino) {
                if s.target.as_ref() == Some(&old) {
                    s.target = Some(new.clone());
                } else if let Some(o) = s.others.iter_mut().find(|o| **o == old) {
                    *o = new.clone();
                }
            }
            t.by_target.insert(new, ino);
        }
    }

    /// A rename(2) of `from` to `to` with `flags` happened: with RENAME_EXCHANGE the two
    /// subtrees swap, otherwise as [`Inodes::rename`].
    pub fn rename_entries(&self, mount: usize, from: &str, to: &str, flags: u32) {
        if flags & libc::RENAME_EXCHANGE != 0 {
            // (NUL never occurs in a real path)
            self.rename(mount, to, "\0swap");
            self.rename(mount, from, to);
            self.rename(mount, "\0swap", from);
        } else {
            self.rename(mount, from, to);
        }
    }

    /// The known inodes directly inside the directory `path` of `mount` (found in the
    /// subtree's range: costs what the table holds below `path`, not the whole table).
    pub fn children(&self, mount: usize, path: &str) -> Vec<(Target, u64)> {
        let t = self.lock();
        t.by_target
            .range(Target::below(mount, path))
            .filter(
                |(k, _)| matches!(k, Target::Path(_, p) if crate::storage::path::parent(p) == path),
            )
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The known inodes at `path` on `mount` and below it.
    pub fn subtree(&self, mount: usize, path: &str) -> Vec<u64> {
        let t = self.lock();
        Target::subtree(&t.by_target, mount, path)
            .iter()
            .filter_map(|k| t.by_target.get(k).copied())
            .collect()
    }

    /// How many inodes are held (for tests and stats).
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// True when only the root is left.
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Target {
        Target::Path(0, s.into())
    }

    #[test]
    fn lookups_and_forget_bound_the_table() {
        let t = Inodes::new();
        let a = t.lookup(p("a"));
        assert_eq!(t.lookup(p("a")), a);
        t.forget(a, 1);
        assert_eq!(t.target(a), Some(p("a")));
        t.forget(a, 1);
        assert_eq!(t.target(a), None);
        for i in 0..1000 {
            let ino = t.lookup(p(&format!("f{i}")));
            t.forget(ino, 1);
        }
        assert!(t.is_empty());
    }

    #[test]
    fn open_handles_keep_an_inode() {
        let t = Inodes::new();
        let a = t.lookup(p("a"));
        t.open(a);
        t.forget(a, 1);
        assert!(t.known(a));
        t.close(a);
        assert!(!t.known(a));
    }

    #[test]
    fn rename_moves_descendants_and_unlinks_the_replaced() {
        let t = Inodes::new();
        let d = t.lookup(p("d"));
        let f = t.lookup(p("d/f"));
        let other = t.lookup(p("dx"));
        let victim = t.lookup(p("e"));
        t.rename(0, "d", "e");
        assert_eq!(t.target(d), Some(p("e")));
        assert_eq!(t.target(f), Some(p("e/f")));
        assert_eq!(t.target(other), Some(p("dx")));
        assert_eq!(t.target(victim), None);
        assert_eq!(t.peek(&p("e/f")), Some(f));
    }

    #[test]
    fn is_within_matches_the_path_and_below_only() {
        assert!(p("d").is_within(0, "d"));
        assert!(p("d/x").is_within(0, "d"));
        assert!(!p("dx").is_within(0, "d"));
        assert!(!p("d").is_within(1, "d"));
        assert!(p("anything").is_within(0, ""));
        assert!(!Target::Root.is_within(0, ""));
    }

    #[test]
    fn numbers_come_back_after_a_forget_and_collisions_move_on() {
        let t = Inodes::new();
        let a = t.lookup(p("dir/a"));
        assert_eq!(t.number(&p("dir/a"), None), a);
        t.forget(a, 1);
        assert!(!t.known(a));
        assert_eq!(t.number(&p("dir/a"), None), a);
        assert_eq!(t.lookup(p("dir/a")), a);
        assert!(a > ROOT && a < 1 << 63);
        // the old inode of an unlinked path still open: the new file there moves on
        t.open(a);
        t.unlink(&p("dir/a"));
        let b = t.lookup(p("dir/a"));
        assert_ne!(b, a);
        assert!(t.known(a) && t.known(b));
    }

    #[test]
    fn the_names_of_one_host_file_are_one_inode() {
        let t = Inodes::new();
        let a = t.lookup_host(p("a"), (0, 7, 42, 1));
        assert_eq!(a, 42, "the host's number");
        let b = t.lookup_host(p("b"), (0, 7, 42, 1));
        assert_eq!(a, b);
        // the same number on another mount's host file: taken, so the next free one
        assert_eq!(t.lookup_host(p("z"), (1, 9, 42, 1)), 43);
        assert_ne!(t.lookup_host(p("c"), (0, 7, 44, 1)), a);
        t.unlink(&p("a"));
        assert_eq!(t.target(a), Some(p("b")));
        t.rename(0, "b", "d");
        assert_eq!(t.target(a), Some(p("d")));
        // a name that now stands for another host file gets that file's inode
        let e = t.lookup_host(p("d"), (0, 7, 45, 1));
        assert_ne!(e, a);
        assert_eq!(t.target(a), None);
        t.forget(a, 2);
        assert!(!t.known(a));
        assert_eq!(
            t.lookup_host(p("x"), (0, 7, 42, 1)),
            a,
            "the same host file, the same number"
        );
    }

    #[test]
    fn unlink_gives_the_path_a_new_inode() {
        let t = Inodes::new();
        let a = t.lookup(p("a"));
        t.unlink(&p("a"));
        assert_eq!(t.target(a), None);
        assert_ne!(t.lookup(p("a")), a);
    }
}

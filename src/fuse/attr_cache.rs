//! The attribute cache: what a stat or a listing learned of a path, for a TTL per mount,
//! including negative entries (the path does not exist) and, within a byte budget, the first
//! bytes of files whose lookup brought them (for their next open); and the names of whole listings, so
//! that a lookup of a name a fresh listing lacks needs no request. Our own mutations
//! invalidate attributes and keep listings up to date (or drop them).
//!
//! Both are ordered maps, so that forgetting a subtree costs what the subtree holds; a full
//! map sweeps its expired entries once (amortised over the puts that filled it).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fuse::inode::Target;

/// Entries beyond this many are dropped (oldest expiry first is not tracked; the whole
/// expired set is swept, then, if still full, everything).
const MAX_ENTRIES: usize = 200_000;

/// The first bytes of files held beside their attributes, at most this many bytes in all.
pub const HEAD_BUDGET: usize = 16 << 20;

/// What the cache knows of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached<V> {
    /// Fresh: `Some(attributes)` or `None` (a cached absence).
    Fresh(Option<V>),
    /// Expired (and now forgotten): what was known, a hint of what to ask, never an answer.
    Stale(Option<V>),
    /// Nothing.
    Unknown,
}

#[derive(Debug)]
struct Slot<V> {
    v: Option<V>,
    exp: Instant,
    /// A file's first bytes, fetched with its attributes by the same request.
    head: Option<bytes::Bytes>,
}

#[derive(Debug)]
struct Map<V> {
    slots: BTreeMap<Target, Slot<V>>,
    head_bytes: usize,
}

impl<V> Map<V> {
    fn remove(&mut self, t: &Target) -> Option<Slot<V>> {
        let s = self.slots.remove(t)?;
        if let Some(h) = &s.head {
            self.head_bytes -= h.len();
        }
        Some(s)
    }
}

/// A TTL cache of `Some(attributes)` or `None` (negative) per path, and of the first bytes
/// of some files (consumed by their next open), within [`HEAD_BUDGET`].
#[derive(Debug)]
pub struct AttrCache<V> {
    /// Positive and negative TTL, per mount index.
    ttls: Vec<(Duration, Duration)>,
    map: Mutex<Map<V>>,
}

impl<V: Clone> AttrCache<V> {
    /// A cache with the same positive and negative TTLs on every mount (zero disables either).
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        Self::per_mount(vec![(ttl, negative_ttl)])
    }

    /// A cache with (positive, negative) TTLs per mount index (none kept beyond them).
    pub fn per_mount(ttls: Vec<(Duration, Duration)>) -> Self {
        AttrCache {
            ttls,
            map: Mutex::new(Map {
                slots: BTreeMap::new(),
                head_bytes: 0,
            }),
        }
    }

    fn ttls_of(&self, t: &Target) -> (Duration, Duration) {
        match t {
            Target::Path(m, _) => self.ttls.get(*m).copied().unwrap_or_default(),
            Target::Root => Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<V>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries held (expired ones included, until they are met or evicted).
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Is nothing held?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of file heads held.
    pub fn head_bytes(&self) -> usize {
        self.lock().head_bytes
    }

    /// `Some(Some(v))` cached attributes, `Some(None)` a cached absence, `None` unknown.
    pub fn get(&self, t: &Target) -> Option<Option<V>> {
        match self.lookup(t) {
            Cached::Fresh(v) => Some(v),
            _ => None,
        }
    }

    /// What is known of `t`, an expired entry included (which is forgotten).
    pub fn lookup(&self, t: &Target) -> Cached<V> {
        let mut m = self.lock();
        match m.slots.get(t) {
            Some(s) if s.exp > Instant::now() => Cached::Fresh(s.v.clone()),
            Some(_) => Cached::Stale(m.remove(t).and_then(|s| s.v)),
            None => Cached::Unknown,
        }
    }

    /// Remember what a stat found.
    pub fn put(&self, t: Target, v: Option<V>) {
        self.put_with_head(t, v, None)
    }

    /// Remember what a stat found, with the file's first bytes that its request brought
    /// (kept while the attributes are fresh and the budget allows; taken by the next open).
    pub fn put_with_head(&self, t: Target, v: Option<V>, head: Option<bytes::Bytes>) {
        let (pos, neg) = self.ttls_of(&t);
        let ttl = if v.is_some() { pos } else { neg };
        let mut m = self.lock();
        m.remove(&t);
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        if m.slots.len() >= MAX_ENTRIES {
            let expired: Vec<Target> = m
                .slots
                .iter()
                .filter(|(_, s)| s.exp <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in expired {
                m.remove(&k);
            }
            if m.slots.len() >= MAX_ENTRIES {
                m.slots.clear();
                m.head_bytes = 0;
            }
        }
        let head = head.filter(|h| m.head_bytes + h.len() <= HEAD_BUDGET);
        if let Some(h) = &head {
            m.head_bytes += h.len();
        }
        m.slots.insert(
            t,
            Slot {
                v,
                exp: now + ttl,
                head,
            },
        );
    }

    /// The first bytes of `t` kept with its fresh attributes, given once: the open that
    /// takes them serves its first reads from them.
    pub fn take_head(&self, t: &Target) -> Option<bytes::Bytes> {
        let mut m = self.lock();
        let s = m.slots.get_mut(t)?;
        if s.exp <= Instant::now() {
            return None;
        }
        let h = s.head.take()?;
        m.head_bytes -= h.len();
        Some(h)
    }

    /// Change cached attributes in place (nothing when none are cached), keeping their
    /// expiry; the file's first bytes, if any are held, go (they may no longer be its own).
    pub fn update(&self, t: &Target, f: impl FnOnce(&mut V)) {
        let mut m = self.lock();
        let Some(s) = m.slots.get_mut(t) else { return };
        let head = s.head.take();
        if let Some(v) = &mut s.v {
            f(v);
        }
        if let Some(h) = head {
            m.head_bytes -= h.len();
        }
    }

    /// Forget a path.
    pub fn invalidate(&self, t: &Target) {
        self.lock().remove(t);
    }

    /// Forget a path and everything below it (rename or delete of a directory).
    pub fn invalidate_tree(&self, mount: usize, path: &str) {
        let mut m = self.lock();
        for k in Target::subtree(&m.slots, mount, path) {
            m.remove(&k);
        }
    }

    /// Forget everything.
    pub fn clear(&self) {
        let mut m = self.lock();
        m.slots.clear();
        m.head_bytes = 0;
    }
}

/// The listings, and how many names they hold together.
#[derive(Debug, Default)]
struct ListingMap {
    dirs: BTreeMap<Target, (HashSet<String>, Instant)>,
    names: usize,
}

impl ListingMap {
    fn remove(&mut self, dir: &Target) {
        if let Some((n, _)) = self.dirs.remove(dir) {
            self.names -= n.len();
        }
    }
}

/// The names of whole directory listings, each trusted for its mount's positive TTL. Our
/// own changes add and remove names; anything less certain drops the listing.
#[derive(Debug)]
pub struct Listings {
    ttls: Vec<Duration>,
    map: Mutex<ListingMap>,
    /// Bumped by every change of ours: a listing fetched while one happened is not kept
    /// (it may lack a name we just made).
    epoch: AtomicU64,
}

impl Listings {
    /// Listings trusted for `ttls[mount]` (zero keeps none).
    pub fn new(ttls: Vec<Duration>) -> Self {
        Listings {
            ttls,
            map: Mutex::new(ListingMap::default()),
            epoch: AtomicU64::new(0),
        }
    }

    /// Listings held, and the names in them.
    pub fn sizes(&self) -> (usize, usize) {
        let m = self.lock();
        (m.dirs.len(), m.names)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ListingMap> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ttl(&self, m: usize) -> Duration {
        self.ttls.get(m).copied().unwrap_or_default()
    }

    /// Call before fetching a listing; pass the result to [`Listings::put`].
    pub fn begin(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Remember the whole listing of a directory, fetched since `begin` returned `started`;
    /// not kept when a change of ours happened meanwhile.
    pub fn put(&self, dir: Target, names: HashSet<String>, started: u64) {
        let mut map = self.lock();
        if self.epoch.load(Ordering::Acquire) != started {
            return;
        }
        self.insert(&mut map, dir, names);
    }

    /// A directory we just made: empty.
    pub fn put_new(&self, dir: Target) {
        let mut map = self.lock();
        self.insert(&mut map, dir, HashSet::new());
    }

    fn insert(&self, map: &mut ListingMap, dir: Target, names: HashSet<String>) {
        let Target::Path(m, _) = &dir else { return };
        if names.len() > MAX_NAMES {
            // a huge directory is listed each time rather than held
            return;
        }
        let ttl = self.ttl(*m);
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        map.remove(&dir);
        let full = |map: &ListingMap| {
            map.dirs.len() >= MAX_LISTINGS || map.names + names.len() > MAX_NAMES
        };
        if full(map) {
            map.dirs.retain(|_, (_, exp)| *exp > now);
            map.names = map.dirs.values().map(|(n, _)| n.len()).sum();
            if full(map) {
                *map = ListingMap::default();
            }
        }
        map.names += names.len();
        map.dirs.insert(dir, (names, now + ttl));
    }

    /// `f` of the names of a fresh listing of `dir`; `None` when none is known (an expired
    /// one is dropped).
    fn fresh<R>(&self, dir: &Target, f: impl FnOnce(&HashSet<String>) -> R) -> Option<R> {
        let mut map = self.lock();
        match map.dirs.get(dir) {
            Some((names, exp)) if *exp > Instant::now() => Some(f(names)),
            Some(_) => {
                map.remove(dir);
                None
            }
            None => None,
        }
    }

    /// The names of a directory, when a fresh listing of it is known.
    pub fn names(&self, dir: &Target) -> Option<HashSet<String>> {
        self.fresh(dir, HashSet::clone)
    }

    /// Whether a fresh listing of `dir` has `name`; `None` when no fresh listing is known.
    pub fn has(&self, dir: &Target, name: &str) -> Option<bool> {
        self.fresh(dir, |names| names.contains(name))
    }

    /// Whether a fresh listing of `dir` has a name other than `name`; `None` when no fresh
    /// listing is known.
    pub fn has_other(&self, dir: &Target, name: &str) -> Option<bool> {
        self.fresh(dir, |names| {
            names.len() > 1 || (names.len() == 1 && !names.contains(name))
        })
    }

    /// Whether a fresh listing of `dir` is empty; `None` when no fresh listing is known.
    pub fn is_empty(&self, dir: &Target) -> Option<bool> {
        self.fresh(dir, HashSet::is_empty)
    }

    /// A name made in `dir` by us (kept only if the listing is known).
    pub fn add(&self, dir: &Target, name: &str) {
        let mut map = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some((names, _)) = map.dirs.get_mut(dir) {
            if names.insert(name.to_string()) {
                map.names += 1;
            }
        }
    }

    /// A name removed from `dir` by us.
    pub fn remove(&self, dir: &Target, name: &str) {
        let mut map = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some((names, _)) = map.dirs.get_mut(dir) {
            if names.remove(name) {
                map.names -= 1;
            }
        }
    }

    /// Forget the listing of one directory.
    pub fn forget(&self, dir: &Target) {
        let mut map = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.remove(dir);
    }

    /// Forget the listings of a directory and of everything below it.
    pub fn drop_tree(&self, mount: usize, path: &str) {
        let mut map = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for k in Target::subtree(&map.dirs, mount, path) {
            map.remove(&k);
        }
    }
}

/// Listings beyond this many are dropped like attributes.
const MAX_LISTINGS: usize = 10_000;
/// Names held in all listings together, at most (a listing of more is not kept: its
/// attributes would not fit in the attribute cache either).
const MAX_NAMES: usize = 200_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Target {
        Target::Path(0, s.into())
    }

    #[test]
    fn positive_and_negative_entries_expire() {
        let c = AttrCache::new(Duration::from_millis(50), Duration::from_millis(50));
        c.put(p("a"), Some(1));
        c.put(p("b"), None);
        assert_eq!(c.get(&p("a")), Some(Some(1)));
        assert_eq!(c.get(&p("b")), Some(None));
        assert_eq!(c.get(&p("c")), None);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(c.get(&p("a")), None);
        assert_eq!(c.get(&p("b")), None);
    }

    #[test]
    fn an_expired_entry_is_a_hint_once() {
        let c = AttrCache::new(Duration::from_millis(30), Duration::from_millis(30));
        c.put(p("a"), Some(1));
        assert_eq!(c.lookup(&p("a")), Cached::Fresh(Some(1)));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(c.lookup(&p("a")), Cached::Stale(Some(1)));
        assert_eq!(c.lookup(&p("a")), Cached::Unknown);
        assert!(c.is_empty());
    }

    #[test]
    fn heads_are_taken_once_and_go_with_any_change() {
        let c = AttrCache::new(Duration::from_secs(10), Duration::from_secs(10));
        let h = bytes::Bytes::from_static(b"abc");
        c.put_with_head(p("a"), Some(1), Some(h.clone()));
        assert_eq!(c.head_bytes(), 3);
        assert_eq!(c.take_head(&p("a")), Some(h.clone()));
        assert_eq!(c.take_head(&p("a")), None);
        assert_eq!(c.head_bytes(), 0);
        // a change of the attributes, a put, an invalidation: the bytes go with them
        c.put_with_head(p("a"), Some(1), Some(h.clone()));
        c.update(&p("a"), |v| *v = 2);
        assert_eq!(c.take_head(&p("a")), None);
        c.put_with_head(p("a"), Some(1), Some(h.clone()));
        c.put(p("a"), Some(3));
        assert_eq!(c.take_head(&p("a")), None);
        c.put_with_head(p("d/a"), Some(1), Some(h.clone()));
        c.invalidate_tree(0, "d");
        assert_eq!(c.take_head(&p("d/a")), None);
        assert_eq!(c.head_bytes(), 0);
    }

    #[test]
    fn heads_stay_within_their_budget() {
        let c = AttrCache::new(Duration::from_secs(10), Duration::from_secs(10));
        let big = bytes::Bytes::from(vec![0u8; HEAD_BUDGET / 2 + 1]);
        c.put_with_head(p("a"), Some(1), Some(big.clone()));
        c.put_with_head(p("b"), Some(1), Some(big.clone()));
        assert_eq!(c.head_bytes(), big.len());
        assert_eq!(c.take_head(&p("b")), None);
        assert_eq!(c.get(&p("b")), Some(Some(1)));
        assert!(c.take_head(&p("a")).is_some());
    }

    #[test]
    fn expired_heads_are_not_given() {
        let c = AttrCache::new(Duration::from_millis(20), Duration::from_millis(20));
        c.put_with_head(p("a"), Some(1), Some(bytes::Bytes::from_static(b"x")));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.take_head(&p("a")), None);
    }

    #[test]
    fn zero_negative_ttl_keeps_no_negative_entries() {
        let c: AttrCache<u8> = AttrCache::new(Duration::from_secs(1), Duration::ZERO);
        c.put(p("b"), None);
        assert_eq!(c.get(&p("b")), None);
    }

    #[test]
    fn tree_invalidation() {
        let c = AttrCache::new(Duration::from_secs(10), Duration::from_secs(10));
        c.put(p("d"), Some(1));
        c.put(p("d/x"), Some(2));
        c.put(p("dx"), Some(3));
        c.invalidate_tree(0, "d");
        assert_eq!(c.get(&p("d")), None);
        assert_eq!(c.get(&p("d/x")), None);
        assert_eq!(c.get(&p("dx")), Some(Some(3)));
    }

    #[test]
    fn ttls_per_mount() {
        let c = AttrCache::per_mount(vec![
            (Duration::from_millis(50), Duration::from_millis(50)),
            (Duration::from_secs(60), Duration::ZERO),
        ]);
        c.put(p("a"), Some(1));
        c.put(Target::Path(1, "a".into()), Some(2));
        c.put(Target::Path(1, "b".into()), None);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(c.get(&p("a")), None);
        assert_eq!(c.get(&Target::Path(1, "a".into())), Some(Some(2)));
        assert_eq!(c.get(&Target::Path(1, "b".into())), None);
    }

    #[test]
    fn listings_follow_our_changes_and_expire() {
        let l = Listings::new(vec![Duration::from_millis(50)]);
        let d = p("d");
        assert_eq!(l.has(&d, "x"), None);
        l.add(&d, "x"); // unknown listing: nothing is invented
        assert_eq!(l.has(&d, "x"), None);
        l.put(d.clone(), ["a".to_string()].into(), l.begin());
        assert_eq!(l.has(&d, "a"), Some(true));
        assert_eq!(l.has(&d, "x"), Some(false));
        assert_eq!(l.has_other(&d, "a"), Some(false));
        assert_eq!(l.has_other(&d, "x"), Some(true));
        assert_eq!(l.is_empty(&d), Some(false));
        assert_eq!(l.is_empty(&p("e")), None);
        l.add(&d, "x");
        l.remove(&d, "a");
        assert_eq!(l.names(&d), Some(["x".to_string()].into()));
        l.put_new(p("d/e"));
        l.drop_tree(0, "d");
        assert_eq!(l.has(&d, "x"), None);
        assert_eq!(l.has(&p("d/e"), "x"), None);
        l.put_new(d.clone());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(l.has(&d, "x"), None);
        assert_eq!(l.names(&d), None);
    }

    #[test]
    fn a_listing_fetched_across_a_change_is_not_kept() {
        let l = Listings::new(vec![Duration::from_secs(60)]);
        let started = l.begin();
        l.add(&p("other"), "x"); // a change of ours while the listing was fetched
        l.put(p("d"), HashSet::new(), started);
        assert_eq!(l.has(&p("d"), "x"), None);
        l.put(p("d"), HashSet::new(), l.begin());
        assert_eq!(l.has(&p("d"), "x"), Some(false));
    }

    #[test]
    fn listings_hold_a_bounded_number_of_names() {
        let l = Listings::new(vec![Duration::from_secs(60)]);
        let many = |k: usize| (0..MAX_NAMES / 2).map(|i| format!("{k}-{i}")).collect();
        l.put(p("a"), many(1), l.begin());
        l.put(p("b"), many(2), l.begin());
        assert_eq!(l.has(&p("a"), "x"), Some(false));
        // a third would pass the bound: the fresh ones are dropped to make room
        l.put(p("c"), many(3), l.begin());
        assert_eq!(l.has(&p("a"), "x"), None);
        assert_eq!(l.has(&p("c"), "3-0"), Some(true));
        l.put(
            p("huge"),
            (0..=MAX_NAMES).map(|i| i.to_string()).collect(),
            l.begin(),
        );
        assert_eq!(l.has(&p("huge"), "0"), None);
    }

    #[test]
    fn zero_ttl_keeps_no_listing() {
        let l = Listings::new(vec![Duration::ZERO]);
        l.put_new(p("d"));
        assert_eq!(l.has(&p("d"), "x"), None);
    }
}

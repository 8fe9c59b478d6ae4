//! The attribute cache: what a stat or a listing learned of a path, for a TTL, including
//! negative entries (the path does not exist). Our own mutations invalidate it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fuse::inode::Target;

/// Entries beyond this many are dropped (oldest expiry first is not tracked; the whole
/// expired set is swept, then, if still full, everything).
const MAX_ENTRIES: usize = 200_000;

/// A TTL cache of `Some(attributes)` or `None` (negative) per path.
#[derive(Debug)]
pub struct AttrCache<V> {
    ttl: Duration,
    negative_ttl: Duration,
    map: Mutex<HashMap<Target, (Option<V>, Instant)>>,
}

impl<V: Clone> AttrCache<V> {
    /// A cache with the given positive and negative TTLs (zero disables either).
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        AttrCache {
            ttl,
            negative_ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Target, (Option<V>, Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(Some(v))` cached attributes, `Some(None)` a cached absence, `None` unknown.
    pub fn get(&self, t: &Target) -> Option<Option<V>> {
        let mut m = self.lock();
        match m.get(t) {
            Some((v, exp)) if *exp > Instant::now() => Some(v.clone()),
            Some(_) => {
                m.remove(t);
                None
            }
            None => None,
        }
    }

    /// Remember what a stat found.
    pub fn put(&self, t: Target, v: Option<V>) {
        let ttl = if v.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut m = self.lock();
        if m.len() >= MAX_ENTRIES {
            m.retain(|_, (_, exp)| *exp > now);
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
        }
        m.insert(t, (v, now + ttl));
    }

    /// Forget a path.
    pub fn invalidate(&self, t: &Target) {
        self.lock().remove(t);
    }

    /// Forget a path and everything below it (rename or delete of a directory).
    pub fn invalidate_tree(&self, mount: usize, path: &str) {
        self.lock().retain(|k, _| !k.is_within(mount, path));
    }

    /// Forget everything.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

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
}

//! Per-mount counters of the daemon: requests by operation, bytes read and written through
//! it, errors, attribute-cache hits and misses; pending uploads are counted when reported.
//! SIGUSR1 writes them to the log, one line per mount (see `fuse::run`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

/// The FUSE operations counted, in report order.
pub const OPS: &[&str] = &[
    "lookup",
    "getattr",
    "setattr",
    "readlink",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "flush",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "statfs",
    "create",
    "mknod",
    "fallocate",
    "copy_file_range",
];

/// Counters of one mount.
#[derive(Debug, Default)]
pub struct MountStats {
    requests: Vec<AtomicU64>,
    /// Bytes read through the daemon (local files read by the kernel itself, through FUSE
    /// passthrough, are not seen here).
    pub bytes_read: AtomicU64,
    /// Bytes written through the daemon (same remark).
    pub bytes_written: AtomicU64,
    /// Operations answered with an error.
    pub errors: AtomicU64,
    /// Attribute lookups answered by the cache.
    pub cache_hits: AtomicU64,
    /// Attribute lookups that went to the backend.
    pub cache_misses: AtomicU64,
    /// Errors by errno (only taken on the error path).
    errnos: std::sync::Mutex<std::collections::BTreeMap<i32, u64>>,
}

/// Counters of every mount, by mount index.
#[derive(Debug)]
pub struct Stats {
    names: Vec<String>,
    mounts: Vec<MountStats>,
}

/// A snapshot of one mount's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The mount's name.
    pub mount: String,
    /// Requests by operation (only those seen), in [`OPS`] order.
    pub requests: Vec<(&'static str, u64)>,
    /// Bytes read through the daemon.
    pub bytes_read: u64,
    /// Bytes written through the daemon.
    pub bytes_written: u64,
    /// Operations answered with an error.
    pub errors: u64,
    /// Attribute-cache hits.
    pub cache_hits: u64,
    /// Attribute-cache misses.
    pub cache_misses: u64,
    /// Open files with data not uploaded yet.
    pub pending_uploads: u64,
    /// Files open through the daemon.
    pub open_files: u64,
    /// Errors by errno, in errno order.
    pub errnos: Vec<(i32, u64)>,
}

impl Stats {
    /// Counters for the mounts named, in order.
    pub fn new(names: Vec<String>) -> Stats {
        let mounts = names
            .iter()
            .map(|_| MountStats {
                requests: OPS.iter().map(|_| AtomicU64::new(0)).collect(),
                ..MountStats::default()
            })
            .collect();
        Stats { names, mounts }
    }

    /// The counters of mount `m`.
    pub fn of(&self, m: usize) -> Option<&MountStats> {
        self.mounts.get(m)
    }

    /// Count a request on mount `m`.
    pub fn request(&self, m: Option<usize>, op: &str) {
        if let (Some(s), Some(i)) = (
            m.and_then(|m| self.mounts.get(m)),
            OPS.iter().position(|o| *o == op),
        ) {
            s.requests[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count a failed operation; the mount is the one its error names (`mount:path`).
    pub fn error(&self, e: &Error) {
        let ctx = e.context();
        if let Some(i) = self.names.iter().position(|n| {
            ctx.strip_prefix(n.as_str())
                .is_some_and(|r| r.starts_with(':'))
        }) {
            let m = &self.mounts[i];
            m.errors.fetch_add(1, Ordering::Relaxed);
            *m.errnos
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(e.errno())
                .or_default() += 1;
        }
    }

    /// Add `n` to one of a mount's counters.
    pub fn add(&self, m: usize, pick: impl Fn(&MountStats) -> &AtomicU64, n: u64) {
        if let Some(s) = self.mounts.get(m) {
            pick(s).fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Every mount's counters; `pending[m]` is its count of files waiting to be uploaded,
    /// `open[m]` of files open.
    pub fn snapshot(&self, pending: &[u64], open: &[u64]) -> Vec<Snapshot> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.mounts
            .iter()
            .enumerate()
            .map(|(i, s)| Snapshot {
                mount: self.names[i].clone(),
                requests: OPS
                    .iter()
                    .zip(&s.requests)
                    .map(|(op, n)| (*op, get(n)))
                    .filter(|(_, n)| *n > 0)
                    .collect(),
                bytes_read: get(&s.bytes_read),
                bytes_written: get(&s.bytes_written),
                errors: get(&s.errors),
                cache_hits: get(&s.cache_hits),
                cache_misses: get(&s.cache_misses),
                pending_uploads: pending.get(i).copied().unwrap_or(0),
                open_files: open.get(i).copied().unwrap_or(0),
                errnos: s
                    .errnos
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(k, v)| (*k, *v))
                    .collect(),
            })
            .collect()
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u64 = self.requests.iter().map(|(_, n)| n).sum();
        write!(f, "mount {}: {total} requests (", self.mount)?;
        for (i, (op, n)) in self.requests.iter().enumerate() {
            write!(f, "{}{op} {n}", if i > 0 { ", " } else { "" })?;
        }
        write!(
            f,
            "); read {} B, written {} B; {} errors; attribute cache {} hits, {} misses; {} pending uploads; {} open files",
            self.bytes_read, self.bytes_written, self.errors, self.cache_hits, self.cache_misses, self.pending_uploads, self.open_files
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn counts_by_mount_and_operation() {
        let s = Stats::new(vec!["a".into(), "ab".into()]);
        s.request(Some(1), "read");
        s.request(Some(1), "read");
        s.request(Some(0), "lookup");
        s.request(None, "lookup");
        s.add(1, |m| &m.bytes_read, 10);
        s.error(&Error::new(ErrorKind::NotFound, "ab:x/y", "missing"));
        let snap = s.snapshot(&[0, 2], &[0, 3]);
        assert_eq!(snap[0].requests, [("lookup", 1)]);
        assert_eq!(snap[1].requests, [("read", 2)]);
        assert_eq!((snap[0].errors, snap[1].errors), (0, 1));
        assert_eq!(
            snap[1].to_string(),
            "mount ab: 2 requests (read 2); read 10 B, written 0 B; 1 errors; attribute cache 0 hits, 0 misses; 2 pending uploads; 3 open files"
        );
        assert_eq!(snap[1].errnos, [(libc::ENOENT, 1)]);
    }
}

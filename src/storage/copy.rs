//! Copies with strategies: which files to skip (exists, same size, same content, or a rule
//! of the caller's), include and exclude globs, bounded concurrency and callbacks per file,
//! per skip and for progress. `AsyncNode::copy_with` is the entry point.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use globset::{GlobSet, GlobSetBuilder};

use crate::error::{Error, ErrorKind, Result};
use crate::storage::mount::Entry;
use crate::storage::node::AsyncNode;
use crate::storage::path;

/// A rule of the caller's: skip this file? It sees the source, the destination and the
/// destination's entry when one exists.
pub type SkipFn = Arc<dyn Fn(&AsyncNode, &Entry, &AsyncNode, Option<&Entry>) -> bool + Send + Sync>;

/// Which files a copy leaves alone.
#[derive(Clone, Default)]
pub enum Skip {
    /// Copy every file (the default).
    #[default]
    Never,
    /// Skip a file whose destination exists.
    Exists,
    /// Skip a file whose destination has the same size.
    Size,
    /// Skip a file whose destination has the same content: the ETags when both sides are S3
    /// objects with plain (single-part) ETags, otherwise a byte-by-byte comparison.
    Hash,
    /// Skip a file when the function says so.
    Custom(SkipFn),
}

impl std::fmt::Debug for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Skip::Never => "never",
            Skip::Exists => "exists",
            Skip::Size => "size",
            Skip::Hash => "hash",
            Skip::Custom(_) => "custom",
        })
    }
}

impl std::str::FromStr for Skip {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "never" => Ok(Skip::Never),
            "exists" => Ok(Skip::Exists),
            "size" => Ok(Skip::Size),
            "hash" => Ok(Skip::Hash),
            other => Err(format!(
                "unknown skip rule {other:?}; valid: never, exists, size, hash"
            )),
        }
    }
}

/// Why a file was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The destination exists (`Skip::Exists`).
    Exists,
    /// The destination has the same size (`Skip::Size`).
    SameSize,
    /// The destination has the same content (`Skip::Hash`).
    SameContent,
    /// The caller's rule said so (`Skip::Custom`).
    Custom,
    /// The path matches no include glob, or an exclude glob.
    Filtered,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Exists => "destination exists",
            SkipReason::SameSize => "same size",
            SkipReason::SameContent => "same content",
            SkipReason::Custom => "skipped by rule",
            SkipReason::Filtered => "filtered out",
        })
    }
}

/// Where a copy stands, for progress callbacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Files copied or skipped so far.
    pub files_done: usize,
    /// Files the copy will look at.
    pub files_total: usize,
    /// Bytes copied so far.
    pub bytes_done: u64,
    /// Bytes the copy will move: the files' sizes, less those of files found to be skipped.
    pub bytes_total: u64,
}

/// Called with the source, the destination and its size when a file has been copied.
pub type FileFn = Arc<dyn Fn(&AsyncNode, &AsyncNode, u64) + Send + Sync>;
/// Called with the source and the reason when a file is skipped.
pub type SkipCallback = Arc<dyn Fn(&AsyncNode, SkipReason) + Send + Sync>;
/// Called as bytes arrive and files finish.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How `copy_with` works. `CopyOptions::default()` copies everything, 8 files at a time.
#[derive(Clone)]
pub struct CopyOptions {
    /// Which files to leave alone.
    pub skip: Skip,
    /// Globs a file must match to be copied (all files when empty). A glob without `/`
    /// matches the file's name, one with `/` its path below the copy's source.
    pub include: Vec<String>,
    /// Globs that leave a file out (same matching as `include`).
    pub exclude: Vec<String>,
    /// Files copied at once (at least 1).
    pub concurrency: usize,
    /// After each copied file.
    pub on_file: Option<FileFn>,
    /// After each skipped file, with the reason.
    pub on_skip: Option<SkipCallback>,
    /// As bytes arrive and files finish.
    pub on_progress: Option<ProgressFn>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            skip: Skip::Never,
            include: Vec::new(),
            exclude: Vec::new(),
            concurrency: 8,
            on_file: None,
            on_skip: None,
            on_progress: None,
        }
    }
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("skip", &self.skip)
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// What a copy did. Failures of single files do not stop the others; they are listed here.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// Files copied.
    pub copied: usize,
    /// Files skipped, with their reason.
    pub skipped: Vec<(String, SkipReason)>,
    /// Bytes copied.
    pub bytes: u64,
    /// Files that failed, with their error.
    pub failed: Vec<(String, Error)>,
}

impl CopyReport {
    /// True when no file failed.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Include and exclude globs, matched as documented on [`CopyOptions::include`].
struct Filter {
    include_name: GlobSet,
    include_path: GlobSet,
    exclude_name: GlobSet,
    exclude_path: GlobSet,
    any_include: bool,
}

impl Filter {
    fn new(include: &[String], exclude: &[String]) -> Result<Filter> {
        let build = |globs: &[String], with_slash: bool| -> Result<GlobSet> {
            let mut b = GlobSetBuilder::new();
            for g in globs.iter().filter(|g| g.contains('/') == with_slash) {
                let glob = globset::GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| {
                        Error::new(ErrorKind::InvalidPath, format!("glob {g:?}"), e.to_string())
                    })?;
                b.add(glob);
            }
            b.build()
                .map_err(|e| Error::new(ErrorKind::InvalidPath, "globs", e.to_string()))
        };
        Ok(Filter {
            include_name: build(include, false)?,
            include_path: build(include, true)?,
            exclude_name: build(exclude, false)?,
            exclude_path: build(exclude, true)?,
            any_include: !include.is_empty(),
        })
    }

    fn wants(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if self.exclude_name.is_match(name) || self.exclude_path.is_match(rel) {
            return false;
        }
        !self.any_include || self.include_name.is_match(name) || self.include_path.is_match(rel)
    }
}

/// One file to copy: its path below the source, and its entry.
struct Job {
    rel: String,
    entry: Entry,
}

/// Copy `src` (a file or a tree) to `dest` with `opts`. Directories are created as they are
/// met; the files go `opts.concurrency` at a time.
pub async fn copy_with(
    src: &AsyncNode,
    dest: &AsyncNode,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    dest.mount().check_write(dest.path())?;
    let filter = Filter::new(&opts.include, &opts.exclude)?;
    let top = src.stat().await?.ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            src.fullpath(),
            "no such file or directory",
        )
    })?;
    let mut report = CopyReport::default();
    let mut jobs = Vec::new();
    if top.is_dir() {
        if Arc::ptr_eq(src.mount(), dest.mount())
            && (src.path().is_empty() || dest.path().starts_with(&format!("{}/", src.path())))
        {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                dest.fullpath(),
                format!("cannot copy {} into itself", src.fullpath()),
            ));
        }
        // Walk the tree first, so that the totals are known before the first byte moves.
        dest.mkdir().await?;
        let mut dirs = vec![String::new()];
        while let Some(rel) = dirs.pop() {
            let node = below(src, &rel);
            for (name, entry) in node.list_entries().await? {
                let r = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if entry.is_dir() {
                    below(dest, &r).mkdir().await?;
                    dirs.push(r);
                } else if filter.wants(&r) {
                    jobs.push(Job { rel: r, entry });
                } else {
                    if let Some(f) = &opts.on_skip {
                        f(&below(src, &r), SkipReason::Filtered);
                    }
                    report.skipped.push((r, SkipReason::Filtered));
                }
            }
        }
        jobs.sort_by(|a, b| a.rel.cmp(&b.rel));
    } else {
        jobs.push(Job {
            rel: String::new(),
            entry: top,
        });
    }

    let progress = Mutex::new(Progress {
        files_total: jobs.len(),
        bytes_total: jobs.iter().map(|j| j.entry.size).sum(),
        ..Progress::default()
    });
    let bytes = AtomicU64::new(0);
    let files = AtomicUsize::new(0);
    // `skipped`: bytes of a file that will not be copied leave the total, so that the total
    // is what a finished copy has moved.
    let tell = |db: u64, df: usize, skipped: u64| {
        let b = bytes.fetch_add(db, Ordering::Relaxed) + db;
        let f = files.fetch_add(df, Ordering::Relaxed) + df;
        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
        p.bytes_total -= skipped.min(p.bytes_total);
        p.bytes_done = p.bytes_done.max(b);
        p.files_done = p.files_done.max(f);
        let snapshot = *p;
        drop(p);
        if let Some(cb) = &opts.on_progress {
            cb(&snapshot);
        }
    };
    let outcomes: Vec<(String, Result<Option<SkipReason>>, u64)> =
        futures::stream::iter(jobs.into_iter().map(|job| {
            let tell = &tell;
            async move {
                let (s, d) = (below(src, &job.rel), below(dest, &job.rel));
                let r = copy_one(&s, &job.entry, &d, opts, &|n| tell(n, 0, 0)).await;
                let skipped = match &r {
                    Ok(Some(_)) => job.entry.size,
                    _ => 0,
                };
                tell(0, 1, skipped);
                (s.fullpath(), r, job.entry.size)
            }
        }))
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    for (p, r, size) in outcomes {
        match r {
            Ok(None) => {
                report.copied += 1;
                report.bytes += size;
            }
            Ok(Some(reason)) => report.skipped.push((p, reason)),
            Err(e) => report.failed.push((p, e)),
        }
    }
    Ok(report)
}

/// The node `rel` below `n` (`n` itself for an empty `rel`).
fn below(n: &AsyncNode, rel: &str) -> AsyncNode {
    match rel {
        "" => n.clone(),
        rel => AsyncNode::new(n.mount().clone(), path::join(n.path(), rel)),
    }
}

/// Copy one file unless the rule skips it; Some(reason) when skipped.
async fn copy_one(
    s: &AsyncNode,
    se: &Entry,
    d: &AsyncNode,
    opts: &CopyOptions,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<Option<SkipReason>> {
    let de = match opts.skip {
        Skip::Never => None,
        _ => d.stat().await?,
    };
    let reason = match (&opts.skip, &de) {
        (Skip::Exists, Some(_)) => Some(SkipReason::Exists),
        (Skip::Size, Some(de)) if !de.is_dir() && de.size == se.size => Some(SkipReason::SameSize),
        (Skip::Hash, Some(de)) if !de.is_dir() && same_content(s, se, d, de).await? => {
            Some(SkipReason::SameContent)
        }
        (Skip::Custom(f), de) if f(s, se, d, de.as_ref()) => Some(SkipReason::Custom),
        _ => None,
    };
    if let Some(r) = reason {
        if let Some(f) = &opts.on_skip {
            f(s, r);
        }
        return Ok(Some(r));
    }
    s.copy_file(d, se.size, &se.posix, on_bytes).await?;
    if let Some(f) = &opts.on_file {
        f(s, d, se.size);
    }
    Ok(None)
}

/// Same bytes? Plain S3 ETags (the MD5 of the object) decide when both sides have one;
/// otherwise both files are read and compared chunk by chunk.
async fn same_content(s: &AsyncNode, se: &Entry, d: &AsyncNode, de: &Entry) -> Result<bool> {
    if se.size != de.size {
        return Ok(false);
    }
    fn plain(e: &Entry) -> Option<&str> {
        e.etag.as_deref().filter(|t| !t.contains('-'))
    }
    if s.mount().is_s3() && d.mount().is_s3() {
        if let (Some(a), Some(b)) = (plain(se), plain(de)) {
            return Ok(a == b);
        }
    }
    const STEP: u64 = 4 << 20;
    let (a, b) = (s.reader().await?, d.reader().await?);
    let mut off = 0;
    while off < se.size {
        let end = (off + STEP).min(se.size);
        let (x, y) = futures::try_join!(a.read_range(off, end), b.read_range(off, end))?;
        if x != y {
            return Ok(false);
        }
        off = end;
    }
    Ok(true)
}

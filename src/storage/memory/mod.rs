//! The memory backend: an opendal service over one ordered map, so that a memory mount is a
//! real filesystem at any size. Objects keep their user metadata (the POSIX attributes of
//! `posix.rs`) and a modification time; a listing costs what the directory holds (children
//! found by skipping whole subtrees in the map, not by scanning every key below it); a
//! directory is a marker key `d/` or the prefix of its children; copy and rename are native.
//!
//! opendal's own memory service keeps no user metadata or times and lists a directory by
//! scanning every key below it, so that `rm -rf` of a large tree costs quadratic time.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

mod files;
pub use files::{copy_sparse, MemFiles};
use opendal::raw::oio;
use opendal::raw::*;
use opendal::{
    Buffer, Builder, BytesRange, Capability, Error, ErrorKind, Metadata, MetadataBuilder,
    OperationContext, Result,
};

/// One stored object: its bytes and metadata (mode, length, time, user metadata).
#[derive(Clone)]
struct Value {
    content: Content,
    meta: Metadata,
}

/// An object's bytes: in memory, or (large files written through the daemon) the memory
/// file they were staged in, read with pread so that its holes take no memory.
#[derive(Clone)]
enum Content {
    Bytes(Buffer),
    File {
        file: Arc<std::fs::File>,
        len: u64,
        /// What it took when stored (see [`Content::cost`]): the daemon may go on writing
        /// the file in place, and its growth is charged to the daemon's staging until the
        /// next store.
        cost: u64,
    },
}

impl Content {
    fn empty() -> Content {
        Content::Bytes(Buffer::new())
    }

    fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File { len, .. } => *len,
        }
    }

    /// The memory it takes: its length, or the pages the file held when stored (holes
    /// take none).
    fn cost(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File { cost, .. } => *cost,
        }
    }

    /// The bytes in `r` (within the length).
    fn slice(&self, r: std::ops::Range<u64>) -> Result<Buffer> {
        match self {
            Content::Bytes(b) => Ok(b.slice(r.start as usize..r.end as usize)),
            Content::File { file, .. } => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; (r.end - r.start) as usize];
                // The daemon may have cut the file short in place since it was stored (a
                // truncate while open, stored again at close): past its end it reads as
                // zeros until then.
                let mut got = 0;
                while got < buf.len() {
                    match file.read_at(&mut buf[got..], r.start + got as u64) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            return Err(Error::new(ErrorKind::Unexpected, "reading a memory file")
                                .set_source(e))
                        }
                    }
                }
                Ok(Buffer::from(buf))
            }
        }
    }
}

/// The shared map behind a memory mount. Keys have no leading `/`; directory markers end
/// with `/`.
pub struct MemStore {
    map: Arc<Mutex<Tree>>,
    /// The key prefix this store sees (`""`, or `a/b/` for a relative mount's view).
    root: String,
    /// The most its objects may take together, in bytes (`max_size`).
    max: u64,
    /// What copies staged outside the store take (the daemon's files being written, kept in
    /// RAM too): counted against the same budget.
    staged: Arc<std::sync::atomic::AtomicU64>,
    /// Where the daemon makes the files it stages and stores here.
    files: Arc<MemFiles>,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::with_budget(u64::MAX)
    }
}

/// The ordered map of keys, and per directory (`d/`, or "" for the root) how many
/// directory markers sit directly below it: a directory's link count is 2 plus that, known
/// in O(1). Every change of the key set goes through [`Tree::insert`] and [`Tree::remove`],
/// which keep the counts (reads see the map through `Deref`).
#[derive(Default)]
struct Tree {
    map: BTreeMap<String, Value>,
    subdirs: std::collections::HashMap<String, u64>,
    /// What the objects take (see [`Content::cost`]).
    used: u64,
}

/// The directory a marker `a/b/` sits in (`a/`, or "" at the top); None for other keys.
fn marker_parent(k: &str) -> Option<&str> {
    let inner = k.strip_suffix('/')?;
    Some(match inner.rfind('/') {
        Some(i) => &k[..=i],
        None => "",
    })
}

impl std::ops::Deref for Tree {
    type Target = BTreeMap<String, Value>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Tree {
    fn insert(&mut self, k: String, v: Value) -> Option<Value> {
        let parent = marker_parent(&k).map(str::to_string);
        self.used += v.content.cost();
        let old = self.map.insert(k, v);
        if let Some(o) = &old {
            self.used = self.used.saturating_sub(o.content.cost());
        }
        if let (Some(parent), None) = (parent, &old) {
            *self.subdirs.entry(parent).or_default() += 1;
        }
        old
    }

    fn remove(&mut self, k: &str) -> Option<Value> {
        let old = self.map.remove(k)?;
        self.used = self.used.saturating_sub(old.content.cost());
        if let Some(parent) = marker_parent(k) {
            if let Some(n) = self.subdirs.get_mut(parent) {
                *n -= 1;
                if *n == 0 {
                    self.subdirs.remove(parent);
                }
            }
        }
        Some(old)
    }

    fn get_mut(&mut self, k: &str) -> Option<&mut Value> {
        self.map.get_mut(k)
    }
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore").finish_non_exhaustive()
    }
}

/// The first key after every key that starts with `prefix` (which ends with `/`).
fn after(prefix: &str) -> String {
    let mut s = prefix[..prefix.len() - 1].to_string();
    s.push('0'); // '/' + 1
    s
}

fn not_found() -> Error {
    Error::new(ErrorKind::NotFound, "memory has no such path")
}

fn with_user_metadata(meta: &Metadata, pairs: Vec<(String, String)>) -> Metadata {
    let mut b = meta.clone().into_builder();
    b.user_metadata(pairs);
    b.build()
}

impl MemStore {
    /// A store whose objects may take `max` bytes together.
    pub fn with_budget(max: u64) -> MemStore {
        MemStore {
            map: Arc::default(),
            root: String::new(),
            max,
            staged: Arc::default(),
            files: Arc::new(MemFiles::new(max)),
        }
    }

    /// A view of the same map below `sub` (a relative mount): its keys are `sub/` + the
    /// view's paths; budget and staging are shared.
    pub fn view(&self, sub: &str) -> MemStore {
        let sub = sub.trim_matches('/');
        MemStore {
            map: self.map.clone(),
            root: if sub.is_empty() {
                self.root.clone()
            } else {
                format!("{}{sub}/", self.root)
            },
            max: self.max,
            staged: self.staged.clone(),
            files: self.files.clone(),
        }
    }

    /// The map key of a path of this store.
    fn key(&self, path: &str) -> String {
        format!("{}{}", self.root, path.trim_start_matches('/'))
    }

    /// A map key as a path of this store (`/` for its own root).
    fn unkey(&self, k: &str) -> String {
        match &k[self.root.len()..] {
            "" => "/".to_string(),
            r => r.to_string(),
        }
    }

    /// (budget, bytes used by the objects and the staged copies): for statfs.
    pub fn usage(&self) -> (u64, u64) {
        (self.max, self.lock().used.saturating_add(self.staged()))
    }

    /// The counter that copies staged outside the store charge (see `usage`).
    pub fn staging_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.staged.clone()
    }

    /// Where memory files for this store are made (see [`MemFiles`]).
    pub fn files(&self) -> &MemFiles {
        &self.files
    }

    fn staged(&self) -> u64 {
        self.staged.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Would `add` more bytes in place of `old` ones fit in the budget?
    fn fits(&self, tree: &Tree, add: u64, old: u64) -> Result<()> {
        let used = tree.used.saturating_add(self.staged());
        if used.saturating_sub(old).saturating_add(add) > self.max {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "no space left: the memory mount's max_size of {} bytes is used",
                    self.max
                ),
            )
            .set_source(std::io::Error::from_raw_os_error(libc::ENOSPC)));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tree> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Does any key start with `prefix` (ending with `/`)? O(log n).
    fn has_prefix(map: &Tree, prefix: &str) -> bool {
        map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(prefix))
    }

    fn stat(&self, path: &str) -> Result<Metadata> {
        if path.trim_start_matches('/').is_empty() {
            return Ok(MetadataBuilder::dir().build());
        }
        let k = self.key(path);
        let map = self.lock();
        if let Some(v) = map.get(&k) {
            return Ok(v.meta.clone());
        }
        let prefix = if k.ends_with('/') {
            k.to_string()
        } else {
            format!("{k}/")
        };
        if let Some(v) = map.get(&prefix) {
            return Ok(v.meta.clone());
        }
        if Self::has_prefix(&map, &prefix) {
            return Ok(MetadataBuilder::dir().build());
        }
        Err(not_found())
    }

    /// The user metadata of an object or a directory (whose marker is made when it has
    /// none), replaced without touching its content: O(log n).
    pub fn set_user_metadata(&self, path: &str, dir: bool, pairs: Vec<(String, String)>) {
        let k = self.key(path);
        let k = if dir && !k.ends_with('/') {
            format!("{k}/")
        } else {
            k
        };
        let mut map = self.lock();
        match map.get_mut(&k) {
            Some(v) => v.meta = with_user_metadata(&v.meta, pairs),
            None if dir => {
                let mut b = MetadataBuilder::dir();
                b.last_modified(Timestamp::now());
                b.user_metadata(pairs);
                map.insert(
                    k,
                    Value {
                        content: Content::empty(),
                        meta: b.build(),
                    },
                );
            }
            None => {}
        }
    }

    /// How many directories with a marker `dir` holds directly (its link count is 2 more):
    /// O(1). A directory known only by the keys below it is not counted.
    pub fn subdirs(&self, dir: &str) -> u64 {
        let k = self.key(dir);
        let k = k.trim_end_matches('/');
        let prefix = if k.is_empty() {
            String::new()
        } else {
            format!("{k}/")
        };
        self.lock().subdirs.get(&prefix).copied().unwrap_or(0)
    }

    /// Does the directory `dir` hold anything but its marker? O(log n).
    pub fn has_children(&self, dir: &str) -> bool {
        let prefix = format!("{}/", self.key(dir).trim_end_matches('/'));
        let map = self.lock();
        map.range::<str, _>((Bound::Excluded(prefix.as_str()), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Move a directory and everything below it (`from/` to `to/`): O(k log n) for its k keys.
    pub fn rename_tree(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (
            format!("{}/", self.key(from).trim_end_matches('/')),
            format!("{}/", self.key(to).trim_end_matches('/')),
        );
        let mut map = self.lock();
        let keys: Vec<String> = map
            .range::<str, _>((
                Bound::Included(from.as_str()),
                Bound::Excluded(after(&from).as_str()),
            ))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(v) = map.remove(&k) {
                map.insert(format!("{to}{}", &k[from.len()..]), v);
            }
        }
        Ok(())
    }

    /// The entries directly below `dir` (ending with `/`, or empty for the root), the
    /// directory's own marker first; with `recursive`, every key below it.
    fn list(&self, dir: &str, recursive: bool) -> Vec<oio::Entry> {
        let dir = self.key(dir);
        let dir = dir.as_str();
        let map = self.lock();
        let mut out = Vec::new();
        let own = self.unkey(dir);
        if let Some(v) = map.get(dir) {
            out.push(oio::Entry::new(&own, v.meta.clone()));
        } else if dir == self.root || Self::has_prefix(&map, dir) {
            out.push(oio::Entry::new(&own, MetadataBuilder::dir().build()));
        }
        let mut from = Bound::Excluded(dir.to_string());
        loop {
            let next = map
                .range::<String, _>((from.clone(), Bound::Unbounded))
                .next()
                .map(|(k, v)| (k.clone(), v.meta.clone()));
            let Some((k, meta)) = next else { break };
            if !k.starts_with(dir) {
                break;
            }
            let rest = &k[dir.len()..];
            match rest.find('/') {
                Some(i) if !recursive && i + 1 < rest.len() => {
                    // a child directory known by what it holds: shown once, its subtree skipped
                    let child = format!("{dir}{}", &rest[..=i]);
                    let meta = map
                        .get(&child)
                        .map(|v| v.meta.clone())
                        .unwrap_or_else(|| MetadataBuilder::dir().build());
                    out.push(oio::Entry::new(&self.unkey(&child), meta));
                    from = Bound::Included(after(&child));
                }
                _ => {
                    out.push(oio::Entry::new(&self.unkey(&k), meta));
                    from = Bound::Excluded(k);
                }
            }
        }
        out
    }
}

/// Builds the memory service over a given store.
#[derive(Debug, Default)]
pub struct MemoryBuilder {
    store: Option<Arc<MemStore>>,
}

impl MemoryBuilder {
    /// A builder over `store`.
    pub fn new(store: Arc<MemStore>) -> Self {
        MemoryBuilder { store: Some(store) }
    }
}

impl Builder for MemoryBuilder {
    type Config = ();

    fn build(self) -> Result<impl Service> {
        Ok(MemoryService {
            store: self.store.unwrap_or_default(),
        })
    }
}

/// The opendal service of a memory mount.
#[derive(Debug, Clone)]
pub struct MemoryService {
    store: Arc<MemStore>,
}

/// Reads of one object.
pub struct MemReader {
    store: Arc<MemStore>,
    path: String,
}

impl oio::Read for MemReader {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        let (rp, buf) = self.read(range).await?;
        Ok((rp, Box::new(buf) as Box<dyn oio::ReadStreamDyn>))
    }

    async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
        let v = self
            .store
            .lock()
            .get(&self.store.key(&self.path))
            .cloned()
            .ok_or_else(not_found)?;
        let r = range.to_content_range(v.content.len() as usize)?;
        Ok((
            RpRead::new(v.meta),
            v.content.slice(r.start as u64..r.end as u64)?,
        ))
    }
}

/// A write: the buffers are kept as they come (no copy) and stored at close.
pub struct MemWriter {
    store: Arc<MemStore>,
    path: String,
    op: OpWrite,
    bufs: Vec<Buffer>,
}

impl oio::Write for MemWriter {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        self.bufs.push(bs);
        Ok(())
    }

    async fn close(&mut self) -> Result<Metadata> {
        let bufs = std::mem::take(&mut self.bufs);
        let content = if bufs.len() == 1 {
            bufs.into_iter().next().expect("one buffer")
        } else {
            bufs.into_iter().flatten().collect()
        };
        let mut b = MetadataBuilder::file(content.len() as u64);
        b.last_modified(Timestamp::now());
        if let Some(um) = self.op.user_metadata() {
            b.user_metadata(um.into_iter().map(|(k, v)| (k.to_string(), v.to_string())));
        }
        let meta = b.build();
        let mut map = self.store.lock();
        let k = self.store.key(&self.path);
        let old = map.get(&k).map_or(0, |v| v.content.cost());
        self.store.fits(&map, content.len() as u64, old)?;
        let content = Content::Bytes(content);
        if self.op.if_not_exists() && map.contains_key(&k) {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                "key already exists",
            ));
        }
        map.insert(
            k,
            Value {
                content,
                meta: meta.clone(),
            },
        );
        Ok(meta)
    }

    async fn abort(&mut self) -> Result<()> {
        self.bufs.clear();
        Ok(())
    }
}

/// A listing taken at once.
pub struct MemLister(std::vec::IntoIter<oio::Entry>);

impl oio::List for MemLister {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        Ok(self.0.next())
    }
}

/// A copy, made at once; its result is the new object's metadata.
pub struct MemCopier(Metadata);

impl oio::Copy for MemCopier {
    async fn next(&mut self) -> Result<Option<usize>> {
        Ok(None)
    }

    async fn close(&mut self) -> Result<Metadata> {
        Ok(self.0.clone())
    }

    async fn abort(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Deletes one key (a directory's marker for `d/`).
pub struct MemDeleter {
    store: Arc<MemStore>,
}

impl oio::OneShotDelete for MemDeleter {
    async fn delete_once(&self, path: String, _: OpDelete) -> Result<()> {
        self.store.lock().remove(&self.store.key(&path));
        Ok(())
    }
}

impl Service for MemoryService {
    type Reader = MemReader;
    type Writer = MemWriter;
    type Lister = oio::HierarchyLister<MemLister>;
    type Deleter = oio::OneShotDeleter<MemDeleter>;
    type Copier = MemCopier;
    type Composer = ();

    fn info(&self) -> ServiceInfo {
        ServiceInfo::new("memory", "/", format!("{:p}", Arc::as_ptr(&self.store)))
    }

    fn capability(&self) -> Capability {
        Capability {
            stat: true,
            read: true,
            write: true,
            write_can_empty: true,
            write_with_user_metadata: true,
            write_with_if_not_exists: true,
            create_dir: true,
            delete: true,
            list: true,
            list_with_recursive: true,
            copy: true,
            rename: true,
            ..Default::default()
        }
    }

    async fn create_dir(
        &self,
        _: &OperationContext,
        path: &str,
        _: OpCreateDir,
    ) -> Result<RpCreateDir> {
        let k = self.store.key(path);
        let mut map = self.store.lock();
        if !map.contains_key(&k) {
            let mut b = MetadataBuilder::dir();
            b.last_modified(Timestamp::now());
            map.insert(
                k,
                Value {
                    content: Content::empty(),
                    meta: b.build(),
                },
            );
        }
        Ok(RpCreateDir::default())
    }

    async fn stat(&self, _: &OperationContext, path: &str, _: OpStat) -> Result<RpStat> {
        self.store.stat(path).map(RpStat::new)
    }

    fn read(&self, _: &OperationContext, path: &str, _: OpRead) -> Result<Self::Reader> {
        Ok(MemReader {
            store: self.store.clone(),
            path: path.to_string(),
        })
    }

    fn write(&self, _: &OperationContext, path: &str, op: OpWrite) -> Result<Self::Writer> {
        Ok(MemWriter {
            store: self.store.clone(),
            path: path.to_string(),
            op,
            bufs: Vec::new(),
        })
    }

    fn delete(&self, _: &OperationContext) -> Result<Self::Deleter> {
        Ok(oio::OneShotDeleter::new(MemDeleter {
            store: self.store.clone(),
        }))
    }

    fn list(&self, _: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
        let entries = self.store.list(path, args.recursive());
        Ok(oio::HierarchyLister::new(
            MemLister(entries.into_iter()),
            path,
            args.recursive(),
        ))
    }

    fn copy(&self, _: &OperationContext, from: &str, to: &str, _: OpCopy) -> Result<Self::Copier> {
        let (kf, kt) = (self.store.key(from), self.store.key(to));
        let mut v = self.store.lock().get(&kf).cloned().ok_or_else(not_found)?;
        // (the content is shared with the source, unless the daemon may write it in place)
        v.content.unshare(&self.store.files).map_err(|e| {
            Error::new(ErrorKind::Unexpected, "copying a memory file").set_source(e)
        })?;
        let mut map = self.store.lock();
        let old = map.get(&kt).map_or(0, |v| v.content.cost());
        self.store.fits(&map, v.content.cost(), old)?;
        // like S3's CopyObject: the content and user metadata, a new modification time
        let mut b = v.meta.into_builder();
        b.last_modified(Timestamp::now());
        v.meta = b.build();
        let meta = v.meta.clone();
        map.insert(kt, v);
        Ok(MemCopier(meta))
    }

    async fn rename(
        &self,
        _: &OperationContext,
        from: &str,
        to: &str,
        _: OpRename,
    ) -> Result<RpRename> {
        let mut map = self.store.lock();
        let (kf, kt) = (self.store.key(from), self.store.key(to));
        match map.remove(&kf) {
            Some(v) => {
                map.insert(kt, v);
            }
            // a directory: its whole subtree moves
            None if MemStore::has_prefix(&map, &format!("{kf}/")) => {
                drop(map);
                self.store.rename_tree(from, to)?;
            }
            None => return Err(not_found()),
        }
        Ok(RpRename::default())
    }

    async fn presign(&self, _: &OperationContext, _: &str, _: OpPresign) -> Result<RpPresign> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "memory mounts cannot presign",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opendal::Operator;

    fn op() -> (Operator, Arc<MemStore>) {
        let store = Arc::new(MemStore::default());
        (
            Operator::new(MemoryBuilder::new(store.clone())).unwrap(),
            store,
        )
    }

    #[tokio::test]
    async fn lists_children_only_and_keeps_metadata() {
        let (op, store) = op();
        for p in ["d/a", "d/b/x", "d/b/y/z", "d/c", "e"] {
            op.write_with(p, "data")
                .user_metadata([("mode".to_string(), "33188".to_string())])
                .await
                .unwrap();
        }
        op.create_dir("d/m/").await.unwrap();
        let names: Vec<String> = op
            .list("d/")
            .await
            .unwrap()
            .iter()
            .map(|e| e.path().to_string())
            .collect();
        assert_eq!(names, ["d/", "d/a", "d/b/", "d/c", "d/m/"]);
        let m = op.stat("d/a").await.unwrap();
        assert_eq!(m.user_metadata().unwrap().get("mode"), Some("33188"));
        assert!(m.last_modified().is_some());
        assert!(op.stat("d/b/").await.unwrap().is_dir());
        assert!(op.stat("d/b").await.unwrap().is_dir());
        assert!(op.stat("d/q").await.is_err());
        store.set_user_metadata("d/a", false, vec![("mode".into(), "33261".into())]);
        let m = op.stat("d/a").await.unwrap();
        assert_eq!(m.user_metadata().unwrap().get("mode"), Some("33261"));
        assert_eq!(op.read("d/a").await.unwrap().to_vec(), b"data");
        store.set_user_metadata("d/b", true, vec![("mode".into(), "16877".into())]);
        let m = op.stat("d/b/").await.unwrap();
        assert_eq!(m.user_metadata().unwrap().get("mode"), Some("16877"));
        store.rename_tree("d/b", "d/bb").unwrap();
        assert!(op.stat("d/bb/y/z").await.is_ok());
        assert!(op.stat("d/b/x").await.is_err());
        op.copy("d/a", "d/a2").await.unwrap();
        let m = op.stat("d/a2").await.unwrap();
        assert_eq!(m.user_metadata().unwrap().get("mode"), Some("33261"));
        op.rename("d/a2", "d/a3").await.unwrap();
        assert!(op.stat("d/a2").await.is_err());
        op.delete_with("d/").recursive(true).await.unwrap();
        assert!(op.stat("d/").await.is_err());
        assert!(op.stat("e").await.is_ok());
    }

    #[tokio::test]
    async fn counts_the_directories_directly_below_each_directory() {
        let (op, store) = op();
        for d in ["a/", "a/b/", "a/c/", "a/b/d/", "e/"] {
            op.create_dir(d).await.unwrap();
        }
        op.write("a/f", "x").await.unwrap();
        assert_eq!(
            [
                store.subdirs(""),
                store.subdirs("a"),
                store.subdirs("a/b/"),
                store.subdirs("e")
            ],
            [2, 2, 1, 0]
        );
        op.create_dir("a/b/").await.unwrap(); // exists: no change
        assert_eq!(store.subdirs("a"), 2);
        op.delete("a/c/").await.unwrap();
        assert_eq!(store.subdirs("a"), 1);
        op.rename("a/b", "e/b").await.unwrap();
        assert_eq!(
            [store.subdirs("a"), store.subdirs("e"), store.subdirs("e/b")],
            [0, 1, 1]
        );
    }
}

//! Stat and list on every backend: S3's file-or-prefix question answered in one round
//! trip, a directory marker's attributes, listings with each entry's metadata. A lookup
//! that brings a small file's first bytes with its attributes is in `first.rs`.

use super::*;
use crate::storage::mount::first::Found;

impl Mount {
    /// Stat a normalised path: `Ok(None)` when it does not exist.
    pub async fn stat(&self, path: &str) -> Result<Option<Entry>> {
        if path.is_empty() {
            return Ok(Some(self.dir_entry()));
        }
        self.check_inside(path)?;
        if self.prefix_dirs() {
            return self.stat_prefixed(path).await;
        }
        match self.op.stat(path).await {
            Ok(m) => return Ok(Some(self.entry_of(&m))),
            Err(e) if self.is_http() && e.kind() != opendal::ErrorKind::PermissionDenied => {
                // HTTP has no listing: `d` is a directory when `d/` answers (an index page,
                // or 403 from a server without one)
                // (or `d` redirected to `d/`, which our client does not follow)
                return match self.op.stat(&format!("{path}/")).await {
                    Ok(_) => Ok(Some(self.dir_entry())),
                    Err(_) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
                    Err(_) => Err(self.err(path, e)),
                };
            }
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) if e.kind() == opendal::ErrorKind::NotADirectory => return Ok(None),
            Err(e) if e.kind() == opendal::ErrorKind::PermissionDenied => {
                // Some servers refuse a name below a file (WebDAV's dav-server answers 403
                // to a PROPFIND of `f/g` when `f` is a file): that name does not exist.
                let parent = crate::storage::path::parent(path);
                let below_file = !parent.is_empty()
                    && matches!(
                        self.op.stat(parent).await,
                        Ok(m) if m.is_file()
                    );
                if below_file {
                    return Ok(None);
                }
                return Err(self.err(path, e));
            }
            Err(e) if self.is_webdav() => {
                // Apache (mod_dir's DirectorySlash) answers a PROPFIND of a collection named
                // without its slash with 301 to `d/`: ask `d/` before reporting the error
                return match self.op.stat(&format!("{path}/")).await {
                    Ok(m) if m.is_dir() => Ok(Some(self.entry_of(&m))),
                    _ => Err(self.err(path, e)),
                };
            }
            Err(e) => return Err(self.err(path, e)),
        }
        // (the memory store answers a directory's stat by its marker or its children)
        Ok(None)
    }

    /// S3: an object `p` is a file (it wins over a prefix of the same name), a prefix `p/`
    /// (marker or children) a directory. HEAD and LIST go out together so that a miss costs
    /// one round trip; a HEAD that finds the object answers without waiting for the LIST.
    pub(super) async fn stat_prefixed(&self, path: &str) -> Result<Option<Entry>> {
        let head = Box::pin(self.op.stat(path));
        let list = Box::pin(self.prefix_exists(path));
        let (head_result, is_dir) = match futures::future::select(head, list).await {
            futures::future::Either::Left((h, list)) => {
                if let Ok(m) = &h {
                    return Ok(Some(self.entry_of(m)));
                }
                (h, list.await)
            }
            futures::future::Either::Right((is_dir, head)) => (head.await, is_dir),
        };
        match head_result {
            Ok(m) => Ok(Some(self.entry_of(&m))),
            Err(_) if matches!(is_dir, Ok(true)) => Ok(Some(self.marker_entry(path).await)),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => is_dir.map(|_| None),
            // Both failed: the server is unreachable or failing; no third request.
            Err(e) if is_dir.is_err() => Err(self.err(path, e)),
            // Some servers (s3s-fs) fail a HEAD of what was once a prefix. A LIST is
            // authoritative: when it does not show the key, the key does not exist. When it
            // does, the HEAD's error is real and reported as it is.
            Err(e) => match self.key_listed(path).await? {
                false => is_dir.map(|_| None),
                true => Err(self.err(path, e)),
            },
        }
    }

    /// S3: a directory, with the attributes its marker `d/` carries (none when it has no
    /// marker, or the server cannot HEAD one).
    pub(super) async fn marker_entry(&self, path: &str) -> Entry {
        // opendal's stat of `d/` lists rather than asking the marker, so its attributes
        // are read with our own request where there is one
        let marker = format!("{path}/");
        if self.raw.is_some() || (self.obj_raw.is_some() && self.user_meta) {
            self.counters.count(counting::Req::Stat);
        }
        let raw = match (&self.raw, &self.obj_raw) {
            (Some(r), _) => Some(r.head_metadata(&marker).await),
            (None, Some(o)) if self.user_meta => Some(o.head_metadata(&marker).await),
            _ => None,
        };
        if let Some(r) = raw {
            let mut e = self.dir_entry();
            if let Ok(Some(kv)) = r {
                e.posix =
                    PosixMeta::from_user_metadata(kv.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                if let Some(t) = e.posix.mtime {
                    e.mtime = t;
                }
            }
            return e;
        }
        match self.op.stat(&marker).await {
            Ok(m) => {
                let mut e = self.entry_of(&m);
                e.kind = EntryKind::Dir;
                e.size = 0;
                e
            }
            Err(_) => self.dir_entry(),
        }
    }

    pub(super) async fn key_listed(&self, path: &str) -> Result<bool> {
        let mut l = self
            .op
            .lister_with(path)
            .limit(1)
            .await
            .map_err(|e| self.err(path, e))?;
        match l.try_next().await {
            Ok(Some(e)) => Ok(e.path().trim_start_matches('/') == path),
            Ok(None) => Ok(false),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(path, e)),
        }
    }

    pub(super) async fn prefix_exists(&self, path: &str) -> Result<bool> {
        let dir = format!("{path}/");
        let mut l = self
            .op
            .lister_with(&dir)
            .limit(1)
            .await
            .map_err(|e| self.err(path, e))?;
        match l.try_next().await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Ok(false),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(path, e)),
        }
    }

    /// Stat that turns a missing path into NotFound.
    pub async fn stat_required(&self, path: &str) -> Result<Entry> {
        self.stat(path).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                self.ctx(path),
                "no such file or directory",
            )
        })
    }

    /// The children of a directory, by name (the directory itself filtered out; on S3 a name
    /// that is both an object and a prefix shows once, as the file).
    pub async fn list(&self, path: &str) -> Result<Vec<(String, Entry)>> {
        Ok(self
            .list_first(path, 0)
            .await?
            .into_iter()
            .map(|(n, f)| (n, f.entry))
            .collect())
    }

    /// [`Mount::list`], where each S3 file of 1 to `first` bytes is asked by a GET of its
    /// bytes instead of a HEAD (the same one request, whose body serves the file's next open).
    pub async fn list_first(&self, path: &str, first: u64) -> Result<Vec<(String, Found)>> {
        self.check_inside(path)?;
        let dir = if path.is_empty() {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let lister = self.op.lister(&dir).await.map_err(|e| self.err(path, e))?;
        let entries: Vec<opendal::Entry> =
            lister.try_collect().await.map_err(|e| self.err(path, e))?;
        let mut out: Vec<(String, Found)> = Vec::with_capacity(entries.len());
        let mut need_stat = Vec::new();
        for e in entries {
            let p = e.path().trim_start_matches('/');
            if p == dir.trim_start_matches('/') || p.is_empty() {
                continue;
            }
            let name = e.name().trim_end_matches('/').to_string();
            if name.is_empty() {
                continue;
            }
            let meta = e.metadata();
            let mut entry = self.entry_of(meta);
            if e.path().ends_with('/') {
                entry.kind = EntryKind::Dir;
                entry.size = 0;
            }
            // Object listings carry no user metadata: each entry is asked for its own
            if (self.prefix_dirs() && self.user_meta)
                || (entry.kind == EntryKind::File && meta.last_modified().is_none())
            {
                need_stat.push(out.len());
            }
            out.push((name, Found { entry, first: None }));
        }
        if !need_stat.is_empty() {
            let stats: Vec<(usize, Option<Found>)> =
                futures::stream::iter(need_stat.into_iter().map(|i| {
                    let p = path::join(path, &out[i].0);
                    let dir = out[i].1.entry.is_dir();
                    let size = out[i].1.entry.size;
                    async move {
                        if dir && self.prefix_dirs() {
                            let e = self.marker_entry(&p).await;
                            return Ok((
                                i,
                                Some(Found {
                                    entry: e,
                                    first: None,
                                }),
                            ));
                        }
                        if let (Some(raw), true) = (&self.raw, size > 0 && size <= first) {
                            self.counters.count(counting::Req::Read);
                            return match raw.get_first(&p, first).await? {
                                Some(f) => Ok((i, self.first_found(&p, f).await?)),
                                None => Ok((i, None)),
                            };
                        }
                        match self.op.stat(&p).await {
                            Ok(m) => Ok((
                                i,
                                Some(Found {
                                    entry: self.entry_of(&m),
                                    first: None,
                                }),
                            )),
                            // removed since the listing
                            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok((i, None)),
                            Err(e) => Err(self.err(&p, e)),
                        }
                    }
                }))
                .buffer_unordered(LIST_STATS)
                .try_collect()
                .await?;
            let mut gone = Vec::new();
            for (i, e) in stats {
                match e {
                    Some(e) if !(e.entry.is_dir() ^ out[i].1.entry.is_dir()) => out[i].1 = e,
                    Some(_) => {}
                    None => gone.push(i),
                }
            }
            gone.sort_unstable();
            for i in gone.into_iter().rev() {
                out.remove(i);
            }
        }
        if self.prefix_dirs() {
            // a name that is both an object and a prefix shows once, as the file (as stat does)
            out.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(a.1.entry.is_dir().cmp(&b.1.entry.is_dir()))
            });
            out.dedup_by(|later, first| later.0 == first.0);
        }
        Ok(out)
    }
}

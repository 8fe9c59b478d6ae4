//! Directories: opendir (the listing taken once, so offsets stay stable), readdir through a
//! [`DirReplier`], and the inode numbers of entries (readdirplus counts a lookup for each
//! entry the reply took, and only those).

use super::*;

impl Fs {
    /// A directory's entries, sorted by name: the mounts for the root, the mount's side's
    /// listing otherwise.
    pub(super) async fn list(&self, t: &Target) -> Result<Vec<DirEntry<Meta>>> {
        let mut out = match t {
            Target::Root => {
                let mut out = Vec::with_capacity(self.mounts.len());
                for (i, m) in self.mounts.iter().enumerate() {
                    let ct = Target::Path(i, String::new());
                    let meta = self.meta_required(&ct).await?;
                    out.push(DirEntry {
                        name: m.name().to_string(),
                        target: Some(ct),
                        meta,
                    });
                }
                out
            }
            Target::Path(m, p) => match self.side(*m) {
                Side::Host(h) => h.list(p)?,
                Side::Object(o) => o.list(t, p).await?,
            },
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Open a directory (it must be one). Its listing is taken by the first read, from
    /// offset 0, and again by each rewind; later offsets read that listing, so they stay
    /// stable.
    pub async fn opendir(&self, ino: u64) -> Result<u64> {
        let t = self.target(ino)?;
        let meta = self.meta_required(&t).await?;
        if meta.kind != FileType::Directory {
            return Err(Error::not_a_directory(self.ctx(&t)));
        }
        Ok(self.handles.open_dir(ino, meta))
    }

    /// The listing an open directory serves: `.`, `..` and the entries.
    async fn dir_entries(&self, ino: u64) -> Result<Vec<DirEntry<Meta>>> {
        let t = self.target(ino)?;
        let meta = self.meta_required(&t).await?;
        if meta.kind != FileType::Directory {
            return Err(Error::not_a_directory(self.ctx(&t)));
        }
        let parent_meta = match &t {
            Target::Path(m, p) if !p.is_empty() => self
                .meta(&Target::Path(*m, path::parent(p).to_string()))
                .await?
                .unwrap_or_else(|| self.dir_meta(None)),
            _ => self.dir_meta(None),
        };
        let mut entries = vec![
            DirEntry {
                name: ".".into(),
                target: None,
                meta,
            },
            DirEntry {
                name: "..".into(),
                target: None,
                meta: parent_meta,
            },
        ];
        entries.extend(self.list(&t).await?);
        Ok(entries)
    }

    /// Entries of an open directory from `offset` on: (entry, offset of the next one). A
    /// read from offset 0 lists the directory (see [`Fs::opendir`]).
    pub async fn readdir(&self, fh: u64, offset: u64) -> Result<Vec<(DirEntry<Meta>, u64)>> {
        let d = self.handles.dir(fh)?;
        if d.lists_at(offset) {
            d.relist(self.dir_entries(d.ino).await?);
        }
        Ok(d.entries()
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, e)| (e.clone(), i as u64 + 1))
            .collect())
    }

    /// Answer a readdir (or, with `plus`, a readdirplus) of the open directory `fh` of
    /// inode `ino` from `offset` on, into `reply` until it is full. With `plus` each entry the
    /// reply takes counts as a kernel lookup; one it refuses does not.
    pub async fn reply_dir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        plus: bool,
        reply: &mut impl DirReplier,
    ) -> Result<()> {
        self.stats.request(self.mount_of(ino), "readdir");
        let ttl = self.ttl();
        for (e, next) in self.readdir(fh, offset).await? {
            let eino = self.entry_ino(ino, &e, plus);
            if reply.add(eino, &self.attr(eino, &e.meta), next, &e.name, ttl) {
                if plus && e.target.is_some() {
                    // not sent: the kernel will not count this lookup
                    self.forget(eino, 1);
                }
                break;
            }
        }
        Ok(())
    }

    /// The inode number to show for a listed entry. With `count`, a kernel lookup is
    /// counted (readdirplus); `.` and `..` never count.
    fn entry_ino(&self, dir_ino: u64, e: &DirEntry<Meta>, count: bool) -> u64 {
        match &e.target {
            None if e.name == "." => dir_ino,
            None => ROOT,
            Some(t) if count => self.intern(t.clone(), &e.meta),
            Some(t) => self.inodes.number(t, self.host_key(t, &e.meta)),
        }
    }

    /// Close a directory.
    pub fn releasedir(&self, fh: u64) {
        self.handles.release_dir(fh);
    }
}

/// Where a readdir's entries go (the kernel's reply buffer, in the adapter).
pub trait DirReplier {
    /// Add one entry: `ino` is the inode the kernel will know it by, `attr` its attributes
    /// (`attr.ino` is its st_ino, the host's on local mounts), `next` the offset after it and
    /// `ttl` how long its attributes may be kept. True when the reply is full and the entry
    /// was not taken.
    fn add(&mut self, ino: u64, attr: &FileAttr, next: u64, name: &str, ttl: Duration) -> bool;
}

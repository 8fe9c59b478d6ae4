//! Directories: listings (with files staged here and directories made here), opendir,
//! readdir and the inode numbers of entries.

use super::*;

impl Fs {
    pub(super) async fn list(&self, t: &Target) -> Result<Vec<DirEntry<Meta>>> {
        let mut out = Vec::new();
        match t {
            Target::Root => {
                for (i, m) in self.mounts.iter().enumerate() {
                    let ct = Target::Path(i, String::new());
                    let meta = self.meta_required(&ct).await?;
                    out.push(DirEntry {
                        name: m.name().to_string(),
                        target: Some(ct),
                        meta,
                    });
                }
            }
            Target::Path(m, p) => {
                if let Some(host) = self.host(*m, p)? {
                    let rd =
                        std::fs::read_dir(&host).map_err(|e| Error::from_io(self.ctx(t), e))?;
                    for de in rd {
                        let de = de.map_err(|e| Error::from_io(self.ctx(t), e))?;
                        let Some(name) = de.file_name().to_str().map(str::to_string) else {
                            tracing::warn!(dir = %self.ctx(t), name = ?de.file_name(), "a non-UTF-8 name is not shown");
                            continue;
                        };
                        let md = match de.metadata() {
                            Ok(md) => md,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(Error::from_io(self.ctx(t), e)),
                        };
                        out.push(DirEntry {
                            target: Some(Target::Path(*m, path::join(p, &name))),
                            name,
                            meta: local::meta(&md),
                        });
                    }
                } else {
                    if let Some(listed) = self.listed(t, *m, p) {
                        out = listed;
                    } else {
                        let started = self.listings.begin();
                        let mut names = HashSet::new();
                        for (name, e) in self.mount(*m).list(p).await? {
                            let ct = Target::Path(*m, path::join(p, &name));
                            let meta = self.entry_meta(&ct, &e);
                            self.cache.put(ct.clone(), Some(meta.clone()));
                            names.insert(name.clone());
                            out.push(DirEntry {
                                name,
                                target: Some(ct),
                                meta,
                            });
                        }
                        self.listings.put(t.clone(), names, started);
                    }
                    let mut at: std::collections::HashMap<String, usize> = out
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (e.name.clone(), i))
                        .collect();
                    // Directories made here (servers without markers keep none of them).
                    for d in self.dirs.made_children(*m, p) {
                        let Target::Path(_, dp) = &d else { continue };
                        let name = path::basename(dp).to_string();
                        if !at.contains_key(&name) {
                            at.insert(name.clone(), out.len());
                            out.push(DirEntry {
                                name,
                                meta: self.dir_meta(Some(&d)),
                                target: Some(d),
                            });
                        }
                    }
                    // Files open and written here, possibly not uploaded yet (the inodes
                    // known inside this directory, not every open file).
                    for (ft, ino) in self.inodes.children(*m, p) {
                        let Some(f) = self.handles.open_file(ino) else {
                            continue;
                        };
                        let Some(size) = f.staged_size() else {
                            continue;
                        };
                        let Target::Path(_, fp) = &ft else { continue };
                        let meta = self.staged_meta(&f, size);
                        let name = path::basename(fp).to_string();
                        match at.get(&name) {
                            Some(&i) => out[i].meta = meta,
                            None => out.push(DirEntry {
                                name,
                                target: Some(ft.clone()),
                                meta,
                            }),
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// An object-backend listing answered from a fresh listing of its names and the
    /// attribute cache, with no request; `None` when any entry is unknown. Directories made
    /// here, memory symlinks and staged files are merged by the caller, as after a request.
    fn listed(&self, t: &Target, m: usize, p: &str) -> Option<Vec<DirEntry<Meta>>> {
        let names = self.listings.names(t)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let ct = Target::Path(m, path::join(p, &name));
            match self.cache.get(&ct) {
                Some(Some(meta)) => out.push(DirEntry {
                    name,
                    target: Some(ct),
                    meta,
                }),
                _ if self.dirs.is_made(&ct) || self.staged(&ct).is_some() => {}
                _ => return None,
            }
        }
        self.stats.add(m, |s| &s.cache_hits, 1);
        Some(out)
    }

    /// Open a directory: its listing is taken now, so offsets stay stable.
    pub async fn opendir(&self, ino: u64) -> Result<u64> {
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
        Ok(self.handles.open_dir(ino, entries))
    }

    /// Entries of an open directory from `offset` on: (entry, offset of the next one).
    pub fn readdir(&self, fh: u64, offset: u64) -> Result<Vec<(DirEntry<Meta>, u64)>> {
        let d = self.handles.dir(fh)?;
        Ok(d.entries
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, e)| (e.clone(), i as u64 + 1))
            .collect())
    }

    /// The inode number to show for a listed entry. With `count`, a kernel lookup is
    /// counted (readdirplus); `.` and `..` never count.
    pub fn entry_ino(&self, dir_ino: u64, e: &DirEntry<Meta>, count: bool) -> u64 {
        match &e.target {
            None if e.name == "." => dir_ino,
            None => ROOT,
            Some(t) if count => self.inodes.lookup(t.clone()),
            Some(t) => self.inodes.peek(t).unwrap_or(u64::MAX >> 1),
        }
    }

    /// Close a directory.
    pub fn releasedir(&self, fh: u64) {
        self.handles.release_dir(fh);
    }
}

//! A lookup that brings a file's first bytes: on S3 a ranged GET takes the place of stat's
//! HEAD, so that one request answers whether the object exists, its attributes and size,
//! and the first read of a small file (the daemon's lookup, then open and read, costs one
//! request instead of three).

use super::*;
use crate::storage::s3raw::{prefixed_headers, First};

/// What a lookup found: the entry, and a file's first bytes when its request brought them.
#[derive(Debug, Clone)]
pub struct Found {
    /// The entry, as [`Mount::stat`] gives it.
    pub entry: Entry,
    /// The file's bytes from offset 0: all of a file of at most the bytes asked for.
    pub first: Option<Bytes>,
}

impl Found {
    fn plain(entry: Entry) -> Found {
        Found { entry, first: None }
    }
}

/// What was known of a path before (an expired attribute): which request to send first,
/// never the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Was {
    /// Nothing.
    Unknown,
    /// A directory.
    Dir,
    /// A file of no bytes (a ranged GET of one is refused without its metadata).
    Empty,
    /// A file with bytes.
    File,
}

impl Mount {
    /// Stat `path` and, on S3, take the first `n` bytes of a file from the same request: a
    /// ranged GET instead of a HEAD. `was` picks the request:
    /// - a known file: the GET alone, and the prefix only when the GET finds nothing;
    /// - a known empty file: a HEAD alone;
    /// - a known directory: as [`Mount::stat`] asks;
    /// - an unknown name: the GET and the LIST together (one round trip).
    ///
    /// Elsewhere this is [`Mount::stat`].
    pub async fn stat_first(&self, path: &str, n: u64, was: Was) -> Result<Option<Found>> {
        let raw = match &self.raw {
            Some(r) if self.prefix_dirs() && !path.is_empty() && was != Was::Dir => r,
            _ => return Ok(self.stat(path).await?.map(Found::plain)),
        };
        self.check_inside(path)?;
        if was == Was::Empty {
            return self.first_found(path, First::Empty).await;
        }
        let get = async {
            self.counters.count(counting::Req::Read);
            raw.get_first(path, n).await
        };
        if was == Was::File {
            return match get.await? {
                Some(f) => self.first_found(path, f).await,
                None if self.prefix_exists(path).await? => {
                    Ok(Some(Found::plain(self.marker_entry(path).await)))
                }
                None => Ok(None),
            };
        }
        let get = Box::pin(get);
        let list = Box::pin(self.prefix_exists(path));
        let (got, is_dir) = match futures::future::select(get, list).await {
            futures::future::Either::Left((g, list)) => {
                if let Ok(Some(f)) = g {
                    return self.first_found(path, f).await;
                }
                (g, list.await)
            }
            futures::future::Either::Right((is_dir, get)) => (get.await, is_dir),
        };
        match (got, is_dir) {
            (Ok(Some(f)), _) => self.first_found(path, f).await,
            (Ok(None), Ok(true)) => Ok(Some(Found::plain(self.marker_entry(path).await))),
            (Ok(None), Ok(false)) => Ok(None),
            (Ok(None), Err(e)) => Err(e),
            (Err(_), Ok(true)) => Ok(Some(Found::plain(self.marker_entry(path).await))),
            (Err(e), Err(_)) => Err(e),
            // The GET failed where the LIST did not: ask as stat does (a server that fails
            // a GET of what was once a prefix, as some fail a HEAD), and report its answer.
            (Err(_), Ok(false)) => Ok(self.stat_prefixed(path).await?.map(Found::plain)),
        }
    }

    /// The entry that a first GET's headers describe, with its bytes; an object of no bytes
    /// (whose ranged GET carries no metadata) is asked by a HEAD: it exists, and a file
    /// wins over a prefix of its name, so no LIST.
    pub(super) async fn first_found(&self, path: &str, f: First) -> Result<Option<Found>> {
        let (headers, body) = match f {
            First::Found { headers, body } => (headers, body),
            First::Empty => {
                return match self.op.stat(path).await {
                    Ok(m) => Ok(Some(Found::plain(self.entry_of(&m)))),
                    // gone since: ask as stat does
                    Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                        Ok(self.stat_prefixed(path).await?.map(Found::plain))
                    }
                    Err(e) => Err(self.err(path, e)),
                };
            }
        };
        self.counters
            .bytes_read
            .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let meta =
            opendal::raw::parse_into_metadata(path, &headers).map_err(|e| self.err(path, e))?;
        let user = prefixed_headers(&headers, "x-amz-meta-");
        let posix =
            PosixMeta::from_user_metadata(user.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let entry = self.entry_with(&meta, posix);
        // (a body longer than the object, from a server that ignored the range, is cut)
        let first = body.slice(..body.len().min(entry.size as usize));
        Ok(Some(Found {
            first: (entry.kind == EntryKind::File).then_some(first),
            entry,
        }))
    }
}

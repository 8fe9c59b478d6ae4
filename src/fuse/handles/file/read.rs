//! Reading an open file: from the host file, the staged copy, or the backend through a
//! read-ahead window of parallel ranged reads that grows with sequential reads.

use super::*;

/// Smallest and largest read-ahead windows of a sequential reader.
const MIN_WINDOW: u64 = 256 << 10;
const MAX_WINDOW: u64 = 16 << 20;

/// Per-handle read-ahead state: the last window fetched, where a sequential reader will
/// read next, and the next window being fetched.
#[derive(Debug, Default)]
pub(super) struct ReadAhead {
    start: u64,
    buf: Bytes,
    next: u64,
    window: u64,
    pending: Option<Prefetch>,
}

#[derive(Debug)]
struct Prefetch {
    start: u64,
    end: u64,
    task: tokio::task::JoinHandle<Result<Bytes>>,
}

impl ReadAhead {
    fn slice(&self, off: u64, end: u64) -> Option<Bytes> {
        let buf_end = self.start + self.buf.len() as u64;
        (off >= self.start && end <= buf_end).then(|| {
            let s = (off - self.start) as usize;
            self.buf.slice(s..s + (end - off) as usize)
        })
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.task.abort();
        }
    }
}

impl FileHandle {
    /// Serve this new handle's first reads from `first`: the file's bytes from offset 0
    /// (all of them, or the first `first.len()`), which the request of its lookup brought
    /// with the attributes the open used. Nothing when the open file's size is not the one
    /// they came with (another handle changed it).
    pub fn seed(&self, first: Bytes, size: u64) {
        if self.file.size() != size || first.len() as u64 > size {
            return;
        }
        if let Ok(mut ra) = self.readahead.try_lock() {
            ra.start = 0;
            ra.buf = first;
        }
    }
}

impl OpenFile {
    /// Read `len` bytes at `off` (short at the end of the file).
    pub async fn read(&self, path: &str, fh: &FileHandle, off: u64, len: u32) -> Result<Bytes> {
        let file = {
            let mut body = self.body.lock().await;
            if let Body::Staged { base: Some(b), .. } = &*body {
                if off + len as u64 > b.prefix {
                    self.fill_base(&mut body, path).await?;
                }
            }
            match &*body {
                Body::Native(f) | Body::Staged { file: f, .. } => Some(f.clone()),
                Body::Remote => None,
            }
        };
        if let Some(f) = file {
            let mut buf = vec![0u8; len as usize];
            let mut got = 0usize;
            while got < buf.len() {
                match f.read_at(&mut buf[got..], off + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err(&self.mount.ctx(path), e)),
                }
            }
            buf.truncate(got);
            return Ok(Bytes::from(buf));
        }
        match self.read_remote(path, fh, off, len).await {
            Ok(b) => Ok(b),
            // The size came from what the daemon knew (a cache trusted for a TTL); another
            // client may have replaced the object since: read it again as it is now. Only
            // for the errors such a change gives (a dead server is not asked twice).
            Err(e) if changed_behind(&e) => match self.mount.stat(path).await {
                Ok(Some(now)) if !now.is_dir() && now.size != self.size() => {
                    tracing::info!(
                        path,
                        was = self.size(),
                        now = now.size,
                        "object changed behind the daemon; read again"
                    );
                    self.size.store(now.size, Ordering::Release);
                    *fh.readahead.lock().await = ReadAhead::default();
                    self.read_remote(path, fh, off, len).await
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Reads from the backend with a read-ahead window that doubles while access is
    /// sequential (up to [`MAX_WINDOW`]) and resets on a random access. While the kernel reads
    /// one window, the next is already being fetched in the background. The kernel sends
    /// read-ahead requests concurrently and not always in order, so "sequential" means
    /// "forward, within a window of the stream", and one handle's reads are served in turn.
    async fn read_remote(&self, path: &str, fh: &FileHandle, off: u64, len: u32) -> Result<Bytes> {
        let size = self.size.load(Ordering::Acquire);
        let end = (off + len as u64).min(size);
        if off >= end {
            return Ok(Bytes::new());
        }
        let mut ra = fh.readahead.lock().await;
        let reach = ra.next + ra.window.max(MIN_WINDOW);
        let sequential = ra.next != 0 && off >= ra.start && off <= reach;
        ra.next = if sequential { ra.next.max(end) } else { end };
        if let Some(out) = ra.slice(off, end) {
            if sequential {
                self.prefetch(&mut ra, path, size);
            }
            return Ok(out);
        }
        let pending = match ra.pending.take() {
            Some(p) if p.start <= off && off < p.end => Some(p),
            Some(p) => {
                p.task.abort();
                None
            }
            None => None,
        };
        let (start, data) = match pending {
            Some(p) => match p.task.await {
                Ok(Ok(data)) => (p.start, data),
                Ok(Err(e)) => return Err(e),
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        self.mount.ctx(path),
                        format!("read-ahead task failed: {e}"),
                    ))
                }
            },
            None => {
                ra.window = if sequential {
                    (ra.window * 2).clamp(MIN_WINDOW, MAX_WINDOW)
                } else {
                    0
                };
                let fetch_end = (off + ra.window).max(end).min(size);
                (off, self.mount.read_range(path, off, fetch_end).await?)
            }
        };
        ra.start = start;
        ra.buf = data;
        if sequential {
            ra.window = (ra.window * 2).clamp(MIN_WINDOW, MAX_WINDOW);
            self.prefetch(&mut ra, path, size);
        }
        match ra.slice(off, end) {
            Some(out) => Ok(out),
            // A read straddling the end of the window: the rest comes straight from the
            // backend. Never a short read before EOF: the kernel would take it for EOF.
            None if off >= ra.start && off < ra.start + ra.buf.len() as u64 => {
                let buf_end = ra.start + ra.buf.len() as u64;
                let head = ra.buf.slice((off - ra.start) as usize..);
                let tail = self.mount.read_range(path, buf_end, end).await?;
                let mut out = bytes::BytesMut::with_capacity((end - off) as usize);
                out.extend_from_slice(&head);
                out.extend_from_slice(&tail);
                Ok(out.freeze())
            }
            None => self.mount.read_range(path, off, end).await,
        }
    }

    /// Start fetching the window after the buffer, unless it is under way or at the end.
    fn prefetch(&self, ra: &mut ReadAhead, path: &str, size: u64) {
        let from = ra.start + ra.buf.len() as u64;
        if ra.pending.is_some() || from >= size || ra.window == 0 {
            return;
        }
        let to = (from + ra.window).min(size);
        let mount = self.mount.clone();
        let path = path.to_string();
        ra.pending = Some(Prefetch {
            start: from,
            end: to,
            task: tokio::spawn(async move { mount.read_range(&path, from, to).await }),
        });
    }
}

/// Whether a failed ranged read looks like the object changed under a size the daemon
/// trusted: gone, shorter than the range (416), or a body shorter than the range asked
/// (opendal's "unexpected data size", reported with no kind of its own).
fn changed_behind(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidRange)
        || e.message().contains("unexpected data size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_changed_object_is_asked_again() {
        let e = |k, m: &str| Error::new(k, "s3:f", m);
        assert!(changed_behind(&e(ErrorKind::NotFound, "gone")));
        assert!(changed_behind(&e(ErrorKind::InvalidRange, "416")));
        assert!(changed_behind(&e(
            ErrorKind::Backend,
            "Unexpected (persistent) at read => reader got unexpected data size"
        )));
        // a dead or hung server: its error is returned as is, with no second request
        assert!(!changed_behind(&e(
            ErrorKind::Backend,
            "Unexpected (temporary) at read => send http request: connection refused"
        )));
    }
}

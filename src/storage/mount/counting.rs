//! Backend requests counted by kind: an opendal layer over every mount's operator, plus the
//! raw metadata requests the mount makes beside it. What an operator scrapes to see what a
//! workload costs (the daemon's `/metrics`), and what a library user can read too
//! ([`Mount::backend_requests`](super::Mount::backend_requests)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opendal::raw::oio;
use opendal::raw::*;
use opendal::{Buffer, BytesRange, Capability, Metadata, OperationContext, Result};

/// The kinds of backend request, in report order. On object stores `stat` is a HEAD,
/// `read` one ranged GET, `write` one upload (a PUT, or a whole multipart upload), `list`
/// one listing (its pages included), `metadata` one in-place metadata change.
pub const KINDS: [&str; 10] = [
    "stat",
    "read",
    "write",
    "list",
    "delete",
    "copy",
    "rename",
    "create_dir",
    "presign",
    "metadata",
];

/// A request kind (an index into [`KINDS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Req {
    /// A stat (HEAD).
    Stat,
    /// A ranged read (GET).
    Read,
    /// An upload.
    Write,
    /// A listing.
    List,
    /// A delete.
    Delete,
    /// A server-side copy.
    Copy,
    /// A native rename.
    Rename,
    /// A directory made.
    CreateDir,
    /// A presigned URL made (no request is sent).
    Presign,
    /// An in-place metadata change (S3 CopyObject onto itself, Azure Set Blob Metadata,
    /// GCS PATCH).
    Metadata,
}

/// A mount's request counters and the bytes its backend moved.
#[derive(Debug, Default)]
pub struct BackendCounters {
    requests: [AtomicU64; KINDS.len()],
    /// Bytes the backend returned to reads.
    pub bytes_read: AtomicU64,
    /// Bytes sent to the backend by writes.
    pub bytes_written: AtomicU64,
    /// Requests that failed.
    pub errors: AtomicU64,
}

impl BackendCounters {
    /// Count one request.
    pub fn count(&self, r: Req) {
        self.requests[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn result<T>(&self, r: &Result<T>) {
        if r.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests so far by kind, every kind listed.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        KINDS
            .iter()
            .zip(&self.requests)
            .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The opendal layer that counts into a [`BackendCounters`].
#[derive(Debug, Clone)]
pub struct CountingLayer(pub Arc<BackendCounters>);

impl Layer for CountingLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(CountingService {
            inner,
            c: self.0.clone(),
        })
    }
}

#[doc(hidden)]
#[derive(Debug)]
pub struct CountingService {
    inner: Servicer,
    c: Arc<BackendCounters>,
}

#[doc(hidden)]
pub struct Counted<R> {
    inner: R,
    c: Arc<BackendCounters>,
}

impl Service for CountingService {
    type Reader = Counted<oio::Reader>;
    type Writer = Counted<oio::Writer>;
    type Lister = oio::Lister;
    type Deleter = Counted<oio::Deleter>;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> Result<RpCreateDir> {
        self.c.count(Req::CreateDir);
        let r = self.inner.create_dir(ctx, path, args).await;
        self.c.result(&r);
        r
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<Self::Reader> {
        self.inner.read(ctx, path, args).map(|inner| Counted {
            inner,
            c: self.c.clone(),
        })
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<Self::Writer> {
        self.c.count(Req::Write);
        self.inner.write(ctx, path, args).map(|inner| Counted {
            inner,
            c: self.c.clone(),
        })
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> Result<Self::Copier> {
        self.c.count(Req::Copy);
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> Result<Self::Composer> {
        self.c.count(Req::Write);
        self.inner.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> Result<RpRename> {
        self.c.count(Req::Rename);
        let r = self.inner.rename(ctx, from, to, args).await;
        self.c.result(&r);
        r
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> Result<RpRestore> {
        self.inner.restore(ctx, path, args).await
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
        self.c.count(Req::Stat);
        let r = self.inner.stat(ctx, path, args).await;
        // (a miss is an answer, not a failure)
        if matches!(&r, Err(e) if e.kind() != opendal::ErrorKind::NotFound) {
            self.c.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn delete(&self, ctx: &OperationContext) -> Result<Self::Deleter> {
        self.inner.delete(ctx).map(|inner| Counted {
            inner,
            c: self.c.clone(),
        })
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
        self.c.count(Req::List);
        self.inner.list(ctx, path, args)
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> Result<RpPresign> {
        self.c.count(Req::Presign);
        self.inner.presign(ctx, path, args).await
    }
}

impl<R: oio::Read> oio::Read for Counted<R> {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        self.c.count(Req::Read);
        let r = self.inner.open(range).await;
        self.c.result(&r);
        let (rp, stream) = r?;
        Ok((
            rp,
            Box::new(Counted {
                inner: stream,
                c: self.c.clone(),
            }) as Box<dyn oio::ReadStreamDyn>,
        ))
    }

    async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
        self.c.count(Req::Read);
        let r = self.inner.read(range).await;
        self.c.result(&r);
        if let Ok((_, b)) = &r {
            self.c
                .bytes_read
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<R: oio::ReadStream> oio::ReadStream for Counted<R> {
    async fn read(&mut self) -> Result<Buffer> {
        let r = self.inner.read().await;
        if let Ok(b) = &r {
            self.c
                .bytes_read
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<R: oio::Write> oio::Write for Counted<R> {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        let n = bs.len() as u64;
        let r = self.inner.write(bs).await;
        if r.is_ok() {
            self.c.bytes_written.fetch_add(n, Ordering::Relaxed);
        }
        self.c.result(&r);
        r
    }

    async fn copy_from(&mut self, path: &str, args: OpRead, range: BytesRange) -> Result<()> {
        self.inner.copy_from(path, args, range).await
    }

    async fn close(&mut self) -> Result<Metadata> {
        let r = self.inner.close().await;
        self.c.result(&r);
        r
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

impl<R: oio::Delete> oio::Delete for Counted<R> {
    async fn delete(&mut self, path: &str, args: OpDelete) -> Result<()> {
        self.c.count(Req::Delete);
        self.inner.delete(path, args).await
    }

    async fn close(&mut self) -> Result<()> {
        let r = self.inner.close().await;
        self.c.result(&r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_operations_by_kind_and_bytes() {
        let c = Arc::new(BackendCounters::default());
        let op = opendal::Operator::new(opendal::services::Memory::default())
            .unwrap()
            .layer(CountingLayer(c.clone()));
        op.write("a", vec![1u8; 10]).await.unwrap();
        assert_eq!(op.read("a").await.unwrap().len(), 10);
        op.stat("a").await.unwrap();
        assert!(op.stat("missing").await.is_err());
        let _ = op.list("/").await.unwrap();
        op.delete("a").await.unwrap();
        let got: std::collections::HashMap<_, _> = c.snapshot().into_iter().collect();
        assert_eq!(got["write"], 1);
        assert_eq!(got["read"], 1);
        assert_eq!(got["stat"], 2);
        assert_eq!(got["list"], 1);
        assert_eq!(got["delete"], 1);
        assert_eq!(c.bytes_written.load(Ordering::Relaxed), 10);
        assert_eq!(c.bytes_read.load(Ordering::Relaxed), 10);
        assert_eq!(c.errors.load(Ordering::Relaxed), 0);
    }
}

//! A mount's metadata writes: the POSIX attributes an object or a directory marker
//! carries, changed in place, and the empty objects of special files.

use bytes::Bytes;

use super::Mount;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::objraw::ObjRaw;
use crate::storage::posix::PosixMeta;
use crate::storage::s3raw::MAX_COPY;

impl Mount {
    /// Replace the POSIX attributes an object (or a directory's marker, made when missing)
    /// carries, without rewriting its bytes: one CopyObject onto itself on S3, in place on
    /// memory. Local mounts keep attributes on disk (not here): Unsupported.
    pub async fn set_meta(&self, path: &str, dir: bool, size: u64, meta: &PosixMeta) -> Result<()> {
        self.check_write(path)?;
        let mut kv = meta.to_user_metadata();
        // S3's CopyObject and Azure's Set Blob Metadata replace the whole set (and S3 the
        // Content-Type): a file's other user metadata is read first and kept (one HEAD;
        // memory in process). GCS merges, so it needs none.
        let replaces_all = self.mem.is_some() || self.raw.is_some() || self.is_azure();
        let mut content_type = None;
        if !dir && replaces_all {
            if let Ok(m) = self.op.stat(path).await {
                kv.extend(
                    m.user_metadata()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| {
                            !crate::storage::posix::KEYS.contains(&k.to_ascii_lowercase().as_str())
                        })
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
                );
                content_type = m.content_type().map(str::to_string);
            }
        }
        if let Some(store) = &self.mem {
            store.set_user_metadata(path, dir, kv);
            return Ok(());
        }
        if let (Some(o), true) = (&self.obj_raw, self.user_meta) {
            return self.set_meta_raw(o, path, dir, &kv).await;
        }
        let Some(raw) = &self.raw else {
            if dir && !path.is_empty() && self.local_root().is_none() && self.caps.create_dir {
                // a service with real directories (WebDAV, SFTP, FTP) or markers (Azure,
                // GCS): the directory is made; its mode and owner are the daemon's to show
                return self
                    .op
                    .create_dir(&format!("{path}/"))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.err(path, e));
            }
            return Err(Error::new(
                ErrorKind::Unsupported,
                self.ctx(path),
                if self.local_root().is_some() {
                    "attributes of local files live on disk"
                } else {
                    "this backend keeps no modes, owners or times of its own"
                },
            ));
        };
        if dir {
            if path.is_empty() {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    self.ctx(path),
                    "the root of an S3 mount has no marker to carry attributes",
                ));
            }
            self.counters.count(super::counting::Req::Write);
            return raw
                .put_empty(&format!("{path}/"), &kv)
                .await
                .map_err(|e| e.with_context(self.ctx(path)));
        }
        if size > MAX_COPY {
            return Err(Error::new(
                ErrorKind::Unsupported,
                self.ctx(path),
                "S3 cannot change the metadata of an object over 5 GiB in place",
            ));
        }
        self.counters.count(super::counting::Req::Metadata);
        raw.replace_metadata(path, &kv, content_type.as_deref())
            .await
            .map_err(|e| e.with_context(self.ctx(path)))
    }

    /// Azure Blob and GCS: new user metadata for a file, or for a directory's marker (made
    /// when it has none).
    async fn set_meta_raw(
        &self,
        o: &ObjRaw,
        path: &str,
        dir: bool,
        kv: &[(String, String)],
    ) -> Result<()> {
        let ctx = |e: Error| e.with_context(self.ctx(path));
        if !dir {
            self.counters.count(super::counting::Req::Metadata);
            return o.replace_metadata(path, kv, &[]).await.map_err(ctx);
        }
        if path.is_empty() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                self.ctx(path),
                "the root of an object mount has no marker to carry attributes",
            ));
        }
        let marker = format!("{path}/");
        self.counters.count(super::counting::Req::Metadata);
        match o.replace_metadata(&marker, kv, &[]).await {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.counters.count(super::counting::Req::Write);
                o.put_empty(&marker, kv).await.map_err(ctx)
            }
            r => r.map_err(ctx),
        }
    }

    /// Make an empty object carrying `meta` (a FIFO, socket or device node; its type is in
    /// the mode).
    pub async fn put_special(&self, path: &str, meta: &PosixMeta) -> Result<()> {
        match &self.raw {
            Some(raw) => {
                self.check_write(path)?;
                self.counters.count(super::counting::Req::Write);
                raw.put_empty(path, &meta.to_user_metadata())
                    .await
                    .map_err(|e| e.with_context(self.ctx(path)))
            }
            None => self.write_with_meta(path, Bytes::new(), meta).await,
        }
    }
}

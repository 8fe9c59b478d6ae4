//! The node methods genro-storage's users expect beyond reads and writes: MD5 hashes, URLs,
//! user metadata, names (`mimetype`, `ext`, `dirname`), `write_if_changed`, and versions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use md5::{Digest, Md5};

use super::AsyncNode;
use crate::error::{Error, Result};
use crate::storage::mount::Version;

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl AsyncNode {
    /// The MD5 of the file's content, in lowercase hex. The backend's own hash where it has
    /// one (S3's ETag of a single-part upload, a stored Content-MD5 on Azure and GCS: one
    /// HEAD, nothing read); otherwise the content is streamed through MD5 in 8 MiB chunks.
    /// A directory is `IsADirectory`, a missing path `NotFound`.
    ///
    /// S3 objects encrypted with SSE-KMS or SSE-C have an ETag that is not their MD5; on such
    /// buckets compare contents with [`AsyncNode::read`] instead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).await?;
    /// let f = storage.node("mem:hello.txt")?;
    /// f.write_text("hello").await?;
    /// assert_eq!(f.md5hash().await?, "5d41402abc4b2a76b9719d911017c592");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn md5hash(&self) -> Result<String> {
        let e = self.require_file().await?;
        if self.version.is_none() {
            if let Some(h) = self.mount.known_md5(&self.path, &e).await? {
                return Ok(h);
            }
        }
        let reader = self.open_reader().await?;
        let mut md5 = Md5::new();
        let mut off = 0u64;
        while let Some(buf) = self.next_chunk(&reader, &mut off, e.size).await? {
            for chunk in buf {
                md5.update(&chunk);
            }
        }
        Ok(hex(&md5.finalize()))
    }

    /// A URL that fetches this file for `expires`: a presigned GET on S3, GCS and Azure
    /// Blob; `base_url` + `/` + the path on a local mount configured with `base_url`;
    /// `None` on other backends. Computed without a request (the file need not exist yet).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// use std::time::Duration;
    /// use genro_storage::MountConfig;
    /// let dir = tempfile::tempdir().unwrap();
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![
    ///     MountConfig::local("site", dir.path()).base_url("https://cdn.example.com/static"),
    ///     MountConfig::memory("mem"),
    /// ]).await?;
    /// let url = storage.node("site:img/a b.png")?.url(Duration::from_secs(3600)).await?;
    /// assert_eq!(url.as_deref(), Some("https://cdn.example.com/static/img/a%20b.png"));
    /// assert_eq!(storage.node("mem:x")?.url(Duration::from_secs(60)).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn url(&self, expires: Duration) -> Result<Option<String>> {
        if self.version.is_some() {
            return Ok(None);
        }
        self.mount.url(&self.path, expires).await
    }

    /// The file's user metadata (object backends and memory), without the POSIX attributes
    /// the daemon keeps beside it (`mode`, `uid`, `gid`, the times); empty on backends that
    /// keep none. Keys are lowercase, as object stores return them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).await?;
    /// let f = storage.node("mem:report.pdf")?;
    /// f.write("%PDF").await?;
    /// assert!(f.metadata().await?.is_empty());
    /// f.set_metadata([("author".to_string(), "ada".to_string())].into()).await?;
    /// assert_eq!(f.metadata().await?["author"], "ada");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn metadata(&self) -> Result<HashMap<String, String>> {
        if self.version.is_some() {
            self.require_file().await?;
            return Ok(HashMap::new());
        }
        self.mount.user_metadata(&self.path).await
    }

    /// Replace the file's user metadata without re-uploading it (S3: a HEAD and one
    /// CopyObject onto itself, for objects up to 5 GiB; Azure: Set Blob Metadata; GCS: one
    /// PATCH; memory: in place). Its POSIX attributes stay. Keys are folded to lowercase
    /// (object stores return them so) and must then be ASCII letters, digits, `-` or `_`
    /// (S3: no `_`, which proxies drop; Azure: identifiers, no `-`), and not one of the
    /// POSIX keys (`mode`, `uid`, `gid`, the times, `rdev`); values printable ASCII.
    /// `InvalidInput` otherwise, naming the key. Backends without user metadata: `Unsupported`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// use genro_storage::ErrorKind;
    /// let dir = tempfile::tempdir().unwrap();
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![
    ///     genro_storage::MountConfig::memory("mem"),
    ///     genro_storage::MountConfig::local("disk", dir.path()),
    /// ]).await?;
    /// let f = storage.node("mem:a.txt")?;
    /// f.write_text("x").await?;
    /// f.set_metadata([("Reviewed".into(), "yes".into())].into()).await?;
    /// assert_eq!(f.metadata().await?["reviewed"], "yes");
    /// let bad = f.set_metadata([("Mode".into(), "x".into())].into()).await.unwrap_err();
    /// assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    /// let g = storage.node("disk:a.txt")?;
    /// g.write_text("x").await?;
    /// let e = g.set_metadata([("k".into(), "v".into())].into()).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::Unsupported);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_metadata(&self, map: HashMap<String, String>) -> Result<()> {
        self.check_current()?;
        self.mount.replace_user_metadata(&self.path, &map).await
    }

    /// The MIME type guessed from the extension, `application/octet-stream` when unknown.
    ///
    /// ```
    /// let storage = genro_storage::StorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).unwrap();
    /// assert_eq!(storage.node("mem:docs/a.txt").unwrap().mimetype(), "text/plain");
    /// assert_eq!(storage.node("mem:a.JPG").unwrap().mimetype(), "image/jpeg");
    /// assert_eq!(storage.node("mem:blob").unwrap().mimetype(), "application/octet-stream");
    /// ```
    pub fn mimetype(&self) -> String {
        mime_guess::from_path(self.basename())
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_string()
    }

    /// The extension without its dot (`"gz"` for `a.tar.gz`), or `""`.
    ///
    /// ```
    /// let storage = genro_storage::StorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).unwrap();
    /// assert_eq!(storage.node("mem:a/b.txt").unwrap().ext(), "txt");
    /// assert_eq!(storage.node("mem:a.tar.gz").unwrap().ext(), "gz");
    /// assert_eq!(storage.node("mem:.bashrc").unwrap().ext(), "");
    /// ```
    pub fn ext(&self) -> &str {
        self.suffix().trim_start_matches('.')
    }

    /// The parent directory as `"mount:dir"` (`"mount:"` for a top-level entry).
    ///
    /// ```
    /// let storage = genro_storage::StorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).unwrap();
    /// assert_eq!(storage.node("mem:docs/2026/a.txt").unwrap().dirname(), "mem:docs/2026");
    /// assert_eq!(storage.node("mem:a.txt").unwrap().dirname(), "mem:");
    /// ```
    pub fn dirname(&self) -> String {
        self.parent().fullpath()
    }

    /// Write `data` unless the file already holds exactly these bytes: true when it wrote,
    /// false when nothing changed (same size and MD5; the stored MD5 comes from the ETag
    /// where the backend has it, so nothing is read back then).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).await?;
    /// let f = storage.node("mem:conf.json")?;
    /// assert!(f.write_if_changed("{}").await?);
    /// assert!(!f.write_if_changed("{}").await?);
    /// assert!(f.write_if_changed("{\"a\":1}").await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_if_changed(&self, data: impl Into<Bytes>) -> Result<bool> {
        self.check_current()?;
        let data: Bytes = data.into();
        if let Some(e) = self.stat().await? {
            if e.is_dir() {
                return Err(Error::is_a_directory(self.fullpath()));
            }
            if e.size == data.len() as u64 {
                let want = hex(&Md5::digest(&data));
                let have = match self.mount.known_md5(&self.path, &e).await? {
                    Some(h) => h,
                    None => self.md5hash().await?,
                };
                if have == want {
                    return Ok(false);
                }
            }
        }
        self.write(data).await?;
        Ok(true)
    }

    /// The stored versions of this file, newest first (S3 buckets with versioning); empty
    /// on backends that keep none. Delete markers are left out.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).await?;
    /// let f = storage.node("mem:a.txt")?;
    /// f.write_text("v1").await?;
    /// assert!(f.versions().await?.is_empty()); // memory keeps no versions
    /// # Ok(())
    /// # }
    /// ```
    pub async fn versions(&self) -> Result<Vec<Version>> {
        self.mount.versions(&self.path).await
    }

    /// A read-only node for one version of this file (an id from [`AsyncNode::versions`]):
    /// reads, `stat`, `size`, `md5hash`, copies from it and `local_path(Read)` see that
    /// version; every change fails with `ReadOnly`. A missing version is `NotFound`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).await?;
    /// let old = storage.node("mem:a.txt")?.version("3HL4kqtJlcpXroDTDmJ");
    /// assert_eq!(old.read().await.unwrap_err().kind(), genro_storage::ErrorKind::NotFound);
    /// assert_eq!(old.write("x").await.unwrap_err().kind(), genro_storage::ErrorKind::ReadOnly);
    /// # Ok(())
    /// # }
    /// ```
    pub fn version(&self, id: &str) -> AsyncNode {
        AsyncNode {
            mount: self.mount.clone(),
            path: self.path.clone(),
            version: Some(Arc::from(id)),
        }
    }

    /// The version this node reads, when it is one from [`AsyncNode::version`].
    pub fn version_id(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

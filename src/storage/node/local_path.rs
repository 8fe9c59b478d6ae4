//! `local_path`: a real OS path for a node, for programs that only take a file name. On a
//! local mount it is the file itself; elsewhere a temporary copy, uploaded back by
//! [`LocalPath::commit`].

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::AsyncNode;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::mount::CHUNK;

/// What the caller will do with the path of [`AsyncNode::local_path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalPathMode {
    /// Read it: the file must exist; nothing is uploaded.
    Read,
    /// Write it from scratch: the file need not exist; the copy starts empty and
    /// [`LocalPath::commit`] uploads it.
    Write,
    /// Read and change it: the copy starts with the file's content (empty when missing)
    /// and [`LocalPath::commit`] uploads it.
    ReadWrite,
}

impl LocalPathMode {
    fn writes(self) -> bool {
        self != LocalPathMode::Read
    }
}

/// The guard [`AsyncNode::local_path`] returns. Its temporary copy (non-local mounts) is
/// removed when it is dropped; dropping it without [`LocalPath::commit`] uploads nothing.
#[derive(Debug)]
pub struct LocalPath {
    path: PathBuf,
    node: AsyncNode,
    mode: LocalPathMode,
    /// The directory of the temporary copy (None: `path` is the file itself).
    tmp: Option<tempfile::TempDir>,
}

impl LocalPath {
    /// The OS path to hand to other programs.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Is the path a temporary copy (true), or the node's own file on a local mount?
    pub fn is_temporary(&self) -> bool {
        self.tmp.is_some()
    }

    /// Upload the temporary copy back to the node (modes `Write` and `ReadWrite`), then
    /// remove it. On a local mount the changes are already in the file, and with `Read`
    /// nothing is uploaded: both return Ok at once.
    pub async fn commit(self) -> Result<()> {
        if self.tmp.is_none() || !self.mode.writes() {
            return Ok(());
        }
        let ctx = self.node.fullpath();
        let io = |e: std::io::Error| Error::from_io(ctx.clone(), e);
        let mut f = tokio::fs::File::open(&self.path).await.map_err(io)?;
        let mut w = self.node.writer().await?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = f.read(&mut buf[filled..]).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            if let Err(e) = w.write(bytes::Bytes::copy_from_slice(&buf[..filled])).await {
                let _ = w.abort().await;
                return Err(e);
            }
            if filled < buf.len() {
                break;
            }
        }
        w.close().await
    }
}

impl AsyncNode {
    /// A real OS path for this file, for programs that only take a file name. On a local
    /// mount it is the file itself (changes are in place; `commit` has nothing to do). On
    /// other mounts it is a temporary copy with the same extension: downloaded for `Read`
    /// and `ReadWrite`, uploaded by [`LocalPath::commit`] for `Write` and `ReadWrite`, and
    /// removed when the guard is dropped. `Read` of a missing file is `NotFound`; a
    /// directory is `IsADirectory`; `Write`/`ReadWrite` on a read-only mount or a past
    /// version fail before anything is downloaded.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// use genro_storage::LocalPathMode;
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).await?;
    /// let f = storage.node("mem:notes.txt")?;
    /// f.write_text("draft").await?;
    ///
    /// let guard = f.local_path(LocalPathMode::ReadWrite).await?;
    /// assert_eq!(guard.path().extension().unwrap(), "txt");
    /// assert_eq!(std::fs::read_to_string(guard.path()).unwrap(), "draft");
    /// std::fs::write(guard.path(), "final").unwrap();
    /// guard.commit().await?;
    /// assert_eq!(f.read_text().await?, "final");
    ///
    /// let guard = f.local_path(LocalPathMode::Write).await?;
    /// std::fs::write(guard.path(), "discarded").unwrap();
    /// drop(guard); // no commit: nothing uploaded
    /// assert_eq!(f.read_text().await?, "final");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn local_path(&self, mode: LocalPathMode) -> Result<LocalPath> {
        if mode.writes() {
            self.check_current()?;
            self.mount.check_write(&self.path)?;
        }
        if self.path.is_empty() {
            return Err(Error::is_a_directory(self.fullpath()));
        }
        let existing = self.stat().await?;
        match &existing {
            Some(e) if e.is_dir() => return Err(Error::is_a_directory(self.fullpath())),
            None if mode == LocalPathMode::Read => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    self.fullpath(),
                    "no such file or directory",
                ))
            }
            _ => {}
        }
        let ctx = self.fullpath();
        let io = |e: std::io::Error| Error::from_io(ctx.clone(), e);
        if let (Some(root), None) = (self.mount.local_root(), &self.version) {
            self.mount.check_inside(&self.path)?;
            let path = root.join(&self.path);
            if mode.writes() {
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(io)?;
                }
            }
            return Ok(LocalPath {
                path,
                node: self.clone(),
                mode,
                tmp: None,
            });
        }
        let tmp = tempfile::Builder::new()
            .prefix("genro-local-path-")
            .tempdir()
            .map_err(io)?;
        let path = tmp.path().join(self.basename());
        let mut f = tokio::fs::File::create(&path).await.map_err(io)?;
        if let (Some(e), LocalPathMode::Read | LocalPathMode::ReadWrite) = (&existing, mode) {
            let reader = self.open_reader().await?;
            let mut off = 0u64;
            while let Some(buf) = self.next_chunk(&reader, &mut off, e.size).await? {
                for chunk in buf {
                    f.write_all(&chunk).await.map_err(io)?;
                }
            }
        }
        f.flush().await.map_err(io)?;
        Ok(LocalPath {
            path,
            node: self.clone(),
            mode,
            tmp: Some(tmp),
        })
    }
}

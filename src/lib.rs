//! genro-storage: named storage mounts (local directory, memory, S3) behind one API, and a
//! FUSE daemon that shows every mount as a directory.
//!
//! Mounts are configured from `mounts.toml` ([`Config`]) or from code ([`MountConfig`]) and
//! addressed as `"mount:path"`. [`AsyncStorageManager`] hands out [`AsyncNode`]s;
//! [`StorageManager`] is the same API, blocking.
//!
//! # Quick start
//!
//! ```
//! use genro_storage::{AsyncStorageManager, MountConfig};
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> genro_storage::Result<()> {
//! let storage = AsyncStorageManager::new();
//! let dir = tempfile::tempdir().unwrap();
//! storage
//!     .configure(vec![
//!         MountConfig::memory("mem"),
//!         MountConfig::local("disk", dir.path()),
//!     ])
//!     .await?;
//!
//! let f = storage.node("mem:docs/hello.txt")?;
//! f.write_text("hello").await?;
//! assert_eq!(f.read_text().await?, "hello");
//! assert!(f.is_file().await? && storage.node("mem:docs")?.is_dir().await?);
//! assert_eq!(f.size().await?, 5);
//!
//! // many operations at once
//! let nodes = (0..4)
//!     .map(|i| storage.node(&format!("mem:docs/{i}.txt")))
//!     .collect::<genro_storage::Result<Vec<_>>>()?;
//! for r in futures::future::join_all(nodes.iter().map(|n| n.write_text("x"))).await {
//!     r?;
//! }
//! let names: Vec<String> = storage.node("mem:docs")?.list().await?
//!     .iter().map(|n| n.basename().to_string()).collect();
//! assert_eq!(names, ["0.txt", "1.txt", "2.txt", "3.txt", "hello.txt"]);
//!
//! // copy across mounts, skipping what is already there with the same size
//! let opts = genro_storage::CopyOptions { skip: genro_storage::Skip::Size, ..Default::default() };
//! let report = storage.node("mem:docs")?.copy_with(&storage.node("disk:backup")?, &opts).await?;
//! assert_eq!(report.copied, 5);
//! assert!(dir.path().join("backup/hello.txt").exists());
//!
//! storage.close_all().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The same, blocking:
//!
//! ```
//! use genro_storage::{MountConfig, StorageManager};
//! # fn main() -> genro_storage::Result<()> {
//! let storage = StorageManager::new();
//! storage.configure(vec![MountConfig::memory("mem")])?;
//! let f = storage.node("mem:a.txt")?;
//! f.write_text("hi")?;
//! assert_eq!(f.read_text()?, "hi");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod error;
#[cfg(feature = "fuse")]
pub mod fuse;
pub mod logging;
pub mod secret;
pub mod storage;

pub use config::{Backend, Config, FuseConfig, MountConfig, Permissions};
pub use error::{Error, ErrorKind, Result};
pub use storage::blocking::{BlockingLocalPath, StorageManager, StorageNode};
pub use storage::copy::{CopyOptions, CopyReport, Progress, Skip, SkipReason};
pub use storage::manager::AsyncStorageManager;
pub use storage::mount::{Capabilities, Entry, EntryKind, Mount, Version};
pub use storage::node::{AsyncNode, LocalPath, LocalPathMode, NodeReader, NodeWriter};

//! genro-storage: named storage mounts (local directory, memory, S3) behind one API, and a
//! FUSE daemon that shows every mount as a directory.
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod error;
pub mod fuse;
pub mod logging;
pub mod storage;

pub use config::{Backend, Config, FuseConfig, MountConfig, Permissions};
pub use error::{Error, ErrorKind, Result};
pub use storage::blocking::{StorageManager, StorageNode};
pub use storage::copy::{CopyOptions, CopyReport, Progress, Skip, SkipReason};
pub use storage::manager::AsyncStorageManager;
pub use storage::mount::{Entry, EntryKind, Mount};
pub use storage::node::{AsyncNode, NodeReader, NodeWriter};

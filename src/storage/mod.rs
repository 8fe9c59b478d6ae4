//! The storage library: mounts, `mount:path` parsing, nodes and their managers.

pub mod blocking;
pub mod copy;
pub mod manager;
pub(crate) mod mapped;
pub mod memory;
pub mod mount;
pub mod node;
pub mod objraw;
pub mod path;
pub mod posix;
pub mod s3raw;

//! The storage library: mounts, `mount:path` parsing, nodes and their managers.

pub mod blocking;
pub mod copy;
pub mod manager;
pub mod mount;
pub mod node;
pub mod path;

//! `AsyncStorageManager`: the set of configured mounts, and nodes handed out by `"mount:path"`.

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::config::{validate_mounts, Backend, Config, MountConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::mount::Mount;
use crate::storage::node::AsyncNode;
use crate::storage::path;

/// Build validated mount configs into mounts, in their order. A relative mount's parent
/// is one of `mounts` (built first, whatever the order) or one of `existing`.
pub fn build_mounts(mounts: Vec<MountConfig>, existing: &[Arc<Mount>]) -> Result<Vec<Arc<Mount>>> {
    let mut built: Vec<Option<Arc<Mount>>> = Vec::with_capacity(mounts.len());
    let mut pending = Vec::new();
    for (i, m) in mounts.into_iter().enumerate() {
        if matches!(m.backend, Backend::Relative { .. }) {
            built.push(None);
            pending.push((i, m));
        } else {
            built.push(Some(Mount::new(m)?));
        }
    }
    // relative mounts of relative mounts: resolve in rounds until none is left
    while !pending.is_empty() {
        let before = pending.len();
        let mut left = Vec::new();
        for (i, m) in pending {
            let Backend::Relative { parent, .. } = &m.backend else {
                unreachable!("only relative mounts wait")
            };
            let found = built
                .iter()
                .flatten()
                .find(|b| b.name() == parent)
                .or_else(|| existing.iter().find(|b| b.name() == parent))
                .cloned();
            match found {
                Some(p) => built[i] = Some(Mount::relative(m, &p)?),
                None => left.push((i, m)),
            }
        }
        if left.len() == before {
            let (_, m) = &left[0];
            let Backend::Relative { parent, .. } = &m.backend else {
                unreachable!("only relative mounts wait")
            };
            let waiting: Vec<&str> = left.iter().map(|(_, m)| m.name.as_str()).collect();
            return Err(Error::config(
                format!("mount \"{}\": key \"parent\"", m.name),
                if waiting.contains(&parent.as_str()) {
                    format!("relative mounts form a cycle ({})", waiting.join(", "))
                } else {
                    format!("there is no mount {parent:?}")
                },
            ));
        }
        pending = left;
    }
    Ok(built.into_iter().flatten().collect())
}

/// The async entry point: configure mounts, then ask for nodes.
///
/// Cloning is cheap and clones share the mounts. The mount table is behind a `std` lock that
/// is only held to look a mount up, never across an `.await`.
#[derive(Clone, Default, Debug)]
pub struct AsyncStorageManager {
    mounts: Arc<RwLock<Vec<Arc<Mount>>>>,
}

impl AsyncStorageManager {
    /// A manager with no mounts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add mounts (a mount with the name of an existing one replaces it). Every mount is
    /// validated and built before any is added, so a bad list changes nothing.
    pub async fn configure(&self, mounts: Vec<MountConfig>) -> Result<()> {
        let mounts = validate_mounts(mounts, None)?;
        self.install(mounts)
    }

    /// Add the mounts of a config file.
    pub async fn configure_file(&self, file: impl AsRef<Path>) -> Result<Config> {
        let config = Config::from_file(file)?;
        self.install(config.mounts.clone())?;
        Ok(config)
    }

    /// Add the mounts of an already validated config.
    pub fn configure_validated(&self, config: &Config) -> Result<()> {
        self.install(config.mounts.clone())
    }

    fn install(&self, mounts: Vec<MountConfig>) -> Result<()> {
        let built = build_mounts(mounts, &self.mounts())?;
        let mut table = self.mounts.write().unwrap_or_else(|e| e.into_inner());
        for m in built {
            match table.iter_mut().find(|o| o.name() == m.name()) {
                Some(slot) => *slot = m,
                None => table.push(m),
            }
        }
        Ok(())
    }

    /// The mount called `name`.
    pub fn mount(&self, name: &str) -> Result<Arc<Mount>> {
        let table = self.mounts.read().unwrap_or_else(|e| e.into_inner());
        table
            .iter()
            .find(|m| m.name() == name)
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = table.iter().map(|m| m.name()).collect();
                Error::new(
                    ErrorKind::NotFound,
                    format!("{name}:"),
                    format!(
                        "unknown mount {name:?} (configured: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                )
            })
    }

    /// What the mount `name` can do: the same facts `genro-storage config check` prints.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![genro_storage::MountConfig::memory("mem")]).await?;
    /// let caps = storage.capabilities("mem")?;
    /// assert!(caps.write && caps.rename && caps.metadata && !caps.versions && !caps.presign);
    /// # Ok(())
    /// # }
    /// ```
    pub fn capabilities(&self, name: &str) -> Result<crate::storage::mount::Capabilities> {
        Ok(self.mount(name)?.capabilities())
    }

    /// All mounts, in configuration order.
    pub fn mounts(&self) -> Vec<Arc<Mount>> {
        self.mounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A node for `"mount:path"`. An unknown mount or a bad path is an error.
    pub fn node(&self, fullpath: &str) -> Result<AsyncNode> {
        let (name, p) = path::split_fullpath(fullpath)?;
        let mount = self.mount(name)?;
        let p = path::normalize(p).map_err(|(k, m)| Error::new(k, fullpath, m))?;
        Ok(AsyncNode::new(mount, p))
    }

    /// Remove the mount `name`: true when there was one. Nodes already handed out keep it
    /// alive until they are dropped; relative mounts built over it keep its backend.
    pub fn remove_mount(&self, name: &str) -> bool {
        let mut table = self.mounts.write().unwrap_or_else(|e| e.into_inner());
        match table.iter().position(|m| m.name() == name) {
            Some(i) => {
                table.remove(i);
                true
            }
            None => false,
        }
    }

    /// Is a mount with this name configured?
    pub fn has_mount(&self, name: &str) -> bool {
        self.mounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| m.name() == name)
    }

    /// The names of the configured mounts, in configuration order.
    pub fn mount_names(&self) -> Vec<String> {
        self.mounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|m| m.name().to_string())
            .collect()
    }

    /// Drop every mount. Nodes still held keep their mount alive until they are dropped;
    /// writes are complete when their call returns, so nothing is pending here.
    pub async fn close_all(&self) -> Result<()> {
        self.mounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }
}

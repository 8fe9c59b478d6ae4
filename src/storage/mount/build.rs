//! Building a mount: its opendal `Operator` for the configured backend (the backend
//! factory), the HTTP transport it uses and the layers around it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{services, Operator};

use super::counting::{BackendCounters, CountingLayer};
use super::Mount;
use crate::config::{Backend, MountConfig, DEFAULT_S3_RETRIES, DEFAULT_S3_TIMEOUT};
use crate::error::{Error, Result};
use crate::secret::KeysProvider;
use crate::storage::memory::{MemStore, MemoryBuilder};
use crate::storage::objraw::ObjRaw;
use crate::storage::s3raw::{self, S3Raw, S3Target};

/// A mount's HTTP transport: its own reqwest client (its own connection pool), whose idle
/// connections are dropped after 4 s.
/// - Own, not opendal's process-wide client: a pooled connection is driven by a task of the
///   runtime that opened it, and once that runtime is gone (a blocking `StorageManager`
///   dropped, one runtime per test) every request on it fails with "dispatch task is gone".
/// - 4 s: Node's servers (Azurite) and Apache close an idle keep-alive connection after 5 s,
///   and a request sent on one at that moment fails; reqwest's default keeps them 90 s.
/// - Redirects are followed (at most 10), but not the one from `d` to `d/` (Apache's
///   DirectorySlash): that one says `d` is a directory, which a followed redirect would hide
///   behind the index page's 200.
fn http_transport() -> opendal::HttpTransporter {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let slash_of_previous = attempt
            .previous()
            .last()
            .is_some_and(|prev| attempt.url().path() == format!("{}/", prev.path()));
        if slash_of_previous {
            attempt.stop()
        } else if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    });
    let client = reqwest::Client::builder()
        .redirect(policy)
        .pool_idle_timeout(Duration::from_secs(4))
        .build()
        .unwrap_or_default();
    opendal::HttpTransporter::new(opendal_http_transport_reqwest::ReqwestTransport::new(
        client,
    ))
}

impl Mount {
    /// Build the operator for a validated mount config (a relative mount is built by
    /// [`Mount::relative`], which needs its parent).
    pub fn new(config: MountConfig) -> Result<Arc<Mount>> {
        Mount::build(config, None, None).map(Arc::new)
    }

    fn build(
        config: MountConfig,
        store: Option<Arc<MemStore>>,
        relative: Option<(String, String)>,
    ) -> Result<Mount> {
        let who = format!("mount \"{}\"", config.name);
        let (timeout, retries) = match &config.backend {
            Backend::S3 {
                timeout, retries, ..
            } => (*timeout, *retries),
            Backend::Service(s) => (s.timeout, s.retries),
            _ => (DEFAULT_S3_TIMEOUT * 4, DEFAULT_S3_RETRIES),
        };
        let mem = match config.backend {
            Backend::Memory { max_size } => {
                Some(store.unwrap_or_else(|| Arc::new(MemStore::with_budget(max_size))))
            }
            _ => None,
        };
        let mut raw = None;
        let mut obj_raw = None;
        let op = match &config.backend {
            Backend::Local { root, .. } => {
                let root = root.to_str().ok_or_else(|| {
                    Error::config(format!("{who}: key \"root_path\""), "is not valid UTF-8")
                })?;
                Operator::new(services::Fs::default().root(root))
            }
            Backend::Memory { .. } => {
                Operator::new(MemoryBuilder::new(mem.clone().unwrap_or_default()))
            }
            Backend::S3 {
                bucket,
                prefix,
                region,
                endpoint_url,
                access_key,
                secret_key,
                session_token,
                ..
            } => {
                let keys = match (access_key, secret_key) {
                    (Some(a), Some(s)) => Some(KeysProvider::new(
                        a.clone(),
                        s.clone(),
                        session_token.clone(),
                    )),
                    _ => None,
                };
                raw = Some(S3Raw::new(&S3Target {
                    bucket,
                    prefix: prefix.as_deref(),
                    region,
                    endpoint: endpoint_url.as_deref(),
                    keys: keys.as_ref(),
                    timeout,
                    retries,
                })?);
                opendal::install_default();
                // (the keys go in a chain of our own: opendal would put them in reqsign's
                // StaticCredentialProvider, whose Debug, logged by reqsign, shows them)
                let mut b = services::S3::default()
                    .bucket(bucket)
                    .region(region)
                    .disable_ec2_metadata()
                    .credential_provider_chain(s3raw::credentials(keys.as_ref()));
                if let Some(p) = prefix {
                    b = b.root(&format!("/{}", p.trim_matches('/')));
                }
                if let Some(e) = endpoint_url {
                    b = b.endpoint(e);
                }
                Operator::new(b)
            }
            Backend::Relative { parent, .. } => {
                return Err(Error::config(
                    format!("{who}: key \"parent\""),
                    format!("a relative mount is built over its parent {parent:?}"),
                ))
            }
            Backend::Service(s) => {
                obj_raw = ObjRaw::new(s)?;
                opendal::install_default();
                Operator::via_iter(s.service.name(), s.opendal_options())
            }
        }
        .map_err(|e| Error::from_opendal(who.clone(), e).with_context(who.clone()))?;
        let ctx = op.context().with_http_transport(http_transport());
        let counters = Arc::new(BackendCounters::default());
        // (inside the retry layer: every attempt is a request)
        let op = op
            .with_context(ctx)
            .layer(CountingLayer(counters.clone()))
            .layer(
                TimeoutLayer::new()
                    .with_timeout(timeout)
                    .with_io_timeout(timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(retries)
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(2))
                    .with_jitter(),
            );
        let caps = op.info().capability();
        let user_meta = caps.write_with_user_metadata
            && match &config.backend {
                Backend::Service(s) => s.keeps_user_metadata(),
                _ => true,
            };
        let in_flight = match &config.backend {
            Backend::S3 { max_in_flight, .. } => {
                Some(Arc::new(tokio::sync::Semaphore::new(*max_in_flight)))
            }
            _ => None,
        };
        Ok(Mount {
            in_flight,
            config,
            op,
            caps,
            started: SystemTime::now(),
            mem,
            raw,
            obj_raw,
            user_meta,
            relative,
            counters,
        })
    }

    /// A relative mount (`protocol = "relative"`): the backend of `parent` re-rooted below
    /// the config's `path` (a local root below the parent's, an S3 prefix, a service root,
    /// a view of the same memory store). Its permissions are the parent's or narrower: a
    /// config that asks for wider ones is refused, naming the key.
    pub fn relative(config: MountConfig, parent: &Mount) -> Result<Arc<Mount>> {
        let who = format!("mount \"{}\"", config.name);
        let Backend::Relative {
            path,
            inherit_permissions,
            ..
        } = &config.backend
        else {
            return Mount::new(config);
        };
        let theirs = parent.permissions();
        let permissions = if *inherit_permissions {
            theirs
        } else if rank(config.permissions) > rank(theirs) {
            return Err(Error::config(
                format!("{who}: key \"permissions\""),
                format!(
                    "{} is wider than its parent {:?}'s {}: a relative mount can only narrow them",
                    config.permissions.as_str(),
                    parent.name(),
                    theirs.as_str()
                ),
            ));
        } else {
            config.permissions
        };
        let join = |base: &str| -> String {
            let base = base.trim_matches('/');
            if base.is_empty() {
                path.clone()
            } else if path.is_empty() {
                base.to_string()
            } else {
                format!("{base}/{path}")
            }
        };
        let backend = match &parent.config.backend {
            Backend::Local { root, base_url, .. } => {
                let key = format!("{who}: key \"path\"");
                let sub = root.join(path);
                if !sub.exists() && permissions.can_write() {
                    std::fs::create_dir_all(&sub).map_err(|e| {
                        Error::config(key.clone(), format!("cannot create {}: {e}", sub.display()))
                    })?;
                }
                let real = sub
                    .canonicalize()
                    .map_err(|e| Error::config(key.clone(), format!("{}: {e}", sub.display())))?;
                if !real.starts_with(root) {
                    return Err(Error::config(
                        key,
                        format!(
                            "{} leads outside its parent's root (a symlink)",
                            sub.display()
                        ),
                    ));
                }
                if !real.is_dir() {
                    return Err(Error::config(
                        key,
                        format!("{} is not a directory", real.display()),
                    ));
                }
                Backend::Local {
                    root: real,
                    create: false,
                    base_url: base_url.as_ref().map(|b| {
                        if path.is_empty() {
                            b.clone()
                        } else {
                            format!("{}/{path}", b.trim_end_matches('/'))
                        }
                    }),
                }
            }
            Backend::S3 { prefix, .. } => {
                let mut b = parent.config.backend.clone();
                if let Backend::S3 { prefix: p, .. } = &mut b {
                    let joined = join(prefix.as_deref().unwrap_or(""));
                    *p = (!joined.is_empty()).then_some(joined);
                }
                b
            }
            Backend::Service(s) => {
                let mut s = s.clone();
                let root = join(s.options.get("root").map(String::as_str).unwrap_or(""));
                s.options.insert("root".into(), format!("/{root}"));
                Backend::Service(s)
            }
            Backend::Memory { max_size } => Backend::Memory {
                max_size: *max_size,
            },
            Backend::Relative { .. } => {
                return Err(Error::config(
                    format!("{who}: key \"parent\""),
                    format!("the parent {:?} is not resolved", parent.name()),
                ))
            }
        };
        let (parent_name, shown) = match &parent.relative {
            Some((p, base)) => (p.clone(), join(base)),
            None => (parent.name().to_string(), path.clone()),
        };
        let store = parent.mem.as_ref().map(|m| Arc::new(m.view(path)));
        let resolved = MountConfig {
            name: config.name.clone(),
            permissions,
            backend,
        };
        Mount::build(resolved, store, Some((parent_name, shown))).map(Arc::new)
    }

    /// For a relative mount, the mount it is a view of and the directory it shows (its
    /// parent's relative mounts resolved to the mount that owns the backend).
    pub fn relative_to(&self) -> Option<(&str, &str)> {
        self.relative
            .as_ref()
            .map(|(p, d)| (p.as_str(), d.as_str()))
    }
}

fn rank(p: crate::config::Permissions) -> u8 {
    use crate::config::Permissions::*;
    match p {
        ReadOnly => 0,
        ReadWrite => 1,
        Delete => 2,
    }
}

//! Configuration: `mounts.toml` parsed raw, then validated once into a typed [`Config`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Table, Value};

use crate::error::{Error, Result};
use crate::secret::Secret;

mod parse;
mod services;

use parse::{at, guard_secret_file, inline_secret, key_line, line_of, parse_mount, SecretFiles};
pub use services::{Service, ServiceConfig};

/// What a mount lets its users do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Permissions {
    /// Read only: writes, mkdir, copies into it and deletes are refused.
    ReadOnly,
    /// Read and write, but no deletes.
    ReadWrite,
    /// Full access (the default).
    #[default]
    Delete,
}

impl Permissions {
    /// Parse `readonly` | `readwrite` | `delete`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "readonly" => Some(Self::ReadOnly),
            "readwrite" => Some(Self::ReadWrite),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "readonly",
            Self::ReadWrite => "readwrite",
            Self::Delete => "delete",
        }
    }
    /// May the mount be written to?
    pub fn can_write(self) -> bool {
        self != Self::ReadOnly
    }
    /// May anything be deleted from the mount?
    pub fn can_delete(self) -> bool {
        self == Self::Delete
    }
}

/// Which backend a mount uses, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A directory on the local disk.
    Local {
        /// The directory (absolute once validated).
        root: PathBuf,
        /// Create it when missing.
        create: bool,
        /// The URL the directory is served at (`base_url`): [`AsyncNode::url`](crate::AsyncNode::url)
        /// answers `base_url/path`.
        base_url: Option<String>,
    },
    /// Process memory; each memory mount is its own namespace.
    Memory {
        /// The most its files may take together, in bytes (`max_size`; default a quarter
        /// of the machine's RAM). Writes past it fail with ENOSPC.
        max_size: u64,
    },
    /// An S3 bucket (or S3-compatible server).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket that acts as the mount root.
        prefix: Option<String>,
        /// Region (default `us-east-1`).
        region: String,
        /// Endpoint of an S3-compatible server (path-style addressing).
        endpoint_url: Option<String>,
        /// Access key; otherwise the usual AWS environment variables.
        access_key: Option<Secret>,
        /// Secret key (`secret_key`, or read from `secret_key_file`); otherwise the usual
        /// AWS environment variables.
        secret_key: Option<Secret>,
        /// Session token of temporary keys (`session_token`, or `session_token_file`).
        session_token: Option<Secret>,
        /// Deadline of one request attempt (default 30 s); a dead or hung server fails an
        /// operation after at most `(retries + 1) × timeout` plus the backoff (≤ 2 s each).
        timeout: Duration,
        /// Retries of a failed request, with exponential backoff and jitter (default 3).
        retries: usize,
        /// How long the FUSE daemon trusts what it learned of the bucket: attributes,
        /// absences and whole listings (default: the `[fuse]` attribute TTL, 1 s). Longer
        /// saves requests when this daemon is the bucket's only writer; changes made by
        /// others show up only once it ran out.
        cache_ttl: Option<Duration>,
        /// The library's whole-object reads and writes (`read`, `write`, `read_text`, …)
        /// in flight at once on this mount (default 64): 200 small writes at once go 64 at
        /// a time. Ranged and streamed transfers, copies and the daemon are not counted. A server that serves one request at a time (moto) is slower
        /// with hundreds of connections open than with a few; raise it for servers that
        /// take more.
        max_in_flight: usize,
    },
    /// A service opendal speaks, configured by its own keys: SFTP, WebDAV, Azure Blob, GCS,
    /// FTP, HTTP (read-only).
    Service(ServiceConfig),
    /// A view of another mount's backend below one of its directories (`protocol =
    /// "relative"`). Its permissions can only narrow the parent's; its paths cannot climb
    /// out of it. Resolved into the parent's backend, re-rooted, when it is configured.
    Relative {
        /// The mount it is a view of (`parent`).
        parent: String,
        /// The directory of the parent it shows (`path`), normalised.
        path: String,
        /// No `permissions` were given: the parent's apply.
        inherit_permissions: bool,
    },
}

/// Default deadline of one S3 request attempt.
pub const DEFAULT_S3_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of retries of a failed S3 request.
pub const DEFAULT_S3_RETRIES: usize = 3;
/// Default number of whole-object reads and writes in flight on one S3 mount.
pub const DEFAULT_S3_IN_FLIGHT: usize = 64;

impl Backend {
    /// The config spelling of the protocol.
    pub fn protocol(&self) -> &'static str {
        match self {
            Backend::Local { .. } => "local",
            Backend::Memory { .. } => "memory",
            Backend::S3 { .. } => "s3",
            Backend::Service(s) => s.service.name(),
            Backend::Relative { .. } => "relative",
        }
    }
}

/// The protocols a mount may use.
pub const PROTOCOLS: &[&str] = &[
    "local", "memory", "s3", "sftp", "webdav", "azblob", "gcs", "ftp", "http", "relative",
];

/// One named mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountConfig {
    /// Name used in `name:path` and as the daemon's top-level directory.
    pub name: String,
    /// What users may do on it.
    pub permissions: Permissions,
    /// The backend and its settings.
    pub backend: Backend,
}

impl MountConfig {
    /// A local directory mount.
    pub fn local(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Self::with_backend(
            name,
            Backend::Local {
                root: root.into(),
                create: false,
                base_url: None,
            },
        )
    }
    /// Local mounts: the URL the root directory is served at, for [`AsyncNode::url`](crate::AsyncNode::url).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        if let Backend::Local { base_url, .. } = &mut self.backend {
            *base_url = Some(url.into());
        }
        self
    }
    /// A relative mount: the directory `path` of the mount `parent`, as a mount of its own.
    /// It has the parent's permissions unless [`MountConfig::permissions`] narrows them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> genro_storage::Result<()> {
    /// use genro_storage::{MountConfig, Permissions};
    /// let storage = genro_storage::AsyncStorageManager::new();
    /// storage.configure(vec![
    ///     MountConfig::memory("data"),
    ///     MountConfig::relative("reports", "data", "2026/reports").permissions(Permissions::ReadOnly),
    /// ]).await?;
    /// storage.node("data:2026/reports/q1.txt")?.write_text("up").await?;
    /// assert_eq!(storage.node("reports:q1.txt")?.read_text().await?, "up");
    /// assert!(storage.node("reports:q2.txt")?.write_text("no").await.is_err());
    /// assert!(storage.node("reports:../secret").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn relative(
        name: impl Into<String>,
        parent: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        Self::with_backend(
            name,
            Backend::Relative {
                parent: parent.into(),
                path: path.into(),
                inherit_permissions: true,
            },
        )
    }
    /// A memory mount.
    pub fn memory(name: impl Into<String>) -> Self {
        Self::with_backend(
            name,
            Backend::Memory {
                max_size: default_memory_budget(),
            },
        )
    }
    /// An S3 bucket mount.
    pub fn s3(name: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self::with_backend(
            name,
            Backend::S3 {
                bucket: bucket.into(),
                prefix: None,
                region: "us-east-1".into(),
                endpoint_url: None,
                access_key: None,
                secret_key: None,
                session_token: None,
                timeout: DEFAULT_S3_TIMEOUT,
                retries: DEFAULT_S3_RETRIES,
                cache_ttl: None,
                max_in_flight: DEFAULT_S3_IN_FLIGHT,
            },
        )
    }
    /// A mount of an opendal service (SFTP, WebDAV, Azure Blob, GCS, FTP, HTTP), set up with
    /// [`MountConfig::option`] and [`MountConfig::secret`] by the service's own key names.
    pub fn service(name: impl Into<String>, service: Service) -> Self {
        Self::with_backend(name, Backend::Service(ServiceConfig::new(service)))
    }
    /// An SFTP mount: `endpoint` is `ssh://host:port`; set `user`, `key` (a private key's
    /// path) and `root` with [`MountConfig::option`].
    pub fn sftp(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self::service(name, Service::Sftp).option("endpoint", endpoint)
    }
    /// A WebDAV mount of `endpoint` (`http(s)://…`).
    pub fn webdav(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self::service(name, Service::Webdav).option("endpoint", endpoint)
    }
    /// An Azure Blob container (`endpoint` such as `https://ACCOUNT.blob.core.windows.net`);
    /// set `account_name` and the secret `account_key` (or `sas_token`).
    pub fn azblob(
        name: impl Into<String>,
        endpoint: impl Into<String>,
        container: impl Into<String>,
    ) -> Self {
        Self::service(name, Service::Azblob)
            .option("endpoint", endpoint)
            .option("container", container)
    }
    /// A GCS bucket; set `credential_path` (or `allow_anonymous` = `true` for emulators).
    pub fn gcs(name: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self::service(name, Service::Gcs).option("bucket", bucket)
    }
    /// An FTP mount of `endpoint` (`ftp://host:port`, or `ftps://`).
    pub fn ftp(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self::service(name, Service::Ftp).option("endpoint", endpoint)
    }
    /// A read-only HTTP mount of `endpoint`.
    pub fn http(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self::service(name, Service::Http).option("endpoint", endpoint)
    }
    /// Services: set one of the service's opendal keys (see [`Service::keys`]).
    pub fn option(mut self, key: &str, value: impl Into<String>) -> Self {
        if let Backend::Service(s) = &mut self.backend {
            s.options.insert(key.to_string(), value.into());
        }
        self
    }
    /// Services: set one of the service's secret keys (see [`Service::secret_keys`]).
    pub fn secret(mut self, key: &str, value: impl Into<String>) -> Self {
        if let Backend::Service(s) = &mut self.backend {
            s.secrets.insert(key.to_string(), Secret::new(value));
        }
        self
    }
    fn with_backend(name: impl Into<String>, backend: Backend) -> Self {
        MountConfig {
            name: name.into(),
            permissions: Permissions::default(),
            backend,
        }
    }
    /// Set the permissions.
    pub fn permissions(mut self, p: Permissions) -> Self {
        self.permissions = p;
        if let Backend::Relative {
            inherit_permissions,
            ..
        } = &mut self.backend
        {
            *inherit_permissions = false;
        }
        self
    }
    /// Local: create the root directory when missing.
    pub fn create(mut self, yes: bool) -> Self {
        if let Backend::Local { create, .. } = &mut self.backend {
            *create = yes;
        }
        self
    }
    /// Memory: the most its files may take together, in bytes.
    pub fn max_size(mut self, bytes: u64) -> Self {
        if let Backend::Memory { max_size } = &mut self.backend {
            *max_size = bytes;
        }
        self
    }
    /// S3: key prefix.
    pub fn prefix(mut self, v: impl Into<String>) -> Self {
        if let Backend::S3 { prefix, .. } = &mut self.backend {
            *prefix = Some(v.into());
        }
        self
    }
    /// S3: region.
    pub fn region(mut self, v: impl Into<String>) -> Self {
        if let Backend::S3 { region, .. } = &mut self.backend {
            *region = v.into();
        }
        self
    }
    /// S3: endpoint of an S3-compatible server.
    pub fn endpoint_url(mut self, v: impl Into<String>) -> Self {
        if let Backend::S3 { endpoint_url, .. } = &mut self.backend {
            *endpoint_url = Some(v.into());
        }
        self
    }
    /// S3: access key.
    pub fn access_key(mut self, v: impl Into<String>) -> Self {
        if let Backend::S3 { access_key, .. } = &mut self.backend {
            *access_key = Some(Secret::new(v));
        }
        self
    }
    /// S3: secret key.
    pub fn secret_key(mut self, v: impl Into<String>) -> Self {
        if let Backend::S3 { secret_key, .. } = &mut self.backend {
            *secret_key = Some(Secret::new(v));
        }
        self
    }
    /// S3: session token of temporary keys.
    pub fn session_token(mut self, v: impl Into<String>) -> Self {
        if let Backend::S3 { session_token, .. } = &mut self.backend {
            *session_token = Some(Secret::new(v));
        }
        self
    }
    /// S3 and services: deadline of one request attempt.
    pub fn timeout(mut self, v: Duration) -> Self {
        match &mut self.backend {
            Backend::S3 { timeout, .. } => *timeout = v,
            Backend::Service(s) => s.timeout = v,
            _ => {}
        }
        self
    }
    /// S3 and services: retries of a failed request.
    pub fn retries(mut self, v: usize) -> Self {
        match &mut self.backend {
            Backend::S3 { retries, .. } => *retries = v,
            Backend::Service(s) => s.retries = v,
            _ => {}
        }
        self
    }
    /// S3: whole-object reads and writes in flight at once (see `max_in_flight`).
    pub fn max_in_flight(mut self, v: usize) -> Self {
        if let Backend::S3 { max_in_flight, .. } = &mut self.backend {
            *max_in_flight = v;
        }
        self
    }
    /// S3 and services: how long the FUSE daemon trusts attributes, absences and listings
    /// it learned.
    pub fn cache_ttl(mut self, v: Duration) -> Self {
        match &mut self.backend {
            Backend::S3 { cache_ttl, .. } => *cache_ttl = Some(v),
            Backend::Service(s) => s.cache_ttl = Some(v),
            _ => {}
        }
        self
    }
    /// Services: `false` uploads each file in one request (see [`ServiceConfig::multipart`]).
    pub fn multipart(mut self, v: bool) -> Self {
        if let Backend::Service(s) = &mut self.backend {
            s.multipart = v;
        }
        self
    }
    /// Services: `false` deletes one object per request (see [`ServiceConfig::batch_delete`]).
    pub fn batch_delete(mut self, v: bool) -> Self {
        if let Backend::Service(s) = &mut self.backend {
            s.batch_delete = v;
        }
        self
    }

    /// Check what does not need the backend: the name and required fields, and for local mounts
    /// the root directory (created when `create` is set). Relative local roots resolve against
    /// `base`. `ctx` prefixes error messages (file and line).
    pub fn validate(mut self, base: Option<&Path>, ctx: &str) -> Result<Self> {
        let who = format!("{ctx}mount \"{}\"", self.name);
        validate_name(&self.name).map_err(|m| Error::config(format!("{who}: key \"name\""), m))?;
        match &mut self.backend {
            Backend::Local {
                root,
                create,
                base_url,
            } => {
                if let Some(u) = base_url {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        return Err(Error::config(
                            format!("{who}: key \"base_url\""),
                            format!("{u:?} is not an http:// or https:// URL"),
                        ));
                    }
                }
                if root.as_os_str().is_empty() {
                    return Err(Error::config(
                        format!("{who}: key \"root_path\""),
                        "must not be empty",
                    ));
                }
                if root.is_relative() {
                    if let Some(base) = base {
                        *root = base.join(&*root);
                    }
                }
                let key = format!("{who}: key \"root_path\"");
                match std::fs::metadata(&*root) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(Error::config(
                            key,
                            format!("{} is not a directory", root.display()),
                        ))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && *create => {
                        std::fs::create_dir_all(&*root).map_err(|e| {
                            Error::config(
                                key.clone(),
                                format!("cannot create {}: {e}", root.display()),
                            )
                        })?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(Error::config(
                            key,
                            format!(
                                "{} does not exist (set create = true to create it)",
                                root.display()
                            ),
                        ))
                    }
                    Err(e) => return Err(Error::config(key, format!("{}: {e}", root.display()))),
                }
                *root = root.canonicalize().map_err(|e| {
                    Error::config(format!("{who}: key \"root_path\""), e.to_string())
                })?;
            }
            Backend::Memory { .. } => {}
            Backend::Relative { parent, path, .. } => {
                validate_name(parent)
                    .map_err(|m| Error::config(format!("{who}: key \"parent\""), m))?;
                if *parent == self.name {
                    return Err(Error::config(
                        format!("{who}: key \"parent\""),
                        "a mount cannot be relative to itself",
                    ));
                }
                *path = crate::storage::path::normalize(path).map_err(|(_, m)| {
                    Error::config(format!("{who}: key \"path\""), format!("{path:?}: {m}"))
                })?;
            }
            Backend::Service(s) => {
                if let Some((key, msg)) = s.problem() {
                    return Err(Error::config(format!("{who}: key \"{key}\""), msg));
                }
            }
            Backend::S3 { bucket, .. } => {
                if bucket.is_empty() {
                    return Err(Error::config(
                        format!("{who}: key \"bucket\""),
                        "must not be empty",
                    ));
                }
            }
        }
        Ok(self)
    }
}

/// Mount names: letters, digits, `_`, `-`, `.`; not `.` or `..`.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid mount name"));
    }
    if name.len() > 255 {
        return Err("is longer than 255 bytes".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "{name:?} has the character {c:?}; use letters, digits, '_', '-' and '.'"
        ));
    }
    Ok(())
}

/// Check a list of mounts as a whole (names unique) and each one.
pub fn validate_mounts(mounts: Vec<MountConfig>, base: Option<&Path>) -> Result<Vec<MountConfig>> {
    let mut out: Vec<MountConfig> = Vec::with_capacity(mounts.len());
    for m in mounts {
        if out.iter().any(|o| o.name == m.name) {
            return Err(Error::config(
                format!("mount \"{}\": key \"name\"", m.name),
                "duplicate mount name",
            ));
        }
        out.push(m.validate(base, "")?);
    }
    Ok(out)
}

/// Settings of the FUSE daemon: the `[fuse]` table. Command-line flags override them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuseConfig {
    /// Refuse every change with EROFS.
    pub read_only: Option<bool>,
    /// Let other users in (turns on `default_permissions`).
    pub allow_other: Option<bool>,
    /// Owner shown for every entry.
    pub uid: Option<u32>,
    /// Group shown for every entry.
    pub gid: Option<u32>,
    /// Mode of files on backends without modes (octal string such as `"0644"`).
    pub file_mode: Option<String>,
    /// Mode of directories on backends without modes (octal string such as `"0755"`).
    pub dir_mode: Option<String>,
    /// Attribute and entry TTL in seconds.
    pub attr_ttl: Option<f64>,
    /// TTL of negative entries in seconds.
    pub negative_ttl: Option<f64>,
    /// Where dirty data is staged.
    pub cache_dir: Option<PathBuf>,
    /// The most staged data may take in `cache_dir` (bytes, or a size such as `"20GiB"`).
    pub cache_max_size: Option<SizeValue>,
    /// Worker threads of the runtime.
    pub threads: Option<usize>,
    /// Extra mount options, as `-o` takes them.
    pub options: Option<Vec<String>>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (such as `"127.0.0.1:9464"`);
    /// off when unset.
    pub metrics: Option<String>,
    /// Serve FUSE over io_uring where the kernel offers it (`--io-uring`).
    pub io_uring: Option<bool>,
    /// Requests each io_uring queue holds at once, 1 to 1024 (default 32, fewer past 7 CPUs
    /// so that the queues' buffers stay under 256 MiB, at least 4).
    pub io_uring_queue_depth: Option<u16>,
}

/// A size as TOML gives it: bytes, or a string such as `"512MiB"` (see [`parse_size`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// A number of bytes.
    Bytes(u64),
    /// A size with a suffix.
    Text(String),
}

impl SizeValue {
    /// The size in bytes, above 0.
    pub fn bytes(&self) -> std::result::Result<u64, String> {
        match self {
            SizeValue::Bytes(b) if *b > 0 => Ok(*b),
            SizeValue::Bytes(_) => Err("expected a size above 0".into()),
            SizeValue::Text(t) => parse_size(t)
                .ok_or_else(|| format!("{t:?} is not a size such as 512MiB, 2G or 1000000")),
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The mounts, in file order.
    pub mounts: Vec<MountConfig>,
    /// The `[fuse]` table.
    pub fuse: FuseConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    mount: Vec<Spanned<Table>>,
    #[serde(default)]
    fuse: Option<Spanned<Table>>,
}

const COMMON_KEYS: &[&str] = &["name", "protocol", "permissions"];
const LOCAL_KEYS: &[&str] = &["root_path", "create", "base_url"];
const RELATIVE_KEYS: &[&str] = &["parent", "path"];
const MEMORY_KEYS: &[&str] = &["max_size"];
const S3_KEYS: &[&str] = &[
    "bucket",
    "prefix",
    "region",
    "endpoint_url",
    "access_key",
    "secret_key",
    "secret_key_file",
    "session_token",
    "session_token_file",
    "timeout",
    "retries",
    "cache_ttl",
    "max_in_flight",
];

impl Config {
    /// Read and validate a config file. A file that holds a secret (`secret_key`,
    /// `session_token`) must be closed to group and others, as must a `*_file` it names.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config> {
        Self::load(path, false)
    }

    /// [`Config::from_file`]; with `allow_insecure`, a secret in a file that group or others
    /// may read is accepted with a warning (`--allow-insecure-config`).
    pub fn load(path: impl AsRef<Path>, allow_insecure: bool) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(path.display().to_string(), format!("cannot read: {e}")))?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let origin = path.display().to_string();
        let config = Self::parse_with(&text, &origin, base, allow_insecure)?;
        if let Some(key) = inline_secret(&text) {
            guard_secret_file(path, &format!("{origin}: {key}"), allow_insecure)?;
        }
        Ok(config)
    }

    /// Parse and validate config text; `origin` names it in errors, `base` resolves relative
    /// roots and secret files (which must be closed to group and others).
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config> {
        Self::parse_with(text, origin, base, false)
    }

    fn parse_with(text: &str, origin: &str, base: &Path, allow_insecure: bool) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let msg = e.message().trim().replace('\n', "; ");
            Error::config(at(origin, line).trim_end_matches(": "), msg)
        })?;
        let mut mounts: Vec<MountConfig> = Vec::new();
        for (i, table) in raw.mount.iter().enumerate() {
            let span = table.span();
            let line = line_of(text, span.start);
            let files = SecretFiles {
                base,
                allow_insecure,
            };
            let m = parse_mount(table.get_ref(), i, text, span.clone(), origin, line, &files)?;
            if let Some(first) = mounts.iter().position(|o| o.name == m.name) {
                let l = key_line(text, span.clone(), "name").unwrap_or(line);
                return Err(Error::config(
                    format!("{}mount \"{}\": key \"name\"", at(origin, Some(l)), m.name),
                    format!("duplicate mount name (mount #{} has it too)", first + 1),
                ));
            }
            let m = m.validate(
                Some(base),
                &at(
                    origin,
                    Some(key_line(text, span, "root_path").unwrap_or(line)),
                ),
            )?;
            mounts.push(m);
        }
        let fuse = match raw.fuse {
            None => FuseConfig::default(),
            Some(t) => {
                let line = line_of(text, t.span().start);
                Value::Table(t.into_inner())
                    .try_into::<FuseConfig>()
                    .map_err(|e| {
                        Error::config(
                            format!("{}[fuse]", at(origin, Some(line))),
                            e.message().trim().to_string(),
                        )
                    })?
            }
        };
        Ok(Config { mounts, fuse })
    }
}

/// A memory mount's default budget: a quarter of the machine's RAM (1 GiB if unknown).
pub fn default_memory_budget() -> u64 {
    // SAFETY: sysconf cannot fail in a way that harms; -1 is handled.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        (pages as u64).saturating_mul(size as u64) / 4
    } else {
        1 << 30
    }
}

/// A size: bytes, or a number with a suffix: K, M, G, T (or KiB, MiB, GiB, TiB: powers of
/// 1024), KB, MB, GB, TB (powers of 1000). Fractions such as 1.5G are allowed; 0 is not.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" | "k" => 1024.0,
        "M" | "MiB" => 1024.0 * 1024.0,
        "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 1.0 && v < u64::MAX as f64).then_some(v as u64)
}

#[cfg(test)]
mod tests;

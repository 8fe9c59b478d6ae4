//! The protocols served through an opendal service by its own config keys (SFTP, WebDAV,
//! Azure Blob, GCS, FTP and read-only HTTP): which keys each takes, which hold secrets,
//! which are required, and what is checked of their values before the backend is built.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::secret::Secret;

/// A protocol served by one opendal service, configured by that service's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// SFTP over the system `ssh` client (`services-sftp`): key authentication.
    Sftp,
    /// WebDAV (`services-webdav`): Nextcloud, Apache mod_dav, rclone serve webdav.
    Webdav,
    /// Azure Blob Storage (`services-azblob`), or Azurite.
    Azblob,
    /// Google Cloud Storage (`services-gcs`), or fake-gcs-server.
    Gcs,
    /// FTP (`services-ftp`); `ftps://` for TLS.
    Ftp,
    /// A plain HTTP server, read-only (`services-http`): stat and ranged reads, no listing.
    Http,
}

impl Service {
    /// Every service, in the README's order.
    pub const ALL: [Service; 6] = [
        Service::Sftp,
        Service::Webdav,
        Service::Azblob,
        Service::Gcs,
        Service::Ftp,
        Service::Http,
    ];

    /// The `protocol` spelling, which is also opendal's scheme.
    pub fn name(self) -> &'static str {
        match self {
            Service::Sftp => "sftp",
            Service::Webdav => "webdav",
            Service::Azblob => "azblob",
            Service::Gcs => "gcs",
            Service::Ftp => "ftp",
            Service::Http => "http",
        }
    }

    /// The service of a `protocol` value.
    pub fn parse(protocol: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == protocol)
    }

    /// opendal's config keys for the service that a mount may set (secrets included).
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Service::Sftp => &["endpoint", "root", "user", "key", "known_hosts_strategy"],
            Service::Webdav => &[
                "endpoint",
                "root",
                "username",
                "password",
                "token",
                "enable_user_metadata",
            ],
            Service::Azblob => &[
                "endpoint",
                "root",
                "container",
                "account_name",
                "account_key",
                "sas_token",
                "skip_signature",
            ],
            Service::Gcs => &[
                "endpoint",
                "root",
                "bucket",
                "credential",
                "credential_path",
                "allow_anonymous",
                "skip_signature",
                "predefined_acl",
                "default_storage_class",
            ],
            Service::Ftp => &["endpoint", "root", "user", "password"],
            Service::Http => &["endpoint", "root", "username", "password", "token"],
        }
    }

    /// The keys that hold secrets: also accepted as `KEY_file` (a file closed to group and
    /// others), never shown in logs or errors.
    pub fn secret_keys(self) -> &'static [&'static str] {
        match self {
            Service::Sftp => &[],
            Service::Webdav | Service::Http => &["password", "token"],
            Service::Azblob => &["account_key", "sas_token"],
            Service::Gcs => &["credential"],
            Service::Ftp => &["password"],
        }
    }

    /// The keys a mount of the service must set.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Service::Azblob => &["endpoint", "container"],
            Service::Gcs => &["bucket"],
            _ => &["endpoint"],
        }
    }

    /// The keys that take a boolean.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Service::Azblob => &["skip_signature"],
            Service::Gcs => &["allow_anonymous", "skip_signature"],
            Service::Webdav => &["enable_user_metadata"],
            _ => &[],
        }
    }

    /// The URL schemes `endpoint` may use.
    pub fn endpoint_schemes(self) -> &'static [&'static str] {
        match self {
            Service::Sftp => &["ssh://"],
            Service::Ftp => &["ftp://", "ftps://"],
            _ => &["http://", "https://"],
        }
    }

    /// Can the daemon and the library write to it?
    pub fn writable(self) -> bool {
        self != Service::Http
    }
}

/// A mount of a [`Service`]: its opendal keys, and the common request settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The service.
    pub service: Service,
    /// Its opendal config keys, as text (`true`/`false` for flags).
    pub options: BTreeMap<String, String>,
    /// Its secret keys.
    pub secrets: BTreeMap<String, Secret>,
    /// Deadline of one request attempt (default 30 s).
    pub timeout: Duration,
    /// Retries of a failed request (default 3).
    pub retries: usize,
    /// How long the FUSE daemon trusts what it learned of the backend (default: the
    /// `[fuse]` attribute TTL).
    pub cache_ttl: Option<Duration>,
    /// Stream large uploads in parts where the service can (default true). `false` uploads
    /// each file in one request from a spooled copy: for servers without multipart uploads
    /// (fake-gcs-server answers 400 to GCS's XML multipart).
    pub multipart: bool,
    /// Delete trees with the service's batch request where it has one (default true).
    /// `false` deletes one object per request: for servers without it (fake-gcs-server).
    pub batch_delete: bool,
}

impl ServiceConfig {
    /// A mount of `service` with no keys set yet.
    pub fn new(service: Service) -> ServiceConfig {
        ServiceConfig {
            service,
            options: BTreeMap::new(),
            secrets: BTreeMap::new(),
            timeout: super::DEFAULT_S3_TIMEOUT,
            retries: super::DEFAULT_S3_RETRIES,
            cache_ttl: None,
            multipart: true,
            batch_delete: true,
        }
    }

    /// What is wrong with the keys, as (key, message): a missing required key, an endpoint
    /// of the wrong scheme, and for the clouds a setting that would let a credential chain
    /// look for the cloud's metadata server.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let s = self.service;
        for k in s.required() {
            if !self.options.contains_key(*k) {
                return Some((k, format!("missing (a {} mount needs {k})", s.name())));
            }
        }
        if let Some(e) = self.options.get("endpoint") {
            if !s.endpoint_schemes().iter().any(|p| e.starts_with(p)) {
                return Some((
                    "endpoint",
                    format!(
                        "{e:?} must start with {}",
                        s.endpoint_schemes().join(" or ")
                    ),
                ));
            }
        }
        let flag = |k: &str| self.options.get(k).is_some_and(|v| v == "true");
        match s {
            Service::Azblob
                if !self.secrets.contains_key("account_key")
                    && !self.secrets.contains_key("sas_token")
                    && !flag("skip_signature") =>
            {
                Some((
                    "account_key",
                    "missing: give account_key or sas_token (or skip_signature = true for a \
                     public container); the daemon never asks a metadata server for credentials"
                        .into(),
                ))
            }
            Service::Azblob if !self.options.contains_key("account_name") => Some((
                "account_name",
                "missing (the storage account, devstoreaccount1 on Azurite)".into(),
            )),
            Service::Gcs
                if !self.secrets.contains_key("credential")
                    && !self.options.contains_key("credential_path")
                    && !flag("allow_anonymous")
                    && !flag("skip_signature") =>
            {
                Some((
                    "credential_path",
                    "missing: give credential_path or credential (a service account key), or \
                     allow_anonymous = true (emulators, public buckets); the daemon never asks \
                     a metadata server for credentials"
                        .into(),
                ))
            }
            _ => None,
        }
    }

    /// Are POSIX attributes sent as the backend's user metadata? WebDAV keeps them as dead
    /// properties (PROPPATCH) only when `enable_user_metadata = true`: many servers have no
    /// PROPPATCH (dav-server, rclone serve webdav) and would refuse every upload.
    pub fn keeps_user_metadata(&self) -> bool {
        self.service != Service::Webdav
            || self
                .options
                .get("enable_user_metadata")
                .is_some_and(|v| v == "true")
    }

    /// The key-value pairs opendal's service is built from: the options and the secrets,
    /// and what keeps a credential chain off the cloud metadata address.
    pub fn opendal_options(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(
                self.secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string())),
            )
            .collect();
        if self.service == Service::Gcs {
            // never 169.254.169.254, never the environment's gcloud config
            out.push(("disable_vm_metadata".into(), "true".into()));
            out.push(("disable_config_load".into(), "true".into()));
            if self
                .options
                .get("allow_anonymous")
                .is_some_and(|v| v == "true")
                && !self.options.contains_key("skip_signature")
            {
                out.push(("skip_signature".into(), "true".into()));
            }
        }
        out
    }
}

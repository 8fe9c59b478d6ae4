//! Reading one `[[mount]]` table into a validated [`MountConfig`]: the keys each protocol
//! takes, their types and ranges, secrets inline or in files (closed to group and others),
//! and errors that name the file, line, mount and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use super::*;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Where secret files named in a config are found, and whether loose modes are let through.
pub(super) struct SecretFiles<'a> {
    pub(super) base: &'a Path,
    pub(super) allow_insecure: bool,
}

impl SecretFiles<'_> {
    /// The secret in `file` (relative to the config's directory): its text without the
    /// trailing newline; the file must be closed to group and others.
    fn read(&self, file: &str, who: &str) -> Result<Secret> {
        let path = self.base.join(file);
        guard_secret_file(&path, who, self.allow_insecure)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::config(who, format!("cannot read {}: {e}", path.display())))?;
        let secret = text.trim_end_matches(['\n', '\r']);
        if secret.is_empty() {
            return Err(Error::config(who, format!("{} is empty", path.display())));
        }
        Ok(Secret::new(secret))
    }
}

/// The first key of the config text that holds a secret inline (`mount "s3": key
/// "secret_key"`), if any.
pub(super) fn inline_secret(text: &str) -> Option<String> {
    let raw: Table = toml::from_str(text).ok()?;
    let mounts = raw.get("mount")?.as_array()?;
    mounts.iter().filter_map(Value::as_table).find_map(|m| {
        let name = m.get("name").and_then(Value::as_str).unwrap_or("?");
        let protocol = m.get("protocol").and_then(Value::as_str).unwrap_or("");
        let service = Service::parse(protocol).map_or(&[][..], |s| s.secret_keys());
        ["secret_key", "session_token"]
            .iter()
            .chain(service)
            .find(|k| m.contains_key(**k))
            .map(|k| format!("mount \"{name}\": key \"{k}\""))
    })
}

/// Refuse a file holding a secret (named by `who`) that group or others may read or write,
/// with the fix; with `allow_insecure`, warn instead (as s3fs refuses such a passwd file).
pub(super) fn guard_secret_file(path: &Path, who: &str, allow_insecure: bool) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path)
        .map_err(|e| Error::config(who, format!("cannot read {}: {e}", path.display())))?;
    if !md.is_file() {
        return Err(Error::config(
            who,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mode = md.mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let msg = format!(
        "{} holds a secret and group or others may access it (mode {mode:04o}): run chmod 600 {}",
        path.display(),
        path.display()
    );
    if allow_insecure {
        tracing::warn!("{who}: {msg} (accepted: --allow-insecure-config)");
        return Ok(());
    }
    Err(Error::config(
        who,
        format!("{msg}, or keep the secret in the environment or a *_file key (--allow-insecure-config overrides)"),
    ))
}

pub(super) fn at(origin: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{origin}:{l}: "),
        None => format!("{origin}: "),
    }
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of `key = ...` inside the byte span of a table, if it is written there.
pub(super) fn key_line(text: &str, span: std::ops::Range<usize>, key: &str) -> Option<usize> {
    let start = span.start.min(text.len());
    let end = span.end.min(text.len());
    let mut offset = start;
    for l in text[start..end].split_inclusive('\n') {
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(line_of(text, offset));
            }
        }
        offset += l.len();
    }
    None
}

pub(super) fn parse_mount(
    t: &Table,
    index: usize,
    text: &str,
    span: std::ops::Range<usize>,
    origin: &str,
    line: usize,
    files: &SecretFiles<'_>,
) -> Result<MountConfig> {
    let kl = |key: &str| {
        at(
            origin,
            Some(key_line(text, span.clone(), key).unwrap_or(line)),
        )
    };
    let name = match t.get("name") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(Error::config(
                format!("{}mount #{}: key \"name\"", kl("name"), index + 1),
                format!("expected a string, found {}", v.type_str()),
            ))
        }
        None => {
            return Err(Error::config(
                format!(
                    "{}mount #{}: key \"name\"",
                    at(origin, Some(line)),
                    index + 1
                ),
                "missing (every mount needs a name)",
            ))
        }
    };
    let who = |key: &str| format!("{}mount \"{name}\": key \"{key}\"", kl(key));
    // A number of seconds within `range` (described by `what`); None when the key is absent.
    let seconds = |key: &str, what: &str, range: fn(f64) -> bool| -> Result<Option<Duration>> {
        let secs = match t.get(key) {
            None => return Ok(None),
            Some(Value::Integer(i)) => *i as f64,
            Some(Value::Float(f)) => *f,
            Some(v) => {
                return Err(Error::config(
                    who(key),
                    format!("expected seconds (a number), found {}", v.type_str()),
                ))
            }
        };
        if !range(secs) {
            return Err(Error::config(
                who(key),
                format!("{secs} is out of range (seconds, {what})"),
            ));
        }
        Ok(Some(Duration::from_secs_f64(secs)))
    };
    let string = |key: &str| -> Result<Option<String>> {
        match t.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(Error::config(
                who(key),
                format!("expected a string, found {}", v.type_str()),
            )),
        }
    };
    // A secret, written inline as `key` or read from the file `key_file` (not both).
    let secret = |key: &str| -> Result<Option<Secret>> {
        let file_key = format!("{key}_file");
        match (string(key)?, string(&file_key)?) {
            (Some(_), Some(_)) => Err(Error::config(
                who(&file_key),
                format!("set either {key} or {file_key}, not both"),
            )),
            (Some(v), None) => Ok(Some(Secret::from(v))),
            (None, Some(f)) => files.read(&f, &who(&file_key)).map(Some),
            (None, None) => Ok(None),
        }
    };
    validate_name(&name).map_err(|m| Error::config(who("name"), m))?;
    let protocol = string("protocol")?.ok_or_else(|| {
        Error::config(
            who("protocol"),
            format!("missing; valid protocols: {}", PROTOCOLS.join(", ")),
        )
    })?;
    let service = Service::parse(&protocol);
    let service_keys: Vec<String>;
    let service_refs: Vec<&str>;
    let allowed: &[&str] = match protocol.as_str() {
        "local" => LOCAL_KEYS,
        "relative" => RELATIVE_KEYS,
        "memory" => MEMORY_KEYS,
        "s3" => S3_KEYS,
        _ if service.is_some() => {
            let s = service.unwrap_or(Service::Http);
            service_keys = s
                .keys()
                .iter()
                .map(|k| k.to_string())
                .chain(s.secret_keys().iter().map(|k| format!("{k}_file")))
                .chain(
                    [
                        "timeout",
                        "retries",
                        "cache_ttl",
                        "multipart",
                        "batch_delete",
                    ]
                    .map(String::from),
                )
                .collect();
            service_refs = service_keys.iter().map(String::as_str).collect();
            &service_refs
        }
        other => {
            return Err(Error::config(
                who("protocol"),
                format!(
                    "unknown protocol {other:?}; valid protocols: {}",
                    PROTOCOLS.join(", ")
                ),
            ))
        }
    };
    for key in t.keys() {
        if !COMMON_KEYS.contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
            let mut valid: Vec<&str> = COMMON_KEYS.to_vec();
            valid.extend_from_slice(allowed);
            return Err(Error::config(
                who(key),
                format!(
                    "unknown key for protocol {protocol}; valid keys: {}",
                    valid.join(", ")
                ),
            ));
        }
    }
    let permissions = match string("permissions")? {
        None => Permissions::default(),
        Some(p) => Permissions::parse(&p).ok_or_else(|| {
            Error::config(
                who("permissions"),
                format!("unknown value {p:?}; valid: readonly, readwrite, delete"),
            )
        })?,
    };
    // The request settings S3 and the services share: timeout, retries, cache_ttl.
    let requests = || -> Result<(Duration, usize, Option<Duration>)> {
        let timeout = seconds("timeout", "above 0 and at most 3600", |s| {
            s > 0.0 && s <= 3600.0
        })?
        .unwrap_or(DEFAULT_S3_TIMEOUT);
        let retries = match t.get("retries") {
            None => DEFAULT_S3_RETRIES,
            Some(Value::Integer(i)) if (0..=20).contains(i) => *i as usize,
            Some(v) => {
                return Err(Error::config(
                    who("retries"),
                    format!("expected a whole number from 0 to 20, found {v}"),
                ))
            }
        };
        let cache_ttl = seconds("cache_ttl", "from 0 to 86400", |s| {
            (0.0..=86400.0).contains(&s)
        })?;
        Ok((timeout, retries, cache_ttl))
    };
    let backend = match protocol.as_str() {
        "local" => {
            let root = string("root_path")?.ok_or_else(|| {
                Error::config(who("root_path"), "missing (a local mount needs root_path)")
            })?;
            let create = match t.get("create") {
                None => false,
                Some(Value::Boolean(b)) => *b,
                Some(v) => {
                    return Err(Error::config(
                        who("create"),
                        format!("expected a boolean, found {}", v.type_str()),
                    ))
                }
            };
            Backend::Local {
                root: PathBuf::from(root),
                create,
                base_url: string("base_url")?,
            }
        }
        "relative" => Backend::Relative {
            parent: string("parent")?.ok_or_else(|| {
                Error::config(
                    who("parent"),
                    "missing (a relative mount needs parent, the mount it is a view of)",
                )
            })?,
            path: string("path")?.ok_or_else(|| {
                Error::config(
                    who("path"),
                    "missing (a relative mount needs path, the parent's directory it shows)",
                )
            })?,
            inherit_permissions: !t.contains_key("permissions"),
        },
        "memory" => Backend::Memory {
            max_size: match t.get("max_size") {
                None => default_memory_budget(),
                Some(Value::Integer(i)) if *i > 0 => *i as u64,
                Some(Value::String(v)) => parse_size(v).ok_or_else(|| {
                    Error::config(
                        who("max_size"),
                        format!("{v:?} is not a size such as 512MiB, 2G or 1000000"),
                    )
                })?,
                Some(v) => {
                    return Err(Error::config(
                        who("max_size"),
                        format!("expected bytes (above 0) or a size such as \"512MiB\", found {v}"),
                    ))
                }
            },
        },
        _ if service.is_some() => {
            let mut c = ServiceConfig::new(service.unwrap_or(Service::Http));
            for key in c.service.keys() {
                if c.service.secret_keys().contains(key) {
                    if let Some(v) = secret(key)? {
                        c.secrets.insert(key.to_string(), v);
                    }
                    continue;
                }
                let v = match t.get(*key) {
                    None => continue,
                    Some(Value::Boolean(b)) if c.service.flags().contains(key) => b.to_string(),
                    Some(Value::String(s)) if !c.service.flags().contains(key) => s.clone(),
                    Some(v) => {
                        let want = if c.service.flags().contains(key) {
                            "a boolean"
                        } else {
                            "a string"
                        };
                        return Err(Error::config(
                            who(key),
                            format!("expected {want}, found {}", v.type_str()),
                        ));
                    }
                };
                c.options.insert(key.to_string(), v);
            }
            (c.timeout, c.retries, c.cache_ttl) = requests()?;
            for (key, slot) in [
                ("multipart", &mut c.multipart),
                ("batch_delete", &mut c.batch_delete),
            ] {
                match t.get(key) {
                    None => {}
                    Some(Value::Boolean(b)) => *slot = *b,
                    Some(v) => {
                        return Err(Error::config(
                            who(key),
                            format!("expected a boolean, found {}", v.type_str()),
                        ))
                    }
                }
            }
            if let Some((key, msg)) = c.problem() {
                return Err(Error::config(who(key), msg));
            }
            Backend::Service(c)
        }
        _ => {
            let (timeout, retries, cache_ttl) = requests()?;
            Backend::S3 {
                bucket: string("bucket")?.ok_or_else(|| {
                    Error::config(who("bucket"), "missing (an s3 mount needs bucket)")
                })?,
                prefix: string("prefix")?,
                region: string("region")?.unwrap_or_else(|| "us-east-1".into()),
                endpoint_url: string("endpoint_url")?,
                access_key: string("access_key")?.map(Secret::from),
                secret_key: secret("secret_key")?,
                session_token: secret("session_token")?,
                timeout,
                retries,
                cache_ttl,
                max_in_flight: match t.get("max_in_flight") {
                    None => DEFAULT_S3_IN_FLIGHT,
                    Some(Value::Integer(i)) if (1..=4096).contains(i) => *i as usize,
                    Some(v) => {
                        return Err(Error::config(
                            who("max_in_flight"),
                            format!("expected a whole number from 1 to 4096, found {v}"),
                        ))
                    }
                },
            }
        }
    };
    if let Backend::S3 {
        access_key,
        secret_key,
        session_token,
        ..
    } = &backend
    {
        if access_key.is_some() != secret_key.is_some() {
            let missing = if access_key.is_some() {
                "secret_key"
            } else {
                "access_key"
            };
            return Err(Error::config(
                who(missing),
                "missing: access_key and secret_key (or secret_key_file) are set together, \
                 or both left to the environment",
            ));
        }
        if session_token.is_some() && access_key.is_none() {
            return Err(Error::config(
                who("session_token"),
                "needs access_key and secret_key beside it",
            ));
        }
    }
    Ok(MountConfig {
        name,
        permissions,
        backend,
    })
}

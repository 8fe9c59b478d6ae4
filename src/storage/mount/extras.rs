//! A mount's answers beyond files and directories: the user metadata of an object, the
//! MD5 a backend already knows, presigned URLs, object versions, and what the mount can do
//! as data ([`Capabilities`]).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use futures::TryStreamExt;

use super::{Entry, Mount};
use crate::config::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::posix;
use crate::storage::s3raw::MAX_COPY;

/// One stored version of an object (S3 versioned buckets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The backend's version id (`"null"` for the object written before versioning was on).
    pub id: String,
    /// When this version was written.
    pub mtime: SystemTime,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag, where the backend gives one.
    pub etag: Option<String>,
    /// Is it the current version?
    pub is_latest: bool,
}

/// What a mount can do, as data: the same facts `genro-storage config check` prints.
///
/// Each field is true when the library (and the daemon) does it on this mount natively;
/// where a field is false the operation either fails with a precise error (`Unsupported`,
/// `PermissionDenied`) or, where noted, is done another way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Files can be read (always).
    pub read: bool,
    /// Files can be written and directories made (the mount's permissions and the backend).
    pub write: bool,
    /// Things can be deleted (the `delete` permission).
    pub delete: bool,
    /// The backend appends in place (local); elsewhere the daemon re-uploads the file.
    pub append: bool,
    /// A rename is native; otherwise a move is a copy and a delete.
    pub rename: bool,
    /// A copy inside the mount is made by the server; otherwise it is streamed.
    pub copy: bool,
    /// Directories can be listed.
    pub list: bool,
    /// Empty directories exist on their own (a real directory or a marker object).
    pub mkdir: bool,
    /// [`AsyncNode::url`](crate::AsyncNode::url) gives a URL (presigned, or `base_url`).
    pub presign: bool,
    /// Objects carry user metadata that [`AsyncNode::set_metadata`](crate::AsyncNode::set_metadata)
    /// changes in place.
    pub metadata: bool,
    /// Past versions can be listed and read.
    pub versions: bool,
    /// Symbolic links are kept (on disk, or as objects carrying their type).
    pub symlinks: bool,
    /// Modes, owners and times are kept.
    pub posix: bool,
    /// The backend tells a file's MD5 without it being read (S3's ETag, a stored Content-MD5).
    pub md5: bool,
    /// [`AsyncNode::local_path`](crate::AsyncNode::local_path) is the file itself, not a copy.
    pub local_path: bool,
}

impl Capabilities {
    /// The names of the fields that are true, in declaration order.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("read", self.read),
            ("write", self.write),
            ("delete", self.delete),
            ("append", self.append),
            ("rename", self.rename),
            ("copy", self.copy),
            ("list", self.list),
            ("mkdir", self.mkdir),
            ("presign", self.presign),
            ("metadata", self.metadata),
            ("versions", self.versions),
            ("symlinks", self.symlinks),
            ("posix", self.posix),
            ("md5", self.md5),
            ("local_path", self.local_path),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.then_some(n))
        .collect()
    }
}

/// Which keys a backend carries and gives back unchanged.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyRule {
    /// Lowercase letters, digits, `-` and `_` (memory, GCS).
    Any,
    /// S3: no `_` (HTTP proxies and servers such as moto drop header names with one).
    NoUnderscore,
    /// Azure: C# identifiers (no `-`, no digit first).
    Identifier,
}

/// A user metadata key must be something the backend carries as a header name and gives
/// back unchanged: lowercase ASCII letters, digits, `-` and `_`, narrowed by [`KeyRule`].
fn check_key(ctx: &str, k: &str, rule: KeyRule) -> Result<()> {
    let bad = |m: String| Err(Error::new(ErrorKind::InvalidInput, ctx, m));
    if k.is_empty() {
        return bad("a metadata key is empty".into());
    }
    if rule == KeyRule::NoUnderscore && k.contains('_') {
        return bad(format!(
            "metadata key {k:?}: S3 metadata travels as HTTP headers, and names with '_' \
             are dropped on the way; use '-'"
        ));
    }
    if rule == KeyRule::Identifier
        && (k.contains('-') || k.starts_with(|c: char| c.is_ascii_digit()))
    {
        return bad(format!(
            "metadata key {k:?}: Azure Blob names are identifiers (letters, digits and '_', \
             not starting with a digit)"
        ));
    }
    if let Some(c) = k
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
    {
        return bad(format!(
            "metadata key {k:?} has {c:?}; use lowercase letters, digits, '-' and '_' \
             (object stores fold header names to lowercase)"
        ));
    }
    if posix::KEYS.contains(&k) {
        return bad(format!(
            "metadata key {k:?} is reserved: it carries the file's POSIX attributes"
        ));
    }
    Ok(())
}

fn check_value(ctx: &str, k: &str, v: &str) -> Result<()> {
    if v.chars().any(|c| !(' '..='~').contains(&c)) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            ctx,
            format!("the value of metadata key {k:?} must be printable ASCII (it travels as an HTTP header)"),
        ));
    }
    Ok(())
}

/// A hex MD5 from an ETag or Content-MD5 value: 32 hex digits as they are, or 16 bytes in
/// base64 (Azure's and GCS's Content-MD5).
fn md5_hex(v: &str) -> Option<String> {
    let v = v.trim_matches('"');
    if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(v.to_ascii_lowercase());
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
    (raw.len() == 16).then(|| raw.iter().map(|b| format!("{b:02x}")).collect())
}

impl Mount {
    /// The object's metadata, or why there is none: IsADirectory, NotFound.
    async fn file_meta(&self, path: &str) -> Result<opendal::Metadata> {
        self.check_inside(path)?;
        match self.op.stat(path).await {
            Ok(m) if !m.is_dir() && !path.is_empty() => Ok(m),
            Ok(_) => Err(Error::is_a_directory(self.ctx(path))),
            // (some servers fail a HEAD of a prefix otherwise than with 404: s3s-fs)
            Err(e) => match self.stat(path).await? {
                Some(x) if x.is_dir() => Err(Error::is_a_directory(self.ctx(path))),
                None => Err(Error::new(
                    ErrorKind::NotFound,
                    self.ctx(path),
                    "no such file or directory",
                )),
                Some(_) => Err(self.err(path, e)),
            },
        }
    }

    /// The user metadata of a file, the POSIX attributes left out (they are the daemon's);
    /// empty on backends that keep none. One HEAD on S3.
    pub async fn user_metadata(&self, path: &str) -> Result<HashMap<String, String>> {
        if !self.user_meta {
            let e = self.stat_required(path).await?;
            if e.is_dir() {
                return Err(Error::is_a_directory(self.ctx(path)));
            }
            return Ok(HashMap::new());
        }
        let m = self.file_meta(path).await?;
        Ok(m.user_metadata()
            .map(|um| {
                um.into_iter()
                    .filter(|(k, _)| !posix::KEYS.contains(&k.to_ascii_lowercase().as_str()))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Replace a file's user metadata without re-uploading it, keeping its POSIX
    /// attributes: a HEAD and one CopyObject onto itself on S3 (objects up to 5 GiB); Set
    /// Blob Metadata on Azure; a PATCH on GCS; in place on memory. Unsupported elsewhere.
    pub async fn replace_user_metadata(
        &self,
        path: &str,
        map: &HashMap<String, String>,
    ) -> Result<()> {
        let ctx = self.ctx(path);
        let rule = if self.is_azure() {
            KeyRule::Identifier
        } else if self.raw.is_some() {
            KeyRule::NoUnderscore
        } else {
            KeyRule::Any
        };
        // keys are folded to lowercase, as object stores return them (S3 and GCS fold
        // header names): `Author` is stored and read back as `author`
        let mut folded: HashMap<String, String> = HashMap::with_capacity(map.len());
        for (k, v) in map {
            let lk = k.to_ascii_lowercase();
            check_key(&ctx, &lk, rule)?;
            check_value(&ctx, &lk, v)?;
            if folded.insert(lk.clone(), v.clone()).is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    ctx,
                    format!("metadata keys that differ only in case name one key ({lk:?})"),
                ));
            }
        }
        let map = &folded;
        self.check_write(path)?;
        let in_place = self.mem.is_some() || self.raw.is_some() || self.obj_raw.is_some();
        if !(self.user_meta && in_place) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                ctx,
                format!(
                    "a {} mount cannot change an object's metadata in place",
                    self.config.backend.protocol()
                ),
            ));
        }
        let m = self.file_meta(path).await?;
        let removed: Vec<String> = m
            .user_metadata()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.to_ascii_lowercase())
            .filter(|k| !posix::KEYS.contains(&k.as_str()) && !map.contains_key(k))
            .collect();
        let mut pairs: Vec<(String, String)> = m
            .user_metadata()
            .into_iter()
            .flatten()
            .filter(|(k, _)| posix::KEYS.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        pairs.extend(keys.into_iter().map(|k| (k.clone(), map[k].clone())));
        if let Some(store) = &self.mem {
            store.set_user_metadata(path, false, pairs);
            return Ok(());
        }
        if let Some(raw) = &self.raw {
            if m.content_length() > MAX_COPY {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    ctx,
                    "S3 cannot change the metadata of an object over 5 GiB in place",
                ));
            }
            self.counters.count(super::counting::Req::Metadata);
            return raw
                .replace_metadata(path, &pairs, m.content_type())
                .await
                .map_err(|e| e.with_context(ctx));
        }
        self.counters.count(super::counting::Req::Metadata);
        match &self.obj_raw {
            Some(o) => o
                .replace_metadata(path, &pairs, &removed)
                .await
                .map_err(|e| e.with_context(ctx)),
            None => unreachable!("in_place checked above"),
        }
    }

    /// The MD5 the backend already knows for this file, without reading it: S3's ETag of
    /// a single-part upload (32 hex digits; a multipart ETag has a `-N` suffix), a stored
    /// Content-MD5 on Azure and GCS. None where it must be computed.
    pub async fn known_md5(&self, path: &str, e: &Entry) -> Result<Option<String>> {
        if self.raw.is_some() {
            return Ok(e.etag.as_deref().and_then(|t| {
                let t = t.trim_matches('"');
                (t.len() == 32).then(|| md5_hex(t)).flatten()
            }));
        }
        if self.obj_raw.is_some() {
            let m = self.file_meta(path).await?;
            return Ok(m.content_md5().and_then(md5_hex));
        }
        Ok(None)
    }

    /// A URL that fetches the file for `expires`: presigned GET on S3, GCS and Azure;
    /// `base_url` + `/` + path on a local mount that has `base_url`; None elsewhere.
    /// Made without asking the backend (nothing checks that the file exists).
    pub async fn url(&self, path: &str, expires: Duration) -> Result<Option<String>> {
        if let Backend::Local {
            base_url: Some(base),
            ..
        } = &self.config.backend
        {
            let enc: String = path
                .split('/')
                .map(|c| {
                    percent_encoding::utf8_percent_encode(c, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                        .replace("%2E", ".")
                        .replace("%2D", "-")
                        .replace("%5F", "_")
                        .replace("%7E", "~")
                })
                .collect::<Vec<_>>()
                .join("/");
            return Ok(Some(format!("{}/{enc}", base.trim_end_matches('/'))));
        }
        if let Some(o) = &self.obj_raw {
            let signed = o
                .presign_get(path, expires)
                .map_err(|e| e.with_context(self.ctx(path)))?;
            if let Some(url) = signed {
                self.check_inside(path)?;
                self.counters.count(super::counting::Req::Presign);
                return Ok(Some(url));
            }
        }
        if !self.caps.presign_read || !self.prefix_dirs() {
            return Ok(None);
        }
        self.check_inside(path)?;
        let req = self
            .op
            .presign_read(path, expires)
            .await
            .map_err(|e| self.err(path, e))?;
        Ok(Some(req.uri().to_string()))
    }

    /// Does this mount list and read past versions (S3)?
    pub fn has_versions(&self) -> bool {
        self.raw.is_some() && self.caps.list_with_versions && self.caps.read_with_version
    }

    /// The stored versions of a file, newest first; empty where the backend keeps none.
    /// Delete markers are left out.
    pub async fn versions(&self, path: &str) -> Result<Vec<Version>> {
        if !self.has_versions() || path.is_empty() {
            return Ok(Vec::new());
        }
        self.check_inside(path)?;
        let entries: Vec<opendal::Entry> = self
            .op
            .lister_with(path)
            .versions(true)
            .await
            .map_err(|e| self.err(path, e))?
            .try_collect()
            .await
            .map_err(|e| self.err(path, e))?;
        let mut out: Vec<Version> = entries
            .into_iter()
            .filter(|e| e.path().trim_start_matches('/') == path && e.metadata().is_file())
            .filter(|e| !e.metadata().is_deleted())
            .filter_map(|e| {
                let m = e.metadata();
                Some(Version {
                    id: m.version()?.to_string(),
                    mtime: m
                        .last_modified()
                        .map(SystemTime::from)
                        .unwrap_or(self.started),
                    size: m.content_length(),
                    etag: m.etag().map(|t| t.trim_matches('"').to_string()),
                    is_latest: m.is_current().unwrap_or(false),
                })
            })
            .collect();
        out.sort_by_key(|v| std::cmp::Reverse(v.mtime));
        Ok(out)
    }

    fn no_version(&self, path: &str, id: &str) -> Error {
        Error::new(
            ErrorKind::NotFound,
            self.ctx(path),
            format!("no version {id:?}"),
        )
    }

    /// Stat one version of a file: None when it has no such version.
    pub async fn stat_version(&self, path: &str, id: &str) -> Result<Option<Entry>> {
        if !self.has_versions() {
            return Ok(None);
        }
        self.check_inside(path)?;
        match self.op.stat_with(path).version(id).await {
            Ok(m) => Ok(Some(self.entry_of(&m))),
            Err(e)
                if matches!(
                    e.kind(),
                    opendal::ErrorKind::NotFound | opendal::ErrorKind::ConditionNotMatch
                ) =>
            {
                Ok(None)
            }
            // S3 answers 400 InvalidArgument to a malformed version id
            Err(e) if e.to_string().contains("InvalidArgument") => Ok(None),
            Err(e) => Err(self.err(path, e)),
        }
    }

    /// A ranged reader over one version of a file.
    pub async fn reader_version(&self, path: &str, id: &str) -> Result<opendal::Reader> {
        if !self.has_versions() {
            return Err(self.no_version(path, id));
        }
        self.check_inside(path)?;
        self.op
            .reader_with(path)
            .version(id)
            .chunk(super::CHUNK)
            .concurrent(super::CONCURRENT)
            .await
            .map_err(|e| self.err(path, e))
    }

    /// What this mount can do (see [`Capabilities`]).
    pub fn capabilities(&self) -> Capabilities {
        let local = self.local_root().is_some();
        let perms = self.permissions();
        let writable = perms.can_write()
            && !matches!(&self.config.backend, Backend::Service(s) if !s.service.writable());
        Capabilities {
            read: true,
            write: writable,
            delete: writable && perms.can_delete(),
            // (opendal advertises append on S3 too, for S3 Express; we append in place
            // only on local files)
            append: local,
            rename: self.caps.rename,
            copy: self.caps.copy,
            list: self.caps.list,
            mkdir: self.caps.create_dir,
            presign: matches!(
                &self.config.backend,
                Backend::Local {
                    base_url: Some(_),
                    ..
                }
            ) || (self.caps.presign_read && self.prefix_dirs())
                || self.obj_raw.as_ref().is_some_and(|o| o.can_presign()),
            metadata: self.user_meta
                && (self.mem.is_some() || self.raw.is_some() || self.obj_raw.is_some()),
            versions: self.has_versions(),
            symlinks: local || self.keeps_posix(),
            posix: local || self.keeps_posix(),
            md5: self.raw.is_some() || self.obj_raw.is_some(),
            local_path: local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_from_hex_or_base64() {
        let hex = "5d41402abc4b2a76b9719d911017c592"; // md5("hello")
        assert_eq!(md5_hex(hex).as_deref(), Some(hex));
        assert_eq!(
            md5_hex(&format!("\"{}\"", hex.to_uppercase())).as_deref(),
            Some(hex)
        );
        assert_eq!(md5_hex("XUFAKrxLKna5cZ2REBfFkg==").as_deref(), Some(hex));
        assert_eq!(md5_hex("abc-2"), None);
        assert_eq!(md5_hex("CJ+rz5XzsvkCEAE="), None); // a GCS generation, not an MD5
    }

    #[test]
    fn metadata_keys_are_checked() {
        use KeyRule::*;
        assert!(check_key("m:f", "author", Any).is_ok());
        assert!(check_key("m:f", "x-y_2", Any).is_ok());
        assert!(check_key("m:f", "x-y_2", Identifier).is_err());
        assert!(check_key("m:f", "2x", Identifier).is_err());
        assert!(check_key("m:f", "x_y2", Identifier).is_ok());
        assert!(check_key("m:f", "x_y", NoUnderscore).is_err());
        assert!(check_key("m:f", "x-y", NoUnderscore).is_ok());
        for bad in ["", "Author", "a b", "mode", "mtime", "é"] {
            let e = check_key("m:f", bad, Any).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("m:f"), "{e}");
        }
        assert!(check_value("m:f", "k", "line\nbreak").is_err());
        assert!(check_value("m:f", "k", "plain value 1").is_ok());
    }
}

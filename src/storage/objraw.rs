//! The metadata requests opendal 0.59 cannot make on Azure Blob and GCS, signed with the
//! same reqsign signers and credentials as opendal's: replace an object's user metadata
//! without re-uploading it (Azure `Set Blob Metadata`, GCS `PATCH` of the object resource),
//! and write an empty object with user metadata (directory markers `d/`, which opendal's
//! `write` refuses, and special files). S3's are in s3raw.rs.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqsign_core::{Context, OsEnv, Signer};

use crate::config::{Service, ServiceConfig};
use crate::error::{Error, ErrorKind, Result};

/// Characters kept unencoded in a blob's URI path (RFC 3986 unreserved, and `/`).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Characters kept unencoded in a GCS object name that is one path segment (`/` encoded).
const SEGMENT: &AsciiSet = &PATH.add(b'/');

/// Azure's REST version, the one opendal and Azurite use.
const AZURE_VERSION: &str = "2022-11-02";

enum Api {
    Azure {
        signer: Signer<reqsign_azure_storage::Credential>,
        /// `{endpoint}/{container}`
        base: String,
        /// (account, container, account key): what a service SAS is signed with.
        shared_key: Option<(String, String, crate::secret::Secret)>,
    },
    Gcs {
        /// None with `allow_anonymous` / `skip_signature` (emulators, public buckets).
        signer: Option<Signer<reqsign_google::Credential>>,
        endpoint: String,
        bucket: String,
    },
}

/// Raw metadata requests of one Azure Blob or GCS mount.
pub struct ObjRaw {
    client: reqwest::Client,
    api: Api,
    /// The mount's key prefix, `""` or `pfx/`.
    root: String,
    timeout: Duration,
    retries: usize,
}

impl std::fmt::Debug for ObjRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjRaw")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ObjRaw {
    /// The raw client of an Azure Blob or GCS mount; None for other services.
    pub fn new(c: &ServiceConfig) -> Result<Option<ObjRaw>> {
        let opt = |k: &str| c.options.get(k).map(String::as_str);
        let root = opt("root")
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_env(OsEnv);
        let api = match c.service {
            Service::Azblob => {
                let provider = match (
                    opt("account_name"),
                    c.secrets.get("account_key"),
                    c.secrets.get("sas_token"),
                ) {
                    (Some(name), Some(key), _) => {
                        reqsign_azure_storage::StaticCredentialProvider::new_shared_key(
                            name,
                            key.expose(),
                        )
                    }
                    (_, _, Some(sas)) => {
                        reqsign_azure_storage::StaticCredentialProvider::new_sas_token(sas.expose())
                    }
                    // (config validation refuses an Azure mount without either)
                    _ => return Ok(None),
                };
                let shared_key = match (opt("account_name"), c.secrets.get("account_key")) {
                    (Some(name), Some(key)) => Some((
                        name.to_string(),
                        opt("container").unwrap_or_default().to_string(),
                        key.clone(),
                    )),
                    _ => None,
                };
                Api::Azure {
                    shared_key,
                    signer: Signer::new(ctx, provider, reqsign_azure_storage::RequestSigner::new()),
                    base: format!(
                        "{}/{}",
                        opt("endpoint").unwrap_or_default().trim_end_matches('/'),
                        opt("container").unwrap_or_default()
                    ),
                }
            }
            Service::Gcs => {
                let anonymous = ["allow_anonymous", "skip_signature"]
                    .iter()
                    .any(|k| opt(k) == Some("true"));
                let signer = if anonymous {
                    None
                } else {
                    let scope = opt("scope")
                        .unwrap_or("https://www.googleapis.com/auth/devstorage.read_write");
                    let mut chain = reqsign_core::ProvideCredentialChain::new();
                    if let Some(p) = opt("credential_path") {
                        chain = chain
                            .push(reqsign_google::FileCredentialProvider::new(p).with_scope(scope));
                    }
                    if let Some(content) = c.secrets.get("credential") {
                        if let Ok(p) =
                            reqsign_google::StaticCredentialProvider::from_base64(content.expose())
                        {
                            chain = chain.push(p.with_scope(scope));
                        }
                    }
                    Some(Signer::new(
                        ctx,
                        chain,
                        reqsign_google::RequestSigner::new("storage").with_scope(scope),
                    ))
                };
                Api::Gcs {
                    signer,
                    endpoint: opt("endpoint")
                        .unwrap_or("https://storage.googleapis.com")
                        .trim_end_matches('/')
                        .to_string(),
                    bucket: opt("bucket").unwrap_or_default().to_string(),
                }
            }
            _ => return Ok(None),
        };
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, "object client", e.to_string()))?;
        Ok(Some(ObjRaw {
            client,
            api,
            root,
            timeout: c.timeout,
            retries: c.retries,
        }))
    }

    /// Azure with an account key: a URL that reads the blob at `path` until `expires` from
    /// now (a service SAS, `sp=r`, signed with the key, no request made). None otherwise.
    pub fn presign_get(&self, path: &str, expires: Duration) -> Result<Option<String>> {
        use base64::Engine as _;
        use hmac::Mac;
        let Api::Azure {
            base,
            shared_key: Some((account, container, key)),
            ..
        } = &self.api
        else {
            return Ok(None);
        };
        let blob = self.key(path);
        let se = crate::storage::posix::utc(std::time::SystemTime::now() + expires)
            .replace(' ', "T")
            + "Z";
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw_key = b64.decode(key.expose()).map_err(|_| {
            Error::new(
                ErrorKind::Config,
                "account_key",
                "the Azure account key is not base64",
            )
        })?;
        // the string to sign of a service SAS, version 2020-12-06 and later
        let to_sign = format!(
            "r\n\n{se}\n/blob/{account}/{container}/{blob}\n\n\nhttps,http\n{AZURE_VERSION}\nb\n\n\n\n\n\n\n"
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&raw_key)
            .map_err(|e| Error::new(ErrorKind::Config, "account_key", e.to_string()))?;
        mac.update(to_sign.as_bytes());
        let sig = b64.encode(mac.finalize().into_bytes());
        let q = |v: &str| utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
        Ok(Some(format!(
            "{base}/{}?sv={AZURE_VERSION}&spr=https%2Chttp&se={}&sr=b&sp=r&sig={}",
            utf8_percent_encode(&blob, PATH),
            q(&se),
            q(&sig)
        )))
    }

    /// Can [`ObjRaw::presign_get`] sign (Azure with an account key)?
    pub fn can_presign(&self) -> bool {
        matches!(
            &self.api,
            Api::Azure {
                shared_key: Some(_),
                ..
            }
        )
    }

    fn key(&self, path: &str) -> String {
        format!("{}{}", self.root, path)
    }

    /// Replace the user metadata of the object at `path` (a file, or a marker `d/`), keeping
    /// its bytes: one request. Azure replaces the whole set; GCS merges a PATCH into the
    /// object's, so the keys in `removed` are sent as null there.
    pub async fn replace_metadata(
        &self,
        path: &str,
        meta: &[(String, String)],
        removed: &[String],
    ) -> Result<()> {
        let key = self.key(path);
        let req = match &self.api {
            Api::Azure { base, .. } => Req {
                method: http::Method::PUT,
                url: format!("{base}/{}?comp=metadata", utf8_percent_encode(&key, PATH)),
                headers: azure_meta(meta),
                body: Bytes::new(),
            },
            Api::Gcs {
                endpoint, bucket, ..
            } => Req {
                method: http::Method::PATCH,
                url: format!(
                    "{endpoint}/storage/v1/b/{bucket}/o/{}",
                    utf8_percent_encode(&key, SEGMENT)
                ),
                headers: vec![("content-type".into(), "application/json".into())],
                body: gcs_meta(meta, removed),
            },
        };
        self.send(path, req).await
    }

    /// The user metadata of the object at `path` (a marker `d/`), None when there is none.
    /// One request (Azure HEAD, GCS GET of the object resource).
    pub async fn head_metadata(&self, path: &str) -> Result<Option<Vec<(String, String)>>> {
        let key = self.key(path);
        let req = match &self.api {
            Api::Azure { base, .. } => Req {
                method: http::Method::HEAD,
                url: format!("{base}/{}", utf8_percent_encode(&key, PATH)),
                headers: Vec::new(),
                body: Bytes::new(),
            },
            Api::Gcs {
                endpoint, bucket, ..
            } => Req {
                method: http::Method::GET,
                url: format!(
                    "{endpoint}/storage/v1/b/{bucket}/o/{}",
                    utf8_percent_encode(&key, SEGMENT)
                ),
                headers: Vec::new(),
                body: Bytes::new(),
            },
        };
        match self.request(path, &req).await {
            Ok((headers, body)) => Ok(Some(match &self.api {
                Api::Azure { .. } => super::s3raw::prefixed_headers(&headers, "x-ms-meta-"),
                Api::Gcs { .. } => serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("metadata").and_then(|m| m.as_object()).cloned())
                    .map(|m| {
                        m.into_iter()
                            .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default(),
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write an empty object with user metadata at `path` (a marker when it ends with `/`).
    /// Azure: one request; GCS: an upload, then the metadata (two).
    pub async fn put_empty(&self, path: &str, meta: &[(String, String)]) -> Result<()> {
        let key = self.key(path);
        match &self.api {
            Api::Azure { base, .. } => {
                let mut headers = azure_meta(meta);
                headers.push(("x-ms-blob-type".into(), "BlockBlob".into()));
                let req = Req {
                    method: http::Method::PUT,
                    url: format!("{base}/{}", utf8_percent_encode(&key, PATH)),
                    headers,
                    body: Bytes::new(),
                };
                self.send(path, req).await
            }
            Api::Gcs {
                endpoint, bucket, ..
            } => {
                let req = Req {
                    method: http::Method::POST,
                    url: format!(
                        "{endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
                        utf8_percent_encode(&key, SEGMENT)
                    ),
                    headers: vec![("content-type".into(), "application/octet-stream".into())],
                    body: Bytes::new(),
                };
                self.send(path, req).await?;
                self.replace_metadata(path, meta, &[]).await
            }
        }
    }

    async fn send(&self, path: &str, req: Req) -> Result<()> {
        self.request(path, &req).await.map(drop)
    }

    /// Send with retries: the answer's headers and body.
    async fn request(&self, path: &str, req: &Req) -> Result<(http::HeaderMap, Bytes)> {
        super::s3raw::retrying(path, self.timeout, self.retries, || self.once(req)).await
    }

    /// One attempt: Err((error, worth retrying)).
    async fn once(&self, r: &Req) -> std::result::Result<(http::HeaderMap, Bytes), (Error, bool)> {
        let bad = |m: String| (Error::new(ErrorKind::Backend, &r.url, m), false);
        let mut b = http::Request::builder()
            .method(r.method.clone())
            .uri(&r.url);
        if r.method != http::Method::HEAD && r.method != http::Method::GET {
            b = b.header("content-length", r.body.len().to_string());
        }
        for (k, v) in &r.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let (mut parts, ()) = b.body(()).map_err(|e| bad(e.to_string()))?.into_parts();
        let signed = match &self.api {
            Api::Azure { signer, .. } => {
                parts.headers.insert(
                    "x-ms-version",
                    http::HeaderValue::from_static(AZURE_VERSION),
                );
                signer.sign(&mut parts, None).await
            }
            Api::Gcs {
                signer: Some(signer),
                ..
            } => signer.sign(&mut parts, None).await,
            Api::Gcs { signer: None, .. } => Ok(()),
        };
        signed.map_err(|e| bad(format!("cannot sign the request: {e}")))?;
        let mut req = self.client.request(r.method.clone(), &r.url);
        for (k, v) in parts.headers.iter() {
            req = req.header(k, v);
        }
        let resp = req
            .body(r.body.clone())
            .send()
            .await
            .map_err(|e| (Error::new(ErrorKind::Backend, &r.url, e.to_string()), true))?;
        let status = resp.status();
        if status.is_success() {
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .map_err(|e| (Error::new(ErrorKind::Backend, &r.url, e.to_string()), true))?;
            return Ok((headers, body));
        }
        let body = resp.text().await.unwrap_or_default();
        let kind = match status.as_u16() {
            404 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::PermissionDenied,
            _ => ErrorKind::Backend,
        };
        let brief: String = body.chars().take(200).collect();
        Err((
            Error::new(kind, &r.url, format!("answered {status}: {brief}")),
            status.is_server_error() || status.as_u16() == 429,
        ))
    }
}

struct Req {
    method: http::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

fn azure_meta(meta: &[(String, String)]) -> Vec<(String, String)> {
    meta.iter()
        .map(|(k, v)| (format!("x-ms-meta-{k}"), v.clone()))
        .collect()
}

/// `{"metadata": {...}}`. GCS merges a PATCH's keys into the object's: a key to drop is
/// sent as null.
fn gcs_meta(meta: &[(String, String)], removed: &[String]) -> Bytes {
    let map: serde_json::Map<String, serde_json::Value> = removed
        .iter()
        .map(|k| (k.clone(), serde_json::Value::Null))
        .chain(
            meta.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))),
        )
        .collect();
    Bytes::from(serde_json::json!({ "metadata": map }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcs_names_are_one_segment() {
        assert_eq!(
            utf8_percent_encode("pfx/a b/d/", SEGMENT).to_string(),
            "pfx%2Fa%20b%2Fd%2F"
        );
        assert_eq!(
            gcs_meta(&[("mode".into(), "33188".into())], &[]),
            Bytes::from_static(br#"{"metadata":{"mode":"33188"}}"#)
        );
        assert_eq!(
            gcs_meta(&[("mode".into(), "33188".into())], &["author".into()]),
            Bytes::from_static(br#"{"metadata":{"author":null,"mode":"33188"}}"#)
        );
    }
}

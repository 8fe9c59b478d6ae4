//! The two S3 requests opendal 0.59 cannot make, signed with the same reqsign signer and
//! credential chain as opendal's: CopyObject of an object onto itself with
//! `x-amz-metadata-directive: REPLACE` (chmod, chown and utimens in one request, the body
//! never re-uploaded), and a PUT of an empty object with user metadata (directory markers
//! `d/`, which opendal's `write` refuses, and special files).
//!
//! A third: a ranged GET that returns its headers (user metadata, size, ETag) with the bytes,
//! so that a lookup learns an object's attributes and its first bytes from one request
//! (opendal's read returns no metadata).
//!
//! (opendal's `copy` keeps the source's metadata and has no option for new metadata; its
//! `compose` would take three requests and an UploadPartCopy that some servers lack.)

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqsign_aws_v4::{Credential, DefaultCredentialProvider, RequestSigner};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};

use crate::secret::KeysProvider;

use crate::error::{Error, ErrorKind, Result};

/// SHA-256 of an empty body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Characters S3 keys keep unencoded in a URI path (RFC 3986 unreserved, and `/`).
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Largest object CopyObject copies in one request.
pub const MAX_COPY: u64 = 5 << 30;

/// What a ranged first GET found.
#[derive(Debug)]
pub enum First {
    /// The object: the response's headers and its first bytes.
    Found {
        /// The response headers (Content-Range or Content-Length, ETag, Last-Modified,
        /// `x-amz-meta-*`).
        headers: http::HeaderMap,
        /// Up to the bytes asked for, from offset 0.
        body: Bytes,
    },
    /// An object of no bytes (its attributes need a HEAD).
    Empty,
}

/// What a raw request needs: where the bucket is and how to sign.
pub struct S3Raw {
    client: reqwest::Client,
    signer: Signer<Credential>,
    /// `{endpoint}/{bucket}` (path-style addressing, as opendal uses).
    base: String,
    bucket: String,
    /// The mount's key prefix, `""` or `pfx/`.
    root: String,
    timeout: Duration,
    retries: usize,
}

impl std::fmt::Debug for S3Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Raw")
            .field("base", &self.base)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The settings of an S3 mount that raw requests use.
pub struct S3Target<'a> {
    /// Bucket name.
    pub bucket: &'a str,
    /// Key prefix of the mount.
    pub prefix: Option<&'a str>,
    /// Region.
    pub region: &'a str,
    /// Endpoint URL, when not AWS.
    pub endpoint: Option<&'a str>,
    /// The configured keys, else the environment and profile.
    pub keys: Option<&'a KeysProvider>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries of a failed attempt.
    pub retries: usize,
}

/// The credential chain of an S3 mount, for opendal and for our own requests alike: the
/// configured keys first (in a provider that never prints them), then the environment and the
/// profile files; never the instance metadata service.
pub fn credentials(keys: Option<&KeysProvider>) -> ProvideCredentialChain<Credential> {
    let mut chain =
        ProvideCredentialChain::new().push(DefaultCredentialProvider::builder().no_imds().build());
    if let Some(k) = keys {
        chain = chain.push_front(k.clone());
    }
    chain
}

impl S3Raw {
    /// A client for one S3 mount.
    pub fn new(t: &S3Target<'_>) -> Result<S3Raw> {
        let endpoint = match t.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", t.region),
        };
        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_env(OsEnv);
        let signer = Signer::new(ctx, credentials(t.keys), RequestSigner::new("s3", t.region));
        let root = t
            .prefix
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, "s3 client", e.to_string()))?;
        Ok(S3Raw {
            client,
            signer,
            base: format!("{endpoint}/{}", t.bucket),
            bucket: t.bucket.to_string(),
            root,
            timeout: t.timeout,
            retries: t.retries,
        })
    }

    fn key(&self, path: &str) -> String {
        format!("{}{}", self.root, path)
    }

    /// Replace the user metadata of the object at `path` (a file, or a marker `d/`), keeping
    /// its bytes: one CopyObject onto itself. `etag`, when known, guards against copying
    /// another writer's newer object under our metadata.
    pub async fn replace_metadata(
        &self,
        path: &str,
        meta: &[(String, String)],
        content_type: Option<&str>,
    ) -> Result<()> {
        let key = self.key(path);
        let source = format!("{}/{}", self.bucket, utf8_percent_encode(&key, KEY));
        let mut headers = vec![
            ("x-amz-copy-source".to_string(), source),
            (
                "x-amz-metadata-directive".to_string(),
                "REPLACE".to_string(),
            ),
        ];
        if let Some(ct) = content_type {
            headers.push(("content-type".to_string(), ct.to_string()));
        }
        self.send(path, &key, headers, meta).await
    }

    /// Write an empty object with user metadata at `path` (a marker when it ends with `/`).
    pub async fn put_empty(&self, path: &str, meta: &[(String, String)]) -> Result<()> {
        let key = self.key(path);
        let headers = vec![("content-length".to_string(), "0".to_string())];
        self.send(path, &key, headers, meta).await
    }

    /// The user metadata of the object at `path` (a marker `d/`: opendal's stat of a path
    /// ending in `/` lists instead of asking the marker), None when there is none. One HEAD.
    pub async fn head_metadata(&self, path: &str) -> Result<Option<Vec<(String, String)>>> {
        let key = self.key(path);
        let url = format!("{}/{}", self.base, utf8_percent_encode(&key, KEY));
        retrying(path, self.timeout, self.retries, || self.head_once(&url)).await
    }

    /// The first `n` bytes of the object at `path` with the response's headers, from one
    /// ranged GET: `Ok(None)` when there is no such object, `First::Empty` for an object of
    /// no bytes (a range of an empty object is unsatisfiable: 416, without its metadata).
    /// A server that ignores the range is read no further than `n` bytes.
    pub async fn get_first(&self, path: &str, n: u64) -> Result<Option<First>> {
        let key = self.key(path);
        let url = format!("{}/{}", self.base, utf8_percent_encode(&key, KEY));
        retrying(path, self.timeout, self.retries, || {
            self.get_first_once(&url, n)
        })
        .await
    }

    async fn get_first_once(
        &self,
        url: &str,
        n: u64,
    ) -> std::result::Result<Option<First>, (Error, bool)> {
        let range = format!("bytes=0-{}", n.max(1) - 1);
        let b = http::Request::get(url).header("range", range.as_str());
        let mut resp = self.signed(url, b).await?;
        let status = resp.status();
        match status.as_u16() {
            404 => return Ok(None),
            416 => return Ok(Some(First::Empty)),
            200 | 206 => {}
            _ => return Err(refused(url, status)),
        }
        let headers = resp.headers().clone();
        let mut body = bytes::BytesMut::new();
        while (body.len() as u64) < n {
            match resp.chunk().await {
                Ok(Some(c)) => body.extend_from_slice(&c),
                Ok(None) => break,
                Err(e) => return Err((Error::new(ErrorKind::Backend, url, e.to_string()), true)),
            }
        }
        body.truncate(n as usize);
        Ok(Some(First::Found {
            headers,
            body: body.freeze(),
        }))
    }

    async fn head_once(
        &self,
        url: &str,
    ) -> std::result::Result<Option<Vec<(String, String)>>, (Error, bool)> {
        let resp = self.signed(url, http::Request::head(url)).await?;
        let status = resp.status();
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(refused(url, status));
        }
        Ok(Some(prefixed_headers(resp.headers(), "x-amz-meta-")))
    }

    /// Sign and send a request without a body (`b`'s method and headers, to `url`).
    async fn signed(
        &self,
        url: &str,
        b: http::request::Builder,
    ) -> std::result::Result<reqwest::Response, (Error, bool)> {
        let bad = |m: String| (Error::new(ErrorKind::Backend, url, m), false);
        let b = b.header("x-amz-content-sha256", EMPTY_SHA256);
        let (mut parts, ()) = b.body(()).map_err(|e| bad(e.to_string()))?.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| bad(format!("cannot sign the request: {e}")))?;
        let mut req = self.client.request(parts.method.clone(), url);
        for (k, v) in parts.headers.iter() {
            req = req.header(k, v);
        }
        req.send()
            .await
            .map_err(|e| (Error::new(ErrorKind::Backend, url, e.to_string()), true))
    }

    async fn send(
        &self,
        path: &str,
        key: &str,
        headers: Vec<(String, String)>,
        meta: &[(String, String)],
    ) -> Result<()> {
        let url = format!("{}/{}", self.base, utf8_percent_encode(key, KEY));
        retrying(path, self.timeout, self.retries, || {
            self.once(&url, &headers, meta)
        })
        .await
    }

    /// One attempt: Err((error, worth retrying)).
    async fn once(
        &self,
        url: &str,
        headers: &[(String, String)],
        meta: &[(String, String)],
    ) -> std::result::Result<(), (Error, bool)> {
        let bad = |m: String| (Error::new(ErrorKind::Backend, url, m), false);
        let mut b = http::Request::put(url).header("x-amz-content-sha256", EMPTY_SHA256);
        for (k, v) in headers {
            b = b.header(k.as_str(), v.as_str());
        }
        for (k, v) in meta {
            b = b.header(format!("x-amz-meta-{k}"), v.as_str());
        }
        let (mut parts, ()) = b.body(()).map_err(|e| bad(e.to_string()))?.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| bad(format!("cannot sign the request: {e}")))?;
        let mut req = self.client.put(url);
        for (k, v) in parts.headers.iter() {
            req = req.header(k, v);
        }
        let resp = req
            .body(Bytes::new())
            .send()
            .await
            .map_err(|e| (Error::new(ErrorKind::Backend, url, e.to_string()), true))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        // CopyObject may answer 200 with an error in its body
        if status.is_success() && !body.contains("<Error>") {
            return Ok(());
        }
        let code = body
            .split("<Code>")
            .nth(1)
            .and_then(|r| r.split("</Code>").next())
            .unwrap_or("")
            .to_string();
        let kind = match (status.as_u16(), code.as_str()) {
            (404, _) | (_, "NoSuchKey") => ErrorKind::NotFound,
            (403, _) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Backend,
        };
        let retry = status.is_server_error() || code == "InternalError" || code == "SlowDown";
        Err((
            Error::new(kind, url, format!("S3 answered {status} {code}")),
            retry,
        ))
    }
}

/// A refusal by status: 403 is PermissionDenied, anything else Backend; a server error is
/// worth retrying.
fn refused(url: &str, status: http::StatusCode) -> (Error, bool) {
    let kind = if status.as_u16() == 403 {
        ErrorKind::PermissionDenied
    } else {
        ErrorKind::Backend
    };
    (
        Error::new(kind, url, format!("S3 answered {status}")),
        status.is_server_error(),
    )
}

/// One raw request with retries: `attempt` is called again while it fails with a retryable
/// error (`(error, true)`) or runs past `timeout`, at most `retries` more times, 100 ms
/// doubling to 1.6 s apart. A final error names `path`.
pub async fn retrying<T, F, Fut>(
    path: &str,
    timeout: Duration,
    retries: usize,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, (Error, bool)>>,
{
    let mut n = 0;
    loop {
        let err = match tokio::time::timeout(timeout, attempt()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err((e, true))) => e,
            Ok(Err((e, false))) => return Err(e.with_context(path.to_string())),
            // EIO, as opendal's timeout layer answers for the mount's other requests
            Err(_) => Error::new(
                ErrorKind::Backend,
                path,
                format!("request timed out after {timeout:?}"),
            ),
        };
        if n >= retries {
            return Err(err);
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(50 << n.min(5))).await;
    }
}

/// The headers named `prefix…`, without the prefix (user metadata).
pub fn prefixed_headers(h: &http::HeaderMap, prefix: &str) -> Vec<(String, String)> {
    h.iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix(prefix)?;
            Some((name.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_once_with_slashes_kept() {
        assert_eq!(
            utf8_percent_encode("pfx/a b/ü+x~y.z", KEY).to_string(),
            "pfx/a%20b/%C3%BC%2Bx~y.z"
        );
    }
}

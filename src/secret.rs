//! Secrets (keys, secret keys, session tokens, passwords): a string that prints as `***`
//! in `Debug` and `Display`, so that no log line, error, panic or `{:?}` of a config can
//! show it, and the credential provider that hands our S3 keys to the request signers.

use std::fmt;

/// A secret value. Its text is only reachable through [`Secret::expose`], where a request
/// is signed; everything that formats it prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that needs it (signing a request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

/// Static S3 keys as a reqsign credential provider whose `Debug` shows no key. reqsign logs
/// every provider of a chain with `{:?}` at debug level, and its own `StaticCredentialProvider`
/// derives `Debug` with the secret inside: so our keys never reach that type (opendal's S3
/// builder is given this chain instead of the keys).
#[derive(Clone)]
pub struct KeysProvider {
    access_key: Secret,
    secret_key: Secret,
    session_token: Option<Secret>,
}

impl KeysProvider {
    /// A provider of these keys.
    pub fn new(access_key: Secret, secret_key: Secret, session_token: Option<Secret>) -> Self {
        KeysProvider {
            access_key,
            secret_key,
            session_token,
        }
    }
}

impl fmt::Debug for KeysProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysProvider")
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

impl reqsign_core::ProvideCredential for KeysProvider {
    type Credential = reqsign_aws_v4::Credential;

    async fn provide_credential(
        &self,
        _: &reqsign_core::Context,
    ) -> reqsign_core::Result<Option<Self::Credential>> {
        Ok(Some(reqsign_aws_v4::Credential {
            access_key_id: self.access_key.expose().to_string(),
            secret_access_key: self.secret_key.expose().to_string(),
            session_token: self.session_token.as_ref().map(|t| t.expose().to_string()),
            expires_in: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_text() {
        let s = Secret::new("VERYSECRET");
        assert_eq!(format!("{s} {s:?} {s:#?}"), "*** *** ***");
        let p = KeysProvider::new("AKID".into(), s.clone(), Some("TOKEN".into()));
        let shown = format!("{p:?} {p:#?}");
        assert!(
            !shown.contains("VERYSECRET") && !shown.contains("TOKEN") && !shown.contains("AKID")
        );
        assert_eq!(s.expose(), "VERYSECRET");
    }
}

//! The application server's VAPID key pair (RFC 8292).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde::Serialize;

use crate::b64;

/// How long a VAPID token is valid (RFC 8292 allows up to 24 hours).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    #[error("not a P-256 private key (PEM, or the base64url 32-byte scalar): {0}")]
    BadKey(String),
    #[error("must start with mailto: or https:")]
    BadSubject,
    #[error("signing the VAPID token: {0}")]
    Sign(String),
}

/// A token is reused for its origin until this much of its lifetime is left.
const REFRESH_WHEN_LEFT: Duration = Duration::from_secs(6 * 3600);
/// Origins whose tokens are kept, at most (push services are a handful; the
/// cache starts over beyond this).
const MAX_CACHED_ORIGINS: usize = 1024;

/// A VAPID key pair and the contact (`sub`) sent with it. `Debug` shows the
/// public half only. Cheap to clone (the token cache is shared).
#[derive(Clone)]
pub struct VapidKey {
    encoding: jsonwebtoken::EncodingKey,
    public: String,
    subject: String,
    /// The `Authorization` header of each origin, and when it expires: an
    /// ES256 signature per push would cost more than the push's encryption.
    cache: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (String, u64)>>>,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    exp: u64,
    sub: &'a str,
}

impl VapidKey {
    /// From a PEM private key (PKCS#8 or SEC1) or the base64url encoding of its
    /// 32-byte scalar, and the contact URL.
    pub fn parse(private_key: &str, subject: &str) -> Result<Self, VapidError> {
        let raw = private_key.trim();
        let secret = if raw.starts_with("-----BEGIN") {
            p256::SecretKey::from_pkcs8_pem(raw)
                .or_else(|_| p256::SecretKey::from_sec1_pem(raw))
                .map_err(|e| VapidError::BadKey(e.to_string()))?
        } else {
            let bytes = b64().decode(raw).map_err(|e| VapidError::BadKey(e.to_string()))?;
            p256::SecretKey::from_slice(&bytes).map_err(|e| VapidError::BadKey(e.to_string()))?
        };
        let subject = subject.trim();
        if !(subject.starts_with("mailto:") || subject.starts_with("https:")) {
            return Err(VapidError::BadSubject);
        }
        Self::from_secret(&secret, subject)
    }

    fn from_secret(secret: &p256::SecretKey, subject: &str) -> Result<Self, VapidError> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| VapidError::BadKey(e.to_string()))?;
        let public = b64().encode(secret.public_key().to_encoded_point(false).as_bytes());
        Ok(Self {
            encoding: jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()),
            public,
            subject: subject.to_owned(),
            cache: Default::default(),
        })
    }

    /// A new random key pair: (the private key as base64url, its public key).
    pub fn generate() -> (String, String) {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let public = b64().encode(secret.public_key().to_encoded_point(false).as_bytes());
        (b64().encode(secret.to_bytes()), public)
    }

    /// The public key as `applicationServerKey` takes it: the base64url
    /// uncompressed P-256 point (65 bytes).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to an endpoint of `origin`
    /// (`scheme://host[:port]`): `vapid t=<ES256 JWT>, k=<public key>`. A
    /// token is signed once per origin and reused while more than 6 of its 12
    /// hours are left.
    pub fn authorization(&self, origin: &str) -> Result<String, VapidError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((header, exp)) = cache.get(origin) {
            if *exp > now + REFRESH_WHEN_LEFT.as_secs() {
                return Ok(header.clone());
            }
        }
        let header = self.sign(origin, now)?;
        if cache.len() >= MAX_CACHED_ORIGINS {
            cache.clear();
        }
        cache.insert(
            origin.to_owned(),
            (header.clone(), now + TOKEN_LIFETIME.as_secs()),
        );
        Ok(header)
    }

    fn sign(&self, origin: &str, now: u64) -> Result<String, VapidError> {
        let claims = Claims {
            aud: origin,
            exp: now + TOKEN_LIFETIME.as_secs(),
            sub: &self.subject,
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &self.encoding,
        )
        .map_err(|e| VapidError::Sign(e.to_string()))?;
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;

    #[test]
    fn a_generated_key_parses_back_to_the_same_public_key() {
        let (private, public) = VapidKey::generate();
        let key = VapidKey::parse(&private, "mailto:ops@example.com").unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(b64().decode(public).unwrap().len(), 65);
        assert!(!format!("{key:?}").contains(&private), "no secret in Debug");
    }

    #[test]
    fn the_authorization_header_carries_a_verifiable_token() {
        let (private, _) = VapidKey::generate();
        let key = VapidKey::parse(&private, "https://example.com/contact").unwrap();
        let header = key.authorization("https://push.example.net").unwrap();
        let (t, k) = header
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .unwrap();
        assert_eq!(k, key.public_key());
        let point = b64().decode(k).unwrap();
        let public = p256::PublicKey::from_sec1_bytes(&point).unwrap();
        let pem = p256::pkcs8::EncodePublicKey::to_public_key_pem(&public, Default::default()).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&["https://push.example.net"]);
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            t,
            &jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            &v,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "https://example.com/contact");
    }

    #[test]
    fn bad_keys_and_subjects_are_refused() {
        assert!(VapidKey::parse("not-a-key", "mailto:a@b").is_err());
        assert!(
            VapidKey::parse(&b64().encode([0u8; 32]), "mailto:a@b").is_err(),
            "zero scalar"
        );
        let (private, _) = VapidKey::generate();
        assert!(matches!(
            VapidKey::parse(&private, "ops@example.com"),
            Err(VapidError::BadSubject)
        ));
    }
}

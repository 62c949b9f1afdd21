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
            // The key's own block: `openssl ecparam -genkey` (without
            // `-noout`) writes an `EC PARAMETERS` block before it.
            let block = ["-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----"]
                .iter()
                .filter_map(|label| raw.find(label))
                .min()
                .map_or(raw, |at| &raw[at..]);
            p256::SecretKey::from_pkcs8_pem(block)
                .or_else(|_| p256::SecretKey::from_sec1_pem(block))
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
        // `herald-token vapid-keys` prints it as `HERALD_VAPID_PRIVATE_KEY=…`
        // for `export $(herald-token vapid-keys | grep '^HERALD_')`: one word
        // the shell neither splits nor expands.
        assert_eq!(private.len(), 43);
        assert!(private
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
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

    /// Keys as OpenSSL writes them, each with the public key OpenSSL derives
    /// from it (`openssl ec -pubout -outform DER | tail -c 65`, base64url):
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    /// (PKCS#8), `openssl ecparam -name prime256v1 -genkey -noout` (SEC1) and
    /// the same without `-noout`, which writes an `EC PARAMETERS` block first.
    const OPENSSL_KEYS: [(&str, &str, &str); 3] = [
        (
            "PKCS#8",
            "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtriihlS3kMTUxMuW
H0zLxipPc4wAzUThKO4epIrGMiyhRANCAAQrumKDmp6ORmzhmCCKoj1+INDbdbTr
a8KtTEAIx35/v5ewNPBMdJvMUzw4IqmYpkF4H2zcC7ai+OcTrntQvUC+
-----END PRIVATE KEY-----
",
            "BCu6YoOano5GbOGYIIqiPX4g0Nt1tOtrwq1MQAjHfn-_l7A08Ex0m8xTPDgiqZimQXgfbNwLtqL45xOue1C9QL4",
        ),
        (
            "SEC1",
            "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBoq5oAs1LzR5kyZ/ULa+oaarD9VIdAABEx6PhdR8ZtaoAoGCCqGSM49
AwEHoUQDQgAEMOoW0NFpURZa9SUeykTL3vVcaJx0nBynSgiG31pv8GsQmqRYGEky
34O1UPllrl7MkZhNNObMC+7XcufwecD8BQ==
-----END EC PRIVATE KEY-----
",
            "BDDqFtDRaVEWWvUlHspEy971XGicdJwcp0oIht9ab_BrEJqkWBhJMt-DtVD5Za5ezJGYTTTmzAvu13Ln8HnA_AU",
        ),
        (
            "SEC1 after EC PARAMETERS",
            "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBJ6x1Je3tLEmi50pjDDOJ78BRMPPS/pFuwRvV19iz7GoAoGCCqGSM49
AwEHoUQDQgAEXYgN79SU+8HnuXNF6IgONlG1uylZFtFWKzyNmtceJpIZJqFRAxO9
5FJwpVXqVMOQRYMlgLWs2/Qv2IEzwwHsbw==
-----END EC PRIVATE KEY-----
",
            "BF2IDe_UlPvB57lzReiIDjZRtbspWRbRVis8jZrXHiaSGSahUQMTveRScKVV6lTDkEWDJYC1rNv0L9iBM8MB7G8",
        ),
    ];

    #[test]
    fn every_pem_key_openssl_writes_parses_to_the_public_key_openssl_derives() {
        for (form, pem, public) in OPENSSL_KEYS {
            // As written, with CRLF line ends, and indented in a config file.
            let crlf = pem.replace('\n', "\r\n");
            let padded = format!("\n  {pem}  \n");
            for text in [pem, crlf.as_str(), padded.as_str()] {
                let key =
                    VapidKey::parse(text, "mailto:ops@example.com").unwrap_or_else(|e| panic!("{form}: {e}"));
                assert_eq!(key.public_key(), public, "{form}");
            }
            // It signs, and the signature verifies under that public key.
            let key = VapidKey::parse(pem, "mailto:ops@example.com").unwrap();
            let header = key.authorization("https://push.example.net").unwrap();
            let token = header
                .strip_prefix("vapid t=")
                .and_then(|r| r.split_once(", k="))
                .unwrap()
                .0;
            let point = b64().decode(public).unwrap();
            let verifying = p256::PublicKey::from_sec1_bytes(&point).unwrap();
            let pem_public =
                p256::pkcs8::EncodePublicKey::to_public_key_pem(&verifying, Default::default()).unwrap();
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
            v.set_audience(&["https://push.example.net"]);
            jsonwebtoken::decode::<serde_json::Value>(
                token,
                &jsonwebtoken::DecodingKey::from_ec_pem(pem_public.as_bytes()).unwrap(),
                &v,
            )
            .unwrap_or_else(|e| panic!("{form}: {e}"));
        }
    }

    #[test]
    fn a_pem_key_that_is_not_p256_is_refused() {
        // `openssl ecparam -name secp384r1 -genkey -noout`
        let p384 = "-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDDd0oCWAu0lJxJ3usNEudbvsiMPlaYIoO62HIH3BEFFrBPBanfowsgG
lqnugakvaSCgBwYFK4EEACKhZANiAARZVnRWPbwe1va3qncRPBXnke6VqfWkRjeC
KI/tf/J4t+KOqa/+4v8bgaV9eUIiGEnt6GRXFoCup8xgkcTdO5uozsUXe7odF83w
VxWea0oZjw/8zyHVCJpUwD6DXv1o7Ys=
-----END EC PRIVATE KEY-----
";
        assert!(matches!(
            VapidKey::parse(p384, "mailto:a@b"),
            Err(VapidError::BadKey(_))
        ));
        // A public key is not a private key.
        let public = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEK7pig5qejkZs4ZggiqI9fiDQ23W0
62vCrUxACMd+f7+XsDTwTHSbzFM8OCKpmKZBeB9s3Au2ovjnE657UL1Avg==
-----END PUBLIC KEY-----
";
        assert!(matches!(
            VapidKey::parse(public, "mailto:a@b"),
            Err(VapidError::BadKey(_))
        ));
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

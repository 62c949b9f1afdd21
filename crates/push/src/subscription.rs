//! A browser's push subscription keys (`PushSubscription.toJSON().keys`).

use base64::Engine as _;

use crate::b64;

/// The user agent's P-256 public key and auth secret, checked: `p256dh` is an
/// uncompressed point on the curve, `auth` 16 bytes, both base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionKeys {
    p256dh: String,
    auth: String,
}

impl SubscriptionKeys {
    /// Checks the keys as the browser sends them; the error names the key.
    pub fn parse(p256dh: &str, auth: &str) -> Result<Self, (&'static str, String)> {
        let point = decode(p256dh).map_err(|e| ("keys.p256dh", e))?;
        if point.len() != 65 || p256::PublicKey::from_sec1_bytes(&point).is_err() {
            return Err((
                "keys.p256dh",
                "must be an uncompressed P-256 public key (65 bytes, base64url)".into(),
            ));
        }
        let secret = decode(auth).map_err(|e| ("keys.auth", e))?;
        if secret.len() != 16 {
            return Err(("keys.auth", "must be the 16-byte auth secret, base64url".into()));
        }
        Ok(Self {
            p256dh: b64().encode(point),
            auth: b64().encode(secret),
        })
    }

    pub fn p256dh(&self) -> &str {
        &self.p256dh
    }

    pub fn auth(&self) -> &str {
        &self.auth
    }

    pub(crate) fn public_key(&self) -> Result<p256::PublicKey, String> {
        let point = decode(&self.p256dh)?;
        p256::PublicKey::from_sec1_bytes(&point).map_err(|e| e.to_string())
    }

    pub(crate) fn auth_secret(&self) -> Result<web_push_native::Auth, String> {
        let bytes: [u8; 16] = decode(&self.auth)?
            .try_into()
            .map_err(|_| "the auth secret is not 16 bytes".to_owned())?;
        Ok(web_push_native::Auth::from(bytes))
    }
}

/// base64url, padded or not (browsers send it unpadded; some libraries pad).
fn decode(s: &str) -> Result<Vec<u8>, String> {
    b64()
        .decode(s.trim().trim_end_matches('='))
        .map_err(|_| "must be base64url".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    #[test]
    fn keys_are_checked_and_named() {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let point = b64().encode(secret.public_key().to_encoded_point(false).as_bytes());
        let auth = b64().encode([7u8; 16]);
        let keys = SubscriptionKeys::parse(&point, &auth).unwrap();
        assert_eq!(keys.p256dh(), point);
        assert_eq!(
            SubscriptionKeys::parse(&format!("{point}=="), &auth).unwrap(),
            keys
        );
        assert_eq!(
            SubscriptionKeys::parse("AAAA", &auth).unwrap_err().0,
            "keys.p256dh"
        );
        assert_eq!(
            SubscriptionKeys::parse(&point, "AAAA").unwrap_err().0,
            "keys.auth"
        );
        assert_eq!(SubscriptionKeys::parse(&point, "a b").unwrap_err().0, "keys.auth");
        let compressed = b64().encode(secret.public_key().to_encoded_point(true).as_bytes());
        assert_eq!(
            SubscriptionKeys::parse(&compressed, &auth).unwrap_err().0,
            "keys.p256dh"
        );
    }
}

//! One push request (RFC 8030), its payload encrypted per RFC 8291.

use std::time::Duration;

use crate::{SubscriptionKeys, VapidKey};

/// The largest plaintext that fits the 4096-byte record push services accept:
/// 4096 minus the `aes128gcm` header (86 bytes with a P-256 key id), the AEAD tag
/// (16) and the padding delimiter (1).
pub const MAX_PLAINTEXT: usize = 4096 - 86 - 16 - 1;

/// How urgent a push is (RFC 8030 §5.3): devices may hold back low urgency on
/// battery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the payload is {0} bytes, more than the {MAX_PLAINTEXT} a push carries")]
    TooLarge(usize),
    #[error("the subscription's keys are invalid: {0}")]
    BadKeys(String),
    #[error("encrypting: {0}")]
    Encrypt(String),
    #[error(transparent)]
    Vapid(#[from] crate::vapid::VapidError),
}

/// What to send.
#[derive(Debug, Clone)]
pub struct PushMessage<'a> {
    pub payload: &'a [u8],
    /// How long the push service keeps it for an offline device (`TTL`).
    pub ttl: Duration,
    pub urgency: Urgency,
    /// Replaces an undelivered push with the same topic (`Topic`): at most 32
    /// characters of the base64url alphabet.
    pub topic: Option<&'a str>,
}

impl PushMessage<'_> {
    /// The request to `endpoint` (checked by the caller's `EndpointPolicy`):
    /// the encrypted body and the `TTL`, `Urgency`, `Topic`,
    /// `Content-Encoding: aes128gcm` and VAPID `Authorization` headers.
    pub fn request(
        &self,
        client: &reqwest::Client,
        endpoint: &url::Url,
        keys: &SubscriptionKeys,
        vapid: &VapidKey,
    ) -> Result<reqwest::RequestBuilder, PushError> {
        if self.payload.len() > MAX_PLAINTEXT {
            return Err(PushError::TooLarge(self.payload.len()));
        }
        let public = keys.public_key().map_err(PushError::BadKeys)?;
        let auth = keys.auth_secret().map_err(PushError::BadKeys)?;
        let body = web_push_native::encrypt(self.payload.to_vec(), &public, &auth)
            .map_err(|e| PushError::Encrypt(e.to_string()))?;
        let origin = endpoint.origin().ascii_serialization();
        let mut req = client
            .post(endpoint.clone())
            .header("TTL", self.ttl.as_secs().to_string())
            .header("Urgency", self.urgency.as_str())
            .header(http::header::CONTENT_ENCODING, "aes128gcm")
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(http::header::AUTHORIZATION, vapid.authorization(&origin)?);
        if let Some(topic) = self.topic {
            req = req.header("Topic", topic);
        }
        Ok(req.body(body))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;
    use base64::Engine as _;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    /// What a browser would decrypt: the same plaintext, with the key the
    /// subscription's private half derives.
    #[test]
    fn the_body_decrypts_with_the_subscriptions_private_key() {
        let ua = p256::SecretKey::random(&mut rand_core::OsRng);
        let auth = [9u8; 16];
        let keys = SubscriptionKeys::parse(
            &crate::b64().encode(ua.public_key().to_encoded_point(false).as_bytes()),
            &crate::b64().encode(auth),
        )
        .unwrap();
        let (private, _) = VapidKey::generate();
        let vapid = VapidKey::parse(&private, "mailto:ops@example.com").unwrap();
        let client = reqwest::Client::new();
        let endpoint: url::Url = "https://push.example.net/p/1".parse().unwrap();
        let msg = PushMessage {
            payload: br#"{"title":"Hi"}"#,
            ttl: Duration::from_secs(60),
            urgency: Urgency::High,
            topic: Some("abc"),
        };
        let req = msg
            .request(&client, &endpoint, &keys, &vapid)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(req.headers()["ttl"], "60");
        assert_eq!(req.headers()["urgency"], "high");
        assert_eq!(req.headers()["content-encoding"], "aes128gcm");
        assert!(req.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("vapid t="));
        let body = req.body().unwrap().as_bytes().unwrap().to_vec();
        let plain = web_push_native::decrypt(body, &ua, &web_push_native::Auth::from(auth)).unwrap();
        assert_eq!(plain, br#"{"title":"Hi"}"#);

        let big = vec![b'x'; MAX_PLAINTEXT + 1];
        let too_big = PushMessage {
            payload: &big,
            ..msg.clone()
        };
        assert!(matches!(
            too_big.request(&client, &endpoint, &keys, &vapid),
            Err(PushError::TooLarge(_))
        ));
        let fits = vec![b'x'; MAX_PLAINTEXT];
        let req = PushMessage {
            payload: &fits,
            ..msg
        }
        .request(&client, &endpoint, &keys, &vapid)
        .unwrap()
        .build()
        .unwrap();
        assert!(req.body().unwrap().as_bytes().unwrap().len() <= 4096);
    }
}

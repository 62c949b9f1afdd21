//! `herald-push`: Web Push, as the browsers' push services take it.
//!
//! - [`vapid`]: the application server's P-256 key pair (RFC 8292): parsed from
//!   `HERALD_VAPID_PRIVATE_KEY`, its public half for `pushManager.subscribe`, and
//!   the `Authorization: vapid t=…, k=…` header of every push.
//! - [`subscription`]: what a browser's `PushSubscription.toJSON()` gives, checked.
//! - [`endpoint`]: which push endpoints Herald will POST to. An endpoint is a URL a
//!   user hands the server, so anything but an allowed push service is an SSRF
//!   hole: `https` only, the host on `HERALD_PUSH_ALLOWED_HOSTS`, and every
//!   address it resolves to public — checked when a subscription is stored and
//!   again when a push is sent (a resolver that refuses private addresses, so a
//!   DNS answer cannot change between the two).
//! - [`message`]: one push request: the payload encrypted with `aes128gcm`
//!   (RFC 8291, by `web-push-native`), and its `TTL`, `Urgency`, `Topic` and
//!   VAPID headers.
//!
//! The cryptography is RustCrypto's (`p256`, and `web-push-native` over
//! `aes-gcm` and `hkdf`) and `jsonwebtoken`'s ES256; nothing here is a
//! hand-written primitive.

pub mod endpoint;
pub mod message;
pub mod subscription;
pub mod vapid;

pub use endpoint::EndpointPolicy;
pub use message::PushMessage;
pub use subscription::SubscriptionKeys;
pub use vapid::VapidKey;

/// Web Push as a deployment does it: its VAPID key and its endpoint policy.
#[derive(Debug, Clone)]
pub struct WebPush {
    pub vapid: VapidKey,
    pub policy: EndpointPolicy,
}

/// A setting that does not parse, by variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct SettingError {
    pub var: &'static str,
    pub message: String,
}

impl WebPush {
    /// From `HERALD_VAPID_PRIVATE_KEY`, `HERALD_VAPID_SUBJECT`,
    /// `HERALD_PUSH_ALLOWED_HOSTS` and `HERALD_PUSH_ALLOW_INSECURE`; `None`
    /// without a key (nothing is pushed).
    pub fn from_settings(
        private_key: Option<&str>,
        subject: Option<&str>,
        allowed_hosts: &str,
        allow_insecure: bool,
    ) -> Result<Option<Self>, SettingError> {
        let (Some(key), Some(subject)) = (private_key, subject) else {
            return Ok(None);
        };
        let vapid = VapidKey::parse(key, subject).map_err(|e| SettingError {
            var: match e {
                vapid::VapidError::BadSubject => "HERALD_VAPID_SUBJECT",
                _ => "HERALD_VAPID_PRIVATE_KEY",
            },
            message: e.to_string(),
        })?;
        let policy =
            EndpointPolicy::parse(allowed_hosts, allow_insecure).map_err(|message| SettingError {
                var: "HERALD_PUSH_ALLOWED_HOSTS",
                message,
            })?;
        Ok(Some(Self { vapid, policy }))
    }
}

/// base64url without padding, the encoding of every key on the wire.
pub(crate) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

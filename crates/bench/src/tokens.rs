//! HS256 tokens for both systems, signed here with the secret they verify with.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Longer than any run: a Herald stream ends (`herald.reauth`) when its token expires.
const TTL_SECONDS: u64 = 6 * 3600;

#[derive(Debug, Clone)]
pub struct Keys {
    pub secret: String,
    pub audience: String,
}

impl Keys {
    fn sign(&self, mut claims: Value) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        claims["aud"] = self.audience.clone().into();
        claims["iat"] = now.into();
        claims["exp"] = (now + TTL_SECONDS).into();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .map_err(|e| format!("signing a token: {e}"))
    }

    /// `Bearer …` for a reader of every `bench:` topic.
    pub fn reader(&self) -> Result<String, String> {
        Ok(format!(
            "Bearer {}",
            self.sign(json!({"sub": "bench-reader", "topics": ["bench:*"]}))?
        ))
    }

    /// `Bearer …` for a service allowed to publish.
    pub fn publisher(&self) -> Result<String, String> {
        Ok(format!(
            "Bearer {}",
            self.sign(json!({"sub": "bench-publisher", "scope": "publish"}))?
        ))
    }
}

//! HS256 access tokens for the stack under test, minted like `herald-token` does.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// At least this long: a stream never outlives its token, and a `herald.reauth` in the
/// middle of a fault would muddle the accounting.
const MIN_TTL_SECONDS: u64 = 6 * 3600;

pub struct Keys {
    secret: String,
    audience: String,
    issuer: Option<String>,
    ttl: u64,
}

impl Keys {
    /// Keys for tokens that live at least `run_seconds` (and at least six hours).
    pub fn from_env(run_seconds: f64) -> crate::Result<Self> {
        let secret = std::env::var("HERALD_JWT_SECRET")
            .map_err(|_| "HERALD_JWT_SECRET must be set (the stack's HS256 secret)")?;
        let audience = std::env::var("HERALD_JWT_AUDIENCE").unwrap_or_else(|_| "herald".into());
        let issuer = std::env::var("HERALD_JWT_ISSUER").ok().filter(|s| !s.is_empty());
        Ok(Self {
            secret,
            audience,
            issuer,
            ttl: MIN_TTL_SECONDS.max(run_seconds.max(0.0) as u64),
        })
    }

    fn sign(&self, mut claims: Value) -> crate::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        claims["aud"] = self.audience.clone().into();
        claims["iat"] = now.into();
        claims["exp"] = (now + self.ttl).into();
        if let Some(iss) = &self.issuer {
            claims["iss"] = iss.clone().into();
        }
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )?)
    }

    /// A user's token that may read `topics` (exact topics or `kind:*`).
    pub fn user_token(&self, sub: &str, topics: &[&str]) -> crate::Result<String> {
        self.sign(json!({"sub": sub, "topics": topics}))
    }

    /// A service token with the `publish` scope.
    pub fn service_token(&self, sub: &str) -> crate::Result<String> {
        self.sign(json!({"sub": sub, "scope": "publish"}))
    }
}

//! Where access-token keys come from: a shared secret (HS*), a public key in
//! PEM (RS*/PS*, ES*, EdDSA), or a JWKS document fetched over HTTP and
//! cached, selected by the token's `kid`, refreshed when a token names an
//! unknown `kid` (at most once per `HERALD_JWKS_MIN_REFRESH`) and when the
//! cache is older than `HERALD_JWKS_CACHE_TTL` — so keys rotate without a
//! restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use crate::auth::AuthError;
use crate::config::ConfigError;

/// The keys that verify access tokens.
pub enum AccessKeys {
    Static(DecodingKey),
    Jwks(Jwks),
}

impl AccessKeys {
    /// A static key for `algorithm` from a secret or PEM text.
    pub fn from_config(
        algorithm: Algorithm,
        secret: Option<&str>,
        public_key_pem: Option<&str>,
    ) -> Result<DecodingKey, ConfigError> {
        let invalid = |var: &'static str, message: String| ConfigError::Invalid {
            var,
            value: "<redacted>".into(),
            message,
        };
        match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = secret.ok_or(ConfigError::Missing {
                    var: "HERALD_JWT_SECRET",
                    why: "HS* algorithms verify tokens with a shared secret",
                })?;
                if secret.len() < 16 {
                    return Err(invalid("HERALD_JWT_SECRET", "use at least 16 characters".into()));
                }
                Ok(DecodingKey::from_secret(secret.as_bytes()))
            }
            _ => {
                let pem = public_key_pem.ok_or(ConfigError::Missing {
                    var: "HERALD_JWT_PUBLIC_KEY",
                    why: "RS*, PS*, ES* and EdDSA verify tokens with a public key (or set HERALD_JWKS_URL)",
                })?;
                let key = match algorithm {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
                    _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
                };
                key.map_err(|e| {
                    invalid(
                        "HERALD_JWT_PUBLIC_KEY",
                        format!("not a {algorithm:?} public key: {e}"),
                    )
                })
            }
        }
    }

    pub async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        match self {
            Self::Static(k) => Ok(k.clone()),
            Self::Jwks(j) => j.key_for(kid).await,
        }
    }
}

struct Cache {
    keys: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
}

/// A JWKS document, cached.
pub struct Jwks {
    url: String,
    algorithm: Algorithm,
    client: reqwest::Client,
    cache: RwLock<Cache>,
    last_attempt: Mutex<Option<Instant>>,
    ttl: Duration,
    min_refresh: Duration,
}

impl Jwks {
    pub fn new(url: String, algorithm: Algorithm, ttl: Duration, min_refresh: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            url,
            algorithm,
            client,
            cache: RwLock::new(Cache {
                keys: HashMap::new(),
                fetched: None,
            }),
            last_attempt: Mutex::new(None),
            ttl,
            min_refresh,
        }
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let kid = kid.ok_or(AuthError::UnknownKey)?;
        {
            let cache = self.cache.read().await;
            let fresh = cache.fetched.is_some_and(|t| t.elapsed() < self.ttl);
            if let Some(k) = cache.keys.get(kid) {
                if fresh {
                    return Ok(k.clone());
                }
            }
        }
        self.refresh().await;
        self.cache
            .read()
            .await
            .keys
            .get(kid)
            .cloned()
            .ok_or(AuthError::UnknownKey)
    }

    /// Fetches the document again, unless the last attempt was too recent.
    pub async fn refresh(&self) {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS refreshed");
                *self.cache.write().await = Cache {
                    keys,
                    fetched: Some(Instant::now()),
                };
            }
            // Keep serving the keys we have; the URL may be briefly down.
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed"),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // A key published for another algorithm never verifies ours.
            if let Some(alg) = jwk.common.key_algorithm {
                if format!("{alg:?}") != format!("{:?}", self.algorithm) {
                    continue;
                }
            }
            if let Ok(k) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, k);
            }
        }
        Ok(keys)
    }
}

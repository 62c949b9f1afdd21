//! Where access-token keys come from: a shared secret (HS*), a public key in
//! PEM (RS*/PS*, ES*, EdDSA), or a JWKS document fetched over HTTP and
//! cached, selected by the token's `kid`, refreshed when a token names an
//! unknown `kid` (at most once per `HERALD_JWKS_MIN_REFRESH`) and, in the
//! background, when the cache is older than `HERALD_JWKS_CACHE_TTL` — so keys
//! rotate without a restart, and a slow identity provider never holds up a
//! request whose key is known.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::watch;

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

/// How long a token naming an unknown `kid` waits for the JWKS refresh it
/// started (or found running) before it is refused. A request whose key is
/// cached never waits on the network.
pub const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(2);
/// The longest a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

struct Cache {
    keys: HashMap<String, DecodingKey>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When the last fetch started (successful or not).
    last_attempt: Option<Instant>,
    /// A fetch is running.
    in_flight: bool,
}

/// A JWKS document, cached and refreshed in the background
/// (stale-while-revalidate): a token whose `kid` is cached is verified at
/// once, even while the document is stale and its URL hangs; the refresh
/// runs in a task of its own. A token naming an unknown `kid` starts a
/// refresh (at most once per `HERALD_JWKS_MIN_REFRESH`) and waits for it at
/// most [`UNKNOWN_KID_WAIT`]. Cheap to clone.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<JwksInner>,
}

struct JwksInner {
    url: String,
    algorithm: Algorithm,
    client: reqwest::Client,
    cache: Mutex<Cache>,
    /// Counts finished fetches; waiters watch it.
    fetches: watch::Sender<u64>,
    ttl: Duration,
    min_refresh: Duration,
}

impl Jwks {
    pub fn new(url: String, algorithm: Algorithm, ttl: Duration, min_refresh: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(JwksInner {
                url,
                algorithm,
                client,
                cache: Mutex::new(Cache {
                    keys: HashMap::new(),
                    fetched: None,
                    last_attempt: None,
                    in_flight: false,
                }),
                fetches: watch::channel(0).0,
                ttl,
                min_refresh,
            }),
        }
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        let kid = kid.ok_or(AuthError::UnknownKey)?;
        let mut done = self.inner.fetches.subscribe();
        {
            let mut cache = self.cache();
            if let Some(k) = cache.keys.get(kid).cloned() {
                let stale = cache.fetched.is_none_or(|t| t.elapsed() >= self.inner.ttl);
                if stale {
                    self.start_refresh(&mut cache);
                }
                return Ok(k);
            }
            self.start_refresh(&mut cache);
            if !cache.in_flight {
                // Refreshed too recently to try again.
                return Err(AuthError::UnknownKey);
            }
        }
        // Wait for the running fetch, boundedly, then look again.
        let _ = tokio::time::timeout(UNKNOWN_KID_WAIT, done.changed()).await;
        self.cache().keys.get(kid).cloned().ok_or(AuthError::UnknownKey)
    }

    /// Starts a fetch in the background unless one is running or the last
    /// one started less than `HERALD_JWKS_MIN_REFRESH` ago.
    fn start_refresh(&self, cache: &mut Cache) {
        let recent = cache
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.inner.min_refresh);
        if cache.in_flight || recent {
            return;
        }
        cache.in_flight = true;
        cache.last_attempt = Some(Instant::now());
        let this = self.clone();
        tokio::spawn(async move { this.fetch_now().await });
    }

    /// Fetches the document now (at start-up), waiting for the result.
    pub async fn refresh(&self) {
        let mut done = self.inner.fetches.subscribe();
        let start = {
            let mut cache = self.cache();
            let start = !cache.in_flight;
            if start {
                cache.in_flight = true;
                cache.last_attempt = Some(Instant::now());
            }
            start
        };
        if start {
            return self.fetch_now().await;
        }
        let _ = tokio::time::timeout(FETCH_TIMEOUT, done.changed()).await;
    }

    /// One fetch; its caller has set `in_flight`.
    async fn fetch_now(&self) {
        let result = self.fetch().await;
        {
            let mut cache = self.cache();
            cache.in_flight = false;
            match result {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "JWKS refreshed");
                    cache.keys = keys;
                    cache.fetched = Some(Instant::now());
                }
                // Keep serving the keys we have; the URL may be briefly down.
                Err(e) => tracing::warn!(error = %e, "JWKS refresh failed"),
            }
        }
        self.inner.fetches.send_modify(|n| *n += 1);
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let set: JwkSet = self
            .inner
            .client
            .get(&self.inner.url)
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
                if format!("{alg:?}") != format!("{:?}", self.inner.algorithm) {
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

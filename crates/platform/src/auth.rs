//! Authentication and topic authorization — one implementation for the API
//! and the gateway, so they can never disagree.
//!
//! Access tokens are JWTs verified with the configured key; the algorithm is
//! pinned by configuration and never taken from the token. `exp` is required,
//! `nbf` honoured, `aud` always checked, `iss` when configured.
//!
//! Stream tokens are short-lived JWTs that Herald mints itself
//! (`POST /v1/stream-tokens`) for `EventSource` URLs. They carry their own
//! audience (`{aud}:stream`) and a `herald_use: "stream"` claim, so a stream
//! token is refused everywhere but the stream endpoint, and a long-lived
//! token is refused in a URL.
//!
//! No token, and no part of one, is ever logged.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use herald_domain::{Topic, TopicPattern};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, JwtSettings};
use crate::keys::{AccessKeys, Jwks};
use crate::problem::Problem;

const STREAM_USE: &str = "stream";

/// Why a token was refused. The messages are safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (send `Authorization: Bearer <token>`)")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's signature or algorithm is not accepted")]
    BadSignature,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's claims are invalid: {0}")]
    BadClaims(String),
    #[error("a stream token is only accepted by GET /v1/stream")]
    StreamTokenNotAccepted,
    #[error("only a stream token from POST /v1/stream-tokens may travel in a URL")]
    LongLivedTokenInUrl,
    #[error("the token's signing key (kid) is not known")]
    UnknownKey,
    #[error("the token's `sub` must be 1 to {MAX_SUB_CHARS} characters without control characters")]
    BadSubject,
}

/// The longest `sub` accepted. Every token names its caller: `sub` scopes
/// idempotency keys, publish rates and per-user stream limits, so a token
/// without one would share them with every other such token.
pub const MAX_SUB_CHARS: usize = 255;

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        Problem::unauthorized(e.to_string())
    }
}

/// What the caller may do, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller (`sub`): required, 1–255 characters, no control characters.
    pub sub: String,
    /// The `topics` claim.
    pub grants: Vec<TopicPattern>,
    /// `scope` contains `publish`.
    pub publish: bool,
    /// `scope` contains `admin`.
    pub admin: bool,
    /// Expiry, seconds since the epoch.
    pub expires_at: u64,
    /// Minted by Herald for a stream URL.
    pub stream_token: bool,
}

impl Principal {
    /// The caller's own inbox topic, `user:{sub}`.
    pub fn user_topic(&self) -> Option<Topic> {
        Topic::user(&self.sub).ok()
    }

    /// Whether this caller may read `topic`: admins read everything, a user
    /// always reads `user:{sub}`, anyone reads what the `topics` claim grants.
    /// A stream token reads exactly the topics it was minted for: they are
    /// its ceiling, whatever else its subject could read.
    pub fn may_read(&self, topic: &Topic) -> bool {
        if self.stream_token {
            return self.grants.iter().any(|g| g.grants(topic));
        }
        if self.admin {
            return true;
        }
        if topic.kind() == "user" && self.sub == topic.key() {
            return true;
        }
        self.grants.iter().any(|g| g.grants(topic))
    }

    /// Seconds until the token expires (0 when already expired).
    pub fn remaining(&self) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(now_secs()))
    }
}

/// `topics` and `scope` may be a JSON array or one space/comma-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringList {
    One(String),
    Many(Vec<String>),
}

impl StringList {
    fn items(self) -> Vec<String> {
        match self {
            Self::One(s) => s
                .split([' ', ','])
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect(),
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: u64,
    #[serde(default)]
    topics: Option<StringList>,
    #[serde(default)]
    scope: Option<StringList>,
    #[serde(default)]
    herald_use: Option<String>,
}

#[derive(Debug, Serialize)]
struct StreamClaims<'a> {
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    topics: Vec<String>,
    herald_use: &'static str,
}

/// Verifies access tokens and mints and verifies stream tokens.
pub struct Verifier {
    access_keys: AccessKeys,
    algorithm: Algorithm,
    access: Validation,
    stream_encode: EncodingKey,
    stream_decode: DecodingKey,
    stream: Validation,
    stream_audience: String,
    stream_ttl: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Verifier {
    pub fn from_settings(jwt: &JwtSettings) -> Result<Self, ConfigError> {
        let algorithm = jwt.algorithm;
        let access_keys = match &jwt.jwks_url {
            Some(url) if !matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
                AccessKeys::Jwks(Jwks::new(
                    url.clone(),
                    algorithm,
                    jwt.jwks_cache_ttl,
                    jwt.jwks_min_refresh,
                ))
            }
            _ => AccessKeys::Static(AccessKeys::from_config(
                algorithm,
                jwt.secret.as_deref(),
                jwt.public_key.as_deref(),
            )?),
        };
        let stream_secret = jwt
            .stream_token_secret
            .as_deref()
            .or(jwt.secret.as_deref())
            .ok_or(ConfigError::Missing {
                var: "HERALD_STREAM_TOKEN_SECRET",
                why: "Herald signs its short-lived stream tokens with it (defaults to HERALD_JWT_SECRET)",
            })?;
        let leeway = jwt.leeway.as_secs();

        let mut access = Validation::new(algorithm);
        access.leeway = leeway;
        access.validate_nbf = true;
        access.set_audience(&[&jwt.audience]);
        access.set_required_spec_claims(&["exp", "aud"]);
        if let Some(iss) = &jwt.issuer {
            access.set_issuer(&[iss]);
            access.set_required_spec_claims(&["exp", "aud", "iss"]);
        }

        let stream_audience = format!("{}:stream", jwt.audience);
        let mut stream = Validation::new(Algorithm::HS256);
        stream.leeway = 0;
        stream.set_audience(&[&stream_audience]);
        stream.set_required_spec_claims(&["exp", "aud"]);

        Ok(Self {
            access_keys,
            algorithm,
            access,
            stream_encode: EncodingKey::from_secret(stream_secret.as_bytes()),
            stream_decode: DecodingKey::from_secret(stream_secret.as_bytes()),
            stream,
            stream_audience,
            stream_ttl: jwt.stream_token_ttl,
        })
    }

    /// Fetches the JWKS document now (at start-up), if keys come from one.
    pub async fn warm_up(&self) {
        if let AccessKeys::Jwks(j) = &self.access_keys {
            j.refresh().await;
        }
    }

    /// Verifies a token sent in the `Authorization` header.
    pub async fn verify_access(&self, token: &str) -> Result<Principal, AuthError> {
        let p = self.decode_access(token).await?;
        if p.stream_token {
            return Err(AuthError::StreamTokenNotAccepted);
        }
        Ok(p)
    }

    async fn decode_access(&self, token: &str) -> Result<Principal, AuthError> {
        // The algorithm is pinned: a token announcing another one is refused
        // before any key is looked at (`alg: none`, HS256 with an RSA key...).
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != self.algorithm {
            return Err(AuthError::BadSignature);
        }
        let key = self.access_keys.key_for(header.kid.as_deref()).await?;
        self.decode(token, &key, &self.access)
    }

    /// Verifies a token that travelled in a URL: only stream tokens pass.
    pub async fn verify_stream(&self, token: &str) -> Result<Principal, AuthError> {
        match self.decode(token, &self.stream_decode, &self.stream) {
            Ok(p) if p.stream_token => Ok(p),
            Ok(_) => Err(AuthError::LongLivedTokenInUrl),
            // A token that verifies as an access token is a long-lived one.
            Err(e) => match self.decode_access(token).await {
                Ok(_) => Err(AuthError::LongLivedTokenInUrl),
                Err(_) => Err(e),
            },
        }
    }

    /// Mints a stream token for `sub` carrying exactly `topics`.
    /// Returns the token and its expiry (seconds since the epoch).
    /// A stream token for `sub`'s `topics`, valid for the stream TTL but
    /// never past `not_after` (the expiry of the token that asked for it, so
    /// that a stream cannot outlive the session that opened it).
    pub fn mint_stream_token(
        &self,
        sub: &str,
        topics: &[Topic],
        not_after: u64,
    ) -> Result<(String, u64), AuthError> {
        let iat = now_secs();
        let exp = (iat + self.stream_ttl.as_secs().max(1)).min(not_after);
        let claims = StreamClaims {
            sub,
            aud: &self.stream_audience,
            iat,
            exp,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            herald_use: STREAM_USE,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.stream_encode)
            .map_err(|_| AuthError::Malformed)?;
        Ok((token, exp))
    }

    pub fn stream_ttl(&self) -> Duration {
        self.stream_ttl
    }

    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        validation: &Validation,
    ) -> Result<Principal, AuthError> {
        let data = decode::<Claims>(token, key, validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                AuthError::BadSignature
            }
            ErrorKind::MissingRequiredClaim(c) => AuthError::BadClaims(format!("`{c}` is required")),
            ErrorKind::Json(_) => AuthError::BadClaims("unexpected claim types".into()),
            _ => AuthError::Malformed,
        })?;
        let c = data.claims;
        let grants = c
            .topics
            .map(StringList::items)
            .unwrap_or_default()
            .iter()
            .map(|t| TopicPattern::parse(t).map_err(|e| AuthError::BadClaims(format!("topics: {t:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let scopes = c.scope.map(StringList::items).unwrap_or_default();
        let sub = c
            .sub
            .ok_or_else(|| AuthError::BadClaims("`sub` is required".into()))?;
        let n = sub.chars().count();
        if n == 0 || n > MAX_SUB_CHARS || sub.chars().any(char::is_control) {
            return Err(AuthError::BadSubject);
        }
        Ok(Principal {
            sub,
            grants,
            publish: scopes.iter().any(|s| s == "publish"),
            admin: scopes.iter().any(|s| s == "admin"),
            expires_at: c.exp,
            stream_token: c.herald_use.as_deref() == Some(STREAM_USE),
        })
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// An authenticated caller (access token in the `Authorization` header).
/// Every handler that needs a caller takes this, so no route can forget it.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        let token = bearer(parts).ok_or(AuthError::Missing)?;
        Ok(Self(verifier.verify_access(token).await?))
    }
}

/// The first of `topics` that `principal` may not read, if any.
///
/// Beyond [`Principal::may_read`] (claims, admin, own inbox), an order's
/// customer may read `order:{id}` without a grant; that needs the database.
/// Not with a stream token: its topics are all it may read.
pub async fn first_unreadable(
    pool: &sqlx::PgPool,
    principal: &Principal,
    topics: &[Topic],
) -> Result<Option<Topic>, sqlx::Error> {
    let mut orders = Vec::new();
    for t in topics {
        if principal.may_read(t) {
            continue;
        }
        if t.kind() == "order" && !principal.stream_token {
            orders.push(t);
        } else {
            return Ok(Some(t.clone()));
        }
    }
    if orders.is_empty() {
        return Ok(None);
    }
    let ids: Vec<String> = orders.iter().map(|t| t.key().to_owned()).collect();
    let owned: Vec<String> = sqlx::query_scalar!(
        "SELECT order_id FROM orders WHERE order_id = ANY($1) AND customer_id = $2",
        &ids,
        principal.sub,
    )
    .fetch_all(pool)
    .await?;
    Ok(orders
        .into_iter()
        .find(|t| !owned.iter().any(|o| o == t.key()))
        .cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> JwtSettings {
        JwtSettings {
            secret: Some("s3cret-s3cret-s3cret".into()),
            audience: "herald".into(),
            issuer: None,
            leeway: Duration::from_secs(0),
            stream_token_secret: None,
            stream_token_ttl: Duration::from_secs(60),
            algorithm: Algorithm::HS256,
            public_key: None,
            jwks_url: None,
            jwks_cache_ttl: Duration::from_secs(300),
            jwks_min_refresh: Duration::from_secs(10),
        }
    }

    fn sign(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s3cret-s3cret-s3cret"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn reads_claims_into_a_principal() {
        let v = Verifier::from_settings(&settings()).unwrap();
        let t = sign(json!({"sub": "alice", "aud": "herald", "exp": now_secs() + 60,
            "topics": ["feed:*", "order:1"], "scope": "publish admin"}));
        let p = v.verify_access(&t).await.unwrap();
        assert_eq!(p.sub, "alice");
        assert!(p.publish && p.admin && !p.stream_token);
        let user = Topic::parse("user:alice").unwrap();
        assert!(p.may_read(&user));
    }

    #[tokio::test]
    async fn user_topic_is_readable_only_by_its_user() {
        let v = Verifier::from_settings(&settings()).unwrap();
        let t = sign(json!({"sub": "alice", "aud": "herald", "exp": now_secs() + 60, "topics": "feed:*"}));
        let p = v.verify_access(&t).await.unwrap();
        assert!(p.may_read(&Topic::parse("user:alice").unwrap()));
        assert!(!p.may_read(&Topic::parse("user:bob").unwrap()));
        assert!(!p.may_read(&Topic::parse("user:alice2").unwrap()));
        assert!(p.may_read(&Topic::parse("feed:x").unwrap()));
        assert!(!p.may_read(&Topic::parse("order:x").unwrap()));
    }

    #[tokio::test]
    async fn stream_tokens_are_only_accepted_in_urls_and_access_tokens_only_in_headers() {
        let v = Verifier::from_settings(&settings()).unwrap();
        let topics = [Topic::parse("user:alice").unwrap()];
        let (st, _) = v.mint_stream_token("alice", &topics, u64::MAX).unwrap();
        assert!(v.verify_stream(&st).await.unwrap().stream_token);
        assert_eq!(v.verify_access(&st).await, Err(AuthError::WrongAudience));
        let access = sign(json!({"sub": "alice", "aud": "herald", "exp": now_secs() + 3600}));
        assert_eq!(
            v.verify_stream(&access).await,
            Err(AuthError::LongLivedTokenInUrl)
        );
    }

    #[tokio::test]
    async fn rejects_expired_wrong_audience_and_bad_claims() {
        let v = Verifier::from_settings(&settings()).unwrap();
        let expired = sign(json!({"sub": "a", "aud": "herald", "exp": now_secs() - 10}));
        assert_eq!(v.verify_access(&expired).await, Err(AuthError::Expired));
        let aud = sign(json!({"sub": "a", "aud": "other", "exp": now_secs() + 10}));
        assert_eq!(v.verify_access(&aud).await, Err(AuthError::WrongAudience));
        let no_exp = sign(json!({"sub": "a", "aud": "herald"}));
        assert!(v.verify_access(&no_exp).await.is_err());
        let bad_topic = sign(json!({"sub": "a", "aud": "herald", "exp": now_secs() + 10, "topics": ["Bad"]}));
        assert!(matches!(
            v.verify_access(&bad_topic).await,
            Err(AuthError::BadClaims(_))
        ));
        assert_eq!(v.verify_access("not.a.jwt").await, Err(AuthError::Malformed));
    }
}

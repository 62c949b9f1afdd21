//! Web Push subscriptions: the VAPID public key a page subscribes with, and a
//! user's `PushSubscription`s (`POST`/`GET`/`DELETE /v1/me/push-subscriptions`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use herald_platform::auth::Authenticated;
use herald_platform::http::JsonBody;
use herald_platform::problem::Problem;
use herald_push::SubscriptionKeys;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::routes::inbox::user;
use crate::AppState;

/// The most subscriptions one user may have (browsers and devices).
pub const MAX_SUBSCRIPTIONS: usize = 50;
/// The longest endpoint URL accepted.
pub const MAX_ENDPOINT_LEN: usize = 2048;

fn disabled() -> Problem {
    Problem::not_found("Web Push is not configured on this server (HERALD_VAPID_PRIVATE_KEY)")
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VapidPublicKey {
    /// The base64url uncompressed P-256 point, as `pushManager.subscribe`'s
    /// `applicationServerKey` takes it.
    pub public_key: String,
}

/// The VAPID public key pages subscribe with.
#[utoipa::path(
    get,
    path = "/v1/push/vapid-public-key",
    tag = "push",
    responses(
        (status = 200, description = "The application server key", body = VapidPublicKey),
        (status = 404, description = "Web Push is not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn vapid_public_key(State(state): State<AppState>) -> ApiResult<Json<VapidPublicKey>> {
    let push = state.push.as_ref().ok_or_else(disabled)?;
    Ok(Json(VapidPublicKey {
        public_key: push.vapid.public_key().to_owned(),
    }))
}

/// The subscription's keys, as the browser gives them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushKeys {
    /// base64url uncompressed P-256 public key.
    pub p256dh: String,
    /// base64url 16-byte auth secret.
    pub auth: String,
}

/// Exactly what `PushSubscription.toJSON()` gives.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPushSubscription {
    /// The push service URL to POST to: `https`, on an allowed push service.
    pub endpoint: String,
    /// When the subscription expires (milliseconds since the epoch), or `null`.
    #[serde(rename = "expirationTime", default)]
    pub expiration_time: Option<f64>,
    pub keys: PushKeys,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PushSubscriptionInfo {
    pub endpoint: String,
    #[serde(rename = "expirationTime")]
    pub expiration_time: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PushSubscriptionList {
    pub subscriptions: Vec<PushSubscriptionInfo>,
}

/// Registers this browser's push subscription for the caller.
///
/// The endpoint must be an `https` URL of an allowed push service
/// (`HERALD_PUSH_ALLOWED_HOSTS`) resolving to public addresses only: it is a
/// URL Herald will POST to. The same endpoint again replaces the stored one
/// (for the caller, even if another user had it: one browser profile, one
/// subscription).
#[utoipa::path(
    post,
    path = "/v1/me/push-subscriptions",
    tag = "push",
    request_body = NewPushSubscription,
    responses(
        (status = 201, description = "Stored", body = PushSubscriptionInfo),
        (status = 200, description = "Already known; updated", body = PushSubscriptionInfo),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's `sub` is not a user id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Web Push is not configured", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The endpoint is not allowed, or the keys are invalid (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn subscribe(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    JsonBody(req): JsonBody<NewPushSubscription>,
) -> ApiResult<(StatusCode, Json<PushSubscriptionInfo>)> {
    let user = user(&principal)?;
    let push = state.push.as_ref().ok_or_else(disabled)?;
    if req.endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(Problem::invalid_field(
            "endpoint",
            format!("must be at most {MAX_ENDPOINT_LEN} characters"),
        )
        .into());
    }
    let url = push
        .policy
        .check(&req.endpoint)
        .map_err(|m| Problem::invalid_field("endpoint", m))?;
    let keys = SubscriptionKeys::parse(&req.keys.p256dh, &req.keys.auth)
        .map_err(|(f, m)| Problem::invalid_field(f, m))?;
    // Last, as it waits on DNS: every address the host resolves to is public.
    push.policy
        .resolve(&url)
        .await
        .map_err(|m| Problem::invalid_field("endpoint", m))?;
    let expiration_time = match req.expiration_time {
        None => None,
        Some(ms) if ms.is_finite() && ms >= 0.0 => DateTime::from_timestamp_millis(ms as i64),
        Some(_) => None,
    };
    let mut tx = state.pool.begin().await?;
    let existing = herald_store::push::subscriptions(&mut tx, &user).await?;
    if existing.len() >= MAX_SUBSCRIPTIONS && !existing.iter().any(|s| s.endpoint == req.endpoint) {
        return Err(Problem::invalid_field(
            "endpoint",
            format!("a user may have at most {MAX_SUBSCRIPTIONS} push subscriptions; delete one first"),
        )
        .into());
    }
    let new = herald_store::push::subscribe(
        &mut tx,
        &user,
        &req.endpoint,
        keys.p256dh(),
        keys.auth(),
        expiration_time,
    )
    .await?;
    let stored = herald_store::push::subscriptions(&mut tx, &user)
        .await?
        .into_iter()
        .find(|s| s.endpoint == req.endpoint)
        .ok_or_else(|| crate::error::ApiError::Internal("subscription vanished".into()))?;
    tx.commit().await?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(info(stored))))
}

fn info(s: herald_store::push::Subscription) -> PushSubscriptionInfo {
    PushSubscriptionInfo {
        endpoint: s.endpoint,
        expiration_time: s.expiration_time.map(|t| t.timestamp_millis()),
        created_at: s.created_at,
    }
}

/// The caller's push subscriptions.
#[utoipa::path(
    get,
    path = "/v1/me/push-subscriptions",
    operation_id = "list_push_subscriptions",
    tag = "push",
    responses(
        (status = 200, description = "The caller's subscriptions, oldest first", body = PushSubscriptionList),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's `sub` is not a user id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> ApiResult<Json<PushSubscriptionList>> {
    let user = user(&principal)?;
    let mut conn = state.pool.acquire().await?;
    let subscriptions = herald_store::push::subscriptions(&mut conn, &user)
        .await?
        .into_iter()
        .map(info)
        .collect();
    Ok(Json(PushSubscriptionList { subscriptions }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushUnsubscribe {
    pub endpoint: String,
}

/// Removes one of the caller's push subscriptions (idempotent).
#[utoipa::path(
    delete,
    path = "/v1/me/push-subscriptions",
    tag = "push",
    request_body = PushUnsubscribe,
    responses(
        (status = 204, description = "Removed (or there was none)"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's `sub` is not a user id", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    JsonBody(req): JsonBody<PushUnsubscribe>,
) -> ApiResult<StatusCode> {
    let user = user(&principal)?;
    if req.endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(Problem::invalid_field(
            "endpoint",
            format!("must be at most {MAX_ENDPOINT_LEN} characters"),
        )
        .into());
    }
    let mut conn = state.pool.acquire().await?;
    herald_store::push::unsubscribe(&mut conn, &user, &req.endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

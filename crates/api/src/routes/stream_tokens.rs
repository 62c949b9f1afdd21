//! Short-lived stream tokens for `EventSource` URLs (`POST /v1/stream-tokens`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_domain::Topic;
use herald_platform::auth::Authenticated;
use herald_platform::http::JsonBody;
use herald_platform::problem::Problem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamTokenRequest {
    /// Topics the stream may carry; each must be readable by the caller.
    /// Default: the caller's own `user:{sub}`.
    #[schema(value_type = Option<Vec<String>>, example = json!(["user:alice"]))]
    pub topics: Option<Vec<Topic>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StreamToken {
    /// Pass as `?access_token=` to `GET /v1/stream`. Accepted nowhere else.
    pub token: String,
    /// The topics the token carries.
    pub topics: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// Mints a short-lived token for a stream URL.
///
/// `EventSource` cannot send headers, so browsers put this token in the stream
/// URL. It lives at most 5 minutes (`HERALD_STREAM_TOKEN_TTL`), and never past
/// the expiry of the token that asked for it; the stream sends `event: herald.reauth`
/// before it expires, and the client reconnects with a fresh token and
/// `Last-Event-ID` without missing an event.
#[utoipa::path(
    post,
    path = "/v1/stream-tokens",
    tag = "streaming",
    request_body(content = StreamTokenRequest, description = "Optional; `{}` asks for the caller's own inbox topic."),
    responses(
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed or empty JSON body", body = Problem, content_type = "application/problem+json"),
        (status = 201, description = "A stream token", body = StreamToken),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A requested topic is not readable by the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid topics", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_stream_token(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    JsonBody(req): JsonBody<StreamTokenRequest>,
) -> ApiResult<(StatusCode, Json<StreamToken>)> {
    let topics = match req.topics {
        Some(t) if !t.is_empty() => t,
        _ => vec![principal.user_topic().ok_or_else(|| {
            Problem::invalid_field("topics", "required when the token's `sub` is not a user id")
        })?],
    };
    let max = state.settings.gateway.max_topics_per_stream;
    if topics.len() > max {
        return Err(Problem::invalid_field("topics", format!("at most {max} topics per stream")).into());
    }
    if let Some(t) = herald_platform::auth::first_unreadable(&state.pool, &principal, &topics).await? {
        return Err(Problem::forbidden(format!("this token may not read `{t}`")).into());
    }
    let (token, expires_at) = state
        .verifier
        .mint_stream_token(&principal.sub, &topics, principal.expires_at)
        .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(StreamToken {
            token,
            topics: topics.iter().map(ToString::to_string).collect(),
            expires_at,
            expires_in: state
                .verifier
                .stream_ttl()
                .as_secs()
                .min(principal.remaining().as_secs()),
        }),
    ))
}

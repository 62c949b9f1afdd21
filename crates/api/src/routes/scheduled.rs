//! Scheduled delivery at the edge: publishing with `deliver_at` stores the
//! event (or notification) with its due work in one transaction
//! (`herald_store::scheduled`), and `DELETE /v1/events/{id}` and
//! `DELETE /v1/notifications/{id}` cancel what is still scheduled.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_platform::auth::{Authenticated, Principal};
use herald_platform::problem::Problem;
use herald_store::scheduled::{self, Scheduled, ScheduledEvent};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::idempotency::{Claim, IdempotencyKey};
use crate::routes::events::{replayed, require_publish_scope, AcceptedEvent, PublishEvent};
use crate::AppState;

/// Accepts `req` for delivery at `at`: stored with its due work in one
/// transaction, with the idempotency record if there is a key.
pub async fn schedule_event(
    state: &AppState,
    key: Option<IdempotencyKey>,
    req: PublishEvent,
    at: DateTime<Utc>,
) -> ApiResult<Response> {
    let mut tx = state.outbox.begin().await?;
    if let Some(key) = &key {
        if let Claim::Replay { status, body } = key.claim(&mut tx).await? {
            tx.rollback().await?;
            return Ok(replayed(status, body));
        }
    }
    let id = Uuid::now_v7();
    let what = Scheduled::Event(ScheduledEvent {
        topic: req.topic.to_string(),
        event_type: req.event_type.0.to_string(),
        data: req.data.clone(),
    });
    let created_at = scheduled::schedule(&mut tx, id, at, &what).await?;
    let accepted = AcceptedEvent {
        id,
        seq: None,
        topic: req.topic.to_string(),
        event_type: req.event_type.0.to_string(),
        data: req.data,
        created_at,
        deliver_at: Some(at),
    };
    if let Some(key) = &key {
        key.record(&mut tx, StatusCode::ACCEPTED, &serde_json::to_value(&accepted)?)
            .await?;
    }
    tx.commit().await?;
    state.metrics.published.inc();
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// Cancels a scheduled event (`id` from the `POST /v1/events` answer) that
/// has not been delivered: it will never appear in any stream or history.
/// Cancelling again answers the same.
#[utoipa::path(
    delete,
    path = "/v1/events/{id}",
    tag = "publishing",
    params(("id" = Uuid, Path, description = "The scheduled event's id")),
    responses(
        (status = 204, description = "Cancelled: it will not be delivered"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `publish` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No scheduled event has this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already delivered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id holds a character that cannot be stored (NUL)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_event(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    cancel_scheduled(&state, &principal, &id, scheduled::Kind::Event).await
}

/// Cancels the scheduled delivery `id` of `kind`: 204, 404 or 409.
pub async fn cancel_scheduled(
    state: &AppState,
    principal: &Principal,
    id: &str,
    kind: scheduled::Kind,
) -> ApiResult<StatusCode> {
    require_publish_scope(principal)?;
    let what = match kind {
        scheduled::Kind::Event => "event",
        scheduled::Kind::Notification => "notification",
    };
    let not_found = || Problem::not_found(format!("no scheduled {what} has this id"));
    let id = Uuid::try_parse(id).map_err(|_| not_found())?;
    let mut conn = state.pool.acquire().await?;
    match scheduled::cancel(&mut conn, id, kind).await? {
        scheduled::Cancel::Cancelled => Ok(StatusCode::NO_CONTENT),
        scheduled::Cancel::NotFound => Err(not_found().into()),
        scheduled::Cancel::Delivered => {
            Err(
                Problem::new(StatusCode::CONFLICT, "already-delivered", "Already delivered")
                    .detail(format!(
                        "the scheduled {what} was delivered; it can no longer be cancelled"
                    ))
                    .into(),
            )
        }
    }
}

/// Cancels a scheduled notification (`id` from the `202` answer of
/// `POST /v1/notifications`) that has not been delivered: it will never
/// reach any inbox. Cancelling again answers the same.
#[utoipa::path(
    delete,
    path = "/v1/notifications/{id}",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The scheduled notification's id")),
    responses(
        (status = 204, description = "Cancelled: it will not be delivered"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `publish` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No scheduled notification has this id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already delivered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id holds a character that cannot be stored (NUL)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_notification(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    cancel_scheduled(&state, &principal, &id, scheduled::Kind::Notification).await
}

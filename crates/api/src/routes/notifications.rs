//! `POST /v1/notifications`: one inbox entry per recipient, each announced on
//! `user:{id}`, all in one transaction — now, or at `deliver_at` (see
//! `routes::scheduled`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_domain::notification as rules;
use herald_platform::auth::Authenticated;
use herald_platform::http::JsonBody;
use herald_platform::problem::{FieldError, Problem};
use herald_store::scheduled::{self, Scheduled, ScheduledNotification as ScheduledNotificationRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::idempotency::{Claim, IdempotencyKey};
use crate::inbox::NewNotification;
use crate::routes::events::{replayed, require_publish};
use crate::AppState;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotifications {
    /// 1–1000 user ids; duplicates are ignored.
    #[schema(example = json!(["alice", "bob"]))]
    pub recipients: Vec<String>,
    /// `[a-z][a-z0-9_.-]{0,63}`, e.g. `comment`, `order`.
    #[schema(example = "comment")]
    pub category: String,
    /// 1–200 characters.
    #[schema(example = "Alice commented on your post")]
    pub title: String,
    /// At most 5000 characters.
    pub body: Option<String>,
    /// Any JSON, at most `HERALD_MAX_EVENT_DATA_BYTES` serialized.
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<serde_json::Value>,
    /// An absolute http(s) URL.
    pub action_url: Option<String>,
    /// When the notification disappears from lists and counts; must be in the
    /// future (and after `deliver_at`).
    #[schema(example = "2030-01-01T00:00:00Z")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Groups notifications into one inbox entry (1–200 characters), e.g.
    /// `doc:42:comments`: within the category's `group_window` of the
    /// group's first one, a notification with the same recipient, category
    /// and key updates that recipient's unread entry (`group_count`,
    /// `actors`, the newest title, body, data and link, moved to the top)
    /// instead of adding one. A read or archived group is closed: the next
    /// one starts a new group.
    #[schema(example = "doc:42:comments")]
    pub group_key: Option<String>,
    /// Who did it, as the bell names them (1–200 characters), e.g. `Maya`;
    /// a group keeps the last 5 distinct actors, newest first.
    #[schema(example = "Maya")]
    pub actor: Option<String>,
    /// Deliver it then instead of now, at most `HERALD_MAX_SCHEDULE_AHEAD`
    /// (30 days) ahead; a time already past delivers at once. Until then it
    /// is in no inbox, count or stream; then it is sent like any
    /// notification (preferences and groups as they are then). The answer
    /// is a 202 with the id `DELETE /v1/notifications/{id}` cancels it with.
    pub deliver_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedNotification {
    pub recipient: String,
    /// The recipient's inbox entry: a new one, or the group it joined.
    pub id: Uuid,
    /// It joined the recipient's open group `id` (announced as
    /// `notification.updated`) instead of making an entry.
    pub grouped: bool,
}

/// A notification accepted for delivery at `deliver_at`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduledNotification {
    /// Cancels it: `DELETE /v1/notifications/{id}`. Not an inbox entry's id.
    pub id: Uuid,
    /// When it will be delivered (now, for a `deliver_at` already past).
    pub deliver_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedNotifications {
    /// One inbox entry (new, or the group it joined) per distinct recipient
    /// who has `in_app` on for the category, in request order.
    pub notifications: Vec<CreatedNotification>,
    /// Per channel: recipients reached, and suppressed by their preferences.
    pub delivery: herald_store::send::Delivery,
}

/// Sends a notification to each recipient's inbox.
#[utoipa::path(
    post,
    path = "/v1/notifications",
    tag = "notifications",
    request_body = CreateNotifications,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body return the original response; same key, other body: 422.")),
    responses(
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed or empty JSON body", body = Problem, content_type = "application/problem+json"),
        (status = 201, description = "Stored and announced on each `user:{id}` as `notification.created` (or `notification.updated` where it joined a group) for recipients with `in_app` on, pushes queued for those with `web_push` on", body = CreatedNotifications),
        (status = 202, description = "Scheduled (`deliver_at`): stored, delivered then", body = ScheduledNotification),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `publish` scope", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (each named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn create_notifications(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreateNotifications>,
) -> ApiResult<Response> {
    require_publish(&state, &principal, req.recipients.len().max(1) as u32)?;
    let mut errors = Vec::new();
    let mut field = |name: &str, r: Result<(), String>| {
        if let Err(m) = r {
            errors.push(FieldError::new(name, m));
        }
    };
    let recipients = match rules::recipients(&req.recipients) {
        Ok(r) => r,
        Err(es) => {
            for (f, m) in es {
                field(&f, Err(m));
            }
            Vec::new()
        }
    };
    field("category", rules::category(&req.category));
    field("title", rules::title(&req.title));
    if let Some(b) = &req.body {
        field("body", rules::body(b));
    }
    if let Some(u) = &req.action_url {
        field("action_url", rules::action_url(u));
    }
    let now = Utc::now();
    if let Some(t) = req.expires_at {
        field("expires_at", rules::expires_at(t, now));
    }
    // A time already past is delivered at once: scheduled for now.
    let deliver_at = req.deliver_at.map(|t| t.max(now));
    if let Some(at) = deliver_at {
        field(
            "deliver_at",
            rules::deliver_at(at, now, state.settings.api.max_schedule_ahead),
        );
        if req.expires_at.is_some_and(|t| t <= at) {
            field("expires_at", Err("must be after deliver_at".into()));
        }
    }
    if let Some(k) = &req.group_key {
        field("group_key", rules::group_key(k));
    }
    if let Some(a) = &req.actor {
        field("actor", rules::actor(a));
    }
    let data = req.data.clone().unwrap_or_else(|| serde_json::json!({}));
    field("data", state.check_event_data(&data));
    if !errors.is_empty() {
        return Err(Problem::invalid(errors).into());
    }
    let key = IdempotencyKey::from_headers(&headers, &principal, "POST /v1/notifications", &req)?;

    let mut tx = state.outbox.begin().await?;
    if let Some(key) = &key {
        if let Claim::Replay { status, body } = key.claim(&mut tx).await? {
            tx.rollback().await?;
            return Ok(replayed(status, body));
        }
    }
    if let Some(at) = deliver_at {
        let what = Scheduled::Notification(ScheduledNotificationRow {
            recipients: recipients.iter().map(|u| u.as_str().to_owned()).collect(),
            category: req.category.clone(),
            title: req.title.clone(),
            body: req.body.clone(),
            data: data.clone(),
            action_url: req.action_url.clone(),
            expires_at: req.expires_at,
            group_key: req.group_key.clone(),
            actor: req.actor.clone(),
        });
        let id = Uuid::now_v7();
        scheduled::schedule(&mut tx, id, at, &what).await?;
        let body = ScheduledNotification { id, deliver_at: at };
        if let Some(key) = &key {
            key.record(&mut tx, StatusCode::ACCEPTED, &serde_json::to_value(&body)?)
                .await?;
        }
        tx.commit().await?;
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let new = NewNotification {
        category: &req.category,
        title: &req.title,
        body: req.body.as_deref(),
        data: &data,
        action_url: req.action_url.as_deref(),
        expires_at: req.expires_at,
        group_key: req.group_key.as_deref(),
        actor: req.actor.as_deref(),
    };
    let sent = herald_store::send::send(&mut tx, &recipients, &new, state.push.is_some()).await?;
    let body = CreatedNotifications {
        notifications: sent
            .created
            .iter()
            .map(|(user, placed)| CreatedNotification {
                recipient: user.as_str().to_owned(),
                id: placed.entry.id,
                grouped: placed.grouped,
            })
            .collect(),
        delivery: sent.delivery,
    };
    if let Some(key) = &key {
        key.record(&mut tx, StatusCode::CREATED, &serde_json::to_value(&body)?)
            .await?;
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

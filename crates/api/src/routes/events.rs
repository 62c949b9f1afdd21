//! Generic domain events: publishing (`POST /v1/events`, now or at
//! `deliver_at`; `DELETE /v1/events/{id}` cancels a scheduled one) and a
//! topic's durable history (`GET /v1/topics/{topic}/events`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_domain::notification as rules;
use herald_domain::{Envelope, EventType, Seq, Topic};
use herald_platform::auth::{Authenticated, Principal};
use herald_platform::http::{JsonBody, QueryParams};
use herald_platform::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::idempotency::{Claim, IdempotencyKey};
use crate::{outbox, AppState};

/// A generic domain event to publish.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// `kind:key`, e.g. `project:42`.
    #[schema(value_type = String, example = "user:alice")]
    pub topic: Topic,
    /// `[a-z][a-z0-9_.-]{0,63}`, e.g. `build.finished`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "demo.hello")]
    pub event_type: EventTypeField,
    /// Any JSON value, at most `HERALD_MAX_EVENT_DATA_BYTES` (64 KiB) serialized.
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub data: serde_json::Value,
    /// Deliver it then instead of now, at most `HERALD_MAX_SCHEDULE_AHEAD`
    /// (30 days) ahead; a time already past delivers at once. Until then it
    /// is in no stream and no history; then it is delivered like any event,
    /// with its `seq` from that moment. `DELETE /v1/events/{id}` cancels it
    /// until then.
    pub deliver_at: Option<DateTime<Utc>>,
}

/// One event of a batch: delivered now, in the batch's order.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchEvent {
    /// `kind:key`, e.g. `project:42`.
    #[schema(value_type = String, example = "user:alice")]
    pub topic: Topic,
    /// `[a-z][a-z0-9_.-]{0,63}`, e.g. `build.finished`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "demo.hello")]
    pub event_type: EventTypeField,
    /// Any JSON value, at most `HERALD_MAX_EVENT_DATA_BYTES` (64 KiB) serialized.
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub data: serde_json::Value,
}

/// [`EventType`] as a request field.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct EventTypeField(pub EventType);

impl<'de> Deserialize<'de> for EventTypeField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventType::parse(&s).map(Self).map_err(serde::de::Error::custom)
    }
}

/// The accepted event. `seq` is `null` here: positions are assigned by the
/// sequencer right after the transaction commits (see ARCHITECTURE.md), or
/// when a scheduled event is delivered, and appear in the stream and in the
/// topic's history. `id` identifies the event (a scheduled one keeps it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptedEvent {
    pub id: Uuid,
    /// Always `null` in this response; the delivery position is assigned after commit.
    #[schema(value_type = Option<i64>)]
    pub seq: Option<Seq>,
    pub topic: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[schema(value_type = serde_json::Value)]
    pub data: serde_json::Value,
    /// When it was accepted; a scheduled event's envelope has the time it
    /// was delivered.
    #[serde(with = "herald_domain::event::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// Set for a scheduled event: when it will be delivered (now, for a
    /// `deliver_at` already past).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<DateTime<Utc>>,
}

/// Publishes one event on a topic.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "publishing",
    request_body = PublishEvent,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body return the original response; same key, other body: 422.")),
    responses(
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 202, description = "Accepted and durably stored; delivered to subscribers right after (or at `deliver_at`).", body = AcceptedEvent),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `publish` scope", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or the Idempotency-Key was used with another request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn publish_event(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PublishEvent>,
) -> ApiResult<Response> {
    require_publish(&state, &principal, 1)?;
    let mut errors = Vec::new();
    if let Err(message) = state.check_event_data(&req.data) {
        errors.push(FieldError::new("data", message));
    }
    // A time already past is delivered at once: scheduled for now.
    let now = Utc::now();
    let deliver_at = req.deliver_at.map(|t| t.max(now));
    if let Some(at) = deliver_at {
        if let Err(m) = rules::deliver_at(at, now, state.settings.api.max_schedule_ahead) {
            errors.push(FieldError::new("deliver_at", m));
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors).into());
    }
    let key = IdempotencyKey::from_headers(&headers, &principal, "POST /v1/events", &req)?;
    if let Some(at) = deliver_at {
        return crate::routes::scheduled::schedule_event(&state, key, req, at).await;
    }

    let Some(key) = key else {
        // Nothing else to write: the event is its own transaction.
        let appended = state
            .outbox
            .append_alone(&req.topic, &req.event_type.0, &req.data)
            .await?;
        state.metrics.published.inc();
        let accepted = accepted_event(req, appended);
        return Ok((StatusCode::ACCEPTED, Json(accepted)).into_response());
    };
    let mut tx = state.outbox.begin().await?;
    if let Claim::Replay { status, body } = key.claim(&mut tx).await? {
        tx.rollback().await?;
        return Ok(replayed(status, body));
    }
    let appended = outbox::append(&mut tx, &req.topic, &req.event_type.0, &req.data).await?;
    let accepted = accepted_event(req, appended);
    key.record(&mut tx, StatusCode::ACCEPTED, &serde_json::to_value(&accepted)?)
        .await?;
    tx.commit().await?;
    state.metrics.published.inc();
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

fn accepted_event(req: PublishEvent, appended: outbox::Appended) -> AcceptedEvent {
    AcceptedEvent {
        id: appended.id,
        seq: None,
        topic: req.topic.to_string(),
        event_type: req.event_type.0.to_string(),
        data: req.data,
        created_at: appended.created_at,
        deliver_at: None,
    }
}

fn accepted_batch_event(e: BatchEvent, appended: outbox::Appended) -> AcceptedEvent {
    AcceptedEvent {
        id: appended.id,
        seq: None,
        topic: e.topic.to_string(),
        event_type: e.event_type.0.to_string(),
        data: e.data,
        created_at: appended.created_at,
        deliver_at: None,
    }
}

/// The most events in one batch.
pub const MAX_BATCH: usize = 500;

/// Several events to publish atomically, in order.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBatch {
    /// 1 to 500 events. They commit together or not at all, and get
    /// consecutive positions in this order.
    #[schema(min_items = 1, max_items = 500)]
    pub events: Vec<BatchEvent>,
}

/// The accepted events, in the order given.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptedBatch {
    pub events: Vec<AcceptedEvent>,
}

/// Publishes up to 500 events in one transaction.
///
/// For internal services with many events at once: one round trip and one
/// commit for the whole batch. All or nothing: any invalid event refuses the
/// batch (the error names it, e.g. `events[3].topic`) and nothing is written.
/// The events are delivered in the order given, with consecutive `seq`. The
/// whole body is limited to `HERALD_MAX_BODY_BYTES`; each event counts
/// against the publish rate limit.
#[utoipa::path(
    post,
    path = "/v1/events/batch",
    tag = "publishing",
    request_body = PublishBatch,
    params(("Idempotency-Key" = Option<String>, Header, description = "Same key and body return the original response; same key, other body: 422.")),
    responses(
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 202, description = "Accepted and durably stored, all of them; delivered to subscribers right after, in this order.", body = AcceptedBatch),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `publish` scope", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An event is invalid (named by its index), the batch is empty or over 500, or the Idempotency-Key was used with another request", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn publish_batch(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PublishBatch>,
) -> ApiResult<Response> {
    let n = req.events.len();
    if n == 0 || n > MAX_BATCH {
        return Err(
            Problem::invalid_field("events", format!("must hold 1 to {MAX_BATCH} events (got {n})")).into(),
        );
    }
    let mut errors = Vec::new();
    for (i, e) in req.events.iter().enumerate() {
        if let Err(message) = state.check_event_data(&e.data) {
            errors.push(FieldError::new(format!("events[{i}].data"), message));
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors).into());
    }
    require_publish(&state, &principal, n as u32)?;
    let key = IdempotencyKey::from_headers(&headers, &principal, "POST /v1/events/batch", &req)?;

    let mut tx = state.outbox.begin().await?;
    if let Some(key) = &key {
        if let Claim::Replay { status, body } = key.claim(&mut tx).await? {
            tx.rollback().await?;
            return Ok(replayed(status, body));
        }
    }
    let batch: Vec<(&Topic, &EventType, &serde_json::Value)> = req
        .events
        .iter()
        .map(|e| (&e.topic, &e.event_type.0, &e.data))
        .collect();
    let appended = outbox::append_many(&mut tx, &batch).await?;
    let accepted = AcceptedBatch {
        events: req
            .events
            .into_iter()
            .zip(appended)
            .map(|(e, a)| accepted_batch_event(e, a))
            .collect(),
    };
    if let Some(key) = &key {
        key.record(&mut tx, StatusCode::ACCEPTED, &serde_json::to_value(&accepted)?)
            .await?;
    }
    tx.commit().await?;
    state.metrics.published.add(n as u64);
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// The original response of an idempotent replay.
pub fn replayed(status: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}

/// The caller may publish (`publish` scope) and is within its publish rate
/// (`events` more events now).
pub fn require_publish(state: &AppState, p: &Principal, events: u32) -> Result<(), ApiError> {
    require_publish_scope(p)?;
    state.publish_rate.take(&p.sub, events)?;
    Ok(())
}

/// The caller may publish (`publish` scope).
pub fn require_publish_scope(p: &Principal) -> Result<(), ApiError> {
    if !p.publish {
        return Err(Problem::forbidden(
            "this endpoint needs a service token whose `scope` contains `publish`",
        )
        .into());
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Return events with `seq` greater than this (default 0: from the oldest retained).
    #[param(minimum = 0, value_type = Option<i64>)]
    pub after: Option<Seq>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One page of a topic's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// Events in `seq` order.
    pub events: Vec<Envelope>,
    /// Pass as `after` to get the next page; `null` when this page reached the end.
    #[schema(value_type = Option<i64>)]
    pub next_after: Option<Seq>,
    /// `true` when history after `after` was pruned by retention, so this listing
    /// cannot be complete: refetch state instead of relying on it.
    pub truncated: bool,
}

/// The durable history of one topic, oldest first.
#[utoipa::path(
    get,
    path = "/v1/topics/{topic}/events",
    tag = "history",
    params(("topic" = String, Path, description = "`kind:key`"), HistoryQuery),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read this topic", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid topic or query parameter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn topic_history(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(topic): Path<String>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> ApiResult<Json<EventPage>> {
    let topic = Topic::parse(&topic).map_err(|e| Problem::invalid_field("topic", e.to_string()))?;
    if herald_platform::auth::first_unreadable(&state.pool, &principal, std::slice::from_ref(&topic))
        .await?
        .is_some()
    {
        return Err(Problem::forbidden(format!("this token may not read `{topic}`")).into());
    }
    let after = q.after.unwrap_or_default();
    if after < Seq::ZERO {
        return Err(Problem::invalid_field("after", "must be 0 or greater").into());
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid_field("limit", "must be between 1 and 1000").into());
    }
    // The page and the pruning position come from one snapshot, so
    // `truncated` is exact even while retention runs.
    let page = herald_store::history::events_after(&state.pool, &[topic.to_string()], after, limit).await?;
    let truncated = !page.complete_after(after);
    let events = page.events;
    let full = events.len() as i64 == limit;
    let next_after = if full { events.last().map(|e| e.seq) } else { None };
    Ok(Json(EventPage {
        events,
        next_after,
        truncated,
    }))
}

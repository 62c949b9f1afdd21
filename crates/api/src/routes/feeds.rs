//! Activity feeds: `POST /v1/feeds/{feed}/activities` appends (or, with a
//! known `foreign_id`, updates) an activity and announces it on
//! `feed:{feed}`; `GET` pages the feed newest first.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_domain::feed::{self, FeedName};
use herald_domain::EventType;
use herald_platform::auth::{first_unreadable, Authenticated};
use herald_platform::http::{JsonBody, QueryParams};
use herald_platform::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::idempotency::{Claim, IdempotencyKey};
use crate::routes::events::{replayed, require_publish};
use crate::{outbox, AppState};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostActivity {
    /// Who did it, e.g. `user:alice`.
    #[schema(example = "user:alice")]
    pub actor: String,
    /// What they did, `[a-z][a-z0-9_.-]{0,63}`.
    #[schema(example = "commented")]
    pub verb: String,
    /// What they did it to.
    #[schema(example = "post:7")]
    pub object: String,
    /// Where, optionally.
    pub target: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<serde_json::Value>,
    /// The publisher's own id: sending the same `foreign_id` again updates
    /// the activity instead of adding a second one.
    pub foreign_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Activity {
    pub id: Uuid,
    pub feed: String,
    pub actor: String,
    pub verb: String,
    pub object: String,
    pub target: Option<String>,
    #[schema(value_type = serde_json::Value)]
    pub data: serde_json::Value,
    pub foreign_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn feed_name(raw: &str) -> Result<FeedName, Problem> {
    FeedName::parse(raw).map_err(|m| Problem::invalid_field("feed", m))
}

/// Appends an activity to a feed (or updates it, by `foreign_id`).
#[utoipa::path(
    post,
    path = "/v1/feeds/{feed}/activities",
    tag = "feeds",
    params(
        ("feed" = String, Path, description = "Feed name (the key of `feed:{name}`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and body return the original response; same key, other body: 422."),
    ),
    request_body = PostActivity,
    responses(
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed or empty JSON body", body = Problem, content_type = "application/problem+json"),
        (status = 201, description = "Appended; announced as `activity.created`", body = Activity),
        (status = 200, description = "An activity with this `foreign_id` existed and was updated (`activity.updated`) or was identical", body = Activity),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `publish` scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (each named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn post_activity(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(feed): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PostActivity>,
) -> ApiResult<Response> {
    require_publish(&state, &principal, 1)?;
    let feed = feed_name(&feed)?;
    let mut errors = Vec::new();
    let mut check = |name: &str, r: Result<(), String>| {
        if let Err(m) = r {
            errors.push(FieldError::new(name, m));
        }
    };
    check("actor", feed::text_field(&req.actor));
    check("verb", feed::verb(&req.verb));
    check("object", feed::text_field(&req.object));
    if let Some(t) = &req.target {
        check("target", feed::text_field(t));
    }
    if let Some(f) = &req.foreign_id {
        check("foreign_id", feed::text_field(f));
    }
    let data = req.data.clone().unwrap_or_else(|| serde_json::json!({}));
    check("data", state.check_event_data(&data));
    if !errors.is_empty() {
        return Err(Problem::invalid(errors).into());
    }
    let route = format!("POST /v1/feeds/{}/activities", feed.as_str());
    let key = IdempotencyKey::from_headers(&headers, &principal, &route, &req)?;

    let mut tx = state.outbox.begin().await?;
    if let Some(key) = &key {
        if let Claim::Replay { status, body } = key.claim(&mut tx).await? {
            tx.rollback().await?;
            return Ok(replayed(status, body));
        }
    }
    let written = sqlx::query!(
        r#"INSERT INTO feed_activities (id, feed, actor, verb, object, target, data, foreign_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (feed, foreign_id) DO UPDATE
              SET actor = EXCLUDED.actor, verb = EXCLUDED.verb, object = EXCLUDED.object,
                  target = EXCLUDED.target, data = EXCLUDED.data, updated_at = now()
            WHERE (feed_activities.actor, feed_activities.verb, feed_activities.object,
                   feed_activities.target, feed_activities.data)
                  IS DISTINCT FROM (EXCLUDED.actor, EXCLUDED.verb, EXCLUDED.object, EXCLUDED.target, EXCLUDED.data)
        RETURNING id, (xmax = 0) AS "inserted!""#,
        Uuid::now_v7(),
        feed.as_str(),
        req.actor,
        req.verb,
        req.object,
        req.target,
        data,
        req.foreign_id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (id, status, event) = match written {
        Some(w) if w.inserted => (w.id, StatusCode::CREATED, Some("activity.created")),
        Some(w) => (w.id, StatusCode::OK, Some("activity.updated")),
        None => {
            // Same foreign_id, same content: nothing changed, nothing to announce.
            let id = sqlx::query_scalar!(
                "SELECT id FROM feed_activities WHERE feed = $1 AND foreign_id = $2",
                feed.as_str(),
                req.foreign_id
            )
            .fetch_one(&mut *tx)
            .await?;
            (id, StatusCode::OK, None)
        }
    };
    let activity = load(&mut tx, id).await?;
    if let Some(event) = event {
        let event = EventType::parse(event).map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
        outbox::append(&mut tx, &feed.topic(), &event, &serde_json::to_value(&activity)?).await?;
    }
    if let Some(key) = &key {
        key.record(&mut tx, status, &serde_json::to_value(&activity)?)
            .await?;
    }
    tx.commit().await?;
    Ok((status, Json(activity)).into_response())
}

async fn load(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Activity, sqlx::Error> {
    sqlx::query_as!(
        Activity,
        r#"SELECT id, feed, actor, verb, object, target, data, foreign_id, created_at, updated_at
             FROM feed_activities WHERE id = $1"#,
        id
    )
    .fetch_one(conn)
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Page size, 1–100 (default 20).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActivityPage {
    /// Newest first.
    pub items: Vec<Activity>,
    /// Pass as `cursor` for the next (older) page; `null` at the end. Stable
    /// while new activities are appended.
    pub next_cursor: Option<String>,
}

const CURSOR_PREFIX: &str = "a1.";

/// A feed's activities, newest first.
#[utoipa::path(
    get,
    path = "/v1/feeds/{feed}/activities",
    tag = "feeds",
    params(("feed" = String, Path, description = "Feed name"), FeedQuery),
    responses(
        (status = 200, description = "A page of the feed", body = ActivityPage),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's `topics` claim does not grant `feed:{feed}`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid feed name or query parameter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_activities(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(feed): Path<String>,
    QueryParams(q): QueryParams<FeedQuery>,
) -> ApiResult<Json<ActivityPage>> {
    let feed = feed_name(&feed)?;
    if first_unreadable(&state.pool, &principal, &[feed.topic()])
        .await?
        .is_some()
    {
        return Err(Problem::forbidden(format!("this token may not read `{}`", feed.topic())).into());
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::invalid_field("limit", "must be between 1 and 100").into());
    }
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.strip_prefix(CURSOR_PREFIX)
                .and_then(|h| Uuid::try_parse(h).ok())
                .ok_or_else(|| Problem::invalid_field("cursor", "not a cursor returned by this endpoint"))?,
        ),
    };
    let items = sqlx::query_as!(
        Activity,
        r#"SELECT id, feed, actor, verb, object, target, data, foreign_id, created_at, updated_at
             FROM feed_activities
            WHERE feed = $1 AND ($2::uuid IS NULL OR id < $2)
            ORDER BY id DESC
            LIMIT $3"#,
        feed.as_str(),
        before,
        limit,
    )
    .fetch_all(&state.pool)
    .await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|a| format!("{CURSOR_PREFIX}{}", a.id.simple())))
        .flatten();
    Ok(Json(ActivityPage { items, next_cursor }))
}

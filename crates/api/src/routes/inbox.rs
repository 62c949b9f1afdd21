//! The caller's inbox (`/v1/me/notifications…`): list, counts and state
//! changes. Every change is announced on `user:{sub}` with the new counts, so
//! every open tab and device updates its badge at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, SubsecRound, Utc};
use herald_platform::auth::{Authenticated, Principal};
use herald_platform::http::{JsonBody, QueryParams};
use herald_platform::problem::Problem;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::inbox::{self, Change, Counts, Notification};
use crate::AppState;

/// The caller's user id, or 403 for a token whose `sub` is not one.
pub(crate) fn user(p: &Principal) -> Result<String, Problem> {
    p.user_topic()
        .map(|t| t.key().to_owned())
        .ok_or_else(|| Problem::forbidden("the inbox needs a user token whose `sub` is a valid user id"))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Default `all`: read and unread, not archived, not snoozed.
    #[param(inline)]
    pub status: Option<ListStatus>,
    /// Only this category.
    pub category: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Which notifications to list.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListStatus {
    Unread,
    Read,
    Archived,
    /// Snoozed, not archived: what will come back.
    Snoozed,
    All,
}

impl ListStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Unread => "unread",
            Self::Read => "read",
            Self::Archived => "archived",
            Self::Snoozed => "snoozed",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationPage {
    /// Newest first, by `latest_at`: an entry a grouped notification joined
    /// (or back from snooze) moves to the top.
    pub items: Vec<Notification>,
    /// Pass as `cursor` for the next (older) page; `null` at the end. Stays
    /// valid while new notifications arrive (they sort before it); an entry
    /// that moves to the top meanwhile is not listed again further down.
    pub next_cursor: Option<String>,
}

const CURSOR_PREFIX: &str = "n1.";

fn parse_cursor(c: &str) -> Result<Uuid, Problem> {
    c.strip_prefix(CURSOR_PREFIX)
        .and_then(|hex| Uuid::try_parse(hex).ok())
        .ok_or_else(|| Problem::invalid_field("cursor", "not a cursor returned by this endpoint"))
}

/// Lists the caller's notifications, newest first.
#[utoipa::path(
    get,
    path = "/v1/me/notifications",
    tag = "inbox",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the inbox", body = NotificationPage),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid query parameter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<NotificationPage>> {
    let user = user(&principal)?;
    let status = q.status.unwrap_or(ListStatus::All).as_str();
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::invalid_field("limit", "must be between 1 and 100").into());
    }
    if let Some(c) = q.category.as_deref() {
        herald_domain::notification::category(c).map_err(|m| Problem::invalid_field("category", m))?;
    }
    let before = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut conn = state.pool.acquire().await?;
    let items = inbox::page(&mut conn, &user, status, q.category.as_deref(), before, limit).await?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| {
            items
                .last()
                .map(|n| format!("{CURSOR_PREFIX}{}", n.latest_id.simple()))
        })
        .flatten();
    Ok(Json(NotificationPage { items, next_cursor }))
}

/// The badge numbers: exact, never capped.
#[utoipa::path(
    get,
    path = "/v1/me/notifications/counts",
    tag = "inbox",
    responses(
        (status = 200, description = "Counts", body = Counts),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn counts(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> ApiResult<Json<Counts>> {
    let user = user(&principal)?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(inbox::counts(&mut conn, &user).await?))
}

async fn change(
    state: &AppState,
    principal: &Principal,
    id: &str,
    change: Change,
) -> ApiResult<Json<Notification>> {
    let user = user(principal)?;
    let not_found = || Problem::not_found("no such notification in your inbox");
    let id = Uuid::try_parse(id).map_err(|_| not_found())?;
    let mut tx = state.outbox.begin().await?;
    inbox::lock_user(&mut tx, &user).await?;
    let current = inbox::find_for_update(&mut tx, &user, id)
        .await?
        .ok_or_else(not_found)?;
    if !change.changes(&current) {
        tx.rollback().await?;
        return Ok(Json(current)); // idempotent: nothing to announce
    }
    let updated = inbox::apply(&mut tx, id, change).await?;
    inbox::announce(&mut tx, &user, "notification.updated", Some(&updated)).await?;
    tx.commit().await?;
    Ok(Json(updated))
}

macro_rules! change_route {
    ($name:ident, $path:literal, $change:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "inbox",
            params(("id" = Uuid, Path, description = "Notification id")),
            responses(
                (status = 200, description = "The notification after the change (idempotent)", body = Notification),
                (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
                (status = 404, description = "Not in the caller's inbox", body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "The id holds a character that cannot be stored (NUL)", body = Problem, content_type = "application/problem+json"),
            ),
            security(("bearer" = []))
        )]
        pub async fn $name(
            State(state): State<AppState>,
            Authenticated(principal): Authenticated,
            Path(id): Path<String>,
        ) -> ApiResult<Json<Notification>> {
            change(&state, &principal, &id, $change).await
        }
    };
}

change_route!(
    mark_read,
    "/v1/me/notifications/{id}/read",
    Change::Read,
    "Marks one notification read."
);
change_route!(
    mark_unread,
    "/v1/me/notifications/{id}/unread",
    Change::Unread,
    "Marks one notification unread."
);
change_route!(
    archive,
    "/v1/me/notifications/{id}/archive",
    Change::Archive,
    "Archives one notification."
);

/// Marks every notification read; announced as `inbox.read_all`.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/read-all",
    tag = "inbox",
    responses(
        (status = 200, description = "Counts after the change", body = Counts),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn read_all(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> ApiResult<Json<Counts>> {
    bulk(&state, &principal, "inbox.read_all").await
}

/// Marks every notification seen (the bell was opened); announced as `inbox.seen`.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/seen",
    tag = "inbox",
    responses(
        (status = 200, description = "Counts after the change", body = Counts),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn seen(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> ApiResult<Json<Counts>> {
    bulk(&state, &principal, "inbox.seen").await
}

async fn bulk(state: &AppState, principal: &Principal, event: &str) -> ApiResult<Json<Counts>> {
    let user = user(principal)?;
    let mut tx = state.outbox.begin().await?;
    inbox::lock_user(&mut tx, &user).await?;
    let changed = if event == "inbox.read_all" {
        inbox::read_all(&mut tx, &user).await?
    } else {
        inbox::seen_all(&mut tx, &user).await?
    };
    let counts = if changed > 0 {
        inbox::announce(&mut tx, &user, event, None).await?
    } else {
        inbox::counts(&mut tx, &user).await?
    };
    tx.commit().await?;
    Ok(Json(counts))
}

/// When a snoozed notification comes back.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Snooze {
    /// In the future, at most `HERALD_MAX_SCHEDULE_AHEAD` (30 days) ahead.
    pub until: DateTime<Utc>,
}

/// Snoozes one notification: it leaves every list (but `status=snoozed`) and
/// the counts until `until`, when it comes back unread, at the top, announced
/// as `notification.updated` with the new counts. The snooze itself is
/// announced as `notification.snoozed` (`{notification, counts}`). Snoozing
/// again moves the time; the same time again changes nothing. A snoozed
/// notification is not pushed, and its group takes no more notifications.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/{id}/snooze",
    tag = "inbox",
    params(("id" = Uuid, Path, description = "Notification id")),
    request_body = Snooze,
    responses(
        (status = 200, description = "The notification, snoozed (idempotent)", body = Notification),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not in the caller's inbox", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The notification is archived", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`until` is not in the future, or too far ahead", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn snooze(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Snooze>,
) -> ApiResult<Json<Notification>> {
    let user = user(&principal)?;
    let not_found = || Problem::not_found("no such notification in your inbox");
    let id = Uuid::try_parse(&id).map_err(|_| not_found())?;
    // As stored: Postgres keeps microseconds, so a repeat compares equal.
    let until = req.until.trunc_subsecs(6);
    herald_domain::notification::snooze_until(until, Utc::now(), state.settings.api.max_schedule_ahead)
        .map_err(|m| Problem::invalid_field("until", m))?;
    let mut tx = state.outbox.begin().await?;
    inbox::lock_user(&mut tx, &user).await?;
    let current = inbox::find_for_update(&mut tx, &user, id)
        .await?
        .ok_or_else(not_found)?;
    if current.archived_at.is_some() {
        tx.rollback().await?;
        return Err(
            Problem::new(StatusCode::CONFLICT, "archived", "The notification is archived")
                .detail("an archived notification cannot be snoozed")
                .into(),
        );
    }
    if current.snoozed_until == Some(until) {
        tx.rollback().await?;
        return Ok(Json(current)); // idempotent: nothing to announce
    }
    let snoozed = herald_store::snooze::snooze(&mut tx, id, until).await?;
    inbox::announce(&mut tx, &user, "notification.snoozed", Some(&snoozed)).await?;
    tx.commit().await?;
    Ok(Json(snoozed))
}

/// Brings a snoozed notification back now: unread, at the top, announced as
/// `notification.updated` with the new counts. A notification that is not
/// snoozed is answered as it is.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/{id}/unsnooze",
    tag = "inbox",
    params(("id" = Uuid, Path, description = "Notification id")),
    responses(
        (status = 200, description = "The notification, back (idempotent)", body = Notification),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not in the caller's inbox", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id holds a character that cannot be stored (NUL)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn unsnooze(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<Notification>> {
    let user = user(&principal)?;
    let not_found = || Problem::not_found("no such notification in your inbox");
    let id = Uuid::try_parse(&id).map_err(|_| not_found())?;
    let mut tx = state.outbox.begin().await?;
    inbox::lock_user(&mut tx, &user).await?;
    let current = inbox::find_for_update(&mut tx, &user, id)
        .await?
        .ok_or_else(not_found)?;
    if current.snoozed_until.is_none() {
        tx.rollback().await?;
        return Ok(Json(current)); // idempotent: nothing to announce
    }
    let back = herald_store::snooze::unsnooze(&mut tx, id).await?;
    inbox::announce(&mut tx, &user, "notification.updated", Some(&back)).await?;
    tx.commit().await?;
    Ok(Json(back))
}

//! Orders: `PUT /v1/orders/{id}` creates or updates, `POST …/status` moves
//! the order through the state machine of `herald_domain::order`, and
//! `GET` returns the status and full timeline.
//!
//! A status change locks the order row (`FOR UPDATE`), so of two concurrent
//! requests for the same transition exactly one succeeds; the other sees the
//! new status and gets 409. Each change is recorded in the timeline,
//! announced on `order:{id}` as `order.status_changed` and put in the
//! customer's inbox (`category: "order"`), in the same transaction.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use herald_domain::notification::UserId;
use herald_domain::order::{self, OrderStatus};
use herald_domain::{EventType, Topic};
use herald_platform::auth::{Authenticated, Principal};
use herald_platform::http::JsonBody;
use herald_platform::problem::Problem;
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::idempotency::{Claim, IdempotencyKey};
use crate::inbox::NewNotification;
use crate::outbox::OutboxTx;
use crate::routes::events::{replayed, require_publish};
use crate::{outbox, AppState};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
    #[schema(value_type = serde_json::Value)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub order_id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    #[schema(value_type = serde_json::Value)]
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every status the order went through, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutOrder {
    /// The user who placed the order (may read it and stream `order:{id}`).
    pub customer_id: String,
    /// Initial status when creating (default `placed`); when updating, a
    /// different status is a transition.
    pub status: Option<OrderStatus>,
    /// Order metadata (replaces the previous metadata).
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeStatus {
    pub status: OrderStatus,
    /// Shown in the timeline, at most 1000 characters.
    pub note: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub data: Option<serde_json::Value>,
}

fn order_topic(raw: &str) -> Result<Topic, Problem> {
    Topic::parse(&format!("order:{raw}")).map_err(|_| {
        Problem::invalid_field(
            "order_id",
            "must be 1 to 200 characters of A-Z a-z 0-9 . _ ~ @ : -",
        )
    })
}

async fn load(conn: &mut sqlx::PgConnection, order_id: &str, lock: bool) -> ApiResult<Option<Order>> {
    let row = if lock {
        sqlx::query!(
            "SELECT order_id, customer_id, status, data, created_at, updated_at FROM orders WHERE order_id = $1 FOR UPDATE",
            order_id
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| (r.order_id, r.customer_id, r.status, r.data, r.created_at, r.updated_at))
    } else {
        sqlx::query!(
            "SELECT order_id, customer_id, status, data, created_at, updated_at FROM orders WHERE order_id = $1",
            order_id
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| (r.order_id, r.customer_id, r.status, r.data, r.created_at, r.updated_at))
    };
    let Some((order_id, customer_id, status, data, created_at, updated_at)) = row else {
        return Ok(None);
    };
    let timeline = sqlx::query!(
        "SELECT status, at, note, data FROM order_timeline WHERE order_id = $1 ORDER BY id",
        order_id
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| {
        Ok(TimelineEntry {
            status: OrderStatus::parse(&r.status).map_err(ApiError::Internal)?,
            at: r.at,
            note: r.note,
            data: r.data,
        })
    })
    .collect::<ApiResult<Vec<_>>>()?;
    Ok(Some(Order {
        order_id,
        customer_id,
        status: OrderStatus::parse(&status).map_err(ApiError::Internal)?,
        data,
        created_at,
        updated_at,
        timeline,
    }))
}

/// Records `to` in the timeline and announces it on `order:{id}` and in the
/// customer's inbox. The caller holds the order row lock.
/// One status change of an order.
struct StatusChange<'a> {
    from: Option<OrderStatus>,
    to: OrderStatus,
    note: Option<&'a str>,
    data: &'a serde_json::Value,
}

async fn record_status(
    tx: &mut OutboxTx,
    state: &AppState,
    order_id: &str,
    customer: &UserId,
    change: StatusChange<'_>,
) -> ApiResult<()> {
    let StatusChange { from, to, note, data } = change;
    let web_push = state.push.is_some();
    let at = sqlx::query_scalar!(
        "INSERT INTO order_timeline (order_id, status, note, data) VALUES ($1, $2, $3, $4) RETURNING at",
        order_id,
        to.as_str(),
        note,
        data
    )
    .fetch_one(&mut **tx)
    .await?;
    let event = serde_json::json!({
        "order_id": order_id, "customer_id": customer.as_str(),
        "from": from, "status": to, "note": note, "data": data, "at": at,
    });
    let topic = order_topic(order_id)?;
    let event_type =
        EventType::parse("order.status_changed").map_err(|e| ApiError::Internal(e.to_string()))?;
    outbox::append(tx, &topic, &event_type, &event).await?;
    let title = format!("Order {order_id} is {}", to.as_str().replace('_', " "));
    let payload = serde_json::json!({ "order_id": order_id, "status": to });
    // The customer's preferences for `order` apply, as for any notification.
    herald_store::send::send(
        tx,
        std::slice::from_ref(customer),
        &NewNotification {
            category: "order",
            title: &title,
            body: note,
            data: &payload,
            action_url: None,
            expires_at: None,
            group_key: None,
            actor: None,
        },
        web_push,
    )
    .await?;
    Ok(())
}

/// An order's `data` travels in its events: the events' size bound holds.
fn check_data(state: &AppState, data: Option<&serde_json::Value>) -> Result<(), Problem> {
    match data.map(|d| state.check_event_data(d)) {
        Some(Err(m)) => Err(Problem::invalid_field("data", m)),
        _ => Ok(()),
    }
}

fn check_note(note: Option<&str>) -> Result<(), Problem> {
    match note.map(order::note) {
        Some(Err(m)) => Err(Problem::invalid_field("note", m)),
        _ => Ok(()),
    }
}

fn conflict(e: order::IllegalTransition) -> ApiError {
    Problem::new(
        StatusCode::CONFLICT,
        "illegal-transition",
        "Illegal status transition",
    )
    .detail(e.to_string())
    .extension("from", e.from.as_str())
    .extension("to", e.to.as_str())
    .into()
}

/// Creates an order (status `placed` unless given) or updates its metadata.
#[utoipa::path(
    put,
    path = "/v1/orders/{order_id}",
    tag = "orders",
    params(("order_id" = String, Path, description = "The order id (the key of `order:{id}`)")),
    request_body = PutOrder,
    responses(
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed or empty JSON body", body = Problem, content_type = "application/problem+json"),
        (status = 201, description = "Created", body = Order),
        (status = 200, description = "Updated", body = Order),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `publish` scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`customer_id` differs from the order's, or an illegal status transition (`from`, `to`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (each named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn put_order(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(order_id): Path<String>,
    JsonBody(req): JsonBody<PutOrder>,
) -> ApiResult<Response> {
    require_publish(&state, &principal, 1)?;
    order_topic(&order_id)?;
    let customer = UserId::parse(&req.customer_id).map_err(|m| Problem::invalid_field("customer_id", m))?;
    check_data(&state, req.data.as_ref())?;
    let mut tx = state.outbox.begin().await?;
    let existing = load(&mut tx, &order_id, true).await?;
    let status = match existing {
        None => {
            let initial = req.status.unwrap_or(OrderStatus::Placed);
            let data = req.data.clone().unwrap_or_else(|| serde_json::json!({}));
            let inserted = sqlx::query!(
                "INSERT INTO orders (order_id, customer_id, status, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                order_id,
                customer.as_str(),
                initial.as_str(),
                data
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                // Created concurrently: let the client retry as an update.
                return Err(
                    Problem::new(StatusCode::CONFLICT, "conflict", "Concurrent creation")
                        .detail("the order was created concurrently; retry")
                        .into(),
                );
            }
            record_status(
                &mut tx,
                &state,
                &order_id,
                &customer,
                StatusChange {
                    from: None,
                    to: initial,
                    note: None,
                    data: &serde_json::json!({}),
                },
            )
            .await?;
            StatusCode::CREATED
        }
        Some(current) => {
            if current.customer_id != customer.as_str() {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "customer-mismatch",
                    "The order belongs to another customer",
                )
                .detail("customer_id cannot change")
                .into());
            }
            if let Some(data) = &req.data {
                sqlx::query!(
                    "UPDATE orders SET data = $2, updated_at = now() WHERE order_id = $1",
                    order_id,
                    data
                )
                .execute(&mut *tx)
                .await?;
            }
            if let Some(to) = req.status.filter(|s| *s != current.status) {
                order::transition(current.status, to).map_err(conflict)?;
                sqlx::query!(
                    "UPDATE orders SET status = $2, updated_at = now() WHERE order_id = $1",
                    order_id,
                    to.as_str()
                )
                .execute(&mut *tx)
                .await?;
                record_status(
                    &mut tx,
                    &state,
                    &order_id,
                    &customer,
                    StatusChange {
                        from: Some(current.status),
                        to,
                        note: None,
                        data: &serde_json::json!({}),
                    },
                )
                .await?;
            }
            StatusCode::OK
        }
    };
    let order = load(&mut tx, &order_id, false)
        .await?
        .ok_or_else(|| ApiError::Internal("order vanished".into()))?;
    tx.commit().await?;
    Ok((status, Json(order)).into_response())
}

/// Moves an order to a new status.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/status",
    tag = "orders",
    params(
        ("order_id" = String, Path, description = "The order id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Same key and body return the original response; same key, other body: 422."),
    ),
    request_body = ChangeStatus,
    responses(
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed or empty JSON body", body = Problem, content_type = "application/problem+json"),
        (status = 200, description = "The order after the change", body = Order),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `publish` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Illegal transition; the problem names `from` and `to`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (each named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn change_status(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ChangeStatus>,
) -> ApiResult<Response> {
    require_publish(&state, &principal, 1)?;
    order_topic(&order_id)?;
    check_note(req.note.as_deref())?;
    check_data(&state, req.data.as_ref())?;
    let data = req.data.clone().unwrap_or_else(|| serde_json::json!({}));
    let route = format!("POST /v1/orders/{order_id}/status");
    let key = IdempotencyKey::from_headers(&headers, &principal, &route, &req)?;
    let mut tx = state.outbox.begin().await?;
    if let Some(key) = &key {
        if let Claim::Replay { status, body } = key.claim(&mut tx).await? {
            tx.rollback().await?;
            return Ok(replayed(status, body));
        }
    }
    let current = load(&mut tx, &order_id, true)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no order `{order_id}`")))?;
    order::transition(current.status, req.status).map_err(conflict)?;
    let customer = UserId::parse(&current.customer_id).map_err(ApiError::Internal)?;
    sqlx::query!(
        "UPDATE orders SET status = $2, updated_at = now() WHERE order_id = $1",
        order_id,
        req.status.as_str()
    )
    .execute(&mut *tx)
    .await?;
    record_status(
        &mut tx,
        &state,
        &order_id,
        &customer,
        StatusChange {
            from: Some(current.status),
            to: req.status,
            note: req.note.as_deref(),
            data: &data,
        },
    )
    .await?;
    let order = load(&mut tx, &order_id, false)
        .await?
        .ok_or_else(|| ApiError::Internal("order vanished".into()))?;
    if let Some(key) = &key {
        key.record(&mut tx, StatusCode::OK, &serde_json::to_value(&order)?)
            .await?;
    }
    tx.commit().await?;
    Ok((StatusCode::OK, Json(order)).into_response())
}

fn may_see(p: &Principal, order: &Order) -> bool {
    p.publish || p.admin || p.sub == order.customer_id
}

/// The order's current status and full timeline: for its customer and for
/// service tokens (`publish` or `admin`); 404 for anyone else.
#[utoipa::path(
    get,
    path = "/v1/orders/{order_id}",
    tag = "orders",
    params(("order_id" = String, Path, description = "The order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not yours", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The order id is not a valid order id", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_order(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(order_id): Path<String>,
) -> ApiResult<Json<Order>> {
    order_topic(&order_id)?;
    let not_found = || Problem::not_found(format!("no order `{order_id}`"));
    let mut conn = state.pool.acquire().await?;
    let order = load(&mut conn, &order_id, false).await?.ok_or_else(not_found)?;
    if !may_see(&principal, &order) {
        return Err(not_found().into());
    }
    Ok(Json(order))
}

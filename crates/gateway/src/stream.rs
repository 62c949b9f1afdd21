//! `GET /v1/stream`: opening one SSE stream.
//!
//! Everything that can refuse a stream (token, topics, authorization, limits,
//! the bus) is checked before the response starts, so refusals are
//! problem+json with a status, never a broken stream. Then the stream is a
//! [`Connection`], which takes the socket over on the lean path and is the
//! response body otherwise.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use herald_domain::{sse, LastEventId, Seq, Topic};
use herald_platform::auth::{AuthError, Principal};
use herald_platform::http::{ConnectionHandle, QueryParams, TakeOver, TakeOverOffered};
use herald_platform::problem::{FieldError, Problem};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::connection::Connection;
use crate::frame::{control, Frame};
use crate::history::Positions;
use crate::hub::Subscription;
use crate::GatewayState;

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    topics: Option<String>,
    access_token: Option<String>,
    last_event_id: Option<String>,
}

async fn authenticate(
    state: &GatewayState,
    headers: &HeaderMap,
    q: &StreamQuery,
) -> Result<Principal, Problem> {
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match (header_token, q.access_token.as_deref()) {
        (Some(t), _) => Ok(state.verifier.verify_access(t).await?),
        (None, Some(t)) => Ok(state.verifier.verify_stream(t).await?),
        (None, None) => Err(AuthError::Missing.into()),
    }
}

fn topics(state: &GatewayState, principal: &Principal, q: &StreamQuery) -> Result<Vec<Topic>, Problem> {
    let bad = |message: String| Problem::bad_request(message.clone()).with_field("topics", message);
    let mut topics: Vec<Topic> = match q.topics.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(raw) => raw
            .split(',')
            .map(str::trim)
            .map(|t| Topic::parse(t).map_err(|e| bad(format!("`{t}`: {e}"))))
            .collect::<Result<_, _>>()?,
        None if principal.stream_token && !principal.grants.is_empty() => principal
            .grants
            .iter()
            .filter_map(|g| match g {
                herald_domain::TopicPattern::Exact(t) => Some(t.clone()),
                herald_domain::TopicPattern::Kind(_) => None,
            })
            .collect(),
        None => vec![principal
            .user_topic()
            .ok_or_else(|| bad("required when the token's `sub` is not a user id".into()))?],
    };
    topics.sort();
    topics.dedup();
    let max = state.settings.gateway.max_topics_per_stream;
    if topics.len() > max {
        return Err(bad(format!(
            "at most {max} topics per stream (got {})",
            topics.len()
        )));
    }
    Ok(topics)
}

trait WithField {
    fn with_field(self, field: &str, message: String) -> Self;
}

impl WithField for Problem {
    fn with_field(mut self, field: &str, message: String) -> Self {
        self.errors.push(FieldError::new(field, message));
        self
    }
}

pub async fn stream(
    State(state): State<GatewayState>,
    connection: Option<Extension<ConnectionHandle>>,
    take_over: Option<Extension<TakeOverOffered>>,
    headers: HeaderMap,
    query: QueryParams<StreamQuery>,
) -> Response {
    // Falling behind closes the TCP connection itself: a consumer that stopped
    // reading is not written to any more, so only that frees it.
    let kick = connection.map(|Extension(c)| c.0).unwrap_or_default();
    match open(&state, &headers, &query.0, kick).await {
        Ok(conn) => respond(conn, take_over.is_some()),
        Err(p) => {
            state.metrics.refused.inc();
            p.into_response()
        }
    }
}

/// The response head of an open stream: on the lean path the connection
/// then takes the socket over, otherwise it is the body.
fn respond(conn: Connection, take_over: bool) -> Response {
    let mut res = if take_over {
        let mut res = Response::new(axum::body::Body::empty());
        res.extensions_mut()
            .insert(TakeOver::new(move |tcp| conn.run(tcp)));
        res
    } else {
        Response::new(conn.into_body())
    };
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // CORS headers, for the origins in HERALD_CORS_ORIGINS only, come from
    // the router's `platform::http::cors` layer.
    res
}

/// Checks everything that can refuse the stream, subscribes, and reads where
/// the stream starts.
async fn open(
    state: &GatewayState,
    headers: &HeaderMap,
    q: &StreamQuery,
    kick: CancellationToken,
) -> Result<Connection, Problem> {
    let principal = authenticate(state, headers, q).await?;
    let topics = topics(state, &principal, q)?;
    let unavailable = |what: &str| Problem::unavailable(format!("{what} is unavailable; retry shortly"), 2);
    let denied = herald_platform::auth::first_unreadable(&state.pool, &principal, &topics)
        .await
        .map_err(|_| unavailable("the database"))?;
    if let Some(t) = denied {
        return Err(Problem::forbidden(format!("this token may not read `{t}`")));
    }
    if state.draining.is_cancelled() {
        return Err(Problem::unavailable(
            "this gateway is shutting down; reconnect",
            1,
        ));
    }
    let permit = state.limits.acquire(&principal.sub)?;
    let position = position(headers, q);
    let settings = &state.settings.gateway;
    let resume = match position {
        Some(LastEventId::After(n)) => Some(n),
        _ => None,
    };
    let mut subscription = state
        .hub
        .subscribe(
            &topics,
            settings.stream_buffer,
            Duration::from_secs(5),
            kick,
            resume,
        )
        .await
        .map_err(|_| unavailable("the event bus"))?;
    let (preamble, replay) = match (subscription.from_memory.take(), resume) {
        // A resume the replay windows cover needs no read of the log: what
        // the hub forwarded before the registration is here, the rest is
        // queued, and the position is at or below what the hub forwarded
        // (so neither in the future nor, with everything after it held
        // here, beyond proof of completeness).
        (Some(frames), Some(after)) => (remembered(state, after, frames, &subscription), false),
        _ => {
            let positions = state
                .heads
                .read()
                .await
                .map_err(|_| unavailable("the database"))?;
            start(state, position, positions, &subscription)
        }
    };
    // The stream must not outlive the token that opened it: `herald.reauth`
    // goes out a second before expiry.
    let expires_in = principal.remaining().saturating_sub(Duration::from_secs(1));
    Ok(Connection::new(
        state.clone(),
        permit,
        subscription,
        preamble,
        replay,
        expires_in,
    ))
}

/// The stream's first bytes when the replay windows hold everything after
/// the client's position `after`: the frames. Sets the sink's `last_sent` to
/// match.
fn remembered(state: &GatewayState, after: Seq, frames: Vec<Frame>, subscription: &Subscription) -> String {
    let mut preamble = String::new();
    sse::write_retry(&mut preamble, state.settings.gateway.sse_retry.as_millis() as u64);
    state.metrics.replays_from_memory.inc();
    state.metrics.replayed_events.add(frames.len() as u64);
    state.metrics.delivered.add(frames.len() as u64);
    let mut last_sent = after;
    for f in frames {
        preamble.push_str(std::str::from_utf8(&f.bytes).unwrap_or_default());
        last_sent = f.seq;
    }
    subscription.sink.set_last_sent(last_sent);
    tracing::debug!(topics = ?subscription.topics(), %last_sent, "stream opened from memory");
    preamble
}

/// The stream's first bytes, and whether it must replay from the log: a
/// position or a `herald.reset`. Sets the sink's `last_sent` to match.
fn start(
    state: &GatewayState,
    position: Option<LastEventId>,
    positions: Positions,
    subscription: &Subscription,
) -> (String, bool) {
    let mut preamble = String::new();
    sse::write_retry(&mut preamble, state.settings.gateway.sse_retry.as_millis() as u64);
    let reset = |reason: &str, preamble: &mut String| {
        state.metrics.resets.inc();
        preamble.push_str(&control("herald.reset", reason, Some(positions.head)));
        (positions.head, false)
    };
    let (last_sent, replay) = match position {
        None => {
            sse::write_position(&mut preamble, positions.head);
            (positions.head, false)
        }
        Some(LastEventId::Unparsable) => reset("unparsable", &mut preamble),
        Some(LastEventId::After(n)) if n > positions.head => reset("future", &mut preamble),
        Some(LastEventId::After(n)) if n < positions.pruned => reset("pruned", &mut preamble),
        Some(LastEventId::After(n)) => (n, true),
    };
    if replay {
        state.metrics.replays.inc();
    }
    subscription.sink.set_last_sent(last_sent);
    tracing::debug!(topics = ?subscription.topics(), %last_sent, "stream opened");
    (preamble, replay)
}

/// The client's position. The `Last-Event-ID` header wins over
/// `?last_event_id=` whenever it holds anything; bytes that are not a
/// position (not even UTF-8) are a reset, never "no position".
fn position(headers: &HeaderMap, q: &StreamQuery) -> Option<LastEventId> {
    match headers
        .get("last-event-id")
        .and_then(|v| LastEventId::parse_bytes(v.as_bytes()))
    {
        Some(p) => Some(p),
        None => q.last_event_id.as_deref().and_then(LastEventId::parse),
    }
}

//! The stream endpoint's contract, for the OpenAPI document. The stream
//! itself is served by `herald-gateway`; these types describe it.

#![allow(dead_code)]

use herald_platform::problem::Problem;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated topics (at most 64). Default: `user:{sub}` of the token.
    #[param(example = "user:alice,feed:team-42")]
    pub topics: Option<String>,
    /// A stream token from `POST /v1/stream-tokens` (for `EventSource`, which cannot send headers).
    /// Long-lived tokens are refused here.
    pub access_token: Option<String>,
    /// Resume position, when the `Last-Event-ID` header cannot be sent.
    pub last_event_id: Option<String>,
}

/// The payload of `event: herald.reset`, `event: herald.reauth` and `event: herald.reconnect` frames.
#[derive(Debug, ToSchema)]
pub struct ControlEvent {
    /// Why the event was sent: `unparsable`, `future`, `pruned`, `rewound` (reset), `token_expiring` (reauth) or `shutdown` (reconnect).
    pub reason: String,
}

/// A live stream of events (Server-Sent Events), served by `herald-gateway`.
///
/// Frames: `id: <seq>`, `event: <type>`, `data: <envelope JSON>`, a `retry:` hint
/// first, and `:` comment heartbeats (default every 15 s).
///
/// Resume with the `Last-Event-ID` header (browsers send it on reconnect) or
/// `?last_event_id=`: every event after that position on the stream's topics is
/// replayed from Postgres, in order, with no gap and no duplicate, then the stream
/// continues live. Without a position the stream starts at the current head (its
/// first frame is a bare `id:` carrying the position).
///
/// `event: herald.reset` (data `{"reason": …}`, `id:` the position to go on from)
/// means the position cannot be resumed (unparsable, ahead of the head, older than
/// retained history, or history went backwards after a database failover:
/// `rewound`): refetch state over REST, then continue from the stream, and take
/// the reset's `id` as the new position even when it is below one already seen
/// (after `rewound`, later events may reuse positions; drop duplicates by `seq`
/// only above the reset). `event: herald.reauth` is sent
/// just before the token that opened the stream expires; the stream then closes:
/// fetch a fresh stream token and reconnect with `Last-Event-ID`. `event:
/// herald.reconnect` (no `id`) comes after a short `retry:` hint when the gateway
/// shuts down, just before the stream ends: it needs no handling (`EventSource`
/// reconnects after the hint and resumes with `Last-Event-ID`). A client that cannot
/// keep up is disconnected and resumes the same way.
#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "streaming",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position (the last `id:` received)."),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream` body; each `data:` line is an `Envelope` (JSON). Consume it with `EventSource` or an SSE parser, not a request/response client.", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Invalid topics or too many topics", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter holds a NUL, which no topic, token or position contains", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, invalid or expired token; a long-lived token in the URL", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A topic the token may not read", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The gateway is draining or its dependencies are down", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("stream_token" = []))
)]
pub async fn stream() {}

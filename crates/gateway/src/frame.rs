//! Frames: an event formatted once as SSE bytes and shared (refcounted) by
//! every stream that delivers it.

use bytes::Bytes;
use herald_bus::Message;
use herald_domain::{sse, Envelope, Seq};

/// One event, framed.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: Seq,
    pub bytes: Bytes,
    /// Goes out even at or below the last position a stream sent, which
    /// moves back to `seq`: the `herald.reset` of a history that went
    /// backwards (see `hub::session`). Every other frame at or below it is a
    /// duplicate.
    pub rewind: bool,
}

impl Frame {
    /// Not an event: the hub's wake-up for a stream whose socket it stopped
    /// writing to (see `hub::sink`). Streams skip it.
    pub const WAKE: Self = Self::new(Seq::ZERO, Bytes::new());

    pub const fn new(seq: Seq, bytes: Bytes) -> Self {
        Self {
            seq,
            bytes,
            rewind: false,
        }
    }

    /// Frames an envelope read from Postgres.
    pub fn from_envelope(e: &Envelope) -> Self {
        let json = serde_json::to_string(e).unwrap_or_default();
        Self::event(e.seq, &e.event_type, &json)
    }

    /// Frames a message from the bus (the envelope's JSON as published).
    pub fn from_message(m: &Message<'_>) -> Self {
        Self::event(m.seq, m.event_type, m.envelope)
    }

    fn event(seq: Seq, event_type: &str, json: &str) -> Self {
        let mut buf = String::with_capacity(json.len() + event_type.len() + 40);
        sse::write_event(&mut buf, Some(seq), Some(event_type), json);
        Self::new(seq, Bytes::from(buf))
    }
}

/// A control event (`herald.reset`, `herald.reauth`, `herald.reconnect`) with
/// `{"reason": …}`.
pub fn control(event: &str, reason: &str, id: Option<Seq>) -> String {
    let mut buf = String::new();
    let data = serde_json::json!({ "reason": reason }).to_string();
    sse::write_event(&mut buf, id, Some(event), &data);
    buf
}

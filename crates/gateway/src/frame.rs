//! Frames: an event formatted once as SSE bytes and shared (refcounted) by
//! every connection that delivers it.

use bytes::Bytes;
use herald_domain::{sse, Envelope, Seq};
use herald_platform::bus::EnvelopeHead;

/// One event, framed.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: Seq,
    pub bytes: Bytes,
}

impl Frame {
    /// Frames an envelope read from Postgres.
    pub fn from_envelope(e: &Envelope) -> Self {
        let json = serde_json::to_string(e).unwrap_or_default();
        let mut buf = String::with_capacity(json.len() + e.event_type.len() + 40);
        sse::write_event(&mut buf, Some(e.seq), Some(&e.event_type), &json);
        Self {
            seq: e.seq,
            bytes: Bytes::from(buf),
        }
    }

    /// Frames a bus payload (an envelope's JSON). Returns the topic too.
    pub fn from_bus(payload: &[u8]) -> Option<(String, Self)> {
        let head = EnvelopeHead::parse(payload).ok()?;
        let json = std::str::from_utf8(payload).ok()?;
        let mut buf = String::with_capacity(json.len() + head.event_type.len() + 40);
        sse::write_event(&mut buf, Some(head.seq), Some(&head.event_type), json);
        Some((
            head.topic.into_owned(),
            Self {
                seq: head.seq,
                bytes: Bytes::from(buf),
            },
        ))
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

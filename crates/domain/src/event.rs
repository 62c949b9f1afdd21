//! Events: the envelope every subscriber sees, its type name and its position.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A delivery position. Positions grow in the order events become visible
/// (commit order of the sequencer), and are the SSE `id:`. [`Seq::ZERO`] is
/// "before every event". On the wire and in Postgres it is a plain integer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
pub struct Seq(i64);

impl Seq {
    pub const ZERO: Self = Self(0);
    pub const MAX: Self = Self(i64::MAX);

    pub const fn new(n: i64) -> Self {
        Self(n)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// The position right after this one.
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Seq {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

pub const MAX_EVENT_TYPE_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the type must match [a-z][a-z0-9_.-]{{0,63}}")]
pub struct EventTypeError;

/// An event's type name, `[a-z][a-z0-9_.-]{0,63}`, e.g. `notification.created`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventType(String);

impl EventType {
    pub fn parse(s: &str) -> Result<Self, EventTypeError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_EVENT_TYPE_LEN
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(EventTypeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The one shape of a delivered event: the same in REST listings, SSE frames
/// and on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01936f0e-8f5a-7c2b-9d1e-2f4a5b6c7d8e", "seq": 1234, "topic": "user:alice",
    "type": "notification.created", "data": {"title": "Hello"},
    "created_at": "2026-11-24T10:00:00.123Z"
}))]
pub struct Envelope {
    /// Stable identity of the event (also the idempotency anchor).
    pub id: Uuid,
    /// Delivery position: grows in delivery order; the SSE `id:`.
    #[schema(value_type = i64)]
    pub seq: Seq,
    /// `kind:key`.
    pub topic: String,
    /// Event type, e.g. `notification.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The publisher's payload, any JSON value.
    pub data: serde_json::Value,
    /// When the publisher's transaction wrote the event (RFC 3339, UTC, ms).
    #[serde(with = "millis")]
    pub created_at: DateTime<Utc>,
}

/// RFC 3339 timestamps with millisecond precision and a `Z`, as in the envelope.
pub mod millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// A client's resume position, from `Last-Event-ID` or `?last_event_id=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastEventId {
    /// A well-formed position: resume after it.
    After(Seq),
    /// Present but not a position Herald ever hands out: the client must reset.
    Unparsable,
}

impl LastEventId {
    /// Parses the header or query value. Empty means "no position" (`None`),
    /// which is what a browser sends before it has seen an id.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        let ok = raw.len() <= 19 && raw.bytes().all(|b| b.is_ascii_digit());
        Some(match raw.parse::<Seq>() {
            Ok(seq) if ok => Self::After(seq),
            _ => Self::Unparsable,
        })
    }

    /// Parses a header's raw bytes: like [`parse`](Self::parse), and bytes
    /// that are not UTF-8 are present but unparsable (never "no position":
    /// a client that sent something must learn it was not understood).
    pub fn parse_bytes(raw: &[u8]) -> Option<Self> {
        match std::str::from_utf8(raw) {
            Ok(s) => Self::parse(s),
            Err(_) => Some(Self::Unparsable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn event_type_grammar() {
        for ok in ["a", "notification.created", "order.status_changed", "x-1.y_2"] {
            assert!(EventType::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "1a", ".a", "a b", "a/b", &"a".repeat(65)] {
            assert!(EventType::parse(bad).is_err(), "{bad}");
        }
        assert!(EventType::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn last_event_id_forms() {
        assert_eq!(LastEventId::parse(""), None);
        assert_eq!(LastEventId::parse("  "), None);
        assert_eq!(LastEventId::parse("0"), Some(LastEventId::After(Seq::new(0))));
        assert_eq!(LastEventId::parse("42"), Some(LastEventId::After(Seq::new(42))));
        for bad in ["-1", "+1", "abc", "1.5", "99999999999999999999", "0x10"] {
            assert_eq!(LastEventId::parse(bad), Some(LastEventId::Unparsable), "{bad}");
        }
        assert_eq!(
            LastEventId::parse_bytes(b"\xff\xfe"),
            Some(LastEventId::Unparsable)
        );
        assert_eq!(
            LastEventId::parse_bytes(b"12"),
            Some(LastEventId::After(Seq::new(12)))
        );
        assert_eq!(LastEventId::parse_bytes(b""), None);
    }

    #[test]
    fn envelope_serializes_in_the_documented_shape() {
        let e = Envelope {
            id: Uuid::nil(),
            seq: Seq::new(7),
            topic: "user:alice".into(),
            event_type: "demo.hello".into(),
            data: serde_json::json!({"a": 1}),
            created_at: DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"id":"00000000-0000-0000-0000-000000000000","seq":7,"topic":"user:alice","type":"demo.hello","data":{"a":1},"created_at":"2026-11-24T10:00:00.123Z"}"#
        );
        let back: Envelope = serde_json::from_str(&s).unwrap();
        assert_eq!(back.seq, Seq::new(7));
    }

    proptest! {
        #[test]
        fn last_event_id_never_panics_and_accepts_every_seq(s in "\\PC{0,40}", n in 0i64..i64::MAX) {
            let _ = LastEventId::parse(&s);
            prop_assert_eq!(LastEventId::parse(&n.to_string()), Some(LastEventId::After(Seq::new(n))));
        }

        /// Whatever bytes a client sends as `Last-Event-ID`, the answer is a
        /// position only for 1–19 ASCII digits, "no position" only for
        /// nothing (or blanks), and a reset for everything else.
        #[test]
        fn every_last_event_id_is_a_position_nothing_or_a_reset(raw in proptest::collection::vec(any::<u8>(), 0..24)) {
            let got = LastEventId::parse_bytes(&raw);
            let text = std::str::from_utf8(&raw).map(str::trim);
            match text {
                Ok("") => prop_assert_eq!(got, None),
                Ok(t) if t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()) => {
                    let want = t.parse().map_or(LastEventId::Unparsable, LastEventId::After);
                    prop_assert_eq!(got, Some(want))
                }
                _ => prop_assert_eq!(got, Some(LastEventId::Unparsable)),
            }
        }
    }
}

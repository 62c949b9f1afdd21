//! How the bench's calls map onto nginx + Nchan, the second baseline.
//!
//! Herald and the Node.js baseline speak one contract (`POST /v1/events` with
//! the topic in the body, `GET /v1/stream?topics=…`, envelopes carrying `seq`,
//! `id:` = `seq`, one position for every topic). Nchan speaks its own, which
//! `scripts/bench` configures as close to it as Nchan allows:
//!
//! - **publish**: `POST /v1/events?topic=T` to an `nchan_publisher` location
//!   whose channel id is the `topic` argument; the body (the same JSON the
//!   others get) is stored and delivered verbatim, so `data` carries the topic
//!   and the bench's `n`, and there is no `seq`.
//! - **stream**: `GET /v1/stream?topics=T` with `Accept: text/event-stream` to
//!   an `nchan_subscriber eventsource` location, one channel per topic (one
//!   topic per stream), `event: bench.ev` from `nchan_eventsource_event`, and
//!   `nchan_subscriber_first_message newest` so that a stream opened without
//!   `Last-Event-ID` gets only new events, as on Herald.
//! - **ids**: Nchan's own, `time:tag` (seconds, then a per-second counter of
//!   the channel), ordered by time, then tag: [`event_key`] turns one into a
//!   number that orders the same way, so the checks (no duplicate, nothing
//!   out of order) hold Nchan to the same standard.
//! - **positions**: Nchan's ids are per channel and a stream gets none until
//!   its first event, so the bench asks the publisher location for the
//!   channel's `last message id` (a `GET`, Nchan's channel info) where Herald
//!   uses one global barrier `seq`; a channel without messages yet is `0:0`,
//!   Nchan's "from the oldest message kept". A real `EventSource` on Nchan that
//!   saw no event would have no id to send: the bench gives it the one it
//!   would have needed.
//! - **history**: only what `nchan_message_buffer_length` keeps in shared
//!   memory, so the publish scenario checks Nchan with a stream that is open
//!   while publishing instead of reading everything back afterwards.

use std::io;

use crate::http::KeepAlive;
use crate::sse::{find, parse_int};

/// Where Nchan takes publishes for `topic`.
pub fn publish_path(topic: &str) -> String {
    format!("/v1/events?topic={topic}")
}

/// The topic of a body as `publish::body` writes it (`{"topic":"…",…}`).
pub fn topic_of(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"topic\":\"";
    let at = find(body, KEY, 0)? + KEY.len();
    let len = body[at..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&body[at..at + len]).ok()
}

/// Orders Nchan's `time:tag` ids: seconds in the high bits, the tag in the
/// low 16. Nchan keeps the tag in an `int16_t`, so past 32,767 messages in
/// one second on one channel it turns negative; read as `u16` it still
/// orders correctly up to 65,535 a second (more is beyond this machine).
pub fn event_key(id: &[u8]) -> Option<i64> {
    let colon = id.iter().position(|b| *b == b':')?;
    let time = parse_int(&id[..colon]).filter(|t| *t >= 0)?;
    let tag = parse_int(&id[colon + 1..])?;
    let tag = i16::try_from(tag).ok()? as u16;
    Some((time << 16) | i64::from(tag))
}

/// The id to resume a channel from: the `last message id` of Nchan's
/// channel info, `0:0` (everything it still holds) when the channel has no
/// message or does not exist yet.
pub async fn last_id(conn: &mut KeepAlive, topic: &str) -> io::Result<Vec<u8>> {
    let r = conn.get(&publish_path(topic)).await?;
    match r.status {
        404 => Ok(b"0:0".to_vec()),
        200 => Ok(channel_last_id(&r.body).unwrap_or(b"0:0").to_vec()),
        s => Err(io::Error::other(format!(
            "channel info of {topic}: HTTP {s}: {}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
        ))),
    }
}

/// What Nchan logs when it skips messages for a subscriber (its buffer no
/// longer held the next one): how many times, and the first such line.
pub fn missed_messages(error_log: &std::path::Path) -> Option<(usize, String)> {
    let log = std::fs::read_to_string(error_log).ok()?;
    let mut lines = log.lines().filter(|l| l.contains("Missed message"));
    let first = lines.next()?.to_owned();
    Some((1 + lines.count(), first))
}

/// `last message id: …` of Nchan's plain-text channel info.
fn channel_last_id(info: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"last message id: ";
    let at = find(info, KEY, 0)? + KEY.len();
    let end = info[at..]
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .map_or(info.len(), |n| at + n);
    Some(&info[at..end]).filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_ids_by_time_then_tag() {
        let k = |s: &str| event_key(s.as_bytes()).unwrap();
        assert!(k("1796175359:0") < k("1796175359:1"));
        assert!(k("1796175359:32767") < k("1796175359:-32768"), "int16 wrap");
        assert!(k("1796175359:-1") < k("1796175360:0"));
        assert_eq!(k("0:0"), 0);
        assert_eq!(event_key(b"42"), None);
        assert_eq!(event_key(b"1:x"), None);
        assert_eq!(event_key(b"1:70000"), None);
    }

    #[test]
    fn reads_channel_info_and_bodies() {
        let info = b"queued messages: 3\nlast requested: 0 sec. ago\nactive subscribers: 1\nlast message id: 1796175359:2";
        assert_eq!(channel_last_id(info), Some(&b"1796175359:2"[..]));
        assert_eq!(channel_last_id(b"last message id: 0:0\n"), Some(&b"0:0"[..]));
        assert_eq!(channel_last_id(b"queued messages: 0"), None);
        let body = crate::publish::body("bench:fan-1-0", 7, "");
        assert_eq!(topic_of(&body), Some("bench:fan-1-0"));
        assert_eq!(publish_path("bench:x"), "/v1/events?topic=bench:x");
    }
}

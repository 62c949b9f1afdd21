//! Server-Sent Events framing (WHATWG HTML, "server-sent events").
//!
//! Frames are built once per event and shared by every connection, so these
//! functions write into a caller-provided buffer. `data` of any content frames
//! correctly: every line break (`\n`, `\r`, `\r\n`) starts a new `data:` line,
//! which a conforming parser joins back with `\n`.

use std::fmt::Write;

use crate::Seq;

/// Appends one event frame: `id:`, `event:`, `data:` lines and the blank line.
pub fn write_event(buf: &mut String, id: Option<Seq>, event: Option<&str>, data: &str) {
    if let Some(id) = id {
        let _ = writeln!(buf, "id: {id}");
    }
    if let Some(event) = event {
        buf.push_str("event: ");
        push_single_line(buf, event);
        buf.push('\n');
    }
    let mut rest = data;
    loop {
        let cut = rest.find(['\r', '\n']);
        buf.push_str("data: ");
        match cut {
            Some(i) => {
                buf.push_str(&rest[..i]);
                buf.push('\n');
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                buf.push_str(rest);
                buf.push('\n');
                break;
            }
        }
    }
    buf.push('\n');
}

/// A frame that only moves the client's last-event-id, without dispatching
/// an event (an `id:` field followed by a blank line and no data).
pub fn write_position(buf: &mut String, id: Seq) {
    let _ = write!(buf, "id: {id}\n\n");
}

/// The reconnection-delay hint, in milliseconds.
pub fn write_retry(buf: &mut String, millis: u64) {
    let _ = write!(buf, "retry: {millis}\n\n");
}

/// A comment line (heartbeats). Line breaks in `text` are dropped.
pub fn write_comment(buf: &mut String, text: &str) {
    buf.push(':');
    if !text.is_empty() {
        buf.push(' ');
        push_single_line(buf, text);
    }
    buf.push_str("\n\n");
}

fn push_single_line(buf: &mut String, s: &str) {
    buf.extend(s.chars().filter(|c| *c != '\n' && *c != '\r'));
}

/// A conforming SSE parser, small enough to use in tests and the benchmark:
/// feed it bytes, take complete events.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Vec<u8>,
    data: String,
    event: String,
    id: Option<String>,
    saw_data: bool,
    last_id: String,
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    pub id: String,
    pub event: String,
    pub data: String,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id seen so far (what a browser would send on reconnect).
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<ParsedEvent> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(i) = self.pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A lone `\r` at the end may be the first half of `\r\n`: wait.
            if self.pending[i] == b'\r' && i + 1 == self.pending.len() {
                break;
            }
            let skip = if self.pending[i] == b'\r' && self.pending.get(i + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.pending.drain(..i + skip).take(i).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(ev) = self.line(&line) {
                out.push(ev);
            }
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<ParsedEvent> {
        if line.is_empty() {
            if let Some(id) = self.id.take() {
                self.last_id = id;
            }
            let event = std::mem::take(&mut self.event);
            if !self.saw_data {
                return None;
            }
            self.saw_data = false;
            let mut data = std::mem::take(&mut self.data);
            if data.ends_with('\n') {
                data.pop();
            }
            return Some(ParsedEvent {
                id: self.last_id.clone(),
                event: if event.is_empty() { "message".into() } else { event },
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.saw_data = true;
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_an_event() {
        let mut b = String::new();
        write_event(&mut b, Some(Seq::new(5)), Some("demo.x"), r#"{"a":1}"#);
        assert_eq!(b, "id: 5\nevent: demo.x\ndata: {\"a\":1}\n\n");
    }

    #[test]
    fn position_frame_moves_last_id_without_an_event() {
        let mut b = String::new();
        write_position(&mut b, Seq::new(9));
        write_comment(&mut b, "hb");
        let mut p = Parser::new();
        assert!(p.feed(b.as_bytes()).is_empty());
        assert_eq!(p.last_event_id(), "9");
    }

    proptest! {
        #[test]
        fn any_data_round_trips_through_a_conforming_parser(
            data in "(\\PC|\n|\r|\r\n){0,200}",
            event in "[a-z.]{1,10}",
            id in 0i64..i64::MAX,
            split in 0usize..400,
        ) {
            let mut b = String::new();
            write_event(&mut b, Some(Seq::new(id)), Some(&event), &data);
            let bytes = b.as_bytes();
            let split = split.min(bytes.len());
            let mut p = Parser::new();
            let mut got = p.feed(&bytes[..split]);
            got.extend(p.feed(&bytes[split..]));
            prop_assert_eq!(got.len(), 1);
            let expected = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(&got[0].data, &expected);
            prop_assert_eq!(&got[0].event, &event);
            prop_assert_eq!(got[0].id.clone(), id.to_string());
        }
    }

    #[test]
    fn large_data_round_trips() {
        let data = "x\r\ny\rz\n".repeat(64 * 1024 / 8);
        let mut b = String::new();
        write_event(&mut b, Some(Seq::new(1)), None, &data);
        let got = Parser::new().feed(b.as_bytes());
        assert_eq!(got[0].data, data.replace("\r\n", "\n").replace('\r', "\n"));
    }
}

//! A small streaming SSE parser that does not allocate per event, and a scanner
//! for the few envelope fields the checks need.
//!
//! `herald_domain::sse::Parser` is the reference (it allocates a `String` per
//! line, which at a million deliveries a second would make the load generator
//! cost more than the servers it measures); the tests below hold this parser
//! to the same answers on every split of the input.

/// One dispatched event, borrowed from the parser.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The last event ID after this event (`id:` persists across events).
    pub id: &'a [u8],
    /// `message` when the frame had no `event:` line.
    pub event: &'a [u8],
    pub data: &'a [u8],
}

#[derive(Debug, Default)]
pub struct Parser {
    /// A line not yet terminated, carried over to the next `feed`.
    line: Vec<u8>,
    /// The previous input ended with `\r`: a `\n` first in the next one
    /// belongs to it.
    skip_lf: bool,
    data: Vec<u8>,
    event: Vec<u8>,
    /// The `id:` buffer: it becomes the last event ID only when the frame is
    /// complete (a blank line), as in a browser, so a connection cut in the
    /// middle of a frame resumes before that frame.
    id_buffer: Vec<u8>,
    id: Vec<u8>,
    saw_data: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event ID seen (what a browser sends as `Last-Event-ID`).
    pub fn last_event_id(&self) -> &[u8] {
        &self.id
    }

    /// Feeds bytes; calls `on_event` for every event they complete.
    pub fn feed(&mut self, mut bytes: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        if bytes.is_empty() {
            return;
        }
        if self.skip_lf {
            self.skip_lf = false;
            if bytes.first() == Some(&b'\n') {
                bytes = &bytes[1..];
            }
        }
        while let Some(i) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let mut next = i + 1;
            if bytes[i] == b'\r' {
                match bytes.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.process(&bytes[..i], on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&bytes[..i]);
                self.process(&line, on_event);
                line.clear();
                self.line = line;
            }
            bytes = &bytes[next..];
        }
        self.line.extend_from_slice(bytes);
    }

    fn process(&mut self, line: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        if line.is_empty() {
            if self.id != self.id_buffer {
                self.id.clear();
                self.id.extend_from_slice(&self.id_buffer);
            }
            if self.saw_data {
                if self.data.last() == Some(&b'\n') {
                    self.data.pop();
                }
                let event: &[u8] = if self.event.is_empty() {
                    b"message"
                } else {
                    &self.event
                };
                on_event(Event {
                    id: &self.id,
                    event,
                    data: &self.data,
                });
            }
            self.saw_data = false;
            self.data.clear();
            self.event.clear();
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.saw_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.extend_from_slice(value);
            }
            _ => {}
        }
    }
}

/// Position of `needle` in `hay` at or after `from`.
pub fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= hay.len() || needle.is_empty() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= hay.len() {
        match hay[i..].iter().position(|b| *b == first) {
            Some(off) => {
                i += off;
                if hay.len() - i >= needle.len() && &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
            None => return None,
        }
    }
    None
}

/// Parses an ASCII decimal integer (optional `-`, surrounding blanks allowed).
pub fn parse_int(bytes: &[u8]) -> Option<i64> {
    let s = bytes.trim_ascii();
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some(if neg { -v } else { v })
}

/// The integer value of `"key":` at or after `from`, and where it ends.
fn int_field(json: &[u8], key: &[u8], from: usize) -> Option<(i64, usize)> {
    let at = find(json, key, from)? + key.len();
    let rest = &json[at..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let len = rest[start..]
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'-'))
        .unwrap_or(rest.len() - start);
    Some((parse_int(&rest[start..start + len])?, at + start + len))
}

/// What the checks need from an envelope: `seq`, `topic` and the bench's
/// `data.n`. The bench publishes `{"n": <int>, ...}` and Herald and the Node.js
/// baseline write the envelope compactly with `seq` and `topic` before
/// `data`; Nchan delivers the published body itself, which has no `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    pub seq: Option<i64>,
    pub topic: &'a [u8],
    pub n: i64,
}

pub fn envelope_head(json: &[u8]) -> Option<Head<'_>> {
    // `seq` comes before `data` in an envelope; a `"seq":` inside `data`
    // (the bench never writes one) must not count.
    let data = find(json, b"\"data\":", 0)?;
    let seq = int_field(&json[..data], b"\"seq\":", 0).map(|(seq, _)| seq);
    let t = find(json, b"\"topic\":", 0)? + b"\"topic\":".len();
    let t = t + json[t..].iter().position(|b| *b == b'"')? + 1;
    let t_end = t + json[t..].iter().position(|b| *b == b'"')?;
    let (n, _) = int_field(json, b"\"n\":", data)?;
    Some(Head {
        seq,
        topic: &json[t..t_end],
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::sse as reference;
    use herald_domain::Seq;

    fn corpus() -> String {
        let mut b = String::new();
        reference::write_retry(&mut b, 2000);
        reference::write_position(&mut b, Seq::new(41));
        reference::write_comment(&mut b, "");
        reference::write_event(
            &mut b,
            Some(Seq::new(42)),
            Some("bench.ev"),
            r#"{"seq":42,"data":{"n":0}}"#,
        );
        reference::write_event(&mut b, Some(Seq::new(43)), None, "two\r\nlines\rand\nmore");
        reference::write_comment(&mut b, "heartbeat");
        reference::write_event(&mut b, None, Some("x"), "");
        reference::write_event(
            &mut b,
            Some(Seq::new(44)),
            Some("herald.reset"),
            r#"{"reason":"future"}"#,
        );
        b.push_str("id: 45\r\nevent: crlf\r\ndata: a\r\ndata: b\r\n\r\n");
        b.push_str("id: 46\revent: cr\rdata: c\r\r");
        b.push_str("data\nid\n\n");
        b.push_str("id: 99\ndata: cut");
        b
    }

    fn ours(parts: &[&[u8]]) -> (Vec<(String, String, String)>, String) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for part in parts {
            p.feed(part, &mut |e: Event<'_>| {
                out.push((
                    String::from_utf8_lossy(e.id).into_owned(),
                    String::from_utf8_lossy(e.event).into_owned(),
                    String::from_utf8_lossy(e.data).into_owned(),
                ));
            });
        }
        (out, String::from_utf8_lossy(p.last_event_id()).into_owned())
    }

    fn theirs(bytes: &[u8]) -> (Vec<(String, String, String)>, String) {
        let mut p = reference::Parser::new();
        let got = p.feed(bytes);
        (
            got.into_iter().map(|e| (e.id, e.event, e.data)).collect(),
            p.last_event_id().to_owned(),
        )
    }

    #[test]
    fn agrees_with_the_reference_parser_on_every_split() {
        let text = corpus();
        let bytes = text.as_bytes();
        let expected = theirs(bytes);
        assert_eq!(expected.0.len(), 7, "{expected:?}");
        for i in 0..=bytes.len() {
            assert_eq!(ours(&[&bytes[..i], &bytes[i..]]), expected, "split at {i}");
            for j in i..=bytes.len().min(i + 7) {
                assert_eq!(ours(&[&bytes[..i], &bytes[i..j], &bytes[j..]]), expected);
            }
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(ours(&singles), expected);
    }

    #[test]
    fn reads_the_envelope_head() {
        let json = br#"{"id":"0190","seq":1234,"topic":"bench:fanout-1","type":"bench.ev","data":{"n":17,"pad":"xx"},"created_at":"2026-01-01T00:00:00.000Z"}"#;
        assert_eq!(
            envelope_head(json),
            Some(Head {
                seq: Some(1234),
                topic: b"bench:fanout-1",
                n: 17
            })
        );
        // What Nchan delivers: the published body, no seq.
        assert_eq!(
            envelope_head(br#"{"topic":"bench:a","type":"bench.ev","data":{"n":3}}"#),
            Some(Head {
                seq: None,
                topic: b"bench:a",
                n: 3
            })
        );
        assert_eq!(envelope_head(br#"{"reason":"future"}"#), None);
        assert_eq!(parse_int(b" 42 "), Some(42));
        assert_eq!(parse_int(b"4x"), None);
        assert_eq!(find(b"abcabd", b"abd", 0), Some(3));
        assert_eq!(find(b"abcab", b"abd", 0), None);
    }
}

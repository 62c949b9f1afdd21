//! `GET /v1/stream`'s query parameters are hostile input like any other, on
//! both ways a stream is served: the lean path (a connection whose first
//! request is the stream) and hyper's (a stream asked on a connection that
//! served another request first). A NUL in any of them is a 422 naming it;
//! other control characters and bytes that are not UTF-8 are refused
//! (`topics`: a 4xx naming it; `access_token`: 401) or, for a position, a
//! `herald.reset` — never a 5xx, never a stream that starts as if nothing
//! were wrong.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use herald_test_support::raw::RawConn;
use herald_test_support::{user_token, TestApp};
use serde_json::{json, Value};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Path {
    Lean,
    Hyper,
}

/// The answer to `GET /v1/stream?{query}`: status, and the problem (for a
/// refusal) or the first SSE bytes (for a stream, up to its first event).
async fn ask(addr: SocketAddr, path: Path, query: &str) -> (u16, Value, String) {
    let mut conn = RawConn::connect(addr, None).await;
    if let Path::Hyper = path {
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(
            conn.read_until(WAIT, |b| b.ends_with(b"ok")).await,
            "/healthz answered first"
        );
        conn.received.clear();
    }
    let head = format!(
        "GET /v1/stream?{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    );
    conn.send(head.as_bytes()).await.unwrap();
    // A refusal ends with the connection; a stream goes on: read to its
    // first event.
    conn.read_until(WAIT, |b| {
        let text = String::from_utf8_lossy(b);
        text.rfind("event: ").is_some_and(|i| text[i..].contains("\n\n"))
    })
    .await;
    let status = conn.status().unwrap_or_else(|| {
        panic!(
            "{path:?} ?{query}: no answer: {}",
            String::from_utf8_lossy(&conn.received)
        )
    });
    let text = String::from_utf8_lossy(&conn.received).to_string();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    // The problem object, chunked or not.
    let problem = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if status >= 400 => serde_json::from_str(&body[a..=b]).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, problem, body.to_owned())
}

/// `value` with `bad` (already percent-encoded) spliced into its middle.
fn spliced(value: &str, bad: &str) -> String {
    let mid = value.len() / 2;
    format!("{}{bad}{}", &value[..mid], &value[mid..])
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_stream_query_parameter_refuses_hostile_text_on_both_paths(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.publish_ok("user:alice", 1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while herald_store::history::positions(&app.pool)
        .await
        .unwrap()
        .head
        .get()
        < 1
    {
        assert!(tokio::time::Instant::now() < deadline, "the event was sequenced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token: Value = app
        .http
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(user_token("alice"))
        .json(&json!({"topics": ["user:alice"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let params = [
        ("topics", "user:alice".to_owned()),
        ("last_event_id", "0".to_owned()),
        ("access_token", token),
    ];
    let query = |changed: Option<(usize, &str)>| {
        params
            .iter()
            .enumerate()
            .map(|(i, (name, value))| match changed {
                Some((j, bad)) if i == j => format!("{name}={}", spliced(value, bad)),
                _ => format!("{name}={value}"),
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let addr = app.gateway.addr;
    let mut checked = 0;
    for path in [Path::Lean, Path::Hyper] {
        // The valid request is a stream (so each refusal below is about
        // the change).
        let (status, _, body) = ask(addr, path, &query(None)).await;
        assert_eq!(status, 200, "{path:?}: {body}");
        assert!(body.contains("event: test.event"), "{path:?}: the replay: {body}");

        for (i, (name, _)) in params.iter().enumerate() {
            for (what, bad) in [
                ("a NUL", "%00"),
                ("control characters", "%01%1B%7F"),
                ("bytes that are not UTF-8", "%FF%FE"),
            ] {
                let q = query(Some((i, bad)));
                let (status, problem, body) = ask(addr, path, &q).await;
                let case = format!("{path:?}: {what} in `{name}`");
                assert!(status < 500, "{case}: {status} {body}");
                checked += 1;
                if status >= 400 {
                    assert_eq!(problem["status"], status, "{case}: problem+json: {body}");
                }
                match (*name, what) {
                    (_, "a NUL") => {
                        assert_eq!(status, 422, "{case}: {body}");
                        assert_eq!(problem["errors"][0]["field"], *name, "{case}: {problem}");
                    }
                    ("topics", _) => {
                        assert!((400..500).contains(&status), "{case}: {status} {body}");
                        assert_eq!(problem["errors"][0]["field"], "topics", "{case}: {problem}");
                    }
                    ("access_token", _) => assert_eq!(status, 401, "{case}: {body}"),
                    ("last_event_id", _) => {
                        assert_eq!(status, 200, "{case}: {body}");
                        let first = body
                            .split("\n\n")
                            .find(|frame| frame.contains("event: "))
                            .unwrap_or_default();
                        assert!(
                            first.contains("event: herald.reset") && first.contains("unparsable"),
                            "{case}: a position that is not one resets: {body}"
                        );
                    }
                    _ => unreachable!(),
                }
            }
        }
    }
    assert_eq!(checked, 18);
}

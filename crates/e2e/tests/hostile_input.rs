//! Hostile input, hunted by class: every string that can reach Postgres —
//! JSON values and keys at any depth, path and query parameters — on every
//! operation that takes one, with a NUL in it, or far too long, or nested far
//! too deep. Each must be a 4xx problem naming the field, never a 5xx, never
//! a partial write. And labels of `/metrics` come from a closed set,
//! whatever the request.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use herald_test_support::{service_token, user_token, user_token_with_topics, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Path parameters by name.
type Params = Vec<(&'static str, String)>;

/// One operation with a valid request: method, path template and its
/// parameters, query, body, token.
struct Op {
    method: Method,
    template: &'static str,
    params: Vec<(&'static str, String)>,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    token: String,
}

impl Op {
    fn path(&self, params: &[(&'static str, String)]) -> String {
        let mut path = self.template.to_owned();
        for (name, value) in params {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        path
    }
}

async fn send(
    app: &TestApp,
    op: &Op,
    params: &[(&'static str, String)],
    query: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut url = format!("{}{}", app.api_url(), op.path(params));
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let mut req = reqwest::Client::new()
        .request(op.method.clone(), url)
        .bearer_auth(&op.token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(serde_json::to_vec(b).unwrap());
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn encode_query(query: &[(&'static str, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Rows in every table a request can write.
async fn rows(pool: &PgPool) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "events",
        "notifications",
        "feed_activities",
        "orders",
        "order_timeline",
        "idempotency_keys",
        "due_work",
        "scheduled_deliveries",
    ] {
        out.push(
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(pool)
                .await
                .unwrap(),
        );
    }
    out
}

/// Every variant of `v` with one string changed by `f`, values and keys, at
/// any depth, with the path a validator should name (a key is named by its
/// object's path, `body` at the top).
fn variants(v: &Value, path: &str, f: &dyn Fn(&str) -> String) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    match v {
        Value::String(s) => out.push((path.to_owned(), Value::String(f(s)))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                for (p, changed) in variants(item, &format!("{path}[{i}]"), f) {
                    let mut copy = items.clone();
                    copy[i] = changed;
                    out.push((p, Value::Array(copy)));
                }
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                for (p, changed) in variants(item, &child, f) {
                    let mut copy = map.clone();
                    copy.insert(k.clone(), changed);
                    out.push((p, Value::Object(copy)));
                }
                let mut renamed = map.clone();
                let moved = renamed.remove(k).unwrap();
                renamed.insert(f(k), moved);
                let named = if path.is_empty() {
                    "body".to_owned()
                } else {
                    path.to_owned()
                };
                out.push((named, Value::Object(renamed)));
            }
        }
        _ => {}
    }
    out
}

fn nul(s: &str) -> String {
    let mid = s.len() / 2;
    let mid = (0..=mid).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    format!("{}\u{0}{}", &s[..mid], &s[mid..])
}

async fn operations(app: &TestApp) -> Vec<Op> {
    let svc = service_token();
    let alice = user_token("alice");
    let data = json!({"msg": "hi", "nested": {"list": ["a", {"k": "v"}]}});
    // Things the reads and changes need to exist.
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/v1/orders/A-1", app.api_url()))
        .bearer_auth(&svc)
        .json(&json!({"customer_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let sent: Value = http
        .post(format!("{}/v1/notifications", app.api_url()))
        .bearer_auth(&svc)
        .json(&json!({"recipients": ["alice"], "category": "comment", "title": "Hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = sent["notifications"][0]["id"].as_str().unwrap().to_owned();
    let event = json!({"topic": "user:alice", "type": "demo.hello", "data": data});
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut scheduled_event = event.clone();
    scheduled_event["deliver_at"] = json!(later);
    let scheduled_notification = json!({"recipients": ["alice"], "category": "comment", "title": "T",
        "body": "B", "data": data, "group_key": "doc:1", "actor": "Maya", "deliver_at": later});
    let schedule = |path: &'static str, body: Value| {
        let http = http.clone();
        let url = format!("{}{path}", app.api_url());
        let svc = svc.clone();
        async move {
            let v: Value = http
                .post(url)
                .bearer_auth(&svc)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let scheduled_event_id = schedule("/v1/events", scheduled_event.clone()).await;
    let scheduled_notification_id = schedule("/v1/notifications", scheduled_notification.clone()).await;
    vec![
        Op {
            method: Method::POST,
            template: "/v1/events",
            params: vec![],
            query: vec![],
            body: Some(event.clone()),
            token: svc.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/events",
            params: vec![],
            query: vec![],
            body: Some(scheduled_event),
            token: svc.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/notifications",
            params: vec![],
            query: vec![],
            body: Some(scheduled_notification),
            token: svc.clone(),
        },
        Op {
            method: Method::DELETE,
            template: "/v1/events/{id}",
            params: vec![("id", scheduled_event_id)],
            query: vec![],
            body: None,
            token: svc.clone(),
        },
        Op {
            method: Method::DELETE,
            template: "/v1/notifications/{id}",
            params: vec![("id", scheduled_notification_id)],
            query: vec![],
            body: None,
            token: svc.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/events/batch",
            params: vec![],
            query: vec![],
            body: Some(json!({"events": [event.clone(), event]})),
            token: svc.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/notifications",
            params: vec![],
            query: vec![],
            body: Some(
                json!({"recipients": ["alice", "bob"], "category": "comment", "title": "T",
                "body": "B", "action_url": "https://app.example.com/a", "data": data,
                "group_key": "doc:1", "actor": "Maya"}),
            ),
            token: svc.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/feeds/{feed}/activities",
            params: vec![("feed", "team".into())],
            query: vec![],
            body: Some(
                json!({"actor": "user:alice", "verb": "commented", "object": "post:1",
                "target": "project:1", "foreign_id": "f-1", "data": data}),
            ),
            token: svc.clone(),
        },
        Op {
            method: Method::PUT,
            template: "/v1/orders/{order_id}",
            params: vec![("order_id", "B-2".into())],
            query: vec![],
            body: Some(json!({"customer_id": "alice", "data": data})),
            token: svc.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/orders/{order_id}/status",
            params: vec![("order_id", "A-1".into())],
            query: vec![],
            body: Some(json!({"status": "paid", "note": "card", "data": data})),
            token: svc.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/stream-tokens",
            params: vec![],
            query: vec![],
            body: Some(json!({"topics": ["user:alice"]})),
            token: alice.clone(),
        },
        Op {
            method: Method::GET,
            template: "/v1/me/notifications",
            params: vec![],
            query: vec![
                ("status", "all".into()),
                ("category", "comment".into()),
                ("limit", "10".into()),
            ],
            body: None,
            token: alice.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/me/notifications/{id}/read",
            params: vec![("id", id.clone())],
            query: vec![],
            body: None,
            token: alice.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/me/notifications/{id}/snooze",
            params: vec![("id", id.clone())],
            query: vec![],
            body: Some(json!({"until": chrono::Utc::now() + chrono::Duration::hours(1)})),
            token: alice.clone(),
        },
        Op {
            method: Method::POST,
            template: "/v1/me/notifications/{id}/unsnooze",
            params: vec![("id", id)],
            query: vec![],
            body: None,
            token: alice.clone(),
        },
        Op {
            method: Method::GET,
            template: "/v1/feeds/{feed}/activities",
            params: vec![("feed", "team".into())],
            query: vec![("limit", "10".into())],
            body: None,
            token: user_token_with_topics("alice", &["feed:*"]),
        },
        Op {
            method: Method::GET,
            template: "/v1/orders/{order_id}",
            params: vec![("order_id", "A-1".into())],
            query: vec![],
            body: None,
            token: alice.clone(),
        },
        Op {
            method: Method::GET,
            template: "/v1/topics/{topic}/events",
            params: vec![("topic", "user:alice".into())],
            query: vec![("after", "0".into()), ("limit", "10".into())],
            body: None,
            token: alice,
        },
    ]
}

/// A NUL in any string of any operation — a JSON value or key at any depth,
/// a path parameter, a query parameter — is a 422 naming it, and writes
/// nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn every_stored_string_rejects_nul(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let ops = operations(&app).await;
    let mut checked = 0;
    for op in &ops {
        let query = encode_query(&op.query);
        // The valid request works (so a refusal below is about the NUL).
        let (status, body) = send(&app, op, &op.params, &query, op.body.as_ref()).await;
        assert!(status < 300, "{} {}: {status} {body}", op.method, op.template);

        let mut cases: Vec<(String, Params, String, Option<Value>)> = Vec::new();
        if let Some(b) = &op.body {
            for (field, changed) in variants(b, "", &nul) {
                cases.push((field, op.params.clone(), query.clone(), Some(changed)));
            }
        }
        for (i, (name, value)) in op.params.iter().enumerate() {
            let mut params = op.params.clone();
            params[i].1 = urlencode(&nul(value));
            cases.push((name.to_string(), params, query.clone(), op.body.clone()));
        }
        for (i, (name, value)) in op.query.iter().enumerate() {
            let mut q = op.query.clone();
            q[i].1 = nul(value);
            cases.push((
                name.to_string(),
                op.params.clone(),
                encode_query(&q),
                op.body.clone(),
            ));
        }
        for (field, params, query, body) in cases {
            let before = rows(&pool).await;
            let (status, problem) = send(&app, op, &params, &query, body.as_ref()).await;
            let what = format!("{} {} with a NUL in `{field}`", op.method, op.template);
            assert_eq!(status, 422, "{what}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field.as_str(), "{what}: {problem}");
            assert_eq!(rows(&pool).await, before, "{what}: nothing written");
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} cases");
}

/// Strings far too long and values nested far too deep, in every string of
/// every body: a 4xx (the field's own limit, the data limit, the body
/// limit or malformed JSON), never a 5xx, never a partial write.
#[sqlx::test(migrations = "../../migrations")]
async fn every_stored_string_has_a_bound_and_deep_nesting_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let ops = operations(&app).await;
    let long = |_: &str| "é".repeat(70_000);
    for op in &ops {
        let query = encode_query(&op.query);
        let mut cases: Vec<(String, Params, Option<Value>)> = Vec::new();
        if let Some(b) = &op.body {
            for (field, changed) in variants(b, "", &long) {
                cases.push((field, op.params.clone(), Some(changed)));
            }
            // 200 levels deep: beyond any JSON parser's limit.
            let mut deep = json!("x");
            for _ in 0..200 {
                deep = json!({ "d": deep });
            }
            if let Value::Object(mut map) = b.clone() {
                if map.contains_key("data") {
                    map.insert("data".into(), deep);
                    cases.push(("data (deep)".into(), op.params.clone(), Some(Value::Object(map))));
                }
            }
        }
        for (i, (name, _)) in op.params.iter().enumerate() {
            let mut params = op.params.clone();
            params[i].1 = "x".repeat(4000);
            cases.push((name.to_string(), params, op.body.clone()));
        }
        for (field, params, body) in cases {
            let before = rows(&pool).await;
            let (status, problem) = send(&app, op, &params, &query, body.as_ref()).await;
            let what = format!(
                "{} {} with `{field}` too long or too deep",
                op.method, op.template
            );
            assert!((400..500).contains(&status), "{what}: {status} {problem}");
            assert_eq!(problem["status"], status, "{what}: problem+json");
            assert_eq!(rows(&pool).await, before, "{what}: nothing written");
        }
    }
}

/// Labels drawn from requests come from a closed set: hundreds of made-up
/// methods and paths leave `/metrics` the size it was.
#[sqlx::test(migrations = "../../migrations")]
async fn every_metric_label_comes_from_a_closed_set(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let http = reqwest::Client::new();
    let hit = |method: Method, path: String| {
        let http = http.clone();
        let url = format!("{}{path}", app.api_url());
        async move { http.request(method, url).send().await.unwrap().status().as_u16() }
    };
    // Every route and status once, so the series that can exist do.
    for i in 0..3 {
        hit(Method::GET, format!("/no/such/{i}")).await;
        hit(Method::from_bytes(b"BREW").unwrap(), "/v1/events".into()).await;
    }
    herald_test_support::metrics(&app.api_url()).await;
    let before_text = herald_test_support::metrics(&app.api_url()).await;
    let before = before_text.len();
    for i in 0..300 {
        let method = Method::from_bytes(format!("M{}{}", "X".repeat(2000), i).as_bytes()).unwrap();
        let status = hit(method, format!("/v1/events?{i}")).await;
        assert!((400..500).contains(&status));
        hit(Method::GET, format!("/made/up/{}/{i}", "p".repeat(500))).await;
    }
    let after = herald_test_support::metrics(&app.api_url()).await;
    assert!(
        after.len() <= before + 256,
        "/metrics grew from {before} to {} bytes:\n{before_text}\n---\n{after}",
        after.len()
    );
    assert!(
        after.contains("method=\"other\""),
        "made-up methods count as `other`"
    );
}

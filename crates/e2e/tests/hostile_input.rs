//! Hostile input, hunted by class: every string that can reach Postgres —
//! JSON values and keys at any depth, path and query parameters, the
//! `Idempotency-Key` header — on every operation that takes one, with a NUL
//! in it, other control characters, a lone surrogate, far too long, or
//! nested far too deep. Each must be a 4xx problem naming the field (or, for
//! a string Postgres can store, stored), never a 5xx, never a partial write.
//! The operations are those of `openapi/openapi.json`: a test fails when the
//! document has an operation, a parameter or a body field the list leaves
//! out. And labels of `/metrics` come from a closed set, whatever the
//! request.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};

use herald_platform::config::Secret;
use herald_test_support::{
    redis_url, service_token, settings, test_key, user_token, user_token_with_topics, TestApp,
};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Path parameters by name.
type Params = Vec<(&'static str, String)>;

/// Which listener serves an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Api,
    Gateway,
}

/// One operation with a valid request: method, path template and its
/// parameters, query, body, token (none: empty), and the listener.
struct Op {
    method: Method,
    template: &'static str,
    params: Vec<(&'static str, String)>,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    token: String,
    service: Service,
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
    send_raw(
        app,
        op,
        params,
        query,
        body.map(|b| serde_json::to_vec(b).unwrap()),
        &[],
    )
    .await
}

/// Sends `op` with this body's bytes and these extra headers. An open
/// stream's status is all that is read of it.
async fn send_raw(
    app: &TestApp,
    op: &Op,
    params: &[(&'static str, String)],
    query: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, reqwest::header::HeaderValue)],
) -> (u16, Value) {
    let base = match op.service {
        Service::Api => app.api_url(),
        Service::Gateway => app.gateway_url(),
    };
    let mut url = format!("{base}{}", op.path(params));
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let mut req = reqwest::Client::new().request(op.method.clone(), url);
    if !op.token.is_empty() {
        req = req.bearer_auth(&op.token);
    }
    for (name, value) in headers {
        req = req.header(*name, value.clone());
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let streaming = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return (status, Value::Null); // dropping it closes the stream
    }
    (status, r.json().await.unwrap_or(Value::Null))
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

/// The contents of every table a request can write, as a fingerprint per
/// table: an insert, a delete and an update all change it. Of `events`,
/// what the worker does not change (it sequences them meanwhile).
async fn rows(pool: &PgPool) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (table, columns) in [
        ("events", "id, topic, type, data"),
        ("notifications", "*"),
        ("feed_activities", "*"),
        ("orders", "*"),
        ("order_timeline", "*"),
        ("idempotency_keys", "*"),
        ("due_work", "*"),
        ("scheduled_deliveries", "*"),
        ("categories", "*"),
        ("preferences", "*"),
        ("push_subscriptions", "*"),
        ("push_deliveries", "*"),
    ] {
        let fingerprint: String = sqlx::query_scalar(&format!(
            "SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '')
               FROM (SELECT {columns} FROM {table}) t"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        out.push((table, fingerprint));
    }
    out
}

/// Web Push on, so the push-subscription operations are served: pushes may
/// go to loopback (none is sent: no notification goes to the user with a
/// subscription).
async fn spawn(pool: PgPool) -> TestApp {
    let mut s = settings(&redis_url());
    s.push.vapid_private_key = Some(Secret::new(test_key("ec-private")));
    s.push.vapid_subject = Some("mailto:ops@herald.test".into());
    s.push.allowed_hosts = "127.0.0.1".into();
    s.push.allow_insecure = true;
    TestApp::spawn_with(pool, s).await
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

/// An operation on the API with no path or query parameters.
fn op(method: Method, template: &'static str, body: Option<Value>, token: &str) -> Op {
    Op {
        method,
        template,
        params: vec![],
        query: vec![],
        body,
        token: token.to_owned(),
        service: Service::Api,
    }
}

fn owned(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Every operation that takes a string, each with a valid request (several
/// for one operation whose requests take different paths). Every operation,
/// parameter and body field of the OpenAPI document is in it
/// (`every_operation_of_the_openapi_document_is_attacked`).
async fn operations(app: &TestApp) -> Vec<Op> {
    let svc = service_token();
    let alice = user_token("alice");
    // Carol has the push subscriptions; nothing is ever sent to her.
    let carol = user_token("carol");
    let feeds = user_token_with_topics("alice", &["feed:*"]);
    let data = json!({"msg": "hi", "nested": {"list": ["a", {"k": "v"}]}});
    // Things the reads and changes need to exist.
    let http = reqwest::Client::new();
    let call = |method: Method, path: String, token: &str, body: Value| {
        let req = http
            .request(method, format!("{}{path}", app.api_url()))
            .bearer_auth(token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json::<Value>().await.unwrap_or(Value::Null)
        }
    };
    let get = |path: String, token: &str| {
        let req = http.get(format!("{}{path}", app.api_url())).bearer_auth(token);
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    call(
        Method::PUT,
        "/v1/orders/A-1".into(),
        &svc,
        json!({"customer_id": "alice"}),
    )
    .await;
    let mut ids = Vec::new();
    for title in ["Hi", "Archive me"] {
        let sent = call(
            Method::POST,
            "/v1/notifications".into(),
            &svc,
            json!({"recipients": ["alice"], "category": "comment", "title": title}),
        )
        .await;
        ids.push(sent["notifications"][0]["id"].as_str().unwrap().to_owned());
    }
    let (id, archived_id) = (ids[0].clone(), ids[1].clone());
    let inbox_cursor = get("/v1/me/notifications?limit=1".into(), &alice).await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..2 {
        call(
            Method::POST,
            "/v1/feeds/team/activities".into(),
            &svc,
            json!({"actor": "user:alice", "verb": "commented", "object": format!("post:{n}")}),
        )
        .await;
    }
    let feed_cursor = get("/v1/feeds/team/activities?limit=1".into(), &feeds).await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream_token = call(
        Method::POST,
        "/v1/stream-tokens".into(),
        &alice,
        json!({"topics": ["user:alice"]}),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A real P-256 point for the subscription's key: the VAPID public key.
    let p256dh = get("/v1/push/vapid-public-key".into(), &alice).await["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let subscription = json!({"endpoint": "http://127.0.0.1:9/push/carol", "expirationTime": null,
        "keys": {"p256dh": p256dh, "auth": "AAECAwQFBgcICQoLDA0ODw"}});

    let event = json!({"topic": "user:alice", "type": "demo.hello", "data": data});
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut scheduled_event = event.clone();
    scheduled_event["deliver_at"] = json!(later);
    let scheduled_notification = json!({"recipients": ["alice"], "category": "comment", "title": "T",
        "body": "B", "data": data, "group_key": "doc:1", "actor": "Maya", "deliver_at": later});
    let scheduled_event_id = call(Method::POST, "/v1/events".into(), &svc, scheduled_event.clone()).await
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let scheduled_notification_id = call(
        Method::POST,
        "/v1/notifications".into(),
        &svc,
        scheduled_notification.clone(),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let with = |mut o: Op, params: &[(&'static str, &str)], query: &[(&'static str, &str)]| {
        o.params = owned(params);
        o.query = owned(query);
        o
    };
    vec![
        op(Method::POST, "/v1/events", Some(event.clone()), &svc),
        op(Method::POST, "/v1/events", Some(scheduled_event), &svc),
        op(
            Method::POST,
            "/v1/notifications",
            Some(scheduled_notification),
            &svc,
        ),
        with(
            op(Method::DELETE, "/v1/events/{id}", None, &svc),
            &[("id", &scheduled_event_id)],
            &[],
        ),
        with(
            op(Method::DELETE, "/v1/notifications/{id}", None, &svc),
            &[("id", &scheduled_notification_id)],
            &[],
        ),
        op(
            Method::POST,
            "/v1/events/batch",
            Some(json!({"events": [event.clone(), event]})),
            &svc,
        ),
        op(
            Method::POST,
            "/v1/notifications",
            Some(
                json!({"recipients": ["alice", "bob"], "category": "comment", "title": "T",
                "body": "B", "action_url": "https://app.example.com/a", "data": data,
                "group_key": "doc:1", "actor": "Maya", "expires_at": later}),
            ),
            &svc,
        ),
        with(
            op(
                Method::POST,
                "/v1/feeds/{feed}/activities",
                Some(
                    json!({"actor": "user:alice", "verb": "commented", "object": "post:1",
                    "target": "project:1", "foreign_id": "f-1", "data": data}),
                ),
                &svc,
            ),
            &[("feed", "team")],
            &[],
        ),
        with(
            op(
                Method::PUT,
                "/v1/orders/{order_id}",
                Some(json!({"customer_id": "alice", "status": "placed", "data": data})),
                &svc,
            ),
            &[("order_id", "B-2")],
            &[],
        ),
        with(
            op(
                Method::POST,
                "/v1/orders/{order_id}/status",
                Some(json!({"status": "paid", "note": "card", "data": data})),
                &svc,
            ),
            &[("order_id", "A-1")],
            &[],
        ),
        op(
            Method::POST,
            "/v1/stream-tokens",
            Some(json!({"topics": ["user:alice"]})),
            &alice,
        ),
        with(
            op(Method::GET, "/v1/me/notifications", None, &alice),
            &[],
            &[
                ("status", "all"),
                ("category", "comment"),
                ("limit", "10"),
                ("cursor", &inbox_cursor),
            ],
        ),
        with(
            op(Method::POST, "/v1/me/notifications/{id}/read", None, &alice),
            &[("id", &id)],
            &[],
        ),
        with(
            op(Method::POST, "/v1/me/notifications/{id}/unread", None, &alice),
            &[("id", &id)],
            &[],
        ),
        with(
            op(
                Method::POST,
                "/v1/me/notifications/{id}/snooze",
                Some(json!({"until": later})),
                &alice,
            ),
            &[("id", &id)],
            &[],
        ),
        with(
            op(Method::POST, "/v1/me/notifications/{id}/unsnooze", None, &alice),
            &[("id", &id)],
            &[],
        ),
        with(
            op(Method::POST, "/v1/me/notifications/{id}/archive", None, &alice),
            &[("id", &archived_id)],
            &[],
        ),
        with(
            op(Method::GET, "/v1/feeds/{feed}/activities", None, &feeds),
            &[("feed", "team")],
            &[("limit", "10"), ("cursor", &feed_cursor)],
        ),
        with(
            op(Method::GET, "/v1/orders/{order_id}", None, &alice),
            &[("order_id", "A-1")],
            &[],
        ),
        with(
            op(Method::GET, "/v1/topics/{topic}/events", None, &alice),
            &[("topic", "user:alice")],
            &[("after", "0"), ("limit", "10")],
        ),
        with(
            op(Method::GET, "/v1/categories/{category}", None, &alice),
            &[("category", "comment")],
            &[],
        ),
        with(
            op(
                Method::PUT,
                "/v1/categories/{category}",
                Some(json!({"in_app": true, "web_push": false, "required": false,
                    "push_delay": "30s", "group_window": "1h"})),
                &svc,
            ),
            &[("category", "digest")],
            &[],
        ),
        op(
            Method::PUT,
            "/v1/me/preferences",
            Some(json!({"categories": {"comment": {"in_app": true, "web_push": false}}})),
            &alice,
        ),
        op(
            Method::POST,
            "/v1/me/push-subscriptions",
            Some(subscription),
            &carol,
        ),
        op(
            Method::DELETE,
            "/v1/me/push-subscriptions",
            Some(json!({"endpoint": "http://127.0.0.1:9/push/gone"})),
            &carol,
        ),
        Op {
            method: Method::GET,
            template: "/v1/stream",
            params: vec![],
            query: owned(&[
                ("topics", "user:alice"),
                ("last_event_id", "0"),
                ("access_token", &stream_token),
            ]),
            body: None,
            token: String::new(),
            service: Service::Gateway,
        },
    ]
}

/// Operations of the OpenAPI document that take no string from the caller
/// (no parameter, no body): nothing of theirs reaches Postgres.
const NO_STRING_INPUT: &[(&str, &str)] = &[
    ("GET", "/v1/me/notifications/counts"),
    ("POST", "/v1/me/notifications/read-all"),
    ("POST", "/v1/me/notifications/seen"),
    ("GET", "/v1/me/preferences"),
    ("GET", "/v1/me/push-subscriptions"),
    ("GET", "/v1/push/vapid-public-key"),
];

/// Header parameters of the document, and the test that attacks each.
const HEADERS: &[(&str, &str)] = &[
    (
        "Idempotency-Key",
        "every_idempotency_key_that_is_not_visible_ascii_is_refused",
    ),
    (
        "Last-Event-ID",
        "crates/gateway/tests/history_completeness.rs::every_unparsable_last_event_id_resets",
    ),
];

fn openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `schema` with its `$ref` followed.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(doc, &doc["components"]["schemas"][r.rsplit('/').next().unwrap()]),
        None => schema,
    }
}

/// Every property path of a request schema (`keys.p256dh`, `events[].topic`),
/// through objects with properties and arrays of them.
fn schema_fields(doc: &Value, schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let schema = resolve(doc, schema);
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.insert(path.clone());
            schema_fields(doc, sub, &path, out);
        }
    }
    if schema["items"].is_object() {
        schema_fields(doc, &schema["items"], &format!("{prefix}[]"), out);
    }
}

/// Every field path a request body holds, in the same notation.
fn body_fields(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, item) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                body_fields(item, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                body_fields(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// The list above is the OpenAPI document's: every operation in it is
/// listed (or takes no string), with every path and query parameter and
/// every body field the document gives it; every header parameter has its
/// test. A new operation, parameter or field fails here until it is
/// attacked too.
#[sqlx::test(migrations = "../../migrations")]
async fn every_operation_of_the_openapi_document_is_attacked(pool: PgPool) {
    let app = spawn(pool).await;
    let ops = operations(&app).await;
    let doc = openapi();
    let mut listed: BTreeMap<(String, String), Vec<&Op>> = BTreeMap::new();
    for o in &ops {
        listed
            .entry((o.method.to_string(), o.template.to_owned()))
            .or_default()
            .push(o);
    }
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            const METHODS: [&str; 8] = [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ];
            if !METHODS.contains(&method.as_str()) {
                continue; // `servers`, `parameters` and the like
            }
            let method = method.to_uppercase();
            let what = format!("{method} {path}");
            documented += 1;
            // Parameters of the path item apply to each of its operations.
            let mut params = item["parameters"].as_array().cloned().unwrap_or_default();
            params.extend(operation["parameters"].as_array().cloned().unwrap_or_default());
            if NO_STRING_INPUT.contains(&(method.as_str(), path.as_str())) {
                assert!(
                    params.is_empty() && operation["requestBody"].is_null(),
                    "{what} takes input now: add it to `operations`"
                );
                continue;
            }
            let Some(mine) = listed.remove(&(method.clone(), path.clone())) else {
                panic!("{what} is in the OpenAPI document but not in `operations`");
            };
            for p in &params {
                let name = p["name"].as_str().unwrap();
                let covered = match p["in"].as_str().unwrap() {
                    "path" => mine.iter().all(|o| o.params.iter().any(|(n, _)| *n == name)),
                    "query" => mine.iter().any(|o| o.query.iter().any(|(n, _)| *n == name)),
                    "header" => HEADERS.iter().any(|(h, _)| *h == name),
                    other => panic!("{what}: a parameter in {other}"),
                };
                assert!(covered, "{what}: parameter `{name}` is not attacked");
            }
            let body = &operation["requestBody"]["content"]["application/json"]["schema"];
            assert_eq!(
                !body.is_null(),
                mine.iter().all(|o| o.body.is_some()),
                "{what}: a body where the document has one"
            );
            if !body.is_null() {
                let mut want = BTreeSet::new();
                schema_fields(&doc, body, "", &mut want);
                let mut have = BTreeSet::new();
                for o in &mine {
                    body_fields(o.body.as_ref().unwrap(), "", &mut have);
                }
                let missing: Vec<_> = want.difference(&have).collect();
                assert!(
                    missing.is_empty(),
                    "{what}: body fields not attacked: {missing:?}"
                );
            }
        }
    }
    assert!(
        listed.is_empty(),
        "operations not in the document: {:?}",
        listed.keys().collect::<Vec<_>>()
    );
    assert!(documented > 25, "read the document: {documented} operations");
}

/// A NUL in any string of any operation — a JSON value or key at any depth,
/// a path parameter, a query parameter — is a 422 naming it, and writes
/// nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn every_stored_string_rejects_nul(pool: PgPool) {
    let app = spawn(pool.clone()).await;
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
    assert!(checked > 180, "only {checked} cases");
}

/// Every variant of `v` with one leaf (a string, number, boolean or null,
/// at any depth) replaced by `with`, and the leaf's path.
fn leaf_variants(v: &Value, path: &str, with: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                for (p, changed) in leaf_variants(item, &format!("{path}[{i}]"), with) {
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
                for (p, changed) in leaf_variants(item, &child, with) {
                    let mut copy = map.clone();
                    copy.insert(k.clone(), changed);
                    out.push((p, Value::Object(copy)));
                }
            }
        }
        _ => out.push((path.to_owned(), with.clone())),
    }
    out
}

/// A value nested `levels` deep, arrays and objects mixed.
fn deep(levels: usize) -> Value {
    let mut v = json!("x");
    for i in 0..levels {
        v = if i % 3 == 0 { json!([v]) } else { json!({ "d": v }) };
    }
    v
}

/// Strings far too long in every string of every body, key or value, and
/// in every path and query parameter; values nested far too deep (129 and
/// 300 levels) in place of every value of every body: a 4xx (the field's
/// own limit, the data limit, the body limit or malformed JSON), never a
/// 5xx, never a partial write. A query parameter too long for what it names
/// may also be a position that resets a stream, answered 200.
#[sqlx::test(migrations = "../../migrations")]
async fn every_stored_string_has_a_bound_and_deep_nesting_is_refused(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let ops = operations(&app).await;
    let long = |_: &str| "é".repeat(70_000);
    let mut checked = 0;
    for op in &ops {
        let query = encode_query(&op.query);
        // (field, params, query, body, whether a 2xx may answer)
        let mut cases: Vec<(String, Params, String, Option<Value>, bool)> = Vec::new();
        if let Some(b) = &op.body {
            for (field, changed) in variants(b, "", &long) {
                cases.push((field, op.params.clone(), query.clone(), Some(changed), false));
            }
            for levels in [129, 300] {
                for (field, changed) in leaf_variants(b, "", &deep(levels)) {
                    let field = format!("{field} ({levels} deep)");
                    cases.push((field, op.params.clone(), query.clone(), Some(changed), false));
                }
            }
        }
        for (i, (name, _)) in op.params.iter().enumerate() {
            let mut params = op.params.clone();
            params[i].1 = "x".repeat(4000);
            cases.push((name.to_string(), params, query.clone(), op.body.clone(), false));
        }
        for (i, (name, _)) in op.query.iter().enumerate() {
            let mut q = op.query.clone();
            q[i].1 = "x".repeat(4000);
            let reset = op.service == Service::Gateway && *name == "last_event_id";
            cases.push((
                name.to_string(),
                op.params.clone(),
                encode_query(&q),
                op.body.clone(),
                reset,
            ));
        }
        for (field, params, query, body, may_pass) in cases {
            let before = rows(&pool).await;
            let (status, problem) = send(&app, op, &params, &query, body.as_ref()).await;
            let what = format!(
                "{} {} with `{field}` too long or too deep",
                op.method, op.template
            );
            if may_pass && status == 200 {
                continue;
            }
            assert!((400..500).contains(&status), "{what}: {status} {problem}");
            assert_eq!(problem["status"], status, "{what}: problem+json");
            assert_eq!(rows(&pool).await, before, "{what}: nothing written");
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} cases");
}

/// One changed request: what was changed, the field it is in, and the
/// request.
struct Case {
    what: &'static str,
    field: String,
    params: Params,
    query: String,
    body: Option<Vec<u8>>,
}

/// What a client may send in place of a string besides a NUL: other control
/// characters (C0, ESC, DEL, C1), a lone surrogate (`\ud800` in JSON), and
/// in a URL bytes that are not UTF-8 at all. Each is stored (Postgres can
/// store every one but NUL) or refused with a 4xx problem — one that names
/// fields names this one, a part of it, or the changed key — and never a
/// 5xx; a refusal writes nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn every_string_with_other_hostile_text_is_stored_or_refused_never_a_5xx(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let ops = operations(&app).await;
    /// Stands for a lone surrogate until the body is serialized.
    const MARK: char = '\u{e000}';
    let control = |s: &str| {
        let mid = (0..=s.len() / 2)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}\u{1}\u{1b}\u{7f}\u{9f}{}", &s[..mid], &s[mid..])
    };
    let surrogate = |s: &str| format!("{s}{MARK}");
    let lone = |bytes: Vec<u8>| {
        let mark = MARK.to_string();
        String::from_utf8(bytes)
            .unwrap()
            .replace(&mark, "\\ud800")
            .into_bytes()
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for op in &ops {
        let query = encode_query(&op.query);
        let (status, body) = send(&app, op, &op.params, &query, op.body.as_ref()).await;
        assert!(status < 300, "{} {}: {status} {body}", op.method, op.template);
        let plain = op.body.as_ref().map(|b| serde_json::to_vec(b).unwrap());

        let mut cases = Vec::new();
        let case =
            |what: &'static str, field: String, params: Params, query: String, body: Option<Vec<u8>>| Case {
                what,
                field,
                params,
                query,
                body,
            };
        if let Some(b) = &op.body {
            for (field, changed) in variants(b, "", &control) {
                let bytes = serde_json::to_vec(&changed).unwrap();
                cases.push(case(
                    "control characters",
                    field,
                    op.params.clone(),
                    query.clone(),
                    Some(bytes),
                ));
            }
            for (field, changed) in variants(b, "", &surrogate) {
                let bytes = lone(serde_json::to_vec(&changed).unwrap());
                cases.push(case(
                    "a lone surrogate",
                    field,
                    op.params.clone(),
                    query.clone(),
                    Some(bytes),
                ));
            }
        }
        let url_forms = [
            ("control characters", "%01%1B%7F%C2%9F"),
            ("bytes that are not UTF-8", "%FF%FE"),
            ("an encoded surrogate", "%ED%A0%80"),
        ];
        for (what, bad) in url_forms {
            for (i, (name, value)) in op.params.iter().enumerate() {
                let mut params = op.params.clone();
                params[i].1 = format!("{}{bad}", urlencode(value));
                cases.push(case(what, name.to_string(), params, query.clone(), plain.clone()));
            }
            for (i, (name, value)) in op.query.iter().enumerate() {
                let mut q: Vec<String> = op
                    .query
                    .iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect();
                q[i] = format!("{name}={}{bad}", urlencode(value));
                cases.push(case(
                    what,
                    name.to_string(),
                    op.params.clone(),
                    q.join("&"),
                    plain.clone(),
                ));
            }
        }
        for Case {
            what,
            field,
            params,
            query,
            body,
        } in cases
        {
            let before = rows(&pool).await;
            let (status, problem) = send_raw(&app, op, &params, &query, body, &[]).await;
            let what = format!("{} {} with {what} in `{field}`", op.method, op.template);
            checked += 1;
            if status >= 500 {
                failures.push(format!("{what}: {status} {problem}"));
                continue;
            }
            if status >= 400 {
                if problem["status"] != status {
                    failures.push(format!("{what}: {status}, not problem+json: {problem}"));
                }
                if rows(&pool).await != before {
                    failures.push(format!(
                        "{what}: refused with {status}, yet something was written"
                    ));
                }
            }
            if status == 422 || problem["errors"].is_array() {
                // The field, a part of it, or the changed key itself (the
                // only name holding the inserted characters).
                let named = problem["errors"][0]["field"].as_str().unwrap_or_default();
                let names_it = named == field
                    || named.starts_with(&format!("{field}."))
                    || named.starts_with(&format!("{field}["))
                    || named.contains("\u{1}\u{1b}");
                if !names_it {
                    failures.push(format!("{what}: the problem names `{named}`: {problem}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 400, "only {checked} cases");
}

/// Operations of the OpenAPI document that take an `Idempotency-Key`.
fn idempotent_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let takes_key = operation["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
            });
            if takes_key {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// An `Idempotency-Key` that is not 1 to 255 visible ASCII characters —
/// bytes that are not ASCII, UTF-8 letters, a space or tab inside, empty,
/// blank, 256 long — is a 422 naming the header and writes nothing, on
/// every operation that takes one; 255 visible characters are a key.
#[sqlx::test(migrations = "../../migrations")]
async fn every_idempotency_key_that_is_not_visible_ascii_is_refused(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let ops = operations(&app).await;
    let documented = idempotent_operations(&openapi());
    assert!(documented.len() >= 5, "{documented:?}");
    let long = "k".repeat(256);
    let bad: Vec<(&str, &[u8])> = vec![
        ("bytes that are not ASCII", b"\x80\x81key"),
        ("UTF-8 letters", "clé-1".as_bytes()),
        ("a space inside", b"a b"),
        ("a tab inside", b"a\tb"),
        ("nothing", b""),
        ("only blanks", b"   "),
        ("256 characters", long.as_bytes()),
    ];
    for (n, (method, template)) in documented.iter().enumerate() {
        let op = ops
            .iter()
            .find(|o| o.method.as_str() == method && o.template == template)
            .unwrap_or_else(|| panic!("{method} {template} is not in `operations`"));
        let query = encode_query(&op.query);
        let body = op.body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
        for (what, key) in &bad {
            let before = rows(&pool).await;
            let value = reqwest::header::HeaderValue::from_bytes(key).unwrap();
            let (status, problem) = send_raw(
                &app,
                op,
                &op.params,
                &query,
                body.clone(),
                &[("idempotency-key", value)],
            )
            .await;
            let what = format!("{method} {template} with an Idempotency-Key of {what}");
            assert_eq!(status, 422, "{what}: {problem}");
            assert_eq!(
                problem["errors"][0]["field"], "header:Idempotency-Key",
                "{what}: {problem}"
            );
            assert_eq!(rows(&pool).await, before, "{what}: nothing written");
        }
        let key = reqwest::header::HeaderValue::from_str(&format!("{n:~>255}")).unwrap();
        let (status, answer) =
            send_raw(&app, op, &op.params, &query, body, &[("idempotency-key", key)]).await;
        assert!(
            status < 300,
            "{method} {template} with a 255-character key: {status} {answer}"
        );
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

//! Grouped notifications: one inbox entry for notifications with the same
//! recipient, category and `group_key` within the category's `group_window`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_test_support::{service_token, user_token, SseClient, TestApp};
use serde_json::{json, Value};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(15);

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.api_url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn set_window(app: &TestApp, category: &str, window: &str) {
    let (s, v) = call(
        app,
        reqwest::Method::PUT,
        &format!("/v1/categories/{category}"),
        &service_token(),
        Some(json!({ "group_window": window })),
    )
    .await;
    assert_eq!((s, &v["group_window"]), (200, &json!(window)), "{v}");
}

/// Sends one notification to `user`; returns its answer for that user
/// (`{recipient, id, grouped}`).
async fn send(app: &TestApp, user: &str, body: Value) -> Value {
    let mut b = json!({"recipients": [user], "category": "comment", "title": "t"});
    b.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    let (s, v) = call(
        app,
        reqwest::Method::POST,
        "/v1/notifications",
        &service_token(),
        Some(b),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["notifications"][0].clone()
}

async fn comment(app: &TestApp, user: &str, doc: &str, actor: &str) -> Value {
    send(
        app,
        user,
        json!({"group_key": doc, "actor": actor, "title": format!("{actor} commented on {doc}")}),
    )
    .await
}

async fn list(app: &TestApp, user: &str) -> Vec<Value> {
    let (s, v) = call(
        app,
        reqwest::Method::GET,
        "/v1/me/notifications?limit=100",
        &user_token(user),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

async fn counts(app: &TestApp, user: &str) -> Value {
    call(
        app,
        reqwest::Method::GET,
        "/v1/me/notifications/counts",
        &user_token(user),
        None,
    )
    .await
    .1
}

async fn change(app: &TestApp, user: &str, id: &str, action: &str) {
    let (s, v) = call(
        app,
        reqwest::Method::POST,
        &format!("/v1/me/notifications/{id}/{action}"),
        &user_token(user),
        None,
    )
    .await;
    assert_eq!(s, 200, "{action}: {v}");
}

async fn next_data(stream: &mut SseClient) -> (String, Value) {
    let e = stream.envelopes(1, WAIT).await.pop().expect("an event");
    (e.event_type, e.data)
}

/// Within its window, a group takes in every notification of its recipient,
/// category and key — and nothing else: not another key, not another
/// category, not a notification after the window. One unread entry, its
/// count, its last distinct actors (newest first, at most 5), the newest
/// title; each join announced as `notification.updated` with the counts.
#[sqlx::test(migrations = "../../migrations")]
async fn a_group_collects_exactly_the_notifications_of_its_window(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    set_window(&app, "comment", "3s").await;
    let mut stream = app.stream(&user_token("alice"), "", None).await;

    let first = comment(&app, "alice", "doc:1", "Maya").await;
    assert_eq!(first["grouped"], false);
    let (t, d) = next_data(&mut stream).await;
    assert_eq!(
        (t.as_str(), &d["counts"]["unread"]),
        ("notification.created", &json!(1))
    );
    let group = first["id"].as_str().unwrap().to_owned();
    // Another key, another category: entries of their own.
    let other_key = comment(&app, "alice", "doc:2", "Maya").await;
    let other_category = send(
        &app,
        "alice",
        json!({"category": "mention", "group_key": "doc:1", "actor": "Li"}),
    )
    .await;
    assert_eq!(
        (&other_key["grouped"], &other_category["grouped"]),
        (&json!(false), &json!(false))
    );
    for _ in 0..2 {
        assert_eq!(next_data(&mut stream).await.0, "notification.created");
    }
    for actor in ["Li", "Maya", "Sam"] {
        let joined = comment(&app, "alice", "doc:1", actor).await;
        assert_eq!((&joined["id"], &joined["grouped"]), (&json!(group), &json!(true)));
        let (t, d) = next_data(&mut stream).await;
        assert_eq!(t, "notification.updated");
        assert_eq!(d["notification"]["id"], group.as_str());
        assert_eq!(
            d["counts"],
            json!({"unread": 3, "unseen": 3, "total": 3}),
            "unread stays 1 for the group"
        );
    }
    let items = list(&app, "alice").await;
    assert_eq!(items.len(), 3);
    let top = &items[0];
    assert_eq!(top["id"], group.as_str(), "the group moved to the top");
    assert_eq!(top["group_key"], "doc:1");
    assert_eq!(top["group_count"], 4);
    assert_eq!(
        top["actors"],
        json!(["Sam", "Maya", "Li"]),
        "distinct, newest first"
    );
    assert_eq!(top["title"], "Sam commented on doc:1", "the newest title");
    assert_eq!(
        counts(&app, "alice").await,
        json!({"unread": 3, "unseen": 3, "total": 3})
    );

    // After the window: a new group.
    let opened = chrono::DateTime::parse_from_rfc3339(top["created_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let left = opened + chrono::Duration::milliseconds(3100) - chrono::Utc::now();
    tokio::time::sleep(left.to_std().unwrap_or_default()).await;
    let late = comment(&app, "alice", "doc:1", "Kim").await;
    assert_eq!(late["grouped"], false, "the window closed");
    assert_ne!(late["id"], group.as_str());
    let items = list(&app, "alice").await;
    assert_eq!(items.len(), 4);
    let old = items.iter().find(|n| n["id"] == group.as_str()).unwrap();
    assert_eq!(old["group_count"], 4, "nothing joined after the window");

    // The actors keep the last five distinct.
    for actor in ["A", "B", "C", "D", "E", "F"] {
        comment(&app, "bob", "doc:9", actor).await;
    }
    let items = list(&app, "bob").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["group_count"], 6);
    assert_eq!(items[0]["actors"], json!(["F", "E", "D", "C", "B"]));
    // A notification without a key is never grouped; one without an actor
    // keeps the group's actors.
    assert_eq!(send(&app, "bob", json!({})).await["grouped"], false);
    assert_eq!(send(&app, "bob", json!({})).await["grouped"], false);
    let joined = send(&app, "bob", json!({"group_key": "doc:9"})).await;
    assert_eq!(joined["grouped"], true);
    let items = list(&app, "bob").await;
    assert_eq!(
        (items.len(), &items[0]["actors"]),
        (3, &json!(["F", "E", "D", "C", "B"]))
    );
    assert_eq!(counts(&app, "bob").await["unread"], 3);
}

/// Reading or archiving a group closes it for good: the next notification
/// with its key starts a new group, and marking the old one unread again
/// does not reopen it. Opening the bell (seen) leaves it open, and a new
/// notification makes it unseen again.
#[sqlx::test(migrations = "../../migrations")]
async fn a_read_group_is_never_reopened(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let first = comment(&app, "alice", "doc:1", "Maya").await;
    let g1 = first["id"].as_str().unwrap().to_owned();
    assert_eq!(comment(&app, "alice", "doc:1", "Li").await["grouped"], true);
    change(&app, "alice", &g1, "read").await;
    let next = comment(&app, "alice", "doc:1", "Sam").await;
    assert_eq!(next["grouped"], false, "a read group starts a new group");
    let g2 = next["id"].as_str().unwrap().to_owned();
    change(&app, "alice", &g1, "unread").await;
    let again = comment(&app, "alice", "doc:1", "Kim").await;
    assert_eq!(
        (&again["id"], &again["grouped"]),
        (&json!(g2), &json!(true)),
        "joins the open group, not the reopened one"
    );
    let items = list(&app, "alice").await;
    let g1_row = items.iter().find(|n| n["id"] == g1.as_str()).unwrap();
    assert_eq!(g1_row["group_count"], 2);

    // Seen keeps it open; the next one makes it unseen again.
    let (_, c) = call(
        &app,
        reqwest::Method::POST,
        "/v1/me/notifications/seen",
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(c["unseen"], 0);
    assert_eq!(comment(&app, "alice", "doc:1", "Ana").await["id"], g2.as_str());
    assert_eq!(
        counts(&app, "alice").await,
        json!({"unread": 2, "unseen": 1, "total": 2})
    );

    // Archived and read-all close groups too.
    change(&app, "alice", &g2, "archive").await;
    let g3 = comment(&app, "alice", "doc:1", "Bo").await;
    assert_eq!(g3["grouped"], false);
    let (s, _) = call(
        &app,
        reqwest::Method::POST,
        "/v1/me/notifications/read-all",
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    change(&app, "alice", g3["id"].as_str().unwrap(), "unread").await;
    assert_eq!(comment(&app, "alice", "doc:1", "Cy").await["grouped"], false);

    // A zero window turns grouping off for the category.
    set_window(&app, "digest", "0s").await;
    for _ in 0..2 {
        let n = send(&app, "bob", json!({"category": "digest", "group_key": "k"})).await;
        assert_eq!(n["grouped"], false);
    }
}

/// Bad grouping input is a 422 naming the field, and writes nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn bad_group_fields_are_422_naming_the_field(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let base = json!({"recipients": ["alice"], "category": "comment", "title": "t"});
    for (field, value) in [
        ("group_key", json!("")),
        ("group_key", json!("x".repeat(201))),
        ("group_key", json!(7)),
        ("actor", json!("  ")),
        ("actor", json!("y".repeat(201))),
    ] {
        let mut b = base.clone();
        b[field] = value;
        let (s, p) = call(
            &app,
            reqwest::Method::POST,
            "/v1/notifications",
            &service_token(),
            Some(b),
        )
        .await;
        assert_eq!((s, &p["errors"][0]["field"]), (422, &json!(field)), "{p}");
    }
    for bad in ["31d", "1 hour", "-1s"] {
        let (s, p) = call(
            &app,
            reqwest::Method::PUT,
            "/v1/categories/comment",
            &service_token(),
            Some(json!({ "group_window": bad })),
        )
        .await;
        assert_eq!(
            (s, &p["errors"][0]["field"]),
            (422, &json!("group_window")),
            "{bad}: {p}"
        );
    }
    let (s, d) = call(
        &app,
        reqwest::Method::GET,
        "/v1/categories/comment",
        &service_token(),
        None,
    )
    .await;
    assert_eq!((s, &d["group_window"]), (200, &json!("1h")), "the default window");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

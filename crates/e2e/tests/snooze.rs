//! Snooze: an entry leaves lists and counts until `until`, then comes back
//! unread at the top, announced with the new counts — on time, once, across
//! worker restarts.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_test_support::{service_token, user_token, SseClient, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(15);

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
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

async fn send(app: &TestApp, user: &str, title: &str) -> String {
    let (s, v) = call(
        app,
        Method::POST,
        "/v1/notifications",
        &service_token(),
        Some(json!({"recipients": [user], "category": "comment", "title": title})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["notifications"][0]["id"].as_str().unwrap().to_owned()
}

async fn snooze(app: &TestApp, user: &str, id: &str, until: DateTime<Utc>) -> (u16, Value) {
    call(
        app,
        Method::POST,
        &format!("/v1/me/notifications/{id}/snooze"),
        &user_token(user),
        Some(json!({ "until": until })),
    )
    .await
}

async fn titles(app: &TestApp, user: &str, status: &str) -> Vec<String> {
    let (s, v) = call(
        app,
        Method::GET,
        &format!("/v1/me/notifications?status={status}&limit=100"),
        &user_token(user),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn counts(app: &TestApp, user: &str) -> Value {
    call(
        app,
        Method::GET,
        "/v1/me/notifications/counts",
        &user_token(user),
        None,
    )
    .await
    .1
}

/// The next event of `stream` (its type and data).
async fn next(stream: &mut SseClient, within: Duration) -> Option<(String, Value)> {
    let e = stream.next_event(within).await?;
    let env: Value = serde_json::from_str(&e.data).unwrap();
    Some((e.event, env["data"].clone()))
}

fn after(ms: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(ms)
}

/// A snoozed entry leaves the lists (but `status=snoozed`) and the counts at
/// once, and comes back at `until` — not before, within a second or so after
/// — unread and at the top, announced with the new counts: even though the
/// worker crashed and another started while it was snoozed. With no worker
/// at `until` it stays snoozed (lists and counts agree) until one is back.
#[sqlx::test(migrations = "../../migrations")]
async fn snoozed_entries_leave_and_return_at_the_right_time_across_a_worker_restart(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let mut stream = app.stream(&user_token("alice"), "", None).await;
    let later = send(&app, "alice", "later").await;
    send(&app, "alice", "now").await;
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/me/notifications/{later}/read"),
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    for _ in 0..3 {
        next(&mut stream, WAIT).await.unwrap(); // created, created, updated (read)
    }

    let until = after(3000);
    let (s, n) = snooze(&app, "alice", &later, until).await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(
        DateTime::parse_from_rfc3339(n["snoozed_until"].as_str().unwrap()).unwrap(),
        until.trunc_subsecs_micros()
    );
    let (t, d) = next(&mut stream, WAIT).await.unwrap();
    assert_eq!(t, "notification.snoozed");
    assert_eq!(d["counts"], json!({"unread": 1, "unseen": 1, "total": 1}));
    assert_eq!(titles(&app, "alice", "all").await, ["now"]);
    assert_eq!(titles(&app, "alice", "read").await, Vec::<String>::new());
    assert_eq!(titles(&app, "alice", "snoozed").await, ["later"]);
    assert_eq!(counts(&app, "alice").await, d["counts"]);

    // The worker crashes, another starts, all before `until`.
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.worker.take().unwrap().abort().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.start_worker().await;

    let (t, d) = next(&mut stream, WAIT).await.expect("the wake-up is announced");
    let at = Utc::now();
    assert_eq!(t, "notification.updated");
    assert!(at >= until, "woke {} early", until - at);
    assert!(
        at - until < chrono::Duration::milliseconds(2000),
        "woke {} late",
        at - until
    );
    assert_eq!(d["notification"]["title"], "later");
    assert!(d["notification"]["snoozed_until"].is_null());
    assert!(d["notification"]["read_at"].is_null(), "back unread");
    assert_eq!(d["counts"], json!({"unread": 2, "unseen": 2, "total": 2}));
    assert_eq!(counts(&app, "alice").await, d["counts"]);
    assert_eq!(
        titles(&app, "alice", "all").await,
        ["later", "now"],
        "back at the top"
    );
    assert!(titles(&app, "alice", "snoozed").await.is_empty());
    assert!(
        next(&mut stream, Duration::from_millis(1500)).await.is_none(),
        "woken once"
    );

    // No worker at `until` (nor to deliver events): still snoozed, lists
    // and counts agreeing, until a worker is back.
    app.worker.take().unwrap().stop().await;
    let until = after(1000);
    assert_eq!(snooze(&app, "alice", &later, until).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(titles(&app, "alice", "snoozed").await, ["later"]);
    assert_eq!(counts(&app, "alice").await["total"], 1);
    app.start_worker().await;
    assert_eq!(next(&mut stream, WAIT).await.unwrap().0, "notification.snoozed");
    let (t, d) = next(&mut stream, WAIT)
        .await
        .expect("woken once a worker is back");
    assert_eq!(
        (t.as_str(), &d["counts"]["total"]),
        ("notification.updated", &json!(2))
    );
    assert_eq!(counts(&app, "alice").await, d["counts"]);
}

/// Snooze and unsnooze are idempotent, private, validated; snoozing again
/// moves the time (the earlier wake-up then does nothing); read-all leaves
/// snoozed entries alone; archived ones cannot be snoozed.
#[sqlx::test(migrations = "../../migrations")]
async fn snooze_is_idempotent_private_and_moves_with_a_new_until(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let id = send(&app, "alice", "one").await;
    let other = send(&app, "alice", "two").await;
    let mut stream = app.stream(&user_token("alice"), "", Some("0")).await;
    for _ in 0..2 {
        assert_eq!(next(&mut stream, WAIT).await.unwrap().0, "notification.created");
    }

    let until = after(60_000);
    let (s, first) = snooze(&app, "alice", &id, until).await;
    assert_eq!(s, 200);
    assert_eq!(next(&mut stream, WAIT).await.unwrap().0, "notification.snoozed");
    let (s, again) = snooze(&app, "alice", &id, until).await;
    assert_eq!((s, &again["snoozed_until"]), (200, &first["snoozed_until"]));
    assert!(
        next(&mut stream, Duration::from_millis(500)).await.is_none(),
        "same until: no event"
    );

    // Another user's notification, or no notification: 404.
    assert_eq!(snooze(&app, "bob", &id, until).await.0, 404);
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/me/notifications/{id}/unsnooze"),
        &user_token("bob"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(snooze(&app, "alice", "not-a-uuid", until).await.0, 404);
    // Bad `until`: named.
    for bad in [
        json!(Utc::now() - chrono::Duration::seconds(1)),
        json!(after(31 * 86_400_000)),
        json!("soon"),
        json!(null),
    ] {
        let (s, p) = call(
            &app,
            Method::POST,
            &format!("/v1/me/notifications/{other}/snooze"),
            &user_token("alice"),
            Some(json!({ "until": bad })),
        )
        .await;
        assert_eq!(
            (s, &p["errors"][0]["field"]),
            (422, &json!("until")),
            "{bad}: {p}"
        );
    }

    // Read-all leaves the snoozed entry alone: it comes back unread.
    let (s, c) = call(
        &app,
        Method::POST,
        "/v1/me/notifications/read-all",
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!((s, &c), (200, &json!({"unread": 0, "unseen": 0, "total": 1})));
    assert_eq!(next(&mut stream, WAIT).await.unwrap().0, "inbox.read_all");

    // Snoozing again for sooner moves the wake-up; the old one is a no-op.
    let soon = after(1500);
    assert_eq!(snooze(&app, "alice", &id, soon).await.0, 200);
    assert_eq!(next(&mut stream, WAIT).await.unwrap().0, "notification.snoozed");
    let (t, d) = next(&mut stream, WAIT).await.expect("woken at the new time");
    assert_eq!(t, "notification.updated");
    assert!(Utc::now() >= soon);
    assert_eq!(d["counts"], json!({"unread": 1, "unseen": 1, "total": 2}));

    // Unsnooze: back now, announced; again: nothing.
    assert_eq!(snooze(&app, "alice", &id, after(60_000)).await.0, 200);
    assert_eq!(next(&mut stream, WAIT).await.unwrap().0, "notification.snoozed");
    let (s, back) = call(
        &app,
        Method::POST,
        &format!("/v1/me/notifications/{id}/unsnooze"),
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!((s, &back["snoozed_until"]), (200, &Value::Null));
    let (t, d) = next(&mut stream, WAIT).await.unwrap();
    assert_eq!(
        (t.as_str(), &d["counts"]["total"]),
        ("notification.updated", &json!(2))
    );
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/v1/me/notifications/{id}/unsnooze"),
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        next(&mut stream, Duration::from_millis(500)).await.is_none(),
        "not snoozed: no event"
    );

    // Archived: cannot be snoozed; archiving a snoozed one ends the snooze.
    assert_eq!(snooze(&app, "alice", &other, after(60_000)).await.0, 200);
    let (s, archived) = call(
        &app,
        Method::POST,
        &format!("/v1/me/notifications/{other}/archive"),
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!((s, &archived["snoozed_until"]), (200, &Value::Null));
    let (s, p) = snooze(&app, "alice", &other, after(60_000)).await;
    assert_eq!(s, 409, "{p}");
    assert!(titles(&app, "alice", "snoozed").await.is_empty());
    assert_eq!(titles(&app, "alice", "archived").await, ["two"]);
}

trait Micros {
    fn trunc_subsecs_micros(self) -> DateTime<chrono::FixedOffset>;
}

impl Micros for DateTime<Utc> {
    fn trunc_subsecs_micros(self) -> DateTime<chrono::FixedOffset> {
        use chrono::SubsecRound;
        self.trunc_subsecs(6).fixed_offset()
    }
}

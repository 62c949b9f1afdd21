//! Notifications and the inbox: fan-out, validation, exact counts under
//! concurrency, stable cursors, isolation between users, expiry.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashSet;
use std::time::Duration;

use herald_test_support::{service_token, user_token, TestApp};
use serde_json::{json, Value};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(15);

async fn notify(app: &TestApp, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/notifications", app.api_url()))
        .bearer_auth(service_token())
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn send(app: &TestApp, to: &[&str], title: &str) -> Vec<String> {
    let r = notify(app, json!({"recipients": to, "category": "test", "title": title})).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn get(app: &TestApp, user: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", app.api_url()))
        .bearer_auth(user_token(user))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, user: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", app.api_url()))
        .bearer_auth(user_token(user))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn all_pages(app: &TestApp, user: &str, status: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/me/notifications?status={status}&limit=7&cursor={c}"),
            None => format!("/v1/me/notifications?status={status}&limit=7"),
        };
        let (s, page) = get(app, user, &path).await;
        assert_eq!(s, 200, "{page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn each_recipient_gets_one_entry_and_one_created_event_with_counts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut alice = app.stream(&user_token("alice"), "", None).await;
    let mut bob = app.stream(&user_token("bob"), "", None).await;
    let ids = send(&app, &["alice", "bob", "alice"], "Hello").await;
    assert_eq!(ids.len(), 2, "duplicates are dropped");
    for s in [&mut alice, &mut bob] {
        let e = s.envelopes(1, WAIT).await;
        assert_eq!(e[0].event_type, "notification.created");
        assert_eq!(e[0].data["notification"]["title"], "Hello");
        assert_eq!(e[0].data["counts"], json!({"unread": 1, "unseen": 1, "total": 1}));
        assert!(
            s.next_event(Duration::from_millis(300)).await.is_none(),
            "one event per recipient"
        );
    }
    let (_, c) = get(&app, "alice", "/v1/me/notifications/counts").await;
    assert_eq!(c, json!({"unread": 1, "unseen": 1, "total": 1}));
}

#[sqlx::test(migrations = "../../migrations")]
async fn invalid_notifications_are_422_naming_the_field_and_write_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let base = json!({"recipients": ["alice"], "category": "test", "title": "Hi"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let cases = [
        (with("recipients", json!([])), "recipients"),
        (with("recipients", json!(many)), "recipients"),
        (with("recipients", json!(["ok", "not ok"])), "recipients[1]"),
        (with("category", json!("Bad Cat")), "category"),
        (with("title", json!("")), "title"),
        (with("title", json!("x".repeat(201))), "title"),
        (with("action_url", json!("javascript:alert(1)")), "action_url"),
        (with("action_url", json!("ftp://example.com")), "action_url"),
        (with("expires_at", json!("2001-01-01T00:00:00Z")), "expires_at"),
        (with("expires_at", json!("tomorrow")), "expires_at"),
        (with("extra", json!(1)), "extra"),
    ];
    for (body, field) in cases {
        let r = notify(&app, body).await;
        assert_eq!(r.status(), 422, "{field}");
        let p: Value = r.json().await.unwrap();
        assert!(
            p["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{field}: {p}"
        );
    }
    let (n, e): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM notifications), (SELECT count(*) FROM events)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((n, e), (0, 0), "nothing written");
    // Users cannot send notifications.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/notifications", app.api_url()))
        .bearer_auth(user_token("alice"))
        .json(&base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[sqlx::test(migrations = "../../migrations")]
async fn state_changes_are_idempotent_announced_and_private(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ids = send(&app, &["alice"], "One").await;
    let id = &ids[0];
    let mut s = app.stream(&user_token("alice"), "", Some("0")).await;
    assert_eq!(s.envelopes(1, WAIT).await[0].event_type, "notification.created");

    let (st, n) = post(&app, "alice", &format!("/v1/me/notifications/{id}/read")).await;
    assert_eq!(st, 200);
    assert!(n["read_at"].is_string());
    let e = s.envelopes(1, WAIT).await;
    assert_eq!(e[0].event_type, "notification.updated");
    assert_eq!(e[0].data["counts"]["unread"], 0);
    // Again: same answer, no second event.
    let (st, again) = post(&app, "alice", &format!("/v1/me/notifications/{id}/read")).await;
    assert_eq!((st, &again["read_at"]), (200, &n["read_at"]));
    assert!(s.next_event(Duration::from_millis(400)).await.is_none());

    let (st, n) = post(&app, "alice", &format!("/v1/me/notifications/{id}/unread")).await;
    assert_eq!(st, 200);
    assert!(n["read_at"].is_null());
    assert_eq!(s.envelopes(1, WAIT).await[0].data["counts"]["unread"], 1);

    // Another user's notification does not exist for bob.
    for action in ["read", "unread", "archive"] {
        let (st, p) = post(&app, "bob", &format!("/v1/me/notifications/{id}/{action}")).await;
        assert_eq!(st, 404, "{p}");
    }
    let (st, _) = post(&app, "alice", "/v1/me/notifications/not-a-uuid/read").await;
    assert_eq!(st, 404);
    let (_, bob_list) = get(&app, "bob", "/v1/me/notifications").await;
    assert!(bob_list["items"].as_array().unwrap().is_empty());

    let (st, _) = post(&app, "alice", &format!("/v1/me/notifications/{id}/archive")).await;
    assert_eq!(st, 200);
    assert_eq!(
        s.envelopes(1, WAIT).await[0].data["counts"],
        json!({"unread": 0, "unseen": 0, "total": 0})
    );
    let (_, archived) = get(&app, "alice", "/v1/me/notifications?status=archived").await;
    assert_eq!(archived["items"].as_array().unwrap().len(), 1);

    send(&app, &["alice"], "Two").await;
    send(&app, &["alice"], "Three").await;
    let (_, c) = post(&app, "alice", "/v1/me/notifications/seen").await;
    assert_eq!(c, json!({"unread": 2, "unseen": 0, "total": 2}));
    let (_, c) = post(&app, "alice", "/v1/me/notifications/read-all").await;
    assert_eq!(c, json!({"unread": 0, "unseen": 0, "total": 2}));
    let tail = s.envelopes(4, WAIT).await;
    let types: Vec<_> = tail.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "notification.created",
            "notification.created",
            "inbox.seen",
            "inbox.read_all"
        ]
    );
    assert_eq!(tail[3].data["counts"], c);
}

#[sqlx::test(migrations = "../../migrations")]
async fn counts_stay_exact_under_concurrent_sends_and_reads(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut stream = app.stream(&user_token("alice"), "", Some("0")).await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let api = app.api_url();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for j in 0..8 {
                let r = http
                    .post(format!("{api}/v1/notifications"))
                    .bearer_auth(service_token())
                    .json(&json!({"recipients": ["alice", "bob"], "category": "test", "title": format!("{i}-{j}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let id = r.json::<Value>().await.unwrap()["notifications"][0]["id"].as_str().unwrap().to_owned();
                if j % 2 == 0 {
                    let r = http
                        .post(format!("{api}/v1/me/notifications/{id}/read"))
                        .bearer_auth(user_token("alice"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
                if j == 5 && i % 3 == 0 {
                    let r = http
                        .post(format!("{api}/v1/me/notifications/read-all"))
                        .bearer_auth(user_token("alice"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The REST counts agree with the list.
    let (_, counts) = get(&app, "alice", "/v1/me/notifications/counts").await;
    let unread = all_pages(&app, "alice", "unread").await.len() as i64;
    let total = all_pages(&app, "alice", "all").await.len() as i64;
    assert_eq!(total, 48);
    assert_eq!(counts["unread"].as_i64().unwrap(), unread);
    assert_eq!(counts["total"].as_i64().unwrap(), total);
    // The last event any tab receives carries exactly those counts.
    let mut last = None;
    while let Some(e) = stream.next_event(Duration::from_millis(800)).await {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        last = Some(v["data"]["counts"].clone());
    }
    assert_eq!(
        last.unwrap(),
        counts,
        "the newest event's counts are the current counts"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn cursor_pagination_returns_every_notification_once_while_inserts_happen(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for i in 0..30 {
        send(&app, &["alice"], &format!("old-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut k = 0;
    loop {
        // New notifications arrive between pages.
        send(&app, &["alice"], &format!("new-{k}")).await;
        k += 1;
        let path = match &cursor {
            Some(c) => format!("/v1/me/notifications?limit=4&cursor={c}"),
            None => "/v1/me/notifications?limit=4".to_owned(),
        };
        let (_, page) = get(&app, "alice", &path).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["title"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no notification twice");
    for i in 0..30 {
        assert!(unique.contains(&format!("old-{i}")), "old-{i} listed");
    }
    let (st, p) = get(&app, "alice", "/v1/me/notifications?cursor=garbage").await;
    assert_eq!((st, &p["errors"][0]["field"]), (422, &json!("cursor")));
    let (st, _) = get(&app, "alice", "/v1/me/notifications?limit=101").await;
    assert_eq!(st, 422);
    let (st, _) = get(&app, "alice", "/v1/me/notifications?status=new").await;
    assert_eq!(st, 422);
}

#[sqlx::test(migrations = "../../migrations")]
async fn expired_notifications_leave_lists_and_counts_at_expires_at(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(4000)).to_rfc3339();
    let r = notify(
        &app,
        json!({"recipients": ["alice"], "category": "test", "title": "brief", "expires_at": soon}),
    )
    .await;
    assert_eq!(r.status(), 201);
    send(&app, &["alice"], "lasting").await;
    let (_, c) = get(&app, "alice", "/v1/me/notifications/counts").await;
    assert_eq!(c["unread"], 2);
    tokio::time::sleep(Duration::from_millis(4200)).await;
    let (_, c) = get(&app, "alice", "/v1/me/notifications/counts").await;
    assert_eq!(c, json!({"unread": 1, "unseen": 1, "total": 1}));
    let titles: Vec<_> = all_pages(&app, "alice", "all")
        .await
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles, ["lasting"]);
}

/// Expiry changes the counts by time, not by a request, and is announced
/// like every other inbox change: `notification.expired` with the new counts
/// on the user's topic within a second or two of `expires_at` — once, with
/// two workers running, and even when no worker ran at `expires_at`.
#[sqlx::test(migrations = "../../migrations")]
async fn every_inbox_change_is_announced_expiry_included(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let mut second = herald_test_support::start_worker(&app.settings, app.pool.clone(), &app.bus).await;
    send(&app, &["alice"], "stays").await;
    let expiring = |at: chrono::DateTime<chrono::Utc>| json!({"recipients": ["alice", "bob"], "category": "test", "title": "brief", "expires_at": at.to_rfc3339()});
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let r = notify(&app, expiring(expires_at)).await;
    assert_eq!(r.status(), 201);
    let sent: Value = r.json().await.unwrap();
    let mine = sent["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["recipient"] == "alice")
        .unwrap();
    let id = mine["id"].as_str().unwrap().to_owned();

    let mut stream = app.stream(&user_token("alice"), "user:alice", None).await;
    let e = loop {
        let e = stream.next_event(WAIT).await.expect("the expiry is announced");
        if e.event == "notification.expired" {
            break e;
        }
    };
    let late = chrono::Utc::now() - expires_at;
    assert!(
        late < chrono::Duration::milliseconds(2500),
        "announced {late} after expires_at"
    );
    let env: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(env["data"]["notification"]["id"], id.as_str());
    assert_eq!(
        env["data"]["counts"],
        json!({"unread": 1, "unseen": 1, "total": 1})
    );
    let (_, counts) = get(&app, "alice", "/v1/me/notifications/counts").await;
    assert_eq!(
        counts, env["data"]["counts"],
        "the announcement carries the truth"
    );
    // Exactly once, though two workers run.
    let again = stream.next_event(Duration::from_secs(2)).await;
    assert!(again.is_none(), "announced once: {again:?}");

    // No worker at `expires_at`: the announcement comes when one is back.
    app.worker.take().unwrap().stop().await;
    second.stop().await;
    let r = notify(&app, expiring(chrono::Utc::now() + chrono::Duration::seconds(1))).await;
    assert_eq!(r.status(), 201);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.start_worker().await;
    let e = loop {
        let e = stream
            .next_event(WAIT)
            .await
            .expect("announced after the restart");
        if e.event == "notification.expired" {
            break e;
        }
    };
    let env: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(
        env["data"]["counts"],
        json!({"unread": 1, "unseen": 1, "total": 1})
    );
}

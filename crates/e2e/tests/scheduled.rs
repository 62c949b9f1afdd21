//! Scheduled delivery (`deliver_at`): accepted now, invisible until then,
//! delivered through the outbox once, cancellable until delivered.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use herald_test_support::{admin_token, service_token, user_token, TestApp};
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

fn after(ms: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(ms)
}

async fn history(app: &TestApp, topic: &str) -> Vec<Value> {
    let (s, v) = call(
        app,
        Method::GET,
        &format!("/v1/topics/{topic}/events"),
        &admin_token(),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["events"].as_array().unwrap().clone()
}

async fn inbox(app: &TestApp, user: &str) -> (Vec<Value>, Value) {
    let (_, list) = call(app, Method::GET, "/v1/me/notifications", &user_token(user), None).await;
    let (_, counts) = call(
        app,
        Method::GET,
        "/v1/me/notifications/counts",
        &user_token(user),
        None,
    )
    .await;
    (list["items"].as_array().unwrap().clone(), counts)
}

/// Until `deliver_at` a scheduled event is in no history and no stream, and
/// a scheduled notification in no inbox and no count; at `deliver_at` both
/// are delivered once, through the outbox: the event keeps the id it was
/// accepted with and gets its `seq` then, after everything published before.
#[sqlx::test(migrations = "../../migrations")]
async fn scheduled_events_and_notifications_are_invisible_until_due_then_delivered_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut room = app.stream(&admin_token(), "room:1", None).await;
    let mut alice = app.stream(&user_token("alice"), "", None).await;
    let at = after(2500);
    let (s, ev) = call(
        &app,
        Method::POST,
        "/v1/events",
        &service_token(),
        Some(json!({"topic": "room:1", "type": "reminder.due", "data": {"n": 1}, "deliver_at": at})),
    )
    .await;
    assert_eq!(s, 202, "{ev}");
    assert!(ev["seq"].is_null());
    assert_eq!(
        DateTime::parse_from_rfc3339(ev["deliver_at"].as_str().unwrap()).unwrap(),
        at
    );
    let (s, n) = call(
        &app,
        Method::POST,
        "/v1/notifications",
        &service_token(),
        Some(json!({"recipients": ["alice"], "category": "reminder", "title": "Stand-up", "deliver_at": at})),
    )
    .await;
    assert_eq!(s, 202, "{n}");
    assert!(n["id"].is_string());
    // Published meanwhile: delivered now, before the scheduled ones.
    app.publish_ok("room:1", 2).await;
    let now = room.envelopes(1, WAIT).await;
    assert_eq!(now[0].data["n"], 2);
    assert_eq!(
        history(&app, "room:1").await.len(),
        1,
        "the scheduled event is not in history yet"
    );
    let (items, counts) = inbox(&app, "alice").await;
    assert!(items.is_empty());
    assert_eq!(counts, json!({"unread": 0, "unseen": 0, "total": 0}));
    assert!(
        alice.next_event(Duration::from_millis(1500)).await.is_none(),
        "nothing streamed yet"
    );

    let due = room.envelopes(1, WAIT).await;
    let late = Utc::now() - at;
    assert!(late >= chrono::Duration::zero(), "delivered {} early", -late);
    assert!(
        late < chrono::Duration::milliseconds(2000),
        "delivered {late} late"
    );
    assert_eq!(
        due[0].id.to_string(),
        ev["id"].as_str().unwrap(),
        "the id it was accepted with"
    );
    assert!(due[0].seq > now[0].seq, "its seq is from when it became visible");
    assert!(
        due[0].created_at >= at.trunc_subsecs(3),
        "the envelope has milliseconds"
    );
    let e = alice.envelopes(1, WAIT).await;
    assert_eq!(e[0].event_type, "notification.created");
    assert_eq!(e[0].data["counts"], json!({"unread": 1, "unseen": 1, "total": 1}));
    let (items, counts) = inbox(&app, "alice").await;
    assert_eq!((items.len(), &items[0]["title"]), (1, &json!("Stand-up")));
    assert_eq!(counts, e[0].data["counts"]);
    let h = history(&app, "room:1").await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[1]["id"], ev["id"]);
    assert!(
        room.next_event(Duration::from_millis(1500)).await.is_none(),
        "delivered once"
    );
    assert!(
        alice.next_event(Duration::from_millis(200)).await.is_none(),
        "delivered once"
    );
}

/// `DELETE` cancels what is still scheduled (and answers the same again);
/// a cancelled delivery never appears. Once delivered it is a 409; an
/// unknown id, or an id of the other kind, is a 404; users may not cancel.
#[sqlx::test(migrations = "../../migrations")]
async fn cancelled_deliveries_never_appear_and_delivered_ones_are_409(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let schedule = |path: &'static str, body: Value| {
        let app = &app;
        async move {
            let (s, v) = call(app, Method::POST, path, &service_token(), Some(body)).await;
            assert_eq!(s, 202, "{v}");
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let at = after(1500);
    let event = |n: u64| json!({"topic": "room:1", "type": "t.n", "data": {"n": n}, "deliver_at": at});
    let note =
        |title: &str| json!({"recipients": ["alice"], "category": "c", "title": title, "deliver_at": at});
    let kept_event = schedule("/v1/events", event(1)).await;
    let dropped_event = schedule("/v1/events", event(2)).await;
    let kept_note = schedule("/v1/notifications", note("kept")).await;
    let dropped_note = schedule("/v1/notifications", note("dropped")).await;

    let delete = |path: String, token: String| {
        let app = &app;
        async move { call(app, Method::DELETE, &path, &token, None).await.0 }
    };
    let svc = service_token();
    assert_eq!(
        delete(format!("/v1/events/{dropped_event}"), user_token("alice")).await,
        403
    );
    assert_eq!(
        delete(format!("/v1/events/{dropped_event}"), svc.clone()).await,
        204
    );
    assert_eq!(
        delete(format!("/v1/events/{dropped_event}"), svc.clone()).await,
        204,
        "again: the same"
    );
    assert_eq!(
        delete(format!("/v1/notifications/{dropped_note}"), svc.clone()).await,
        204
    );
    // The other kind's endpoint does not know the id.
    assert_eq!(
        delete(format!("/v1/notifications/{kept_event}"), svc.clone()).await,
        404
    );
    assert_eq!(delete(format!("/v1/events/{kept_note}"), svc.clone()).await, 404);
    assert_eq!(
        delete(format!("/v1/events/{}", uuid::Uuid::now_v7()), svc.clone()).await,
        404
    );
    assert_eq!(
        delete("/v1/notifications/not-an-id".into(), svc.clone()).await,
        404
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while history(&app, "room:1").await.is_empty() || inbox(&app, "alice").await.0.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let h = history(&app, "room:1").await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["id"], kept_event.as_str());
    let (items, counts) = inbox(&app, "alice").await;
    assert_eq!(
        items.iter().map(|n| n["title"].clone()).collect::<Vec<_>>(),
        [json!("kept")]
    );
    assert_eq!(counts["total"], 1);
    assert_eq!(delete(format!("/v1/events/{kept_event}"), svc.clone()).await, 409);
    assert_eq!(
        delete(format!("/v1/notifications/{kept_note}"), svc.clone()).await,
        409
    );
    assert_eq!(
        delete(format!("/v1/events/{dropped_event}"), svc).await,
        204,
        "still cancelled"
    );
    let cancelled_events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE id = $1::uuid")
        .bind(&dropped_event)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(cancelled_events, 0);
}

/// `deliver_at` beyond the horizon (`HERALD_MAX_SCHEDULE_AHEAD`) is a 422
/// naming it, as is an `expires_at` not after it, and nothing is written; a
/// `deliver_at` already past is delivered at once; a retry with the same
/// Idempotency-Key gets the original answer and schedules nothing more.
#[sqlx::test(migrations = "../../migrations")]
async fn deliver_at_is_bounded_by_the_horizon_and_idempotent(pool: PgPool) {
    let mut settings = herald_test_support::settings(&herald_test_support::redis_url());
    settings.api.max_schedule_ahead = Duration::from_secs(3600);
    let app = TestApp::spawn_with(pool.clone(), settings).await;
    let event = |at: Value| json!({"topic": "room:1", "type": "t.n", "data": {}, "deliver_at": at});
    let note = |extra: Value| {
        let mut b = json!({"recipients": ["alice"], "category": "c", "title": "t"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let cases = [
        ("/v1/events", event(json!(after(3_700_000))), "deliver_at", true),
        ("/v1/events", event(json!("tomorrow")), "deliver_at", false),
        (
            "/v1/notifications",
            note(json!({"deliver_at": after(3_700_000)})),
            "deliver_at",
            true,
        ),
        (
            "/v1/notifications",
            note(json!({"deliver_at": after(60_000), "expires_at": after(30_000)})),
            "expires_at",
            false,
        ),
        (
            "/v1/events/batch",
            json!({"events": [{"topic": "room:1", "type": "t.n", "deliver_at": after(1000)}]}),
            "events[0].deliver_at",
            false,
        ),
    ];
    for (path, body, field, names_horizon) in cases {
        let (s, p) = call(&app, Method::POST, path, &service_token(), Some(body)).await;
        assert_eq!(s, 422, "{path} {field}: {p}");
        assert!(
            p["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{path} {field}: {p}"
        );
        if names_horizon {
            assert!(
                p.to_string().contains("at most 1h ahead"),
                "the message names the horizon: {p}"
            );
        }
    }
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM scheduled_deliveries) + (SELECT count(*) FROM due_work)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(written, 0, "nothing written");

    let mut stream = app.stream(&admin_token(), "room:1", None).await;
    let past =
        json!({"topic": "room:1", "type": "t.n", "data": {"late": true}, "deliver_at": after(-60_000)});
    let send = || {
        app.http
            .post(format!("{}/v1/events", app.api_url()))
            .bearer_auth(service_token())
            .header("Idempotency-Key", "remind-1")
            .json(&past)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let e = stream.envelopes(1, WAIT).await;
    assert_eq!(
        e[0].id.to_string(),
        first["id"].as_str().unwrap(),
        "a past deliver_at: at once"
    );
    let again = send().await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert!(
        stream.next_event(Duration::from_millis(1500)).await.is_none(),
        "scheduled once"
    );
}

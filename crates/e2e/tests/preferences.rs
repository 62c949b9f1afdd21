//! Notification preferences: what a user sees and sets, what services set as
//! defaults, how every change is announced, and that sends and changes racing
//! each other stay consistent.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_test_support::{service_token, user_token, TestApp};
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
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", app.api_url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrations = "../../migrations")]
async fn preferences_follow_defaults_until_a_user_chooses_and_every_change_is_announced(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = user_token("alice");
    let (s, empty) = call(&app, reqwest::Method::GET, "/v1/me/preferences", &alice, None).await;
    assert_eq!((s, empty), (200, json!({"categories": {}})));
    // Defaults from a service; a user token may not set them.
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/categories/digest",
        &alice,
        Some(json!({"web_push": false})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, set) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/categories/digest",
        &service_token(),
        Some(json!({"web_push": false, "push_delay": "90s"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        set,
        json!({"in_app": true, "web_push": false, "required": false, "push_delay": "90s", "group_window": "1h"})
    );
    let (s, got) = call(&app, reqwest::Method::GET, "/v1/categories/digest", &alice, None).await;
    assert_eq!((s, got), (200, set));
    for (body, field) in [
        (json!({"push_delay": "8d"}), "push_delay"),
        (json!({"push_delay": "soon"}), "push_delay"),
        (json!({"required": "yes"}), "required"),
        (json!({"loud": true}), "body"),
    ] {
        let (s, p) = call(
            &app,
            reqwest::Method::PUT,
            "/v1/categories/digest",
            &service_token(),
            Some(body),
        )
        .await;
        assert_eq!(s, 422, "{p}");
        assert!(
            p["errors"][0]["field"].as_str().unwrap().starts_with(field)
                || p["detail"].as_str().unwrap().contains("loud"),
            "{p}"
        );
    }
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/categories/Bad%20Name",
        &service_token(),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 422);

    let (_, prefs) = call(&app, reqwest::Method::GET, "/v1/me/preferences", &alice, None).await;
    assert_eq!(
        prefs["categories"]["digest"],
        json!({"in_app": true, "web_push": false, "required": false})
    );

    // A change is announced on user:alice for every open tab.
    let mut stream = app.stream(&alice, "user:alice", None).await;
    let (s, after) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/me/preferences",
        &alice,
        Some(json!({"categories": {"digest": {"web_push": true}, "comment": {"in_app": false}}})),
    )
    .await;
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["categories"]["digest"]["web_push"], true);
    assert_eq!(
        after["categories"]["comment"],
        json!({"in_app": false, "web_push": true, "required": false})
    );
    let e = stream.next_event(WAIT).await.unwrap();
    assert_eq!(e.event, "preferences.updated");
    let env: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(env["data"]["preferences"], after);

    // Null goes back to the default.
    let (_, reset) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/me/preferences",
        &alice,
        Some(json!({"categories": {"digest": {"web_push": null}}})),
    )
    .await;
    assert_eq!(reset["categories"]["digest"]["web_push"], false);
    // Bad categories are named; nothing changes.
    let (s, p) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/me/preferences",
        &alice,
        Some(json!({"categories": {"Comment": {"in_app": true}}})),
    )
    .await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (422, Some("categories.Comment"))
    );
}

/// A required category cannot be muted, on any channel; the whole change is
/// refused and nothing of it is kept.
#[sqlx::test(migrations = "../../migrations")]
async fn a_required_category_cannot_be_muted(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/categories/security",
        &service_token(),
        Some(json!({"required": true})),
    )
    .await;
    assert_eq!(s, 200);
    let alice = user_token("alice");
    for choice in [json!({"in_app": false}), json!({"web_push": false})] {
        let (s, p) = call(
            &app,
            reqwest::Method::PUT,
            "/v1/me/preferences",
            &alice,
            Some(json!({"categories": {"aaa": {"in_app": false}, "security": choice}})),
        )
        .await;
        assert_eq!(s, 422, "{p}");
        assert_eq!(p["errors"][0]["field"], "categories.security");
    }
    let (_, prefs) = call(&app, reqwest::Method::GET, "/v1/me/preferences", &alice, None).await;
    assert_eq!(
        prefs["categories"].get("aaa"),
        None,
        "nothing of a refused change is kept"
    );
    // What the defaults already are is accepted (a settings panel sends it back).
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/me/preferences",
        &alice,
        Some(json!({"categories": {"security": {"in_app": true, "web_push": true}}})),
    )
    .await;
    assert_eq!(s, 200);
    let sent = call(
        &app,
        reqwest::Method::POST,
        "/v1/notifications",
        &service_token(),
        Some(json!({"recipients": ["alice"], "category": "security", "title": "New sign-in"})),
    )
    .await;
    assert_eq!(
        sent.1["delivery"]["in_app"],
        json!({"reached": 1, "suppressed": 0})
    );
}

/// Sends and preference changes racing: per user they are serialized, so on
/// the user's stream no `notification.created` of a category appears while the
/// last `preferences.updated` before it had `in_app` off, and every send's
/// report adds up.
#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_preference_changes_and_sends_stay_consistent(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let alice = user_token("alice");
    let mut stream = app.stream(&alice, "user:alice", None).await;
    let rounds = 30;
    let toggles = {
        let app = &app;
        let alice = alice.clone();
        async move {
            for i in 0..rounds {
                let on = i % 2 == 1;
                let (s, _) = call(
                    app,
                    reqwest::Method::PUT,
                    "/v1/me/preferences",
                    &alice,
                    Some(json!({"categories": {"chat": {"in_app": on}}})),
                )
                .await;
                assert_eq!(s, 200);
            }
        }
    };
    let sends = {
        let app = &app;
        async move {
            let (mut reached, mut suppressed) = (0, 0);
            for i in 0..rounds {
                let (s, b) = call(
                    app,
                    reqwest::Method::POST,
                    "/v1/notifications",
                    &service_token(),
                    Some(json!({"recipients": ["alice"], "category": "chat", "title": format!("m{i}")})),
                )
                .await;
                assert_eq!(s, 201);
                reached += b["delivery"]["in_app"]["reached"].as_u64().unwrap();
                suppressed += b["delivery"]["in_app"]["suppressed"].as_u64().unwrap();
            }
            (reached, suppressed)
        }
    };
    let ((), (reached, suppressed)) = tokio::join!(toggles, sends);
    assert_eq!(reached + suppressed, rounds);
    let mut in_app = true;
    let (mut prefs_seen, mut created_seen) = (0, 0);
    while prefs_seen < rounds || created_seen < reached {
        let e = stream.next_event(WAIT).await.expect("every event arrives");
        let env: Value = serde_json::from_str(&e.data).unwrap();
        match e.event.as_str() {
            "preferences.updated" => {
                in_app = env["data"]["preferences"]["categories"]["chat"]["in_app"]
                    .as_bool()
                    .unwrap();
                prefs_seen += 1;
            }
            "notification.created" => {
                assert!(in_app, "a notification arrived while in_app was off: {env}");
                created_seen += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let (_, counts) = call(
        &app,
        reqwest::Method::GET,
        "/v1/me/notifications/counts",
        &alice,
        None,
    )
    .await;
    assert_eq!(counts["total"], reached);
}

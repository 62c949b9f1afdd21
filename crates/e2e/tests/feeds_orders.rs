//! Activity feeds and orders through REST, SSE and replay.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashSet;
use std::time::Duration;

use herald_domain::order::OrderStatus;
use herald_test_support::{admin_token, service_token, user_token, user_token_with_topics, TestApp};
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

async fn activity(app: &TestApp, feed: &str, body: Value) -> (u16, Value) {
    call(
        app,
        reqwest::Method::POST,
        &format!("/v1/feeds/{feed}/activities"),
        &service_token(),
        Some(body),
    )
    .await
}

#[sqlx::test(migrations = "../../migrations")]
async fn activities_are_announced_upserted_by_foreign_id_and_paged(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let reader = user_token_with_topics("alice", &["feed:team-1"]);
    let mut stream = app.stream(&reader, "feed:team-1", None).await;
    assert_eq!(stream.status, 200);

    let body = json!({"actor": "user:bob", "verb": "commented", "object": "post:7", "foreign_id": "c-1"});
    let (st, a) = activity(&app, "team-1", body.clone()).await;
    assert_eq!(st, 201);
    let e = stream.envelopes(1, WAIT).await;
    assert_eq!(e[0].event_type, "activity.created");
    assert_eq!(e[0].data["id"], a["id"]);
    // The same activity again: no duplicate, no event.
    let (st, same) = activity(&app, "team-1", body.clone()).await;
    assert_eq!((st, &same["id"]), (200, &a["id"]));
    assert!(stream.next_event(Duration::from_millis(400)).await.is_none());
    // Changed content under the same foreign_id: updated in place.
    let (st, upd) = activity(
        &app,
        "team-1",
        json!({"actor": "user:bob", "verb": "edited", "object": "post:7", "foreign_id": "c-1"}),
    )
    .await;
    assert_eq!((st, &upd["id"]), (200, &a["id"]));
    assert_eq!(stream.envelopes(1, WAIT).await[0].event_type, "activity.updated");

    // Pages stay exact while activities are appended concurrently.
    for i in 0..12 {
        activity(
            &app,
            "team-1",
            json!({"actor": "a", "verb": "did", "object": format!("o-{i}")}),
        )
        .await;
    }
    let writer = {
        let api = app.api_url();
        tokio::spawn(async move {
            for i in 0..10 {
                let r = reqwest::Client::new()
                    .post(format!("{api}/v1/feeds/team-1/activities"))
                    .bearer_auth(service_token())
                    .json(&json!({"actor": "a", "verb": "did", "object": format!("new-{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        })
    };
    let mut objects = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/feeds/team-1/activities?limit=3&cursor={c}"),
            None => "/v1/feeds/team-1/activities?limit=3".into(),
        };
        let (st, page) = call(&app, reqwest::Method::GET, &path, &reader, None).await;
        assert_eq!(st, 200, "{page}");
        objects.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["object"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    writer.await.unwrap();
    let unique: HashSet<_> = objects.iter().collect();
    assert_eq!(unique.len(), objects.len(), "no activity twice");
    for i in 0..12 {
        assert!(unique.contains(&format!("o-{i}")));
    }

    // Authorization: a grant for the feed (exact or feed:*) or admin.
    let (st, _) = call(
        &app,
        reqwest::Method::GET,
        "/v1/feeds/team-1/activities",
        &user_token("carol"),
        None,
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = call(
        &app,
        reqwest::Method::GET,
        "/v1/feeds/team-1/activities",
        &user_token_with_topics("d", &["feed:*"]),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call(
        &app,
        reqwest::Method::GET,
        "/v1/feeds/team-1/activities",
        &admin_token(),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let s = app.stream(&user_token("carol"), "feed:team-1", None).await;
    assert_eq!(s.status, 403);
    // Validation names the field.
    let (st, p) = activity(&app, "team-1", json!({"actor": "", "verb": "did", "object": "x"})).await;
    assert_eq!((st, &p["errors"][0]["field"]), (422, &json!("actor")));
    let (st, p) = activity(
        &app,
        "team-1",
        json!({"actor": "a", "verb": "Did", "object": "x"}),
    )
    .await;
    assert_eq!((st, &p["errors"][0]["field"]), (422, &json!("verb")));
    let (st, p) = activity(
        &app,
        "bad%20feed",
        json!({"actor": "a", "verb": "did", "object": "x"}),
    )
    .await;
    assert_eq!((st, &p["errors"][0]["field"]), (422, &json!("feed")));
}

async fn put_order(app: &TestApp, id: &str, customer: &str) -> (u16, Value) {
    call(
        app,
        reqwest::Method::PUT,
        &format!("/v1/orders/{id}"),
        &service_token(),
        Some(json!({"customer_id": customer})),
    )
    .await
}

async fn move_to(app: &TestApp, id: &str, status: OrderStatus) -> (u16, Value) {
    call(
        app,
        reqwest::Method::POST,
        &format!("/v1/orders/{id}/status"),
        &service_token(),
        Some(json!({"status": status})),
    )
    .await
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_status_pair_follows_the_domain_table(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut checked = 0;
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            let id = format!("{}-{}", from.as_str(), to.as_str());
            assert_eq!(put_order(&app, &id, "cust").await.0, 201);
            for step in from.path_from_placed() {
                assert_eq!(move_to(&app, &id, step).await.0, 200, "setting up {id}");
            }
            let (st, body) = move_to(&app, &id, to).await;
            if from.can_move_to(to) {
                assert_eq!(st, 200, "{from} → {to}: {body}");
                assert_eq!(body["status"], to.as_str());
            } else {
                assert_eq!(st, 409, "{from} → {to}: {body}");
                assert_eq!(body["from"], from.as_str());
                assert_eq!(body["to"], to.as_str());
                let (_, now) = call(
                    &app,
                    reqwest::Method::GET,
                    &format!("/v1/orders/{id}"),
                    &service_token(),
                    None,
                )
                .await;
                assert_eq!(
                    now["status"],
                    from.as_str(),
                    "a refused transition changes nothing"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 64);
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_requests_for_one_transition_exactly_one_succeeds(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for round in 0..5 {
        let id = format!("race-{round}");
        put_order(&app, &id, "cust").await;
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let api = app.api_url();
                let id = id.clone();
                tokio::spawn(async move {
                    reqwest::Client::new()
                        .post(format!("{api}/v1/orders/{id}/status"))
                        .bearer_auth(service_token())
                        .json(&json!({"status": "paid"}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        statuses.sort_unstable();
        assert_eq!(statuses, vec![200, 409, 409, 409], "round {round}");
        let (_, order) = call(
            &app,
            reqwest::Method::GET,
            &format!("/v1/orders/{id}"),
            &service_token(),
            None,
        )
        .await;
        assert_eq!(
            order["timeline"].as_array().unwrap().len(),
            2,
            "placed + one paid"
        );
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn order_changes_reach_the_timeline_the_order_topic_and_the_customer_inbox(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(put_order(&app, "o-1", "alice").await.0, 201);
    // The customer streams the order without any topics claim; others may not.
    let mut tracker = app.stream(&user_token("alice"), "order:o-1", Some("0")).await;
    assert_eq!(tracker.status, 200);
    assert_eq!(
        app.stream(&user_token("mallory"), "order:o-1", None).await.status,
        403
    );
    assert_eq!(
        app.stream(&user_token("alice"), "order:o-2", None).await.status,
        403
    );
    let mut inbox = app.stream(&user_token("alice"), "", Some("0")).await;

    let (st, _) = call(
        &app,
        reqwest::Method::POST,
        "/v1/orders/o-1/status",
        &service_token(),
        Some(json!({"status": "paid", "note": "card ok", "data": {"amount": 42}})),
    )
    .await;
    assert_eq!(st, 200);
    let events = tracker.envelopes(2, WAIT).await;
    assert_eq!(events[0].data["status"], "placed");
    assert_eq!(events[1].event_type, "order.status_changed");
    assert_eq!(
        (&events[1].data["from"], &events[1].data["status"]),
        (&json!("placed"), &json!("paid"))
    );
    assert_eq!(events[1].data["note"], "card ok");
    let notes = inbox.envelopes(2, WAIT).await;
    assert!(notes.iter().all(|e| e.event_type == "notification.created"));
    assert_eq!(notes[1].data["notification"]["category"], "order");
    assert_eq!(notes[1].data["notification"]["data"]["status"], "paid");

    let (st, order) = call(
        &app,
        reqwest::Method::GET,
        "/v1/orders/o-1",
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let timeline: Vec<_> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].clone())
        .collect();
    assert_eq!(timeline, vec![json!("placed"), json!("paid")]);
    assert_eq!(order["timeline"][1]["data"]["amount"], 42);
    assert_eq!(
        call(
            &app,
            reqwest::Method::GET,
            "/v1/orders/o-1",
            &user_token("mallory"),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(&app, reqwest::Method::GET, "/v1/orders/o-1", &admin_token(), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &app,
            reqwest::Method::GET,
            "/v1/orders/nope",
            &service_token(),
            None
        )
        .await
        .0,
        404
    );
    // The customer's history of the order topic is readable too.
    let (st, hist) = call(
        &app,
        reqwest::Method::GET,
        "/v1/topics/order:o-1/events",
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(hist["events"].as_array().unwrap().len(), 2);
    // Another customer cannot take the order over.
    assert_eq!(put_order(&app, "o-1", "mallory").await.0, 409);
    // Users cannot change orders.
    let (st, _) = call(
        &app,
        reqwest::Method::POST,
        "/v1/orders/o-1/status",
        &user_token("alice"),
        Some(json!({"status": "packed"})),
    )
    .await;
    assert_eq!(st, 403);
    let (st, p) = call(
        &app,
        reqwest::Method::POST,
        "/v1/orders/o-1/status",
        &service_token(),
        Some(json!({"status": "lost"})),
    )
    .await;
    assert_eq!((st, &p["errors"][0]["field"]), (422, &json!("status")));
}

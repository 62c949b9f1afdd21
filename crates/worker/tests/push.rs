//! Web Push end to end: notifications reach a closed tab through a push service
//! stand-in that checks VAPID and decrypts each push independently
//! (`herald_test_support::push`), as the user's preferences say, durably
//! across worker crashes and push-service failures, and only to endpoints an
//! allowed push service serves.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::time::{Duration, Instant};

use herald_platform::config::Secret;
use herald_platform::Settings;
use herald_test_support::push::PushService;
use herald_test_support::{redis_url, service_token, settings, user_token, TestApp};
use serde_json::{json, Value};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(20);

fn with_push(mut s: Settings) -> Settings {
    let (key, _) = herald_push::VapidKey::generate();
    s.push.vapid_private_key = Some(Secret::new(key));
    s.push.vapid_subject = Some("mailto:ops@herald.test".into());
    s.push.allowed_hosts = "127.0.0.1".into();
    s.push.allow_insecure = true;
    s.push.lease = Duration::from_secs(2);
    s
}

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

async fn subscribe(app: &TestApp, push: &PushService, user: &str) -> Value {
    let sub = push.subscription().await;
    let (status, body) = call(
        app,
        reqwest::Method::POST,
        "/v1/me/push-subscriptions",
        &user_token(user),
        Some(sub.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    sub
}

async fn notify(app: &TestApp, body: Value) -> Value {
    let (status, answer) = call(
        app,
        reqwest::Method::POST,
        "/v1/notifications",
        &service_token(),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    answer
}

/// Waits until `n` pushes arrived (and a moment more, to catch extras).
async fn pushes(push: &PushService, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = push.received().await;
        if got.len() >= n || Instant::now() > deadline {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let got = push.received().await;
            for p in &got {
                assert_eq!(p["ok"], true, "the stand-in rejected a push: {p}");
            }
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metric(app: &TestApp, outcome: &str) -> u64 {
    let worker = app.worker.as_ref().unwrap().url();
    let text = herald_test_support::metrics(&worker).await;
    let line = format!("herald_push_deliveries_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The whole path: a user with no open tab gets the notification through the
/// push service, VAPID-signed for the service's origin, encrypted for the
/// subscription (decrypted by the stand-in's own implementation), carrying
/// `{id, title, body, action_url, category, unread}`, once per subscription.
#[sqlx::test(migrations = "../../migrations")]
async fn a_closed_tab_gets_the_notification_through_the_push_service(pool: PgPool) {
    let app = TestApp::spawn_with(pool, with_push(settings(&redis_url()))).await;
    let push = PushService::start();
    let (status, key) = call(&app, reqwest::Method::GET, "/v1/push/vapid-public-key", "", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        key["public_key"].as_str().unwrap().len(),
        87,
        "65 bytes, base64url"
    );
    let a = subscribe(&app, &push, "alice").await;
    let b = subscribe(&app, &push, "alice").await;
    let (_, listed) = call(
        &app,
        reqwest::Method::GET,
        "/v1/me/push-subscriptions",
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 2);

    let sent = notify(
        &app,
        json!({"recipients": ["alice"], "category": "comment", "title": "Bob commented",
               "body": "Looks great!", "action_url": "https://app.example.com/posts/7"}),
    )
    .await;
    assert_eq!(
        sent["delivery"]["web_push"],
        json!({"reached": 1, "suppressed": 0, "without_subscription": 0, "queued": 2})
    );
    let id = sent["notifications"][0]["id"].as_str().unwrap();
    let got = pushes(&push, 2).await;
    assert_eq!(got.len(), 2, "one push per subscription: {got:?}");
    let subs: Vec<&str> = got.iter().map(|p| p["sub"].as_str().unwrap()).collect();
    for s in [&a, &b] {
        let sid = s["endpoint"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(subs.contains(&sid), "{sid} got its push");
    }
    for p in &got {
        assert_eq!(
            p["payload"],
            json!({"id": id, "title": "Bob commented", "body": "Looks great!",
                   "action_url": "https://app.example.com/posts/7", "category": "comment", "unread": 1})
        );
        assert_eq!(p["vapid"]["sub"], "mailto:ops@herald.test");
        assert_eq!(p["headers"]["Topic"].as_str().unwrap().len(), 32);
        assert!(p["headers"]["TTL"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    }
    assert_eq!(metric(&app, "sent").await, 2);

    // Unsubscribed: nothing more for that browser.
    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        "/v1/me/push-subscriptions",
        &user_token("alice"),
        Some(json!({"endpoint": a["endpoint"]})),
    )
    .await;
    assert_eq!(status, 204);
    notify(
        &app,
        json!({"recipients": ["alice"], "category": "comment", "title": "Again"}),
    )
    .await;
    let got = pushes(&push, 3).await;
    assert_eq!(got.len(), 3);
}

/// Preferences decide per recipient and channel, in the sending transaction:
/// `in_app` off is no inbox entry and no event, `web_push` off no push; a
/// category's defaults apply to users who chose nothing; a required category
/// cannot be muted.
#[sqlx::test(migrations = "../../migrations")]
async fn every_channel_follows_the_recipients_preferences(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), with_push(settings(&redis_url()))).await;
    let push = PushService::start();
    for u in ["alice", "bob", "carol"] {
        subscribe(&app, &push, u).await;
    }
    // The service makes `digest` push-free by default and `security` required.
    let svc = service_token();
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/categories/digest",
        &svc,
        Some(json!({"web_push": false})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/categories/security",
        &svc,
        Some(json!({"required": true, "push_delay": "0s"})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    // Alice mutes comments entirely; Bob turns digest pushes on.
    let (s, prefs) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/me/preferences",
        &user_token("alice"),
        Some(json!({"categories": {"comment": {"in_app": false, "web_push": false}}})),
    )
    .await;
    assert_eq!(s, 200, "{prefs}");
    assert_eq!(
        prefs["categories"]["comment"],
        json!({"in_app": false, "web_push": false, "required": false})
    );
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/me/preferences",
        &user_token("bob"),
        Some(json!({"categories": {"digest": {"web_push": true}}})),
    )
    .await;
    assert_eq!(s, 200);
    // Nobody mutes a required category.
    let (s, problem) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/me/preferences",
        &user_token("carol"),
        Some(json!({"categories": {"security": {"web_push": false}}})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(problem["errors"][0]["field"], "categories.security");

    let everyone = json!(["alice", "bob", "carol"]);
    let comment = notify(
        &app,
        json!({"recipients": everyone, "category": "comment", "title": "c"}),
    )
    .await;
    assert_eq!(
        comment["delivery"]["in_app"],
        json!({"reached": 2, "suppressed": 1})
    );
    assert_eq!(comment["delivery"]["web_push"]["suppressed"], 1);
    let recipients: Vec<&str> = comment["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(recipients, ["bob", "carol"], "no inbox entry for alice");
    let digest = notify(
        &app,
        json!({"recipients": everyone, "category": "digest", "title": "d"}),
    )
    .await;
    assert_eq!(
        digest["delivery"]["web_push"]["reached"], 1,
        "only bob opted in: {digest}"
    );
    let security = notify(
        &app,
        json!({"recipients": everyone, "category": "security", "title": "s"}),
    )
    .await;
    assert_eq!(security["delivery"]["web_push"]["reached"], 3);

    let got = pushes(&push, 2 + 1 + 3).await;
    let mut per_category: HashMap<String, usize> = HashMap::new();
    for p in &got {
        *per_category
            .entry(p["payload"]["category"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        per_category,
        HashMap::from([
            ("comment".into(), 2),
            ("digest".into(), 1),
            ("security".into(), 3)
        ])
    );
    let (_, counts) = call(
        &app,
        reqwest::Method::GET,
        "/v1/me/notifications/counts",
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(counts["total"], 2, "digest and security, no comment: {counts}");
}

/// A push waits the category's `push_delay`; a notification read (or seen) on
/// another device meanwhile is not pushed at all, and an unread one is pushed
/// exactly once per subscription.
#[sqlx::test(migrations = "../../migrations")]
async fn a_notification_read_within_the_push_delay_never_buzzes(pool: PgPool) {
    let app = TestApp::spawn_with(pool, with_push(settings(&redis_url()))).await;
    let push = PushService::start();
    subscribe(&app, &push, "alice").await;
    subscribe(&app, &push, "alice").await;
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/categories/chat",
        &service_token(),
        Some(json!({"push_delay": "2s"})),
    )
    .await;
    assert_eq!(s, 200);
    let read = notify(
        &app,
        json!({"recipients": ["alice"], "category": "chat", "title": "read on the laptop"}),
    )
    .await;
    let unread = notify(
        &app,
        json!({"recipients": ["alice"], "category": "chat", "title": "not read"}),
    )
    .await;
    let id = read["notifications"][0]["id"].as_str().unwrap();
    let (s, _) = call(
        &app,
        reqwest::Method::POST,
        &format!("/v1/me/notifications/{id}/read"),
        &user_token("alice"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(push.received().await.is_empty(), "nothing before the delay");
    let got = pushes(&push, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    for p in &got {
        assert_eq!(p["payload"]["id"], unread["notifications"][0]["id"]);
        assert_eq!(p["payload"]["unread"], 1);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(push.received().await.len(), 2, "the read one is never pushed");
    assert_eq!(metric(&app, "skipped").await, 2);
}

/// A worker killed in the middle of a burst of pushes: every push is delivered
/// at least once after a worker is back, and the duplicates are no more than
/// were in flight when it died.
#[sqlx::test(migrations = "../../migrations")]
async fn a_worker_killed_mid_burst_delivers_every_push_at_least_once(pool: PgPool) {
    let mut s = with_push(settings(&redis_url()));
    s.push.concurrency = 4;
    let mut app = TestApp::spawn_with(pool, s).await;
    let push = PushService::start();
    subscribe(&app, &push, "alice").await;
    push.set_mode(json!({"delay": 0.05})).await;
    let total = 120;
    let mut ids = Vec::new();
    for i in 0..total {
        let sent = notify(
            &app,
            json!({"recipients": ["alice"], "category": "burst", "title": format!("n{i}")}),
        )
        .await;
        ids.push(sent["notifications"][0]["id"].as_str().unwrap().to_owned());
    }
    // Kill it once some pushes went out.
    let deadline = Instant::now() + WAIT;
    while push.received().await.len() < 10 {
        assert!(Instant::now() < deadline, "no push went out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.worker.take().unwrap().abort().await;
    let at_kill = push.received().await.len();
    assert!(at_kill < total, "the kill came mid-burst ({at_kill} of {total})");
    app.start_worker().await;

    let got = pushes(&push, total).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for p in &got {
        *seen
            .entry(p["payload"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for id in &ids {
        assert!(seen.contains_key(id), "push {id} delivered");
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!("{total} pushes, {at_kill} before the kill, {duplicates} sent twice");
    // In flight at the kill: at most `concurrency` (4) sends, and as many
    // answers not yet recorded.
    assert!(
        duplicates <= 2 * 4,
        "duplicates ({duplicates}) bounded by what was in flight"
    );
}

/// A push service that fails (500 with Retry-After, 429) for a while gets the
/// push once it recovers; one that says the subscription is gone (410) has it
/// deleted, with what was queued for it.
#[sqlx::test(migrations = "../../migrations")]
async fn a_failing_push_service_is_retried_and_a_gone_subscription_deleted(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), with_push(settings(&redis_url()))).await;
    let push = PushService::start();
    let sub = subscribe(&app, &push, "alice").await;
    push.set_mode(json!({"statuses": [500, 503, 429], "retry_after": 1}))
        .await;
    let sent = notify(
        &app,
        json!({"recipients": ["alice"], "category": "ops", "title": "eventually"}),
    )
    .await;
    let got = pushes(&push, 4).await;
    assert_eq!(got.len(), 4, "three refusals, then delivered: {got:?}");
    assert!(got
        .iter()
        .all(|p| p["payload"]["id"] == sent["notifications"][0]["id"]));
    let gaps: Vec<f64> = got
        .windows(2)
        .map(|w| w[1]["at"].as_f64().unwrap() - w[0]["at"].as_f64().unwrap())
        .collect();
    assert!(gaps.iter().all(|g| *g >= 0.8), "Retry-After honoured: {gaps:?}");
    assert_eq!(metric(&app, "retried").await, 3);

    let sid = sub["endpoint"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    push.set_mode(json!({"gone": [sid]})).await;
    notify(
        &app,
        json!({"recipients": ["alice"], "category": "ops", "title": "to a gone browser"}),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, listed) = call(
            &app,
            reqwest::Method::GET,
            "/v1/me/push-subscriptions",
            &user_token("alice"),
            None,
        )
        .await;
        if listed["subscriptions"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the gone subscription was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM push_deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 0);
    assert_eq!(metric(&app, "gone").await, 1);
}

/// An endpoint is a URL Herald will POST to: other schemes, hosts off the
/// allowed list, and hosts resolving to private addresses are refused with a
/// 422 naming `endpoint`, as are keys that are not a subscription's.
#[sqlx::test(migrations = "../../migrations")]
async fn every_push_endpoint_off_the_allowed_push_services_is_refused(pool: PgPool) {
    let mut s = with_push(settings(&redis_url()));
    s.push.allowed_hosts = "fcm.googleapis.com,localhost,*.localhost,127.0.0.1".into();
    s.push.allow_insecure = false;
    let app = TestApp::spawn_with(pool, s).await;
    let push = PushService::start();
    let good = push.subscription().await;
    let keys = good["keys"].clone();
    for endpoint in [
        "http://fcm.googleapis.com/fcm/send/x",
        "ftp://fcm.googleapis.com/x",
        "https://evil.example.com/push",
        "https://fcm.googleapis.com.evil.example.com/push",
        "https://localhost/push",
        "https://push.localhost:8443/push",
        "https://127.0.0.1/push",
        "https://169.254.169.254/latest/meta-data",
        "https://user:pw@fcm.googleapis.com/x",
        "fcm.googleapis.com/fcm/send/x",
        good["endpoint"].as_str().unwrap(),
    ] {
        let (status, problem) = call(
            &app,
            reqwest::Method::POST,
            "/v1/me/push-subscriptions",
            &user_token("alice"),
            Some(json!({"endpoint": endpoint, "expirationTime": null, "keys": keys})),
        )
        .await;
        assert_eq!(status, 422, "{endpoint}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "endpoint", "{endpoint}: {problem}");
    }
    for (keys, field) in [
        (json!({"p256dh": "AAAA", "auth": keys["auth"]}), "keys.p256dh"),
        (json!({"p256dh": keys["p256dh"], "auth": "AAAA"}), "keys.auth"),
    ] {
        let (status, problem) = call(
            &app,
            reqwest::Method::POST,
            "/v1/me/push-subscriptions",
            &user_token("alice"),
            Some(json!({"endpoint": "https://fcm.googleapis.com/fcm/send/x", "keys": keys})),
        )
        .await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{problem}"
        );
    }
}

/// Throughput of the push path against a push service that answers at once:
/// pushes per second one worker sends (printed), every one delivered once.
#[sqlx::test(migrations = "../../migrations")]
async fn the_push_path_sends_thousands_of_pushes_per_second(pool: PgPool) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let fast = axum::Router::new().route(
        "/push/{id}",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, fast).await.unwrap() });

    let app = TestApp::spawn_with(pool, with_push(settings(&redis_url()))).await;
    let push = PushService::start(); // only for well-formed subscription keys
    let keys = push.subscription().await["keys"].clone();
    let users: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    for u in &users {
        for k in 0..50 {
            let sub = json!({"endpoint": format!("http://{addr}/push/{u}-{k}"), "expirationTime": null, "keys": keys});
            let (s, b) = call(
                &app,
                reqwest::Method::POST,
                "/v1/me/push-subscriptions",
                &user_token(u),
                Some(sub),
            )
            .await;
            assert_eq!(s, 201, "{b}");
        }
    }
    let started = Instant::now();
    let sent = notify(
        &app,
        json!({"recipients": users, "category": "load", "title": "many"}),
    )
    .await;
    let total = sent["delivery"]["web_push"]["queued"].as_u64().unwrap() as usize;
    assert_eq!(total, 2000);
    let deadline = Instant::now() + WAIT;
    while hits.load(Ordering::SeqCst) < total {
        assert!(
            Instant::now() < deadline,
            "{} of {total} pushes",
            hits.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    println!(
        "{total} pushes in {took:?}: {:.0} pushes/s from one worker (debug build, {} at once)",
        total as f64 / took.as_secs_f64(),
        app.settings.push.concurrency
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hits.load(Ordering::SeqCst), total, "each once");
}

//! Web Push end to end: notifications reach a closed tab through a push service
//! stand-in that checks VAPID and decrypts each push independently
//! (`herald_test_support::push`), as the user's preferences say, durably
//! across worker crashes and push-service failures, and only to endpoints an
//! allowed push service serves.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_platform::config::Secret;
use herald_platform::Settings;
use herald_test_support::push::PushService;
use herald_test_support::{redis_url, service_token, settings, user_token, TestApp, SECRET};
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
        if push.count().await >= n || Instant::now() > deadline {
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
    metric_at(&app.worker.as_ref().unwrap().url(), outcome).await
}

/// `herald_push_deliveries_total{outcome}` of the worker at `url`.
async fn metric_at(url: &str, outcome: &str) -> u64 {
    let text = herald_test_support::metrics(url).await;
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
    let public = key["public_key"].as_str().unwrap();
    assert_eq!(public.len(), 87, "65 bytes, base64url");
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
        assert_eq!(p["vapid_key"], public, "signed with the key pages subscribe with");
        // RFC 8030's headers, checked by the stand-in's own rules: the TTL
        // left of `HERALD_PUSH_TTL`, the urgency, and the notification's id as
        // the topic (a push service keeps one undelivered push per topic).
        let ttl: u64 = p["headers"]["TTL"].as_str().unwrap().parse().unwrap();
        let full = app.settings.push.ttl.as_secs();
        assert!(ttl <= full && ttl + 60 > full, "TTL {ttl} of {full}");
        assert_eq!(p["headers"]["Urgency"], "normal");
        assert_eq!(p["headers"]["Topic"], id.replace('-', ""));
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

/// A push waits the category's `push_delay`; a notification the user settled
/// meanwhile on another device is not pushed at all: read, seen (the bell
/// opened: `POST /v1/me/notifications/seen`), archived or snoozed, or one that
/// expired. An unread one is pushed exactly once per subscription.
#[sqlx::test(migrations = "../../migrations")]
async fn every_notification_settled_within_the_push_delay_never_buzzes(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), with_push(settings(&redis_url()))).await;
    let push = PushService::start();
    subscribe(&app, &push, "alice").await;
    subscribe(&app, &push, "alice").await;
    let delay = Duration::from_secs(3);
    let (s, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/categories/chat",
        &service_token(),
        Some(json!({"push_delay": "3s"})),
    )
    .await;
    assert_eq!(s, 200);
    let started = Instant::now();
    let alice = user_token("alice");
    // Each settled one way only. Seen first: opening the bell marks every
    // unseen notification seen, and the others must not be.
    let mut settled = HashMap::new();
    let seen = notify(
        &app,
        json!({"recipients": ["alice"], "category": "chat", "title": "seen"}),
    )
    .await;
    settled.insert(
        seen["notifications"][0]["id"].as_str().unwrap().to_owned(),
        "seen",
    );
    let (s, _) = call(
        &app,
        reqwest::Method::POST,
        "/v1/me/notifications/seen",
        &alice,
        None,
    )
    .await;
    assert_eq!(s, 200);
    for how in ["read", "archive", "snooze", "expire"] {
        let mut body = json!({"recipients": ["alice"], "category": "chat", "title": how});
        if how == "expire" {
            body["expires_at"] = json!(chrono::Utc::now() + chrono::Duration::seconds(1));
        }
        let sent = notify(&app, body).await;
        let id = sent["notifications"][0]["id"].as_str().unwrap().to_owned();
        let change = match how {
            "read" => Some((format!("/v1/me/notifications/{id}/read"), None)),
            "archive" => Some((format!("/v1/me/notifications/{id}/archive"), None)),
            "snooze" => Some((
                format!("/v1/me/notifications/{id}/snooze"),
                Some(json!({"until": chrono::Utc::now() + chrono::Duration::hours(1)})),
            )),
            _ => None, // expires by itself, before its push is due
        };
        if let Some((path, body)) = change {
            let (s, answer) = call(&app, reqwest::Method::POST, &path, &alice, body).await;
            assert_eq!(s, 200, "{how}: {answer}");
        }
        settled.insert(id, how);
    }
    let unread = notify(
        &app,
        json!({"recipients": ["alice"], "category": "chat", "title": "not read"}),
    )
    .await;
    assert!(
        started.elapsed() < delay,
        "settling took longer than the push delay ({:?}): the test cannot tell",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(push.received().await.is_empty(), "nothing before the delay");
    let got = pushes(&push, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let (_, counts) = call(
        &app,
        reqwest::Method::GET,
        "/v1/me/notifications/counts",
        &alice,
        None,
    )
    .await;
    for p in &got {
        assert_eq!(p["payload"]["id"], unread["notifications"][0]["id"]);
        assert_eq!(p["payload"]["unread"], counts["unread"]);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = push.received().await;
    assert_eq!(got.len(), 2, "no settled one is ever pushed: {got:?}");
    assert_eq!(metric(&app, "skipped").await, 2 * settled.len() as u64);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM push_deliveries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "every settled push is done with");
}

/// A `herald-worker` process (the real binary) on the test's database and
/// Redis prefix, pushing with `vapid_key`; SIGKILLed when dropped. Its
/// Postgres sessions carry `name` as their `application_name`; its health and
/// metrics listen at `url`.
struct WorkerProcess {
    child: Child,
    name: String,
    url: String,
}

impl WorkerProcess {
    fn start(pool: &PgPool, s: &Settings, vapid_key: &str, name: &str) -> Self {
        let db = pool.connect_options().get_database().unwrap().to_owned();
        let base = std::env::var("DATABASE_URL").unwrap();
        let db_url = format!(
            "{}/{db}?application_name={name}",
            base.rsplit_once('/').unwrap().0
        );
        // A free port, for /metrics (taken again at once by the worker).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_herald-worker"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERALD_DATABASE_URL", db_url)
            .env("HERALD_REDIS_URL", redis_url())
            .env("HERALD_REDIS_PREFIX", &s.bus.prefix)
            .env("HERALD_JWT_SECRET", SECRET)
            .env("HERALD_WORKER_ADDR", format!("127.0.0.1:{port}"))
            .env("HERALD_WORKER_POLL", "50ms")
            .env("HERALD_VAPID_PRIVATE_KEY", vapid_key)
            .env("HERALD_VAPID_SUBJECT", s.push.vapid_subject.as_deref().unwrap())
            .env("HERALD_PUSH_ALLOWED_HOSTS", &s.push.allowed_hosts)
            .env("HERALD_PUSH_ALLOW_INSECURE", s.push.allow_insecure.to_string())
            .env("HERALD_PUSH_LEASE", format!("{}ms", s.push.lease.as_millis()))
            .env("HERALD_PUSH_CONCURRENCY", s.push.concurrency.to_string())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self {
            child,
            name: name.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `kill -9`, then waits until Postgres has ended its sessions: nothing it
    /// sent before it died commits after this returns.
    async fn kill(mut self, pool: &PgPool) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + WAIT;
        loop {
            let open: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                    .bind(&self.name)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            if open == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{open} sessions of the killed worker");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// CPU time (user + system) the process has used so far.
    fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time from a `/proc/<pid>/stat` (fields 14 and 15, in
/// clock ticks of 1/100 s, Linux's `USER_HZ`).
fn cpu_of(stat: &str) -> Duration {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// How many times each notification was pushed (all to one subscription).
async fn receipts(push: &PushService) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for p in push.received().await {
        assert_eq!(p["ok"], true, "the stand-in rejected a push: {p}");
        *seen
            .entry(p["payload"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    seen
}

/// The real `herald-worker` process, SIGKILLed twice in the middle of a burst
/// of pushes and started again, the user reading some notifications while no
/// worker runs: every unread notification is pushed at least once, and again
/// only after a kill that found it sent but its answer not recorded (at most
/// `HERALD_PUSH_CONCURRENCY` per kill) — then always; a notification read
/// meanwhile is never pushed again, whether it was sent unacknowledged,
/// claimed but not sent, or still queued.
#[sqlx::test(migrations = "../../migrations")]
async fn a_worker_killed_with_sigkill_mid_burst_delivers_every_push_at_least_once(pool: PgPool) {
    let concurrency = 4;
    let mut s = with_push(settings(&redis_url()));
    let private = s.push.vapid_private_key.as_ref().unwrap().expose().to_owned();
    s.push.concurrency = concurrency;
    // Longer than the stand-in can take to answer on a loaded machine (a
    // send times out at 80% of it, and a timed-out push is sent again).
    s.push.lease = Duration::from_secs(6);
    let mut app = TestApp::spawn_with(pool.clone(), s.clone()).await;
    // The worker is the process below, only.
    app.worker.take().unwrap().stop().await;
    let (_, key) = call(&app, reqwest::Method::GET, "/v1/push/vapid-public-key", "", None).await;
    let public = key["public_key"].as_str().unwrap().to_owned();
    let push = PushService::start();
    subscribe(&app, &push, "alice").await;
    // Slow answers, so that the kills find pushes in flight.
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

    let run = uuid::Uuid::now_v7().simple().to_string();
    let kills = 2;
    // Per kill, what the push service had whose answer was not recorded.
    let mut unacknowledged: Vec<HashSet<String>> = Vec::new();
    // Read while no worker ran: how many times each had been pushed then.
    let mut read: HashMap<String, usize> = HashMap::new();
    for k in 0..kills {
        let started: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT now()").fetch_one(&pool).await.unwrap();
        let before = receipts(&push).await;
        let worker = WorkerProcess::start(&pool, &s, &private, &format!("kill-{run}-{k}"));
        let deadline = Instant::now() + WAIT;
        while push.count().await < before.values().sum::<usize>() + 20 {
            assert!(Instant::now() < deadline, "no push went out");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker.kill(&pool).await;
        // Every connection it had is closed: what it sent is recorded.
        let deadline = Instant::now() + WAIT;
        while push.push_connections().await > 0 {
            assert!(
                Instant::now() < deadline,
                "the stand-in still has its connections"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = receipts(&push).await;
        assert!(
            got.len() < total,
            "kill {k} came mid-burst ({} of {total})",
            got.len()
        );
        // What is still queued, and whether this worker claimed it (its
        // lease runs past this round's start plus a lease).
        let queued: Vec<(String, bool)> = sqlx::query_as(
            "SELECT notification_id::text, due_at > $1 + make_interval(secs => $2)
               FROM push_deliveries ORDER BY id",
        )
        .bind(started)
        .bind(s.push.lease.as_secs_f64())
        .fetch_all(&pool)
        .await
        .unwrap();
        let sent_now = |id: &String| got.get(id) > before.get(id);
        let unacked: HashSet<String> = queued
            .iter()
            .filter(|(id, _)| sent_now(id))
            .map(|(id, _)| id.clone())
            .collect();
        let leased: Vec<&String> = queued
            .iter()
            .filter(|(id, claimed)| *claimed && !sent_now(id))
            .map(|(id, _)| id)
            .collect();
        assert!(
            unacked.len() <= concurrency,
            "kill {k}: {} pushes sent and not recorded, more than the {concurrency} in flight",
            unacked.len()
        );
        assert!(
            unacked.len() + leased.len() <= 2 * concurrency,
            "kill {k}: more claimed than one batch"
        );
        println!(
            "kill {k}: {} pushes received, {} of them unacknowledged, {} claimed and not sent",
            got.values().sum::<usize>(),
            unacked.len(),
            leased.len()
        );
        // The user reads, on another device: one push that went out
        // unacknowledged, those claimed and not sent, and two still queued.
        let queued_only = queued
            .iter()
            .rev()
            .filter(|(id, claimed)| !claimed && !got.contains_key(id) && !read.contains_key(id))
            .take(2)
            .map(|(id, _)| id);
        let reading: Vec<String> = unacked
            .iter()
            .filter(|id| !read.contains_key(*id))
            .take(1)
            .chain(leased)
            .chain(queued_only)
            .cloned()
            .collect();
        for id in reading {
            let (st, _) = call(
                &app,
                reqwest::Method::POST,
                &format!("/v1/me/notifications/{id}/read"),
                &user_token("alice"),
                None,
            )
            .await;
            assert_eq!(st, 200);
            read.insert(id.clone(), got.get(&id).copied().unwrap_or(0));
        }
        unacknowledged.push(unacked);
    }

    let worker = WorkerProcess::start(&pool, &s, &private, &format!("kill-{run}-last"));
    let deadline = Instant::now() + WAIT;
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM push_deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
        if queued == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{queued} pushes still queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.kill(&pool).await;
    let got = receipts(&push).await;
    for p in push.received().await {
        assert_eq!(
            p["vapid_key"],
            public.as_str(),
            "signed with the key pages subscribe with"
        );
    }
    for id in &ids {
        let n = got.get(id).copied().unwrap_or(0);
        let times_unacked = unacknowledged.iter().filter(|u| u.contains(id)).count();
        match read.get(id) {
            Some(&then) => assert_eq!(n, then, "{id} was read: never pushed after"),
            // Once, and again after each kill that found it sent but not
            // acknowledged: never less, never more.
            None => assert_eq!(
                n,
                1 + times_unacked,
                "{id} pushed {n} times, unacknowledged at {times_unacked} kills"
            ),
        }
    }
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    println!(
        "{total} notifications, {} read during the outages, {kills} kills: {duplicates} pushes sent again \
         (bound: {concurrency} per kill, HERALD_PUSH_CONCURRENCY)",
        read.len()
    );
    assert!(duplicates <= kills * concurrency);
}

/// A push service that fails (500 with Retry-After, 429) for a while gets the
/// push once it recovers; one that says the subscription is gone (404 or 410)
/// has it deleted, with what was queued for it.
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

    // Both answers a push service gives for a subscription it no longer
    // knows: 404 (RFC 8030 §7.3's "not found") and 410 (expired).
    let other = subscribe(&app, &push, "alice").await;
    let sid = |s: &Value| {
        s["endpoint"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    push.set_mode(json!({"gone": {sid(&sub): 404, sid(&other): 410}}))
        .await;
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
    assert_eq!(metric(&app, "gone").await, 2);
    let tried: Vec<String> = push.received().await[4..]
        .iter()
        .map(|p| p["sub"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tried.len(), 2, "one push each, then nothing: {tried:?}");
    assert!(tried.contains(&sid(&sub)) && tried.contains(&sid(&other)));
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

/// Subscriptions of `users`, `per_user` each, to `endpoints` (one each),
/// written straight into the table: a load's set-up, not what it measures.
async fn subscribe_many(pool: &PgPool, users: &[String], per_user: usize, subs: &[Value]) {
    assert_eq!(subs.len(), users.len() * per_user);
    let owners: Vec<&String> = users
        .iter()
        .flat_map(|u| std::iter::repeat_n(u, per_user))
        .collect();
    let field = |pointer: &str| -> Vec<String> {
        subs.iter()
            .map(|s| s.pointer(pointer).and_then(Value::as_str).unwrap().to_owned())
            .collect()
    };
    sqlx::query(
        "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth)
         SELECT gen_random_uuid(), u, e, p, a FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t (u, e, p, a)",
    )
    .bind(owners)
    .bind(field("/endpoint"))
    .bind(field("/keys/p256dh"))
    .bind(field("/keys/auth"))
    .execute(pool)
    .await
    .unwrap();
}

/// CPU time of the processes a burst of pushes runs on, to tell which one
/// limits it.
struct Cpu {
    worker: Duration,
    push_service: Duration,
    /// This process: the API, and the no-op push service.
    test: Duration,
    /// The Postgres sessions of this test's database.
    postgres: Duration,
    /// Every CPU of the machine, busy (anything but idle and iowait).
    machine: Duration,
    at: Instant,
}

impl Cpu {
    async fn now(pool: &PgPool, worker: &WorkerProcess, push: &PushService) -> Self {
        let backends: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                .fetch_all(pool)
                .await
                .unwrap();
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> = machine
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal …
        let busy: u64 =
            ticks.iter().take(8).sum::<u64>() - ticks.get(3).unwrap_or(&0) - ticks.get(4).unwrap_or(&0);
        Self {
            worker: worker.cpu(),
            push_service: cpu_of(&format!("/proc/{}/stat", push.pid())),
            test: cpu_of("/proc/self/stat"),
            postgres: backends.iter().map(|p| cpu_of(&format!("/proc/{p}/stat"))).sum(),
            machine: Duration::from_millis(busy * 10),
            at: Instant::now(),
        }
    }

    /// What happened since `before`, for `n` pushes.
    fn report(&self, before: &Cpu, n: usize, what: &str, first: f64, last: f64) {
        let per_1000 = |a: Duration, b: Duration| (a.saturating_sub(b)).as_secs_f64() * 1000.0 / n as f64;
        let window = self.at - before.at;
        println!(
            "push burst, {what}: {n} pushes, first to last in {:.2} s = {:.0} pushes/s \
             ({:.2} s from the send to the last); CPU-seconds per 1000 pushes: worker {:.3}, \
             push service {:.3}, api and test {:.3}, postgres sessions {:.3}; machine busy {:.2} of \
             {} CPUs ({} build)",
            last - first,
            n as f64 / (last - first),
            window.as_secs_f64(),
            per_1000(self.worker, before.worker),
            per_1000(self.push_service, before.push_service),
            per_1000(self.test, before.test),
            per_1000(self.postgres, before.postgres),
            self.machine.saturating_sub(before.machine).as_secs_f64() / window.as_secs_f64(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        );
    }
}

/// The push path of one `herald-worker` process under a burst: one
/// notification to 40 users with 50 subscriptions each (`HERALD_TEST_PUSH_BURST`
/// sets the total), first to a push service that answers at once (a no-op
/// in this process), then to the stand-in, which verifies and decrypts every
/// push. Each push arrives once, well formed, in a bound even a debug build
/// on a loaded machine meets. The rate, and the CPU time of every process
/// per 1000 pushes (which shows what limits it), are printed: run it with
/// `cargo test --release -p herald-worker --test push the_push_path --
/// --nocapture` for the figures in BENCHMARKS.md ("Web Push");
/// `HERALD_TEST_PUSH_CONCURRENCY` overrides `HERALD_PUSH_CONCURRENCY` (32).
#[sqlx::test(migrations = "../../migrations")]
async fn the_push_path_delivers_a_burst_from_one_worker_once_each(pool: PgPool) {
    use std::sync::{Arc, Mutex};
    let total: usize = std::env::var("HERALD_TEST_PUSH_BURST")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let per_user = total.div_ceil(40);
    let total = per_user * 40;
    // Even a debug build on a loaded machine sends 20 a second.
    let bound = Duration::from_secs(100).max(Duration::from_millis(50 * total as u64));

    // The no-op push service: answers 201 at once, and counts.
    #[derive(Default)]
    struct Hits {
        per_endpoint: HashMap<String, usize>,
        at: Vec<Instant>,
    }
    let hits: Arc<Mutex<Hits>> = Arc::default();
    let counter = hits.clone();
    let fast = axum::Router::new().route(
        "/push/{id}",
        axum::routing::post(move |axum::extract::Path(id): axum::extract::Path<String>| {
            let counter = counter.clone();
            async move {
                let mut c = counter.lock().unwrap();
                *c.per_endpoint.entry(id).or_default() += 1;
                c.at.push(Instant::now());
                axum::http::StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, fast).await.unwrap() });

    let mut s = with_push(settings(&redis_url()));
    // The default lease (a send times out at 80% of it): a slow answer from a
    // loaded push service is waited for, not sent again.
    s.push.lease = Duration::from_secs(60);
    if let Some(n) = std::env::var("HERALD_TEST_PUSH_CONCURRENCY")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        s.push.concurrency = n;
    }
    let mut app = TestApp::spawn_with(pool.clone(), s.clone()).await;
    app.worker.take().unwrap().stop().await;
    let push = PushService::start();
    let subs = push.subscriptions(total).await;
    let keys = subs[0]["keys"].clone();
    let noop: Vec<Value> = (0..total)
        .map(|k| json!({"endpoint": format!("http://{addr}/push/{k}"), "keys": keys}))
        .collect();
    let to_noop: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
    let to_stand_in: Vec<String> = (0..40).map(|i| format!("b{i}")).collect();
    subscribe_many(&pool, &to_noop, per_user, &noop).await;
    subscribe_many(&pool, &to_stand_in, per_user, &subs).await;
    let key = s.push.vapid_private_key.as_ref().unwrap().expose().to_owned();
    let worker = WorkerProcess::start(
        &pool,
        &s,
        &key,
        &format!("burst-{}", uuid::Uuid::now_v7().simple()),
    );

    // 1. A push service that answers at once: the worker's own cost.
    let before = Cpu::now(&pool, &worker, &push).await;
    let sent = notify(
        &app,
        json!({"recipients": to_noop, "category": "load", "title": "many"}),
    )
    .await;
    assert_eq!(sent["delivery"]["web_push"]["queued"], total);
    let deadline = Instant::now() + bound;
    while hits.lock().unwrap().at.len() < total {
        let n = hits.lock().unwrap().at.len();
        assert!(Instant::now() < deadline, "{n} of {total} pushes in {bound:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = Cpu::now(&pool, &worker, &push).await;
    let (first, last) = {
        let h = hits.lock().unwrap();
        (h.at[0] - before.at, h.at[total - 1] - before.at)
    };
    after.report(
        &before,
        total,
        "a push service that answers at once",
        first.as_secs_f64(),
        last.as_secs_f64(),
    );

    // 2. The stand-in, which checks VAPID and decrypts each push.
    let before = Cpu::now(&pool, &worker, &push).await;
    let sent = notify(
        &app,
        json!({"recipients": to_stand_in, "category": "load", "title": "many"}),
    )
    .await;
    assert_eq!(sent["delivery"]["web_push"]["queued"], total);
    let deadline = Instant::now() + bound;
    loop {
        let n = push.count().await;
        if n >= total {
            break;
        }
        assert!(Instant::now() < deadline, "{n} of {total} pushes in {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = Cpu::now(&pool, &worker, &push).await;
    let got = push.received().await;
    let at: Vec<f64> = got.iter().map(|p| p["at"].as_f64().unwrap()).collect();
    let (first, last) = (
        at.iter().copied().fold(f64::MAX, f64::min),
        at.iter().copied().fold(0.0, f64::max),
    );
    after.report(
        &before,
        total,
        "the stand-in (verifies and decrypts each)",
        first,
        last,
    );

    // Every subscription got its push; each once, but for what the worker
    // itself counted as sent again: a send unanswered in time is retried
    // (`retried`), one whose answer it could not record is sent again once
    // its lease ends (`sent` past the total). Neither happens unless the
    // machine stalls a send for seconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_endpoint = hits.lock().unwrap().per_endpoint.clone();
    assert_eq!(per_endpoint.len(), total, "every subscription got its push");
    let got = push.received().await;
    let per_sub = got.iter().fold(HashMap::<&str, usize>::new(), |mut m, p| {
        *m.entry(p["sub"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(per_sub.len(), total, "every subscription got its push");
    for p in &got {
        assert_eq!(p["ok"], true, "the stand-in rejected a push: {p}");
        assert_eq!(p["payload"]["id"].as_str().unwrap().len(), 36);
    }
    let (sent, retried) = (
        metric_at(&worker.url, "sent").await,
        metric_at(&worker.url, "retried").await,
    );
    let received = per_endpoint.values().sum::<usize>() + got.len();
    let extra = received as u64 - 2 * total as u64;
    println!("{extra} pushes received twice; the worker counted {sent} sent, {retried} retried");
    assert!(sent >= 2 * total as u64, "{sent} sent of {}", 2 * total);
    assert!(
        extra <= sent - 2 * total as u64 + retried,
        "{extra} pushes received twice, more than the worker sent again"
    );
    worker.kill(&pool).await;
}

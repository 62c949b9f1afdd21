//! Scheduled delivery through worker crashes: the real `herald-worker`
//! binary, killed with SIGKILL just before the first scheduled event is due
//! and again while they come due, among a stream of ordinary publishes.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use herald_domain::Envelope;
use herald_test_support::{
    admin_token, assert_strictly_increasing, redis_url, service_token, settings, start_api, start_gateway,
    test_bus, user_token, SECRET,
};
use serde_json::{json, Value};
use sqlx::PgPool;

/// A `herald-worker` process; SIGKILLed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(db_url: &str, s: &herald_platform::Settings) -> Self {
        Self(
            Command::new(env!("CARGO_BIN_EXE_herald-worker"))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HERALD_DATABASE_URL", db_url)
                .env("HERALD_REDIS_URL", redis_url())
                .env("HERALD_REDIS_PREFIX", &s.bus.prefix)
                .env("HERALD_JWT_SECRET", SECRET)
                .env("HERALD_WORKER_ADDR", "127.0.0.1:0")
                .env("HERALD_WORKER_POLL", "50ms")
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        )
    }

    /// `kill -9`.
    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn post(path: &str, api: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{api}{path}"))
        .bearer_auth(service_token())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert!(status == 202 || status == 201, "{path}: {status} {v}");
    v
}

async fn cancel(api: &str, what: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .delete(format!("{api}/v1/{what}/{id}"))
        .bearer_auth(service_token())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// 40 events and 6 notifications scheduled over 3 s, 9 of them cancelled,
/// 200 ordinary events published meanwhile, and the worker killed with
/// SIGKILL 100 ms before the first is due, then twice more while they come
/// due: every scheduled event that was not cancelled is delivered once, not
/// before its `deliver_at`, in `seq` order with everything else (the same
/// order a replay from the start gives); the cancelled ones never appear.
#[sqlx::test(migrations = "../../migrations")]
async fn scheduled_events_are_delivered_once_in_order_after_a_worker_kill_9_just_before_due(pool: PgPool) {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let base = std::env::var("DATABASE_URL").unwrap();
    let db_url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let s = settings(&redis_url());
    let bus = test_bus(&s);
    let api_service = start_api(&s, pool.clone()).await;
    let gateway = start_gateway(&s, pool.clone(), &bus).await;
    let api = api_service.url();
    let mut worker = Some(WorkerProcess::start(&db_url, &s));

    let topics = "room:1,user:alice";
    let mut stream =
        herald_test_support::SseClient::connect(&gateway.url(), &admin_token(), topics, Some("0")).await;
    assert_eq!(stream.status, 200);

    // Scheduled concurrently, so that even a loaded machine is done well
    // before the first is due.
    let t0 = Utc::now();
    let first_due = t0 + chrono::Duration::milliseconds(3000);
    let event_at = |k: u64| first_due + chrono::Duration::milliseconds(75 * k as i64);
    let events = futures_util::future::join_all((0..40u64).map(|k| {
        let api = api.clone();
        async move {
            let body = json!({"topic": "room:1", "type": "t.scheduled", "data": {"k": k}, "deliver_at": event_at(k)});
            (k, post("/v1/events", &api, body).await["id"].as_str().unwrap().to_owned())
        }
    }))
    .await;
    let notes_sent = futures_util::future::join_all((0..6i64).map(|k| {
        let api = api.clone();
        async move {
            let at = first_due + chrono::Duration::milliseconds(500 * k);
            let body = json!({"recipients": ["alice"], "category": "reminder", "title": format!("r{k}"), "deliver_at": at});
            (k, post("/v1/notifications", &api, body).await["id"].as_str().unwrap().to_owned())
        }
    }))
    .await;
    let mut scheduled: BTreeMap<String, (u64, DateTime<Utc>)> = BTreeMap::new();
    let mut cancelled = BTreeSet::new();
    for (k, id) in events {
        if k % 5 == 2 {
            assert_eq!(cancel(&api, "events", &id).await, 204);
            cancelled.insert(id);
        } else {
            scheduled.insert(id, (k, event_at(k)));
        }
    }
    let mut notes = 0;
    for (k, id) in notes_sent {
        if k == 3 {
            assert_eq!(cancel(&api, "notifications", &id).await, 204);
        } else {
            notes += 1;
        }
    }
    assert!(
        Utc::now() < first_due - chrono::Duration::milliseconds(300),
        "scheduling took too long"
    );

    // Ordinary events throughout.
    let total_plain = 200u64;
    let publisher = {
        let api = api.clone();
        tokio::spawn(async move {
            for n in 1..=total_plain {
                post(
                    "/v1/events",
                    &api,
                    json!({"topic": "room:1", "type": "t.n", "data": {"n": n}}),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // kill -9 100 ms before the first is due, and twice while they come due.
    for (kill_at, down) in [(-100, 400), (900, 200), (1900, 150)] {
        let wait = first_due + chrono::Duration::milliseconds(kill_at) - Utc::now();
        tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
        worker.take().unwrap().kill();
        tokio::time::sleep(Duration::from_millis(down)).await;
        worker = Some(WorkerProcess::start(&db_url, &s));
    }
    publisher.await.unwrap();

    let expected = total_plain as usize + scheduled.len() + notes;
    let got = stream.envelopes(expected, Duration::from_secs(60)).await;
    assert_eq!(got.len(), expected, "every event arrived");
    let extra = stream.next_event(Duration::from_millis(1500)).await;
    assert!(extra.is_none(), "no duplicate after the end: {extra:?}");

    let seqs: Vec<i64> = got.iter().map(|e| e.seq.get()).collect();
    assert_strictly_increasing(&seqs);
    let plain: Vec<u64> = got
        .iter()
        .filter(|e| e.event_type == "t.n")
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        plain,
        (1..=total_plain).collect::<Vec<_>>(),
        "ordinary events: all, once, in order"
    );
    let delivered: Vec<&Envelope> = got.iter().filter(|e| e.event_type == "t.scheduled").collect();
    let ids: Vec<String> = delivered.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        scheduled.keys().cloned().collect::<BTreeSet<_>>(),
        "every scheduled event that was not cancelled, and nothing else"
    );
    assert_eq!(ids.len(), scheduled.len(), "each once");
    let ks: Vec<i64> = delivered.iter().map(|e| e.data["k"].as_i64().unwrap()).collect();
    assert_strictly_increasing(&ks);
    for e in &delivered {
        let (_, at) = scheduled[&e.id.to_string()];
        // The envelope's `created_at` has milliseconds.
        assert!(
            e.created_at >= at.trunc_subsecs(3),
            "{} delivered before its deliver_at",
            e.id
        );
    }
    assert!(ids.iter().all(|id| !cancelled.contains(id)));
    let created = got
        .iter()
        .filter(|e| e.topic.as_str() == "user:alice" && e.event_type == "notification.created")
        .count();
    assert_eq!(
        created, notes,
        "scheduled notifications: each once, the cancelled one never"
    );

    // A replay from the start is the very same sequence.
    let mut replay =
        herald_test_support::SseClient::connect(&gateway.url(), &admin_token(), topics, Some("0")).await;
    let replayed = replay.envelopes(expected, Duration::from_secs(30)).await;
    assert_eq!(
        replayed.iter().map(|e| (e.seq, e.id)).collect::<Vec<_>>(),
        got.iter().map(|e| (e.seq, e.id)).collect::<Vec<_>>()
    );

    let (pending, done, dropped): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE delivered_at IS NULL AND cancelled_at IS NULL),
                count(*) FILTER (WHERE delivered_at IS NOT NULL),
                count(*) FILTER (WHERE cancelled_at IS NOT NULL)
           FROM scheduled_deliveries",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((pending, done, dropped), (0, (scheduled.len() + notes) as i64, 9));
    let r = reqwest::Client::new()
        .get(format!("{api}/v1/me/notifications/counts"))
        .bearer_auth(user_token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["total"], notes);
    drop(worker);
}

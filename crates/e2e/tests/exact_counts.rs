//! Exact counts through everything that changes an inbox at once: grouped
//! sends (some scheduled, delivered by the worker), reads, read-all, seen,
//! archives, snoozes, unsnoozes and the worker's wake-ups, from concurrent
//! services and tabs.
//!
//! The property: a tab that knows nothing but the events of `user:{sub}`
//! can rebuild the inbox from them, and the counts each event carries are
//! exactly the counts of that rebuilt inbox — at every event, not only the
//! last. At the end the REST lists and counts agree with it too.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use herald_test_support::{service_token, user_token, TestApp};
use serde_json::{json, Value};
use sqlx::PgPool;

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    }
}

/// One entry as a tab knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    read: bool,
    seen: bool,
    /// In the default list: not archived, not snoozed.
    listed: bool,
}

/// The inbox a tab rebuilds from the events alone.
#[derive(Debug, Default)]
struct Model {
    entries: BTreeMap<String, Entry>,
}

impl Model {
    fn apply(&mut self, event: &str, data: &Value) {
        match event {
            "notification.created" | "notification.updated" | "notification.snoozed" => {
                let n = &data["notification"];
                self.entries.insert(
                    n["id"].as_str().unwrap().to_owned(),
                    Entry {
                        read: !n["read_at"].is_null(),
                        seen: !n["seen_at"].is_null(),
                        listed: n["archived_at"].is_null() && n["snoozed_until"].is_null(),
                    },
                );
            }
            "inbox.read_all" => {
                for e in self.entries.values_mut().filter(|e| e.listed) {
                    e.read = true;
                    e.seen = true;
                }
            }
            "inbox.seen" => {
                for e in self.entries.values_mut().filter(|e| e.listed) {
                    e.seen = true;
                }
            }
            other => panic!("unexpected inbox event {other}"),
        }
    }

    fn counts(&self) -> Value {
        let listed = || self.entries.values().filter(|e| e.listed);
        json!({
            "unread": listed().filter(|e| !e.read).count(),
            "unseen": listed().filter(|e| !e.seen).count(),
            "total": listed().count(),
        })
    }

    fn listed(&self, unread_only: bool) -> BTreeSet<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.listed && (!unread_only || !e.read))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

async fn all_ids(app: &TestApp, user: &str, status: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let r = app
            .http
            .get(format!(
                "{}/v1/me/notifications?status={status}&limit=9{cursor}",
                app.api_url()
            ))
            .bearer_auth(user_token(user))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        for n in page["items"].as_array().unwrap() {
            assert!(
                out.insert(n["id"].as_str().unwrap().to_owned()),
                "listed twice: {n}"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

/// What one user's tabs do, at random: read, unread, archive, snooze (for
/// 0.5 to 1.5 s), unsnooze, read-all, seen. A snooze picks among the
/// notifications no tab of the user has archived (`archived`, shared by
/// them), so that a user whose few notifications were archived early still
/// snoozes (a snooze of an archived one is a 409, and a run had 3); a tab
/// racing the other's archive still gets the 409.
async fn tab(
    api: String,
    user: &'static str,
    ids: Arc<Mutex<Vec<String>>>,
    archived: Arc<Mutex<BTreeSet<String>>>,
    seed: u64,
    ops: usize,
) {
    let http = reqwest::Client::new();
    let mut rng = Rng(seed);
    for _ in 0..ops {
        let known: Vec<String> = ids.lock().unwrap().clone();
        if known.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let roll = rng.below(100);
        let live: Vec<&String> = {
            let archived = archived.lock().unwrap();
            known.iter().filter(|id| !archived.contains(*id)).collect()
        };
        let id = if (43..=72).contains(&roll) && !live.is_empty() {
            live[rng.below(live.len() as u64) as usize]
        } else {
            &known[rng.below(known.len() as u64) as usize]
        };
        let (path, body) = match roll {
            0..=29 => (format!("/v1/me/notifications/{id}/read"), None),
            30..=39 => (format!("/v1/me/notifications/{id}/unread"), None),
            40..=42 => (format!("/v1/me/notifications/{id}/archive"), None),
            43..=72 => {
                let until = Utc::now() + chrono::Duration::milliseconds(500 + rng.below(1000) as i64);
                (
                    format!("/v1/me/notifications/{id}/snooze"),
                    Some(json!({ "until": until })),
                )
            }
            73..=84 => (format!("/v1/me/notifications/{id}/unsnooze"), None),
            85..=91 => ("/v1/me/notifications/read-all".to_owned(), None),
            _ => ("/v1/me/notifications/seen".to_owned(), None),
        };
        let mut req = http.post(format!("{api}{path}")).bearer_auth(user_token(user));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        if status == 200 && path.ends_with("/archive") {
            archived.lock().unwrap().insert(id.clone());
        }
        // 409: snoozing what another tab archived.
        assert!(
            status == 200 || (status == 409 && path.ends_with("/snooze")),
            "{path}: {status} {}",
            r.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(rng.below(15))).await;
    }
}

/// A service sending comments on three documents (and some ungrouped
/// notifications) to alice and bob, a quarter of them scheduled a little
/// ahead.
async fn service(api: String, ids: [Arc<Mutex<Vec<String>>>; 2], seed: u64, sends: usize) {
    let http = reqwest::Client::new();
    let mut rng = Rng(seed);
    for i in 0..sends {
        let doc = rng.below(4);
        let mut body = json!({"recipients": ["alice", "bob"], "category": "comment",
                              "title": format!("comment {seed}-{i}")});
        if doc < 3 {
            body["group_key"] = json!(format!("doc:{doc}"));
            body["actor"] = json!(["Maya", "Li", "Sam", "Kim"][rng.below(4) as usize]);
        }
        // A quarter are scheduled: the worker delivers them, into groups too.
        let scheduled = rng.below(4) == 0;
        if scheduled {
            body["deliver_at"] =
                json!(Utc::now() + chrono::Duration::milliseconds(100 + rng.below(900) as i64));
        }
        let r = http
            .post(format!("{api}/v1/notifications"))
            .bearer_auth(service_token())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), if scheduled { 202 } else { 201 });
        let sent: Value = r.json().await.unwrap();
        if scheduled {
            continue;
        }
        for (k, n) in sent["notifications"].as_array().unwrap().iter().enumerate() {
            let id = n["id"].as_str().unwrap().to_owned();
            let mut known = ids[k].lock().unwrap();
            if !known.contains(&id) {
                known.push(id);
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn counts_stay_exact_under_concurrent_grouped_sends_reads_snoozes_and_wake_ups(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let users = ["alice", "bob"];
    // Each user's events, as one of their tabs receives them, from the start.
    let mut received = Vec::new();
    for user in users {
        let mut stream = app.stream(&user_token(user), "", Some("0")).await;
        let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let sink = got.clone();
        let reader = tokio::spawn(async move {
            while let Some(e) = stream.next_event(Duration::from_secs(120)).await {
                let env: Value = serde_json::from_str(&e.data).unwrap();
                sink.lock().unwrap().push((e.event, env["data"].clone()));
            }
        });
        received.push((got, reader));
    }

    let ids: [Arc<Mutex<Vec<String>>>; 2] = Default::default();
    let seed = 0x9e37_79b9_7f4a_7c15u64 ^ Utc::now().timestamp_micros() as u64;
    println!("seed {seed:#x}");
    let mut tasks = Vec::new();
    for s in 0..3 {
        tasks.push(tokio::spawn(service(app.api_url(), ids.clone(), seed + s, 25)));
    }
    for (k, user) in users.into_iter().enumerate() {
        let archived: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        for t in 0..2 {
            let seed = seed.wrapping_mul(31).wrapping_add(10 * k as u64 + t);
            tasks.push(tokio::spawn(tab(
                app.api_url(),
                user,
                ids[k].clone(),
                archived.clone(),
                seed | 1,
                45,
            )));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Every scheduled notification is delivered, every snooze wakes (the
    // longest ends 1.5 s after the last request).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM scheduled_deliveries WHERE delivered_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "scheduled notifications never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for user in users {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !all_ids(&app, user, "snoozed").await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{user}: snoozes never woke"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    for (k, user) in users.into_iter().enumerate() {
        let topic = format!("user:{user}");
        let (got, reader) = &received[k];
        // Wait until the tab has every event of the topic.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let total = loop {
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE topic = $1")
                .bind(&topic)
                .fetch_one(&pool)
                .await
                .unwrap();
            if got.lock().unwrap().len() as i64 == total {
                break total;
            }
            assert!(tokio::time::Instant::now() < deadline, "{user}: events missing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        reader.abort();
        let events = got.lock().unwrap().clone();
        let mut model = Model::default();
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for (i, (event, data)) in events.iter().enumerate() {
            model.apply(event, data);
            *kinds.entry(event.clone()).or_default() += 1;
            assert_eq!(
                data["counts"],
                model.counts(),
                "{user}: event {i} ({event}) carries counts that are not its inbox's"
            );
        }
        println!("{user}: {total} events {kinds:?}");
        assert!(
            kinds.get("notification.snoozed").copied().unwrap_or(0) > 5,
            "snoozes happened"
        );
        let groups = events
            .iter()
            .filter(|(e, d)| {
                e == "notification.updated" && d["notification"]["group_count"].as_i64() > Some(1)
            })
            .count();
        assert!(groups > 5, "grouped sends happened");

        // The REST view is the same inbox, and the last event said so.
        let r = app
            .http
            .get(format!("{}/v1/me/notifications/counts", app.api_url()))
            .bearer_auth(user_token(user))
            .send()
            .await
            .unwrap();
        let counts: Value = r.json().await.unwrap();
        assert_eq!(counts, model.counts(), "{user}: REST counts");
        assert_eq!(
            events.last().unwrap().1["counts"],
            counts,
            "{user}: the last event's counts"
        );
        assert_eq!(
            all_ids(&app, user, "all").await,
            model.listed(false),
            "{user}: the list"
        );
        assert_eq!(
            all_ids(&app, user, "unread").await,
            model.listed(true),
            "{user}: unread"
        );
    }
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM due_work WHERE kind = 'notification.wake' AND due_at <= now()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stale, 0, "every due wake-up ran");
}

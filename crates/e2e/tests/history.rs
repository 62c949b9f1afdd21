//! A topic's history over REST (`GET /v1/topics/{topic}/events`) proves every
//! page complete, or says it is not: a client paging through it while
//! retention prunes gets `truncated: true` on every page that cannot be
//! complete, and never a page that silently starts past where it asked.
//! Retention is the worker's own, run with a retention of a second.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_test_support::{event_partitions, redis_url, settings, user_token, TestApp};
use serde_json::Value;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(20);
const TOPIC: &str = "user:alice";

/// `n` sequenced events on [`TOPIC`] (seq 1..=n, the sequencer at n), each
/// created a day in the future: retention keeps them until [`expire`] ages
/// them, so the test decides when the worker's retention may take them.
async fn history(pool: &PgPool, n: i64) {
    sqlx::query(
        "INSERT INTO events (id, topic, type, data, seq, created_at, sequenced_at)
         SELECT gen_random_uuid(), $1, 'test.event', jsonb_build_object('n', g), g,
                now() + interval '1 day', now()
           FROM generate_series(1, $2) g",
    )
    .bind(TOPIC)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
    herald_test_support::sequencer_at(pool, n).await;
}

/// Ages events up to `upto` past any retention.
async fn expire(pool: &PgPool, upto: i64) {
    herald_test_support::age_events(pool, upto).await;
}

async fn pruned_seq(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pruned_seq FROM sequencer")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until the worker's retention has pruned up to `upto`.
async fn pruned_up_to(pool: &PgPool, upto: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while pruned_seq(pool).await < upto {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never pruned up to {upto}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An app whose worker prunes anything older than a second, every 250 ms.
async fn app(pool: PgPool) -> TestApp {
    let mut s = settings(&redis_url());
    s.worker.retention = Duration::from_secs(1);
    TestApp::spawn_with(pool, s).await
}

/// One page as a client reads it: (seqs, next_after, truncated).
struct Page {
    seqs: Vec<i64>,
    next_after: Option<i64>,
    truncated: bool,
    raw: Value,
}

async fn page(app: &TestApp, query: &str) -> Page {
    let r = app
        .http
        .get(format!("{}/v1/topics/{TOPIC}/events?{query}", app.api_url()))
        .bearer_auth(user_token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET ?{query}");
    let raw: Value = r.json().await.unwrap();
    let seqs = raw["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["topic"], TOPIC);
            e["seq"].as_i64().unwrap()
        })
        .collect();
    Page {
        seqs,
        next_after: raw["next_after"].as_i64(),
        truncated: raw["truncated"]
            .as_bool()
            .unwrap_or_else(|| panic!("`truncated` is a boolean: {raw}")),
        raw,
    }
}

/// A client reads page 1, retention prunes past it, the client reads page
/// 2: page 2 says `truncated` (what it holds starts after a gap), and so
/// does the first page of a new listing. A listing from at or past the
/// pruning position is complete and says so: the flag is exact, not "some
/// history was pruned once".
#[sqlx::test(migrations = "../../migrations")]
async fn every_history_page_says_truncated_when_retention_pruned_what_it_asked_for(pool: PgPool) {
    // Retention drops whole partitions: events 1..=10, 11..=20, 21..=30.
    event_partitions(&pool, 10, 4).await;
    history(&pool, 30).await;
    let app = app(pool.clone()).await;

    let first = page(&app, "limit=10").await;
    assert_eq!(first.seqs, (1..=10).collect::<Vec<_>>(), "{}", first.raw);
    assert_eq!(first.next_after, Some(10));
    assert!(!first.truncated, "nothing pruned yet: {}", first.raw);

    // Between the two pages, retention takes 1..=20: 11..=20 were never read.
    expire(&pool, 20).await;
    pruned_up_to(&pool, 20).await;

    let second = page(&app, "after=10&limit=10").await;
    assert!(
        second.truncated,
        "11..=20 were pruned after page 1: page 2 must say so, not skip them: {}",
        second.raw
    );
    assert_eq!(second.seqs, (21..=30).collect::<Vec<_>>(), "what is left");

    // A new listing from the oldest retained: its first page is truncated too.
    for query in ["limit=10", "after=0&limit=10", "after=19&limit=10"] {
        let p = page(&app, query).await;
        assert!(p.truncated, "?{query} after the prune: {}", p.raw);
        assert_eq!(p.seqs, (21..=30).collect::<Vec<_>>(), "?{query}");
    }

    // From the pruning position on, the history is whole: not truncated,
    // page after page, to the end.
    let at = page(&app, "after=20&limit=5").await;
    assert!(!at.truncated, "after=20 misses nothing: {}", at.raw);
    assert_eq!(at.seqs, (21..=25).collect::<Vec<_>>());
    assert_eq!(at.next_after, Some(25));
    let rest = page(&app, "after=25&limit=5").await;
    assert!(!rest.truncated, "{}", rest.raw);
    assert_eq!(rest.seqs, (26..=30).collect::<Vec<_>>());

    // Everything pruned: the page the client would read next is empty, and
    // it must not look like the end of a complete history.
    expire(&pool, 30).await;
    pruned_up_to(&pool, 30).await;
    let gone = page(&app, "after=25&limit=5").await;
    assert!(gone.seqs.is_empty(), "{}", gone.raw);
    assert_eq!(gone.next_after, None);
    assert!(gone.truncated, "26..=30 were pruned: {}", gone.raw);
    let head = page(&app, "after=30&limit=5").await;
    assert!(
        !head.truncated && head.seqs.is_empty(),
        "after the head nothing is missing: {}",
        head.raw
    );
}

/// A client pages through a long history while retention prunes it in
/// batches (several transactions, each moving the pruning position): every
/// page is either an unbroken continuation of where the client asked, or
/// says `truncated`. The position and the page come from one snapshot, so
/// no page can claim completeness across a prune that ran between reading
/// the one and the other.
#[sqlx::test(migrations = "../../migrations")]
async fn every_history_page_is_complete_or_truncated_while_retention_runs(pool: PgPool) {
    const EVENTS: i64 = 3_000;
    // 30 partitions of 100: the prune takes 30 steps.
    event_partitions(&pool, 100, 31).await;
    history(&pool, EVENTS).await;
    let app = app(pool.clone()).await;

    let mut after = 0;
    let mut pages = 0;
    let mut truncated_pages = 0;
    let mut read = Vec::new();
    loop {
        let p = page(&app, &format!("after={after}&limit=20")).await;
        pages += 1;
        if pages == 3 {
            // Mid-listing: the worker prunes everything, a partition at a time.
            expire(&pool, EVENTS).await;
        }
        if p.truncated {
            truncated_pages += 1;
        } else {
            let want: Vec<i64> = (after + 1..).take(p.seqs.len()).collect();
            assert_eq!(
                p.seqs, want,
                "page {pages} after={after} claims to be complete but skips"
            );
        }
        assert!(p.seqs.iter().all(|s| *s > after), "{}", p.raw);
        read.extend_from_slice(&p.seqs);
        match p.next_after {
            Some(n) => after = n,
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    herald_test_support::assert_strictly_increasing(&read);
    assert!(
        truncated_pages > 0,
        "retention ran during the listing ({pages} pages, {} events read), so some page is truncated",
        read.len()
    );
    assert!((read.len() as i64) < EVENTS, "the prune took part of the history");
}

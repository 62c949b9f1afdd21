//! End to end on a Redis Cluster bus (sharded pub/sub): api → worker →
//! `SPUBLISH` on three masters → gateway (one connection per shard, merged
//! by `seq`) → SSE. Each test runs its own private 3-master cluster.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::time::Duration;

use herald_domain::Envelope;
use herald_test_support::{admin_token, assert_strictly_increasing, RedisCluster, SseClient, TestApp};
use serde_json::json;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(60);

async fn cluster_app(pool: PgPool, cluster: &RedisCluster) -> TestApp {
    cluster.app(pool).await
}

/// One topic per shard, and the stream's `topics` parameter for them.
async fn topics(app: &TestApp, cluster: &RedisCluster) -> (Vec<(String, u16)>, String) {
    let per_shard = cluster.topic_per_shard(&app.settings.bus.prefix, "feed").await;
    assert_eq!(per_shard.len(), 3, "three masters");
    let mut ports: Vec<u16> = per_shard.iter().map(|(_, p)| *p).collect();
    ports.dedup();
    assert_eq!(ports.len(), 3, "the topics live on three different shards");
    let list = per_shard
        .iter()
        .map(|(t, _)| t.as_str())
        .collect::<Vec<_>>()
        .join(",");
    (per_shard, list)
}

/// Every sequenced event of `topics`, in `seq` order, from Postgres.
async fn history(pool: &PgPool, topics: &[(String, u16)]) -> Vec<i64> {
    let names: Vec<String> = topics.iter().map(|(t, _)| t.clone()).collect();
    sqlx::query_scalar("SELECT seq FROM events WHERE topic = ANY($1) AND seq IS NOT NULL ORDER BY seq")
        .bind(&names)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// `n` of each topic, by topic.
fn by_topic(events: &[Envelope]) -> HashMap<String, Vec<u64>> {
    let mut m: HashMap<String, Vec<u64>> = HashMap::new();
    for e in events {
        m.entry(e.topic.clone())
            .or_default()
            .push(e.data["n"].as_u64().expect("n"));
    }
    m
}

/// Publishes a sentinel on `topic` and asserts it is the very next event on
/// `stream`: nothing (no duplicate, no stray) was queued before it.
async fn assert_nothing_more(app: &TestApp, stream: &mut SseClient, topic: &str) {
    let r = app.publish(topic, "t.sentinel", json!({"n": 0})).await;
    assert_eq!(r.status(), 202);
    let next = stream.envelopes(1, WAIT).await;
    assert_eq!(next.len(), 1, "the sentinel arrives: {}", stream.raw.len());
    assert_eq!(
        next[0].event_type, "t.sentinel",
        "no extra event before the sentinel: {:?}",
        next[0]
    );
}

/// Reads the stream until it holds `total` events (after `early`) and checks
/// they are exactly the topics' log in Postgres, in its order.
async fn rest_is_exactly_the_log(
    pool: &PgPool,
    stream: &mut SseClient,
    early: Vec<Envelope>,
    total: usize,
    topics: &[(String, u16)],
) -> Vec<Envelope> {
    let mut got = early;
    got.extend(stream.envelopes(total - got.len(), WAIT).await);
    assert_eq!(got.len(), total, "every event arrived");
    let seqs: Vec<i64> = got.iter().map(|e| e.seq.get()).collect();
    assert_strictly_increasing(&seqs);
    assert_eq!(seqs, history(pool, topics).await, "exactly the log, in its order");
    got
}

async fn gateway_metric(app: &TestApp, name: &str) -> u64 {
    let text = herald_test_support::metrics(&app.gateway_url()).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[sqlx::test(migrations = "../../migrations")]
async fn cluster_topics_on_different_shards_reach_one_stream_exactly_once_in_seq_order(pool: PgPool) {
    let cluster = RedisCluster::start();
    let app = cluster_app(pool.clone(), &cluster).await;
    let (topics, list) = topics(&app, &cluster).await;
    let mut stream = app.stream(&admin_token(), &list, None).await;
    assert_eq!(stream.status, 200);

    // The gateway subscribed each topic on the shard owning it, sharded.
    for (topic, port) in &topics {
        let channel = herald_bus::channel(&app.settings.bus.prefix, topic);
        assert_eq!(cluster.shard_subscribers(*port, &channel).await, 1, "{channel}");
    }

    // Concurrent publishers, so that batches mix shards.
    let per_topic = 60u64;
    let publishers: Vec<_> = topics
        .iter()
        .flat_map(|(t, _)| {
            [
                app.spawn_publisher(t, per_topic / 2, Duration::ZERO),
                app.spawn_publisher(t, per_topic / 2, Duration::from_millis(3)),
            ]
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let total = per_topic as usize * topics.len();
    let got = stream.envelopes(total, WAIT).await;
    assert_eq!(got.len(), total, "every event arrived");
    let seqs: Vec<i64> = got.iter().map(|e| e.seq.get()).collect();
    assert_strictly_increasing(&seqs);
    assert_eq!(
        seqs,
        history(&pool, &topics).await,
        "exactly the log, in its order"
    );
    for (topic, ns) in by_topic(&got) {
        let mut ns = ns;
        ns.sort_unstable();
        let want: Vec<u64> = (1..=per_topic / 2).flat_map(|n| [n, n]).collect();
        assert_eq!(ns, want, "{topic}: each publisher's events once");
    }
    assert_nothing_more(&app, &mut stream, &topics[1].0).await;
    // All of it came live through the shard merge: no session was restarted
    // (a missing watermark would stall and resynchronise from Postgres).
    assert_eq!(gateway_metric(&app, "herald_redis_reconnects_total").await, 0);
    assert_eq!(gateway_metric(&app, "herald_caught_up_events_total").await, 0);
}

/// Publishes `per_topic` events on each topic, slowly, while `fault` runs;
/// the open stream must still see every event exactly once, in order.
async fn survives<F, Fut>(pool: PgPool, cluster: RedisCluster, fault: F)
where
    F: FnOnce(RedisCluster, Vec<(String, u16)>) -> Fut,
    Fut: std::future::Future<Output = RedisCluster>,
{
    let app = cluster_app(pool.clone(), &cluster).await;
    let (topics, list) = topics(&app, &cluster).await;
    let mut stream = app.stream(&admin_token(), &list, None).await;
    assert_eq!(stream.status, 200);
    let per_topic = 50u64;
    let publishers: Vec<_> = topics
        .iter()
        .map(|(t, _)| app.spawn_publisher(t, per_topic, Duration::from_millis(20)))
        .collect();
    // Let some events flow live first.
    let early = stream.envelopes(10, WAIT).await;
    assert_eq!(early.len(), 10);
    let _cluster = fault(cluster, topics.clone()).await;
    for p in publishers {
        p.await.unwrap();
    }
    let got = rest_is_exactly_the_log(
        &pool,
        &mut stream,
        early,
        per_topic as usize * topics.len(),
        &topics,
    )
    .await;
    for (topic, ns) in by_topic(&got) {
        assert_eq!(ns, (1..=per_topic).collect::<Vec<_>>(), "{topic}");
    }
    assert!(
        gateway_metric(&app, "herald_redis_reconnects_total").await >= 1,
        "the fault reached the gateway"
    );
    assert_nothing_more(&app, &mut stream, &topics[0].0).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn cluster_killing_one_shards_pubsub_connections_loses_nothing(pool: PgPool) {
    let cluster = RedisCluster::start();
    survives(pool, cluster, |cluster, topics| async move {
        let (_, port) = topics[1];
        let killed = cluster.kill_clients(port, "pubsub").await;
        assert!(killed >= 1, "the gateway's shard connection was killed");
        cluster
    })
    .await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn cluster_restarting_a_node_loses_nothing(pool: PgPool) {
    let cluster = RedisCluster::start();
    survives(pool, cluster, |mut cluster, topics| async move {
        let (_, port) = topics[2];
        let node = cluster.ports.iter().position(|p| *p == port).unwrap();
        tokio::task::spawn_blocking(move || {
            cluster.restart_node(node);
            cluster
        })
        .await
        .unwrap()
    })
    .await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn cluster_resume_with_last_event_id_replays_exactly(pool: PgPool) {
    let cluster = RedisCluster::start();
    let app = cluster_app(pool.clone(), &cluster).await;
    let (topics, list) = topics(&app, &cluster).await;
    let token = admin_token();
    let mut first = app.stream(&token, &list, None).await;
    for n in 1..=12u64 {
        app.publish_ok(&topics[n as usize % 3].0, n).await;
    }
    let seen = first.envelopes(5, WAIT).await;
    assert_eq!(seen.len(), 5);
    let last = first.last_event_id();
    assert_eq!(last, seen[4].seq.to_string());
    drop(first);
    for n in 13..=24u64 {
        app.publish_ok(&topics[n as usize % 3].0, n).await;
    }
    let mut resumed = app.stream(&token, &list, Some(&last)).await;
    assert_eq!(resumed.status, 200);
    // Replay, then live across the seam.
    let live = app.spawn_publisher(&topics[0].0, 6, Duration::from_millis(10));
    let rest = resumed.envelopes(19 + 6, WAIT).await;
    live.await.unwrap();
    let seqs: Vec<i64> = rest.iter().map(|e| e.seq.get()).collect();
    assert_strictly_increasing(&seqs);
    let all = history(&pool, &topics).await;
    let after: Vec<i64> = all.into_iter().filter(|s| *s > seen[4].seq.get()).collect();
    assert_eq!(seqs, after, "exactly what came after Last-Event-ID");
    let ns: Vec<u64> = rest
        .iter()
        .take(19)
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (6..=24).collect::<Vec<_>>(), "the replay, in publish order");
    assert_nothing_more(&app, &mut resumed, &topics[2].0).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn cluster_following_a_slot_migration_loses_nothing(pool: PgPool) {
    let cluster = RedisCluster::start();
    let app = cluster_app(pool.clone(), &cluster).await;
    let (topics, list) = topics(&app, &cluster).await;
    let mut stream = app.stream(&admin_token(), &list, None).await;
    assert_eq!(stream.status, 200);
    let per_topic = 40u64;
    let publishers: Vec<_> = topics
        .iter()
        .map(|(t, _)| app.spawn_publisher(t, per_topic, Duration::from_millis(25)))
        .collect();
    let early = stream.envelopes(10, WAIT).await;
    assert_eq!(early.len(), 10);

    // Move the slot of the first topic's channel to the second topic's master.
    let channel = herald_bus::channel(&app.settings.bus.prefix, &topics[0].0);
    let slot = herald_bus::cluster::topology::key_slot(channel.as_bytes());
    let to = topics[1].1;
    cluster.move_slot(slot, to).await;

    for p in publishers {
        p.await.unwrap();
    }
    rest_is_exactly_the_log(
        &pool,
        &mut stream,
        early,
        per_topic as usize * topics.len(),
        &topics,
    )
    .await;
    assert_nothing_more(&app, &mut stream, &topics[0].0).await;
    // The gateway followed the channel to its new master.
    assert_eq!(
        cluster.shard_subscribers(to, &channel).await,
        1,
        "{channel} on its new master"
    );
    assert_eq!(
        cluster.shard_subscribers(topics[0].1, &channel).await,
        0,
        "and left the old one"
    );
}

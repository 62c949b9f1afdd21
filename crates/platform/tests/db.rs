//! `db::connect_lazy`: connections named after the service and retired once
//! old, so a burst's connections do not outlive it; and with several servers,
//! the pool goes to the one that accepts writes, skips one that is down or
//! read-only, and follows the primary when it moves. Two databases of the test server stand in for two
//! servers: `ALTER DATABASE … SET default_transaction_read_only` makes one
//! read-only for new sessions, as a standby is, and terminating its sessions
//! is the old primary dying.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_platform::config::{DatabaseSettings, Secret};
use herald_platform::db;
use sqlx::PgPool;

/// The URL of database `name` on the test server (`DATABASE_URL`'s).
fn url_of(name: &str) -> url::Url {
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(name);
    url
}

async fn read_only(admin: &PgPool, db: &str, on: bool) {
    sqlx::query(&format!(
        "ALTER DATABASE {db} SET default_transaction_read_only = {}",
        if on { "on" } else { "off" }
    ))
    .execute(admin)
    .await
    .unwrap();
}

/// Waits until the pool's queries run in `db` (and can write there).
async fn eventually_on(pool: &PgPool, db: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now: Result<(String, String), _> =
            sqlx::query_as("SELECT current_database()::text, current_setting('transaction_read_only')")
                .fetch_one(pool)
                .await;
        match now {
            Ok((name, ro)) if name == db && ro == "off" => return,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "the pool is not on {db}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test]
async fn the_pool_follows_the_server_that_accepts_writes(admin: PgPool) {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let (a, b) = (
        format!("herald_primary_{tag}_a"),
        format!("herald_primary_{tag}_b"),
    );
    for name in [&a, &b] {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
    }
    read_only(&admin, &b, true).await;
    // A server that is down: a port nothing listens on.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut url = url_of("herald");
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port())).unwrap();
        url
    };
    let settings = DatabaseSettings {
        url: Secret::new("unused"),
        servers: [down, url_of(&b), url_of(&a)]
            .iter()
            .map(|u| Secret::new(u.as_str()))
            .collect(),
        read_write: true,
        max_connections: 4,
        connection_lifetime: Duration::from_secs(300),
    };
    let pool = db::connect_lazy(&settings, "herald-test").unwrap();

    // Past the server that is down and the read-only one.
    eventually_on(&pool, &a).await;

    // The primary moves: `a` turns read-only and its sessions die, `b` accepts writes.
    read_only(&admin, &b, false).await;
    read_only(&admin, &a, true).await;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&a)
        .execute(&admin)
        .await
        .unwrap();
    eventually_on(&pool, &b).await;

    pool.close().await;
    for name in [&a, &b] {
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&admin)
            .await
            .unwrap();
    }
}

/// The test database's connections named `name`, as Postgres sees them.
async fn named(admin: &PgPool, name: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(name)
        .fetch_one(admin)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_burst_s_connections_are_retired_under_steady_light_use(admin: PgPool) {
    let db: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&admin)
        .await
        .unwrap();
    let name = format!("herald-test-{}", uuid::Uuid::now_v7().simple());
    let settings = DatabaseSettings {
        url: Secret::new("unused"),
        servers: vec![Secret::new(url_of(&db).as_str())],
        read_write: false,
        max_connections: 8,
        connection_lifetime: Duration::from_secs(1),
    };
    let pool = db::connect_lazy(&settings, &name).unwrap();

    // A burst: eight queries at once open eight connections, all named.
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let pool = pool.clone();
        burst.spawn(async move { sqlx::query("SELECT pg_sleep(0.3)").execute(&pool).await });
    }
    while let Some(done) = burst.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(named(&admin, &name).await, 8);

    // Then one query at a time, every 20 ms. The pool hands out its oldest idle
    // connection first, so all eight keep being used and none idles out; only
    // their lifetime retires them, and the pool opens no more than the one
    // query at a time needs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        sqlx::query("SELECT 1").execute(&pool).await.unwrap();
        let open = named(&admin, &name).await;
        if open <= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} connections still open 10 s after the burst (lifetime 1 s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;
}

//! The `herald` binary with Postgres as the only server: publish over REST,
//! stream from the API address, kill it and resume.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_test_support::{service_token, user_token, wait_ready, SseClient, SECRET};
use serde_json::json;
use sqlx::PgPool;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A page origin the single node allows (HERALD_CORS_ORIGINS).
const APP_ORIGIN: &str = "http://app.example.test:5173";

struct Herald(Child);

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(db_url: &str, api: u16, gw: u16, worker: u16) -> Herald {
    Herald(
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERALD_DATABASE_URL", db_url)
            .env("HERALD_JWT_SECRET", SECRET)
            .env("HERALD_API_ADDR", format!("127.0.0.1:{api}"))
            .env("HERALD_GATEWAY_ADDR", format!("127.0.0.1:{gw}"))
            .env("HERALD_WORKER_ADDR", format!("127.0.0.1:{worker}"))
            .env("HERALD_CORS_ORIGINS", APP_ORIGIN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

#[sqlx::test(migrations = false)]
async fn one_binary_on_postgres_alone_publishes_streams_and_survives_kill_9(pool: PgPool) {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let base = std::env::var("DATABASE_URL").unwrap();
    let db_url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let (api, gw, worker) = (free_port(), free_port(), free_port());
    let mut herald = start(&db_url, api, gw, worker);
    let api_url = format!("http://127.0.0.1:{api}");
    wait_ready(&api_url).await;
    wait_ready(&format!("http://127.0.0.1:{gw}")).await;

    // The stream is served on the API address too.
    let mut s = SseClient::connect(&api_url, &user_token("alice"), "user:alice", None).await;
    assert_eq!(s.status, 200);
    let http = reqwest::Client::new();
    let publish = |n: u64| {
        let http = http.clone();
        let api_url = api_url.clone();
        async move {
            let r = http
                .post(format!("{api_url}/v1/events"))
                .bearer_auth(service_token())
                .json(&json!({"topic": "user:alice", "type": "t.n", "data": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    };
    for n in 1..=3 {
        publish(n).await;
    }
    let got = s.envelopes(3, Duration::from_secs(10)).await;
    assert_eq!(
        got.iter()
            .map(|e| e.data["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let last = s.last_event_id();

    // kill -9, restart: history is in Postgres, so the client resumes exactly.
    drop(herald);
    herald = start(&db_url, api, gw, worker);
    wait_ready(&api_url).await;
    for n in 4..=5 {
        publish(n).await;
    }
    let mut resumed = SseClient::connect(
        &format!("http://127.0.0.1:{gw}"),
        &user_token("alice"),
        "user:alice",
        Some(&last),
    )
    .await;
    let rest = resumed.envelopes(2, Duration::from_secs(10)).await;
    assert_eq!(
        rest.iter()
            .map(|e| e.data["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [4, 5]
    );
    drop(herald);
}

/// The stream served on the API address follows HERALD_CORS_ORIGINS like the
/// gateway's: answers and refusals carry CORS headers for allowed origins only.
#[sqlx::test(migrations = false)]
async fn the_api_address_stream_follows_cors_origins(pool: PgPool) {
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let base = std::env::var("DATABASE_URL").unwrap();
    let db_url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let (api, gw, worker) = (free_port(), free_port(), free_port());
    let herald = start(&db_url, api, gw, worker);
    let api_url = format!("http://127.0.0.1:{api}");
    wait_ready(&api_url).await;
    let http = reqwest::Client::new();
    let get = |origin: &'static str, query: &'static str, token: Option<String>| {
        let mut req = http
            .get(format!("{api_url}/v1/stream?{query}"))
            .header("origin", origin);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    for (origin, expected) in [(APP_ORIGIN, Some(APP_ORIGIN)), ("http://evil.example.test", None)] {
        let allow = |r: &reqwest::Response| {
            r.headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let ok = get(origin, "topics=user:alice", Some(user_token("alice")))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{origin}");
        assert_eq!(allow(&ok).as_deref(), expected, "{origin}: open stream");
        drop(ok);
        let unauthorized = get(origin, "topics=user:alice", None).await.unwrap();
        assert_eq!(unauthorized.status(), 401, "{origin}");
        assert_eq!(allow(&unauthorized).as_deref(), expected, "{origin}: 401");
        let forbidden = get(origin, "topics=user:bob", Some(user_token("alice")))
            .await
            .unwrap();
        assert_eq!(forbidden.status(), 403, "{origin}");
        assert_eq!(allow(&forbidden).as_deref(), expected, "{origin}: 403");
        let counts = http
            .get(format!("{api_url}/v1/me/notifications/counts"))
            .header("origin", origin)
            .bearer_auth(user_token("alice"))
            .send()
            .await
            .unwrap();
        assert_eq!(counts.status(), 200);
        assert_eq!(allow(&counts).as_deref(), expected, "{origin}: REST");
    }
    // The stream on the API address answers hostile input exactly as the
    // gateway's own listener: a NUL in a query parameter is a 422 naming it.
    for (query, field) in [
        ("topics=user:al%00ice", "topics"),
        ("topics=user:alice&last_event_id=1%00", "last_event_id"),
    ] {
        let r = get(APP_ORIGIN, query, Some(user_token("alice"))).await.unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let problem: serde_json::Value = r.json().await.unwrap();
        assert!(problem.to_string().contains(field), "{query}: {problem}");
    }
    drop(herald);
}

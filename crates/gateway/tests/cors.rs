//! The stream follows `HERALD_CORS_ORIGINS` like the API: an allowed page's
//! `EventSource` may read its stream and its refusals (401, 403); any other
//! origin gets no `Access-Control-Allow-Origin` on any of them.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use herald_platform::config::CorsOrigins;
use herald_test_support::{redis_url, settings, user_token, TestApp};
use reqwest::Response;
use sqlx::PgPool;

const APP: &str = "http://app.example.test:5173";
const OTHER: &str = "http://evil.example.test";

fn allow_origin(res: &Response) -> Option<String> {
    res.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn stream(app: &TestApp, origin: &str, query: &str, token: Option<&str>) -> Response {
    let mut req = app
        .http
        .get(format!("{}/v1/stream?{query}", app.gateway_url()))
        .header("origin", origin)
        .header("accept", "text/event-stream");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn stream_answers_and_refusals_carry_cors_only_for_allowed_origins(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.cors_origins = CorsOrigins::parse(APP).unwrap();
    let app = TestApp::spawn_with(pool, s).await;
    let alice = user_token("alice");

    for (origin, expected) in [(APP, Some(APP.to_owned())), (OTHER, None)] {
        let ok = stream(&app, origin, "topics=user:alice", Some(&alice)).await;
        assert_eq!(ok.status(), 200, "{origin}");
        assert_eq!(allow_origin(&ok), expected, "{origin}: an open stream");
        let vary = ok
            .headers()
            .get("vary")
            .unwrap()
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(vary.contains("origin"), "{origin}: {vary}");
        drop(ok);

        let unauthorized = stream(&app, origin, "topics=user:alice", None).await;
        assert_eq!(unauthorized.status(), 401, "{origin}");
        assert_eq!(allow_origin(&unauthorized), expected, "{origin}: 401");

        let bad = stream(&app, origin, "access_token=not-a-token", None).await;
        assert_eq!(bad.status(), 401, "{origin}");
        assert_eq!(allow_origin(&bad), expected, "{origin}: 401 of a stream token");

        let forbidden = stream(&app, origin, "topics=user:bob", Some(&alice)).await;
        assert_eq!(forbidden.status(), 403, "{origin}");
        assert_eq!(allow_origin(&forbidden), expected, "{origin}: 403");
    }

    // Never a wildcard unless configured (the gateway used to send `*` to everyone).
    let res = stream(&app, OTHER, "topics=user:bob", Some(&alice)).await;
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[sqlx::test(migrations = "../../migrations")]
async fn without_cors_origins_the_stream_sends_no_allow_origin(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ok = stream(&app, APP, "topics=user:alice", Some(&user_token("alice"))).await;
    assert_eq!(ok.status(), 200);
    assert!(allow_origin(&ok).is_none());
    let refused = stream(&app, APP, "topics=user:alice", None).await;
    assert_eq!(refused.status(), 401);
    assert!(allow_origin(&refused).is_none());
}

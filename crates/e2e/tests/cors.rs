//! CORS: pages on the origins in `HERALD_CORS_ORIGINS` may call the API from
//! the browser (preflight, then the request itself); any other origin gets no
//! `Access-Control-Allow-Origin`, so the browser keeps the answer from it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use herald_platform::config::CorsOrigins;
use herald_test_support::{redis_url, settings, user_token, TestApp};
use reqwest::{Method, Response};
use sqlx::PgPool;

const APP: &str = "http://app.example.test:5173";
const OTHER: &str = "http://evil.example.test";

async fn app_allowing(pool: PgPool, origins: &str) -> TestApp {
    let mut s = settings(&redis_url());
    s.cors_origins = CorsOrigins::parse(origins).unwrap();
    TestApp::spawn_with(pool, s).await
}

fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
}

async fn preflight(app: &TestApp, origin: &str, path: &str, method: &str) -> Response {
    app.http
        .request(Method::OPTIONS, format!("{}{path}", app.api_url()))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn allowed_origin_passes_preflight_and_reads_the_answer(pool: PgPool) {
    let app = app_allowing(pool, &format!("https://other.example.test, {APP}")).await;

    let pre = preflight(&app, APP, "/v1/stream-tokens", "POST").await;
    assert!(pre.status().is_success(), "preflight: {}", pre.status());
    assert_eq!(header(&pre, "access-control-allow-origin").as_deref(), Some(APP));
    let methods = header(&pre, "access-control-allow-methods").unwrap();
    assert!(methods.contains("post"), "{methods}");
    let allowed = header(&pre, "access-control-allow-headers").unwrap();
    for h in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }
    assert!(header(&pre, "vary").unwrap().contains("origin"));
    assert!(
        header(&pre, "access-control-allow-credentials").is_none(),
        "no credentials, ever"
    );

    // The request itself: the page may read it, and Retry-After.
    let res = app
        .http
        .get(format!("{}/v1/me/notifications/counts", app.api_url()))
        .header("origin", APP)
        .bearer_auth(user_token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(APP));
    assert!(header(&res, "vary").unwrap().contains("origin"));
    assert!(header(&res, "access-control-expose-headers")
        .unwrap()
        .contains("retry-after"));

    let token = app
        .http
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .header("origin", APP)
        .bearer_auth(user_token("alice"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 201);
    assert_eq!(
        header(&token, "access-control-allow-origin").as_deref(),
        Some(APP)
    );

    // A refusal is readable too, so the page can tell a 401 from a network error.
    let refused = app
        .http
        .get(format!("{}/v1/me/notifications/counts", app.api_url()))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        header(&refused, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn other_origins_get_no_allow_origin(pool: PgPool) {
    let app = app_allowing(pool, APP).await;
    let pre = preflight(&app, OTHER, "/v1/stream-tokens", "POST").await;
    assert!(
        header(&pre, "access-control-allow-origin").is_none(),
        "preflight of another origin"
    );
    let res = app
        .http
        .get(format!("{}/v1/me/notifications/counts", app.api_url()))
        .header("origin", OTHER)
        .bearer_auth(user_token("alice"))
        .send()
        .await
        .unwrap();
    // Served as usual (nothing to log), but the browser keeps it from the page.
    assert_eq!(res.status(), 200);
    assert!(header(&res, "access-control-allow-origin").is_none());
    assert!(header(&res, "vary").unwrap().contains("origin"));
    // An origin differing only by port or scheme is another origin.
    for near in [
        "http://app.example.test:5174",
        "https://app.example.test:5173",
        "http://app.example.test",
    ] {
        let pre = preflight(&app, near, "/v1/me/notifications/counts", "GET").await;
        assert!(header(&pre, "access-control-allow-origin").is_none(), "{near}");
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn no_origin_is_allowed_by_default_and_star_allows_any(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    assert_eq!(app.settings.cors_origins, CorsOrigins::None);
    let pre = preflight(&app, APP, "/v1/me/notifications/counts", "GET").await;
    assert!(header(&pre, "access-control-allow-origin").is_none());
    drop(app);

    let app = app_allowing(pool, "*").await;
    let pre = preflight(&app, OTHER, "/v1/me/notifications/counts", "GET").await;
    assert_eq!(header(&pre, "access-control-allow-origin").as_deref(), Some("*"));
    assert!(header(&pre, "access-control-allow-credentials").is_none());
}

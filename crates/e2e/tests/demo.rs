//! The demo page (`HERALD_DEMO=true`): its files, and its service worker served so
//! that the worker's scope can be the whole demo.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use herald_test_support::{redis_url, settings, TestApp};
use sqlx::PgPool;

async fn demo_app(pool: PgPool) -> TestApp {
    let mut s = settings(&redis_url());
    s.api.demo = true;
    s.api.web_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web").into();
    TestApp::spawn_with(pool, s).await
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_service_worker_is_javascript_allowed_to_control_the_whole_demo(pool: PgPool) {
    let app = demo_app(pool).await;
    let res = app
        .http
        .get(format!("{}/demo/herald-sw.js", app.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    // Browsers refuse a service worker script that is not served as JavaScript.
    assert!(h["content-type"].to_str().unwrap().starts_with("text/javascript"));
    // The page is /demo; the script's folder (/demo/) would not cover it.
    assert_eq!(h["service-worker-allowed"], "/demo");
    let body = res.text().await.unwrap();
    assert!(body.contains("installHeraldServiceWorker"), "the built worker");

    // No other file widens any scope.
    for path in ["/demo", "/demo/herald-bell.js"] {
        let res = app
            .http
            .get(format!("{}{path}", app.api_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers().get("service-worker-allowed").is_none(), "{path}");
    }
}

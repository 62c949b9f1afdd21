//! Production key handling and the JWT attack matrix: every forged, stale or
//! misdirected token is 401 at the API and at the gateway.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use herald_test_support::{
    alg_none_token, public_jwk, redis_url, settings, sign_with_key, sign_with_secret, test_key, unix_now,
    SseClient, TestApp,
};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use sqlx::PgPool;

const ISSUER: &str = "https://issuer.test";

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "aud": "herald", "iss": ISSUER, "exp": unix_now() + 600})
}

/// 401 at the API (a user endpoint) and at the gateway, or 200 at both.
async fn status_at_both(app: &TestApp, token: &str) -> (u16, u16) {
    let api = reqwest::Client::new()
        .get(format!("{}/v1/me/notifications/counts", app.api_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let gw = SseClient::connect(&app.gateway_url(), token, "", None)
        .await
        .status;
    (api, gw)
}

fn rs256_settings() -> herald_platform::Settings {
    let mut s = settings(&redis_url());
    s.jwt.secret = None;
    s.jwt.stream_token_secret = Some("stream-secret-for-tests-only".into());
    s.jwt.algorithm = Algorithm::RS256;
    s.jwt.public_key = Some(test_key("rsa-public"));
    s.jwt.issuer = Some(ISSUER.into());
    s
}

#[sqlx::test(migrations = "../../migrations")]
async fn attack_matrix_is_401_at_api_and_gateway_with_rs256(pool: PgPool) {
    let app = TestApp::spawn_with(pool, rs256_settings()).await;
    let private = test_key("rsa-private");
    let public = test_key("rsa-public");
    let good = sign_with_key(Algorithm::RS256, &private, None, &claims("alice"));
    assert_eq!(
        status_at_both(&app, &good).await,
        (200, 200),
        "a valid RS256 token works"
    );

    let mut tampered: Vec<String> = good.split('.').map(str::to_owned).collect();
    tampered[1] = {
        // Same signature, payload claiming another user.
        let forged = sign_with_key(Algorithm::RS256, &private, None, &claims("mallory"));
        forged.split('.').nth(1).unwrap().to_owned()
    };
    let attacks = vec![
        ("alg none", alg_none_token("alice")),
        (
            "HS256 signed with the RSA public key",
            sign_with_secret(public.as_bytes(), &claims("alice")),
        ),
        ("HS512 signed with the RSA public key", {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS512),
                &claims("alice"),
                &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
            )
            .unwrap()
        }),
        (
            "signed by another RSA key",
            sign_with_key(
                Algorithm::RS256,
                &test_key("rsa2-private"),
                None,
                &claims("alice"),
            ),
        ),
        (
            "expired",
            sign_with_key(
                Algorithm::RS256,
                &private,
                None,
                &json!({"sub": "alice", "aud": "herald", "iss": ISSUER, "exp": unix_now() - 60}),
            ),
        ),
        (
            "nbf in the future",
            sign_with_key(
                Algorithm::RS256,
                &private,
                None,
                &json!({"sub": "alice", "aud": "herald", "iss": ISSUER, "exp": unix_now() + 600, "nbf": unix_now() + 300}),
            ),
        ),
        (
            "wrong aud",
            sign_with_key(
                Algorithm::RS256,
                &private,
                None,
                &json!({"sub": "alice", "aud": "elsewhere", "iss": ISSUER, "exp": unix_now() + 600}),
            ),
        ),
        (
            "wrong iss",
            sign_with_key(
                Algorithm::RS256,
                &private,
                None,
                &json!({"sub": "alice", "aud": "herald", "iss": "https://evil.test", "exp": unix_now() + 600}),
            ),
        ),
        (
            "missing iss",
            sign_with_key(
                Algorithm::RS256,
                &private,
                None,
                &json!({"sub": "alice", "aud": "herald", "exp": unix_now() + 600}),
            ),
        ),
        ("tampered payload", tampered.join(".")),
        ("malformed", "not-a-token".into()),
        ("truncated", good[..good.len() - 10].to_owned()),
    ];
    for (name, token) in attacks {
        assert_eq!(status_at_both(&app, &token).await, (401, 401), "{name}");
    }
    // A long-lived token in a URL is refused even though it is valid.
    let url = SseClient::from_request(
        reqwest::Client::new()
            .get(format!("{}/v1/stream", app.gateway_url()))
            .query(&[("access_token", good.as_str())]),
    )
    .await;
    assert_eq!(url.status, 401);
    // Stream tokens still work (Herald signs them with its own secret).
    let minted: Value = reqwest::Client::new()
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(&good)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = SseClient::from_request(
        reqwest::Client::new()
            .get(format!("{}/v1/stream", app.gateway_url()))
            .query(&[("access_token", minted["token"].as_str().unwrap())]),
    )
    .await;
    assert_eq!(s.status, 200);
}

#[sqlx::test(migrations = "../../migrations")]
async fn es256_and_eddsa_public_keys_verify_their_own_tokens_only(pool: PgPool) {
    for (alg, private, public) in [
        (Algorithm::ES256, "ec-private", "ec-public"),
        (Algorithm::EdDSA, "ed-private", "ed-public"),
    ] {
        let mut s = settings(&redis_url());
        s.jwt.algorithm = alg;
        s.jwt.public_key = Some(test_key(public));
        let app = TestApp::spawn_with(pool.clone(), s).await;
        let claims = json!({"sub": "alice", "aud": "herald", "exp": unix_now() + 600});
        let good = sign_with_key(alg, &test_key(private), None, &claims);
        assert_eq!(status_at_both(&app, &good).await, (200, 200), "{alg:?}");
        let rsa = sign_with_key(Algorithm::RS256, &test_key("rsa-private"), None, &claims);
        assert_eq!(
            status_at_both(&app, &rsa).await,
            (401, 401),
            "{alg:?} refuses RS256"
        );
        let hs = herald_test_support::sign(&claims);
        assert_eq!(
            status_at_both(&app, &hs).await,
            (401, 401),
            "{alg:?} refuses HS256"
        );
    }
}

/// A local JWKS endpoint whose key set the test can rotate.
async fn jwks_server(keys: Arc<Mutex<Value>>, fetches: Arc<AtomicUsize>) -> String {
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let keys = keys.clone();
            let fetches = fetches.clone();
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                Json(keys.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
}

#[sqlx::test(migrations = "../../migrations")]
async fn jwks_keys_are_selected_by_kid_and_rotate_without_restart(pool: PgPool) {
    let k1 = test_key("rsa-private");
    let k2 = test_key("rsa2-private");
    let keys = Arc::new(Mutex::new(
        json!({"keys": [public_jwk(Algorithm::RS256, &k1, "k1")]}),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(keys.clone(), fetches.clone()).await;

    let mut s = settings(&redis_url());
    s.jwt.algorithm = Algorithm::RS256;
    s.jwt.jwks_url = Some(url);
    s.jwt.jwks_min_refresh = Duration::from_millis(200);
    let app = TestApp::spawn_with(pool, s).await;
    let claims = json!({"sub": "alice", "aud": "herald", "exp": unix_now() + 600});

    let t1 = sign_with_key(Algorithm::RS256, &k1, Some("k1"), &claims);
    assert_eq!(status_at_both(&app, &t1).await, (200, 200));
    let no_kid = sign_with_key(Algorithm::RS256, &k1, None, &claims);
    assert_eq!(
        status_at_both(&app, &no_kid).await,
        (401, 401),
        "a JWKS token must name its key"
    );
    let unknown = sign_with_key(Algorithm::RS256, &k2, Some("k9"), &claims);
    assert_eq!(status_at_both(&app, &unknown).await, (401, 401), "unknown kid");

    // Unknown kids refresh at most once per HERALD_JWKS_MIN_REFRESH.
    let before = fetches.load(Ordering::SeqCst);
    for _ in 0..10 {
        status_at_both(&app, &unknown).await;
    }
    let during = fetches.load(Ordering::SeqCst) - before;
    assert!(
        during <= 3,
        "{during} fetches for 20 unknown-kid requests: refresh is rate-limited"
    );

    // Rotation: the issuer publishes k2 and retires k1; no restart.
    *keys.lock().unwrap() = json!({"keys": [public_jwk(Algorithm::RS256, &k2, "k2")]});
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t2 = sign_with_key(Algorithm::RS256, &k2, Some("k2"), &claims);
    assert_eq!(
        status_at_both(&app, &t2).await,
        (200, 200),
        "the new key is picked up on first sight"
    );
    // A token signed with k2 but naming k1 is refused.
    let mislabeled = sign_with_key(Algorithm::RS256, &k2, Some("k1"), &claims);
    assert_eq!(status_at_both(&app, &mislabeled).await, (401, 401));
}

/// A JWKS endpoint that hangs (30 s) on every fetch once `hang` is set.
async fn hanging_jwks_server(
    keys: Value,
    hang: Arc<std::sync::atomic::AtomicBool>,
    fetches: Arc<AtomicUsize>,
) -> String {
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let keys = keys.clone();
            let hang = hang.clone();
            let fetches = fetches.clone();
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                if hang.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Json(keys)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
}

/// When the identity provider hangs, a token whose key is cached is still
/// verified at once, at the API and at the gateway, even after the cache's
/// TTL (the refresh runs in the background: stale-while-revalidate); a
/// token naming an unknown key waits a short bounded time, not the fetch
/// timeout of every request in a row.
#[sqlx::test(migrations = "../../migrations")]
async fn a_slow_identity_provider_never_stalls_requests_with_known_keys(pool: PgPool) {
    let k1 = test_key("rsa-private");
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fetches = Arc::new(AtomicUsize::new(0));
    let keys = json!({"keys": [public_jwk(Algorithm::RS256, &k1, "k1")]});
    let url = hanging_jwks_server(keys, hang.clone(), fetches.clone()).await;

    let mut s = settings(&redis_url());
    s.jwt.algorithm = Algorithm::RS256;
    s.jwt.jwks_url = Some(url);
    s.jwt.jwks_cache_ttl = Duration::from_millis(300);
    s.jwt.jwks_min_refresh = Duration::from_millis(100);
    let app = TestApp::spawn_with(pool, s).await;
    let claims = json!({"sub": "alice", "aud": "herald", "exp": unix_now() + 600});
    let known = sign_with_key(Algorithm::RS256, &k1, Some("k1"), &claims);
    assert_eq!(status_at_both(&app, &known).await, (200, 200));

    hang.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await; // past the TTL
    let before = fetches.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(status_at_both(&app, &known).await, (200, 200));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "20 requests with a cached key took {took:?} while the JWKS URL hangs"
    );
    assert!(
        fetches.load(Ordering::SeqCst) > before,
        "a stale cache is refreshed in the background"
    );

    let unknown = sign_with_key(Algorithm::RS256, &k1, Some("k9"), &claims);
    let started = std::time::Instant::now();
    assert_eq!(status_at_both(&app, &unknown).await, (401, 401));
    let took = started.elapsed();
    assert!(
        took < 2 * herald_platform::keys::UNKNOWN_KID_WAIT + Duration::from_secs(1),
        "an unknown kid waited {took:?}"
    );
}

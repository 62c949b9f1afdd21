//! The demo bell page (`web/`), served at `/demo` when `HERALD_DEMO=true`.
//! Files are read from `HERALD_WEB_DIR` (default `web`); names are a single
//! path segment of safe characters, so nothing outside that folder is served.
//!
//! The page registers `/demo/herald-sw.js` (the Web Push service worker of
//! `@herald/client`) with the scope `/demo`, which is above the script's own
//! folder (`/demo/`) and so needs `Service-Worker-Allowed: /demo`; without it
//! the page itself (`/demo`, no slash) would be outside its worker's scope.

use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_platform::problem::Problem;

use crate::AppState;

pub async fn index(State(state): State<AppState>) -> Response {
    file(&state, "index.html").await
}

pub async fn asset(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if name == "config.json" {
        return Json(serde_json::json!({ "gateway_url": state.settings.api.public_gateway_url }))
            .into_response();
    }
    file(&state, &name).await
}

async fn file(state: &AppState, name: &str) -> Response {
    let safe = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !safe {
        return Problem::not_found("no such file").into_response();
    }
    let content_type = match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    match tokio::fs::read(state.settings.api.web_dir.join(name)).await {
        Ok(bytes) => {
            let mut response = (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                bytes,
            )
                .into_response();
            if name == SERVICE_WORKER {
                response.headers_mut().insert(
                    HeaderName::from_static("service-worker-allowed"),
                    HeaderValue::from_static("/demo"),
                );
            }
            response
        }
        Err(_) => Problem::not_found("no such file").into_response(),
    }
}

/// The demo's service worker, whose scope is the whole demo (`/demo`).
const SERVICE_WORKER: &str = "herald-sw.js";

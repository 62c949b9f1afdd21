//! Operations: health, readiness, metrics, the OpenAPI document and the
//! offline docs page (Swagger UI vendored in `assets/`, nothing fetched).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};

use crate::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if herald_platform::db::ping(&state.pool).await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "postgres unreachable")
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.pool.size(), state.pool.num_idle()),
    )
}

pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.clone(),
    )
}

const DOCS_HTML: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Herald API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#docs", validatorUrl: null, deepLinking: true });</script>
</body></html>"##;

pub async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}

pub async fn docs_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js").as_slice(),
    )
}

pub async fn docs_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_bytes!("../../assets/swagger-ui/swagger-ui.css").as_slice(),
    )
}

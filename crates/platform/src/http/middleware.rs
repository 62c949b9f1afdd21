//! Middleware every service's router applies: CORS, bounds on the request
//! head, no NUL in URLs, and problem+json for every error.

use axum::http::header;

use crate::config::CorsOrigins;
use crate::problem::{FieldError, Problem};

/// The CORS layer every service puts outermost, from `HERALD_CORS_ORIGINS`.
///
/// Allowed origins get `Access-Control-Allow-Origin` (their own origin, or `*`
/// with [`CorsOrigins::Any`]) on every answer, refusals included, so a page can
/// read a 401 or a 403. Preflights are answered for `Authorization`,
/// `Content-Type`, `Idempotency-Key` and `Last-Event-ID` (a browser's
/// `EventSource` sends it on reconnect), cached 10 minutes; `Retry-After` and
/// `Idempotent-Replayed` are exposed to scripts. Every answer carries
/// `Vary: Origin` (a shared cache must not hand one origin's answer to
/// another). A disallowed origin gets no `Access-Control-Allow-Origin`: the
/// browser then keeps the answer from the page (the request is still served
/// as usual, so a misconfigured origin logs no error). Credentials (cookies)
/// are never allowed: Herald reads none. Any `OPTIONS` request is answered
/// here as a preflight.
pub fn cors(origins: &CorsOrigins) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    match origins {
        CorsOrigins::None => layer.allow_origin(AllowOrigin::list(std::iter::empty())),
        CorsOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        CorsOrigins::List(list) => layer.allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
}

/// Refuses a request whose URL carries a NUL in a path or query parameter
/// (`%00`, which Postgres cannot store in any column), before any handler
/// sees it: a 422 naming the parameter (by the route template's name for a
/// path segment). Apply with `Router::layer(from_fn(refuse_unstorable_url))`
/// so the matched route is known.
pub async fn refuse_unstorable_url(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    let path_field = uri.path().split('/').enumerate().find_map(|(i, segment)| {
        percent_encoding::percent_decode_str(segment)
            .any(|b| b == 0)
            .then(|| {
                let template = req.extensions().get::<axum::extract::MatchedPath>();
                template
                    .and_then(|t| t.as_str().split('/').nth(i))
                    .and_then(|t| t.strip_prefix('{')?.strip_suffix('}').map(str::to_owned))
                    .unwrap_or_else(|| "path".to_owned())
            })
    });
    let query_field = || {
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).find_map(|(k, v)| {
            if !herald_domain::text::storable(&k) {
                Some("query".to_owned())
            } else if !herald_domain::text::storable(&v) {
                Some(k.into_owned())
            } else {
                None
            }
        })
    };
    if let Some(field) = path_field.or_else(query_field) {
        return Problem::invalid(vec![FieldError::new(field, herald_domain::text::NUL_MESSAGE)])
            .into_response();
    }
    next.run(req).await
}

/// Turns every error response that is not already problem+json (axum's own
/// 404/405/400 rejections, for instance) into one, keeping its status, its
/// text as `detail` and headers such as `Allow`. Apply with
/// `axum::middleware::map_response(problem_for_every_error)`.
pub async fn problem_for_every_error(res: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let title = status.canonical_reason().unwrap_or("Error");
    let slug = title.to_ascii_lowercase().replace(' ', "-");
    let mut problem = Problem::new(status, &slug, title);
    if !text.is_empty() && status.is_client_error() {
        problem = problem.detail(text);
    }
    let mut out = problem.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// The longest request target accepted (414 beyond).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes accepted (431 beyond).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses oversized URLs (414) and header sections (431) with problem+json.
/// Apply with `axum::middleware::from_fn(limit_request_head)`.
pub async fn limit_request_head(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let uri_len = req.uri().to_string().len();
    if uri_len > MAX_URI_BYTES {
        return Problem::new(StatusCode::URI_TOO_LONG, "uri-too-long", "The URL is too long")
            .detail(format!(
                "the request target must be at most {MAX_URI_BYTES} bytes"
            ))
            .into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "The request headers are too large",
        )
        .detail(format!("headers must total at most {MAX_HEADER_BYTES} bytes"))
        .into_response();
    }
    next.run(req).await
}

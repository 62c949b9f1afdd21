//! Extractors whose every rejection is problem+json naming the field at
//! fault: a JSON body ([`JsonBody`]) and query parameters ([`QueryParams`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::HttpLimits;
use crate::problem::{FieldError, Problem};

/// The request body limit (`HERALD_MAX_BODY_BYTES`) as a request extension,
/// so that [`JsonBody`]'s 413 can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body. Rejections: 413 over the body limit (naming it, when
/// a [`BodyLimit`] extension is present), 415 without a JSON content type,
/// 400 for malformed JSON, 422 naming the field for well-formed JSON of the
/// wrong shape.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !json_type {
            return Err(Problem::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected a JSON body",
            )
            .detail("send `Content-Type: application/json`"));
        }
        let size_limit = req.extensions().get::<BodyLimit>().copied();
        // The whole body within the listener's body timeout: a client
        // trickling a byte at a time must not hold the request forever.
        let limit = req
            .extensions()
            .get::<HttpLimits>()
            .map_or(HttpLimits::default().body_timeout, |l| l.body_timeout);
        let read = tokio::time::timeout(limit, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                Problem::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    "The request body took too long",
                )
                .detail(format!(
                    "the whole body must arrive within {} s (HERALD_HTTP_BODY_TIMEOUT)",
                    limit.as_secs_f64()
                ))
            })?;
        let bytes = read.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "The request body is too large",
                )
                .detail(match size_limit {
                    Some(BodyLimit(max)) => format!(
                        "the request body is larger than {max} bytes, the limit set by HERALD_MAX_BODY_BYTES"
                    ),
                    None => rejection.body_text(),
                })
            } else {
                Problem::bad_request(rejection.body_text())
            }
        })?;
        // Every request body is an object; serde would also accept a struct
        // written as an array, which only confuses clients.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(_) => return Err(Problem::invalid_field("body", "must be a JSON object")),
            None => return Err(Problem::bad_request("the body is empty; send a JSON object")),
        }
        refuse_unstorable(&bytes)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Refuses a JSON body holding a string Postgres cannot store (a NUL, which
/// JSON can only carry as the escape `\u0000`), key or value, at any depth,
/// with a 422 naming its path. Bodies without that escape cost one scan.
fn refuse_unstorable(bytes: &[u8]) -> Result<(), Problem> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    // Malformed JSON is left to `parse_json`'s 400.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match herald_domain::text::unstorable_path(&value, "") {
        Some(path) => {
            let field = if path.is_empty() { "body".to_owned() } else { path };
            Err(Problem::invalid(vec![FieldError::new(
                field,
                herald_domain::text::NUL_MESSAGE,
            )]))
        }
        None => Ok(()),
    }
}

/// Parses JSON into `T`, mapping errors to problems that name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = known_path(err.path());
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io
                if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() =>
            {
                Problem::bad_request(format!("the body is not valid JSON: {inner}"))
            }
            // Well-formed JSON that serde still reports as a syntax error: a
            // value of the wrong kind (an object where an enum's string goes).
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => {
                let field = if path == "." { "body".to_owned() } else { path };
                Problem::invalid(vec![FieldError::new(field, "has the wrong type or value")])
            }
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                let field = if path == "." {
                    missing_field(&message).unwrap_or_else(|| "body".into())
                } else {
                    match missing_field(&message) {
                        Some(f) => format!("{path}.{f}"),
                        None => path,
                    }
                };
                Problem::invalid(vec![FieldError::new(field, message)])
            }
        }
    })
}

/// An error's path as a field name, up to its first unknown segment: an
/// error inside an object key (a lone surrogate, say) has no path of its
/// own, so it is named by its object, as `herald_domain::text` names keys;
/// `.` when not even that is known.
fn known_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Unknown => break,
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
        }
    }
    if out.is_empty() {
        ".".to_owned()
    } else {
        out
    }
}

/// serde reports a missing field at its parent's path; name the field itself.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query-string parameters. A bad value is a 422 naming the parameter.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|err| {
                let path = known_path(err.path());
                let message = err.into_inner().to_string();
                let field = match missing_field(&message) {
                    Some(f) => f,
                    None if path == "." => "query".into(),
                    None => path,
                };
                Problem::invalid(vec![FieldError::new(field, message)])
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        topic: herald_domain::Topic,
        n: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let p = parse_json::<Body>(br#"{"topic":"Bad","n":1}"#).unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "topic");
        let p = parse_json::<Body>(br#"{"topic":"a:b"}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "n");
        let p = parse_json::<Body>(br#"{"topic":"a:b","n":"x"}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "n");
        let p = parse_json::<Body>(br#"{"topic":"a:b","n":1,"zz":1}"#).unwrap_err();
        assert!(p.errors[0].message.contains("zz"), "{:?}", p.errors);
        let p = parse_json::<Body>(br#"{"topic":"#).unwrap_err();
        assert_eq!(p.status, 400);
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct WithEnum {
            status: herald_domain::order::OrderStatus,
        }
        for body in [
            &br#"{"status": -5}"#[..],
            br#"{"status": {}}"#,
            br#"{"status": []}"#,
        ] {
            let p = parse_json::<WithEnum>(body).unwrap_err();
            assert_eq!(p.status, 422, "{}", String::from_utf8_lossy(body));
            assert_eq!(p.errors[0].field, "status");
        }
    }
}

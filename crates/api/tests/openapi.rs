//! The checked-in `openapi/openapi.json` is generated from the code.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

#[test]
fn checked_in_openapi_json_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    let generated = herald_api::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.json is stale: regenerate it with `UPDATE_OPENAPI=1 cargo test -p herald-api --test openapi` (or `just openapi`) and commit it"
    );
}

#[test]
fn the_stream_endpoint_is_documented_as_an_event_stream() {
    let doc: serde_json::Value = serde_json::from_str(&herald_api::openapi_json()).unwrap();
    let stream = &doc["paths"]["/v1/stream"]["get"];
    assert!(
        stream["responses"]["200"]["content"]["text/event-stream"].is_object(),
        "{stream}"
    );
    assert!(stream["description"].as_str().unwrap().contains("herald.reset"));
    for path in ["/v1/events", "/v1/topics/{topic}/events", "/v1/stream-tokens"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

/// Generated clients name their methods after `operationId`s (and openapi-typescript
/// makes them keys of one interface): two operations with one id break them.
#[test]
fn every_operation_id_is_unique() {
    let doc: serde_json::Value = serde_json::from_str(&herald_api::openapi_json()).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            let here = format!("{} {path}", method.to_uppercase());
            if let Some(first) = seen.insert(id.to_owned(), here.clone()) {
                panic!("operationId {id:?} is used by both {first} and {here}");
            }
        }
    }
    assert!(seen.len() > 20, "found the operations: {seen:?}");
}

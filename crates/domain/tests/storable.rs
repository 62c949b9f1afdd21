//! Every validator in the domain accepts only text Postgres can store: the
//! hostile strings a client may send (NUL anywhere, other control
//! characters, very long strings, any Unicode) are rejected by every one of
//! them, or are storable. And JSON nested too deep is refused where it is
//! parsed, while a NUL at any depth that parses is found and named.

use herald_domain::feed::{self, FeedName};
use herald_domain::notification::{self, UserId};
use herald_domain::order::{self, OrderStatus};
use herald_domain::text::{storable, unstorable_path};
use herald_domain::{Envelope, EventType, LastEventId, Topic, TopicPattern};
use proptest::prelude::*;
use serde_json::Value;

type Accepts = fn(&str) -> bool;

/// Each validator of a string that may reach the database, by name.
fn validators() -> Vec<(&'static str, Accepts)> {
    vec![
        ("Topic::parse", |s| Topic::parse(s).is_ok()),
        ("TopicPattern::parse", |s| TopicPattern::parse(s).is_ok()),
        ("EventType::parse", |s| EventType::parse(s).is_ok()),
        ("UserId::parse", |s| UserId::parse(s).is_ok()),
        ("FeedName::parse", |s| FeedName::parse(s).is_ok()),
        ("OrderStatus::parse", |s| OrderStatus::parse(s).is_ok()),
        ("notification::category", |s| notification::category(s).is_ok()),
        ("notification::title", |s| notification::title(s).is_ok()),
        ("notification::body", |s| notification::body(s).is_ok()),
        ("notification::action_url", |s| {
            notification::action_url(s).is_ok()
        }),
        ("notification::group_key", |s| notification::group_key(s).is_ok()),
        ("notification::actor", |s| notification::actor(s).is_ok()),
        ("feed::text_field", |s| feed::text_field(s).is_ok()),
        ("feed::verb", |s| feed::verb(s).is_ok()),
        ("order::note", |s| order::note(s).is_ok()),
        ("LastEventId::parse", |s| {
            matches!(LastEventId::parse(s), Some(LastEventId::After(_)))
        }),
    ]
}

/// `s` with `ins` spliced in at a char boundary chosen by `at`.
fn splice(s: &str, ins: &str, at: prop::sample::Index) -> String {
    let cuts: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
    let i = cuts[at.index(cuts.len())];
    format!("{}{}{}", &s[..i], ins, &s[i..])
}

/// Strings a careless or hostile client sends: valid-looking ones with NUL
/// or control characters spliced in, long runs, arbitrary Unicode.
fn hostile() -> impl Strategy<Value = String> {
    let plausible = prop_oneof![
        Just("user:alice".to_owned()),
        Just("comment".to_owned()),
        Just("Hello".to_owned()),
        Just("https://example.com/x".to_owned()),
        Just("42".to_owned()),
        "[a-z][a-z0-9_.-]{0,10}",
        any::<String>(),
    ];
    let inserted = prop_oneof![
        Just("\0".to_owned()),
        Just("\u{1}".to_owned()),
        Just("\u{7f}".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("\u{ffff}".to_owned()),
        Just("\n".to_owned()),
        "[\\x00-\\x1f]{1,4}",
    ];
    prop_oneof![
        plausible.clone(),
        (plausible.clone(), inserted, any::<prop::sample::Index>())
            .prop_map(|(s, ins, at)| splice(&s, &ins, at)),
        (plausible, 1usize..400).prop_map(|(s, n)| s.repeat(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// What a validator accepts, Postgres can store.
    #[test]
    fn every_validator_accepts_only_storable_text(s in hostile()) {
        for (name, accepts) in validators() {
            if accepts(&s) {
                prop_assert!(storable(&s), "{} accepted {:?}", name, s);
            }
        }
    }

    /// A NUL anywhere is refused by every validator.
    #[test]
    fn every_validator_rejects_nul_anywhere(s in any::<String>(), at in any::<prop::sample::Index>()) {
        let with_nul = splice(&s, "\0", at);
        for (name, accepts) in validators() {
            prop_assert!(!accepts(&with_nul), "{} accepted {:?}", name, with_nul);
        }
    }
}

/// JSON nested one level per element of `shape` (an object `{"k": …}` for
/// `true`, an array `[…]` for `false`) around `leaf`, and the path
/// `unstorable_path` gives the leaf under `prefix`.
fn nested(shape: &[bool], leaf: &str, prefix: &str) -> (String, String) {
    let mut json = String::new();
    let mut path = prefix.to_owned();
    for &object in shape {
        if object {
            json.push_str("{\"k\":");
            path = if path.is_empty() {
                "k".into()
            } else {
                format!("{path}.k")
            };
        } else {
            json.push('[');
            path.push_str("[0]");
        }
    }
    json.push_str(leaf);
    for &object in shape.iter().rev() {
        json.push(if object { '}' } else { ']' });
    }
    (json, path)
}

/// An envelope as the bus carries it, with `data` as given.
fn envelope_with(data: &str) -> String {
    format!(
        r#"{{"id":"01936f0e-8f5a-7c2b-9d1e-2f4a5b6c7d8e","seq":1,"topic":"user:alice","type":"t","data":{data},"created_at":"2026-11-24T10:00:00.123Z"}}"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Nesting is bounded by the one JSON parser every body and envelope
    /// goes through (serde_json's recursion limit, 128, which `JsonBody`'s
    /// parse and its NUL scan both rely on): JSON nested 130 to 300 levels,
    /// objects and arrays mixed, is refused as a value and inside an
    /// envelope, never a stack overflow and never accepted.
    #[test]
    fn every_json_value_nested_too_deep_is_refused(shape in prop::collection::vec(any::<bool>(), 130..=300)) {
        let (deep, _) = nested(&shape, "\"x\"", "");
        prop_assert!(serde_json::from_str::<Value>(&deep).is_err(), "a value {} deep parsed", shape.len());
        prop_assert!(
            serde_json::from_str::<Envelope>(&envelope_with(&deep)).is_err(),
            "an envelope with data {} deep parsed", shape.len()
        );
        let (deep_nul, _) = nested(&shape, "\"\\u0000\"", "");
        prop_assert!(serde_json::from_str::<Value>(&deep_nul).is_err());
    }

    /// Below the bound a value parses, and a NUL at the bottom of it, key or
    /// value, however deep, is found and named by its exact path.
    #[test]
    fn a_nul_at_any_depth_that_parses_is_named(
        shape in prop::collection::vec(any::<bool>(), 0..=120),
        in_key in any::<bool>(),
    ) {
        let leaf = if in_key { "{\"a\\u0000b\":1}" } else { "\"a\\u0000b\"" };
        let (json, path) = nested(&shape, leaf, "data");
        let value: Value = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(unstorable_path(&value, "data"), Some(path.clone()));
        let envelope: Envelope = serde_json::from_str(&envelope_with(&json)).unwrap();
        prop_assert_eq!(unstorable_path(&envelope.data, "data"), Some(path));
        let (clean, _) = nested(&shape, "\"ab\"", "data");
        prop_assert_eq!(unstorable_path(&serde_json::from_str(&clean).unwrap(), "data"), None);
    }
}

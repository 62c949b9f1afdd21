//! Every validator in the domain accepts only text Postgres can store: the
//! hostile strings a client may send (NUL anywhere, other control
//! characters, very long strings, any Unicode) are rejected by every one of
//! them, or are storable.

use herald_domain::feed::{self, FeedName};
use herald_domain::notification::{self, UserId};
use herald_domain::order::{self, OrderStatus};
use herald_domain::text::storable;
use herald_domain::{EventType, LastEventId, Topic, TopicPattern};
use proptest::prelude::*;

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

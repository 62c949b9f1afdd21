//! The push-subscription validators accept only text Postgres can store,
//! as `crates/domain/tests/storable.rs` asks of the domain's: a browser's
//! `PushSubscription.toJSON()` is client input. Hostile strings (NUL
//! anywhere, other control characters, very long runs, any Unicode) are
//! refused, or what is kept of them can be stored.
//!
//! The keys are stored as [`SubscriptionKeys`] re-encodes them, so both the
//! input and the stored form are checked. An endpoint is stored as given,
//! while `url` percent-encodes a NUL in a path and trims C0 controls at the
//! ends, so [`EndpointPolicy::check`] refuses control characters itself:
//! both the raw endpoint it accepts and the URL it returns must be storable,
//! and that URL a fixed point of `check`, which the worker relies on when it
//! parses the stored endpoint again. (The edge also refuses a NUL in any JSON
//! string before a handler runs; `crates/e2e/tests/hostile_input.rs`.)

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use base64::Engine as _;
use herald_domain::text::storable;
use herald_push::{EndpointPolicy, SubscriptionKeys};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use proptest::prelude::*;

/// `HERALD_PUSH_ALLOWED_HOSTS`'s default (herald_platform::config).
const DEFAULT_HOSTS: &str = "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.services.mozilla.com,*.notify.windows.com,web.push.apple.com";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A browser's real keys: an uncompressed P-256 point and a 16-byte secret.
fn valid_keys() -> (String, String) {
    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let point = b64(secret.public_key().to_encoded_point(false).as_bytes());
    (point, b64(&[9u8; 16]))
}

/// What a validator keeps of `s` when it accepts it.
type Keeps = Box<dyn Fn(&str) -> Option<String>>;

/// Each push validator of client input, by name, returning what it keeps
/// when it accepts.
fn validators() -> Vec<(&'static str, Keeps)> {
    let strict = EndpointPolicy::parse(DEFAULT_HOSTS, false).unwrap();
    let loopback = EndpointPolicy::parse("127.0.0.1,push.example.com", true).unwrap();
    let (p256dh, auth) = valid_keys();
    let (p, a) = (p256dh.clone(), auth.clone());
    vec![
        // What is kept of an endpoint is the URL `check` returns.
        (
            "EndpointPolicy::check (default hosts)",
            Box::new(move |s| strict.check(s).ok().map(|u| u.as_str().to_owned())),
        ),
        (
            "EndpointPolicy::check (the raw endpoint, as stored)",
            Box::new({
                let strict = EndpointPolicy::parse(DEFAULT_HOSTS, false).unwrap();
                move |s| strict.check(s).ok().map(|_| s.to_owned())
            }),
        ),
        (
            "EndpointPolicy::check (insecure, loopback)",
            Box::new(move |s| loopback.check(s).ok().map(|u| u.as_str().to_owned())),
        ),
        (
            "SubscriptionKeys::parse (p256dh)",
            Box::new(move |s| SubscriptionKeys::parse(s, &a).ok().map(|k| k.p256dh().to_owned())),
        ),
        (
            "SubscriptionKeys::parse (auth)",
            Box::new(move |s| SubscriptionKeys::parse(&p, s).ok().map(|k| k.auth().to_owned())),
        ),
    ]
}

/// `s` with `ins` spliced in at a char boundary chosen by `at`.
fn splice(s: &str, ins: &str, at: prop::sample::Index) -> String {
    let cuts: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
    let i = cuts[at.index(cuts.len())];
    format!("{}{}{}", &s[..i], ins, &s[i..])
}

/// Inputs each validator accepts as they are.
fn valid_inputs() -> Vec<String> {
    let (p256dh, auth) = valid_keys();
    vec![
        "https://fcm.googleapis.com/fcm/send/abc:def".into(),
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAA".into(),
        "https://wns2-by3p.notify.windows.com/w/?token=x".into(),
        "http://127.0.0.1:8000/push/1".into(),
        "https://push.example.com/p?x=1#f".into(),
        p256dh.clone(),
        format!("{p256dh}=="),
        auth.clone(),
        format!("{auth}=="),
    ]
}

/// What a careless or hostile browser (or script) sends: valid values with
/// NUL or control characters spliced in, at the ends too (where a URL
/// parser trims them), long runs, arbitrary Unicode.
fn hostile() -> impl Strategy<Value = String> {
    let plausible = prop_oneof![
        prop::sample::select(valid_inputs()),
        "https://[a-z.]{1,20}/[a-zA-Z0-9/_:-]{0,20}",
        any::<String>(),
    ];
    let inserted = prop_oneof![
        Just("\0".to_owned()),
        Just("%00".to_owned()),
        Just("\u{1}".to_owned()),
        Just("\t".to_owned()),
        Just("\n".to_owned()),
        Just(" ".to_owned()),
        Just("\u{7f}".to_owned()),
        Just("\u{feff}".to_owned()),
        "[\\x00-\\x1f]{1,4}",
    ];
    prop_oneof![
        plausible.clone(),
        (plausible.clone(), inserted, any::<prop::sample::Index>())
            .prop_map(|(s, ins, at)| splice(&s, &ins, at)),
        (plausible, 1usize..200).prop_map(|(s, n)| s.repeat(n)),
    ]
}

#[test]
fn the_valid_inputs_are_accepted() {
    // Without this, "refused" below could be vacuous.
    let inputs = valid_inputs();
    for (name, keeps) in validators() {
        assert!(
            inputs.iter().any(|s| keeps(s).is_some()),
            "{name} accepts none of the valid inputs"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// What a push validator accepts, and what it keeps of it, Postgres can
    /// store; an endpoint `check` accepted is accepted again as the URL it
    /// became, unchanged.
    #[test]
    fn every_push_validator_accepts_only_storable_text(s in hostile()) {
        for (name, keeps) in validators() {
            if let Some(kept) = keeps(&s) {
                prop_assert!(storable(&kept), "{} keeps {:?} of {:?}", name, kept, s);
                let again = keeps(&kept);
                prop_assert_eq!(again.as_deref(), Some(kept.as_str()), "{}: not a fixed point", name);
            }
        }
        for (p256dh, auth) in [(s.as_str(), valid_keys().1.as_str()), (valid_keys().0.as_str(), s.as_str())] {
            if SubscriptionKeys::parse(p256dh, auth).is_ok() {
                prop_assert!(storable(&s), "SubscriptionKeys::parse accepted {:?}", s);
            }
        }
    }

    /// A NUL anywhere in a key — the ends included, which are trimmed of
    /// whitespace before decoding — is refused.
    #[test]
    fn every_push_key_rejects_nul_anywhere(
        s in prop::sample::select(valid_inputs()),
        at in any::<prop::sample::Index>(),
    ) {
        let with_nul = splice(&s, "\0", at);
        let (p256dh, auth) = valid_keys();
        prop_assert!(SubscriptionKeys::parse(&with_nul, &auth).is_err(), "p256dh {:?}", with_nul);
        prop_assert!(SubscriptionKeys::parse(&p256dh, &with_nul).is_err(), "auth {:?}", with_nul);
    }
}

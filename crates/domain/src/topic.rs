//! Topics: the unit of subscription, authorization and replay.
//!
//! A topic is `kind:key`. `kind` is `[a-z][a-z0-9_-]{0,31}`; `key` is 1–200
//! characters of `[A-Za-z0-9._~@:-]` (so a key may itself contain `:`). A
//! [`TopicPattern`] is what a token's `topics` claim holds: an exact topic or a
//! kind wildcard `kind:*`.

use std::fmt;

use serde::{Deserialize, Serialize};

pub const MAX_KIND_LEN: usize = 32;
pub const MAX_KEY_LEN: usize = 200;

/// Why a string is not a topic. The message is meant for API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("a topic is `kind:key`; the `:` is missing")]
    MissingSeparator,
    #[error(
        "the kind must start with a lowercase letter and use only a-z, 0-9, `_`, `-` (at most 32 characters)"
    )]
    InvalidKind,
    #[error("the key must be 1 to 200 characters of A-Z a-z 0-9 . _ ~ @ : -")]
    InvalidKey,
}

/// A valid topic, `kind:key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Topic {
    raw: String,
    #[serde(skip)]
    colon: usize,
}

fn valid_kind(kind: &str) -> bool {
    let bytes = kind.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_KIND_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'@' | b':' | b'-'))
}

impl Topic {
    /// Parses `kind:key`. This is the only way to get a `Topic`.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        let colon = s.find(':').ok_or(TopicError::MissingSeparator)?;
        let (kind, key) = (&s[..colon], &s[colon + 1..]);
        if !valid_kind(kind) {
            return Err(TopicError::InvalidKind);
        }
        if !valid_key(key) {
            return Err(TopicError::InvalidKey);
        }
        Ok(Self {
            raw: s.to_owned(),
            colon,
        })
    }

    /// The topic of a user's own inbox, `user:{user_id}`.
    pub fn user(user_id: &str) -> Result<Self, TopicError> {
        Self::parse(&format!("user:{user_id}"))
    }

    pub fn kind(&self) -> &str {
        &self.raw[..self.colon]
    }

    pub fn key(&self) -> &str {
        &self.raw[self.colon + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Topic::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One entry of a token's `topics` claim: an exact topic or `kind:*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicPattern {
    Exact(Topic),
    Kind(String),
}

impl TopicPattern {
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        match s.strip_suffix(":*") {
            Some(kind) if !kind.contains(':') => {
                if valid_kind(kind) {
                    Ok(Self::Kind(kind.to_owned()))
                } else {
                    Err(TopicError::InvalidKind)
                }
            }
            _ => Topic::parse(s).map(Self::Exact),
        }
    }

    /// Whether this pattern grants reading `topic`.
    pub fn grants(&self, topic: &Topic) -> bool {
        match self {
            Self::Exact(t) => t == topic,
            Self::Kind(kind) => topic.kind() == kind,
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(t) => t.fmt(f),
            Self::Kind(k) => write!(f, "{k}:*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_documented_shapes() {
        for ok in [
            "user:alice",
            "feed:team-42",
            "order:A-1",
            "x:a:b:c",
            "k_1-2:~.@_-",
        ] {
            assert!(Topic::parse(ok).is_ok(), "{ok}");
        }
        let t = Topic::parse("order:a:b").unwrap();
        assert_eq!((t.kind(), t.key()), ("order", "a:b"));
    }

    #[test]
    fn rejects_each_grammar_violation_with_its_reason() {
        assert_eq!(Topic::parse("user"), Err(TopicError::MissingSeparator));
        assert_eq!(Topic::parse(":x"), Err(TopicError::InvalidKind));
        assert_eq!(Topic::parse("User:x"), Err(TopicError::InvalidKind));
        assert_eq!(Topic::parse("1a:x"), Err(TopicError::InvalidKind));
        assert_eq!(
            Topic::parse(&format!("{}:x", "a".repeat(33))),
            Err(TopicError::InvalidKind)
        );
        assert_eq!(Topic::parse("user:"), Err(TopicError::InvalidKey));
        assert_eq!(Topic::parse("user:a b"), Err(TopicError::InvalidKey));
        assert_eq!(Topic::parse("user:a/b"), Err(TopicError::InvalidKey));
        assert_eq!(Topic::parse("user:é"), Err(TopicError::InvalidKey));
        assert_eq!(
            Topic::parse(&format!("user:{}", "a".repeat(201))),
            Err(TopicError::InvalidKey)
        );
        assert!(Topic::parse(&format!("user:{}", "a".repeat(200))).is_ok());
    }

    #[test]
    fn kind_wildcard_grants_exactly_that_kind() {
        let p = TopicPattern::parse("feed:*").unwrap();
        assert!(p.grants(&Topic::parse("feed:x").unwrap()));
        assert!(!p.grants(&Topic::parse("feeds:x").unwrap()));
        assert!(!p.grants(&Topic::parse("fee:x").unwrap()));
        let exact = TopicPattern::parse("feed:x").unwrap();
        assert!(!exact.grants(&Topic::parse("feed:xy").unwrap()));
        assert!(TopicPattern::parse("*:*").is_err());
        assert!(TopicPattern::parse("*").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "\\PC{0,64}") {
            if let Ok(t) = Topic::parse(&s) {
                prop_assert_eq!(t.as_str(), s.as_str());
                prop_assert_eq!(format!("{}:{}", t.kind(), t.key()), s.clone());
            }
            let _ = TopicPattern::parse(&s);
        }

        #[test]
        fn generated_valid_topics_parse(kind in "[a-z][a-z0-9_-]{0,31}", key in "[A-Za-z0-9._~@:-]{1,200}") {
            let t = Topic::parse(&format!("{kind}:{key}")).unwrap();
            prop_assert_eq!(t.kind(), kind.as_str());
            prop_assert_eq!(t.key(), key.as_str());
        }
    }
}

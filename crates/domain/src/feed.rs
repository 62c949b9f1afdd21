//! Activity feeds: "actor verb object (target)" entries on `feed:{name}`.

use crate::topic::Topic;

pub const MAX_FIELD_CHARS: usize = 200;

/// A feed name, usable as the key of `feed:{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedName(String);

impl FeedName {
    pub fn parse(s: &str) -> Result<Self, String> {
        Topic::parse(&format!("feed:{s}"))
            .map(|_| Self(s.to_owned()))
            .map_err(|_| "must be 1 to 200 characters of A-Z a-z 0-9 . _ ~ @ : -".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn topic(&self) -> Topic {
        Topic::parse(&format!("feed:{}", self.0)).expect("a FeedName is a valid topic key")
    }
}

/// `actor`, `object`, `target`, `foreign_id`: 1–200 characters, no control characters.
pub fn text_field(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n == 0 || n > MAX_FIELD_CHARS || s.chars().any(char::is_control) || s.trim().is_empty() {
        return Err(format!(
            "must be 1 to {MAX_FIELD_CHARS} characters without control characters"
        ));
    }
    Ok(())
}

/// `verb`: `[a-z][a-z0-9_.-]{0,63}`, e.g. `commented`.
pub fn verb(s: &str) -> Result<(), String> {
    crate::EventType::parse(s)
        .map(|_| ())
        .map_err(|_| "must match [a-z][a-z0-9_.-]{0,63}".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_names_and_fields() {
        assert!(FeedName::parse("team-42").is_ok());
        assert!(FeedName::parse("a b").is_err());
        assert!(FeedName::parse("").is_err());
        assert_eq!(FeedName::parse("x").unwrap().topic().as_str(), "feed:x");
        assert!(text_field("user:alice").is_ok());
        assert!(text_field("").is_err());
        assert!(text_field("a\nb").is_err());
        assert!(verb("commented").is_ok());
        assert!(verb("Commented").is_err());
    }
}

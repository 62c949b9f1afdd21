//! Notifications: what a service sends, validated field by field.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::topic::Topic;

pub const MAX_RECIPIENTS: usize = 1000;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 5000;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_GROUP_KEY_CHARS: usize = 200;
pub const MAX_ACTOR_CHARS: usize = 200;
/// The distinct actors a grouped entry keeps, newest first.
pub const MAX_ACTORS: usize = 5;

/// A user id usable as the key of `user:{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, String> {
        Topic::user(s)
            .map(|_| Self(s.to_owned()))
            .map_err(|_| "must be 1 to 200 characters of A-Z a-z 0-9 . _ ~ @ : -".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn topic(&self) -> Topic {
        Topic::user(&self.0).expect("a UserId is a valid topic key")
    }
}

/// One invalid field: its path and what is wrong.
pub type Invalid = (String, String);

/// Recipients: 1–1000 valid user ids; duplicates are dropped (first kept).
pub fn recipients(raw: &[String]) -> Result<Vec<UserId>, Vec<Invalid>> {
    let mut errors = Vec::new();
    if raw.is_empty() || raw.len() > MAX_RECIPIENTS {
        errors.push((
            "recipients".into(),
            format!("must hold 1 to {MAX_RECIPIENTS} user ids"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match UserId::parse(r) {
            Ok(u) => {
                if seen.insert(u.clone()) {
                    out.push(u);
                }
            }
            Err(e) => errors.push((format!("recipients[{i}]"), e)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A category: `[a-z][a-z0-9_.-]{0,63}`.
pub fn category(s: &str) -> Result<(), String> {
    crate::EventType::parse(s)
        .map(|_| ())
        .map_err(|_| "must match [a-z][a-z0-9_.-]{0,63}".to_owned())
}

pub fn title(s: &str) -> Result<(), String> {
    let n = s.trim().chars().count();
    if n == 0 || s.chars().count() > MAX_TITLE_CHARS {
        return Err(format!("must be 1 to {MAX_TITLE_CHARS} characters"));
    }
    storable(s)
}

pub fn body(s: &str) -> Result<(), String> {
    if s.chars().count() > MAX_BODY_CHARS {
        return Err(format!("must be at most {MAX_BODY_CHARS} characters"));
    }
    storable(s)
}

fn storable(s: &str) -> Result<(), String> {
    if crate::text::storable(s) {
        Ok(())
    } else {
        Err(crate::text::NUL_MESSAGE.into())
    }
}

/// An absolute http(s) URL with a host; `javascript:` and friends are refused.
pub fn action_url(s: &str) -> Result<(), String> {
    if s.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or("must be an http or https URL")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be an absolute http or https URL with a host".into());
    }
    Ok(())
}

pub fn expires_at(t: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if t <= now {
        return Err("must be in the future".into());
    }
    Ok(())
}

/// A `group_key`: what makes notifications one inbox entry (1–200
/// characters, not blank).
pub fn group_key(s: &str) -> Result<(), String> {
    short_text(s, MAX_GROUP_KEY_CHARS)
}

/// An `actor`: who did what the notification is about, as the bell names
/// them ("Maya"); 1–200 characters, not blank.
pub fn actor(s: &str) -> Result<(), String> {
    short_text(s, MAX_ACTOR_CHARS)
}

fn short_text(s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() || s.chars().count() > max {
        return Err(format!("must be 1 to {max} characters, not blank"));
    }
    storable(s)
}

/// A `deliver_at`: at most `horizon` ahead of `now`. A time already past is
/// delivered at once (a clock a little behind, or a retry of a request
/// accepted earlier, must not fail).
pub fn deliver_at(t: DateTime<Utc>, now: DateTime<Utc>, horizon: Duration) -> Result<(), String> {
    within(t, now, horizon)
}

/// A snooze's `until`: in the future, at most `horizon` ahead of `now`.
pub fn snooze_until(t: DateTime<Utc>, now: DateTime<Utc>, horizon: Duration) -> Result<(), String> {
    if t <= now {
        return Err("must be in the future".into());
    }
    within(t, now, horizon)
}

fn within(t: DateTime<Utc>, now: DateTime<Utc>, horizon: Duration) -> Result<(), String> {
    let limit = chrono::Duration::from_std(horizon)
        .ok()
        .and_then(|h| now.checked_add_signed(h));
    match limit {
        Some(limit) if t > limit => Err(format!(
            "must be at most {} ahead (HERALD_MAX_SCHEDULE_AHEAD)",
            crate::duration::format(horizon)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_validated_and_deduplicated() {
        let ok = recipients(&["a".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(ok.iter().map(UserId::as_str).collect::<Vec<_>>(), ["a", "b"]);
        let err = recipients(&["a".into(), "b c".into()]).unwrap_err();
        assert_eq!(err[0].0, "recipients[1]");
        assert!(recipients(&[]).is_err());
        assert!(recipients(&vec!["x".to_string(); 1001]).is_err());
    }

    #[test]
    fn urls_must_be_http_or_https() {
        assert!(action_url("https://example.com/a?b#c").is_ok());
        assert!(action_url("http://localhost:3000").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://x",
            "https://",
            "//x.com",
            "https://a b",
            "data:text/html,x",
        ] {
            assert!(action_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scheduled_and_snoozed_times_stay_within_the_horizon() {
        let now = Utc::now();
        let day = Duration::from_secs(86_400);
        let h = chrono::Duration::hours;
        assert!(deliver_at(now + h(23), now, day).is_ok());
        assert!(
            deliver_at(now - h(1), now, day).is_ok(),
            "past: delivered at once"
        );
        let e = deliver_at(now + h(25), now, day).unwrap_err();
        assert!(e.contains("1d"), "{e}");
        assert!(snooze_until(now + h(1), now, day).is_ok());
        assert!(snooze_until(now, now, day).is_err());
        assert!(snooze_until(now + h(25), now, day).is_err());
        assert!(deliver_at(now + h(1), now, Duration::MAX).is_ok());
    }

    #[test]
    fn group_keys_and_actors_are_short_visible_text() {
        assert!(group_key("doc:42:comments").is_ok());
        assert!(actor("Maya").is_ok());
        for bad in ["", "  ", "a\u{0}b"] {
            assert!(group_key(bad).is_err(), "{bad:?}");
            assert!(actor(bad).is_err(), "{bad:?}");
        }
        assert!(actor(&"é".repeat(200)).is_ok());
        assert!(actor(&"é".repeat(201)).is_err());
    }

    #[test]
    fn titles() {
        assert!(title("Hi").is_ok());
        assert!(title("  ").is_err());
        assert!(title(&"x".repeat(201)).is_err());
    }
}

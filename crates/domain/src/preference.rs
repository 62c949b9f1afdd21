//! Notification preferences: per category, per channel, whether it is on.
//!
//! A service sets a category's defaults (`PUT /v1/categories/{category}`); a user
//! may override each channel for themselves, except in a `required` category,
//! whose channels always follow the defaults. A category nobody configured has
//! every channel on, is not required and pushes at once.

use std::time::Duration;

/// The channels a notification can reach a user through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    /// An inbox entry and its live event.
    pub in_app: bool,
    /// A Web Push to each of the user's subscriptions.
    pub web_push: bool,
}

/// A category's defaults, as a service set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CategoryDefaults {
    pub channels: Channels,
    /// Users cannot mute it.
    pub required: bool,
    /// How long a push waits: a notification read or seen meanwhile (an open tab
    /// showed it) is not pushed.
    pub push_delay: Duration,
    /// How long a group stays open: notifications with the same `group_key`
    /// within this time of the group's first one join its inbox entry (while
    /// it is unread). Zero turns grouping off for the category.
    pub group_window: Duration,
}

impl Default for CategoryDefaults {
    fn default() -> Self {
        Self {
            channels: Channels {
                in_app: true,
                web_push: true,
            },
            required: false,
            push_delay: Duration::ZERO,
            group_window: DEFAULT_GROUP_WINDOW,
        }
    }
}

/// The longest `push_delay` a category may have.
pub const MAX_PUSH_DELAY: Duration = Duration::from_secs(7 * 86_400);

/// A category's `group_window` unless a service set one.
pub const DEFAULT_GROUP_WINDOW: Duration = Duration::from_secs(3600);

/// The longest `group_window` a category may have.
pub const MAX_GROUP_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// A user's own choice for one category: `None` follows the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Choice {
    pub in_app: Option<bool>,
    pub web_push: Option<bool>,
}

impl CategoryDefaults {
    /// What reaches a user who chose `choice`.
    pub fn effective(&self, choice: Choice) -> Channels {
        if self.required {
            return self.channels;
        }
        Channels {
            in_app: choice.in_app.unwrap_or(self.channels.in_app),
            web_push: choice.web_push.unwrap_or(self.channels.web_push),
        }
    }

    /// Whether a user may make `choice`: in a required category, only what the
    /// defaults already are.
    pub fn allows(&self, choice: Choice) -> bool {
        !self.required
            || (choice.in_app.is_none_or(|v| v == self.channels.in_app)
                && choice.web_push.is_none_or(|v| v == self.channels.web_push))
    }

    pub fn check_push_delay(d: Duration) -> Result<(), String> {
        if d > MAX_PUSH_DELAY {
            return Err("must be at most 7d".into());
        }
        Ok(())
    }

    pub fn check_group_window(d: Duration) -> Result<(), String> {
        if d > MAX_GROUP_WINDOW {
            return Err("must be at most 30d".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(in_app: bool, web_push: bool) -> Channels {
        Channels { in_app, web_push }
    }

    #[test]
    fn a_users_choice_overrides_the_default_unless_the_category_is_required() {
        let d = CategoryDefaults::default();
        assert_eq!(d.effective(Choice::default()), on(true, true));
        let muted = Choice {
            in_app: None,
            web_push: Some(false),
        };
        assert_eq!(d.effective(muted), on(true, false));
        let quiet = CategoryDefaults {
            channels: on(true, false),
            ..d
        };
        assert_eq!(quiet.effective(Choice::default()), on(true, false));
        assert_eq!(
            quiet.effective(Choice {
                in_app: None,
                web_push: Some(true)
            }),
            on(true, true)
        );
        let required = CategoryDefaults { required: true, ..d };
        assert_eq!(required.effective(muted), on(true, true));
        assert!(!required.allows(muted));
        assert!(required.allows(Choice {
            in_app: Some(true),
            web_push: None
        }));
        assert!(d.allows(muted));
    }
}

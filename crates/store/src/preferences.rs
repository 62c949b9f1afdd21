//! Category defaults and users' notification preferences.
//!
//! A user's preference changes take that user's inbox lock, like every send to
//! them: per user, sends and preference changes are serialized, so a send sees
//! either the old or the new preferences whole, and the `preferences.updated`
//! event orders with the notification events on `user:{sub}`.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_domain::notification::UserId;
use herald_domain::preference::{CategoryDefaults, Channels, Choice};
use herald_domain::EventType;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use crate::inbox;
use crate::outbox::{self, OutboxTx};

/// One category as a user sees it: what reaches them, and whether they may
/// change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CategoryPreference {
    pub in_app: bool,
    pub web_push: bool,
    /// The service made the category required: its channels follow the defaults.
    pub required: bool,
}

/// Every category a user has a say in: those with defaults and those the user
/// set; any other category reaches them on every channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Preferences {
    pub categories: BTreeMap<String, CategoryPreference>,
}

/// The defaults of `category` (the built-in ones when no service set any).
pub async fn defaults(
    conn: &mut PgConnection,
    category: &str,
) -> Result<Option<CategoryDefaults>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT in_app, web_push, required, push_delay_ms, group_window_ms FROM categories WHERE category = $1",
        category
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| CategoryDefaults {
        channels: Channels {
            in_app: r.in_app,
            web_push: r.web_push,
        },
        required: r.required,
        push_delay: Duration::from_millis(r.push_delay_ms.max(0) as u64),
        group_window: Duration::from_millis(r.group_window_ms.max(0) as u64),
    }))
}

/// Sets the defaults of `category`.
pub async fn set_defaults(
    conn: &mut PgConnection,
    category: &str,
    d: &CategoryDefaults,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO categories (category, in_app, web_push, required, push_delay_ms, group_window_ms)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (category) DO UPDATE
              SET in_app = EXCLUDED.in_app, web_push = EXCLUDED.web_push,
                  required = EXCLUDED.required, push_delay_ms = EXCLUDED.push_delay_ms,
                  group_window_ms = EXCLUDED.group_window_ms, updated_at = now()"#,
        category,
        d.channels.in_app,
        d.channels.web_push,
        d.required,
        d.push_delay.as_millis() as i64,
        d.group_window.as_millis() as i64,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The channels that reach each of `users` for a notification of `category`,
/// and the category's defaults. Read in the sender's transaction, after it
/// locked the users' inboxes.
pub async fn for_recipients(
    conn: &mut PgConnection,
    category: &str,
    users: &[UserId],
) -> Result<(CategoryDefaults, BTreeMap<String, Channels>), sqlx::Error> {
    let defaults = defaults(&mut *conn, category).await?.unwrap_or_default();
    let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
    let rows = sqlx::query!(
        "SELECT user_id, in_app, web_push FROM preferences WHERE category = $1 AND user_id = ANY($2)",
        category,
        &ids as &[&str],
    )
    .fetch_all(conn)
    .await?;
    let mut out: BTreeMap<String, Channels> = users
        .iter()
        .map(|u| (u.as_str().to_owned(), defaults.effective(Choice::default())))
        .collect();
    for r in rows {
        let choice = Choice {
            in_app: r.in_app,
            web_push: r.web_push,
        };
        out.insert(r.user_id, defaults.effective(choice));
    }
    Ok((defaults, out))
}

/// What `user` sees of every category with defaults or a choice of theirs.
pub async fn of_user(conn: &mut PgConnection, user: &str) -> Result<Preferences, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT k.category AS "category!", c.in_app AS "default_in_app?", c.web_push AS "default_web_push?",
                  c.required AS "required?", c.push_delay_ms AS "push_delay_ms?",
                  c.group_window_ms AS "group_window_ms?",
                  p.in_app AS "in_app?", p.web_push AS "web_push?"
             FROM (SELECT category FROM categories
                   UNION SELECT category FROM preferences WHERE user_id = $1) k
             LEFT JOIN categories c ON c.category = k.category
             LEFT JOIN preferences p ON p.user_id = $1 AND p.category = k.category
            ORDER BY k.category"#,
        user
    )
    .fetch_all(conn)
    .await?;
    let mut categories = BTreeMap::new();
    for r in rows {
        let d = match (r.default_in_app, r.default_web_push, r.required) {
            (Some(in_app), Some(web_push), Some(required)) => CategoryDefaults {
                channels: Channels { in_app, web_push },
                required,
                push_delay: Duration::from_millis(r.push_delay_ms.unwrap_or(0).max(0) as u64),
                group_window: Duration::from_millis(r.group_window_ms.unwrap_or(0).max(0) as u64),
            },
            _ => CategoryDefaults::default(),
        };
        let c = d.effective(Choice {
            in_app: r.in_app,
            web_push: r.web_push,
        });
        categories.insert(
            r.category,
            CategoryPreference {
                in_app: c.in_app,
                web_push: c.web_push,
                required: d.required,
            },
        );
    }
    Ok(Preferences { categories })
}

/// Why a change was refused: the category it names and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub category: String,
    pub message: String,
}

/// Applies `user`'s choices (categories not listed are left alone; a channel
/// left `None` follows the default again) under the user's inbox lock, and
/// announces the result on `user:{user}` as `preferences.updated`. A choice
/// that would mute a required category refuses the whole change.
pub async fn set_choices(
    tx: &mut OutboxTx,
    user: &UserId,
    choices: &BTreeMap<String, Choice>,
) -> Result<Result<Preferences, Refused>, sqlx::Error> {
    inbox::lock_user(tx, user.as_str()).await?;
    for (category, choice) in choices {
        let d = defaults(tx, category).await?.unwrap_or_default();
        if !d.allows(*choice) {
            return Ok(Err(Refused {
                category: category.clone(),
                message: "is required: its channels follow the service's defaults and cannot be changed"
                    .into(),
            }));
        }
        if d.required || (choice.in_app.is_none() && choice.web_push.is_none()) {
            sqlx::query!(
                "DELETE FROM preferences WHERE user_id = $1 AND category = $2",
                user.as_str(),
                category
            )
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query!(
                r#"INSERT INTO preferences (user_id, category, in_app, web_push) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (user_id, category) DO UPDATE
                      SET in_app = EXCLUDED.in_app, web_push = EXCLUDED.web_push, updated_at = now()"#,
                user.as_str(),
                category,
                choice.in_app,
                choice.web_push,
            )
            .execute(&mut **tx)
            .await?;
        }
    }
    let prefs = of_user(tx, user.as_str()).await?;
    let data = serde_json::json!({ "preferences": prefs });
    let event_type =
        EventType::parse("preferences.updated").map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    outbox::append(tx, &user.topic(), &event_type, &data).await?;
    Ok(Ok(prefs))
}

//! Sending one notification to its recipients, each reached the way they
//! chose: an inbox entry (with its live event) where `in_app` is on, a push per
//! subscription where `web_push` is on — all in the caller's transaction, so the
//! entries, their events and their pushes commit together or not at all.

use herald_domain::notification::UserId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::inbox::{self, NewNotification, Placed};
use crate::outbox::OutboxTx;
use crate::{preferences, push};

/// How many recipients one channel reached, and how many it did not because
/// of their preferences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChannelReport {
    pub reached: u64,
    pub suppressed: u64,
}

/// The push channel: recipients reached (at least one push queued) and
/// suppressed by preference, recipients with `web_push` on but no
/// subscription, and the pushes queued (one per subscription).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushReport {
    pub reached: u64,
    pub suppressed: u64,
    pub without_subscription: u64,
    pub queued: u64,
}

/// Per channel, what a send came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub in_app: ChannelReport,
    pub web_push: PushReport,
}

/// What [`send`] did.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The inbox entries made or joined (a group), in recipient order.
    pub created: Vec<(UserId, Placed)>,
    pub delivery: Delivery,
}

/// Sends `n` to `recipients` (distinct). Takes their inbox locks in sorted
/// order (so concurrent sends cannot deadlock), then reads their preferences
/// under those locks, and places it in each inbox ([`inbox::place`]: a new
/// entry, or one more in an open group of the category's `group_window`). `web_push`: whether this deployment pushes at all (a
/// VAPID key is configured); without it no push is queued.
pub async fn send(
    tx: &mut OutboxTx,
    recipients: &[UserId],
    n: &NewNotification<'_>,
    web_push: bool,
) -> Result<Sent, sqlx::Error> {
    let mut order: Vec<&UserId> = recipients.iter().collect();
    order.sort();
    for user in &order {
        inbox::lock_user(tx, user.as_str()).await?;
    }
    let (defaults, channels) = preferences::for_recipients(tx, n.category, recipients).await?;
    let mut sent = Sent {
        created: Vec::with_capacity(recipients.len()),
        delivery: Delivery::default(),
    };
    for user in recipients {
        let Some(c) = channels.get(user.as_str()).copied() else {
            continue;
        };
        let id = if c.in_app {
            let placed = inbox::place(tx, user, n, defaults.group_window).await?;
            let id = placed.entry.id;
            sent.created.push((user.clone(), placed));
            sent.delivery.in_app.reached += 1;
            id
        } else {
            sent.delivery.in_app.suppressed += 1;
            Uuid::now_v7()
        };
        if !web_push {
            continue;
        }
        if !c.web_push {
            sent.delivery.web_push.suppressed += 1;
            continue;
        }
        let payload = serde_json::json!({
            "id": id, "title": n.title, "body": n.body, "action_url": n.action_url, "category": n.category,
        });
        let queued = push::enqueue(tx, user.as_str(), id, n.category, &payload, defaults.push_delay).await?;
        sent.delivery.web_push.queued += queued;
        if queued > 0 {
            sent.delivery.web_push.reached += 1;
        } else {
            sent.delivery.web_push.without_subscription += 1;
        }
    }
    Ok(sent)
}

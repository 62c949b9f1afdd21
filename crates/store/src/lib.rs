//! `herald-store`: the write rules of Herald's tables, shared by every
//! service that changes them.
//!
//! - [`history`]: reads of the event log that prove their own completeness
//!   against retention, and the one mapping of an `events` row to an
//!   [`Envelope`](herald_domain::Envelope).
//! - [`outbox`]: an event is appended in the same transaction as the state it
//!   announces ([`outbox::OutboxTx`]), and the worker is woken after commit.
//! - [`inbox`]: notification rows, their per-user lock and exact counts, and
//!   the events that announce every change on `user:{id}`; groups.
//! - [`snooze`]: entries out of lists and counts until a time.
//! - [`due`]: work that falls due at a time (a notification's expiry, a
//!   snooze's end), kept in one table and claimed exactly once by whichever
//!   worker gets to it.
//! - [`scheduled`]: events and notifications accepted with a `deliver_at`,
//!   delivered through the outbox by due work when it comes.
//! - [`preferences`]: category defaults and users' choices per channel.
//! - [`push`]: push subscriptions and the push queue.
//! - [`send`]: one notification to its recipients, each reached the way they
//!   chose.
//!
//! The API writes through these on requests, the worker on time (due work);
//! neither has its own copy of the rules.

pub mod due;
pub mod history;
pub mod inbox;
pub mod outbox;
pub mod preferences;
pub mod push;
pub mod scheduled;
pub mod send;
pub mod snooze;

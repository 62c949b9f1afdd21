//! Herald's domain: the types and rules every service shares.
//!
//! Everything here is pure — no I/O, no async, no database. A value of one of
//! these types is valid by construction (parse, don't validate): a [`Topic`] in
//! hand always follows the topic grammar, an [`EventType`] always follows the
//! type grammar, and so on. Services parse raw input at the edge and pass the
//! parsed types inward.

pub mod duration;
pub mod event;
pub mod feed;
pub mod notification;
pub mod order;
pub mod preference;
pub mod sse;
pub mod text;
pub mod topic;

pub use event::{Envelope, EventType, EventTypeError, LastEventId, Seq};
pub use topic::{Topic, TopicError, TopicPattern};

//! HTTP handlers, one module per resource.

pub mod demo;
pub mod events;
pub mod feeds;
pub mod inbox;
pub mod notifications;
pub mod ops;
pub mod orders;
pub mod preferences;
pub mod push;
pub mod scheduled;
pub mod stream;
pub mod stream_tokens;

//! HTTP handlers, one module per resource.

pub mod events;
pub mod ops;
pub mod stream;
pub mod stream_tokens;

//! What every Herald service shares.
//!
//! Settings, the Postgres pool and migrations, HTTP serving, JWT
//! verification and topic authorization (one implementation for the API and
//! the gateway), problem+json errors, telemetry, metrics and shutdown.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod db;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use config::Settings;
pub use problem::Problem;

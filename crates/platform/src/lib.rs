//! What every Herald service shares.
//!
//! Settings, the Postgres pool and migrations, JWT verification and topic
//! authorization (one implementation for the API and the gateway), the bus
//! channel naming, problem+json errors, telemetry, metrics and shutdown.

pub mod auth;
pub mod bus;
pub mod cluster;
pub mod config;
mod connection_clock;
pub mod db;
pub mod history;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod problem;
pub mod shutdown;
mod stream_conn;
pub mod telemetry;

pub use config::Settings;
pub use problem::Problem;

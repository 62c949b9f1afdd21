//! The Postgres pool and the schema migrations in `migrations/`.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The workspace's migrations, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// A pooled connection idle for longer than this is pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Connects a pool. Connections are made lazily, so a service starts (and
/// reports not-ready) while Postgres is down.
///
/// sqlx pings every connection on every acquire by default: a whole extra
/// round trip per request, a third of a one-statement publish. Here only a
/// connection that sat idle for a while is pinged (it may have outlived a
/// Postgres restart); a busy pool's connections are proven by their last use,
/// and a connection that still turns out dead fails its one request with a
/// 503 and is discarded.
pub fn connect_lazy(database: &crate::config::DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(database.max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy(database.url.expose())
}

/// Whether the database answers.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

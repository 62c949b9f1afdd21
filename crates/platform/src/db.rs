//! The Postgres pool and the schema migrations in `migrations/`.
//!
//! # Several servers: following the primary
//!
//! `HERALD_DATABASE_URL` may list a primary and its standbys (see
//! `config::DatabaseSettings`). sqlx connects to one host and knows neither
//! libpq's host lists nor `target_session_attrs`, so the pool is pointed at
//! one server at a time, and [`follow_primary`] moves it: it finds the
//! server that accepts writes (trying each in turn), points the pool there
//! with `Pool::set_connect_options`, and watches it on a connection of its
//! own; when that connection fails or the server turns read-only, it looks
//! again. A connection attempt the pool is retrying reads the options anew
//! on every try, so a request waiting during a failover lands on the new
//! primary. And every new connection checks the server it reached: one that
//! is read-only (a standby; an old primary back as one) is refused, so no
//! write ever meets a standby.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::backoff::Backoff;

/// The workspace's migrations, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// A pooled connection idle for longer than this is pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);
/// How often the primary is checked, when several servers are configured.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// How long connecting to one server and asking it may take while looking
/// for the primary.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects a pool. Connections are made lazily, so a service starts (and
/// reports not-ready) while Postgres is down.
///
/// sqlx pings every connection on every acquire by default: a whole extra
/// round trip per request, a third of a one-statement publish. Here only a
/// connection that sat idle for a while is pinged (it may have outlived a
/// Postgres restart); a busy pool's connections are proven by their last use,
/// and a connection that still turns out dead fails its one request with a
/// 503 and is discarded.
///
/// Connections carry `service` as their `application_name` (what
/// `pg_stat_activity` shows), unless the URL's `application_name` or
/// libpq's `PGAPPNAME` names them otherwise. A connection is retired once it
/// is `connection_lifetime` old: sqlx hands out idle connections oldest
/// first, so under steady use no connection ever sits idle long enough for an
/// idle timeout, and without a lifetime the connections a burst opened would
/// stay open as long as the process runs.
///
/// With several servers (or `target_session_attrs=read-write`), the pool
/// follows the primary (see the module docs); that needs a Tokio runtime.
pub fn connect_lazy(
    database: &crate::config::DatabaseSettings,
    service: &str,
) -> Result<PgPool, sqlx::Error> {
    let servers = database
        .servers
        .iter()
        .map(|s| {
            let options = s.expose().parse::<PgConnectOptions>()?;
            Ok(match options.get_application_name() {
                Some(_) => options,
                None => options.application_name(service),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let first = servers
        .first()
        .cloned()
        .ok_or_else(|| sqlx::Error::Configuration("no database server configured".into()))?;
    let options = PgPoolOptions::new()
        .max_connections(database.max_connections)
        .max_lifetime(database.connection_lifetime)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        });
    if !database.read_write {
        return Ok(options.connect_lazy_with(first));
    }
    let pool = options
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                if accepts_writes(conn).await? {
                    Ok(())
                } else {
                    // The pool closes it and tries again, with the options
                    // `follow_primary` set meanwhile.
                    Err(sqlx::Error::Configuration(
                        "this Postgres server is read-only (a standby?); waiting for the primary".into(),
                    ))
                }
            })
        })
        .connect_lazy_with(first);
    tokio::spawn(follow_primary(pool.clone(), servers));
    Ok(pool)
}

/// Whether the server behind `conn` accepts writes: not a standby, not
/// `default_transaction_read_only` (what libpq's `read-write` checks).
pub async fn accepts_writes(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT current_setting('transaction_read_only') = 'off'")
        .fetch_one(conn)
        .await
}

/// `host:port` of a server, for logs (never the URL: it may hold a password).
fn describe(server: &PgConnectOptions) -> String {
    format!("{}:{}", server.get_host(), server.get_port())
}

/// Keeps `pool` pointed at the server that accepts writes, until the pool
/// is closed. See the module docs.
async fn follow_primary(pool: PgPool, servers: Vec<PgConnectOptions>) {
    let mut current: Option<usize> = None;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let mut reported_none = false;
    loop {
        let found = tokio::select! {
            _ = pool.close_event() => return,
            found = find_primary(&servers, current) => found,
        };
        let Some((i, mut watch)) = found else {
            if !reported_none {
                tracing::warn!(
                    servers = servers.len(),
                    "no Postgres server accepts writes; looking again"
                );
                reported_none = true;
            }
            tokio::select! {
                _ = pool.close_event() => return,
                _ = tokio::time::sleep(backoff.next_wait()) => {}
            }
            continue;
        };
        backoff.reset();
        reported_none = false;
        if current != Some(i) {
            if current.is_some() {
                tracing::warn!(server = %describe(&servers[i]), "Postgres primary moved; following it");
            } else {
                tracing::info!(server = %describe(&servers[i]), "Postgres primary found");
            }
            pool.set_connect_options(servers[i].clone());
            current = Some(i);
        }
        loop {
            tokio::select! {
                _ = pool.close_event() => return,
                _ = tokio::time::sleep(WATCH_EVERY) => {}
            }
            match tokio::time::timeout(PROBE_TIMEOUT, accepts_writes(&mut watch)).await {
                Ok(Ok(true)) => {}
                _ => {
                    tracing::warn!(server = %describe(&servers[i]), "lost the Postgres primary; looking for it");
                    break;
                }
            }
        }
        // It may be dead; do not wait for a polite close.
        drop(watch);
    }
}

/// The first server (the current one first) that answers and accepts
/// writes, with a connection to it.
async fn find_primary(servers: &[PgConnectOptions], current: Option<usize>) -> Option<(usize, PgConnection)> {
    let order = current
        .into_iter()
        .chain((0..servers.len()).filter(|i| Some(*i) != current));
    for i in order {
        let probe = async {
            let mut conn = PgConnection::connect_with(&servers[i]).await?;
            let writable = accepts_writes(&mut conn).await?;
            Ok::<_, sqlx::Error>(writable.then_some(conn))
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(Some(conn))) => return Some((i, conn)),
            Ok(Ok(None)) => {
                tracing::debug!(server = %describe(&servers[i]), "read-only Postgres server")
            }
            Ok(Err(e)) => {
                tracing::debug!(server = %describe(&servers[i]), error = %e, "Postgres server unreachable")
            }
            Err(_) => tracing::debug!(server = %describe(&servers[i]), "Postgres server timed out"),
        }
    }
    None
}

/// Whether the database answers.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

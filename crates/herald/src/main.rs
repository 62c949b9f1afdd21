//! `herald`: API, worker and gateway in one process.
//!
//! With no `HERALD_REDIS_URL` the three share an in-process bus, so Postgres
//! is the only server to run; with one, this process joins a multi-process
//! deployment like any other api/worker/gateway. The API address also serves
//! `/v1/stream`, so one port is enough for small installs.

use herald_api::Application;
use herald_bus::Bus;
use herald_gateway::Gateway;
use herald_platform::{db, shutdown, telemetry, Settings};
use herald_worker::Worker;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let pool = db::connect_lazy(&settings.database, "herald")?;
    let bus = Bus::configured_or_local(&settings.bus);
    // The API applies migrations, so it is built first.
    let api = Application::build(settings.clone(), pool.clone()).await?;
    let worker = Worker::build_on(&settings, pool.clone(), bus.clone()).await?;
    let gateway = Gateway::build_on(settings.clone(), pool, bus.clone()).await?;
    // SIGTERM drains like a standalone gateway: `/readyz` (on the API address
    // too) turns unready and new streams are refused first; after the grace the
    // streams get `herald.reconnect` and end, and only then do the API and the
    // worker stop, so REST calls and delivery keep working during the grace.
    let streams_ending = gateway.streams_ending();
    let api = api
        .with_routes(gateway.stream_router())
        .draining_on(gateway.draining());
    tracing::info!(
        api = %api.local_addr(),
        gateway = %gateway.local_addr(),
        worker = %worker.local_addr(),
        bus = bus.name(),
        "herald listening"
    );
    let stop = shutdown::on_signal();
    let (a, g, w) = tokio::join!(
        api.run_until_stopped(streams_ending.clone()),
        gateway.run_until_stopped(stop),
        worker.run_until_stopped(streams_ending),
    );
    a?;
    g?;
    w?;
    Ok(())
}

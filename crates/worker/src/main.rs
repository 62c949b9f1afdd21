use herald_platform::{db, shutdown, telemetry, Settings};
use herald_worker::Worker;

// One thread: the worker is one sequential relay loop plus light side tasks
// (LISTEN, retention, metrics), so more threads add no throughput, only
// cross-thread wake-ups on every event's path (NOTIFY → relay); the latency
// benchmark shows the difference (BENCHMARKS.md, "The worker's runtime").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let pool = db::connect_lazy(&settings.database, "herald-worker")?;
    let worker = Worker::build(&settings, pool).await?;
    tracing::info!(addr = %worker.local_addr(), "herald-worker listening");
    worker.run_until_stopped(shutdown::on_signal()).await?;
    Ok(())
}

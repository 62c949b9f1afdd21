use herald_platform::{db, shutdown, telemetry, Settings};
use herald_worker::Worker;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let pool = db::connect_lazy(&settings.database_url, settings.database_max_connections)?;
    let worker = Worker::build(&settings, pool).await?;
    tracing::info!(addr = %worker.local_addr(), "herald-worker listening");
    worker.run_until_stopped(shutdown::on_signal()).await?;
    Ok(())
}

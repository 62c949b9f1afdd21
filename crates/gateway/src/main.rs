use herald_gateway::Gateway;
use herald_platform::{db, shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let pool = db::connect_lazy(&settings.database, "herald-gateway")?;
    let gateway = Gateway::build(settings, pool).await?;
    tracing::info!(addr = %gateway.local_addr(), "herald-gateway listening");
    gateway.run_until_stopped(shutdown::on_signal()).await?;
    Ok(())
}

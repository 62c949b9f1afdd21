use herald_api::Application;
use herald_platform::{db, shutdown, telemetry, Settings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let pool = db::connect_lazy(&settings.database, "herald-api")?;
    let app = Application::build(settings, pool).await?;
    tracing::info!(addr = %app.local_addr(), "herald-api listening");
    app.run_until_stopped(shutdown::on_signal()).await?;
    Ok(())
}

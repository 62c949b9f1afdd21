//! Development token minter: prints an HS256 JWT signed with
//! `HERALD_JWT_SECRET` for the audience `HERALD_JWT_AUDIENCE` (default herald).
//!
//! herald-token --sub alice [--scope publish] [--topics 'feed:*,order:1'] [--ttl 3600]
//! herald-token vapid-keys   (a new Web Push key pair, as HERALD_VAPID_PRIVATE_KEY lines)

use std::time::{SystemTime, UNIX_EPOCH};

use herald_platform::Settings;

fn main() {
    if let Err(e) = run() {
        eprintln!("herald-token: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    if std::env::args().nth(1).as_deref() == Some("vapid-keys") {
        let (private, public) = herald_push::VapidKey::generate();
        println!("# A new VAPID key pair (P-256). Keep the private key secret; pages subscribe with the");
        println!("# public one, which GET /v1/push/vapid-public-key also serves.");
        println!("HERALD_VAPID_PRIVATE_KEY={private}");
        println!("# public key: {public}");
        return Ok(());
    }
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    let secret = settings
        .jwt
        .secret
        .clone()
        .ok_or("HERALD_JWT_SECRET must be set")?;
    let mut claims = serde_json::Map::new();
    let mut ttl: u64 = 3600;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--sub" => {
                claims.insert("sub".into(), value()?.into());
            }
            "--scope" => {
                claims.insert("scope".into(), value()?.into());
            }
            "--topics" => {
                let topics: Vec<serde_json::Value> = value()?
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| t.trim().into())
                    .collect();
                claims.insert("topics".into(), topics.into());
            }
            "--ttl" => ttl = value()?.parse().map_err(|_| "--ttl takes seconds")?,
            "-h" | "--help" => {
                println!("herald-token --sub ID [--scope 'publish admin'] [--topics 'feed:*,order:1'] [--ttl SECONDS]");
                println!("herald-token vapid-keys");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    claims.insert("aud".into(), settings.jwt.audience.clone().into());
    if let Some(iss) = &settings.jwt.issuer {
        claims.insert("iss".into(), iss.clone().into());
    }
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl).into());
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(())
}

//! `Idempotency-Key`: the same key with the same request returns the original
//! response and has no second effect; the same key with another request is a
//! 422. The key row is inserted in the effect's own transaction, so a key is
//! recorded if and only if its effect committed. Concurrent requests with one
//! key serialize on the primary key: the second waits for the first to commit
//! and then replays its response.

use axum::http::{HeaderMap, StatusCode};
use herald_platform::auth::Principal;
use herald_platform::problem::Problem;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::outbox::OutboxTx;

pub const HEADER: &str = "idempotency-key";

/// A validated key, scoped to the caller.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    principal: String,
    key: String,
    request_hash: Vec<u8>,
}

/// What to do with a request that carries a key.
pub enum Claim {
    /// First use: do the work, then [`IdempotencyKey::record`] it.
    Fresh,
    /// Already done: answer this.
    Replay {
        status: StatusCode,
        body: serde_json::Value,
    },
}

impl IdempotencyKey {
    /// Reads the header, if present. `route` and `request` define "the same
    /// request": the same endpoint and an equal JSON body.
    pub fn from_headers<R: Serialize>(
        headers: &HeaderMap,
        principal: &Principal,
        route: &str,
        request: &R,
    ) -> ApiResult<Option<Self>> {
        let Some(raw) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = raw
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                Problem::invalid_field(
                    "header:Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
            })?;
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update([0]);
        hasher.update(serde_json::to_vec(request)?);
        Ok(Some(Self {
            principal: principal.sub.clone(),
            key: key.to_owned(),
            request_hash: hasher.finalize().to_vec(),
        }))
    }

    /// Claims the key inside `tx`. Waits for a concurrent holder of the same
    /// key to finish.
    pub async fn claim(&self, tx: &mut OutboxTx) -> ApiResult<Claim> {
        let inserted = sqlx::query!(
            r#"INSERT INTO idempotency_keys (principal, key, request_hash, status, response)
               VALUES ($1, $2, $3, 0, 'null') ON CONFLICT DO NOTHING"#,
            self.principal,
            self.key,
            self.request_hash,
        )
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        let row = sqlx::query!(
            "SELECT request_hash, status, response FROM idempotency_keys WHERE principal = $1 AND key = $2",
            self.principal,
            self.key,
        )
        .fetch_one(&mut **tx)
        .await?;
        if row.request_hash != self.request_hash {
            return Err(ApiError::Client(
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "Idempotency-Key reused with a different request",
                )
                .detail("this Idempotency-Key was already used with another request; use a new key"),
            ));
        }
        let status = u16::try_from(row.status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        Ok(Claim::Replay {
            status,
            body: row.response,
        })
    }

    /// Records the response of a fresh claim, in the effect's transaction.
    pub async fn record(
        &self,
        tx: &mut OutboxTx,
        status: StatusCode,
        body: &serde_json::Value,
    ) -> ApiResult<()> {
        sqlx::query!(
            "UPDATE idempotency_keys SET status = $3, response = $4 WHERE principal = $1 AND key = $2",
            self.principal,
            self.key,
            status.as_u16() as i16,
            body,
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

//! The raw SQLite baseline for `nsm bench store`: the same file format, schema, pragmas and
//! payloads as the store, written by plain `INSERT`s in explicit transactions with none of
//! the store's logic (no queue, no version or idempotency checks, no projection). The ratio
//! of the store's throughput to this one is what the store's logic costs.

use std::path::Path;
use std::time::Duration;

use sqlx::Connection;
use tokio::time::Instant;
use uuid::Uuid;

use super::OpenOptions;
use super::open;
use super::writer::execute;
use crate::error::StoreError;
use crate::store::format_timestamp;

const PLAIN_INSERT: &str = "\
INSERT INTO events (event_id, stream, version, event_type, schema_version, recorded_at, payload)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)";

/// Writes `batches.len()` transactions of `batches[i]` events each, `streams` round robin,
/// into a new log at `path`, and returns the time the writes took (set-up excluded).
pub async fn raw_insert_baseline(
    path: &Path,
    options: &OpenOptions,
    batches: &[usize],
    streams: usize,
    payload: &str,
) -> Result<Duration, StoreError> {
    open::check_path(path, false)?;
    let writer = open::writer_options(path, options.busy_timeout, options.wal_limit_bytes);
    let mut conn = open::connect(path, &writer).await?;
    open::migrate(path, &mut conn).await?;
    let streams: Vec<String> = (0..streams.max(1)).map(|s| format!("raw-{s}")).collect();
    let mut versions = vec![0i64; streams.len()];
    let mut next = 0usize;
    let began = Instant::now();
    for &size in batches {
        let recorded_at = format_timestamp(chrono::Utc::now());
        execute(&mut conn, "BEGIN IMMEDIATE").await?;
        for _ in 0..size {
            let s = next % streams.len();
            next += 1;
            versions[s] += 1;
            sqlx::query(PLAIN_INSERT)
                .bind(Uuid::now_v7().hyphenated().to_string())
                .bind(&streams[s])
                .bind(versions[s])
                .bind("Benchmarked")
                .bind(&recorded_at)
                .bind(payload)
                .execute(&mut conn)
                .await?;
        }
        execute(&mut conn, "COMMIT").await?;
    }
    let took = began.elapsed();
    conn.close().await?;
    Ok(took)
}

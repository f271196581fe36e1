//! The raw SQLite baseline for `nsm bench store`: the same file format, schema, pragmas and
//! payloads as the store, written by plain `INSERT`s in explicit transactions with none of
//! the store's logic (no queue, no version or idempotency checks, no projection). The ratio
//! of the store's throughput to this one is what the store's logic costs.
//!
//! With `rows_per_statement` = [`MAX_ROWS`] it writes multi-row statements like the store,
//! so the ratio measures the checks, the queue and the replies, not a difference in
//! statement count; with 1 it is the naive one-INSERT-per-event baseline.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::Value;
use sqlx::Connection;
use tokio::time::Instant;
use uuid::Uuid;

use super::OpenOptions;
use super::open;
use super::wave;

/// Rows per statement of the store's own multi-row inserts.
pub const MAX_ROWS: usize = wave::MAX_ROWS;
use super::writer::execute;
use crate::error::StoreError;
use crate::store::format_timestamp;

fn plain_insert(rows: usize) -> String {
    let row = "(?, ?, ?, 'Benchmarked', 1, ?, ?)";
    format!(
        "INSERT INTO events (event_id, stream, version, event_type, schema_version, recorded_at, payload) VALUES {}",
        vec![row; rows].join(",")
    )
}

/// Writes `batches.len()` transactions of `batches[i]` events each, `streams` round robin,
/// `rows_per_statement` rows per INSERT,
/// into a new log at `path`, and returns the time the writes took (set-up excluded). Writes
/// through the same driver and pragmas as the journal writer, on a blocking thread as it.
pub async fn raw_insert_baseline(
    path: &Path,
    options: &OpenOptions,
    batches: &[usize],
    streams: usize,
    payload: &str,
    rows_per_statement: usize,
) -> Result<Duration, StoreError> {
    open::check_path(path, false)?;
    let writer = open::writer_options(path, options.busy_timeout, options.wal_limit_bytes);
    let mut conn = open::connect(path, &writer).await?;
    open::migrate(path, &mut conn).await?;
    conn.close().await?;
    let conn = open::writer_connection(path, options.busy_timeout, options.wal_limit_bytes)?;
    let batches = batches.to_vec();
    let payload = payload.to_owned();
    let write = move || -> Result<Duration, StoreError> {
        let streams: Vec<String> = (0..streams.max(1)).map(|s| format!("raw-{s}")).collect();
        let mut versions = vec![0i64; streams.len()];
        let mut next = 0usize;
        let began = Instant::now();
        for size in batches {
            let recorded_at = format_timestamp(chrono::Utc::now());
            execute(&conn, "BEGIN IMMEDIATE")?;
            let mut left = size;
            while left > 0 {
                let rows = left.min(rows_per_statement.max(1));
                left -= rows;
                let sql = plain_insert(rows);
                let mut values: Vec<Value> = Vec::with_capacity(rows * 5);
                for _ in 0..rows {
                    let s = next % streams.len();
                    next += 1;
                    versions[s] += 1;
                    values.extend([
                        Value::Text(Uuid::now_v7().hyphenated().to_string()),
                        Value::Text(streams[s].clone()),
                        Value::Integer(versions[s]),
                        Value::Text(recorded_at.clone()),
                        Value::Text(payload.clone()),
                    ]);
                }
                conn.prepare_cached(&sql)?
                    .execute(rusqlite::params_from_iter(values))?;
            }
            execute(&conn, "COMMIT")?;
        }
        let took = began.elapsed();
        conn.close().map_err(|(_, e)| e)?;
        Ok(took)
    };
    tokio::task::spawn_blocking(write)
        .await
        .map_err(|e| StoreError::Corrupt(format!("the baseline writer panicked: {e}")))?
}

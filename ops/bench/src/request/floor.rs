//! The floor a setup cannot beat on this machine: one bare gRPC round trip and one fsync'd
//! SQLite commit, each timed alone, one at a time.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use nsm_proto::networkservice::network_service_client::NetworkServiceClient;
use nsm_proto::transport::{DEFAULT_CONNECT_TIMEOUT, PeerUrl};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::time::Instant;

use super::super::quantile_ms;
use super::load::new_connection;

/// Unmeasured rounds before each floor measurement (connection set-up, first pages).
const WARMUP: u32 = 50;
/// The payload of each committed row, as the events of `nsm bench store`.
const PAYLOAD_BYTES: usize = 512;

/// p50 of `samples` sequential unary round trips to the echo server at `url`, each sending
/// the same setup Request (so the same bytes as a setup's first hop).
pub(super) async fn echo_p50(url: &PeerUrl, samples: u32) -> anyhow::Result<f64> {
    let mut client = NetworkServiceClient::new(url.channel(DEFAULT_CONNECT_TIMEOUT));
    let request = new_connection();
    let mut latencies = Vec::with_capacity(samples as usize);
    for round in 0..WARMUP + samples {
        let message = request.clone();
        let began = Instant::now();
        client.request(message).await.context("echo round trip")?;
        if round >= WARMUP {
            latencies.push(began.elapsed());
        }
    }
    latencies.sort_unstable();
    Ok(quantile_ms(&latencies, 0.50))
}

/// p50 of `samples` sequential transactions of one INSERT of a [`PAYLOAD_BYTES`] payload,
/// in a new SQLite file at `path` with the event log's pragmas (WAL, `synchronous=FULL`:
/// the WAL is fsynced at every commit).
pub(super) async fn commit_p50(path: &Path, samples: u32) -> anyhow::Result<f64> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .pragma("wal_autocheckpoint", "1000");
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    sqlx::query("CREATE TABLE floor (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        .execute(&mut conn)
        .await?;
    let payload = "x".repeat(PAYLOAD_BYTES);
    let mut latencies = Vec::with_capacity(samples as usize);
    for round in 0..WARMUP + samples {
        let began = Instant::now();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await?;
        sqlx::query("INSERT INTO floor (payload) VALUES (?)")
            .bind(&payload)
            .execute(&mut conn)
            .await?;
        sqlx::query("COMMIT").execute(&mut conn).await?;
        if round >= WARMUP {
            latencies.push(began.elapsed());
        }
    }
    conn.close().await?;
    latencies.sort_unstable();
    Ok(quantile_ms(&latencies, 0.50))
}

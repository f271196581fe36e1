//! `nsm bench store`: like `etcdctl check perf`, tells whether a disk can carry the log.
//!
//! Phase 1 drives the real store: N concurrent writers, each appending one event at a time
//! to its own stream with a version check, every append waiting for durability. Phase 2
//! writes the same number of events, in the same number of transactions (so the same
//! batch sizes and fsyncs), with the same payloads, pragmas and schema, as plain INSERTs:
//! multi-row ones like the store's (`raw_sqlite_events_per_s`, the baseline of `ratio`) and
//! one row per statement (`raw_sqlite_single_row_events_per_s`, for context).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use nsm_log::store::sqlite::WriterCounts;
use nsm_log::store::sqlite::baseline::{MAX_ROWS, raw_insert_baseline};
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, NewEvent, OpenOptions, SqliteStore,
    StreamId,
};
use serde::Serialize;
use tokio::time::Instant;

use super::{median, quantile_ms, round3};
use nsm_inspect::output::print_report;

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Directory on the disk to measure; a temporary folder is made (and removed) in it.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    writers: u32,
    /// Events to append in all.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Size of each event's JSON payload.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    payload_bytes: u32,
    /// Rounds of (store, baseline); the median of each is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct StoreReport {
    events_per_s: f64,
    raw_sqlite_events_per_s: f64,
    ratio: f64,
    raw_sqlite_single_row_events_per_s: f64,
    ratio_vs_single_row: f64,
    p50_append_ms: f64,
    p99_append_ms: f64,
    max_append_ms: f64,
    writers: u32,
    events: u64,
    payload_bytes: u32,
    transactions: u64,
    mean_batch: f64,
    rounds: u32,
}

pub(crate) async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("nsm-bench-store-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("cannot make a temporary folder in {}", args.dir.display()))?;
    let payload = padded_payload(args.payload_bytes as usize);
    let options = OpenOptions {
        integrity_check: false,
        ..OpenOptions::default()
    };

    // Rounds alternate store and baseline so that a disk's drift hits both alike; the
    // report takes the median round of each.
    let mut store_rates = Vec::new();
    let mut raw_rates = Vec::new();
    let mut single_row_rates = Vec::new();
    let mut latencies = Vec::new();
    let mut counts = WriterCounts::default();
    for round in 0..args.rounds {
        let store = SqliteStore::open(
            dir.path().join(format!("store-{round}.db")),
            options.clone(),
        )
        .await?;
        let (elapsed, round_latencies) = drive_store(&store, &args, &payload).await?;
        counts = store.writer_stats();
        store.close().await;
        store_rates.push(counts.events as f64 / elapsed.as_secs_f64());
        latencies.extend(round_latencies);

        let batches = even_batches(counts.events, counts.batches);
        let streams = args.writers as usize;
        let raw = dir.path().join(format!("raw-{round}.db"));
        let took =
            raw_insert_baseline(&raw, &options, &batches, streams, &payload, MAX_ROWS).await?;
        raw_rates.push(counts.events as f64 / took.as_secs_f64());
        let single = dir.path().join(format!("single-{round}.db"));
        let took = raw_insert_baseline(&single, &options, &batches, streams, &payload, 1).await?;
        single_row_rates.push(counts.events as f64 / took.as_secs_f64());
    }

    latencies.sort_unstable();
    let events_per_s = median(&mut store_rates);
    let raw_per_s = median(&mut raw_rates);
    let single_row_per_s = median(&mut single_row_rates);
    let report = StoreReport {
        events_per_s: events_per_s.round(),
        raw_sqlite_events_per_s: raw_per_s.round(),
        ratio: round3(events_per_s / raw_per_s),
        raw_sqlite_single_row_events_per_s: single_row_per_s.round(),
        ratio_vs_single_row: round3(events_per_s / single_row_per_s),
        p50_append_ms: round3(quantile_ms(&latencies, 0.50)),
        p99_append_ms: round3(quantile_ms(&latencies, 0.99)),
        max_append_ms: round3(quantile_ms(&latencies, 1.0)),
        writers: args.writers,
        events: counts.events,
        payload_bytes: args.payload_bytes,
        transactions: counts.batches,
        mean_batch: round3(counts.events as f64 / counts.batches.max(1) as f64),
        rounds: args.rounds,
    };
    print_report(&report, args.json)
}

/// Runs the writers; returns the wall time and every append's latency.
async fn drive_store(
    store: &SqliteStore,
    args: &StoreArgs,
    payload: &str,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let store: Arc<dyn EventStore> = Arc::new(store.clone());
    let writers = u64::from(args.writers);
    let began = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            // Spread the remainder so the total is exactly `events`.
            let count = args.events / writers + u64::from(w < args.events % writers);
            let store = store.clone();
            let payload = payload.to_owned();
            tokio::spawn(async move { one_writer(store.as_ref(), w, count, &payload).await })
        })
        .collect();
    let mut latencies = Vec::with_capacity(args.events as usize);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((began.elapsed(), latencies))
}

async fn one_writer(
    store: &dyn EventStore,
    writer: u64,
    count: u64,
    payload: &str,
) -> anyhow::Result<Vec<Duration>> {
    let stream = StreamId::new(format!("bench-{writer}"))?;
    let mut latencies = Vec::with_capacity(count as usize);
    for version in 0..count {
        let began = Instant::now();
        let event = NewEvent {
            id: uuid::Uuid::now_v7(),
            event_type: "Benchmarked".into(),
            schema_version: 1,
            payload: payload.to_owned(),
            causation: Causation::default(),
        };
        let expected = ExpectedVersion::from_version(version);
        store
            .append(AppendRequest::new(stream.clone(), expected, vec![event]))
            .await?;
        latencies.push(began.elapsed());
    }
    Ok(latencies)
}

/// `events` spread as evenly as possible over `transactions`.
fn even_batches(events: u64, transactions: u64) -> Vec<usize> {
    let transactions = transactions.max(1);
    (0..transactions)
        .map(|t| (events / transactions + u64::from(t < events % transactions)) as usize)
        .collect()
}

/// A JSON object of exactly `bytes` bytes.
fn padded_payload(bytes: usize) -> String {
    let frame = r#"{"pad":""}"#.len();
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(bytes.saturating_sub(frame)))
}

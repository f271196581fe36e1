//! `nsm bench fold`: the time to fold a large log into vWire state, which is what a replay
//! without the `live_vwires` projection (or `nsm verify`) costs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use nsm_log::projection::vwire::fold_all;
use nsm_log::store::{EventStore, OpenOptions, Position, SqliteStore};
use serde::Serialize;
use tokio::time::Instant;

use super::{round3, workload};
use nsm_inspect::output::print_report;

#[derive(Debug, Args)]
pub struct FoldArgs {
    /// Directory on the disk to use; a temporary folder is made (and removed) in it.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Events in the generated log.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(10..))]
    events: u64,
    /// vWires they belong to (events / vwires events each).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    vwires: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct FoldReport {
    events: u64,
    vwires: u64,
    live_vwires: usize,
    fill_s: f64,
    /// Reading every event from the log, without decoding payloads.
    read_ms: f64,
    /// Reading, decoding and folding every event.
    fold_ms: f64,
    fold_events_per_s: f64,
    log_bytes: u64,
}

pub(crate) async fn run(args: FoldArgs) -> anyhow::Result<()> {
    let per_vwire = (args.events / args.vwires).max(2);
    let dir = tempfile::Builder::new()
        .prefix("nsm-bench-fold-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("cannot make a temporary folder in {}", args.dir.display()))?;
    let path = dir.path().join("events.db");
    let options = OpenOptions {
        integrity_check: false,
        ..OpenOptions::default()
    };
    let store = SqliteStore::open(&path, options.clone()).await?;
    let began = Instant::now();
    let live = workload::fill(Arc::new(store.clone()), args.vwires, per_vwire, 10, 256).await?;
    let fill_s = began.elapsed().as_secs_f64();
    store.close().await;

    let store = SqliteStore::open(&path, options).await?;
    let began = Instant::now();
    let mut after = Position::START;
    loop {
        let chunk = store.read_all(after, 8192).await?;
        let Some(last) = chunk.last() else { break };
        after = last.position;
    }
    let read = began.elapsed();
    let began = Instant::now();
    let folded = fold_all(&store as &dyn EventStore).await?;
    let fold = began.elapsed();
    store.close().await;
    let report = FoldReport {
        events: folded.events,
        vwires: folded.vwires.len() as u64,
        live_vwires: live.len(),
        fill_s: round3(fill_s),
        read_ms: round3(read.as_secs_f64() * 1000.0),
        fold_ms: round3(fold.as_secs_f64() * 1000.0),
        fold_events_per_s: (folded.events as f64 / fold.as_secs_f64()).round(),
        log_bytes: std::fs::metadata(&path).map_or(0, |m| m.len()),
    };
    print_report(&report, args.json)
}

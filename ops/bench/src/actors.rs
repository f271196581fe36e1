//! `nsm bench actors`: memory per idle vWire actor, and replay time, at N live vWires.
//!
//! The log is an in-memory store filled before measuring. Resident memory is read from
//! `/proc/self/status` before replay and after every actor has loaded its state; the
//! difference divided by N is the cost of one idle vWire (actor, mailbox, its state, its
//! timer and its directory entry). It is an upper bound: the allocator may keep freed
//! replay temporaries.

use std::sync::Arc;

use clap::Args;
use futures::StreamExt;
use nsm_log::store::MemoryStore;
use nsm_runtime::clock::SystemClock;
use nsm_runtime::{Journal, ManagerConfig, ManagerHandle};
use serde::Serialize;
use tokio::time::Instant;

use super::{round3, workload};
use nsm_inspect::output::print_report;

#[derive(Debug, Args)]
pub struct ActorsArgs {
    /// Live vWires to start.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    vwires: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct ActorsReport {
    vwires: usize,
    replay_ms: f64,
    all_loaded_ms: f64,
    rss_before_mib: f64,
    rss_after_mib: f64,
    bytes_per_idle_vwire: u64,
}

pub(crate) async fn run(args: ActorsArgs) -> anyhow::Result<()> {
    let store = MemoryStore::new();
    let live = workload::fill(Arc::new(store.clone()), args.vwires, 4, 0, 64).await?;
    let before = resident_bytes()?;

    let began = Instant::now();
    let (manager, report) = ManagerHandle::start(
        ManagerConfig::default(),
        Journal::new(Arc::new(store)),
        Arc::new(SystemClock),
    )
    .await?;
    let replay = began.elapsed();
    // Every actor answers only once it has started: then all are really there.
    let mut answers = futures::stream::iter(live.iter().copied())
        .map(|id| {
            let manager = manager.clone();
            async move { manager.state(id).await }
        })
        .buffer_unordered(512);
    while let Some(answer) = answers.next().await {
        answer?.ok_or_else(|| anyhow::anyhow!("a replayed vWire has no state"))?;
    }
    let loaded = began.elapsed();
    let after = resident_bytes()?;

    let mib = |b: u64| round3(b as f64 / (1024.0 * 1024.0));
    let report = ActorsReport {
        vwires: report.live,
        replay_ms: round3(replay.as_secs_f64() * 1000.0),
        all_loaded_ms: round3(loaded.as_secs_f64() * 1000.0),
        rss_before_mib: mib(before),
        rss_after_mib: mib(after),
        bytes_per_idle_vwire: after.saturating_sub(before) / report.live.max(1) as u64,
    };
    print_report(&report, args.json)
}

/// Resident set size of this process.
fn resident_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/self/status"))?;
    Ok(kib * 1024)
}

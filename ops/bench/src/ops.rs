//! `nsm bench ops`: how long the operator commands take on a big log — 1,000,000 events over
//! 100,000 vWires by default. Each command runs as its own `nsm` process, as an operator runs
//! it (open and checks included, output to /dev/null), after one warm-up run so the page
//! cache holds the file as it would on a node that just wrote it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use nsm_log::read::LogReader;
use nsm_log::store::{OpenOptions, Position, SqliteStore, StreamKind, format_timestamp};
use serde::Serialize;
use tokio::time::Instant;

use super::{median, round3, workload};
use nsm_inspect::output::print_report;

#[derive(Debug, Args)]
pub struct OpsArgs {
    /// Directory on the disk to use; a temporary folder is made (and removed) in it.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Use this log instead of generating one (it is only read).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Keep the generated log at this path (to run the commands on it by hand).
    #[arg(long, conflicts_with = "db")]
    keep: Option<PathBuf>,
    /// Events in the generated log.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(10..))]
    events: u64,
    /// vWires they belong to.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    vwires: u64,
    /// Timed runs of each command (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct OpsReport {
    events: u64,
    vwires: u64,
    log_bytes: u64,
    fill_s: Option<f64>,
    /// `nsm vwires --at <a moment in the middle of the log> --json`.
    vwires_at_ms: f64,
    /// `nsm show <one vWire> --json`.
    show_ms: f64,
    /// `nsm events --vwire <one vWire> --json`.
    events_vwire_ms: f64,
    /// `nsm verify --json`.
    verify_ms: f64,
    /// `nsm replay --simulate`, for scale.
    replay_simulate_ms: f64,
}

pub(crate) async fn run(args: OpsArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("nsm-bench-ops-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("cannot make a temporary folder in {}", args.dir.display()))?;
    let (db, fill_s) = match &args.db {
        Some(db) => (db.clone(), None),
        None => {
            let path = args
                .keep
                .clone()
                .unwrap_or_else(|| scratch.path().join("events.db"));
            if path.exists() {
                bail!("{} exists; remove it or pass it as --db", path.display());
            }
            let began = Instant::now();
            fill(&path, args.events, args.vwires).await?;
            (path, Some(round3(began.elapsed().as_secs_f64())))
        }
    };
    let (events, vwires, middle, one_vwire) = facts(&db).await?;
    let db_text = db.display().to_string();
    let run_ms = |command: Vec<String>| {
        let runs = args.runs;
        async move {
            time_command(&command).await?; // warm-up
            let mut times = Vec::new();
            for _ in 0..runs {
                times.push(time_command(&command).await?);
            }
            anyhow::Ok(round3(median(&mut times)))
        }
    };
    let with_db = |words: &[&str]| -> Vec<String> {
        let mut command: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        command.extend(["--db".to_owned(), db_text.clone(), "--json".to_owned()]);
        command
    };
    let report = OpsReport {
        events,
        vwires,
        log_bytes: std::fs::metadata(&db).map_or(0, |m| m.len()),
        fill_s,
        vwires_at_ms: run_ms(with_db(&["vwires", "--at", &middle])).await?,
        show_ms: run_ms(with_db(&["show", &one_vwire])).await?,
        events_vwire_ms: run_ms(with_db(&["events", "--vwire", &one_vwire])).await?,
        verify_ms: run_ms(with_db(&["verify"])).await?,
        replay_simulate_ms: run_ms(with_db(&["replay", "--simulate"])).await?,
    };
    print_report(&report, args.json)
}

/// Writes the log the way a node does: each vWire's history is the runtime's own decisions,
/// appended with its projection row through the store (one in ten closed).
async fn fill(path: &Path, events: u64, vwires: u64) -> anyhow::Result<()> {
    let options = OpenOptions {
        integrity_check: false,
        ..OpenOptions::default()
    };
    let store = SqliteStore::open(path, options).await?;
    let per_vwire = (events / vwires).max(2);
    workload::fill(Arc::new(store.clone()), vwires, per_vwire, 10, 256).await?;
    store.close().await;
    Ok(())
}

/// How many events and vWires the log holds, the recorded time of its middle event, and a
/// vWire from the middle of the log (read through the log's own read API).
async fn facts(db: &Path) -> anyhow::Result<(u64, u64, String, String)> {
    let log = LogReader::open(db).await?;
    let head = log.head()?;
    let events = log.count_until(head)?;
    let vwires = log
        .streams_with_prefix(StreamKind::VWire.prefix(), usize::MAX)?
        .len() as u64;
    let middle = Position((head.0 / 2).saturating_sub(1));
    let event = log
        .read_range(middle, head, 1)?
        .pop()
        .with_context(|| format!("{} holds no events", db.display()))?;
    let vwire = StreamKind::VWire
        .strip(event.stream.as_str())
        .unwrap_or(event.stream.as_str())
        .to_owned();
    Ok((events, vwires, format_timestamp(event.recorded_at), vwire))
}

/// Runs `nsm <command>` with output to /dev/null; its wall time in milliseconds.
async fn time_command(command: &[String]) -> anyhow::Result<f64> {
    let binary = std::env::current_exe().context("cannot find the nsm binary")?;
    let began = Instant::now();
    let output = tokio::process::Command::new(&binary)
        .args(command)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .with_context(|| format!("cannot run nsm {}", command.join(" ")))?;
    let took = began.elapsed().as_secs_f64() * 1000.0;
    if !output.status.success() {
        bail!(
            "nsm {} failed ({}): {}",
            command.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(took)
}

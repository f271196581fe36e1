//! `nsm replay --simulate`: re-drive the runtime's decision logic over the recorded events,
//! with every side effect disabled (no data plane, no gRPC, no writes), and report each
//! decision that differs from what was recorded. The logic is `nsm_domain::replay`, which
//! calls the very functions the actors call.

use clap::Args;
use nsm_domain::replay::{Divergence, Simulation};
use nsm_log::store::Position;
use serde::Serialize;

use super::describe::short_stream;
use super::progress::Progress;
use super::scan::scan;
use super::{LogArgs, table};
use nsm_log::read::LogReader;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Re-make the decisions without side effects and compare them with the log (the only
    /// replay this command does: replay with side effects is what `nsm serve` does at start).
    #[arg(long, required = true)]
    simulate: bool,
    /// Judge the decisions from this position on (the history before it is folded only).
    #[arg(long)]
    from: Option<u64>,
    /// Stop after this position.
    #[arg(long)]
    to: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Report {
    from: u64,
    to: u64,
    /// Events whose decision was re-made.
    checked: u64,
    /// Events with no decision to re-make (records of what reconcile did, unknown streams).
    skipped: u64,
    divergences: Vec<Divergence>,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let log = LogReader::open(&args.log.db).await?;
    let head = log.head()?;
    let to = Position(args.to.unwrap_or(head.0).min(head.0));
    let from = Position(args.from.unwrap_or(1).max(1));
    if from > to && to > Position::START {
        anyhow::bail!("--from {from} is after --to {to}");
    }
    let mut simulation = Simulation::new();
    let mut divergences = Vec::new();
    let progress = Progress::new(to.0, "events");
    scan(
        &log,
        Position::START,
        to,
        &progress,
        |event| event,
        |event| {
            if let Some(divergence) = simulation.feed(&event, event.position >= from) {
                divergences.push(divergence);
            }
            Ok(())
        },
    )?;
    drop(progress);
    let report = Report {
        from: from.0,
        to: to.0,
        checked: simulation.checked(),
        skipped: simulation.skipped(),
        divergences,
    };
    if args.log.json {
        crate::output::print_json_line(&report)?;
    } else {
        print_report(&report)?;
    }
    if !report.divergences.is_empty() {
        anyhow::bail!(
            "{} recorded decision(s) differ from what the runtime decides",
            report.divergences.len()
        );
    }
    Ok(())
}

fn print_report(report: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    writeln!(
        out,
        "positions {}..={}: {} decision(s) re-made, {} record(s) with none to re-make, {} differ",
        report.from,
        report.to,
        report.checked,
        report.skipped,
        report.divergences.len()
    )?;
    if report.divergences.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .divergences
        .iter()
        .map(|d| {
            vec![
                d.position.to_string(),
                short_stream(d.stream.as_str()),
                d.version.to_string(),
                d.event_type.clone(),
                serde_json::to_value(d.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                d.detail.clone(),
            ]
        })
        .collect();
    writeln!(out)?;
    table::write(
        &mut out,
        &["POSITION", "STREAM", "V", "EVENT", "KIND", "DETAIL"],
        &rows,
    )?;
    Ok(())
}

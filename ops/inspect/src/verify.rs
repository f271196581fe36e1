//! # `nsm verify`: is this log what nsm-rs promises?
//!
//! Reads the log read-only (beside a running node, or on a copy) and checks every invariant
//! the README's "The event log" promises, each as a named check with a result (`ok`,
//! `FAILED`, `info`, `skipped`), a count of problems and the first few, with positions:
//!
//! | check | what | how |
//! |---|---|---|
//! | `rows` | every row reads: a UUID id, an RFC 3339 time, numbers in range | the pass |
//! | `positions` | 1, 2, 3, ... with no hole; holes are listed as ranges | the pass |
//! | `versions` | each stream's versions are 1, 2, 3, ... in position order | one query |
//! | `event_ids` | no id twice (even if the UNIQUE index was dropped) | one query |
//! | `schemas` | every (event_type, schema_version) is readable (upcasters) | the pass |
//! | `payloads` | every payload decodes with its stream's decoder | the pass |
//! | `recorded_at` | never decreases along position | the pass |
//! | `integrity` | `PRAGMA quick_check` (`--no-integrity` skips it) | SQLite |
//! | `live_vwires`, `live_registry` | the projections equal a rebuild from the log | events crate's `compare` |
//!
//! "The pass" is one read of the log by [`scan`]: rows are decoded on every core and the
//! checks see them in position order, in memory of a few numbers (no per-event query, no
//! per-stream state). The two queries (`nsm-log`'s [`LogReader::misplaced_versions`] and
//! [`LogReader::duplicate_ids`]) run on SQLite's own indexes; the projection comparisons run
//! on the store's reader pool at the same time as the pass. This module decides what is a
//! failure and tells it; it issues no SQL.
//!
//! A log imported from a cut bundle (`log_meta.whole` is `false`) has holes by
//! construction: `positions` reports them as `info`, not as a failure.
//!
//! The command fails (exit 1) when any check failed, with a message saying which.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::Args;
use nsm_domain::dataplane::DataplaneEvent;
use nsm_domain::envelope::StreamKind;
use nsm_domain::registry::{EndpointEvent, ServiceEvent};
use nsm_domain::upcast;
use nsm_domain::vwire::{VWireEvent, VWireId};
use nsm_log::projection::Mismatch;
use nsm_log::read::MisplacedVersion;
use nsm_log::store::{
    LiveRow, OpenOptions, Position, RecordedEvent, RegistrationRow, SqliteStore, format_timestamp,
};
use serde::Serialize;
use serde_json::{Map, Value};

use super::LogArgs;
use super::progress::Progress;
use super::scan::scan;
use super::table;
use nsm_log::read::LogReader;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Skip `PRAGMA quick_check` (it reads every page of the file).
    #[arg(long)]
    no_integrity: bool,
}

/// Problems listed per check in JSON (the count is always complete).
const LISTED: usize = 100;
/// Problems shown per check in the table.
const SHOWN: usize = 5;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Outcome {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "FAILED")]
    Failed,
    /// Not a failure, but worth knowing (holes in an import of a cut bundle).
    #[serde(rename = "info")]
    Info,
    #[serde(rename = "skipped")]
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Info => "info",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One thing found wrong.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
    message: String,
}

/// Problems of one check: all counted, the first [`LISTED`] kept.
#[derive(Debug, Default)]
struct Problems {
    count: u64,
    listed: Vec<Problem>,
}

impl Problems {
    fn push(&mut self, position: Option<u64>, message: impl FnOnce() -> String) {
        self.count += 1;
        if self.listed.len() < LISTED {
            self.listed.push(Problem {
                position,
                message: message(),
            });
        }
    }
}

/// The result of one check.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    #[serde(skip)]
    pub(crate) name: &'static str,
    pub(crate) ok: bool,
    pub(crate) result: Outcome,
    pub(crate) count: u64,
    /// One line for people: what was checked, or what was found.
    summary: String,
    problems: Vec<Problem>,
}

impl Check {
    fn new(name: &'static str, problems: Problems, summary: String) -> Self {
        let result = if problems.count == 0 {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        Self::with(name, result, problems, summary)
    }

    fn with(name: &'static str, result: Outcome, problems: Problems, summary: String) -> Self {
        Self {
            name,
            ok: result != Outcome::Failed,
            result,
            count: problems.count,
            summary,
            problems: problems.listed,
        }
    }
}

/// `nsm verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let checks = verify(&args.log.db, !args.no_integrity).await?;
    print(&checks, args.log.json)?;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} checks failed on {}: {}",
            failed.len(),
            checks.len(),
            args.log.db.display(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Runs every check on the log at `path`.
pub(crate) async fn verify(path: &Path, integrity: bool) -> anyhow::Result<Vec<Check>> {
    let log = LogReader::open(path).await?;
    let options = OpenOptions {
        integrity_check: false,
        readers: 2,
        ..OpenOptions::default()
    };
    let store = SqliteStore::open_read_only(path, options).await?;
    // The projections are rebuilt on the runtime's other threads while the pass runs here.
    let projections = tokio::spawn(compare_projections(store.clone()));
    let cut = imported_from_cut_bundle(&log)?;
    let pass = one_pass(&log)?;
    let mut checks = pass.into_checks(cut);
    checks.insert(2, versions(&log)?);
    checks.insert(3, event_ids(&log)?);
    checks.push(if integrity {
        quick_check(&log)?
    } else {
        Check::with(
            "integrity",
            Outcome::Skipped,
            Problems::default(),
            "--no-integrity".into(),
        )
    });
    let (vwires, registry) = projections.await?;
    store.close().await;
    checks.push(vwires);
    checks.push(registry);
    Ok(checks)
}

/// True when `log_meta` says the log is an import of a bundle that was cut.
fn imported_from_cut_bundle(log: &LogReader) -> anyhow::Result<bool> {
    Ok(log.meta("whole")?.as_deref() == Some("false"))
}

// ---------------------------------------------------------------------------------------
// The pass

/// What the decoding threads learn of one event.
#[derive(Debug)]
struct Seen {
    position: u64,
    recorded_at: DateTime<Utc>,
    /// The type and schema version, when this binary cannot read them.
    unreadable: Option<(String, u32)>,
    /// Why the payload did not decode (events of a readable schema only).
    payload: Option<String>,
}

fn look_at(event: RecordedEvent) -> Seen {
    let readable = upcast::is_readable(&event.event_type, event.schema_version);
    let payload = if readable { decode(&event).err() } else { None };
    Seen {
        position: event.position.0,
        recorded_at: event.recorded_at,
        unreadable: (!readable).then_some((event.event_type, event.schema_version)),
        payload,
    }
}

/// Decodes a payload with the decoder its stream's fold uses.
fn decode(event: &RecordedEvent) -> Result<(), String> {
    let stream = event.stream.as_str();
    let decoded = match event.stream.kind() {
        StreamKind::VWire => {
            if VWireId::from_stream(&event.stream).is_none() {
                return Err(format!("stream {stream} is not vwire-<uuid>"));
            }
            VWireEvent::decode(event).map(drop)
        }
        StreamKind::Endpoint => EndpointEvent::decode(event).map(drop),
        StreamKind::Service => ServiceEvent::decode(event).map(drop),
        StreamKind::Dataplane => DataplaneEvent::decode(event).map(drop),
        StreamKind::Other => {
            return Err(format!(
                "stream {stream} is of no known kind (vwire-, ns-, nse-, dataplane-)"
            ));
        }
    };
    decoded.map_err(|e| e.to_string())
}

/// The per-event checks, folded in position order.
#[derive(Debug, Default)]
struct Pass {
    events: u64,
    first: u64,
    last: u64,
    previous_time: Option<DateTime<Utc>>,
    /// Why the pass stopped early (a row that does not read).
    stopped: Option<String>,
    holes: Problems,
    missing: u64,
    schemas: HashMap<(String, u32), (u64, u64)>,
    payloads: Problems,
    times: Problems,
}

fn one_pass(log: &LogReader) -> anyhow::Result<Pass> {
    let head = log.head()?;
    let first = log.first()?;
    let progress = Progress::new(head.0.saturating_sub(first.0.saturating_sub(1)), "events");
    let mut pass = Pass::default();
    let scanned = scan(log, Position::START, head, &progress, look_at, |seen| {
        pass.see(seen);
        Ok(())
    });
    if let Err(e) = scanned {
        pass.stopped = Some(format!("{e:#}"));
    }
    Ok(pass)
}

impl Pass {
    fn see(&mut self, seen: Seen) {
        let position = seen.position;
        if position > self.last + 1 {
            let (from, to) = (self.last + 1, position - 1);
            self.missing += to - from + 1;
            self.holes.push(Some(from), || match from == to {
                true => format!("position {from} is missing"),
                false => format!("positions {from}..{to} are missing ({})", to - from + 1),
            });
        }
        if let Some(previous) = self.previous_time
            && seen.recorded_at < previous
        {
            self.times.push(Some(position), || {
                format!(
                    "recorded at {}, before the event ahead of it ({})",
                    format_timestamp(seen.recorded_at),
                    format_timestamp(previous)
                )
            });
        }
        self.previous_time = Some(seen.recorded_at);
        if let Some(key) = seen.unreadable {
            self.schemas.entry(key).or_insert((0, position)).0 += 1;
        }
        if let Some(message) = seen.payload {
            self.payloads.push(Some(position), || message);
        }
        self.events += 1;
        self.first = if self.first == 0 {
            position
        } else {
            self.first
        };
        self.last = position;
    }

    /// rows, positions, schemas, payloads, recorded_at.
    fn into_checks(self, cut: bool) -> Vec<Check> {
        let mut rows = Problems::default();
        if let Some(reason) = &self.stopped {
            rows.push(Some(self.last + 1), || {
                format!("{reason}; later events were not checked")
            });
        }
        let read = format!("{} events read", self.events);
        let range = match self.events {
            0 => "an empty log".to_owned(),
            _ => format!(
                "{} events, positions {}..{}",
                self.events, self.first, self.last
            ),
        };
        let positions = match (self.holes.count, cut) {
            (0, _) => Check::new("positions", self.holes, format!("{range}, no hole")),
            (holes, true) => {
                let summary = format!(
                    "{holes} holes, {} positions: expected, the log is an import of a cut bundle",
                    self.missing
                );
                Check::with("positions", Outcome::Info, self.holes, summary)
            }
            (holes, false) => {
                let summary = format!("{holes} holes, {} positions missing", self.missing);
                Check::new("positions", self.holes, summary)
            }
        };
        let mut schemas = Problems::default();
        let mut unreadable: Vec<_> = self.schemas.into_iter().collect();
        unreadable.sort_by_key(|(_, (_, first))| *first);
        let kinds = unreadable.len();
        for ((event_type, version), (count, first)) in unreadable {
            schemas.push(Some(first), || {
                let known = upcast::current_version(&event_type)
                    .map_or("an unknown type".to_owned(), |v| format!("current is v{v}"));
                format!("{event_type} v{version} is not readable ({known}): {count} events")
            });
        }
        let schema_summary = match kinds {
            0 => "every type and schema version has a decoder".to_owned(),
            n => format!("{n} (type, version) pairs this binary cannot read"),
        };
        let payload_summary = format!("{} events that do not decode", self.payloads.count);
        let time_summary = format!("{} events recorded before the one ahead", self.times.count);
        vec![
            Check::new("rows", rows, read),
            positions,
            Check::new("schemas", schemas, schema_summary),
            Check::new("payloads", self.payloads, payload_summary),
            Check::new("recorded_at", self.times, time_summary),
        ]
    }
}

// ---------------------------------------------------------------------------------------
// The checks SQLite answers

/// Versions 1, 2, 3, ... per stream, each after the one before it in position order (one
/// query over the `(stream, version)` index: no per-stream state in memory).
fn versions(log: &LogReader) -> anyhow::Result<Check> {
    let mut problems = Problems::default();
    log.misplaced_versions(|misplaced| {
        let MisplacedVersion {
            stream,
            version,
            position,
            previous,
            previous_position,
        } = misplaced;
        problems.push(Some(position), || match previous {
            0 => format!("{stream} begins at version {version}, not 1"),
            p if version == p => format!("{stream} has version {version} twice"),
            p if version == p + 1 => format!(
                "{stream} version {version} comes before version {p} (position {previous_position})"
            ),
            p => format!("{stream} version {version} follows version {p}"),
        });
    })?;
    let summary = format!("{} versions out of place", problems.count);
    Ok(Check::new("versions", problems, summary))
}

/// No event id twice (the schema's UNIQUE index makes it so, unless the file was edited).
fn event_ids(log: &LogReader) -> anyhow::Result<Check> {
    let mut problems = Problems::default();
    log.duplicate_ids(|duplicate| {
        let first = duplicate.positions.first().copied();
        problems.push(first, || {
            let positions: Vec<String> = duplicate.positions.iter().map(u64::to_string).collect();
            format!(
                "event id {} is in {} rows (positions {})",
                duplicate.event_id,
                duplicate.positions.len(),
                positions.join(", ")
            )
        });
    })?;
    let summary = format!("{} ids in more than one row", problems.count);
    Ok(Check::new("event_ids", problems, summary))
}

fn quick_check(log: &LogReader) -> anyhow::Result<Check> {
    let report = log.quick_check(100)?;
    let mut problems = Problems::default();
    if report != ["ok"] {
        for line in report {
            problems.push(None, || line);
        }
    }
    let summary = match problems.count {
        0 => "PRAGMA quick_check: ok".to_owned(),
        n => format!("PRAGMA quick_check: {n} problems"),
    };
    Ok(Check::new("integrity", problems, summary))
}

// ---------------------------------------------------------------------------------------
// Projections

async fn compare_projections(store: SqliteStore) -> (Check, Check) {
    let vwires = match nsm_log::projection::vwire::compare(&store).await {
        Ok(mismatches) => mismatch_check("live_vwires", mismatches, describe_live),
        Err(e) => cannot_rebuild("live_vwires", &e),
    };
    let registry = match nsm_log::projection::registry::compare(&store).await {
        Ok(mismatches) => mismatch_check("live_registry", mismatches, describe_registration),
        Err(e) => cannot_rebuild("live_registry", &e),
    };
    (vwires, registry)
}

fn cannot_rebuild(name: &'static str, error: &dyn std::fmt::Display) -> Check {
    let mut problems = Problems::default();
    problems.push(None, || format!("cannot rebuild it from the log: {error}"));
    Check::new(name, problems, "not compared: the log does not fold".into())
}

fn mismatch_check<R>(
    name: &'static str,
    mismatches: Vec<Mismatch<R>>,
    describe: fn(&R) -> String,
) -> Check {
    let mut problems = Problems::default();
    for mismatch in mismatches {
        problems.push(None, || match mismatch {
            Mismatch::Missing { stream } => {
                format!("{stream}: no row, but the log says it belongs")
            }
            Mismatch::Unexpected { stream } => {
                format!("{stream}: a row, but the log says it does not belong (ended or unknown)")
            }
            Mismatch::Differs {
                stream,
                stored,
                rebuilt,
            } => format!(
                "{stream}: the row says {}, the log says {}",
                describe(&stored),
                describe(&rebuilt)
            ),
        });
    }
    let summary = match problems.count {
        0 => "equal to a rebuild from the log".to_owned(),
        n => format!("{n} rows differ from a rebuild from the log"),
    };
    Check::new(name, problems, summary)
}

fn describe_live(row: &LiveRow) -> String {
    format!(
        "version {} {} until {}",
        row.version,
        row.data.status,
        format_timestamp(row.data.expires_at)
    )
}

fn describe_registration(row: &RegistrationRow) -> String {
    match row.data.expires_at {
        Some(at) => format!("version {} until {}", row.version, format_timestamp(at)),
        None => format!("version {}", row.version),
    }
}

// ---------------------------------------------------------------------------------------
// Output

fn print(checks: &[Check], json: bool) -> anyhow::Result<()> {
    if json {
        let mut fields = Map::new();
        for check in checks {
            fields.insert(check.name.to_owned(), serde_json::to_value(check)?);
        }
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&Value::Object(fields))?
        )?;
        return Ok(());
    }
    let mut rows = Vec::new();
    for check in checks {
        rows.push(vec![
            check.name.to_owned(),
            check.result.as_str().to_owned(),
            check.count.to_string(),
            check.summary.clone(),
        ]);
        let example = |text: String| vec![String::new(), String::new(), String::new(), text];
        for problem in check.problems.iter().take(SHOWN) {
            rows.push(example(match problem.position {
                Some(p) => format!("position {p}: {}", problem.message),
                None => problem.message.clone(),
            }));
        }
        let more = check.count.saturating_sub(SHOWN as u64);
        if more > 0 {
            rows.push(example(format!(
                "... and {more} more (--json lists up to {LISTED})"
            )));
        }
    }
    table::print(&["CHECK", "RESULT", "COUNT", "DETAILS"], &rows)
}

#[cfg(test)]
mod tests;

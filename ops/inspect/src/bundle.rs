//! # Incident bundles: `nsm export` and `nsm import`
//!
//! An incident bundle is the part of an event log that explains an incident, in one file an
//! operator can attach to a ticket and a developer can load on another machine, where every
//! `nsm` command answers as it did on the node.
//!
//! ## Format (`nsm_bundle` 1)
//!
//! JSON lines, UTF-8. Line 1 is the header, `{"nsm_bundle": 1, "meta": {...}}`, whose `meta`
//! says where the events come from and how they were cut ([`Meta`]: nsm and schema version,
//! source file and host, export time, the source's head, the first and last position
//! included, the filter, counts of events and streams, the nodes seen and whether the bundle
//! is `whole`). Every other line is one `events` row, in position order, with every column
//! under its own name, exactly as stored: `payload` is the stored TEXT as a JSON string (never
//! re-serialised), `correlation_id` and `causation_id` are `null` when NULL. A bundle is
//! lossless to the byte: importing it gives back the same rows.
//!
//! ## What a cut keeps
//!
//! `--since`, `--until` and `--vwire` choose a window and streams, but a stream is never cut
//! in the middle of its history: the bundle holds every event, from the stream's first, up to
//! the window's end, of every stream that has an event in the window or was open when the
//! window began (a vWire not yet ended, a service or endpoint still registered). So a vWire
//! requested before the window comes with its `Requested`, and `nsm vwires --at T` on the
//! import equals the source for any T in the window. `--vwire` keeps that vWire's stream
//! only. A cut bundle leaves holes in positions; the import records it (`log_meta`), and
//! `nsm verify` reports those holes as information.
//!
//! ## Writing and loading, all or nothing
//!
//! Export writes `FILE.tmp`, fsyncs it and renames it over `FILE`, so a crash never leaves
//! half a bundle under the real name. Import first reads the whole bundle and checks it
//! (header, every line, positions strictly increasing, JSON payloads, the event count of the
//! header) before it creates anything; then [`nsm_log::import::Import`] creates the log with
//! the store's own migrations and, in one transaction, inserts the rows with their positions,
//! rebuilds `live_vwires` and `live_registry`, records the header in `log_meta` and sets the
//! AUTOINCREMENT sequence to the last position, so a node can append after it. Any failure
//! rolls the transaction back and removes a file it created.
//!
//! The rows are read and written through `nsm-log` ([`LogReader::for_each_row`] and
//! [`Import`]); a line of a bundle is an [`EventRow`] as serde writes it. This module owns
//! the file (header, lines, checks), the cut and the reports, and issues no SQL.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use nsm_domain::dataplane::DATAPLANE_STREAM_PREFIX;
use nsm_domain::registry::{ENDPOINT_STREAM_PREFIX, SERVICE_STREAM_PREFIX};
use nsm_domain::vwire::VWIRE_STREAM_PREFIX;
use nsm_log::import::Import;
use nsm_log::read::LogReader;
use nsm_log::row::EventRow;
use nsm_log::store::sqlite::known_schema_version;
use nsm_log::store::{Position, StreamId, format_timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::LogArgs;
use super::filter::{FilterArgs, parse_moment};
use super::progress::Progress;
use crate::output::print_report;

/// The bundle format this binary writes and reads.
pub(crate) const BUNDLE_FORMAT: u64 = 1;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    log: LogArgs,
    /// The bundle to write (JSON lines). Refused if it exists, unless --force.
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// Only this vWire (its id, or the first characters of it), with its whole history.
    #[arg(long)]
    vwire: Option<String>,
    /// Streams active at or after this time: RFC 3339, or a duration ago such as 15m.
    #[arg(long, value_parser = parse_moment)]
    since: Option<DateTime<Utc>>,
    /// Events recorded at or before this time: RFC 3339, or a duration ago such as 5m.
    #[arg(long, value_parser = parse_moment)]
    until: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The bundle to load (written by `nsm export`).
    bundle: PathBuf,
    /// The event log to create. Refused if it exists and holds any event.
    #[arg(long)]
    db: PathBuf,
    /// Print JSON for programs instead of a table.
    #[arg(long)]
    json: bool,
}

/// Line 1 of a bundle.
#[derive(Debug, Serialize, Deserialize)]
struct Header<M> {
    nsm_bundle: u64,
    meta: M,
}

/// Where a bundle's events come from and how they were cut.
#[derive(Debug, Serialize)]
struct Meta {
    nsm_version: &'static str,
    /// The schema (migration) version of the exporting binary.
    schema_version: i64,
    source_db: String,
    source_host: Option<String>,
    exported_at: String,
    /// The source log's last position when the export began.
    source_head: u64,
    first_position: u64,
    last_position: u64,
    filter: FilterMeta,
    events: u64,
    streams: u64,
    /// Nodes whose data-plane stream (`dataplane-<node>`) is in the bundle.
    nodes: Vec<String>,
    /// Every event of the source up to its head is in the bundle (no filter cut anything).
    whole: bool,
}

/// The filter as given, times resolved, and the window of positions it chose.
#[derive(Debug, Serialize)]
struct FilterMeta {
    vwire: Option<String>,
    stream: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after_position: u64,
    until_position: u64,
}

// ---------------------------------------------------------------------------------------
// Export

/// What an export will write, decided before a byte is written.
#[derive(Debug)]
struct Plan {
    head: Position,
    after: Position,
    until: Position,
    stream: Option<StreamId>,
    /// The streams included; `None`: every stream.
    streams: Option<HashSet<String>>,
    events: u64,
    stream_count: u64,
    first: u64,
    last: u64,
    nodes: BTreeSet<String>,
}

impl Plan {
    fn includes(&self, stream: &str) -> bool {
        self.streams.as_ref().is_none_or(|s| s.contains(stream))
    }
}

#[derive(Debug, Serialize)]
struct ExportReport {
    bundle: String,
    events: u64,
    streams: u64,
    first_position: u64,
    last_position: u64,
    whole: bool,
}

/// `nsm export`: writes an incident bundle.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let report = write_export(&args).await?;
    print_report(&report, args.log.json)
}

async fn write_export(args: &ExportArgs) -> anyhow::Result<ExportReport> {
    if args.out.exists() && !args.force {
        bail!("{} exists; give --force to replace it", args.out.display());
    }
    let log = LogReader::open(&args.log.db).await?;
    let plan = plan(&log, args)?;
    if plan.events == 0 {
        bail!(
            "nothing to export: no event of {} matches",
            args.log.db.display()
        );
    }
    let source_events = log.count_until(plan.head)?;
    let meta = meta(args, &plan, plan.events == source_events);
    let whole = meta.whole;
    let tmp = tmp_path(&args.out);
    if let Err(e) = write_bundle(&log, &plan, &meta, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write the bundle {}", args.out.display())));
    }
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), args.out.display()))?;
    sync_parent(&args.out);
    Ok(ExportReport {
        bundle: args.out.display().to_string(),
        events: plan.events,
        streams: plan.stream_count,
        first_position: plan.first,
        last_position: plan.last,
        whole,
    })
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Makes a rename durable (best effort: not every filesystem lets a directory be fsynced).
fn sync_parent(path: &Path) {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Ok(dir) = File::open(parent.unwrap_or(Path::new("."))) {
        let _ = dir.sync_all();
    }
}

/// Resolves the filter, chooses the streams and counts what will be written.
fn plan(log: &LogReader, args: &ExportArgs) -> anyhow::Result<Plan> {
    let head = log.head()?;
    let filter = FilterArgs {
        vwire: args.vwire.clone(),
        since: args.since,
        until: args.until,
        ..FilterArgs::default()
    };
    let selection = filter.select(log, head)?;
    let stream = selection.single_stream().cloned();
    let named: Option<HashSet<String>> = selection
        .streams
        .as_ref()
        .map(|s| s.iter().map(|s| s.as_str().to_owned()).collect());
    let streams = if selection.after == Position::START {
        named
    } else {
        let mut included = streams_of_window(log, selection.after, selection.until)?;
        if let Some(named) = named {
            included.retain(|s| named.contains(s));
        }
        Some(included)
    };
    let mut plan = Plan {
        head,
        after: selection.after,
        until: selection.until,
        stream,
        streams,
        events: 0,
        stream_count: 0,
        first: 0,
        last: 0,
        nodes: BTreeSet::new(),
    };
    count(log, &mut plan)?;
    Ok(plan)
}

/// The event types after which a vWire is over (Expired, Closed and Failed are final).
const VWIRE_ENDINGS: &[&str] = &["Expired", "Closed", "Failed"];

/// Streams with an event in `(after, until]`, and streams open at `after`: a vWire with no
/// terminal event yet, a service or endpoint whose last event did not unregister or expire it.
fn streams_of_window(
    log: &LogReader,
    after: Position,
    until: Position,
) -> anyhow::Result<HashSet<String>> {
    let mut included: HashSet<String> = log.streams_in(after, until)?.into_iter().collect();
    for stream in log.streams_at(after, VWIRE_ENDINGS)? {
        if open_at(&stream.stream, &stream.last_event_type, stream.of_types > 0) {
            included.insert(stream.stream);
        }
    }
    Ok(included)
}

fn open_at(stream: &str, last_type: &str, vwire_ended: bool) -> bool {
    if stream.starts_with(VWIRE_STREAM_PREFIX) {
        !vwire_ended
    } else if stream.starts_with(ENDPOINT_STREAM_PREFIX) {
        !matches!(last_type, "EndpointUnregistered" | "EndpointExpired")
    } else if stream.starts_with(SERVICE_STREAM_PREFIX) {
        last_type != "ServiceUnregistered"
    } else {
        // The data plane's stream is history, not state: kept when active in the window.
        false
    }
}

/// The first pass: counts events and streams, and finds the positions and nodes.
fn count(log: &LogReader, plan: &mut Plan) -> anyhow::Result<()> {
    let progress = Progress::new(plan.until.0, "events counted");
    let mut streams: HashSet<String> = HashSet::new();
    let (mut events, mut first, mut last) = (0, 0, 0);
    log.for_each_stream::<anyhow::Error>(Position::START, plan.until, |position, stream| {
        progress.advance(1);
        if !plan.includes(stream) {
            return Ok(());
        }
        events += 1;
        first = if first == 0 { position.0 } else { first };
        last = position.0;
        if !streams.contains(stream) {
            streams.insert(stream.to_owned());
        }
        Ok(())
    })?;
    plan.nodes = streams
        .iter()
        .filter_map(|s| s.strip_prefix(DATAPLANE_STREAM_PREFIX))
        .map(str::to_owned)
        .collect();
    (plan.events, plan.first, plan.last) = (events, first, last);
    plan.stream_count = streams.len() as u64;
    Ok(())
}

fn meta(args: &ExportArgs, plan: &Plan, whole: bool) -> Meta {
    let source = std::fs::canonicalize(&args.log.db).unwrap_or_else(|_| args.log.db.clone());
    Meta {
        nsm_version: env!("CARGO_PKG_VERSION"),
        schema_version: known_schema_version(),
        source_db: source.display().to_string(),
        source_host: hostname(),
        exported_at: format_timestamp(Utc::now()),
        source_head: plan.head.0,
        first_position: plan.first,
        last_position: plan.last,
        filter: FilterMeta {
            vwire: args.vwire.clone(),
            stream: plan.stream.as_ref().map(|s| s.as_str().to_owned()),
            since: args.since.map(format_timestamp),
            until: args.until.map(format_timestamp),
            after_position: plan.after.0,
            until_position: plan.until.0,
        },
        events: plan.events,
        streams: plan.stream_count,
        nodes: plan.nodes.iter().cloned().collect(),
        whole,
    }
}

/// This machine's name, from the kernel (no libc call needed).
fn hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
}

/// The second pass: the header, then every included row, to `tmp`, fsynced.
fn write_bundle(log: &LogReader, plan: &Plan, meta: &Meta, tmp: &Path) -> anyhow::Result<()> {
    let file = File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header = Header {
        nsm_bundle: BUNDLE_FORMAT,
        meta,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let progress = Progress::new(plan.events, "events exported");
    let mut written = 0;
    log.for_each_row::<anyhow::Error>(Position::START, plan.until, |event| {
        if !plan.includes(&event.stream) {
            return Ok(());
        }
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
        written += 1;
        progress.advance(1);
        Ok(())
    })?;
    if written != plan.events {
        bail!(
            "the log changed under the export: counted {} events, read {written}",
            plan.events
        );
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Import

/// A bundle read through, one line at a time, counting lines from 1.
#[derive(Debug)]
struct BundleReader {
    path: PathBuf,
    reader: BufReader<File>,
    line: String,
    number: usize,
}

impl BundleReader {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            reader: BufReader::with_capacity(1 << 20, file),
            line: String::new(),
            number: 0,
        })
    }

    /// Reads the next line; false at the end. [`Self::text`] is the line without its newline.
    fn next_line(&mut self) -> anyhow::Result<bool> {
        self.line.clear();
        self.number += 1;
        match self.reader.read_line(&mut self.line) {
            Ok(read) => Ok(read > 0),
            Err(e) => Err(self.error(&e.to_string())),
        }
    }

    fn text(&self) -> &str {
        self.line.trim_end_matches(['\n', '\r'])
    }

    fn error(&self, problem: &str) -> anyhow::Error {
        anyhow!("{}: line {}: {problem}", self.path.display(), self.number)
    }

    /// Line 1: the header's meta, refused unless the format is one this binary reads.
    fn header(&mut self) -> anyhow::Result<Map<String, Value>> {
        if !self.next_line()? {
            return Err(self.error("the file is empty"));
        }
        let header: Header<Map<String, Value>> =
            serde_json::from_str(self.text()).map_err(|e| {
                self.error(&format!(
                    "not an nsm bundle header ({{\"nsm_bundle\": 1, \"meta\": {{...}}}}): {e}"
                ))
            })?;
        if header.nsm_bundle != BUNDLE_FORMAT {
            let format = header.nsm_bundle;
            return Err(self.error(&format!(
                "bundle format {format}; this nsm reads format {BUNDLE_FORMAT}"
            )));
        }
        Ok(header.meta)
    }

    /// The next event line, parsed and checked; `None` at the end.
    fn next_event(&mut self) -> anyhow::Result<Option<EventRow>> {
        if !self.next_line()? {
            return Ok(None);
        }
        if self.text().is_empty() {
            return Err(self.error("empty line"));
        }
        let event: EventRow = serde_json::from_str(self.text())
            .map_err(|e| self.error(&format!("not an event row: {e}")))?;
        event.check().map_err(|e| self.error(&e.to_string()))?;
        Ok(Some(event))
    }
}

/// A bundle found whole and well-formed.
#[derive(Debug)]
struct Checked {
    meta: Map<String, Value>,
    events: u64,
    last: i64,
}

/// The first pass over a bundle: everything is checked before anything is written.
fn check_bundle(path: &Path) -> anyhow::Result<Checked> {
    let mut reader = BundleReader::open(path)?;
    let meta = reader.header()?;
    let expected = meta
        .get("events")
        .and_then(Value::as_u64)
        .ok_or_else(|| reader.error("the header's meta has no event count (\"events\")"))?;
    let progress = Progress::new(expected, "events checked");
    let (mut events, mut last) = (0u64, 0i64);
    while let Some(event) = reader.next_event()? {
        if event.position <= last {
            let problem = format!(
                "position {} does not follow position {last}",
                event.position
            );
            return Err(reader.error(&problem));
        }
        last = event.position;
        events += 1;
        progress.advance(1);
    }
    if events != expected {
        bail!(
            "{}: the bundle is cut short or padded: its header says {expected} events, it holds \
             {events}",
            path.display()
        );
    }
    if events == 0 {
        bail!("{}: the bundle holds no event", path.display());
    }
    Ok(Checked { meta, events, last })
}

#[derive(Debug, Serialize)]
struct ImportReport {
    db: String,
    events: u64,
    last_position: i64,
    live_vwires: usize,
    live_registry: usize,
    whole: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// `nsm import`: loads a bundle into a new event log.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let report = load_bundle(&args.bundle, &args.db).await?;
    print_report(&report, args.json)
}

async fn load_bundle(bundle: &Path, db: &Path) -> anyhow::Result<ImportReport> {
    let checked = check_bundle(bundle)?;
    // Dropped on any failure: the transaction is rolled back, and a log it created removed.
    let mut import = Import::begin(db).await?;
    let loaded = async {
        insert_events(&mut import, bundle, &checked)?;
        anyhow::Ok(import.commit(meta_rows(bundle, &checked.meta)).await?)
    }
    .await
    .with_context(|| format!("nothing was imported into {}", db.display()))?;
    // A bundle of a damaged log is still worth loading, faithfully: a projection the events
    // do not fold into is left empty, and said so (`nsm verify` says more).
    let mut warnings = Vec::new();
    let mut count = |table: &str, rebuilt: Result<usize, _>| {
        rebuilt.unwrap_or_else(|e| {
            warnings.push(not_rebuilt(table, &e));
            0
        })
    };
    let live_vwires = count("live_vwires", loaded.live_vwires);
    let live_registry = count("live_registry", loaded.live_registry);
    Ok(ImportReport {
        db: db.display().to_string(),
        events: checked.events,
        last_position: checked.last,
        live_vwires,
        live_registry,
        whole: checked
            .meta
            .get("whole")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        warnings,
    })
}

fn not_rebuilt(table: &str, error: &dyn std::fmt::Display) -> String {
    tracing::warn!(table, %error, "the imported events do not fold; the projection is left empty");
    format!("{table} left empty: the events do not fold ({error})")
}

/// The second pass: every row of the bundle into the import's transaction.
fn insert_events(import: &mut Import, bundle: &Path, checked: &Checked) -> anyhow::Result<()> {
    let mut reader = BundleReader::open(bundle)?;
    reader.header()?;
    let progress = Progress::new(checked.events, "events imported");
    while let Some(row) = reader.next_event()? {
        import
            .insert(&row)
            .map_err(|error| reader.error(&error.to_string()))?;
        progress.advance(1);
    }
    Ok(())
}

/// What `log_meta` records: the header's meta, one row per field, and how the import was made.
fn meta_rows(bundle: &Path, meta: &Map<String, Value>) -> Vec<(String, Value)> {
    let bundle = std::fs::canonicalize(bundle).unwrap_or_else(|_| bundle.to_owned());
    let ours = [
        ("imported_at", Value::String(format_timestamp(Utc::now()))),
        ("imported_from", Value::String(bundle.display().to_string())),
        ("nsm_bundle", Value::from(BUNDLE_FORMAT)),
    ];
    let fields = meta.iter().map(|(k, v)| (k.clone(), v.clone()));
    fields.chain(ours.map(|(k, v)| (k.to_owned(), v))).collect()
}

#[cfg(test)]
pub(crate) mod testlog;

#[cfg(test)]
mod tests;

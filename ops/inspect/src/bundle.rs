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
//! header) before it creates anything; then it creates the log with the store's own
//! migrations and, in one transaction, inserts the rows with their positions, rebuilds
//! `live_vwires` and `live_registry` with the events crate's `rebuild`, records the header
//! in `log_meta` and sets the AUTOINCREMENT sequence to the last position, so a node can
//! append after it. Any failure rolls the transaction back and removes a file it created.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use futures::FutureExt;
use futures::future::BoxFuture;
use nsm_domain::dataplane::DATAPLANE_STREAM_PREFIX;
use nsm_domain::registry::{ENDPOINT_STREAM_PREFIX, SERVICE_STREAM_PREFIX};
use nsm_domain::vwire::VWIRE_STREAM_PREFIX;
use nsm_log::StoreError;
use nsm_log::store::sqlite::known_schema_version;
use nsm_log::store::{
    AppendRequest, Appended, EventStore, EventStream, LiveRow, OpenOptions, Position,
    RecordedEvent, RegistrationRow, SqliteStore, StreamId, format_timestamp, parse_timestamp,
};
use rusqlite::{Connection, OpenFlags, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::LogArgs;
use super::filter::{FilterArgs, parse_moment};
use super::log::{CHUNK, LogFile};
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

/// One `events` row, every column as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    position: i64,
    event_id: String,
    stream: String,
    version: i64,
    event_type: String,
    schema_version: i64,
    recorded_at: String,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    payload: String,
}

const RAW_COLUMNS: &str = "position, event_id, stream, version, event_type, schema_version, \
                           recorded_at, correlation_id, causation_id, payload";

impl RawEvent {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            position: row.get(0)?,
            event_id: row.get(1)?,
            stream: row.get(2)?,
            version: row.get(3)?,
            event_type: row.get(4)?,
            schema_version: row.get(5)?,
            recorded_at: row.get(6)?,
            correlation_id: row.get(7)?,
            causation_id: row.get(8)?,
            payload: row.get(9)?,
        })
    }

    /// What the schema's constraints would refuse, said before anything is written.
    fn check(&self) -> Result<(), String> {
        if self.position < 1 {
            return Err(format!("position {} is not ≥ 1", self.position));
        }
        if self.event_id.chars().count() != 36 {
            return Err(format!("event_id {:?} is not 36 characters", self.event_id));
        }
        if !(1..=255).contains(&self.stream.chars().count()) {
            return Err(format!(
                "stream {:?} is not 1 to 255 characters",
                self.stream
            ));
        }
        if self.version < 1 || self.schema_version < 1 {
            return Err("version and schema_version must be ≥ 1".into());
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&self.payload)
            .map_err(|e| format!("payload is not JSON: {e}"))?;
        Ok(())
    }
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
    let log = LogFile::open(&args.log.db).await?;
    let plan = plan(&log, args)?;
    if plan.events == 0 {
        bail!(
            "nothing to export: no event of {} matches",
            args.log.db.display()
        );
    }
    let source_events: i64 = log.connection().query_row(
        "SELECT count(*) FROM events WHERE position <= ?1",
        params![plan.head.0 as i64],
        |row| row.get(0),
    )?;
    let meta = meta(args, &plan, plan.events == source_events as u64);
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
fn plan(log: &LogFile, args: &ExportArgs) -> anyhow::Result<Plan> {
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

/// Streams with an event in `(after, until]`, and streams open at `after`: a vWire with no
/// terminal event yet (Expired, Closed and Failed are final), a service or endpoint whose last
/// event did not unregister or expire it.
fn streams_of_window(
    log: &LogFile,
    after: Position,
    until: Position,
) -> anyhow::Result<HashSet<String>> {
    let conn = log.connection();
    let mut included = HashSet::new();
    let mut in_window =
        conn.prepare("SELECT DISTINCT stream FROM events WHERE position > ?1 AND position <= ?2")?;
    let rows = in_window.query_map(params![after.0 as i64, until.0 as i64], |row| row.get(0))?;
    for stream in rows {
        included.insert(stream?);
    }
    // With exactly one max(), SQLite takes the bare `event_type` from the row holding it.
    let mut open = conn.prepare(
        "SELECT stream, event_type, max(position), \
                sum(event_type IN ('Expired', 'Closed', 'Failed')) \
           FROM events WHERE position <= ?1 GROUP BY stream",
    )?;
    let rows = open.query_map(params![after.0 as i64], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (stream, last_type, ended) = row?;
        if open_at(&stream, &last_type, ended > 0) {
            included.insert(stream);
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

/// Calls `each` with every row of `sql` (which selects `position` first, and takes `?1` =
/// after, `?2` = until, `?3` = limit) up to `until`, a chunk (one short read transaction) at a
/// time.
fn each_row(
    conn: &Connection,
    sql: &str,
    until: Position,
    mut each: impl FnMut(&Row<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut statement = conn.prepare(sql)?;
    let mut after = 0i64;
    loop {
        let mut rows = statement.query(params![after, until.0 as i64, CHUNK as i64])?;
        let mut last = None;
        while let Some(row) = rows.next()? {
            last = Some(row.get::<_, i64>(0)?);
            each(row)?;
        }
        match last {
            Some(position) => after = position,
            None => return Ok(()),
        }
    }
}

/// The first pass: counts events and streams, and finds the positions and nodes.
fn count(log: &LogFile, plan: &mut Plan) -> anyhow::Result<()> {
    let progress = Progress::new(plan.until.0, "events counted");
    let mut streams: HashSet<String> = HashSet::new();
    let sql = "SELECT position, stream FROM events WHERE position > ?1 AND position <= ?2 \
               ORDER BY position LIMIT ?3";
    let (mut events, mut first, mut last) = (0, 0, 0);
    each_row(log.connection(), sql, plan.until, |row| {
        progress.advance(1);
        let stream: String = row.get(1)?;
        if !plan.includes(&stream) {
            return Ok(());
        }
        let position = row.get::<_, i64>(0)? as u64;
        events += 1;
        first = if first == 0 { position } else { first };
        last = position;
        if !streams.contains(&stream) {
            streams.insert(stream);
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
fn write_bundle(log: &LogFile, plan: &Plan, meta: &Meta, tmp: &Path) -> anyhow::Result<()> {
    let file = File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header = Header {
        nsm_bundle: BUNDLE_FORMAT,
        meta,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let progress = Progress::new(plan.events, "events exported");
    let sql = format!(
        "SELECT {RAW_COLUMNS} FROM events WHERE position > ?1 AND position <= ?2 \
         ORDER BY position LIMIT ?3"
    );
    let mut written = 0;
    each_row(log.connection(), &sql, plan.until, |row| {
        let event = RawEvent::from_row(row)?;
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
    fn next_event(&mut self) -> anyhow::Result<Option<RawEvent>> {
        if !self.next_line()? {
            return Ok(None);
        }
        if self.text().is_empty() {
            return Err(self.error("empty line"));
        }
        let event: RawEvent = serde_json::from_str(self.text())
            .map_err(|e| self.error(&format!("not an event row: {e}")))?;
        event.check().map_err(|e| self.error(&e))?;
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
    let target = Target::prepare(db).await?;
    match load(bundle, &checked, &target).await {
        Ok(report) => Ok(report),
        Err(e) => {
            target.discard();
            Err(e.context(format!("nothing was imported into {}", db.display())))
        }
    }
}

/// The log being imported into: empty, locked against a node opening it meanwhile.
#[derive(Debug)]
struct Target {
    path: PathBuf,
    created: bool,
    _lock: File,
}

impl Target {
    async fn prepare(path: &Path) -> anyhow::Result<Self> {
        let created = !path.exists();
        let target = Self::create(path, created).await;
        if target.is_err() && created {
            remove_log(path);
        }
        target
    }

    async fn create(path: &Path, created: bool) -> anyhow::Result<Self> {
        let options = OpenOptions {
            readers: 1,
            ..OpenOptions::default()
        };
        let store = SqliteStore::open(path, options).await?;
        let head = store.head();
        store.close().await;
        if head > Position::START {
            bail!(
                "import only into an empty log: {} holds events up to position {head}",
                path.display()
            );
        }
        let lock = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        lock.try_lock()
            .map_err(|_| anyhow!("{} is in use by another process", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            created,
            _lock: lock,
        })
    }

    /// After a failure: a log this import created goes; one that was there stays as it was
    /// (the transaction was rolled back).
    fn discard(&self) {
        if self.created {
            remove_log(&self.path);
        }
    }
}

fn remove_log(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// The second pass, in one transaction: rows, projections, `log_meta`, the sequence.
async fn load(bundle: &Path, checked: &Checked, target: &Target) -> anyhow::Result<ImportReport> {
    let importing = Importing::open(&target.path)?;
    importing.conn().execute_batch("BEGIN IMMEDIATE")?;
    let mut warnings = Vec::new();
    let loaded = async {
        insert_events(&importing.conn(), bundle, checked)?;
        // A bundle of a damaged log is still worth loading, faithfully: a projection the
        // events do not fold into is left empty, and said so (`nsm verify` says more).
        let vwires = nsm_log::projection::vwire::rebuild(&importing)
            .await
            .unwrap_or_else(|e| {
                warnings.push(not_rebuilt("live_vwires", &e));
                BTreeMap::new()
            });
        let registry = nsm_log::projection::registry::rebuild(&importing)
            .await
            .unwrap_or_else(|e| {
                warnings.push(not_rebuilt("live_registry", &e));
                BTreeMap::new()
            });
        let conn = importing.conn();
        write_projections(&conn, vwires.values(), registry.values())?;
        write_meta(&conn, bundle, &checked.meta)?;
        set_sequence(&conn, checked.last)?;
        conn.execute_batch("COMMIT")?;
        anyhow::Ok((vwires.len(), registry.len()))
    }
    .await;
    let conn = importing.conn();
    let (live_vwires, live_registry) = match loaded {
        Ok(counts) => counts,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    };
    // The WAL holds the whole import; fold it into the file now rather than at a node's start.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(ImportReport {
        db: target.path.display().to_string(),
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

fn insert_events(conn: &Connection, bundle: &Path, checked: &Checked) -> anyhow::Result<()> {
    let mut reader = BundleReader::open(bundle)?;
    reader.header()?;
    let mut insert = conn.prepare(&format!(
        "INSERT INTO events ({RAW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?;
    let progress = Progress::new(checked.events, "events imported");
    while let Some(e) = reader.next_event()? {
        insert
            .execute(params![
                e.position,
                e.event_id,
                e.stream,
                e.version,
                e.event_type,
                e.schema_version,
                e.recorded_at,
                e.correlation_id,
                e.causation_id,
                e.payload,
            ])
            .map_err(|error| reader.error(&format!("position {}: {error}", e.position)))?;
        progress.advance(1);
    }
    Ok(())
}

/// The rebuilt rows, in the format the store's writer gives them.
fn write_projections<'a>(
    conn: &Connection,
    vwires: impl Iterator<Item = &'a LiveRow>,
    registry: impl Iterator<Item = &'a RegistrationRow>,
) -> anyhow::Result<()> {
    let mut live = conn.prepare(
        "INSERT INTO live_vwires (stream, version, status, expires_at, state) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for row in vwires {
        live.execute(params![
            row.stream.as_str(),
            row.version as i64,
            row.data.status,
            format_timestamp(row.data.expires_at),
            row.data.state,
        ])?;
    }
    let mut registered = conn.prepare(
        "INSERT INTO live_registry (stream, version, expires_at, state) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for row in registry {
        registered.execute(params![
            row.stream.as_str(),
            row.version as i64,
            row.data.expires_at.map(format_timestamp),
            row.data.state,
        ])?;
    }
    Ok(())
}

/// The header's meta, one row per field, and how the import was made.
fn write_meta(conn: &Connection, bundle: &Path, meta: &Map<String, Value>) -> anyhow::Result<()> {
    let bundle = std::fs::canonicalize(bundle).unwrap_or_else(|_| bundle.to_owned());
    let ours = [
        ("imported_at", Value::String(format_timestamp(Utc::now()))),
        ("imported_from", Value::String(bundle.display().to_string())),
        ("nsm_bundle", Value::from(BUNDLE_FORMAT)),
    ];
    let mut insert =
        conn.prepare("INSERT OR REPLACE INTO log_meta (key, value) VALUES (?1, ?2)")?;
    let fields = meta.iter().map(|(k, v)| (k.as_str(), v.clone()));
    for (key, value) in fields.chain(ours) {
        let text = match value {
            Value::String(text) => text,
            other => other.to_string(),
        };
        insert.execute(params![key, text])?;
    }
    Ok(())
}

/// AUTOINCREMENT continues after the last imported position.
fn set_sequence(conn: &Connection, last: i64) -> anyhow::Result<()> {
    let updated = conn.execute(
        "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'events'",
        params![last],
    )?;
    if updated == 0 {
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?1)",
            params![last],
        )?;
    }
    Ok(())
}

/// The log being imported, seen through the [`EventStore`] contract from inside the import's
/// own transaction, so the events crate's `rebuild` reads the rows before they are committed
/// and the projections go in with them. Reads only.
#[derive(Debug)]
struct Importing {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Importing {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("cannot open {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // The journal mode (WAL) is the file's, set by the store's open.
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(
        &self,
        sql: &str,
        bind: impl rusqlite::Params,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(sql)?;
        let rows = statement.query_map(bind, RawEvent::from_row)?;
        rows.map(|row| recorded(row?)).collect()
    }

    fn unsupported<T: Send + 'static>(&self, what: &str) -> BoxFuture<'_, Result<T, StoreError>> {
        let error = StoreError::InvalidInput(format!(
            "{what} is not offered while {} is being imported",
            self.path.display()
        ));
        futures::future::ready(Err(error)).boxed()
    }
}

fn recorded(raw: RawEvent) -> Result<RecordedEvent, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Corrupt(format!("the event at position {} has {what}", raw.position))
    };
    Ok(RecordedEvent {
        position: Position(u64::try_from(raw.position).map_err(|_| corrupt("a bad position"))?),
        id: Uuid::parse_str(&raw.event_id).map_err(|_| corrupt("an id that is not a UUID"))?,
        stream: StreamId::new(raw.stream.clone())?,
        version: u64::try_from(raw.version).map_err(|_| corrupt("a negative version"))?,
        schema_version: u32::try_from(raw.schema_version)
            .map_err(|_| corrupt("a schema version out of range"))?,
        recorded_at: parse_timestamp(&raw.recorded_at)?,
        event_type: raw.event_type,
        correlation_id: raw.correlation_id,
        causation_id: raw.causation_id,
        payload: raw.payload,
    })
}

impl EventStore for Importing {
    fn append(&self, _request: AppendRequest) -> BoxFuture<'_, Result<Appended, StoreError>> {
        self.unsupported("appending")
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let sql = format!(
            "SELECT {RAW_COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version"
        );
        let read = self.read(&sql, params![stream.as_str(), from_version as i64]);
        futures::future::ready(read).boxed()
    }

    fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let sql = format!(
            "SELECT {RAW_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = self.read(&sql, params![after.0 as i64, limit]);
        futures::future::ready(read).boxed()
    }

    fn head(&self) -> Position {
        let head: rusqlite::Result<i64> =
            self.conn()
                .query_row("SELECT coalesce(max(position), 0) FROM events", [], |row| {
                    row.get(0)
                });
        Position(head.map_or(0, |h| h.max(0) as u64))
    }

    fn subscribe(&self, _after: Position) -> EventStream {
        let error = StoreError::InvalidInput("an import cannot be subscribed to".into());
        let stream = futures::stream::once(futures::future::ready(Err(error)));
        futures::StreamExt::boxed(stream)
    }

    fn live_rows(&self) -> BoxFuture<'_, Result<Vec<LiveRow>, StoreError>> {
        self.unsupported("live_vwires")
    }

    fn registration_rows(&self) -> BoxFuture<'_, Result<Vec<RegistrationRow>, StoreError>> {
        self.unsupported("live_registry")
    }
}

#[cfg(test)]
pub(crate) mod testlog;

#[cfg(test)]
mod tests;

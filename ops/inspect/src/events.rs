//! `nsm events`: the log itself, filtered, as a table or JSON lines; `--follow` keeps
//! printing events as the node writes them.

use std::io::{BufWriter, Write};
use std::time::Duration;

use clap::Args;
use nsm_domain::upcast::SCHEMAS;
use nsm_domain::vwire::VWIRE_STREAM_PREFIX;
use nsm_log::store::{Position, RecordedEvent};
use serde::Serialize;

use super::describe::{describe, short_stream};
use super::filter::{FilterArgs, Selection};
use super::{LogArgs, Stop};
use nsm_log::read::LogReader;

/// How often `--follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// After the events so far, keep printing new ones as they are written (until Ctrl-C).
    #[arg(long)]
    follow: bool,
    /// Print at most this many events (the first ones).
    #[arg(long)]
    limit: Option<u64>,
}

/// An event as `--json` prints it: every column, the payload as JSON.
#[derive(Debug, Serialize)]
pub(crate) struct EventLine<'a> {
    pub(crate) position: u64,
    pub(crate) recorded_at: String,
    pub(crate) stream: &'a str,
    pub(crate) version: u64,
    pub(crate) event_type: &'a str,
    pub(crate) schema_version: u32,
    pub(crate) event_id: String,
    pub(crate) correlation_id: Option<&'a str>,
    pub(crate) causation_id: Option<&'a str>,
    pub(crate) summary: String,
    pub(crate) payload: serde_json::Value,
}

impl<'a> EventLine<'a> {
    pub(crate) fn new(event: &'a RecordedEvent) -> Self {
        Self {
            position: event.position.0,
            recorded_at: nsm_log::store::format_timestamp(event.recorded_at),
            stream: event.stream.as_str(),
            version: event.version,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            event_id: event.id.to_string(),
            correlation_id: event.correlation_id.as_deref(),
            causation_id: event.causation_id.as_deref(),
            summary: describe(event),
            payload: serde_json::from_str(&event.payload)
                .unwrap_or_else(|_| serde_json::Value::String(event.payload.clone())),
        }
    }
}

pub async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let log = LogReader::open(&args.log.db).await?;
    let head = log.head()?;
    let selection = args.filter.select(&log, head)?;
    let out = BufWriter::new(std::io::stdout());
    let mut printer = Printer::new(out, args.log.json, head, args.limit);
    if !args.log.json {
        printer.fit_streams(&streams_shown(&log, &selection)?);
    }
    match print_range(&log, &selection, &mut printer) {
        Err(Stop::Done) => return Ok(()),
        Err(Stop::Failed(e)) => return Err(e),
        Ok(()) => {}
    }
    printer.flush()?;
    if !args.follow {
        return Ok(());
    }
    // Follow: the window's end moves with the log's head; everything else still filters.
    let mut seen = selection.until.max(head);
    let mut selection = selection;
    loop {
        tokio::time::sleep(FOLLOW_POLL).await;
        let now = log.head()?;
        if now <= seen {
            continue;
        }
        selection.after = selection.after.max(seen);
        selection.until = now;
        match print_range(&log, &selection, &mut printer) {
            Err(Stop::Done) => return Ok(()),
            Err(Stop::Failed(e)) => return Err(e),
            Ok(()) => {}
        }
        printer.flush()?;
        seen = now;
    }
}

/// The names of the streams the table may show, to size its STREAM column: the streams the
/// filter chose, else every stream but the vWires (shown by their short id; the others are a
/// few nodes, services and endpoints, found without reading their events).
fn streams_shown(log: &LogReader, selection: &Selection) -> anyhow::Result<Vec<String>> {
    Ok(match &selection.streams {
        Some(streams) => streams.iter().map(|s| s.as_str().to_owned()).collect(),
        None => log.streams_outside(VWIRE_STREAM_PREFIX)?,
    })
}

fn print_range(
    log: &LogReader,
    selection: &Selection,
    printer: &mut Printer<impl Write>,
) -> Result<(), Stop> {
    if let Some(trace) = selection.trace_id() {
        for event in log.read_trace(trace)? {
            if selection.matches(&event) {
                printer.print(&event)?;
            }
        }
        return Ok(());
    }
    if let Some(stream) = selection.single_stream() {
        for event in log.read_stream(stream, selection.until)? {
            if selection.matches(&event) {
                printer.print(&event)?;
            }
        }
        return Ok(());
    }
    log.for_each::<Stop>(selection.after, selection.until, |event| {
        if selection.matches(&event) {
            printer.print(&event)?;
        }
        Ok(true)
    })
}

/// The narrowest the STREAM, V and KIND columns get (a vWire's short id, most kinds).
const STREAM_WIDTH: usize = 14;
const VERSION_WIDTH: usize = 3;
const KIND_WIDTH: usize = 18;

/// Prints events as a table (the first line a header) or JSON lines; it stops quietly when
/// the reader went away (`nsm events | head`).
///
/// Every row lines up with the header above it: the STREAM column is as wide as the longest
/// name it was told of ([`Printer::fit_streams`]) and KIND as the longest known kind. A wider
/// cell that still comes (a stream created while `--follow` runs, a version past 999, a kind
/// of a newer binary) widens its column, and the header is printed again above it.
struct Printer<W: Write> {
    out: W,
    json: bool,
    header_due: bool,
    position_width: usize,
    stream_width: usize,
    version_width: usize,
    kind_width: usize,
    left: Option<u64>,
}

impl<W: Write> Printer<W> {
    fn new(out: W, json: bool, head: Position, limit: Option<u64>) -> Self {
        let kinds = SCHEMAS.iter().map(|(kind, _)| kind.chars().count());
        Self {
            out,
            json,
            header_due: !json,
            position_width: head.0.to_string().len().max("POSITION".len()),
            stream_width: STREAM_WIDTH,
            version_width: VERSION_WIDTH,
            kind_width: kinds.max().unwrap_or(0).max(KIND_WIDTH),
            left: limit,
        }
    }

    /// Makes the STREAM column wide enough for each of `streams`, as the table shows them.
    fn fit_streams(&mut self, streams: &[String]) {
        let widest = streams.iter().map(|s| short_stream(s).chars().count());
        self.stream_width = self.stream_width.max(widest.max().unwrap_or(0));
    }

    fn print(&mut self, event: &RecordedEvent) -> Result<(), Stop> {
        if self.left == Some(0) {
            return Err(Stop::Done);
        }
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        if self.json {
            let line =
                serde_json::to_string(&EventLine::new(event)).map_err(anyhow::Error::from)?;
            return writeln!(self.out, "{line}").map_err(Stop::from_io);
        }
        let stream = short_stream(event.stream.as_str());
        let version = event.version.to_string();
        self.widen(&[&stream, &version, &event.event_type]);
        let (width, streams) = (self.position_width, self.stream_width);
        let (versions, kinds) = (self.version_width, self.kind_width);
        if self.header_due {
            self.header_due = false;
            let header = format!(
                "{:>width$}  {:<27}  {:<streams$}  {:>versions$}  {:<kinds$}  SUMMARY",
                "POSITION", "RECORDED_AT", "STREAM", "V", "KIND"
            );
            writeln!(self.out, "{header}").map_err(Stop::from_io)?;
        }
        writeln!(
            self.out,
            "{:>width$}  {:<27}  {:<streams$}  {:>versions$}  {:<kinds$}  {}",
            event.position.0,
            nsm_log::store::format_timestamp(event.recorded_at),
            stream,
            version,
            event.event_type,
            describe(event)
        )
        .map_err(Stop::from_io)
    }

    /// Widens the columns too narrow for this row's STREAM, V and KIND cells, and has the
    /// header printed again above the row.
    fn widen(&mut self, cells: &[&str; 3]) {
        let widths = [
            &mut self.stream_width,
            &mut self.version_width,
            &mut self.kind_width,
        ];
        for (width, cell) in widths.into_iter().zip(cells) {
            let needed = cell.chars().count();
            if needed > *width {
                *width = needed;
                self.header_due = true;
            }
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match self.out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use nsm_log::store::StreamId;
    use uuid::Uuid;

    use super::*;

    fn event(position: u64, stream: &str, version: u64, kind: &str) -> RecordedEvent {
        RecordedEvent {
            position: Position(position),
            id: Uuid::now_v7(),
            stream: StreamId::new(stream).unwrap(),
            version,
            event_type: kind.into(),
            schema_version: 1,
            recorded_at: Utc::now(),
            correlation_id: None,
            causation_id: None,
            payload: "{}".into(),
        }
    }

    /// Streams of every kind: a vWire (shown by its short id), a node's data plane, an
    /// endpoint with a long name; a kind longer than most.
    fn events() -> Vec<RecordedEvent> {
        let vwire = format!("vwire-{}", Uuid::now_v7());
        vec![
            event(1, &vwire, 1, "Requested"),
            event(2, "dataplane-node-1", 1, "Reconciled"),
            event(
                3,
                "nse-a-rather-long-endpoint-name-for-a-table",
                2,
                "EndpointUnregistered",
            ),
            event(4, "ns-web", 1, "ServiceRegistered"),
            event(5, "dataplane-node-1", 2, "OrphansRemoved"),
        ]
    }

    fn table(events: &[RecordedEvent], fit: bool) -> String {
        let mut printer = Printer::new(Vec::new(), false, Position(5), None);
        if fit {
            let names: Vec<String> = events.iter().map(|e| e.stream.to_string()).collect();
            printer.fit_streams(&names);
        }
        for event in events {
            printer.print(event).map_err(|_| "print").unwrap();
        }
        String::from_utf8(printer.out).unwrap()
    }

    /// Where a line's first six cells begin and end, in characters (the cells hold no
    /// spaces, except the last, the summary, of which only the start counts).
    fn cells(line: &str) -> Vec<(usize, usize)> {
        let chars: Vec<char> = line.chars().collect();
        let mut cells = Vec::new();
        let mut i = 0;
        while i < chars.len() && cells.len() < 6 {
            if chars[i] == ' ' {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len() && chars[i] != ' ' {
                i += 1;
            }
            cells.push((start, i));
        }
        cells
    }

    /// Checks every row against the header above it: POSITION and V end where their headers
    /// end (right-aligned), the other columns start where theirs start. Gives the headers seen.
    fn assert_lined_up(table: &str) -> usize {
        let mut header = None;
        let mut headers = 0;
        for line in table.lines() {
            let row = cells(line);
            if line.trim_start().starts_with("POSITION") {
                header = Some(row);
                headers += 1;
                continue;
            }
            let header = header.as_ref().expect("a header first");
            for column in [0, 3] {
                assert_eq!(row[column].1, header[column].1, "column {column}:\n{table}");
            }
            for column in [1, 2, 4, 5] {
                assert_eq!(row[column].0, header[column].0, "column {column}:\n{table}");
            }
        }
        headers
    }

    #[test]
    fn every_column_lines_up_whatever_the_stream_names() {
        let table = table(&events(), true);
        assert_eq!(assert_lined_up(&table), 1, "one header:\n{table}");
        assert_eq!(table.lines().count(), 6);
    }

    #[test]
    fn a_cell_wider_than_its_column_widens_it_under_a_new_header() {
        // As under --follow, when a stream appears after the table began; and a version past
        // 999, which no column was sized for.
        let mut events = events();
        events.push(event(6, "dataplane-node-1", 1234, "Reconciled"));
        let table = table(&events, false);
        assert_eq!(assert_lined_up(&table), 4, "{table}");
    }

    #[test]
    fn a_vwire_is_shown_by_its_short_id_and_the_column_keeps_its_old_width() {
        let vwire = format!("vwire-{}", Uuid::now_v7());
        let events = [
            event(1, &vwire, 1, "Requested"),
            event(2, "ns-web", 1, "Closed"),
        ];
        let table = table(&events, true);
        let header = table.lines().next().unwrap();
        let columns = format!("{:<STREAM_WIDTH$}  {:>VERSION_WIDTH$}  KIND", "STREAM", "V");
        assert!(header.contains(&columns), "{table}");
        assert_lined_up(&table);
    }
}

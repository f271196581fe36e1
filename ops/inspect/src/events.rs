//! `nsm events`: the log itself, filtered, as a table or JSON lines; `--follow` keeps
//! printing events as the node writes them.

use std::io::{BufWriter, Write};
use std::time::Duration;

use clap::Args;
use nsm_log::store::{Position, RecordedEvent};
use serde::Serialize;

use super::describe::{describe, short_stream};
use super::filter::{FilterArgs, Selection};
use super::log::LogFile;
use super::{LogArgs, Stop};

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
    let log = LogFile::open(&args.log.db).await?;
    let head = log.head()?;
    let selection = args.filter.select(&log, head)?;
    let mut printer = Printer::new(args.log.json, head, args.limit);
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

fn print_range(log: &LogFile, selection: &Selection, printer: &mut Printer) -> Result<(), Stop> {
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
    let mut outcome = Ok(());
    log.for_each(selection.after, selection.until, |event| {
        if selection.matches(&event)
            && let Err(stop) = printer.print(&event)
        {
            outcome = Err(stop);
            return Ok(false);
        }
        Ok(true)
    })?;
    outcome
}

/// Prints events as a fixed-width table (the first line a header) or JSON lines; it stops
/// quietly when the reader went away (`nsm events | head`).
struct Printer {
    out: BufWriter<std::io::Stdout>,
    json: bool,
    header_due: bool,
    position_width: usize,
    left: Option<u64>,
}

impl Printer {
    fn new(json: bool, head: Position, limit: Option<u64>) -> Self {
        Self {
            out: BufWriter::new(std::io::stdout()),
            json,
            header_due: !json,
            position_width: head.0.to_string().len().max("POSITION".len()),
            left: limit,
        }
    }

    fn print(&mut self, event: &RecordedEvent) -> Result<(), Stop> {
        if self.left == Some(0) {
            return Err(Stop::Done);
        }
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        let width = self.position_width;
        if self.header_due {
            self.header_due = false;
            let header = format!(
                "{:>width$}  {:<27}  {:<14}  {:>3}  {:<18}  SUMMARY",
                "POSITION", "RECORDED_AT", "STREAM", "V", "KIND"
            );
            writeln!(self.out, "{header}").map_err(Stop::from_io)?;
        }
        if self.json {
            let line =
                serde_json::to_string(&EventLine::new(event)).map_err(anyhow::Error::from)?;
            writeln!(self.out, "{line}").map_err(Stop::from_io)
        } else {
            writeln!(
                self.out,
                "{:>width$}  {:<27}  {:<14}  {:>3}  {:<18}  {}",
                event.position.0,
                nsm_log::store::format_timestamp(event.recorded_at),
                short_stream(event.stream.as_str()),
                event.version,
                event.event_type,
                describe(event)
            )
            .map_err(Stop::from_io)
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match self.out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        }
    }
}

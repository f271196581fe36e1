//! `nsm timeline --out FILE.html|FILE.svg`: the picture of vWire lifecycles over time that
//! an incident review opens first — one lane per vWire (and one per node data plane, for
//! what reconcile did), coloured by state, every event marked. Same filters as `nsm events`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use nsm_domain::envelope::StreamKind;
use nsm_domain::vwire::{VWIRE_STREAM_PREFIX, VWireEvent};
use nsm_log::store::{Position, RecordedEvent, StreamId};

use super::LogArgs;
use super::describe::describe;
use super::filter::FilterArgs;
use super::timeline::{Lane, LaneState, Mark, Segment, Timeline, render_html, render_svg};
use nsm_log::read::LogReader;

#[derive(Debug, Args)]
pub struct TimelineArgs {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Where to write the picture: a self-contained .html page, or an .svg image.
    #[arg(long)]
    out: PathBuf,
    /// Most lanes drawn (the first vWires in the window); the picture says how many were left out.
    #[arg(long, default_value_t = 300)]
    max_lanes: usize,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

pub async fn run(args: TimelineArgs) -> anyhow::Result<()> {
    let svg = match args.out.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => false,
        Some("svg") => true,
        _ => bail!("--out {} must end in .html or .svg", args.out.display()),
    };
    if args.out.exists() && !args.force {
        bail!("{} exists; give --force to replace it", args.out.display());
    }
    let log = LogReader::open(&args.log.db).await?;
    let head = log.head()?;
    let selection = args.filter.select(&log, head)?;

    // Which vWires and data planes have events in the window, in the order they first appear.
    // Registry streams are left out: they are not connections (`nsm events` lists them).
    let mut order: Vec<StreamId> = Vec::new();
    let mut seen: HashMap<StreamId, ()> = HashMap::new();
    let (mut first_at, mut last_at): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = (None, None);
    let mut note = |event: &RecordedEvent| {
        if !selection.matches(event) || !drawn(&event.stream) {
            return;
        }
        first_at = Some(first_at.map_or(event.recorded_at, |t| t.min(event.recorded_at)));
        last_at = Some(last_at.map_or(event.recorded_at, |t| t.max(event.recorded_at)));
        if seen.insert(event.stream.clone(), ()).is_none() {
            order.push(event.stream.clone());
        }
    };
    if let Some(stream) = selection.single_stream() {
        log.read_stream(stream, selection.until)?
            .iter()
            .for_each(&mut note);
    } else {
        log.for_each::<anyhow::Error>(selection.after, selection.until, |event| {
            note(&event);
            Ok(true)
        })?;
    }
    let from = args.filter.since.or(first_at).unwrap_or_else(Utc::now);
    let to = args.filter.until.or(last_at).unwrap_or(from).max(from);
    let lanes_wanted = order.len();
    order.truncate(args.max_lanes);
    let mut lanes = Vec::with_capacity(order.len());
    for stream in &order {
        // The whole history up to the window's end: a vWire requested before the window is
        // drawn in the state it was in when the window opens.
        let history = log.read_stream(stream, selection.until)?;
        lanes.push(lane(stream, &history, &selection, to));
    }
    let timeline = Timeline {
        title: "nsm-rs vWire timeline".into(),
        subtitle: subtitle(&args, &log, head),
        from,
        to,
        lanes,
        omitted_lanes: lanes_wanted - order.len(),
    };
    let page = if svg {
        render_svg(&timeline)
    } else {
        render_html(&timeline)
    };
    write_atomically(&args.out, page.as_bytes())?;
    crate::output::note(&format!(
        "wrote {} ({} lane(s), {} left out)",
        args.out.display(),
        timeline.lanes.len(),
        timeline.omitted_lanes
    ));
    Ok(())
}

/// Whether a stream gets a lane: a vWire's, or a node data plane's.
fn drawn(stream: &StreamId) -> bool {
    matches!(stream.kind(), StreamKind::VWire | StreamKind::Dataplane)
}

/// One stream's lane: the states it went through (vWires), and its events in the window.
fn lane(
    stream: &StreamId,
    history: &[RecordedEvent],
    selection: &super::filter::Selection,
    to: DateTime<Utc>,
) -> Lane {
    let mut segments: Vec<Segment> = Vec::new();
    let mut label = stream.as_str().to_owned();
    let (mut service, mut client, mut endpoint) = (String::new(), String::new(), None);
    for event in history {
        let Ok(decoded) = VWireEvent::decode(event) else {
            continue;
        };
        let at = event.recorded_at;
        let state = match &decoded {
            VWireEvent::Requested(r) => {
                service = r.service.as_str().to_owned();
                client = r.client.as_str().to_owned();
                LaneState::Requested
            }
            VWireEvent::Established(e) => {
                endpoint = Some(e.endpoint.name.clone());
                LaneState::Established
            }
            VWireEvent::Closed(_) => LaneState::Closed,
            VWireEvent::Expired(_) => LaneState::Expired,
            VWireEvent::Failed(_) => LaneState::Failed,
            _ => continue,
        };
        if let Some(open) = segments.last_mut() {
            open.to = at;
        }
        segments.push(Segment {
            state,
            from: at,
            to: at,
        });
    }
    // A live vWire stays in its state until the window's end.
    if let Some(open) = segments.last_mut()
        && matches!(open.state, LaneState::Requested | LaneState::Established)
    {
        open.to = to.max(open.from);
    }
    if stream.as_str().starts_with(VWIRE_STREAM_PREFIX) {
        label = format!(
            "{} · {} → {}",
            if service.is_empty() { "?" } else { &service },
            if client.is_empty() { "?" } else { &client },
            endpoint.as_deref().unwrap_or("-")
        );
    }
    let marks = history
        .iter()
        .filter(|e| selection.matches(e))
        .map(|e| Mark {
            at: e.recorded_at,
            position: e.position.0,
            event_type: e.event_type.clone(),
            detail: describe(e),
        })
        .collect();
    Lane {
        vwire: stream
            .as_str()
            .strip_prefix(VWIRE_STREAM_PREFIX)
            .unwrap_or(stream.as_str())
            .to_owned(),
        label,
        segments,
        marks,
    }
}

fn subtitle(args: &TimelineArgs, log: &LogReader, head: Position) -> String {
    let f = &args.filter;
    let mut parts = vec![format!("{} (head {head})", log.path().display())];
    let named = [
        ("vwire", f.vwire.clone()),
        ("service", f.service.clone()),
        ("client", f.client.clone()),
        ("endpoint", f.endpoint.clone()),
        ("trace id", f.trace_id.clone()),
        ("since", f.since.map(nsm_log::store::format_timestamp)),
        ("until", f.until.map(nsm_log::store::format_timestamp)),
        ("from position", f.from_position.map(|p| p.to_string())),
    ];
    parts.extend(
        named
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k} {v}"))),
    );
    if !f.kind.is_empty() {
        parts.push(format!("kinds {}", f.kind.join(",")));
    }
    parts.join(" · ")
}

/// Writes `bytes` to `path` through a temporary file beside it, so a reader never sees half
/// a file and an interrupted run leaves the old one.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

//! # Drawing vWire lifecycles over time
//!
//! `nsm timeline --out FILE.html|FILE.svg` folds the log into a [`Timeline`] (that is
//! `timeline_cmd`'s job) and hands it here. This module only draws: no I/O, no clock, no
//! hashing, so the same timeline always gives the same bytes and a picture attached to an
//! incident review can be regenerated and diffed.
//!
//! ## The picture
//!
//! One horizontal lane per vWire, time running left to right in UTC:
//!
//! - the lane's label on the left (the first 8 characters of the vWire id in monospace, then
//!   the label, cut with `…` when long; the full id and label are in the tooltip);
//! - its segments as bars coloured by state; the live states (`requested`, `established`)
//!   are full-height bars, the terminal ones (`closed`, `expired`, `failed`) a short cap where
//!   the vWire ended and a thin band after it, so a chart of dead vWires does not read as a
//!   chart of busy ones;
//! - each event as a small shape on the lane (shape and colour by type), whose tooltip reads
//!   `position N · Type · time · detail`.
//!
//! The HTML page adds a header (title, subtitle, counts, how many lanes a cap left out) and a
//! plain table of every drawn event, so Ctrl-F finds a position, a vWire id or a message.
//! Everything is inline: no fonts, scripts or style sheets are fetched, so the file opens on
//! an air-gapped machine exactly as it was written.
//!
//! ## Markup that tests and scripts rely on
//!
//! `<g class="lane" data-vwire="UUID">` per lane, `class="segment state-STATE"` per segment,
//! `<g class="event" data-kind="TYPE" data-position="N">` per event. Keep them.
//!
//! ## Limits
//!
//! Times outside `[from, to]` are drawn at the nearest edge; `from == to` is widened by 30 s
//! each way; the drawing is linear in lanes plus events (a lane is a fixed 26 px high).

use std::fmt::{self, Display, Write as _};

use chrono::{DateTime, TimeDelta, Utc};

/// What to draw: the lanes, in order, over one window of time.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    pub(crate) title: String,
    /// One line under the title: the log's path, the filters, the node.
    pub(crate) subtitle: String,
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    pub(crate) lanes: Vec<Lane>,
    /// Lanes left out because of a cap; the picture says how many.
    pub(crate) omitted_lanes: usize,
}

/// One vWire's lifecycle.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    /// The vWire id, as uuid text.
    pub(crate) vwire: String,
    /// For people, e.g. `icmp-responder · spiffe://…/client → nse-1`.
    pub(crate) label: String,
    pub(crate) segments: Vec<Segment>,
    pub(crate) marks: Vec<Mark>,
}

/// A span of time the vWire spent in one state.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) state: LaneState,
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
}

/// The states a lane is coloured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneState {
    Requested,
    Established,
    Closed,
    Expired,
    Failed,
}

impl LaneState {
    const ALL: [LaneState; 5] = [
        LaneState::Requested,
        LaneState::Established,
        LaneState::Closed,
        LaneState::Expired,
        LaneState::Failed,
    ];

    /// The name used in CSS classes and the legend: `requested`, `established`, …
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LaneState::Requested => "requested",
            LaneState::Established => "established",
            LaneState::Closed => "closed",
            LaneState::Expired => "expired",
            LaneState::Failed => "failed",
        }
    }

    /// Whether the vWire is over: drawn as an end cap and a thin band, not a bar.
    fn is_terminal(self) -> bool {
        matches!(
            self,
            LaneState::Closed | LaneState::Expired | LaneState::Failed
        )
    }

    fn colour(self) -> &'static str {
        match self {
            LaneState::Requested => "#e3a008",
            LaneState::Established => "#2f9e44",
            LaneState::Closed => "#868e96",
            LaneState::Expired => "#8e44ad",
            LaneState::Failed => "#e03131",
        }
    }
}

/// One event of the vWire's stream.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub(crate) at: DateTime<Utc>,
    pub(crate) position: u64,
    /// The `event_type` column: `Established`, `Refreshed`, `Expired`, …
    pub(crate) event_type: String,
    /// One line for the tooltip and the table.
    pub(crate) detail: String,
}

/// An HTML page: header, the chart, and a table of the events.
pub(crate) fn render_html(t: &Timeline) -> String {
    let mut out = String::new();
    html(t, &mut out).expect("writing into a String cannot fail");
    out
}

/// A standalone SVG document with the same chart, headed by the title and subtitle.
pub(crate) fn render_svg(t: &Timeline) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    svg(t, true, &mut out).expect("writing into a String cannot fail");
    out
}

// Geometry, in SVG pixels.
const WIDTH: f64 = 1240.0;
const PLOT_X0: f64 = 370.0;
const PLOT_X1: f64 = WIDTH - 40.0;
const LANE_H: f64 = 26.0;
const HEADING_H: f64 = 62.0;
const ID_CHARS: usize = 8;
const LABEL_CHARS: usize = 40;
/// Tick spacing is the smallest of [`STEPS`] giving at most this many intervals.
const MAX_TICKS: i64 = 8;
const EMPTY_LANES: f64 = 3.0;

const CSS: &str = "\
.nsm-timeline{font-family:'DejaVu Sans',Verdana,Arial,sans-serif;font-size:12px}\
.nsm-timeline .bg{fill:#fff}\
.nsm-timeline .stripe{fill:#f1f3f5}\
.nsm-timeline .grid{stroke:#dee2e6;stroke-width:1}\
.nsm-timeline .edge{stroke:#adb5bd;stroke-width:1}\
.nsm-timeline .tick{fill:#343a40;font-size:11px;text-anchor:middle}\
.nsm-timeline .tick-date{fill:#868e96;font-size:10px;text-anchor:middle}\
.nsm-timeline .utc{fill:#868e96;font-size:11px;text-anchor:end}\
.nsm-timeline .label{fill:#212529}\
.nsm-timeline .id{fill:#495057;font-family:'DejaVu Sans Mono',monospace;font-size:11px}\
.nsm-timeline .legend{fill:#343a40;font-size:11px}\
.nsm-timeline .heading{fill:#212529;font-size:16px;font-weight:bold}\
.nsm-timeline .sub{fill:#495057;font-size:12px}\
.nsm-timeline .note{fill:#c92a2a;font-size:12px}\
.nsm-timeline .empty{fill:#868e96;font-size:14px;text-anchor:middle}\
.nsm-timeline .event{stroke:#fff;stroke-width:1}\
.nsm-timeline .event:hover{stroke:#000}\
.nsm-timeline .row{fill:#fff}\
.nsm-timeline .state-requested{fill:#e3a008}\
.nsm-timeline .state-established{fill:#2f9e44}\
.nsm-timeline .state-closed{fill:#868e96}\
.nsm-timeline .state-expired{fill:#8e44ad}\
.nsm-timeline .state-failed{fill:#e03131}\
.nsm-timeline .lane:hover .stripe,.nsm-timeline .lane:hover .row{fill:#e7f5ff}";

const PAGE_CSS: &str = "\
body{margin:0;padding:16px 20px;font-family:'DejaVu Sans',Verdana,Arial,sans-serif;\
color:#212529;background:#fff}\
h1{font-size:20px;margin:0 0 4px}\
p{margin:2px 0}\
.subtitle{color:#495057}\
.counts{color:#495057;font-size:13px}\
.omitted{color:#c92a2a;font-weight:bold}\
figure{margin:12px 0;overflow-x:auto}\
figure svg{max-width:100%;height:auto}\
table{border-collapse:collapse;font-size:12px}\
th,td{border-bottom:1px solid #dee2e6;padding:3px 10px;text-align:left;vertical-align:top}\
th{background:#f1f3f5;position:sticky;top:0}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
code{font-family:'DejaVu Sans Mono',monospace;font-size:11px}";

fn html(t: &Timeline, out: &mut String) -> fmt::Result {
    let window = Window::new(t.from, t.to);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{PAGE_CSS}</style>\n</head>\n<body>\n<header>\n\
         <h1>{}</h1>\n<p class=\"subtitle\">{}</p>\n<p class=\"counts\">{}</p>\n",
        Esc(&t.title),
        Esc(&t.title),
        Esc(&t.subtitle),
        Esc(&counts(t, &window)),
    )?;
    if t.omitted_lanes > 0 {
        writeln!(
            out,
            "<p class=\"omitted\">{} not drawn (a cap on lanes); their events are not \
             listed below.</p>",
            plural(t.omitted_lanes, "lane", "lanes")
        )?;
    }
    out.push_str("</header>\n<figure>\n");
    svg(t, false, out)?;
    out.push_str("</figure>\n");
    events_table(t, out)?;
    out.push_str("</body>\n</html>\n");
    Ok(())
}

/// `5 vWires · 37 events · 2024-05-01 10:00:00 → 11:30:00 UTC (1h 30m) · last state: …`
fn counts(t: &Timeline, window: &Window) -> String {
    let events: usize = t.lanes.iter().map(|l| l.marks.len()).sum();
    let mut text = format!(
        "{} · {} · {} → {} UTC ({})",
        plural(t.lanes.len(), "vWire", "vWires"),
        plural(events, "event", "events"),
        window.from.format("%Y-%m-%d %H:%M:%S"),
        window.to.format("%Y-%m-%d %H:%M:%S"),
        duration(window.to - window.from),
    );
    let last: Vec<String> = LaneState::ALL
        .iter()
        .filter_map(|state| {
            let n = t
                .lanes
                .iter()
                .filter(|l| l.segments.last().map(|s| s.state) == Some(*state))
                .count();
            (n > 0).then(|| format!("{n} {}", state.as_str()))
        })
        .collect();
    if !last.is_empty() {
        let _ = write!(text, " · last state: {}", last.join(", "));
    }
    text
}

fn events_table(t: &Timeline, out: &mut String) -> fmt::Result {
    let mut rows: Vec<(&Lane, &Mark)> = t
        .lanes
        .iter()
        .flat_map(|lane| lane.marks.iter().map(move |mark| (lane, mark)))
        .collect();
    rows.sort_by_key(|(_, mark)| mark.position);
    out.push_str(
        "<table class=\"events\">\n<thead><tr><th>position</th><th>time (UTC)</th>\
         <th>vWire</th><th>type</th><th>detail</th></tr></thead>\n<tbody>\n",
    );
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"5\">No events in this window.</td></tr>\n");
    }
    for (lane, mark) in rows {
        writeln!(
            out,
            "<tr><td class=\"num\">{}</td><td>{}</td><td><code title=\"{}\">{}</code></td>\
             <td style=\"color:{}\">{}</td><td>{}</td></tr>",
            mark.position,
            mark.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            Esc(&lane.label),
            Esc(&lane.vwire),
            Shape::of(&mark.event_type).colour_for_text(),
            Esc(&mark.event_type),
            Esc(&mark.detail),
        )?;
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

/// The chart. `standalone` adds the heading (the HTML page has its own) and a document title.
fn svg(t: &Timeline, standalone: bool, out: &mut String) -> fmt::Result {
    let window = Window::new(t.from, t.to);
    let top = if standalone { HEADING_H } else { 0.0 };
    let lanes_y = top + 72.0;
    let rows = if t.lanes.is_empty() {
        EMPTY_LANES
    } else {
        t.lanes.len() as f64
    };
    let lanes_end = lanes_y + rows * LANE_H;
    let note_h = if t.omitted_lanes > 0 { 22.0 } else { 0.0 };
    let height = lanes_end + 40.0 + note_h;
    write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"nsm-timeline\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">\n<style>{CSS}</style>\n\
         <rect class=\"bg\" x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\"/>\n"
    )?;
    if standalone {
        write!(
            out,
            "<title>{}</title>\n<text class=\"heading\" x=\"10\" y=\"22\">{}</text>\n\
             <text class=\"sub\" x=\"10\" y=\"40\">{}</text>\n\
             <text class=\"sub\" x=\"10\" y=\"56\">{}</text>\n",
            Esc(&t.title),
            Esc(&t.title),
            Esc(&t.subtitle),
            Esc(&counts(t, &window)),
        )?;
    }
    legend(top + 8.0, out)?;
    axis(&window, lanes_y, lanes_end, out)?;
    for (index, lane) in t.lanes.iter().enumerate() {
        draw_lane(&window, lanes_y + index as f64 * LANE_H, index, lane, out)?;
    }
    if t.lanes.is_empty() {
        writeln!(
            out,
            "<text class=\"empty\" x=\"{:.1}\" y=\"{:.1}\">No vWire lifecycles to draw \
             in this window.</text>",
            (PLOT_X0 + PLOT_X1) / 2.0,
            lanes_y + EMPTY_LANES * LANE_H / 2.0 + 5.0,
        )?;
    }
    writeln!(
        out,
        "<line class=\"edge\" x1=\"{PLOT_X0}\" y1=\"{lanes_y}\" x2=\"{PLOT_X0}\" \
         y2=\"{lanes_end}\"/>\n<line class=\"edge\" x1=\"0\" y1=\"{lanes_end}\" \
         x2=\"{WIDTH}\" y2=\"{lanes_end}\"/>"
    )?;
    tick_labels(&window, lanes_end + 16.0, out)?;
    if t.omitted_lanes > 0 {
        writeln!(
            out,
            "<text class=\"note\" x=\"10\" y=\"{:.1}\">{} not drawn (a cap on lanes).</text>",
            lanes_end + 36.0 + note_h / 2.0,
            plural(t.omitted_lanes, "more lane", "more lanes"),
        )?;
    }
    out.push_str("</svg>\n");
    Ok(())
}

/// The row of state swatches and event shapes.
fn legend(y: f64, out: &mut String) -> fmt::Result {
    out.push_str("<g class=\"legend\">\n");
    let mid = y + 8.0;
    let mut x = 10.0;
    for state in LaneState::ALL {
        if state.is_terminal() {
            writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"4\" height=\"14\" fill=\"{c}\"/>\
                 <rect x=\"{x:.1}\" y=\"{:.1}\" width=\"22\" height=\"3\" fill=\"{c}\"/>",
                mid - 7.0,
                mid - 1.5,
                c = state.colour(),
            )?;
        } else {
            writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"22\" height=\"14\" rx=\"2\" \
                 fill=\"{}\"/>",
                mid - 7.0,
                state.colour(),
            )?;
        }
        x = legend_text(x + 27.0, mid, state.as_str(), out)?;
    }
    x += 16.0;
    for (caption, event_type) in Shape::LEGEND {
        Shape::of(event_type).draw(x + 5.0, mid, out)?;
        x = legend_text(x + 14.0, mid, caption, out)?;
    }
    out.push_str("</g>\n");
    Ok(())
}

/// Writes a legend caption and returns where the next item starts.
fn legend_text(x: f64, mid: f64, text: &str, out: &mut String) -> Result<f64, fmt::Error> {
    writeln!(
        out,
        "<text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
        mid + 4.0,
        Esc(text)
    )?;
    Ok(x + text.chars().count() as f64 * 6.6 + 12.0)
}

/// Grid lines through every lane, with the tick labels above.
fn axis(window: &Window, lanes_y: f64, lanes_end: f64, out: &mut String) -> fmt::Result {
    writeln!(
        out,
        "<text class=\"utc\" x=\"{:.1}\" y=\"{:.1}\">UTC</text>",
        PLOT_X0 - 36.0,
        lanes_y - 22.0
    )?;
    for tick in ticks(window.from, window.to) {
        let x = window.x(tick.at);
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{lanes_end:.1}\"/>",
            lanes_y - 4.0
        )?;
    }
    tick_labels(window, lanes_y - 22.0, out)
}

/// Tick labels with their baseline at `y`, the date (when it changes) on a line below.
fn tick_labels(window: &Window, y: f64, out: &mut String) -> fmt::Result {
    for tick in ticks(window.from, window.to) {
        let x = window.x(tick.at);
        writeln!(
            out,
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{y:.1}\">{}</text>",
            Esc(&tick.label)
        )?;
        if let Some(date) = &tick.date {
            writeln!(
                out,
                "<text class=\"tick-date\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                y + 12.0,
                Esc(date)
            )?;
        }
    }
    Ok(())
}

fn draw_lane(
    window: &Window,
    top: f64,
    index: usize,
    lane: &Lane,
    out: &mut String,
) -> fmt::Result {
    let mid = top + LANE_H / 2.0;
    let stripe = if index % 2 == 1 { "stripe" } else { "row" };
    let short: String = lane.vwire.chars().take(ID_CHARS).collect();
    writeln!(
        out,
        "<g class=\"lane\" data-vwire=\"{}\">\n<rect class=\"{stripe}\" x=\"0\" y=\"{top:.1}\" width=\"{WIDTH}\" height=\"{LANE_H}\"/>\n\
         <text x=\"10\" y=\"{:.1}\"><title>{}&#10;{}</title><tspan class=\"id\">{}</tspan>\
         <tspan class=\"label\" x=\"{:.1}\">{}</tspan></text>",
        Esc(&lane.vwire),
        mid + 4.0,
        Esc(&lane.vwire),
        Esc(&lane.label),
        Esc(&short),
        10.0 + ID_CHARS as f64 * 7.0 + 8.0,
        Esc(&truncate(&lane.label, LABEL_CHARS)),
    )?;
    for segment in &lane.segments {
        draw_segment(window, top, segment, out)?;
    }
    for mark in &lane.marks {
        writeln!(
            out,
            "<g class=\"event\" data-kind=\"{}\" data-position=\"{}\"><title>position {} · \
             {} · {}{}{}</title>",
            Esc(&mark.event_type),
            mark.position,
            mark.position,
            Esc(&mark.event_type),
            mark.at.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
            if mark.detail.is_empty() { "" } else { " · " },
            Esc(&mark.detail),
        )?;
        Shape::of(&mark.event_type).draw(window.x(mark.at), mid, out)?;
        out.push_str("</g>\n");
    }
    out.push_str("</g>\n");
    Ok(())
}

fn draw_segment(window: &Window, top: f64, segment: &Segment, out: &mut String) -> fmt::Result {
    let (from, to) = if segment.to < segment.from {
        (segment.to, segment.from)
    } else {
        (segment.from, segment.to)
    };
    let x0 = window.x(from);
    let width = (window.x(to) - x0).max(1.0);
    let state = segment.state.as_str();
    let title = format!(
        "{state} · {} → {} UTC ({})",
        from.format("%Y-%m-%d %H:%M:%S"),
        to.format("%Y-%m-%d %H:%M:%S"),
        duration(to - from),
    );
    if segment.state.is_terminal() {
        writeln!(
            out,
            "<g class=\"segment state-{state}\"><title>{}</title>\
             <rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"4\" height=\"{:.1}\"/>\
             <rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"3\"/></g>",
            Esc(&title),
            top + 4.0,
            LANE_H - 8.0,
            top + LANE_H / 2.0 - 1.5,
        )
    } else {
        writeln!(
            out,
            "<rect class=\"segment state-{state}\" x=\"{x0:.1}\" y=\"{:.1}\" \
             width=\"{width:.1}\" height=\"{:.1}\" rx=\"2\"><title>{}</title></rect>",
            top + 6.0,
            LANE_H - 12.0,
            Esc(&title),
        )
    }
}

/// The time window on the x axis, never empty.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    from_ms: i64,
    span_ms: i64,
}

impl Window {
    fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        let (mut from, mut to) = if to < from { (to, from) } else { (from, to) };
        if from == to {
            let pad = TimeDelta::seconds(30);
            from = from.checked_sub_signed(pad).unwrap_or(from);
            to = to.checked_add_signed(pad).unwrap_or(to);
        }
        let from_ms = from.timestamp_millis();
        let span_ms = to.timestamp_millis().saturating_sub(from_ms).max(1);
        Self {
            from,
            to,
            from_ms,
            span_ms,
        }
    }

    /// Where `at` is drawn; times outside the window are drawn at its nearest edge.
    fn x(&self, at: DateTime<Utc>) -> f64 {
        let ms = at
            .timestamp_millis()
            .saturating_sub(self.from_ms)
            .clamp(0, self.span_ms);
        PLOT_X0 + ms as f64 / self.span_ms as f64 * (PLOT_X1 - PLOT_X0)
    }
}

/// A labelled time on the axis.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tick {
    at: DateTime<Utc>,
    label: String,
    /// The date (or, for day ticks, the year) on the first tick and wherever it changes.
    date: Option<String>,
}

/// Tick spacings in seconds: round numbers of seconds, minutes, hours and days.
const STEPS: [i64; 24] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
    172_800, 604_800, 1_209_600, 2_592_000, 7_776_000, 31_536_000,
];

/// Ticks at multiples of a round step (aligned to UTC midnight), at most [`MAX_TICKS`]
/// intervals across the window.
fn ticks(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Tick> {
    let window = Window::new(from, to);
    let span = (window.span_ms.saturating_add(999) / 1000).max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|step| span / step <= MAX_TICKS)
        .unwrap_or_else(|| (span / MAX_TICKS / 31_536_000 + 1) * 31_536_000);
    let (time_format, date_format) = if step < 60 {
        ("%H:%M:%S", "%Y-%m-%d")
    } else if step < 86_400 {
        ("%H:%M", "%Y-%m-%d")
    } else {
        ("%b %d", "%Y")
    };
    let first = window.from.timestamp().div_euclid(step) * step;
    let first = if first < window.from.timestamp() || window.from.timestamp_subsec_nanos() > 0 {
        first + step
    } else {
        first
    };
    let mut ticks = Vec::new();
    let mut last_date = String::new();
    let mut second = first;
    while second <= window.to.timestamp() {
        let Some(at) = DateTime::from_timestamp(second, 0) else {
            break;
        };
        let date = at.format(date_format).to_string();
        ticks.push(Tick {
            at,
            label: at.format(time_format).to_string(),
            date: (date != last_date).then(|| date.clone()),
        });
        last_date = date;
        second += step;
    }
    ticks
}

/// The shape and colour of an event mark, by event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Circle(&'static str),
    Diamond(&'static str),
    Square(&'static str),
    TriangleUp(&'static str),
    TriangleDown(&'static str),
    Cross(&'static str),
}

impl Shape {
    /// The legend's captions and the event type each one shows.
    const LEGEND: [(&'static str, &'static str); 9] = [
        ("Requested", "Requested"),
        ("Established", "Established"),
        ("Refreshed", "Refreshed"),
        ("Healed", "Healed"),
        ("ProbeFailed", "ProbeFailed"),
        ("Expired", "Expired"),
        ("Closed", "Closed"),
        ("Failed", "Failed"),
        ("Dataplane", "DataplanePlumbed"),
    ];

    fn of(event_type: &str) -> Shape {
        match event_type {
            "Requested" => Shape::Circle("#e3a008"),
            "Established" => Shape::Circle("#2f9e44"),
            "Refreshed" => Shape::Diamond("#1c7ed6"),
            "Healed" => Shape::Diamond("#0ca678"),
            "ProbeFailed" => Shape::TriangleUp("#f76707"),
            "Expired" => Shape::TriangleDown("#8e44ad"),
            "Closed" => Shape::Square("#495057"),
            "Failed" => Shape::Cross("#e03131"),
            "DataplanePlumbed" => Shape::Square("#3bc9db"),
            "DataplaneUnplumbed" => Shape::Square("#99e9f2"),
            _ => Shape::Circle("#343a40"),
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Shape::Circle(c)
            | Shape::Diamond(c)
            | Shape::Square(c)
            | Shape::TriangleUp(c)
            | Shape::TriangleDown(c)
            | Shape::Cross(c) => c,
        }
    }

    /// The colour for the type's name in the table: pale ones darkened to stay legible.
    fn colour_for_text(self) -> &'static str {
        match self.colour() {
            "#3bc9db" | "#99e9f2" => "#1098ad",
            c => c,
        }
    }

    fn draw(self, x: f64, y: f64, out: &mut String) -> fmt::Result {
        let fill = self.colour();
        match self {
            Shape::Circle(_) => writeln!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"{fill}\"/>"
            ),
            Shape::Square(_) => writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\" fill=\"{fill}\"/>",
                x - 4.5,
                y - 4.5
            ),
            Shape::Diamond(_) => {
                polygon(x, y, &[(0., -6.), (6., 0.), (0., 6.), (-6., 0.)], fill, out)
            }
            Shape::TriangleUp(_) => polygon(x, y, &[(-6., 5.), (6., 5.), (0., -6.)], fill, out),
            Shape::TriangleDown(_) => polygon(x, y, &[(-6., -5.), (6., -5.), (0., 6.)], fill, out),
            Shape::Cross(_) => polygon(x, y, &CROSS, fill, out),
        }
    }
}

/// An X of arms 2.4 px wide reaching 5.5 px from its centre.
const CROSS: [(f64, f64); 12] = [
    (-5.5, -3.8),
    (-3.8, -5.5),
    (0.0, -1.7),
    (3.8, -5.5),
    (5.5, -3.8),
    (1.7, 0.0),
    (5.5, 3.8),
    (3.8, 5.5),
    (0.0, 1.7),
    (-3.8, 5.5),
    (-5.5, 3.8),
    (-1.7, 0.0),
];

fn polygon(x: f64, y: f64, points: &[(f64, f64)], fill: &str, out: &mut String) -> fmt::Result {
    out.push_str("<path d=\"");
    for (index, (dx, dy)) in points.iter().enumerate() {
        let op = if index == 0 { 'M' } else { 'L' };
        write!(out, "{op}{:.1},{:.1}", x + dx, y + dy)?;
    }
    writeln!(out, "Z\" fill=\"{fill}\"/>")
}

/// Text made safe for XML and HTML content and attributes. Control characters XML cannot
/// carry become U+FFFD, so a stray byte in a detail cannot make the SVG unreadable.
#[derive(Debug, Clone, Copy)]
struct Esc<'a>(&'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                '\t' | '\n' | '\r' => f.write_char(' ')?,
                c if c.is_control() => f.write_char('\u{FFFD}')?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// At most `max` characters, the last one `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `1h 30m`, `4m 59s`, `2d 3h`, `250ms`: the two largest units.
fn duration(d: TimeDelta) -> String {
    let ms = d.num_milliseconds().unsigned_abs();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let units = [
        (s / 86_400, "d"),
        (s / 3600 % 24, "h"),
        (s / 60 % 60, "m"),
        (s % 60, "s"),
    ];
    let start = units.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    units[start..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("an RFC 3339 time")
            .with_timezone(&Utc)
    }

    fn mark(time: &str, position: u64, event_type: &str, detail: &str) -> Mark {
        Mark {
            at: at(time),
            position,
            event_type: event_type.to_owned(),
            detail: detail.to_owned(),
        }
    }

    fn segment(state: LaneState, from: &str, to: &str) -> Segment {
        Segment {
            state,
            from: at(from),
            to: at(to),
        }
    }

    /// Two lanes: one established then closed, one requested then failed.
    fn sample() -> Timeline {
        Timeline {
            title: "vWires on node-1".to_owned(),
            subtitle: "/var/lib/nsm/events.db".to_owned(),
            from: at("2024-05-01T10:00:00Z"),
            to: at("2024-05-01T11:00:00Z"),
            lanes: vec![
                Lane {
                    vwire: "6f1c2d3e-0000-4000-8000-000000000001".to_owned(),
                    label: "icmp-responder · spiffe://example.org/client → nse-1".to_owned(),
                    segments: vec![
                        segment(
                            LaneState::Requested,
                            "2024-05-01T10:01:00Z",
                            "2024-05-01T10:01:02Z",
                        ),
                        segment(
                            LaneState::Established,
                            "2024-05-01T10:01:02Z",
                            "2024-05-01T10:40:00Z",
                        ),
                        segment(
                            LaneState::Closed,
                            "2024-05-01T10:40:00Z",
                            "2024-05-01T11:00:00Z",
                        ),
                    ],
                    marks: vec![
                        mark("2024-05-01T10:01:00Z", 1, "Requested", "by client"),
                        mark("2024-05-01T10:01:02Z", 2, "Established", "nse-1"),
                        mark("2024-05-01T10:20:00Z", 4, "Refreshed", ""),
                        mark("2024-05-01T10:40:00Z", 5, "Closed", "client closed"),
                    ],
                },
                Lane {
                    vwire: "7a2b3c4d-0000-4000-8000-000000000002".to_owned(),
                    label: "kernel-nse".to_owned(),
                    segments: vec![
                        segment(
                            LaneState::Requested,
                            "2024-05-01T10:05:00Z",
                            "2024-05-01T10:05:30Z",
                        ),
                        segment(
                            LaneState::Failed,
                            "2024-05-01T10:05:30Z",
                            "2024-05-01T11:00:00Z",
                        ),
                    ],
                    marks: vec![
                        mark("2024-05-01T10:05:00Z", 3, "Requested", ""),
                        mark("2024-05-01T10:05:30Z", 6, "Failed", "no endpoint"),
                    ],
                },
            ],
            omitted_lanes: 0,
        }
    }

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            Esc("<a href='x'>&\"</a>").to_string(),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(Esc("a\u{0}b\nc").to_string(), "a\u{FFFD}b c");
    }

    #[test]
    fn text_from_the_log_cannot_inject_markup() {
        let mut t = sample();
        t.title = "<script>alert(1)</script>".to_owned();
        t.lanes[0].label = "a\"><img src=x onerror=alert(1)>".to_owned();
        t.lanes[0].marks[0].detail = "</title><script>".to_owned();
        t.lanes[0].marks[0].event_type = "Bad\"Type".to_owned();
        for page in [render_html(&t), render_svg(&t)] {
            assert!(!page.contains("<script"), "{page}");
            assert!(!page.contains("<img"), "{page}");
            assert!(page.contains("&lt;script&gt;"));
            assert!(page.contains("data-kind=\"Bad&quot;Type\""));
        }
    }

    #[test]
    fn every_lane_segment_and_mark_carries_its_hook() {
        let t = sample();
        for page in [render_html(&t), render_svg(&t)] {
            assert_eq!(
                count(&page, "<g class=\"lane\" data-vwire=\""),
                t.lanes.len()
            );
            for lane in &t.lanes {
                assert!(
                    page.contains(&format!("<g class=\"lane\" data-vwire=\"{}\">", lane.vwire))
                );
                for mark in &lane.marks {
                    let hook = format!(
                        "class=\"event\" data-kind=\"{}\" data-position=\"{}\"",
                        mark.event_type, mark.position
                    );
                    assert_eq!(count(&page, &hook), 1, "{hook}");
                }
            }
            let segments: usize = t.lanes.iter().map(|l| l.segments.len()).sum();
            assert_eq!(count(&page, "class=\"segment state-"), segments);
            for state in ["requested", "established", "closed", "failed"] {
                assert!(page.contains(&format!("class=\"segment state-{state}\"")));
            }
            assert!(page.contains(
                "<title>position 6 · Failed · 2024-05-01 10:05:30.000 UTC · no endpoint</title>"
            ));
        }
    }

    #[test]
    fn every_state_has_a_colour_in_the_style_sheet() {
        for state in LaneState::ALL {
            let rule = format!(".state-{}{{fill:{}}}", state.as_str(), state.colour());
            assert!(CSS.contains(&rule), "{rule}");
        }
    }

    #[test]
    fn the_html_page_lists_every_event_in_position_order() {
        let page = render_html(&sample());
        let rows: Vec<&str> = page.lines().filter(|l| l.starts_with("<tr><td")).collect();
        assert_eq!(rows.len(), 6);
        for (row, position) in rows.iter().zip(1..) {
            assert!(
                row.starts_with(&format!("<tr><td class=\"num\">{position}</td>")),
                "{row}"
            );
        }
        assert!(page.contains("2 vWires · 6 events"));
        assert!(page.contains("last state: 1 closed, 1 failed"));
        assert!(!page.contains("not drawn"));
    }

    #[test]
    fn omitted_lanes_are_announced() {
        let mut t = sample();
        t.omitted_lanes = 3;
        assert!(render_html(&t).contains("3 lanes not drawn"));
        assert!(render_svg(&t).contains("3 more lanes not drawn"));
    }

    #[test]
    fn an_empty_timeline_draws_an_empty_chart_with_a_message() {
        let mut t = sample();
        t.lanes.clear();
        t.from = at("2024-05-01T10:00:00Z");
        t.to = t.from;
        for page in [render_html(&t), render_svg(&t)] {
            assert!(page.contains("No vWire lifecycles to draw"));
            assert!(!page.contains("class=\"lane\""));
            assert!(page.contains("class=\"tick\""), "from == to is widened");
            assert!(!page.contains("NaN"));
        }
        let svg = render_svg(&t);
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn times_outside_the_window_are_drawn_at_its_edges() {
        let window = Window::new(at("2024-05-01T10:00:00Z"), at("2024-05-01T11:00:00Z"));
        assert_eq!(window.x(at("2024-04-01T00:00:00Z")), PLOT_X0);
        assert_eq!(window.x(at("2025-01-01T00:00:00Z")), PLOT_X1);
        assert_eq!(
            window.x(at("2024-05-01T10:30:00Z")),
            (PLOT_X0 + PLOT_X1) / 2.0
        );
        let reversed = Window::new(at("2024-05-01T11:00:00Z"), at("2024-05-01T10:00:00Z"));
        assert_eq!(reversed.x(at("2024-05-01T10:00:00Z")), PLOT_X0);
        let mut t = sample();
        t.lanes[0].marks[0].at = at("1999-01-01T00:00:00Z");
        t.lanes[0].segments[0].to = at("2099-01-01T00:00:00Z");
        assert!(!render_svg(&t).contains("NaN"));
    }

    #[test]
    fn the_same_timeline_gives_the_same_bytes() {
        assert_eq!(render_html(&sample()), render_html(&sample()));
        assert_eq!(render_svg(&sample()), render_svg(&sample()));
    }

    #[test]
    fn thousands_of_lanes_grow_the_chart_linearly() {
        let mut t = sample();
        let lane = t.lanes[0].clone();
        t.lanes = (0..3000)
            .map(|i| Lane {
                vwire: format!("{i:08}-0000-4000-8000-000000000000"),
                ..lane.clone()
            })
            .collect();
        let svg = render_svg(&t);
        assert_eq!(count(&svg, "<g class=\"lane\""), 3000);
        let height = HEADING_H + 72.0 + 3000.0 * LANE_H + 40.0;
        assert!(svg.contains(&format!("height=\"{height}\"")), "{height}");
    }

    fn labels(ticks: &[Tick]) -> Vec<(&str, Option<&str>)> {
        ticks
            .iter()
            .map(|t| (t.label.as_str(), t.date.as_deref()))
            .collect()
    }

    #[test]
    fn a_90_second_span_has_ticks_every_15_seconds() {
        let ticks = ticks(at("2024-05-01T09:59:58.500Z"), at("2024-05-01T10:01:28Z"));
        assert_eq!(
            labels(&ticks),
            [
                ("10:00:00", Some("2024-05-01")),
                ("10:00:15", None),
                ("10:00:30", None),
                ("10:00:45", None),
                ("10:01:00", None),
                ("10:01:15", None),
            ]
        );
    }

    #[test]
    fn a_3_day_span_has_ticks_every_12_hours_dated_at_midnight() {
        let ticks = ticks(at("2024-04-30T23:00:00Z"), at("2024-05-03T23:00:00Z"));
        assert_eq!(
            labels(&ticks),
            [
                ("00:00", Some("2024-05-01")),
                ("12:00", None),
                ("00:00", Some("2024-05-02")),
                ("12:00", None),
                ("00:00", Some("2024-05-03")),
                ("12:00", None),
            ]
        );
    }

    #[test]
    fn long_spans_have_day_and_year_ticks() {
        let ticks = ticks(at("2024-12-20T00:00:00Z"), at("2025-01-20T00:00:00Z"));
        assert!(ticks.len() <= MAX_TICKS as usize + 1);
        assert!(ticks.iter().all(|t| t.label.len() == 6), "{ticks:?}");
        assert_eq!(ticks[0].date.as_deref(), Some("2024"));
        assert!(ticks.iter().any(|t| t.date.as_deref() == Some("2025")));
        let decades = super::ticks(at("1990-01-01T00:00:00Z"), at("2090-01-01T00:00:00Z"));
        assert!((2..=MAX_TICKS as usize + 1).contains(&decades.len()));
    }

    #[test]
    fn durations_show_the_two_largest_units() {
        assert_eq!(duration(TimeDelta::milliseconds(250)), "250ms");
        assert_eq!(duration(TimeDelta::seconds(299)), "4m 59s");
        assert_eq!(duration(TimeDelta::seconds(5400)), "1h 30m");
        assert_eq!(duration(TimeDelta::seconds(3600)), "1h");
        assert_eq!(
            duration(TimeDelta::seconds(2 * 86_400 + 3 * 3600 + 5)),
            "2d 3h"
        );
    }
}

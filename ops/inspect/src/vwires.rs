//! `nsm vwires`: every vWire and its state, now or as it was at a moment of the log (time
//! travel: `--at TIME` or `--position P`), folded from the events up to it.

use chrono::{DateTime, Utc};
use clap::Args;
use nsm_domain::vwire::{Status, VWire};
use nsm_log::store::{Position, format_timestamp};
use serde::Serialize;

use super::describe::{address_pair, ending, mechanism, short_id};
use super::filter::parse_moment;
use super::fold::state_at;
use super::{LogArgs, table};
use nsm_log::read::LogReader;

#[derive(Debug, Args)]
pub struct VWiresArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Show the vWires as they were at this moment: RFC 3339, or a duration ago (15m).
    #[arg(long, value_parser = parse_moment, conflicts_with = "position")]
    at: Option<DateTime<Utc>>,
    /// Show the vWires as they were right after this position of the log.
    #[arg(long)]
    position: Option<u64>,
    /// Only vWires in this state (requested, established, closed, expired, failed).
    #[arg(long, value_delimiter = ',')]
    state: Vec<String>,
    /// Only live vWires (requested or established), as a node would hold them.
    #[arg(long, conflicts_with = "state")]
    live: bool,
    /// Only vWires of this Network Service.
    #[arg(long)]
    service: Option<String>,
    /// Only vWires of this client (SPIFFE id).
    #[arg(long)]
    client: Option<String>,
    /// Only vWires connected to this endpoint.
    #[arg(long)]
    endpoint: Option<String>,
}

/// The answer: where in the log, and the vWires there.
#[derive(Debug, Serialize)]
pub(crate) struct Snapshot {
    /// The last position folded.
    pub(crate) position: u64,
    /// The moment asked for (`--at`), or when that position was recorded.
    pub(crate) at: Option<String>,
    pub(crate) vwires: Vec<VWireRow>,
}

/// One vWire as `nsm vwires` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct VWireRow {
    pub(crate) vwire: String,
    pub(crate) state: Status,
    /// Live, but its deadline had passed at that moment without an `Expired` (the node was
    /// down, or it was about to expire it).
    pub(crate) overdue: bool,
    pub(crate) service: String,
    pub(crate) client: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) mechanism: Option<String>,
    pub(crate) src_ip_addrs: Vec<String>,
    pub(crate) dst_ip_addrs: Vec<String>,
    pub(crate) deadline: String,
    pub(crate) requested_at: String,
    pub(crate) ended_at: Option<String>,
    pub(crate) ending: Option<String>,
    pub(crate) version: u64,
}

impl VWireRow {
    pub(crate) fn new(vwire: &VWire, at: DateTime<Utc>) -> Self {
        let connection = vwire.connection.as_ref();
        Self {
            vwire: vwire.id.to_string(),
            state: vwire.status,
            overdue: !vwire.status.is_terminal() && vwire.expires_at <= at,
            service: vwire.service.as_str().to_owned(),
            client: vwire.client.as_str().to_owned(),
            endpoint: connection.map(|c| c.endpoint.name.clone()),
            mechanism: connection.map(|c| mechanism(&c.mechanism)),
            src_ip_addrs: connection.map_or_else(Vec::new, |c| c.context.ip.src_ip_addrs.clone()),
            dst_ip_addrs: connection.map_or_else(Vec::new, |c| c.context.ip.dst_ip_addrs.clone()),
            deadline: format_timestamp(vwire.expires_at),
            requested_at: format_timestamp(vwire.requested_at),
            ended_at: vwire.ended_at.map(format_timestamp),
            ending: vwire.ending.as_ref().map(|_| ending(vwire)),
            version: vwire.version,
        }
    }
}

/// The vWires at `position` (`None`: the head), sorted by when they were requested.
#[expect(
    clippy::vec_box,
    reason = "sorting 100k pointers is much faster than sorting 100k vWires by value"
)]
pub(crate) fn snapshot(
    log: &LogReader,
    at: Option<DateTime<Utc>>,
    position: Option<u64>,
) -> anyhow::Result<(Position, DateTime<Utc>, Vec<Box<VWire>>)> {
    let head = log.head()?;
    let position = match (at, position) {
        (Some(at), _) => log.position_at(at)?,
        (None, Some(p)) => Position(p).min(head),
        (None, None) => head,
    };
    let folded = state_at(log, position)?;
    if !folded.problems.is_empty() {
        tracing::warn!(
            problems = folded.problems.len(),
            first = %folded.problems[0],
            "some events could not be folded; `nsm verify` lists them"
        );
    }
    // The moment the answer is about: the one asked for, else now for the head (a vWire past
    // its deadline on a stopped node is overdue now), else the position's own time.
    let moment = match at {
        Some(at) => at,
        None if position == head => Utc::now(),
        None => log
            .read_range(Position(position.0.saturating_sub(1)), position, 1)?
            .first()
            .map_or_else(Utc::now, |e| e.recorded_at),
    };
    let mut vwires: Vec<Box<VWire>> = folded.vwires.into_values().collect();
    vwires.sort_by_key(|v| (v.requested_at, v.id.0));
    Ok((position, moment, vwires))
}

pub async fn run(args: VWiresArgs) -> anyhow::Result<()> {
    for state in &args.state {
        let known = ["requested", "established", "closed", "expired", "failed"];
        if !known.contains(&state.as_str()) {
            anyhow::bail!(
                "--state {state:?} is not a state; states: {}",
                known.join(", ")
            );
        }
    }
    let log = LogReader::open(&args.log.db).await?;
    let (position, moment, vwires) = snapshot(&log, args.at, args.position)?;
    let rows: Vec<VWireRow> = vwires
        .iter()
        .filter(|v| !args.live || !v.status.is_terminal())
        .filter(|v| args.state.is_empty() || args.state.iter().any(|s| s == v.status.as_str()))
        .filter(|v| {
            args.service
                .as_deref()
                .is_none_or(|s| v.service.as_str() == s)
        })
        .filter(|v| {
            args.client
                .as_deref()
                .is_none_or(|c| v.client.as_str() == c)
        })
        .filter(|v| {
            args.endpoint
                .as_deref()
                .is_none_or(|n| v.connection.as_ref().is_some_and(|c| c.endpoint.name == n))
        })
        .map(|v| VWireRow::new(v, moment))
        .collect();
    if args.log.json {
        let snapshot = Snapshot {
            position: position.0,
            at: Some(format_timestamp(moment)),
            vwires: rows,
        };
        crate::output::print_json_line(&snapshot)?;
        return Ok(());
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let state = if r.overdue {
                format!("{} (overdue)", r.state)
            } else {
                r.state.to_string()
            };
            vec![
                short_id(&r.vwire),
                state,
                r.service.clone(),
                r.client.clone(),
                r.endpoint.clone().unwrap_or_else(|| "-".into()),
                r.mechanism.clone().unwrap_or_else(|| "-".into()),
                address_pair(&r.src_ip_addrs, &r.dst_ip_addrs),
                r.ended_at.clone().unwrap_or_else(|| r.deadline.clone()),
            ]
        })
        .collect();
    table::print(
        &[
            "VWIRE",
            "STATE",
            "SERVICE",
            "CLIENT",
            "ENDPOINT",
            "MECH",
            "ADDRESSES",
            "DEADLINE/ENDED",
        ],
        &table_rows,
    )?;
    crate::output::note(&format!(
        "{} vWire(s) at position {position} ({})",
        rows.len(),
        format_timestamp(moment)
    ));
    Ok(())
}

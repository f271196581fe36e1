//! `nsm show VWIRE`: one vWire's whole story — each event with its time, the gap since the
//! one before, what it says and what it changed in the vWire's state.

use chrono::{DateTime, Utc};
use clap::Args;
use nsm_domain::vwire::{VWire, VWireEvent, VWireId};
use nsm_log::store::format_timestamp;
use serde::Serialize;

use super::describe::{changes, describe};
use super::filter::resolve_vwire;
use super::vwires::VWireRow;
use super::{LogArgs, table};
use nsm_log::read::LogReader;

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    log: LogArgs,
    /// The vWire: its id, or the first characters of it as tables show them.
    vwire: String,
}

#[derive(Debug, Serialize)]
struct Story {
    vwire: VWireRow,
    /// The folded state after the last event, as the runtime holds it.
    state: Option<VWire>,
    events: Vec<Step>,
}

#[derive(Debug, Serialize)]
struct Step {
    position: u64,
    version: u64,
    recorded_at: String,
    /// Time since the previous event of this vWire, in milliseconds.
    gap_ms: Option<i64>,
    event_type: String,
    summary: String,
    changed: String,
    correlation_id: Option<String>,
    payload: serde_json::Value,
}

pub async fn run(args: ShowArgs) -> anyhow::Result<()> {
    let log = LogReader::open(&args.log.db).await?;
    let stream = resolve_vwire(&log, &args.vwire)?;
    let id = VWireId::from_stream(&stream)
        .ok_or_else(|| anyhow::anyhow!("{stream} is not a vWire stream"))?;
    let events = log.read_stream(&stream, log.head()?)?;
    let mut state: Option<VWire> = None;
    let mut previous: Option<DateTime<Utc>> = None;
    let mut steps = Vec::with_capacity(events.len());
    for event in &events {
        let before = state.as_ref().map(serde_json::to_value).transpose()?;
        let changed = match VWireEvent::decode(event) {
            Ok(decoded) => match VWire::evolve(state.clone(), id, &decoded) {
                Ok(next) => {
                    let after = serde_json::to_value(&next)?;
                    state = Some(next);
                    changes(before.as_ref(), &after)
                }
                Err(e) => format!("does not fold: {e}"),
            },
            Err(e) => format!("does not decode: {e}"),
        };
        steps.push(Step {
            position: event.position.0,
            version: event.version,
            recorded_at: format_timestamp(event.recorded_at),
            gap_ms: previous.map(|p| (event.recorded_at - p).num_milliseconds()),
            event_type: event.event_type.clone(),
            summary: describe(event),
            changed,
            correlation_id: event.correlation_id.clone(),
            payload: serde_json::from_str(&event.payload)
                .unwrap_or_else(|_| serde_json::Value::String(event.payload.clone())),
        });
        previous = Some(event.recorded_at);
    }
    let Some(current) = &state else {
        anyhow::bail!("vWire {id} has events but none folds into a state; run nsm verify");
    };
    let row = VWireRow::new(current, Utc::now());
    if args.log.json {
        return crate::output::print_json_line(&Story {
            vwire: row,
            state,
            events: steps,
        });
    }
    print_story(&row, &steps)
}

fn print_story(row: &VWireRow, steps: &[Step]) -> anyhow::Result<()> {
    let mut facts = vec![
        vec!["vWire".into(), row.vwire.clone()],
        vec![
            "state".into(),
            if row.overdue {
                format!("{} (overdue)", row.state)
            } else {
                row.state.to_string()
            },
        ],
        vec!["service".into(), row.service.clone()],
        vec!["client".into(), row.client.clone()],
        vec![
            "endpoint".into(),
            row.endpoint.clone().unwrap_or_else(|| "-".into()),
        ],
        vec![
            "mechanism".into(),
            row.mechanism.clone().unwrap_or_else(|| "-".into()),
        ],
        vec![
            "addresses".into(),
            super::describe::address_pair(&row.src_ip_addrs, &row.dst_ip_addrs),
        ],
        vec!["requested".into(), row.requested_at.clone()],
        vec!["deadline".into(), row.deadline.clone()],
    ];
    if let Some(ending) = &row.ending {
        facts.push(vec![
            "ended".into(),
            format!("{} — {ending}", row.ended_at.clone().unwrap_or_default()),
        ]);
    }
    for fact in &mut facts {
        fact[0].push(':');
    }
    let mut out = std::io::stdout().lock();
    table::write_rows(&mut out, &facts)?;
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                s.position.to_string(),
                s.recorded_at.clone(),
                s.gap_ms.map_or_else(|| "-".into(), gap),
                s.event_type.clone(),
                s.summary.clone(),
                s.changed.clone(),
            ]
        })
        .collect();
    std::io::Write::write_all(&mut out, b"\n")?;
    table::write(
        &mut out,
        &[
            "POSITION",
            "RECORDED_AT",
            "GAP",
            "EVENT",
            "SUMMARY",
            "CHANGED",
        ],
        &rows,
    )?;
    Ok(())
}

/// A gap for people: `+850ms`, `+12.4s`, `+3m05s`, `+2h10m`.
fn gap(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("+{ms}ms"),
        1_000..60_000 => format!("+{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("+{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("+{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gaps_read_at_a_glance() {
        assert_eq!(super::gap(850), "+850ms");
        assert_eq!(super::gap(12_400), "+12.4s");
        assert_eq!(super::gap(185_000), "+3m05s");
        assert_eq!(super::gap(7_800_000), "+2h10m");
    }
}

//! Step "timelines": each vWire's events as the node recorded them, read from its event log
//! read-only (the way any operator tool may read it while the node runs), one line each:
//! position, `recorded_at` (UTC), `event_type` and a summary of the payload.
//!
//! The summaries say what a newcomer should notice: the service and the client of a
//! `Requested`, the endpoint and the addresses of an `Established`, what the data plane did
//! (`DataplanePlumbed` / `DataplaneUnplumbed`: how many operations, the first two of them),
//! the new deadline of a `Refreshed`, and who closed a vWire.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use nsm_domain::vwire::{ClosedBy, DataplaneWork, VWireEvent, VWireId};
use nsm_log::store::{EventStore as _, OpenOptions, RecordedEvent, SqliteStore};

use super::clients::VWire;
use super::say;

/// Operations of a data-plane event shown under it.
const SHOWN_OPERATIONS: usize = 2;
/// The width of the event-type column.
const TYPE_WIDTH: usize = 18;

/// How many events of each vWire's timeline were printed already.
pub(super) type Shown = HashMap<VWireId, usize>;

/// Prints the timeline of each of `vwires` from the log at `db`: in full the first time,
/// then only the events `shown` does not count yet.
pub(super) async fn print(db: &Path, vwires: &[VWire], shown: &mut Shown) -> anyhow::Result<()> {
    let store = SqliteStore::open_read_only(db, OpenOptions::default())
        .await
        .with_context(|| format!("cannot open the node's event log {}", db.display()))?;
    let mut timelines = Vec::new();
    for vwire in vwires {
        match store.read_stream(&vwire.id.stream(), 1).await {
            Ok(events) => timelines.push(events),
            Err(e) => {
                store.close().await;
                return Err(e).context("cannot read the node's event log");
            }
        }
    }
    store.close().await;
    for (vwire, events) in vwires.iter().zip(timelines) {
        let before = shown.get(&vwire.id).copied().unwrap_or(0).min(events.len());
        say::detail(1, heading(vwire, &events, before));
        for event in &events[before..] {
            let (head, details) = describe(event);
            say::detail(2, head);
            for detail in details {
                say::bullet(3, &detail);
            }
        }
        shown.insert(vwire.id, events.len());
    }
    Ok(())
}

/// `demo-nsc-1's vWire <id>:`, saying which events were shown before.
fn heading(vwire: &VWire, events: &[RecordedEvent], before: usize) -> String {
    let intro = format!("{}'s vWire {}", vwire.client, vwire.id);
    match (events.first(), events.get(before.wrapping_sub(1))) {
        (Some(first), Some(last)) if before == events.len() => {
            format!(
                "{intro}: #{} to #{} as above, nothing since",
                first.position, last.position
            )
        }
        (Some(first), Some(last)) => {
            format!(
                "{intro}: #{} to #{} as above, then",
                first.position, last.position
            )
        }
        _ => format!("{intro}:"),
    }
}

/// An event's line, and the lines of detail under it.
fn describe(event: &RecordedEvent) -> (String, Vec<String>) {
    let (summary, details) = match VWireEvent::decode(event) {
        Ok(decoded) => summarise(&decoded),
        Err(e) => (format!("(cannot decode it: {e})"), Vec::new()),
    };
    let head = format!(
        "{:<5}{}  {:<TYPE_WIDTH$}  {summary}",
        format!("#{}", event.position),
        event.recorded_at.format("%H:%M:%S%.3f"),
        event.event_type,
    );
    (head, details)
}

/// A one-line summary of an event, and detail lines (the client's identity, data-plane
/// operations).
fn summarise(event: &VWireEvent) -> (String, Vec<String>) {
    let clock = |t: &chrono::DateTime<chrono::Utc>| t.format("%H:%M:%S").to_string();
    match event {
        VWireEvent::Requested(e) => {
            let client = e
                .path
                .segments
                .first()
                .map_or(e.client.as_str(), |s| &s.name);
            (
                format!("{client} asked for {}", e.service),
                vec![format!("identity from its certificate: {}", e.client)],
            )
        }
        VWireEvent::Established(e) => (
            format!(
                "by {}: client {}, endpoint {}",
                e.endpoint.name,
                list(&e.context.ip.src_ip_addrs),
                list(&e.context.ip.dst_ip_addrs)
            ),
            Vec::new(),
        ),
        VWireEvent::Refreshed(e) => (
            format!("new deadline {} UTC", clock(&e.expires_at)),
            Vec::new(),
        ),
        VWireEvent::Expired(e) => (
            format!(
                "deadline {} passed{}",
                clock(&e.deadline),
                if e.during_downtime {
                    " while the node was down"
                } else {
                    ""
                }
            ),
            Vec::new(),
        ),
        VWireEvent::Closed(e) => (closed(e.by, &e.reason), Vec::new()),
        VWireEvent::Failed(e) => (
            format!("{:?} stage, {:?}: {}", e.stage, e.code, e.reason).to_lowercase(),
            Vec::new(),
        ),
        VWireEvent::Healed(e) => (
            format!("{} repair(s)", e.repairs.len()),
            e.repairs.iter().take(SHOWN_OPERATIONS).cloned().collect(),
        ),
        VWireEvent::ProbeFailed(e) => (format!("{}: {}", e.probe, e.reason), Vec::new()),
        VWireEvent::DataplanePlumbed(e) => work(&e.work),
        VWireEvent::DataplaneUnplumbed(e) => work(&e.work),
    }
}

fn closed(by: ClosedBy, reason: &str) -> String {
    let by = match by {
        ClosedBy::Client => "the client",
        ClosedBy::Endpoint => "the endpoint",
        ClosedBy::Operator => "an operator",
        ClosedBy::Node => "the node",
    };
    // A reason that only repeats who closed it ("closed by the client") says nothing more.
    if reason.is_empty() || reason.eq_ignore_ascii_case(&format!("closed by {by}")) {
        format!("by {by}")
    } else {
        format!("by {by}: {reason}")
    }
}

/// `kernel: 5 operations`, with the first ones as detail lines.
fn work(work: &DataplaneWork) -> (String, Vec<String>) {
    let count = work.operations.len();
    let dry = if work.dry_run {
        " (dry run: nothing done)"
    } else {
        ""
    };
    let noun = if count == 1 {
        "operation"
    } else {
        "operations"
    };
    let mut more: Vec<String> = work
        .operations
        .iter()
        .take(SHOWN_OPERATIONS)
        .cloned()
        .collect();
    if count > SHOWN_OPERATIONS {
        more.push(format!("and {} more", count - SHOWN_OPERATIONS));
    }
    (format!("{}: {count} {noun}{dry}", work.dataplane), more)
}

fn list(addresses: &[String]) -> String {
    match addresses {
        [] => "-".to_owned(),
        addresses => addresses.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_plane_work_shows_its_first_operations_and_how_many_more() {
        let work_of = |n: usize| DataplaneWork {
            dataplane: "kernel".into(),
            dry_run: false,
            operations: (1..=n).map(|i| format!("op {i}")).collect(),
        };
        let (head, more) = work(&work_of(4));
        assert_eq!(head, "kernel: 4 operations");
        assert_eq!(more, ["op 1", "op 2", "and 2 more"]);
        let (head, more) = work(&work_of(1));
        assert_eq!(head, "kernel: 1 operation");
        assert_eq!(more, ["op 1"]);
    }

    #[test]
    fn a_close_says_who_closed_and_why() {
        assert_eq!(closed(ClosedBy::Client, ""), "by the client");
        assert_eq!(
            closed(ClosedBy::Client, "closed by the client"),
            "by the client"
        );
        assert_eq!(
            closed(ClosedBy::Node, "namespace gone"),
            "by the node: namespace gone"
        );
    }
}

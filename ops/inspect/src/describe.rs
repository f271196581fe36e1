//! One line, for people, of what an event says: the summary column of `nsm events`, the
//! "what changed" column of `nsm show`, the tooltips of `nsm timeline`.

use chrono::{DateTime, Utc};
use nsm_domain::dataplane::DataplaneEvent;
use nsm_domain::registry::{EndpointEvent, ServiceEvent};
use nsm_domain::vwire::{ConnectionContext, Ending, Mechanism, VWire, VWireEvent};
use nsm_log::store::RecordedEvent;

/// A short, readable time: `10:04:05.123` (UTC); the date is in the JSON and the full column.
pub(crate) fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S%.3f").to_string()
}

/// A vWire id as tables show it: its first 8 hex digits (`nsm show` takes them back).
pub(crate) fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// The stream column: vWires by their short id, other streams as they are named.
pub(crate) fn short_stream(stream: &str) -> String {
    match stream.strip_prefix(nsm_domain::vwire::VWIRE_STREAM_PREFIX) {
        Some(id) => short_id(id),
        None => stream.to_owned(),
    }
}

pub(crate) fn mechanism(m: &Mechanism) -> String {
    m.mechanism_type.clone()
}

/// `172.16.0.1/32 → 172.16.0.2/32`, or "-" with no addresses.
pub(crate) fn addresses(context: &ConnectionContext) -> String {
    address_pair(&context.ip.src_ip_addrs, &context.ip.dst_ip_addrs)
}

pub(crate) fn address_pair(src: &[String], dst: &[String]) -> String {
    if src.is_empty() && dst.is_empty() {
        return "-".into();
    }
    format!("{} → {}", src.join(","), dst.join(","))
}

/// What a recorded event says, in one line; the reason when it does not decode.
pub(crate) fn describe(event: &RecordedEvent) -> String {
    if let Ok(e) = VWireEvent::decode(event) {
        return describe_vwire(&e);
    }
    if let Ok(e) = ServiceEvent::decode(event) {
        return match e {
            ServiceEvent::Registered(r) => format!("service {} registered", r.service.name),
            ServiceEvent::Unregistered(_) => "service unregistered".into(),
        };
    }
    if let Ok(e) = EndpointEvent::decode(event) {
        return match e {
            EndpointEvent::Registered(r) => format!(
                "endpoint {} at {} for {} until {}",
                r.endpoint.name.as_str(),
                r.endpoint.url.as_str(),
                r.endpoint
                    .services
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                clock(r.expires_at)
            ),
            EndpointEvent::Refreshed(r) => format!("refreshed until {}", clock(r.expires_at)),
            EndpointEvent::Unregistered(_) => "unregistered".into(),
            EndpointEvent::Expired(r) => format!("expired (deadline {})", clock(r.deadline)),
        };
    }
    if let Ok(e) = DataplaneEvent::decode(event) {
        return match e {
            DataplaneEvent::OrphansRemoved(o) => format!(
                "{} removed {} object(s) no live vWire owns: {}",
                o.dataplane,
                o.objects.len(),
                o.objects
                    .iter()
                    .map(|o| o.object.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            DataplaneEvent::Reconciled(r) => format!(
                "{} reconciled {} live vWire(s): {} whole, {} healed, {} failed, {} orphan(s) removed, {} ms",
                r.dataplane, r.checked, r.whole, r.healed, r.failed, r.orphans_removed, r.took_ms
            ),
        };
    }
    match VWireEvent::decode(event) {
        Err(e)
            if event
                .stream
                .as_str()
                .starts_with(nsm_domain::vwire::VWIRE_STREAM_PREFIX) =>
        {
            format!("undecodable: {e}")
        }
        _ => format!("({} v{})", event.event_type, event.schema_version),
    }
}

pub(crate) fn describe_vwire(event: &VWireEvent) -> String {
    match event {
        VWireEvent::Requested(r) => format!(
            "{} for {} until {}",
            r.service.as_str(),
            r.client.as_str(),
            clock(r.expires_at)
        ),
        VWireEvent::Established(e) => format!(
            "to {} by {} {} until {}",
            e.endpoint.name,
            mechanism(&e.mechanism),
            addresses(&e.context),
            clock(e.expires_at)
        ),
        VWireEvent::Refreshed(r) => format!("until {}", clock(r.expires_at)),
        VWireEvent::Expired(e) => format!(
            "deadline {} passed{}",
            clock(e.deadline),
            if e.during_downtime {
                " while the node was down"
            } else {
                ""
            }
        ),
        VWireEvent::Closed(c) if c.reason.is_empty() => format!("by {:?}", c.by).to_lowercase(),
        VWireEvent::Closed(c) => {
            format!("by {}: {}", format!("{:?}", c.by).to_lowercase(), c.reason)
        }
        VWireEvent::Failed(f) => format!(
            "{} ({}): {}",
            serde_name(&f.stage),
            serde_name(&f.code),
            f.reason
        ),
        VWireEvent::Healed(h) => h.repairs.join("; "),
        VWireEvent::ProbeFailed(p) => format!("{}: {}", p.probe, p.reason),
        VWireEvent::DataplanePlumbed(p) => format!(
            "{}{} {} ↔ {}: {} operation(s)",
            p.work.dataplane,
            if p.work.dry_run { " (dry run)" } else { "" },
            mechanism(&p.client_mechanism),
            mechanism(&p.endpoint_mechanism),
            p.work.operations.len()
        ),
        VWireEvent::DataplaneUnplumbed(u) => {
            format!(
                "{}: {} operation(s)",
                u.work.dataplane,
                u.work.operations.len()
            )
        }
    }
}

/// How a vWire ended, in one line.
pub(crate) fn ending(vwire: &VWire) -> String {
    match &vwire.ending {
        None => String::new(),
        Some(Ending::Closed { by, reason }) => format!("closed by {}: {reason}", serde_name(by)),
        Some(Ending::Expired {
            deadline,
            during_downtime,
        }) => format!(
            "expired at deadline {}{}",
            clock(*deadline),
            if *during_downtime {
                " (node was down)"
            } else {
                ""
            }
        ),
        Some(Ending::Failed {
            stage,
            code,
            reason,
        }) => {
            format!(
                "failed in {} ({}): {reason}",
                serde_name(stage),
                serde_name(code)
            )
        }
    }
}

/// The name serde gives a unit enum value (`snake_case`, as in the log's JSON).
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

/// Field by field, what `after` changed relative to `before` (both as JSON objects), in one
/// line: `status requested→established, expires_at 10:00:00→10:10:00`.
pub(crate) fn changes(before: Option<&serde_json::Value>, after: &serde_json::Value) -> String {
    const SHOWN: &[&str] = &[
        "status",
        "expires_at",
        "refreshes",
        "heals",
        "probe_failures",
        "plumbing",
        "connection",
        "path",
        "ending",
    ];
    let Some(before) = before else {
        return "new vWire".into();
    };
    let mut parts = Vec::new();
    for key in SHOWN {
        let (old, new) = (&before[*key], &after[*key]);
        if old == new {
            continue;
        }
        match (old, new) {
            (serde_json::Value::Object(_), _) | (_, serde_json::Value::Object(_)) => {
                parts.push(format!("{key} changed"));
            }
            _ => parts.push(format!("{key} {}→{}", compact(old), compact(new))),
        }
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn compact(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::String(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(at) => clock(at.with_timezone(&Utc)),
            Err(_) => s.clone(),
        },
        other => other.to_string(),
    }
}

//! Printing a connection: one line of JSON for programs, an aligned table for people.
//!
//! The JSON object (one line, flushed at once so a reader can act on it while the command
//! keeps running):
//!
//! ```json
//! {"id":"…","network_service":"icmp","network_service_endpoint_name":"nse-1","state":"UP",
//!  "mechanism":{"cls":"LOCAL","type":"KERNEL","parameters":{"name":"nsm-1"}},
//!  "labels":{},"context":{"src_ip_addrs":["169.254.0.2/32"],"dst_ip_addrs":["169.254.0.1/32"],
//!  "src_routes":[{"prefix":"169.254.0.1/32","nextHop":""}],"dst_routes":[…],"mtu":0},
//!  "path":{"index":0,"segments":[{"name":"nsc-a","id":"…","token":"","expires":"2025-…Z"}]}}
//! ```

use std::io::Write as _;

use chrono::SecondsFormat;
use nsm_proto::connection::{Connection, State};
use nsm_proto::connectioncontext::Route;
use nsm_proto::convert::time_from_wire;
use serde_json::{Value, json};

pub(super) fn print(connection: &Connection, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", to_json(connection))?;
    } else {
        for (label, value) in table(connection) {
            writeln!(out, "{label:<12} {value}")?;
        }
    }
    out.flush()?;
    Ok(())
}

pub(super) fn to_json(connection: &Connection) -> Value {
    let mechanism = connection.mechanism.clone().unwrap_or_default();
    let context = connection.context.clone().unwrap_or_default();
    let ip = context.ip_context.unwrap_or_default();
    let path = connection.path.clone().unwrap_or_default();
    let segments: Vec<Value> = path
        .path_segments
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "id": s.id,
                "token": s.token,
                "expires": s.expires.as_ref().map(rfc3339),
            })
        })
        .collect();
    json!({
        "id": connection.id,
        "network_service": connection.network_service,
        "network_service_endpoint_name": connection.network_service_endpoint_name,
        "state": state(connection),
        "mechanism": {
            "cls": mechanism.cls,
            "type": mechanism.r#type,
            "parameters": mechanism.parameters,
        },
        "labels": connection.labels,
        "context": {
            "src_ip_addrs": ip.src_ip_addrs,
            "dst_ip_addrs": ip.dst_ip_addrs,
            "src_routes": routes_json(&ip.src_routes),
            "dst_routes": routes_json(&ip.dst_routes),
            "mtu": context.mtu,
        },
        "path": {"index": path.index, "segments": segments},
    })
}

fn table(connection: &Connection) -> Vec<(&'static str, String)> {
    let mechanism = connection.mechanism.clone().unwrap_or_default();
    let ip = connection
        .context
        .clone()
        .and_then(|c| c.ip_context)
        .unwrap_or_default();
    let mut parameters: Vec<String> = mechanism
        .parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parameters.sort();
    let mut rows = vec![
        ("id", connection.id.clone()),
        ("service", connection.network_service.clone()),
        ("endpoint", connection.network_service_endpoint_name.clone()),
        ("state", state(connection)),
        (
            "mechanism",
            format!(
                "{} {} {}",
                mechanism.cls,
                mechanism.r#type,
                parameters.join(" ")
            ),
        ),
        ("src", ip.src_ip_addrs.join(", ")),
        ("dst", ip.dst_ip_addrs.join(", ")),
        ("src routes", routes_text(&ip.src_routes)),
        ("dst routes", routes_text(&ip.dst_routes)),
    ];
    let path = connection.path.clone().unwrap_or_default();
    for (i, segment) in path.path_segments.iter().enumerate() {
        let marker = if i == path.index as usize { "*" } else { " " };
        let expires = segment
            .expires
            .as_ref()
            .map_or_else(|| "-".to_owned(), rfc3339);
        let label = if i == 0 { "path" } else { "" };
        rows.push((
            label,
            format!(
                "{marker}{i} {} {} expires {expires}",
                segment.name, segment.id
            ),
        ));
    }
    rows
}

fn state(connection: &Connection) -> String {
    State::try_from(connection.state).map_or_else(
        |_| connection.state.to_string(),
        |s| s.as_str_name().to_owned(),
    )
}

fn routes_json(routes: &[Route]) -> Vec<Value> {
    routes
        .iter()
        .map(|r| json!({"prefix": r.prefix, "nextHop": r.next_hop}))
        .collect()
}

fn routes_text(routes: &[Route]) -> String {
    let texts: Vec<String> = routes
        .iter()
        .map(|r| match r.next_hop.as_str() {
            "" => r.prefix.clone(),
            hop => format!("{} via {hop}", r.prefix),
        })
        .collect();
    texts.join(", ")
}

fn rfc3339(stamp: &prost_types::Timestamp) -> String {
    time_from_wire("expires", stamp).map_or_else(
        |_| format!("{}s", stamp.seconds),
        |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

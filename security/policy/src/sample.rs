//! Well-formed inputs for benchmarks, demos and tests: a 3-hop path (client `nsc`, node
//! `nsmgr`, endpoint `nse`) in which every token is present, decoded, unexpired, chained and
//! signed. `nsm bench authz` times [`crate::Policies::authorize`] on [`three_hop_request`];
//! tests start from these and break one fact at a time.

use crate::input::{Call, Input, Path, Segment, Side, TokenFacts};

/// Lifetime of the sample tokens: NSM's default maximum token lifetime, 10 minutes.
pub const TOKEN_LIFETIME_SECS: i64 = 600;

/// The sample trust domain's SPIFFE ID for a workload called `name`.
pub fn spiffe_id(name: &str) -> String {
    format!("spiffe://example.org/ns/default/{name}")
}

/// The sample Network Service.
pub const SERVICE: &str = "secure-intranet";

const HOPS: [&str; 3] = ["nsc", "nsmgr", "nse"];

/// The Request as the endpoint (`nse`, path index 2) authorizes it, called by `nsmgr`, with
/// the endpoint's own segment already signed.
pub fn three_hop_request(now: i64) -> Input {
    let last = HOPS.len() - 1;
    let mut path = three_hop_path(now);
    path.index = index(last);
    if let Some(previous) = path.segments.get_mut(last - 1) {
        previous.token.signed_by_caller = true;
    }
    Input {
        call: Call::Request,
        side: Side::Server,
        caller: Some(spiffe_id(HOPS[last - 1])),
        server: None,
        path,
        now,
        service: Some(SERVICE.to_owned()),
        resource: None,
        monitor: None,
    }
}

/// The reply to the client's Request as the client (`nsc`, path index 0) authorizes it, from
/// the server `nsmgr`.
pub fn three_hop_reply(now: i64) -> Input {
    let mut path = three_hop_path(now);
    path.index = 0;
    if let Some(next) = path.segments.get_mut(1) {
        next.token.signed_by_server = true;
    }
    Input {
        call: Call::Request,
        side: Side::Client,
        caller: None,
        server: Some(spiffe_id(HOPS[1])),
        path,
        now,
        service: Some(SERVICE.to_owned()),
        resource: None,
        monitor: None,
    }
}

/// A data document whose allow list lets the sample client (and only it) attach to the
/// sample service, and the sample node attach to anything.
pub fn allow_list() -> serde_json::Value {
    serde_json::json!({
        "services": {
            SERVICE: [spiffe_id("nsc"), spiffe_id("nsmgr")],
            "*": [spiffe_id("nsmgr")],
        }
    })
}

/// Segments for every hop, each token addressed to the next hop (the last to itself, as a
/// token is always addressed to someone), with no signature facts set.
fn three_hop_path(now: i64) -> Path {
    let segments = HOPS
        .iter()
        .enumerate()
        .map(|(position, hop)| {
            let audience = HOPS.get(position + 1).unwrap_or(hop);
            Segment {
                name: (*hop).to_owned(),
                id: format!("{hop}-connection"),
                token: TokenFacts {
                    present: true,
                    decoded: true,
                    sub: Some(spiffe_id(hop)),
                    aud: vec![spiffe_id(audience)],
                    exp: Some(now + TOKEN_LIFETIME_SECS),
                    signed_by_caller: false,
                    signed_by_server: false,
                },
            }
        })
        .collect();
    Path { index: 0, segments }
}

fn index(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}

//! A log written by a real node for the operator-command tests: several vWires through every
//! lifecycle path, a node restart in the middle, and an expiry during the downtime. Nothing
//! here is hand-made: the node writes every event, the tests only drive it over gRPC.
//!
//! | vWire | what happens | its events |
//! |---|---|---|
//! | `closed` | requested, refreshed, closed by the client (with a `traceparent`) | Requested, DataplanePlumbed, Established, Refreshed, DataplaneUnplumbed, Closed |
//! | `failed` | the endpoint refuses it | Requested, Failed |
//! | `expired` | not refreshed; its 2 s deadline passes while the node runs | Requested, DataplanePlumbed, Established, DataplaneUnplumbed, Expired |
//! | `downtime` | 3 s deadline; the node is SIGKILLed and restarted after it passed | … Established, (restart), DataplaneUnplumbed, Expired (during_downtime) |
//! | `survivor` | long-lived; refreshed after the restart | … Established, Refreshed |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nsm_log::store::{EventStore, OpenOptions, SqliteStore, StreamId};
use nsm_proto::connection::Connection;
use nsm_proto::networkservice::NetworkServiceRequest;
use tonic::Request;

use crate::fake_endpoint::FakeEndpoint;
use crate::mesh::{Node, first_request, refresh_request, register, send_request};

/// The trace id the `closed` vWire's Close carries (W3C `traceparent`).
pub const CLOSE_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0736aa";

/// The fixture: the log (the node is stopped), and which vWire is which.
#[derive(Debug)]
pub struct Fixture {
    pub db: PathBuf,
    /// `closed`, `failed`, `expired`, `downtime`, `survivor` → vWire id.
    pub vwires: BTreeMap<&'static str, String>,
    /// The node's name (its data-plane stream is `dataplane-<node>`).
    pub node: String,
}

/// Writes the fixture log in `dir` (about 8 s: two deadlines have to pass).
pub async fn incident_log(dir: &Path) -> Fixture {
    let mut node = Node::start(dir, &[]).await;
    let endpoint = FakeEndpoint::start(dir, "nse-1").await;
    register(
        &node,
        "icmp",
        "nse-1",
        &endpoint.url(),
        &[],
        chrono::Duration::hours(1),
    )
    .await;
    let mut vwires = BTreeMap::new();

    let (closed, id) = request(&node, "nsc-closed", Duration::from_secs(600)).await;
    vwires.insert("closed", id);
    let closed = refresh(&node, &closed).await;

    endpoint.refuse(Some(tonic::Status::unavailable("nse-1 is full")));
    let refused = node
        .network_service()
        .request(first_request("icmp", "nsc-failed", &[]))
        .await;
    assert!(refused.is_err(), "the endpoint was told to refuse");
    endpoint.refuse(None);
    vwires.insert("failed", only_new_vwire(&node, &vwires).await);

    let (_, id) = request(&node, "nsc-expired", Duration::from_secs(2)).await;
    vwires.insert("expired", id);
    let (_, id) = request(&node, "nsc-downtime", Duration::from_secs(3)).await;
    vwires.insert("downtime", id);
    let (survivor, id) = request(&node, "nsc-survivor", Duration::from_secs(600)).await;
    vwires.insert("survivor", id);

    let mut close = Request::new(closed);
    close.metadata_mut().insert(
        "traceparent",
        format!("00-{CLOSE_TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    node.network_service().close(close).await.expect("close");

    // `expired` ends while the node runs; then the node dies before `downtime`'s deadline
    // and comes back after it.
    wait_for_last_event(&node.db, &vwires["expired"], "Expired").await;
    node.sigkill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    node.start_again().await;
    wait_for_last_event(&node.db, &vwires["downtime"], "Expired").await;
    refresh(&node, &survivor).await;
    node.stop();
    Fixture {
        db: node.db.clone(),
        vwires,
        node: node.name.clone(),
    }
}

/// Requests `icmp` for `client` with a deadline `lifetime` away: the connection and vWire id.
async fn request(node: &Node, client: &str, lifetime: Duration) -> (Connection, String) {
    send_request(
        node,
        with_lifetime(first_request("icmp", client, &[]), lifetime),
    )
    .await
}

async fn refresh(node: &Node, connection: &Connection) -> Connection {
    node.network_service()
        .request(refresh_request(connection))
        .await
        .expect("refresh")
        .into_inner()
}

fn with_lifetime(mut request: NetworkServiceRequest, lifetime: Duration) -> NetworkServiceRequest {
    let expires = chrono::Utc::now() + chrono::Duration::from_std(lifetime).unwrap();
    let segment = &mut request
        .connection
        .as_mut()
        .unwrap()
        .path
        .as_mut()
        .unwrap()
        .path_segments[0];
    segment.expires = Some(prost_types::Timestamp {
        seconds: expires.timestamp(),
        nanos: expires.timestamp_subsec_nanos() as i32,
    });
    request
}

/// The one vWire in the log that `known` does not hold (one the test could not name from a
/// reply, because the request was refused).
async fn only_new_vwire(node: &Node, known: &BTreeMap<&'static str, String>) -> String {
    let streams = crate::programs::vwire_streams(&node.db).await;
    let new: Vec<String> = streams
        .keys()
        .map(|s| s.trim_start_matches("vwire-").to_owned())
        .filter(|id| !known.values().any(|k| k == id))
        .collect();
    assert_eq!(new.len(), 1, "one refused vWire expected: {streams:?}");
    new.into_iter().next().unwrap()
}

async fn wait_for_last_event(db: &Path, vwire: &str, event_type: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stream = format!("vwire-{vwire}");
    loop {
        // The node is appending: read only this stream (a whole-log audit wants a quiet log).
        let store = SqliteStore::open_read_only(db, OpenOptions::default())
            .await
            .expect("open the log read-only");
        let types: Vec<String> = store
            .read_stream(&StreamId::new(stream.clone()).expect("a stream id"), 0)
            .await
            .expect("read the vWire's stream")
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        store.close().await;
        if types.last().map(String::as_str) == Some(event_type) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{vwire} never reached {event_type}: {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

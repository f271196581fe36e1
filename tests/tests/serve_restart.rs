//! The restart promise of `nsm serve`: a node killed with SIGKILL and started again on the
//! same log has every established vWire back with its original deadline, has expired (and
//! told the endpoint of) those whose deadline passed while it was down, and still has its
//! endpoint registrations.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use nsm_log::store::{EventStore, OpenOptions, SqliteStore};
use nsm_proto::connection::{ConnectionEventType, MonitorScopeSelector, State};
use nsm_proto::registry::{NetworkServiceEndpoint, NetworkServiceEndpointQuery};
use nsm_tests::mesh::{Node, first_request, node_with_endpoint};

const LONG_LIVED: usize = 900;
const SHORT_LIVED: usize = 100;

/// Requests `count` vWires, 32 at a time; each client's own segment expires after `lifetime`.
/// Returns vWire id → the deadline the node gave it (its path segment's `expires`).
async fn establish(
    node: &Node,
    count: usize,
    lifetime: chrono::Duration,
) -> BTreeMap<String, prost_types::Timestamp> {
    let requests = (0..count).map(|i| {
        let mut client = node.network_service();
        let mut request = first_request("icmp", &format!("nsc-{i}"), &[]);
        let expires = chrono::Utc::now() + lifetime;
        request
            .connection
            .as_mut()
            .unwrap()
            .path
            .as_mut()
            .unwrap()
            .path_segments[0]
            .expires = Some(prost_types::Timestamp {
            seconds: expires.timestamp(),
            nanos: 0,
        });
        async move { client.request(request).await.expect("request").into_inner() }
    });
    futures::stream::iter(requests)
        .buffer_unordered(32)
        .map(|connection| {
            let own = connection.path.unwrap().path_segments[1].clone();
            (
                own.id,
                own.expires
                    .expect("the node's segment carries the deadline"),
            )
        })
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_comes_back_with_every_vwire_and_expires_the_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, endpoint) = node_with_endpoint(dir.path(), &[]).await;

    let long = establish(&node, LONG_LIVED, chrono::Duration::minutes(10)).await;
    let short = establish(&node, SHORT_LIVED, chrono::Duration::seconds(5)).await;
    assert_eq!((long.len(), short.len()), (LONG_LIVED, SHORT_LIVED));
    node.sigkill();
    assert!(
        endpoint.seen().closes.is_empty(),
        "nothing was closed before the kill"
    );

    // Down for longer than the short lifetime.
    tokio::time::sleep(Duration::from_secs(6)).await;
    node.restart().await;

    // Every long-lived vWire is established again, with the deadline it had.
    let mut monitor = node
        .monitor()
        .monitor_connections(MonitorScopeSelector::default())
        .await
        .unwrap()
        .into_inner();
    let initial = monitor.next().await.unwrap().unwrap();
    assert_eq!(
        initial.r#type,
        ConnectionEventType::InitialStateTransfer as i32
    );
    let back: BTreeMap<String, prost_types::Timestamp> = initial
        .connections
        .values()
        .map(|c| {
            assert_eq!(c.state, State::Up as i32);
            let own = &c.path.as_ref().unwrap().path_segments[1];
            (own.id.clone(), own.expires.unwrap())
        })
        .collect();
    assert_eq!(
        back, long,
        "the established vWires and their deadlines survive the kill"
    );

    // The short-lived ones expired during the downtime, and their endpoint was told.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let told: BTreeSet<String> = endpoint.seen().closes.into_iter().map(|c| c.id).collect();
        if told.len() >= SHORT_LIVED {
            assert_eq!(
                told,
                short.keys().cloned().collect(),
                "exactly the overdue vWires were closed"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {SHORT_LIVED} endpoint closes",
            told.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The log says why: expired during the downtime.
    let log = SqliteStore::open_read_only(&node.db, OpenOptions::default())
        .await
        .unwrap();
    for id in short.keys() {
        let stream = format!("vwire-{id}").try_into().unwrap();
        let events = log.read_stream(&stream, 1).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!(last.event_type, "Expired");
        let payload: serde_json::Value = serde_json::from_str(&last.payload).unwrap();
        assert_eq!(payload["during_downtime"], true, "{id}: {payload}");
    }

    // The endpoint's registration survived too.
    let found: Vec<NetworkServiceEndpoint> = node
        .endpoints()
        .find(NetworkServiceEndpointQuery {
            network_service_endpoint: Some(NetworkServiceEndpoint {
                name: "nse-1".into(),
                ..Default::default()
            }),
            watch: false,
        })
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().network_service_endpoint.unwrap())
        .collect()
        .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].url, endpoint.url());
}

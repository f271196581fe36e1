//! The registry of `nsm serve` over the real binary: Register, Find (with `watch`),
//! Unregister and expiry as NSM's registry clients see them, and registrations that outlive
//! a SIGKILL.

use std::collections::BTreeSet;
use std::time::Duration;

use nsm_domain::registry::{EndpointEvent, EndpointExpired, EndpointName};
use nsm_log::store::{EventStore, OpenOptions, SqliteStore};
use nsm_proto::registry::{
    NetworkService, NetworkServiceEndpoint, NetworkServiceEndpointQuery,
    NetworkServiceEndpointResponse, NetworkServiceQuery,
};
use nsm_tests::mesh::Node;
use tokio_stream::StreamExt;
use tonic::Streaming;

fn after(duration: chrono::Duration) -> prost_types::Timestamp {
    let at = chrono::Utc::now() + duration;
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap(),
    }
}

fn endpoint(name: &str, url: &str, expires: prost_types::Timestamp) -> NetworkServiceEndpoint {
    NetworkServiceEndpoint {
        name: name.into(),
        network_service_names: vec!["icmp".into()],
        url: url.into(),
        expiration_time: Some(expires),
        ..Default::default()
    }
}

fn service(name: &str) -> NetworkService {
    NetworkService {
        name: name.into(),
        payload: "IP".into(),
        ..Default::default()
    }
}

/// A protobuf timestamp as the log keeps times (microseconds).
fn micros(at: prost_types::Timestamp) -> chrono::DateTime<chrono::Utc> {
    let at = chrono::DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap());
    chrono::SubsecRound::trunc_subsecs(at.unwrap(), 6)
}

/// The `EndpointExpired` the node recorded for endpoint `name`.
async fn endpoint_expiry(node: &Node, name: &str) -> EndpointExpired {
    let log = SqliteStore::open_read_only(&node.db, OpenOptions::default())
        .await
        .unwrap();
    let stream = EndpointName::new(name).unwrap().stream();
    let recorded = log.read_stream(&stream, 1).await.unwrap();
    log.close().await;
    recorded
        .iter()
        .find_map(|event| match EndpointEvent::decode(event).unwrap() {
            EndpointEvent::Expired(expired) => Some(expired),
            _ => None,
        })
        .expect("an EndpointExpired in the log")
}

/// The next change a watching endpoint Find sends: (name, url, deleted).
async fn next_change(
    watch: &mut Streaming<NetworkServiceEndpointResponse>,
) -> (String, String, bool) {
    let response = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a change within 10 s")
        .expect("the watch stays open")
        .expect("a change, not an error");
    let endpoint = response.network_service_endpoint.unwrap();
    (endpoint.name, endpoint.url, response.deleted)
}

/// The names a non-watching Find for endpoints named like `name` returns.
async fn endpoint_names(node: &Node, name: &str) -> BTreeSet<String> {
    let query = NetworkServiceEndpointQuery {
        network_service_endpoint: Some(NetworkServiceEndpoint {
            name: name.into(),
            ..Default::default()
        }),
        watch: false,
    };
    let found = node.endpoints().find(query).await.unwrap().into_inner();
    found
        .map(|r| r.unwrap().network_service_endpoint.unwrap().name)
        .collect()
        .await
}

/// The names a non-watching Find for services named like `name` returns.
async fn service_names(node: &Node, name: &str) -> BTreeSet<String> {
    let query = NetworkServiceQuery {
        network_service: Some(NetworkService {
            name: name.into(),
            ..Default::default()
        }),
        watch: false,
    };
    let found = node.services().find(query).await.unwrap().into_inner();
    found
        .map(|r| r.unwrap().network_service.unwrap().name)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_find_sees_registration_reregistration_unregistration_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    node.services().register(service("icmp")).await.unwrap();
    let query = NetworkServiceEndpointQuery {
        network_service_endpoint: Some(Default::default()),
        watch: true,
    };
    let mut watch = node.endpoints().find(query).await.unwrap().into_inner();

    let mut endpoints = node.endpoints();
    let minute = chrono::Duration::minutes(1);
    endpoints
        .register(endpoint("nse-a", "tcp://10.0.0.1:5001", after(minute)))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut watch).await,
        ("nse-a".into(), "tcp://10.0.0.1:5001".into(), false)
    );
    // A re-registration that moves the URL, and a refresh that only moves the deadline.
    endpoints
        .register(endpoint("nse-a", "tcp://10.0.0.2:5001", after(minute)))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut watch).await,
        ("nse-a".into(), "tcp://10.0.0.2:5001".into(), false)
    );
    let refreshed = endpoints
        .register(endpoint("nse-a", "tcp://10.0.0.2:5001", after(minute * 2)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next_change(&mut watch).await,
        ("nse-a".into(), "tcp://10.0.0.2:5001".into(), false)
    );
    endpoints.unregister(refreshed).await.unwrap();
    assert_eq!(
        next_change(&mut watch).await,
        ("nse-a".into(), "tcp://10.0.0.2:5001".into(), true)
    );

    // Two seconds to live, and no Unregister: the registry expires it by itself.
    let short = chrono::Duration::seconds(2);
    let deadline = after(short);
    endpoints
        .register(endpoint("nse-b", "tcp://10.0.0.3:5001", deadline))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut watch).await,
        ("nse-b".into(), "tcp://10.0.0.3:5001".into(), false)
    );
    assert_eq!(
        next_change(&mut watch).await,
        ("nse-b".into(), "tcp://10.0.0.3:5001".into(), true)
    );
    // Not expired early: the log's own record says when, against the deadline it was given
    // (no wall-clock window in the test, which a slow machine would stretch).
    let expired = endpoint_expiry(&node, "nse-b").await;
    assert_eq!(
        expired.deadline,
        micros(deadline),
        "the deadline registered"
    );
    assert!(expired.at >= expired.deadline, "expired early: {expired:?}");
    assert_eq!(endpoint_names(&node, "").await, BTreeSet::new());

    // The service registry watches the same way.
    let query = NetworkServiceQuery {
        network_service: Some(Default::default()),
        watch: true,
    };
    let mut services = node.services().find(query).await.unwrap().into_inner();
    let initial = services.next().await.unwrap().unwrap();
    assert_eq!(
        (initial.network_service.unwrap().name, initial.deleted),
        ("icmp".into(), false)
    );
    node.services().unregister(service("icmp")).await.unwrap();
    let gone = services.next().await.unwrap().unwrap();
    assert_eq!(
        (gone.network_service.unwrap().name, gone.deleted),
        ("icmp".into(), true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), &[]).await;
    node.services().register(service("icmp")).await.unwrap();
    node.services().register(service("vl3")).await.unwrap();
    let registered = node
        .endpoints()
        .register(endpoint(
            "nse-a",
            "tcp://10.0.0.1:5001",
            after(chrono::Duration::minutes(5)),
        ))
        .await
        .unwrap()
        .into_inner();
    let gone = node
        .endpoints()
        .register(endpoint(
            "nse-gone",
            "tcp://10.0.0.9:5001",
            after(chrono::Duration::minutes(5)),
        ))
        .await
        .unwrap()
        .into_inner();
    node.endpoints().unregister(gone).await.unwrap();

    node.restart().await;

    assert_eq!(
        service_names(&node, "").await,
        ["icmp".to_owned(), "vl3".to_owned()].into()
    );
    let query = NetworkServiceEndpointQuery {
        network_service_endpoint: Some(Default::default()),
        watch: false,
    };
    let found: Vec<_> = node
        .endpoints()
        .find(query)
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(found.len(), 1, "only nse-a: {found:?}");
    let back = found[0].network_service_endpoint.clone().unwrap();
    assert_eq!(back, registered, "the same registration, deadline and all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_matches_names_by_substring_as_nsm_does() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    for name in ["icmp", "icmp-responder", "vl3"] {
        node.services().register(service(name)).await.unwrap();
    }
    let expires = after(chrono::Duration::minutes(5));
    for (i, name) in ["nse-a", "my-nse-b", "forwarder-1"].iter().enumerate() {
        let url = format!("tcp://10.0.0.{}:5001", i + 1);
        node.endpoints()
            .register(endpoint(name, &url, expires))
            .await
            .unwrap();
    }

    let names = |list: &[&str]| {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        endpoint_names(&node, "nse").await,
        names(&["nse-a", "my-nse-b"])
    );
    assert_eq!(endpoint_names(&node, "nse-a").await, names(&["nse-a"]));
    assert_eq!(
        endpoint_names(&node, "").await,
        names(&["nse-a", "my-nse-b", "forwarder-1"])
    );
    assert_eq!(
        endpoint_names(&node, "NSE").await,
        names(&[]),
        "case matters"
    );
    assert_eq!(
        service_names(&node, "cm").await,
        names(&["icmp", "icmp-responder"])
    );
    assert_eq!(service_names(&node, "vl3").await, names(&["vl3"]));
    assert_eq!(service_names(&node, "none").await, names(&[]));
}

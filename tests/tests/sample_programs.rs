//! `nsm endpoint` and `nsm request` as a user runs them, against `nsm serve`: the client gets
//! addresses from the endpoint's pool, the endpoint records them in its `ipam_log` and
//! releases them on Close, and a connection keeps its addresses across an endpoint restart.

use nsm_proto::connection::{Connection, Path as WirePath, PathSegment};
use nsm_tests::mesh::{Node, refresh_request};
use nsm_tests::programs::{
    EndpointProgram, IpamRow, RequestProgram, find_endpoint, ipam_log, wait_registered,
};
use serde_json::Value;

const POOL: &str = "172.16.0.0/24";

/// The client's own address, without its prefix length.
fn client_address(connection: &Value) -> String {
    let address = connection["context"]["src_ip_addrs"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no client address in {connection}"));
    address.split('/').next().unwrap().to_owned()
}

/// The endpoint's own path segment id: the key of its allocation.
fn endpoint_segment(connection: &Value) -> String {
    let segments = connection["path"]["segments"].as_array().unwrap();
    let last = segments.last().unwrap();
    assert_eq!(last["name"], "nse-a", "{connection}");
    last["id"].as_str().unwrap().to_owned()
}

fn rows_of<'a>(log: &'a [IpamRow], connection_id: &str) -> Vec<&'a IpamRow> {
    log.iter()
        .filter(|row| row.connection_id == connection_id)
        .collect()
}

/// A node and `nsm endpoint --service icmp --cidr 172.16.0.0/24 --name nse-a`, registered.
async fn node_and_endpoint(dir: &std::path::Path) -> (Node, EndpointProgram) {
    let node = Node::start(dir, &[]).await;
    let endpoint = EndpointProgram::start(dir, "nse-a", "icmp", POOL, &node.url()).await;
    let registered = wait_registered(&node.url(), "nse-a").await;
    assert_eq!(registered.network_service_names, ["icmp"]);
    (node, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_addresses_from_the_pool_and_closing_releases_them_in_the_ipam_log() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = node_and_endpoint(dir.path()).await;

    let mut client = RequestProgram::start(
        dir.path(),
        &node.url(),
        &["--service", "icmp", "--hold", "3s"],
    );
    let connection = client.next_connection().await;
    assert_eq!(connection["network_service_endpoint_name"], "nse-a");
    assert_eq!(connection["state"], "UP");
    let address = client_address(&connection);
    assert!(address.starts_with("172.16.0."), "{connection}");
    let status = client.exit().await;
    assert!(status.success(), "{status}:\n{}", client.log_text());

    let log = endpoint.ipam_log().await;
    let rows = rows_of(&log, &endpoint_segment(&connection));
    let kinds: Vec<_> = rows
        .iter()
        .map(|r| (r.kind.as_str(), r.cause.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [("allocated", None), ("released", Some("close"))],
        "{log:?}"
    );
    assert_eq!(rows[0].client_addr.as_deref(), Some(address.as_str()));
}

/// The connection `nsm request` printed, as the node returned it (for a refresh).
fn connection_from(printed: &Value) -> Connection {
    let segments = printed["path"]["segments"].as_array().unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::minutes(10);
    Connection {
        id: printed["id"].as_str().unwrap().into(),
        network_service: printed["network_service"].as_str().unwrap().into(),
        network_service_endpoint_name: printed["network_service_endpoint_name"]
            .as_str()
            .unwrap()
            .into(),
        path: Some(WirePath {
            index: 0,
            path_segments: segments
                .iter()
                .enumerate()
                .map(|(i, segment)| PathSegment {
                    name: segment["name"].as_str().unwrap().into(),
                    id: segment["id"].as_str().unwrap().into(),
                    expires: (i == 0).then(|| prost_types::Timestamp {
                        seconds: expires.timestamp(),
                        nanos: 0,
                    }),
                    ..Default::default()
                })
                .collect(),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_keeps_its_addresses_across_a_sigkill_of_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (node, mut endpoint) = node_and_endpoint(dir.path()).await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut client = RequestProgram::start(
        dir.path(),
        &node.url(),
        &[
            "--service",
            "icmp",
            "--id",
            &id,
            "--no-close",
            "--hold",
            "1s",
        ],
    );
    let printed = client.next_connection().await;
    assert!(client.exit().await.success(), "{}", client.log_text());
    assert_eq!(printed["id"], id.as_str());
    let address = client_address(&printed);

    endpoint.process.kill();
    let endpoint = EndpointProgram::start(dir.path(), "nse-a", "icmp", POOL, &node.url()).await;
    assert!(find_endpoint(&node.url(), "nse-a").await.is_some());

    // `nsm request --id` again would send only its own segment, which makes a new vWire (as
    // in NSM): the refresh that matters is the one that carries the returned path back.
    let refreshed = node
        .network_service()
        .request(refresh_request(&connection_from(&printed)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refreshed.id, id);
    let ip = refreshed.context.unwrap().ip_context.unwrap();
    assert_eq!(
        ip.src_ip_addrs[0].split('/').next(),
        Some(address.as_str()),
        "the restarted endpoint reloaded the allocation from its log"
    );

    let log = ipam_log(&endpoint.db).await;
    let rows = rows_of(&log, &endpoint_segment(&printed));
    assert!(rows.len() >= 2, "allocated, then refreshed: {log:?}");
    assert!(
        rows.iter()
            .all(|r| r.kind == "allocated" && r.client_addr.as_deref() == Some(&*address)),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requesting_a_service_that_does_not_exist_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _endpoint) = node_and_endpoint(dir.path()).await;
    let mut client = RequestProgram::start(dir.path(), &node.url(), &["--service", "no-such"]);
    let status = client.exit().await;
    assert!(!status.success(), "{status}");
    let said = client.log_text();
    assert!(
        said.contains("NotFound") && said.contains("network service \"no-such\" is not registered"),
        "{said}"
    );
}

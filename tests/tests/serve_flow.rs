//! `nsm serve` end to end, with the real binary and real gRPC: a client's Request, refresh
//! and Close reach the endpoint, expiry tells the endpoint, and the log records it all.

use std::time::Duration;

use nsm_log::store::{OpenOptions, SqliteStore};
use nsm_proto::connection::{ConnectionEventType, MonitorScopeSelector, State};
use nsm_tests::mesh::{Node, first_request, node_with_endpoint, refresh_request, request_vwire};
use tokio_stream::StreamExt;

async fn event_types(node: &Node, stream_of: &str) -> Vec<String> {
    let store = SqliteStore::open_read_only(&node.db, OpenOptions::default())
        .await
        .expect("open the log read-only");
    let stream = format!("vwire-{stream_of}");
    let events = nsm_log::store::EventStore::read_stream(&store, &stream.try_into().unwrap(), 1)
        .await
        .unwrap();
    events.into_iter().map(|e| e.event_type).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_refresh_and_close_reach_the_endpoint_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = node_with_endpoint(dir.path(), &[]).await;

    let request = first_request("icmp", "nsc-1", &[]);
    let client_id = request.connection.as_ref().unwrap().id.clone();
    let connection = node
        .network_service()
        .request(request)
        .await
        .unwrap()
        .into_inner();

    // The caller's id and index come back; the path holds client, node and endpoint.
    assert_eq!(connection.id, client_id);
    let path = connection.path.clone().unwrap();
    assert_eq!(path.index, 0);
    let names: Vec<_> = path.path_segments.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["nsc-1", "node-a", "nse-1"]);
    let vwire = path.path_segments[1].id.clone();
    assert_eq!(connection.network_service_endpoint_name, "nse-1");
    assert_eq!(connection.state, State::Up as i32);
    let ip = connection.context.clone().unwrap().ip_context.unwrap();
    assert_eq!(ip.src_ip_addrs.len(), 1);
    assert_eq!(
        connection.mechanism.clone().unwrap().parameters["name"],
        "nsm-1",
        "the client's own end"
    );

    // The endpoint saw the node's hop: the vWire id as connection id, the node's index.
    let forwarded = endpoint.seen().requests[0].connection.clone().unwrap();
    assert_eq!(forwarded.id, vwire);
    assert_eq!(forwarded.path.unwrap().index, 1);

    // A refresh carries the returned path back: same vWire, forwarded again.
    let refreshed = node
        .network_service()
        .request(refresh_request(&connection))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refreshed.path.unwrap().path_segments[1].id, vwire);
    assert_eq!(endpoint.seen().requests.len(), 2);

    node.network_service()
        .close(connection.clone())
        .await
        .unwrap();
    assert_eq!(endpoint.seen().closes.len(), 1);
    assert_eq!(endpoint.seen().closes[0].id, vwire);
    // Close is idempotent.
    node.network_service()
        .close(connection.clone())
        .await
        .unwrap();

    assert_eq!(
        event_types(&node, &vwire).await,
        [
            "Requested",
            "DataplanePlumbed",
            "Established",
            "Refreshed",
            "DataplaneUnplumbed",
            "Closed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrefreshed_vwire_expires_and_its_endpoint_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = node_with_endpoint(dir.path(), &["--lifetime", "3s"]).await;
    let (_, vwire) = request_vwire(&node, "nsc-1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while endpoint.seen().closes.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the endpoint was never told"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(endpoint.seen().closes[0].id, vwire);
    // The endpoint is told before the end is recorded: wait for the record too.
    loop {
        let types = event_types(&node, &vwire).await;
        if types.last().map(String::as_str) == Some("Expired") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{types:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_sends_the_initial_state_then_updates_and_deletes_and_resumes_from_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _endpoint) = node_with_endpoint(dir.path(), &[]).await;
    let (first, first_vwire) = request_vwire(&node, "nsc-1").await;

    let mut stream = node
        .monitor()
        .monitor_connections(MonitorScopeSelector::default())
        .await
        .unwrap()
        .into_inner();
    let initial = stream.next().await.unwrap().unwrap();
    assert_eq!(
        initial.r#type,
        ConnectionEventType::InitialStateTransfer as i32
    );
    assert_eq!(
        initial.connections.keys().collect::<Vec<_>>(),
        [&first_vwire]
    );
    let position: u64 = initial.connections[&first_vwire]
        .path
        .as_ref()
        .unwrap()
        .path_segments[1]
        .metrics["nsm_log_position"]
        .parse()
        .unwrap();

    let (_, second_vwire) = request_vwire(&node, "nsc-2").await;
    let update = stream.next().await.unwrap().unwrap();
    assert_eq!(update.r#type, ConnectionEventType::Update as i32);
    assert!(update.connections.contains_key(&second_vwire));

    node.network_service().close(first.clone()).await.unwrap();
    let delete = stream.next().await.unwrap().unwrap();
    assert_eq!(delete.r#type, ConnectionEventType::Delete as i32);
    assert!(delete.connections.contains_key(&first_vwire));

    // Resume from the snapshot's position: exactly the two changes since, in order.
    let mut resume = tonic::Request::new(MonitorScopeSelector::default());
    resume.metadata_mut().insert(
        "nsm-monitor-from-position",
        position.to_string().parse().unwrap(),
    );
    let mut resumed = node
        .monitor()
        .monitor_connections(resume)
        .await
        .unwrap()
        .into_inner();
    let empty = resumed.next().await.unwrap().unwrap();
    assert_eq!(
        empty.r#type,
        ConnectionEventType::InitialStateTransfer as i32
    );
    assert!(empty.connections.is_empty());
    let again = resumed.next().await.unwrap().unwrap();
    assert_eq!(
        (again.r#type, again.connections.contains_key(&second_vwire)),
        (ConnectionEventType::Update as i32, true)
    );
    let again = resumed.next().await.unwrap().unwrap();
    assert_eq!(
        (again.r#type, again.connections.contains_key(&first_vwire)),
        (ConnectionEventType::Delete as i32, true)
    );

    // A selector on the client's segment sees only that client's vWire.
    let selector = MonitorScopeSelector {
        path_segments: vec![nsm_proto::connection::PathSegment {
            name: "nsc-2".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut mine = node
        .monitor()
        .monitor_connections(selector)
        .await
        .unwrap()
        .into_inner();
    let initial = mine.next().await.unwrap().unwrap();
    assert_eq!(
        initial.connections.keys().collect::<Vec<_>>(),
        [&second_vwire]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_nsms_services_and_health_says_serving() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(node.channel())
        .server_reflection_info(futures::stream::iter([ask]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a service list: {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "networkservice.NetworkService",
        "connection.MonitorConnection",
        "registry.NetworkServiceRegistry",
        "registry.NetworkServiceEndpointRegistry",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_when_the_node_starts_draining() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), &[]).await;
    let watch = HealthCheckRequest {
        service: "networkservice.NetworkService".into(),
    };
    let mut statuses = HealthClient::new(node.channel())
        .watch(watch)
        .await
        .unwrap()
        .into_inner();
    let status = |reply: Option<Result<HealthCheckResponse, tonic::Status>>| {
        reply.expect("a status").expect("a status").status()
    };
    assert_eq!(status(statuses.next().await), ServingStatus::Serving);
    node.process.as_ref().expect("running").send_sigterm();
    let next = tokio::time::timeout(Duration::from_secs(10), statuses.next())
        .await
        .expect("a status within 10 s of SIGTERM");
    assert_eq!(status(next), ServingStatus::NotServing);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_log_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _endpoint) = node_with_endpoint(dir.path(), &[]).await;
    let other_socket = format!("unix://{}", dir.path().join("other.sock").display());
    let args: Vec<String> = [
        "serve",
        "--listen",
        &other_socket,
        "--db",
        node.db.to_str().unwrap(),
        "--insecure",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut second = nsm_tests::mesh::Process::spawn(&args, dir.path().join("second.log"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.exited() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second node kept running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1));
    assert!(
        second
            .log_text()
            .contains("another process is writing this log"),
        "{}",
        second.log_text()
    );
    // The first node is unharmed.
    request_vwire(&node, "nsc-1").await;
}

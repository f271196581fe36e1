//! Bad input to `nsm serve`, end to end: every refusal carries the right gRPC code and a
//! message naming the problem, and the log holds nothing half-made — no vWire stream for a
//! refusal found before `Requested`, a complete `Requested`, `Failed` stream for one found
//! after it, and nothing at all for a refused registration.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nsm_proto::connection::{Connection, Mechanism, PathSegment};
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::registry::network_service_endpoint_registry_client::NetworkServiceEndpointRegistryClient;
use nsm_proto::registry::network_service_registry_client::NetworkServiceRegistryClient;
use nsm_proto::registry::{
    Destination, Match, NetworkService, NetworkServiceEndpoint, NetworkServiceEndpointQuery,
    NetworkServiceQuery,
};
use nsm_tests::fake_endpoint::FakeEndpoint;
use nsm_tests::mesh::{Node, channel, first_request, node_with_endpoint, register};
use nsm_tests::programs::{NodeOnLog, refused, streams, vwire_streams};
use tokio_stream::StreamExt;
use tonic::{Code, Status};

/// A client's first Request for `icmp`, changed by `change`.
fn request_with(change: impl FnOnce(&mut NetworkServiceRequest)) -> NetworkServiceRequest {
    let mut request = first_request("icmp", "nsc-1", &[]);
    change(&mut request);
    request
}

fn connection(request: &mut NetworkServiceRequest) -> &mut Connection {
    request.connection.as_mut().expect("first_request has one")
}

fn seconds_from_now(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + seconds,
        nanos: 0,
    }
}

async fn assert_no_vwire(node: &Node) {
    let vwires = vwire_streams(&node.db).await;
    assert!(vwires.is_empty(), "something was recorded: {vwires:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_connection_or_a_known_service_is_refused_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = node_with_endpoint(dir.path(), &[]).await;
    let mut client = node.network_service();

    let missing = NetworkServiceRequest {
        connection: None,
        mechanism_preferences: vec![],
    };
    refused(
        client.request(missing).await,
        Code::InvalidArgument,
        &["request.connection is missing"],
    );
    let empty = request_with(|r| connection(r).network_service.clear());
    refused(
        client.request(empty).await,
        Code::InvalidArgument,
        &["connection.network_service", "must be 1-251 characters"],
    );
    let unknown = request_with(|r| connection(r).network_service = "no-such-service".into());
    refused(
        client.request(unknown).await,
        Code::NotFound,
        &["\"no-such-service\"", "not registered"],
    );
    let no_mechanism = request_with(|r| r.mechanism_preferences.clear());
    refused(
        client.request(no_mechanism).await,
        Code::InvalidArgument,
        &["mechanism_preferences is empty"],
    );

    assert!(endpoint.seen().requests.is_empty());
    assert_no_vwire(&node).await;
}

/// A node whose service `secure` sends `app: a` only to `tier: gold` endpoints, with one
/// `tier: bronze` endpoint; the refusal of a Request labelled `app: a`.
async fn refuse_unmatched(dir: &Path) -> (Node, FakeEndpoint, Status) {
    let node = Node::start(dir, &[]).await;
    let gold_only = Match {
        source_selector: [("app".to_owned(), "a".to_owned())].into(),
        routes: vec![Destination {
            destination_selector: [("tier".to_owned(), "gold".to_owned())].into(),
            weight: 0,
        }],
        ..Default::default()
    };
    node.services()
        .register(NetworkService {
            name: "secure".into(),
            payload: "IP".into(),
            matches: vec![gold_only],
            ..Default::default()
        })
        .await
        .unwrap();
    let endpoint = FakeEndpoint::start(dir, "nse-bronze").await;
    node.endpoints()
        .register(NetworkServiceEndpoint {
            name: "nse-bronze".into(),
            network_service_names: vec!["secure".into()],
            network_service_labels: [(
                "secure".to_owned(),
                nsm_proto::registry::NetworkServiceLabels {
                    labels: [("tier".to_owned(), "bronze".to_owned())].into(),
                },
            )]
            .into(),
            url: endpoint.url(),
            ..Default::default()
        })
        .await
        .unwrap();
    let request = first_request("secure", "nsc-1", &[("app", "a")]);
    let status = node
        .network_service()
        .request(request)
        .await
        .expect_err("no endpoint has tier: gold");
    (node, endpoint, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_endpoint_matches_names_the_service_and_the_labels_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint, status) = refuse_unmatched(dir.path()).await;
    refused(
        Err::<(), _>(status),
        Code::FailedPrecondition,
        &["no endpoint of network service \"secure\"", "app"],
    );
    assert!(endpoint.seen().requests.is_empty());
    assert_no_vwire(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_endpoint_matches_shows_the_labels_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, _endpoint, status) = refuse_unmatched(dir.path()).await;
    refused(
        Err::<(), _>(status),
        Code::FailedPrecondition,
        &["{\"app\": \"a\"}"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_endpoint_fails_the_request_is_unavailable_and_recorded_as_failed_at_the_endpoint()
 {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let nobody = format!("unix://{}", dir.path().join("nobody.sock").display());
    register(
        &node,
        "icmp",
        "nse-dead",
        &nobody,
        &[],
        chrono::Duration::minutes(5),
    )
    .await;
    let refusing = FakeEndpoint::start(dir.path(), "nse-refusing").await;
    refusing.refuse(Some(Status::internal("out of addresses")));
    register(
        &node,
        "icmp",
        "nse-refusing",
        &refusing.url(),
        &[],
        chrono::Duration::minutes(5),
    )
    .await;

    let status = refused(
        node.network_service()
            .request(first_request("icmp", "nsc-1", &[]))
            .await,
        Code::Unavailable,
        &[
            "every endpoint of network service \"icmp\" failed",
            "nse-dead: Unavailable",
            "nse-refusing: Internal: out of addresses",
        ],
    );
    assert_eq!(
        refusing.seen().requests.len(),
        1,
        "each candidate is tried once"
    );

    let log = streams(&node.db).await;
    let vwires: Vec<_> = log
        .iter()
        .filter(|(s, _)| s.starts_with("vwire-"))
        .collect();
    assert_eq!(vwires.len(), 1, "{vwires:?}");
    let (_, events) = vwires[0];
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["Requested", "Failed"]);
    let failed: serde_json::Value = serde_json::from_str(&events[1].payload).unwrap();
    assert_eq!(failed["stage"], "endpoint");
    assert_eq!(failed["code"], "unavailable");
    assert_eq!(failed["reason"], status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mechanism_nsm_rs_cannot_plumb_is_refused_with_the_supported_ones_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = node_with_endpoint(dir.path(), &[]).await;
    let vxlan = request_with(|r| {
        r.mechanism_preferences = vec![Mechanism {
            cls: "REMOTE".into(),
            r#type: "VXLAN".into(),
            parameters: Default::default(),
        }];
    });
    refused(
        node.network_service().request(vxlan).await,
        Code::InvalidArgument,
        &["REMOTE/VXLAN", "LOCAL/KERNEL", "LOCAL/MEMIF"],
    );
    let unknown_class = request_with(|r| r.mechanism_preferences[0].cls = "GLOBAL".into());
    refused(
        node.network_service().request(unknown_class).await,
        Code::InvalidArgument,
        &["mechanism_preferences[0].cls", "LOCAL or REMOTE"],
    );
    assert!(endpoint.seen().requests.is_empty());
    assert_no_vwire(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_labels_and_mechanism_parameters_are_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = node_with_endpoint(dir.path(), &[]).await;
    let mut client = node.network_service();

    let long_value = request_with(|r| {
        connection(r).labels.insert("app".into(), "x".repeat(254));
    });
    refused(
        client.request(long_value).await,
        Code::InvalidArgument,
        &["connection.labels", "\"app\"", "at most 253"],
    );
    let too_many = request_with(|r| {
        let labels = &mut connection(r).labels;
        labels.extend((0..65).map(|i| (format!("k{i}"), "v".to_owned())));
    });
    refused(
        client.request(too_many).await,
        Code::InvalidArgument,
        &["connection.labels", "65 labels, at most 64"],
    );
    let long_parameter = request_with(|r| {
        let parameters = &mut r.mechanism_preferences[0].parameters;
        parameters.insert("inodeURL".into(), "x".repeat(4097));
    });
    refused(
        client.request(long_parameter).await,
        Code::InvalidArgument,
        &[
            "mechanism_preferences[0].parameters",
            "\"inodeURL\"",
            "4096",
        ],
    );
    assert!(endpoint.seen().requests.is_empty());
    assert_no_vwire(&node).await;

    // The same limits hold for what an endpoint registers.
    let labelled = NetworkServiceEndpoint {
        name: "nse-labelled".into(),
        network_service_names: vec!["icmp".into()],
        network_service_labels: [(
            "icmp".to_owned(),
            nsm_proto::registry::NetworkServiceLabels {
                labels: [("zone".to_owned(), "z".repeat(254))].into(),
            },
        )]
        .into(),
        url: endpoint.url(),
        ..Default::default()
    };
    refused(
        node.endpoints().register(labelled).await,
        Code::InvalidArgument,
        &[
            "network_service_endpoint.network_service_labels[icmp]",
            "\"zone\"",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_contradicts_itself_or_has_expired_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = node_with_endpoint(dir.path(), &[]).await;
    let mut client = node.network_service();

    let wrong_id = request_with(|r| connection(r).id = "not-the-segment-id".into());
    refused(
        client.request(wrong_id).await,
        Code::InvalidArgument,
        &["connection.id \"not-the-segment-id\"", "path segment 0"],
    );
    let expired = request_with(|r| {
        let path = connection(r).path.as_mut().unwrap();
        path.path_segments[0].expires = Some(seconds_from_now(-60));
    });
    refused(
        client.request(expired).await,
        Code::InvalidArgument,
        &["connection.path.path_segments[0].expires", "has passed"],
    );
    let beyond = request_with(|r| connection(r).path.as_mut().unwrap().index = 3);
    refused(
        client.request(beyond).await,
        Code::InvalidArgument,
        &["connection.path.index", "outside its 1 segments"],
    );
    assert!(endpoint.seen().requests.is_empty());
    assert_no_vwire(&node).await;
}

/// A refusal quoting a 100 KB value would not fit in the HTTP/2 headers that carry a status
/// message (the client fails with "received metadata size exceeds hard limit"); the node
/// quotes only its beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_name_is_refused_with_a_short_message() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let huge = "a".repeat(100_000);
    let brief = |status: Status| {
        assert!(status.message().len() < 512, "{status:?}");
        assert!(
            status.message().contains("…\" (100000 bytes)"),
            "{status:?}"
        );
    };

    let request = request_with(|r| connection(r).network_service = huge.clone());
    brief(refused(
        node.network_service().request(request).await,
        Code::InvalidArgument,
        &["connection.network_service", "must be 1-251 characters"],
    ));
    let service = NetworkService {
        name: huge.clone(),
        payload: "IP".into(),
        ..Default::default()
    };
    brief(refused(
        node.services().register(service).await,
        Code::InvalidArgument,
        &["network_service.name", "must be 1-251 characters"],
    ));
    let endpoint = endpoint_with(|e| e.name = huge.clone());
    brief(refused(
        node.endpoints().register(endpoint).await,
        Code::InvalidArgument,
        &["network_service_endpoint.name", "must be 1-251 characters"],
    ));
    assert_no_vwire(&node).await;
    let log = streams(&node.db).await;
    assert!(log.is_empty(), "something was recorded: {log:?}");
}

/// Posting gRPC frames that are not protobuf, over the node's own channel.
mod raw {
    use std::future::poll_fn;

    use tonic::body::Body;
    use tonic::codegen::{Body as _, Service as _, http};
    use tonic::transport::Channel;
    use tonic::{Code, Status};

    /// Posts one uncompressed gRPC frame holding `message` (any bytes, valid UTF-8 here
    /// because the body is a `String`) to the method at `path`; the status answered.
    pub(super) async fn post(mut channel: Channel, path: &str, message: &str) -> Status {
        let length = u8::try_from(message.len())
            .ok()
            .filter(|length| length.is_ascii())
            .expect("a message short enough for a one-byte UTF-8 length");
        let frame = format!("\0\0\0\0{}{message}", char::from(length));
        let request = http::Request::post(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::new(frame))
            .unwrap();
        poll_fn(|cx| channel.poll_ready(cx)).await.unwrap();
        let response = channel.call(request).await.unwrap();
        if let Some(status) = Status::from_header_map(response.headers()) {
            return status; // trailers-only: the status came with the headers
        }
        let mut body = Box::pin(response.into_body());
        while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            if let Ok(trailers) = frame.unwrap().into_trailers() {
                return Status::from_header_map(&trailers).expect("grpc-status in the trailers");
            }
        }
        Status::new(Code::Unknown, "the node answered without a grpc-status")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_is_not_protobuf_is_an_invalid_argument_on_every_service() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    // 'g' (0x67) is the tag of field 12 with wire type 7, which protobuf does not have.
    let methods = [
        (
            "/networkservice.NetworkService/Request",
            "NetworkServiceRequest",
        ),
        ("/networkservice.NetworkService/Close", "Connection"),
        (
            "/connection.MonitorConnection/MonitorConnections",
            "MonitorScopeSelector",
        ),
        (
            "/registry.NetworkServiceRegistry/Register",
            "NetworkService",
        ),
        (
            "/registry.NetworkServiceRegistry/Find",
            "NetworkServiceQuery",
        ),
        (
            "/registry.NetworkServiceEndpointRegistry/Register",
            "NetworkServiceEndpoint",
        ),
        (
            "/registry.NetworkServiceEndpointRegistry/Unregister",
            "NetworkServiceEndpoint",
        ),
    ];
    for (path, message) in methods {
        let status = raw::post(node.channel(), path, "garbage").await;
        eprintln!("{path}: {status:?}");
        refused(
            Err::<(), _>(status),
            Code::InvalidArgument,
            &[&format!("the request is not a valid {message}")],
        );
    }
    assert_no_vwire(&node).await;
    let log = streams(&node.db).await;
    assert!(log.is_empty(), "something was recorded: {log:?}");
}

/// An endpoint registration that is valid but for the field `change` breaks.
fn endpoint_with(change: impl FnOnce(&mut NetworkServiceEndpoint)) -> NetworkServiceEndpoint {
    let mut endpoint = NetworkServiceEndpoint {
        name: "nse-1".into(),
        network_service_names: vec!["icmp".into()],
        url: "tcp://127.0.0.1:5001".into(),
        expiration_time: Some(seconds_from_now(60)),
        ..Default::default()
    };
    change(&mut endpoint);
    endpoint
}

async fn registered_names(node: &Node) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let query = NetworkServiceEndpointQuery {
        network_service_endpoint: Some(Default::default()),
        watch: false,
    };
    let mut found = node.endpoints().find(query).await.unwrap().into_inner();
    while let Some(response) = found.next().await {
        names.insert(response.unwrap().network_service_endpoint.unwrap().name);
    }
    let query = NetworkServiceQuery {
        network_service: Some(Default::default()),
        watch: false,
    };
    let mut found = node.services().find(query).await.unwrap().into_inner();
    while let Some(response) = found.next().await {
        names.insert(response.unwrap().network_service.unwrap().name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_registrations_are_refused_by_field_and_register_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let mut endpoints = node.endpoints();
    let cases: [(&str, NetworkServiceEndpoint, &[&str]); 7] = [
        (
            "no name",
            endpoint_with(|e| e.name.clear()),
            &["network_service_endpoint.name", "must be 1-251 characters"],
        ),
        (
            "no URL",
            endpoint_with(|e| e.url.clear()),
            &["network_service_endpoint.url", "has no scheme"],
        ),
        (
            "host:port without a scheme",
            endpoint_with(|e| e.url = "localhost:1".into()),
            &[
                "network_service_endpoint.url",
                "\"localhost:1\"",
                "no scheme",
            ],
        ),
        (
            "an http URL",
            endpoint_with(|e| e.url = "http://x".into()),
            &["network_service_endpoint.url", "tcp, unix or inode"],
        ),
        (
            "a tcp URL without a port",
            endpoint_with(|e| e.url = "tcp://x".into()),
            &["network_service_endpoint.url", "host:port"],
        ),
        (
            "no service",
            endpoint_with(|e| e.network_service_names.clear()),
            &["serves no network service"],
        ),
        (
            "an expiration time in the past",
            endpoint_with(|e| e.expiration_time = Some(seconds_from_now(-60))),
            &["network_service_endpoint.expiration_time", "in the past"],
        ),
    ];
    for (case, endpoint, mentions) in cases {
        let status = refused(
            endpoints.register(endpoint).await,
            Code::InvalidArgument,
            mentions,
        );
        eprintln!("{case}: {}", status.message());
    }
    let nameless = NetworkService {
        name: String::new(),
        payload: "IP".into(),
        ..Default::default()
    };
    refused(
        node.services().register(nameless).await,
        Code::InvalidArgument,
        &["network_service.name", "must be 1-251 characters"],
    );
    let odd_payload = NetworkService {
        name: "icmp".into(),
        payload: "TCP".into(),
        ..Default::default()
    };
    refused(
        node.services().register(odd_payload).await,
        Code::InvalidArgument,
        &["network_service.payload", "\"TCP\""],
    );

    assert_eq!(registered_names(&node).await, BTreeSet::new());
    let log = streams(&node.db).await;
    assert!(log.is_empty(), "something was recorded: {log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiration_time_in_the_past_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let past = endpoint_with(|e| e.expiration_time = Some(seconds_from_now(-60)));
    refused(
        node.endpoints().register(past).await,
        Code::InvalidArgument,
        &["network_service_endpoint.expiration_time", "past"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_connection_the_node_does_not_know_succeeds_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, endpoint) = node_with_endpoint(dir.path(), &[]).await;
    let mut unknown = first_request("icmp", "nsc-1", &[]).connection.unwrap();
    unknown
        .path
        .as_mut()
        .unwrap()
        .path_segments
        .push(PathSegment {
            name: "node-a".into(),
            id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        });
    node.network_service().close(unknown).await.unwrap();
    let foreign = first_request("icmp", "nsc-1", &[]).connection.unwrap();
    node.network_service().close(foreign).await.unwrap();
    assert!(endpoint.seen().closes.is_empty());
    assert_no_vwire(&node).await;
}

/// A tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a 64 MiB tmpfs at `path`; `None` (with the reason printed) where this process
    /// may not mount, which under `CI=true` is a failure instead.
    fn mount(path: &Path) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        let mounted = root
            && std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64m", "nsm-test-log"])
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
        if mounted {
            return Some(Self {
                path: path.to_owned(),
            });
        }
        let reason = if root {
            "mount -t tmpfs failed"
        } else {
            "not root"
        };
        let why = format!("the full-log test cannot mount a tmpfs for the log ({reason})");
        nsm_test_support::available_or_skip(false, &why);
        None
    }

    /// Fills the filesystem to the last byte.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        for chunk in [vec![0u8; 1 << 20], vec![0u8; 512]] {
            while matches!(file.write(&chunk), Ok(n) if n > 0) {}
        }
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
        }
    }
}

/// Registers `icmp` served by `endpoint` with the node at `url`.
async fn register_icmp(url: &str, endpoint: &FakeEndpoint) {
    NetworkServiceRegistryClient::new(channel(url))
        .register(NetworkService {
            name: "icmp".into(),
            payload: "IP".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    NetworkServiceEndpointRegistryClient::new(channel(url))
        .register(endpoint_with(|e| e.url = endpoint.url()))
        .await
        .unwrap();
}

/// The node's own segment id (the vWire id) in a returned connection.
fn vwire_of(connection: &Connection) -> String {
    connection.path.as_ref().unwrap().path_segments[1]
        .id
        .clone()
}

/// A node whose log is on a tmpfs filled to the last byte after one vWire is established:
/// what a Request and a Close of that vWire got, and the node, the endpoint and the vWire.
struct FullLog {
    request: Status,
    close: Status,
    node: NodeOnLog,
    endpoint: FakeEndpoint,
    established: Connection,
    filler: PathBuf,
    // Last: dropped after the node, whose open log would keep it busy.
    _tmpfs: Tmpfs,
}

async fn fill_the_log_disk(dir: &Path) -> Option<FullLog> {
    // The brief's `mount -o remount,ro` cannot work here: the kernel refuses to remount
    // read-only (EBUSY) while the node holds its log open for writing. A full disk is the
    // other way a running node's log becomes unwritable.
    let tmpfs = Tmpfs::mount(&dir.join("log"))?;
    let node = NodeOnLog::start(dir, &tmpfs.path.join("events.db")).await;
    let endpoint = FakeEndpoint::start(dir, "nse-1").await;
    register_icmp(&node.url(), &endpoint).await;
    let established = node
        .network_service()
        .request(first_request("icmp", "nsc-1", &[]))
        .await
        .unwrap()
        .into_inner();

    let filler = tmpfs.fill();
    let request = node
        .network_service()
        .request(first_request("icmp", "nsc-2", &[]))
        .await
        .expect_err("a Request while the log cannot be written");
    let close = node
        .network_service()
        .close(established.clone())
        .await
        .expect_err("a Close while the log cannot be written");
    Some(FullLog {
        request,
        close,
        node,
        endpoint,
        established,
        filler,
        _tmpfs: tmpfs,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_written_fails_requests_unavailable_acknowledges_nothing_and_recovers()
{
    let dir = tempfile::tempdir().unwrap();
    let Some(full) = fill_the_log_disk(dir.path()).await else {
        return;
    };
    assert_eq!(full.request.code(), Code::Unavailable, "{:?}", full.request);
    assert!(full.request.message().contains("log"), "{:?}", full.request);
    assert_eq!(full.close.code(), Code::Unavailable, "{:?}", full.close);
    // The first endpoint is asked while `Requested` commits; when the commit fails, the
    // endpoint is told to close what it accepted.
    let seen = full.endpoint.seen();
    assert_eq!(
        seen.requests.len(),
        2,
        "the established vWire and the refused one"
    );
    let refused_at_endpoint = seen.requests[1].connection.as_ref().unwrap().id.clone();
    assert!(
        seen.closes.iter().any(|c| c.id == refused_at_endpoint),
        "the endpoint was not told to close the refused vWire: {:?}",
        seen.closes
    );
    // The refused Close may already have told the endpoint: teardown tells it before it
    // records the end, and Close is idempotent at the endpoint.

    // Space again: the same node works without a restart.
    std::fs::remove_file(&full.filler).unwrap();
    let after = full
        .node
        .network_service()
        .request(first_request("icmp", "nsc-3", &[]))
        .await
        .unwrap()
        .into_inner();
    let first = vwire_of(&full.established);
    let recorded = vwire_streams(&full.node.db).await;
    let expected: BTreeSet<_> = [&first, &vwire_of(&after)]
        .into_iter()
        .map(|id| format!("vwire-{id}"))
        .collect();
    assert_eq!(
        recorded.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the refused Request left no stream"
    );
    assert_eq!(
        recorded[&format!("vwire-{first}")],
        ["Requested", "DataplanePlumbed", "Established"],
        "the refused Close recorded nothing"
    );
    full.node
        .network_service()
        .close(full.established.clone())
        .await
        .unwrap();
    let closes = full.endpoint.seen().closes;
    assert_eq!(closes.last().map(|c| c.id.as_str()), Some(first.as_str()));
    assert_eq!(
        vwire_streams(&full.node.db).await[&format!("vwire-{first}")],
        [
            "Requested",
            "DataplanePlumbed",
            "Established",
            "DataplaneUnplumbed",
            "Closed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_written_is_named_as_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let Some(full) = fill_the_log_disk(dir.path()).await else {
        return;
    };
    for status in [&full.request, &full.close] {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("disk is full"), "{status:?}");
    }
}

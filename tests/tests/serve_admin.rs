//! `nsm serve`'s admin listener and trace export, end to end: probes and Prometheus metrics
//! over HTTP (`--admin-listen`), and spans over OTLP/gRPC (`--otlp-endpoint`) to a collector
//! in the test, under the trace id the caller sent and the event log records.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use nsm_log::store::{EventStore, OpenOptions, Position, SqliteStore};
use nsm_tests::mesh::{Node, first_request, nsm_binary, request_vwire};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

const ADMIN: [&str; 2] = ["--admin-listen", "tcp://127.0.0.1:0"];

/// Where the node's admin listener is, as its log announces it (`admin listening
/// address=http://127.0.0.1:NNNN`).
fn admin_address(node: &Node) -> String {
    let log = node.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("admin listening"))
        .unwrap_or_else(|| panic!("no admin listener in the log:\n{log}"));
    let address = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("address=http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    address.to_owned()
}

/// An HTTP response as the test reads it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// `GET path` over a fresh connection (HTTP/1.1, closed after the reply).
async fn get(address: &str, path: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the admin listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    Reply {
        status,
        headers: headers.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses an OpenMetrics text exposition strictly enough to catch a malformed one: every
/// line is a comment (`# HELP`, `# TYPE`, `# UNIT`) or `name{labels} value`, and it ends
/// with `# EOF`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split_whitespace().next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "bad comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
            None => (series, BTreeMap::new()),
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("key=\"value\"");
        let end = after.find('"').expect("a closing quote");
        labels.insert(key.to_owned(), after[..end].to_owned());
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The value of the sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

async fn scrape(address: &str) -> (String, Vec<Sample>) {
    let reply = get(address, "/metrics").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply
            .headers
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{}",
        reply.headers
    );
    let samples = parse_exposition(&reply.body);
    (reply.body, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_closes_and_failures_and_name_no_vwire() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _endpoint) = nsm_tests::mesh::node_with_endpoint(dir.path(), &ADMIN).await;
    let address = admin_address(&node);

    let live = get(&address, "/live").await;
    assert_eq!((live.status, live.body.trim()), (200, "ok"));
    let ready = get(&address, "/ready").await;
    assert_eq!((ready.status, ready.body.trim()), (200, "ready"));
    let (_, before) = scrape(&address).await;
    assert!(value(&before, "nsm_replay_duration_seconds", &[]).is_some());

    const N: usize = 3;
    let mut ids = Vec::new();
    let mut connections = Vec::new();
    for i in 0..N {
        let (connection, vwire) = request_vwire(&node, &format!("nsc-{i}")).await;
        ids.push(vwire);
        ids.push(connection.id.clone());
        connections.push(connection);
    }
    node.network_service()
        .close(connections[0].clone())
        .await
        .expect("close");
    let unknown = node
        .network_service()
        .request(first_request("no-such-service", "nsc-x", &[]))
        .await
        .expect_err("an unknown service is refused");
    assert_eq!(unknown.code(), Code::NotFound);

    let (text, samples) = scrape(&address).await;
    let count = |name, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    };
    let ok = [("method", "Request"), ("status", "ok")];
    assert_eq!(count("nsm_requests_total", &ok), N as f64);
    let closed = [("method", "Close"), ("status", "ok")];
    assert_eq!(count("nsm_requests_total", &closed), 1.0);
    let refused = [("method", "Request"), ("status", "not_found")];
    assert_eq!(count("nsm_requests_total", &refused), 1.0);
    assert!(
        count(
            "nsm_request_duration_seconds_count",
            &[("method", "Request")]
        ) >= N as f64
    );
    let established = count("nsm_vwires", &[("state", "established")]);
    assert_eq!(established, (N - 1) as f64);
    assert_eq!(count("nsm_vwires", &[("state", "requested")]), 0.0);
    assert!(count("nsm_event_log_append_duration_seconds_count", &[]) > 0.0);
    assert!(count("nsm_event_log_commit_duration_seconds_count", &[]) > 0.0);
    assert!(count("nsm_event_log_commit_events_sum", &[]) > 0.0);
    assert_eq!(count("nsm_event_log_commit_failures_total", &[]), 0.0);
    assert!(count("nsm_replay_duration_seconds", &[]) >= 0.0);
    assert!(count("nsm_process_start_time_seconds", &[]) > 1.6e9);
    assert_eq!(count("nsm_build_info", &[("node", "node-a")]), 1.0);
    let plumbed = [("op", "plumb"), ("result", "ok")];
    assert!(count("nsm_dataplane_operations_total", &plumbed) >= 0.0);
    assert!(count("nsm_dataplane_repairs_total", &[("kind", "healed")]) >= 0.0);
    // Bounded labels only: no vWire or connection id anywhere in the exposition.
    for id in &ids {
        assert!(!text.contains(id.as_str()), "{id} in the metrics:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_while_draining_but_live_stays_200() {
    use nsm_proto::connection::MonitorScopeSelector;

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &ADMIN).await;
    let address = admin_address(&node);
    // A monitor stream never ends on its own, so the drain lasts its full time.
    let _stream = node
        .monitor()
        .monitor_connections(MonitorScopeSelector::default())
        .await
        .expect("monitor");
    let pid = node.process.as_ref().expect("running").id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let ready = get(&address, "/ready").await;
        if ready.status == 503 {
            assert!(ready.body.contains("draining"), "{ready:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready after SIGTERM: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&address, "/live").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_port_in_use_is_refused_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let db = dir.path().join("events.db");
    let socket = dir.path().join("nsm.sock");
    let output = std::process::Command::new(nsm_binary())
        .args([
            "serve",
            "--insecure",
            "--dataplane",
            "dry-run",
            "--node",
            "node-a",
            "--db",
        ])
        .arg(&db)
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .args(["--admin-listen", &format!("tcp://127.0.0.1:{port}")])
        .output()
        .expect("run nsm serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--admin-listen"), "{stderr}");
    assert!(!db.exists(), "the event log was opened: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_otlp_collector_under_the_trace_id_the_log_records() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, endpoint) = collector::Collector::start().await;
    let (mut node, _endpoint) =
        nsm_tests::mesh::node_with_endpoint(dir.path(), &["--otlp-endpoint", &endpoint]).await;

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let mut request = tonic::Request::new(first_request("icmp", "nsc-1", &[]));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span}-01").parse().unwrap(),
    );
    node.network_service()
        .request(request)
        .await
        .expect("request");
    // No traceparent: the node starts a trace, and records its id.
    let (_, unparented) = request_vwire(&node, "nsc-2").await;
    // A graceful stop exports what is left.
    node.stop();

    let spans = collector.spans();
    let request_span = spans
        .iter()
        .find(|s| s.trace_id == trace_id && s.name == "networkservice.NetworkService/Request")
        .unwrap_or_else(|| panic!("no Request span of trace {trace_id} in {spans:#?}"));
    assert_eq!(request_span.parent_span_id, parent_span);
    assert_eq!(request_span.service, "nsm-serve");
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == trace_id && s.name == "vwire"),
        "the vWire's span is in the same trace: {spans:#?}"
    );

    // Every vWire event's correlation id is a trace the collector has.
    let traces: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    let store = SqliteStore::open_read_only(&node.db, OpenOptions::default())
        .await
        .unwrap();
    let events = store.read_all(Position(0), 10_000).await.unwrap();
    let correlated: Vec<_> = events
        .iter()
        .filter(|e| e.stream.as_str().starts_with("vwire-"))
        .map(|e| (e.stream.as_str(), e.correlation_id.as_deref().unwrap_or("")))
        .collect();
    assert!(correlated.iter().any(|(_, id)| *id == trace_id));
    let unparented = format!("vwire-{unparented}");
    assert!(correlated.iter().any(|(stream, _)| *stream == unparented));
    for (stream, id) in correlated {
        assert!(
            traces.contains(id),
            "{stream}: {id} is not a trace of {traces:?}"
        );
    }
}

/// A minimal OTLP/gRPC trace collector (`TraceService/Export`), written against tonic's
/// server traits: it records the spans it is sent and answers an empty
/// `ExportTraceServiceResponse`.
mod collector {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use tonic::body::Body;
    use tonic::codec::{EncodeBody, EncodeBuf, Encoder, SingleMessageCompressionOverride};
    use tonic::codegen::{Body as _, BoxFuture, Service, http};
    use tonic::server::NamedService;

    /// A span as the collector received it.
    #[derive(Debug, Clone)]
    pub(super) struct Span {
        pub(super) trace_id: String,
        pub(super) parent_span_id: String,
        pub(super) name: String,
        /// Its resource's `service.name`.
        pub(super) service: String,
    }

    #[derive(Debug, Clone, Default)]
    pub(super) struct Collector {
        spans: Arc<Mutex<Vec<Span>>>,
    }

    impl Collector {
        /// Serves on a free local port; the collector and its `http://` endpoint.
        pub(super) async fn start() -> (Self, String) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let endpoint = format!("http://{}", listener.local_addr().unwrap());
            let collector = Self::default();
            let server = tonic::transport::Server::builder()
                .add_service(collector.clone())
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
            tokio::spawn(server);
            (collector, endpoint)
        }

        pub(super) fn spans(&self) -> Vec<Span> {
            self.spans.lock().unwrap().clone()
        }
    }

    impl NamedService for Collector {
        const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    }

    impl Service<http::Request<Body>> for Collector {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            let spans = self.spans.clone();
            Box::pin(async move {
                let body = read_body(request.into_body()).await;
                let mut rest = body.as_slice();
                // gRPC frames: a compression flag (0: the exporter compresses nothing), the
                // length, the message.
                while rest.len() >= 5 {
                    let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
                    let message = &rest[5..5 + len];
                    spans.lock().unwrap().extend(export_request(message));
                    rest = &rest[5 + len..];
                }
                let reply = EncodeBody::new_server(
                    EmptyMessage,
                    tokio_stream::once(Ok(())),
                    None,
                    SingleMessageCompressionOverride::default(),
                    None,
                );
                Ok(http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(Body::new(reply))
                    .unwrap())
            })
        }
    }

    async fn read_body(body: Body) -> Vec<u8> {
        let mut body = Box::pin(body);
        let mut bytes = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            if let Ok(data) = frame.expect("a request body frame").into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        bytes
    }

    /// Encodes `()` as an empty message (`ExportTraceServiceResponse` with no field set).
    struct EmptyMessage;

    impl Encoder for EmptyMessage {
        type Item = ();
        type Error = tonic::Status;

        fn encode(&mut self, _: (), _: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// The spans of an `ExportTraceServiceRequest`: resource_spans (1) → resource (1),
    /// scope_spans (2) → spans (2) → trace_id (1), parent_span_id (4), name (5).
    fn export_request(message: &[u8]) -> Vec<Span> {
        let mut spans = Vec::new();
        for resource_spans in nested(message, 1) {
            let service = nested(resource_spans, 1)
                .into_iter()
                .flat_map(|resource| nested(resource, 1))
                .find(|kv| text(kv, 1) == "service.name")
                .map(|kv| {
                    nested(kv, 2)
                        .first()
                        .map(|v| text(v, 1))
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            for scope_spans in nested(resource_spans, 2) {
                for span in nested(scope_spans, 2) {
                    spans.push(Span {
                        trace_id: hex(nested(span, 1).first().copied().unwrap_or_default()),
                        parent_span_id: hex(nested(span, 4).first().copied().unwrap_or_default()),
                        name: text(span, 5),
                        service: service.clone(),
                    });
                }
            }
        }
        spans
    }

    /// The length-delimited fields numbered `number` of a protobuf message.
    fn nested(message: &[u8], number: u64) -> Vec<&[u8]> {
        let mut found = Vec::new();
        let mut rest = message;
        while !rest.is_empty() {
            let key = varint(&mut rest);
            let value: &[u8] = match key & 7 {
                0 => {
                    varint(&mut rest);
                    &[]
                }
                1 => skip(&mut rest, 8),
                2 => {
                    let len = varint(&mut rest) as usize;
                    skip(&mut rest, len)
                }
                5 => skip(&mut rest, 4),
                other => panic!("wire type {other} in an OTLP message"),
            };
            if key >> 3 == number && key & 7 == 2 {
                found.push(value);
            }
        }
        found
    }

    fn varint(rest: &mut &[u8]) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = rest[0];
            *rest = &rest[1..];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        value
    }

    fn skip<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (taken, after) = rest.split_at(n);
        *rest = after;
        taken
    }

    fn text(message: &[u8], number: u64) -> String {
        nested(message, number)
            .first()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

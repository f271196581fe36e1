//! Mutual TLS between the real programs: `nsm serve`, `nsm endpoint` and `nsm request`, each
//! with an X.509-SVID of a throw-away trust domain written to files, over unix sockets. The
//! node records the client's SPIFFE ID (under `--insecure`, everyone as unauthenticated); a
//! node without an identity does not start; a plaintext client and a client of another
//! trust domain are refused with errors that name the cause.

use std::path::Path;
use std::time::Duration;

use nsm_identity::{Identity, SpiffeId, SvidFiles, ThrowAwayTrustDomain};
use nsm_proto::transport::Security;
use nsm_tests::mesh::{Node, identity_flags, node_with_endpoint, nsm_binary, request_vwire};
use nsm_tests::programs::{EndpointProgram, RequestProgram, streams, wait_registered_with};

const TRUST_DOMAIN: &str = "nsm-rs.test";
const CLIENT_ID: &str = "spiffe://nsm-rs.test/client/nsc-1";

/// An SVID for `path` in `ca`'s trust domain.
fn issue(ca: &ThrowAwayTrustDomain, path: &str) -> nsm_identity::IssuedSvid {
    let id = SpiffeId::from_parts(ca.trust_domain(), path).unwrap();
    ca.issue(&id, Duration::from_secs(3600)).unwrap()
}

/// An SVID for `path` in `ca`'s trust domain, written to `dir` as `<name>.*.pem`.
fn svid_files(ca: &ThrowAwayTrustDomain, path: &str, dir: &Path, name: &str) -> SvidFiles {
    issue(ca, path).write_files(dir, name).unwrap()
}

/// The test's own identity, for its health checks and registry queries.
fn test_caller(ca: &ThrowAwayTrustDomain) -> Security {
    let issued = issue(ca, "/test");
    Security::mtls(Identity::new(issued.svid().unwrap(), issued.bundle().unwrap()).unwrap())
}

/// A node with mutual TLS, and the endpoint `nse-1` (mutual TLS too) registered with it.
async fn secure_node_and_endpoint(
    ca: &ThrowAwayTrustDomain,
    dir: &Path,
) -> (Node, EndpointProgram) {
    let caller = test_caller(ca);
    let node_files = svid_files(ca, "/node/node-a", dir, "node");
    let node = Node::start_secure(dir, &node_files, caller.clone(), &[]).await;
    let endpoint_files = svid_files(ca, "/endpoint/nse-1", dir, "nse");
    let endpoint = EndpointProgram::start_secure(
        dir,
        ["nse-1", "icmp", "172.16.9.0/24", &node.url()],
        &endpoint_files,
        &caller,
    )
    .await;
    wait_registered_with(&node.url(), "nse-1", &caller).await;
    (node, endpoint)
}

/// Runs `nsm request` with `args` against `node` until it exits; its exit status and log.
async fn failed_request(dir: &Path, node: &Node, args: &[&str]) -> String {
    let mut client =
        RequestProgram::start(dir, &node.url(), &[&["--service", "icmp"], args].concat());
    let status = client.exit().await;
    let log = client.log_text();
    assert!(!status.success(), "the request succeeded:\n{log}");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vwire_over_mutual_tls_records_the_clients_spiffe_id() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ThrowAwayTrustDomain::new(TRUST_DOMAIN).unwrap();
    let (node, _endpoint) = secure_node_and_endpoint(&ca, dir.path()).await;
    let client_files = svid_files(&ca, "/client/nsc-1", dir.path(), "nsc");
    let flags = identity_flags(&client_files);
    let mut args = vec!["--service", "icmp", "--hold", "2s"];
    args.extend(flags.iter().map(String::as_str));
    let mut client = RequestProgram::start(dir.path(), &node.url(), &args);
    let connection = client.next_connection().await;
    assert_eq!(connection["state"], "UP", "{connection}");
    assert_eq!(connection["network_service_endpoint_name"], "nse-1");
    assert!(client.exit().await.success(), "{}", client.log_text());

    let vwires: Vec<_> = streams(&node.db)
        .await
        .into_iter()
        .filter(|(stream, _)| stream.starts_with("vwire-"))
        .collect();
    assert_eq!(vwires.len(), 1, "{vwires:?}");
    let (_, events) = &vwires[0];
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert!(types.contains(&"Established"), "{types:?}");
    let requested = events
        .iter()
        .find(|e| e.event_type == "Requested")
        .expect("a Requested event");
    let payload: serde_json::Value = serde_json::from_str(&requested.payload).unwrap();
    assert_eq!(payload["client"], CLIENT_ID, "{payload}");
    assert!(
        node.log_text().contains("spiffe://nsm-rs.test/node/node-a"),
        "the node does not log its own SPIFFE ID:\n{}",
        node.log_text()
    );
}

#[test]
fn a_node_with_neither_an_identity_nor_insecure_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let output = std::process::Command::new(nsm_binary())
        .args(["serve", "--dataplane", "dry-run", "--listen"])
        .arg(format!("unix://{}", dir.path().join("nsm.sock").display()))
        .arg("--db")
        .arg(&db)
        .env_remove("NSM_INSECURE")
        .output()
        .expect("run nsm serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for named in ["--svid-cert", "--svid-key", "--trust-bundle", "--insecure"] {
        assert!(stderr.contains(named), "{named} is not named: {stderr}");
    }
    assert!(!db.exists(), "the node opened its log before refusing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_told_the_node_requires_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ThrowAwayTrustDomain::new(TRUST_DOMAIN).unwrap();
    let (node, _endpoint) = secure_node_and_endpoint(&ca, dir.path()).await;
    // `RequestProgram` adds `--insecure` when no SVID is given. The listener answers the
    // plaintext preface with a GOAWAY naming the cause; hyper reports it for a request it
    // has handed to h2, but a request still queued when the GOAWAY lands fails as a bare
    // "connection closed" (nsm-identity's refusal does not wait for the client's first
    // HEADERS frame; about one attempt in four here). Every attempt must be refused, for one
    // of those two reasons, and the cause must reach the user within a few attempts.
    let mut logs = Vec::new();
    for _ in 0..8 {
        let log = failed_request(dir.path(), &node, &[]).await;
        assert!(
            log.contains("requires mutual TLS") || log.contains("connection closed"),
            "{log}"
        );
        let named = log.contains("requires mutual TLS");
        logs.push(log);
        if named {
            break;
        }
    }
    assert!(
        logs.last()
            .is_some_and(|log| log.contains("requires mutual TLS")),
        "no attempt named the cause:\n{}",
        logs.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_trust_domain_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ThrowAwayTrustDomain::new(TRUST_DOMAIN).unwrap();
    let (node, _endpoint) = secure_node_and_endpoint(&ca, dir.path()).await;
    let elsewhere = ThrowAwayTrustDomain::new("elsewhere.test").unwrap();
    let stranger = svid_files(&elsewhere, "/client/nsc-1", dir.path(), "stranger");
    let flags = identity_flags(&stranger);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let log = failed_request(dir.path(), &node, &args).await;
    assert!(
        log.contains("nsm-rs.test") && log.contains("elsewhere.test"),
        "{log}"
    );
    let vwires = streams(&node.db).await;
    assert!(
        vwires.keys().all(|stream| !stream.starts_with("vwire-")),
        "a refused client got a vWire: {vwires:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insecure_node_records_every_client_as_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _endpoint) = node_with_endpoint(dir.path(), &[]).await;
    let (_, vwire) = request_vwire(&node, "nsc-1").await;
    let events = streams(&node.db).await;
    let requested = events[&format!("vwire-{vwire}")]
        .iter()
        .find(|e| e.event_type == "Requested")
        .expect("a Requested event");
    let payload: serde_json::Value = serde_json::from_str(&requested.payload).unwrap();
    assert_eq!(payload["client"], "spiffe://nsm-rs.local/unauthenticated");
    assert!(
        node.log_text().contains("development mode (--insecure)"),
        "no warning at start:\n{}",
        node.log_text()
    );
}

//! Bad input to the kernel data plane, end to end: each is refused with a gRPC error naming
//! the problem, recorded as `Failed` (stage `dataplane`), and leaves nothing behind in any
//! namespace; and a node without the capabilities refuses to start, naming them.
//!
//! Root only (network namespaces); skipped outside CI without it, failed under `CI=true`.

use nsm_domain::vwire::{FailureStage, VWireEvent};
use nsm_tests::kernel::kernel_mesh;
use nsm_tests::mesh::kernel_request;
use nsm_tests::netns::{TestNet, can_run, run};
use nsm_tests::programs::{refused, streams};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_kernel_request_is_refused_recorded_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsmb", &["host", "c1", "e1"]);
    let (node, _endpoint) = kernel_mesh(dir.path(), &net, "node-bad", "172.26.0.0/24", &[]).await;

    // What the client's namespace already holds: a link named nsm-1, and the address the
    // endpoint hands out first to a client (172.26.0.2) on another link. (veth pairs: the
    // kernels CI runs on may lack the dummy driver.)
    let c1_name = net.name("c1");
    let pair = |name: &str| {
        let peer = format!("{name}p");
        run(
            "ip",
            &[
                "-n", &c1_name, "link", "add", name, "type", "veth", "peer", "name", &peer,
            ],
        );
    };
    pair("nsm-1");
    pair("taken0");
    run(
        "ip",
        &[
            "-n",
            &net.name("c1"),
            "addr",
            "add",
            "172.26.0.2/32",
            "dev",
            "taken0",
        ],
    );
    let plain_file = dir.path().join("not-a-namespace");
    std::fs::write(&plain_file, b"x").unwrap();
    let plain_url = format!("file://{}", plain_file.display());
    let missing_url = format!("file:///var/run/netns/{}-gone", net.name("c1"));
    let c1 = net.url("c1");
    let cases: [(&str, &str, Code, &str); 5] = [
        (
            &c1,
            "nsm-2",
            Code::AlreadyExists,
            "address 172.26.0.2 is already on interface",
        ),
        (
            &missing_url,
            "nsm-2",
            Code::InvalidArgument,
            "does not exist",
        ),
        (
            &plain_url,
            "nsm-2",
            Code::InvalidArgument,
            "is not a network namespace",
        ),
        (
            &c1,
            "much-too-long-name",
            Code::InvalidArgument,
            "must be 1-15 characters",
        ),
        (
            &c1,
            "nsm-1",
            Code::AlreadyExists,
            "interface name nsm-1 is already taken",
        ),
    ];
    let before = net.links("c1");
    for (url, interface, code, mentions) in cases {
        let request = kernel_request("icmp", "nsc-1", url, interface);
        let answer = node.network_service().request(request).await;
        refused(answer, code, &[mentions]);
        for ns in ["host", "e1"] {
            assert!(
                net.links(ns).is_empty(),
                "{mentions}: left in {ns}: {:?}",
                net.links(ns)
            );
        }
        assert_eq!(
            net.links("c1"),
            before,
            "{mentions}: the client's namespace changed"
        );
    }
    // Each refusal is a vWire that was requested and failed in the data plane.
    let recorded = streams(&node.db).await;
    let failures: Vec<_> = recorded
        .iter()
        .filter(|(stream, _)| stream.starts_with("vwire-"))
        .map(|(_, events)| {
            let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
            assert_eq!(types, ["Requested", "Failed"]);
            match VWireEvent::decode(&events[1]).unwrap() {
                VWireEvent::Failed(failed) => failed,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(failures.len(), 5);
    assert!(failures.iter().all(|f| f.stage == FailureStage::Dataplane));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_handing_out_invalid_or_overlapping_addresses_is_refused_and_nothing_is_made() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsma", &["host", "c1", "e1"]);
    let node = nsm_tests::kernel::kernel_node(dir.path(), &net, "node-addr", &[]).await;
    let endpoint = nsm_tests::fake_endpoint::FakeEndpoint::start(dir.path(), "nse-f").await;
    endpoint.in_netns(&net.url("e1"));
    let lifetime = chrono::Duration::hours(1);
    nsm_tests::mesh::register(&node, "icmp", "nse-f", &endpoint.url(), &[], lifetime).await;
    for ((client, server), mentions) in [
        (("10.61.0.1/33", "10.61.0.2/32"), "10.61.0.1/33"),
        (("10.61.0.1/32", "10.61.0.1/32"), "given to both ends"),
    ] {
        endpoint.hand_out(client, server);
        let request = kernel_request("icmp", "nsc-1", &net.url("c1"), "nsm-1");
        let answer = node.network_service().request(request).await;
        refused(
            answer,
            Code::Unavailable,
            &["nse-f: invalid reply", mentions],
        );
        for ns in ["host", "c1", "e1"] {
            assert!(
                net.links(ns).is_empty(),
                "{mentions}: left in {ns}: {:?}",
                net.links(ns)
            );
        }
    }
    let recorded = streams(&node.db).await;
    let vwires: Vec<_> = recorded
        .iter()
        .filter(|(s, _)| s.starts_with("vwire-"))
        .collect();
    assert_eq!(vwires.len(), 2);
    for (_, events) in vwires {
        let Ok(VWireEvent::Failed(failed)) = VWireEvent::decode(&events[1]) else {
            panic!("{events:?}");
        };
        assert_eq!(failed.stage, FailureStage::Endpoint);
    }
}

#[test]
fn a_node_without_the_capabilities_refuses_the_kernel_data_plane_naming_them() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let socket = format!("unix://{}", dir.path().join("nsm.sock").display());
    // As nobody, with no capabilities at all.
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(nsm_tests::mesh::nsm_binary())
        .args([
            "serve",
            "--insecure",
            "--dataplane",
            "kernel",
            "--listen",
            &socket,
            "--db",
        ])
        .arg(&db)
        .output()
        .expect("run setpriv (util-linux)");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--dataplane kernel needs CAP_NET_ADMIN and CAP_SYS_ADMIN")
            && stderr.contains("lacks CAP_NET_ADMIN and CAP_SYS_ADMIN"),
        "{stderr}"
    );
    assert!(!db.exists(), "nothing is created before the check");
}

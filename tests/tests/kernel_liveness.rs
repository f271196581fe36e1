//! The datapath liveness probe on the kernel data plane, end to end: a vWire that stops
//! carrying traffic is recorded (`ProbeFailed`) and re-plumbed (`Healed`); one whose
//! client's namespace is gone is closed by the node.
//!
//! Root only (network namespaces); skipped outside CI without it, failed under `CI=true`.

use std::time::Duration;

use nsm_domain::vwire::{ClosedBy, VWireEvent};
use nsm_tests::kernel::{addresses, kernel_mesh, request_icmp, vwire_of};
use nsm_tests::mesh::Node;
use nsm_tests::netns::{TestNet, can_run, run};
use nsm_tests::programs::{EndpointProgram, streams};

async fn probed_mesh(dir: &std::path::Path, net: &TestNet, node: &str) -> (Node, EndpointProgram) {
    let probes = [
        "--liveness-interval",
        "200ms",
        "--liveness-timeout",
        "400ms",
    ];
    kernel_mesh(dir, net, node, "172.27.0.0/24", &probes).await
}

/// The vWire's events, once `done` holds for them (or a panic after 30 s).
async fn wait_for(
    node: &Node,
    vwire: &str,
    done: impl Fn(&[VWireEvent]) -> bool,
) -> Vec<VWireEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let recorded = streams(&node.db).await;
        let events: Vec<VWireEvent> = recorded
            .get(&format!("vwire-{vwire}"))
            .into_iter()
            .flatten()
            .map(|e| VWireEvent::decode(e).unwrap())
            .collect();
        if done(&events) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{events:?}\n{}",
            node.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datapath_that_stops_carrying_traffic_is_recorded_and_replumbed() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsml", &["host", "c1", "e1"]);
    let (node, _endpoint) = probed_mesh(dir.path(), &net, "node-probe").await;
    let connection = request_icmp(&node, &net, "c1", "nsm-1").await;
    let vwire = vwire_of(&connection);
    let (_, target) = addresses(&connection);
    assert!(net.ping("c1", "nsm-1", &target));

    // Break it from the endpoint's side: its end goes down.
    let endpoint_end = net.links_of("e1", &vwire).remove(0).name;
    run(
        "ip",
        &["-n", &net.name("e1"), "link", "set", &endpoint_end, "down"],
    );
    let events = wait_for(&node, &vwire, |events| {
        events.iter().any(|e| matches!(e, VWireEvent::Healed(_)))
    })
    .await;
    let at = events
        .iter()
        .position(|e| matches!(e, VWireEvent::ProbeFailed(_)))
        .expect("the failed probe is recorded");
    let VWireEvent::ProbeFailed(failed) = &events[at] else {
        unreachable!()
    };
    assert!(
        failed.probe.contains(&target) && failed.probe.contains("nsm-1"),
        "{failed:?}"
    );
    assert!(
        matches!(events[at + 1], VWireEvent::DataplanePlumbed(_)),
        "{events:?}"
    );
    assert!(
        matches!(events[at + 2], VWireEvent::Healed(_)),
        "{events:?}"
    );
    assert!(net.links_of("e1", &vwire).iter().all(|l| l.up));
    assert!(net.ping("c1", "nsm-1", &target), "traffic after the heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vwire_whose_client_namespace_is_gone_is_closed_by_the_node() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut net = TestNet::new("nsmg", &["host", "c1", "e1"]);
    let (node, endpoint) = probed_mesh(dir.path(), &net, "node-gone").await;
    let connection = request_icmp(&node, &net, "c1", "nsm-1").await;
    let vwire = vwire_of(&connection);
    net.remove("c1");
    let events = wait_for(&node, &vwire, |events| {
        matches!(events.last(), Some(VWireEvent::Closed(_)))
    })
    .await;
    let Some(VWireEvent::Closed(closed)) = events.last() else {
        unreachable!()
    };
    assert_eq!(closed.by, ClosedBy::Node);
    assert!(closed.reason.contains("does not exist"), "{closed:?}");
    assert!(net.links_of("e1", &vwire).is_empty());
    // The endpoint was told: its addresses are released.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !endpoint
        .ipam_log()
        .await
        .iter()
        .any(|r| r.kind == "released")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the endpoint was not told"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

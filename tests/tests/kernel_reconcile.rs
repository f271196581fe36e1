//! Start-up reconcile on the kernel data plane, end to end: what an operator (or a crash)
//! did to the links while `nsm serve` was down is undone at the next start, and each repair
//! is in the log.
//!
//! Root only (network namespaces); skipped outside CI without it, failed under `CI=true`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use nsm_domain::vwire::VWireEvent;
use nsm_proto::connection::Connection;
use nsm_tests::kernel::{addresses, kernel_mesh, request_icmp, vwire_of};
use nsm_tests::mesh::{Node, kernel_request};
use nsm_tests::netns::{TestNet, address, can_run};
use nsm_tests::programs::{EndpointProgram, streams};

fn endpoint_address(connection: &Connection) -> String {
    addresses(connection).1
}

async fn mesh(
    dir: &std::path::Path,
    net: &TestNet,
    node: &str,
    cidr: &str,
) -> (Node, EndpointProgram) {
    kernel_mesh(dir, net, node, cidr, &[]).await
}

/// The events of every stream, decoded where they are vWire events, by stream.
async fn event_types(db: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    streams(db)
        .await
        .into_iter()
        .map(|(stream, events)| (stream, events.into_iter().map(|e| e.event_type).collect()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_deleted_while_the_node_was_down_is_back_after_restart_and_carries_traffic() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsmr", &["host", "c1", "e1"]);
    let (mut node, _endpoint) = mesh(dir.path(), &net, "node-heal", "172.24.1.0/24").await;
    let connection = request_icmp(&node, &net, "c1", "nsm-1").await;
    let target = endpoint_address(&connection);
    assert!(net.ping("c1", "nsm-1", &target));

    node.stop();
    nsm_tests::netns::run("ip", &["-n", &net.name("c1"), "link", "del", "nsm-1"]);
    assert!(
        net.links_of("e1", &vwire_of(&connection)).is_empty(),
        "its peer went with it"
    );
    node.start_again().await;

    assert!(
        net.ping("c1", "nsm-1", &target),
        "no traffic after the restart:\n{}",
        node.log_text()
    );
    let vwire = vwire_of(&connection);
    assert_eq!(net.links_of("c1", &vwire).len(), 1);
    assert_eq!(net.links_of("e1", &vwire).len(), 1);
    let recorded = streams(&node.db).await;
    let events = &recorded[&format!("vwire-{vwire}")];
    let healed = events
        .iter()
        .filter_map(|e| match VWireEvent::decode(e).unwrap() {
            VWireEvent::Healed(healed) => Some(healed),
            _ => None,
        })
        .next()
        .expect("a Healed event");
    assert!(
        healed
            .repairs
            .iter()
            .any(|r| r.contains("nsm-1") && r.contains("missing")),
        "{healed:?}"
    );
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types[types.len() - 2..], ["DataplanePlumbed", "Healed"]);
    let summary = event_types(&node.db).await;
    assert_eq!(summary["dataplane-node-heal"], ["Reconciled", "Reconciled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_tagged_for_an_unknown_vwire_is_gone_after_restart_and_others_are_kept() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsmo", &["host", "c1", "e1", "x"]);
    let (mut node, _endpoint) = mesh(dir.path(), &net, "node-orphan", "172.24.2.0/24").await;
    let kept = request_icmp(&node, &net, "c1", "nsm-1").await;
    node.stop();

    let unknown = uuid::Uuid::new_v4();
    let tag = |node: &str| format!("nsm-rs vwire={unknown} end=client node={node}");
    let make = |ns: &str, name: &str, alias: &str| {
        let netns = net.name(ns);
        let peer = format!("{name}p");
        nsm_tests::netns::run(
            "ip",
            &[
                "-n", &netns, "link", "add", name, "type", "veth", "peer", "name", &peer,
            ],
        );
        nsm_tests::netns::run("ip", &["-n", &netns, "link", "set", name, "alias", alias]);
    };
    // An orphan in the client's namespace, one in a namespace no vWire names, one of
    // another node, and one that merely looks like a tag.
    make("c1", "orph-1", &tag("node-orphan"));
    make("x", "orph-2", &tag("node-orphan"));
    make("x", "other-1", &tag("some-other-node"));
    make("x", "plain-1", "nsm-rs is great");
    node.start_again().await;

    let names =
        |ns: &str| -> HashSet<String> { net.links(ns).into_iter().map(|l| l.name).collect() };
    assert!(!names("c1").contains("orph-1"), "{:?}", names("c1"));
    assert!(!names("c1").contains("orph-1p"), "its peer went with it");
    let x = names("x");
    assert!(!x.contains("orph-2"), "{x:?}");
    for kept in ["other-1", "other-1p", "plain-1", "plain-1p"] {
        assert!(x.contains(kept), "{kept} was removed: {x:?}");
    }
    assert!(net.ping("c1", "nsm-1", &endpoint_address(&kept)));

    let recorded = streams(&node.db).await;
    let dataplane = &recorded["dataplane-node-orphan"];
    let removed = dataplane
        .iter()
        .filter_map(
            |e| match nsm_domain::dataplane::DataplaneEvent::decode(e).unwrap() {
                nsm_domain::dataplane::DataplaneEvent::OrphansRemoved(removed) => Some(removed),
                _ => None,
            },
        )
        .next()
        .expect("an OrphansRemoved event");
    assert_eq!(removed.objects.len(), 2, "{removed:?}");
    assert!(
        removed
            .objects
            .iter()
            .all(|o| o.vwire.map(|v| v.0) == Some(unknown))
    );
    assert!(removed.objects.iter().any(|o| o.object.contains("orph-1")));
    assert!(removed.objects.iter().any(|o| o.object.contains("orph-2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_plumbing_100_vwires_leaves_every_established_one_working_and_no_stray_link()
{
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let clients: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let mut shorts = vec!["host", "e1"];
    shorts.extend(clients.iter().map(String::as_str));
    let net = TestNet::new("nsmk", &shorts);
    let (mut node, _endpoint) = mesh(dir.path(), &net, "node-kill", "172.25.0.0/16").await;

    let mut requests = Vec::new();
    for client in &clients {
        for interface in 0..10 {
            let request = kernel_request(
                "icmp",
                &format!("nsc-{client}"),
                &net.url(client),
                &format!("nsm-{interface}"),
            );
            let mut grpc = node.network_service();
            requests.push(tokio::spawn(async move { grpc.request(request).await }));
        }
    }
    // Kill once some are established and others are still being made.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = requests.iter().filter(|r| r.is_finished()).count();
        if done >= 20 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done} answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.sigkill();
    for request in requests {
        let _ = request.await;
    }
    node.start_again().await;

    // Every vWire the log says is established carries traffic; every other one has ended.
    let recorded = streams(&node.db).await;
    let mut live = HashSet::new();
    for (stream, events) in &recorded {
        let Some(id) = stream.strip_prefix("vwire-") else {
            continue;
        };
        let decoded: Vec<VWireEvent> = events
            .iter()
            .map(|e| VWireEvent::decode(e).unwrap())
            .collect();
        let Some(VWireEvent::Established(established)) = decoded
            .iter()
            .find(|e| matches!(e, VWireEvent::Established(_)))
            .cloned()
        else {
            assert!(
                matches!(decoded.last(), Some(VWireEvent::Failed(_))),
                "{stream} neither established nor failed: {decoded:?}"
            );
            continue;
        };
        assert!(!matches!(
            decoded.last(),
            Some(VWireEvent::Failed(_) | VWireEvent::Closed(_))
        ));
        live.insert(id.to_owned());
        let netns_url = &established.mechanism.parameters["inodeURL"];
        let client = clients
            .iter()
            .find(|c| net.url(c) == *netns_url)
            .expect("one of the clients");
        let interface = &established.mechanism.parameters["name"];
        let target = address(&established.context.ip.dst_ip_addrs[0]);
        assert!(
            net.ping(client, interface, &target),
            "{stream}: no reply from {target} over {interface} in {client}"
        );
    }
    assert!(live.len() >= 20, "only {} established", live.len());
    let vwires = recorded.keys().filter(|s| s.starts_with("vwire-")).count();
    let dataplane: Vec<_> = recorded["dataplane-node-kill"]
        .iter()
        .map(|e| e.payload.clone())
        .collect();
    eprintln!(
        "{vwires} vWires recorded, {} established; reconcile: {dataplane:?}",
        live.len()
    );
    // No link is tagged for anything but a live vWire; the node's namespace holds none.
    for ns in clients.iter().map(String::as_str).chain(["e1"]) {
        for link in net.links(ns) {
            let alias = link.alias.clone().unwrap_or_default();
            let owner = alias
                .split(' ')
                .find_map(|w| w.strip_prefix("vwire="))
                .unwrap_or_default();
            assert!(live.contains(owner), "{ns}: stray link {link:?}");
        }
    }
    assert!(net.links("host").is_empty(), "{:?}", net.links("host"));
}

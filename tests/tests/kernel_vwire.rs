//! The vWire contract on the kernel data plane, end to end: the real `nsm serve`
//! (`--dataplane kernel`, in a namespace of its own standing for the node), the real
//! `nsm endpoint` in the endpoint's namespace, clients speaking NSM's gRPC, and packets
//! checked with `ping` and the kernel's own counters.
//!
//! Root only (network namespaces); skipped outside CI without it, failed under `CI=true`.

use std::time::Duration;

use nsm_proto::connection::Connection;
use nsm_tests::kernel::{addresses, kernel_endpoint, kernel_node, vwire_of};
use nsm_tests::mesh::{Node, kernel_request};
use nsm_tests::netns::{TestNet, can_run, run};
use nsm_tests::programs::{EndpointProgram, vwire_streams};
use tonic::Code;

async fn endpoint(
    dir: &std::path::Path,
    node: &Node,
    net: &TestNet,
    name: &str,
    service: &str,
    cidr: &str,
    netns: &str,
) -> EndpointProgram {
    kernel_endpoint(dir, node, net, (name, service, cidr), netns).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_cross_a_vwire_and_nothing_else_reaches_its_endpoint() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsmv", &["host", "c1", "e1", "e2", "third"]);
    let node = kernel_node(dir.path(), &net, "node-contract", &[]).await;
    let _a = endpoint(
        dir.path(),
        &node,
        &net,
        "nse-a",
        "icmp",
        "172.20.1.0/24",
        "e1",
    )
    .await;
    let _b = endpoint(
        dir.path(),
        &node,
        &net,
        "nse-b",
        "other",
        "172.20.2.0/24",
        "e2",
    )
    .await;
    let client = node.network_service();
    let ask = |service: &'static str, interface: &'static str| {
        let request = kernel_request(service, "nsc-1", &net.url("c1"), interface);
        let mut client = client.clone();
        async move { client.request(request).await.expect("request").into_inner() }
    };
    // Two vWires from one client to one endpoint, and one to another service.
    let first = ask("icmp", "nsm-1").await;
    let second = ask("icmp", "nsm-2").await;
    let other = ask("other", "nsm-3").await;
    for (connection, interface) in [(&first, "nsm-1"), (&second, "nsm-2"), (&other, "nsm-3")] {
        let (_, endpoint_addr) = addresses(connection);
        assert!(
            net.ping("c1", interface, &endpoint_addr),
            "no reply from {endpoint_addr} over {interface}:\n{}",
            node.log_text()
        );
    }

    // Isolation: the pings of the first vWire never show on the second's endpoint end.
    let endpoint_end = |connection: &Connection| {
        let links = net.links_of("e1", &vwire_of(connection));
        assert_eq!(links.len(), 1, "{links:?}");
        links[0].clone()
    };
    let quiet_before = endpoint_end(&second).rx_packets;
    let busy_before = endpoint_end(&first).rx_packets;
    let (_, first_endpoint) = addresses(&first);
    for _ in 0..5 {
        assert!(net.ping("c1", "nsm-1", &first_endpoint));
    }
    assert_eq!(endpoint_end(&second).rx_packets, quiet_before);
    assert!(endpoint_end(&first).rx_packets >= busy_before + 5);
    // Out of nsm-2, the first vWire's endpoint is not on the wire at all.
    let (_, second_endpoint) = addresses(&second);
    assert_ne!(first_endpoint, second_endpoint);

    // A third namespace routed through the node's namespace (forwarding on) cannot reach the
    // endpoint: the vWire does not pass through the node's routing.
    let (host, third) = (net.name("host"), net.name("third"));
    run(
        "ip",
        &[
            "link", "add", "t-host", "netns", &host, "type", "veth", "peer", "name", "t-third",
            "netns", &third,
        ],
    );
    net.exec(
        "host",
        &["ip", "addr", "add", "192.168.77.1/24", "dev", "t-host"],
    );
    net.exec("host", &["ip", "link", "set", "t-host", "up"]);
    net.exec("host", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    net.exec(
        "third",
        &["ip", "addr", "add", "192.168.77.2/24", "dev", "t-third"],
    );
    net.exec("third", &["ip", "link", "set", "t-third", "up"]);
    net.exec(
        "third",
        &["ip", "route", "add", "default", "via", "192.168.77.1"],
    );
    assert!(
        net.ping_any("third", "192.168.77.1"),
        "the third namespace reaches the node's"
    );
    assert!(!net.ping_any("third", &first_endpoint));
    // The node's own namespace holds no link of any vWire.
    let tagged: Vec<_> = net
        .links("host")
        .into_iter()
        .filter(|l| l.alias.as_deref().is_some_and(|a| a.starts_with("nsm-rs")))
        .collect();
    assert!(tagged.is_empty(), "{tagged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_expiry_remove_every_link_of_the_vwire_and_only_those() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsmc", &["host", "c1", "e1"]);
    let node = kernel_node(dir.path(), &net, "node-close", &["--lifetime", "3s"]).await;
    let _e = endpoint(
        dir.path(),
        &node,
        &net,
        "nse-a",
        "icmp",
        "172.20.3.0/24",
        "e1",
    )
    .await;
    let mut client = node.network_service();
    let request = |interface: &str| kernel_request("icmp", "nsc-1", &net.url("c1"), interface);
    let closed = client.request(request("nsm-1")).await.unwrap().into_inner();
    let expiring = client.request(request("nsm-2")).await.unwrap().into_inner();
    for connection in [&closed, &expiring] {
        let vwire = vwire_of(connection);
        assert_eq!(net.links_of("c1", &vwire).len(), 1);
        assert_eq!(net.links_of("e1", &vwire).len(), 1);
    }
    client.close(closed.clone()).await.expect("close");
    assert!(net.links_of("c1", &vwire_of(&closed)).is_empty());
    assert!(net.links_of("e1", &vwire_of(&closed)).is_empty());
    // The other vWire is untouched until its own deadline.
    assert_eq!(net.links_of("c1", &vwire_of(&expiring)).len(), 1);

    let stream = format!("vwire-{}", vwire_of(&expiring));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let streams = vwire_streams(&node.db).await;
        if streams[&stream].last().map(String::as_str) == Some("Expired") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{streams:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(net.links_of("c1", &vwire_of(&expiring)).is_empty());
    assert!(net.links_of("e1", &vwire_of(&expiring)).is_empty());
    let streams = vwire_streams(&node.db).await;
    let closed_events = &streams[&format!("vwire-{}", vwire_of(&closed))];
    assert_eq!(
        closed_events[closed_events.len() - 2..],
        ["DataplaneUnplumbed".to_owned(), "Closed".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vwire_that_fails_while_being_plumbed_leaves_no_link() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsmf", &["host", "c1", "e1"]);
    let node = kernel_node(dir.path(), &net, "node-fail", &[]).await;
    let endpoint = nsm_tests::fake_endpoint::FakeEndpoint::start(dir.path(), "nse-f").await;
    endpoint.in_netns(&net.url("e1"));
    // A route whose next hop is on no link: the pair is made, then this route fails.
    endpoint.add_client_route("10.77.0.0/16", "192.0.2.1");
    nsm_tests::mesh::register(
        &node,
        "icmp",
        "nse-f",
        &endpoint.url(),
        &[],
        chrono::Duration::hours(1),
    )
    .await;
    let refused = node
        .network_service()
        .request(kernel_request("icmp", "nsc-1", &net.url("c1"), "nsm-1"))
        .await;
    let status = nsm_tests::programs::refused(
        refused,
        Code::InvalidArgument,
        &["next hop 192.0.2.1 is not reachable"],
    );
    for ns in ["host", "c1", "e1"] {
        assert!(
            net.links(ns).is_empty(),
            "{ns}: {:?} ({status:?})",
            net.links(ns)
        );
    }
    let streams = vwire_streams(&node.db).await;
    let events: Vec<_> = streams.values().collect();
    assert_eq!(events, [&vec!["Requested".to_owned(), "Failed".to_owned()]]);
    assert_eq!(
        endpoint.seen().closes.len(),
        1,
        "the endpoint is told to close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_named_by_its_process_namespace_gets_a_working_vwire() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::new("nsmp", &["host", "c1", "e1"]);
    let node = kernel_node(dir.path(), &net, "node-proc", &[]).await;
    let _e = endpoint(
        dir.path(),
        &node,
        &net,
        "nse-a",
        "icmp",
        "172.20.4.0/24",
        "e1",
    )
    .await;
    // A process inside the client's namespace; the client names the namespace by it, as
    // a pod's sidecar does (file:///proc/<pid>/ns/net).
    let mut holder = std::process::Command::new("ip")
        .args(["netns", "exec", &net.name("c1"), "sleep", "60"])
        .spawn()
        .expect("start a process in the namespace");
    // `ip netns exec` enters the namespace just after it starts: wait until it has.
    let path = format!("/proc/{}/ns/net", holder.id());
    let inode =
        |path: &str| std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let wanted = inode(&format!("/var/run/netns/{}", net.name("c1"))).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while inode(&path).ok() != Some(wanted) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the process never entered c1"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let url = format!("file://{path}");
    let connection = node
        .network_service()
        .request(kernel_request("icmp", "nsc-1", &url, "nsm-1"))
        .await
        .expect("request")
        .into_inner();
    let (_, endpoint_addr) = addresses(&connection);
    assert!(net.ping("c1", "nsm-1", &endpoint_addr));
    let _ = holder.kill();
    let _ = holder.wait();
}

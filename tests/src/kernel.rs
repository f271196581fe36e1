//! What the kernel data-plane tests share: a node on the kernel data plane in the `host`
//! namespace of a [`TestNet`], `nsm endpoint` with its ends in a namespace of the net,
//! kernel Requests, and reading a returned connection.

use std::path::Path;

use nsm_proto::connection::Connection;

use crate::mesh::{Node, kernel_request};
use crate::netns::{TestNet, address};
use crate::programs::{EndpointProgram, wait_registered};

/// `nsm serve --dataplane kernel <flags>` named `node`, inside the net's `host` namespace.
pub async fn kernel_node(dir: &Path, net: &TestNet, node: &str, flags: &[&str]) -> Node {
    let mut all = vec!["--dataplane", "kernel"];
    all.extend_from_slice(flags);
    Node::start_in(dir, Some(&net.name("host")), node, &all).await
}

/// `nsm endpoint` `name` serving `service` from `cidr`, its ends in the net's namespace
/// `netns`, registered with `node` before this returns.
pub async fn kernel_endpoint(
    dir: &Path,
    node: &Node,
    net: &TestNet,
    (name, service, cidr): (&str, &str, &str),
    netns: &str,
) -> EndpointProgram {
    let netns = format!("/var/run/netns/{}", net.name(netns));
    let program =
        EndpointProgram::start_with(dir, name, service, cidr, &node.url(), &["--netns", &netns])
            .await;
    wait_registered(&node.url(), name).await;
    program
}

/// A kernel node `node` (with `flags`) whose service `icmp` is served by endpoint `nse-a`
/// from `cidr`, its ends in namespace `e1`.
pub async fn kernel_mesh(
    dir: &Path,
    net: &TestNet,
    node: &str,
    cidr: &str,
    flags: &[&str],
) -> (Node, EndpointProgram) {
    let node = kernel_node(dir, net, node, flags).await;
    let endpoint = kernel_endpoint(dir, &node, net, ("nse-a", "icmp", cidr), "e1").await;
    (node, endpoint)
}

/// Client `nsc-1` asks for `icmp` with its end `interface` in the net's namespace `client`.
pub async fn request_icmp(node: &Node, net: &TestNet, client: &str, interface: &str) -> Connection {
    node.network_service()
        .request(kernel_request("icmp", "nsc-1", &net.url(client), interface))
        .await
        .expect("request")
        .into_inner()
}

/// The vWire id of a connection the node returned (its own path segment's id).
pub fn vwire_of(connection: &Connection) -> String {
    connection.path.as_ref().expect("a path").path_segments[1]
        .id
        .clone()
}

/// The client's and the endpoint's addresses of a returned connection.
pub fn addresses(connection: &Connection) -> (String, String) {
    let ip = connection
        .context
        .as_ref()
        .and_then(|c| c.ip_context.as_ref())
        .expect("an IP context");
    (address(&ip.src_ip_addrs[0]), address(&ip.dst_ip_addrs[0]))
}

//! Packets through the VPP data plane's vWires, on a real VPP 26.06, as NSM's forwarder-vpp
//! is tested: the `Vpp` data plane runs on one VPP of the test's own (KERNEL ends by veth +
//! af_packet), and a second VPP plays the client workload — a memif slave on the socket file
//! the vWire hands out (the client mechanism's `socketfile`), with an address of its own —
//! and pings across the vWire (`vppctl ping`).
//!
//! - Memif2Kernel: the endpoint's end is KERNEL, in a network namespace the test makes, with
//!   the endpoint's address from the connection context; the workload pings it, and the
//!   namespace pings the workload back.
//! - Memif2Memif: both ends MEMIF; the workload VPP holds both slaves, each in a FIB table of
//!   its own, so that a ping from one leaves by its memif and comes in by the other.
//!
//! Each runs for both payloads: ETHERNET (an L2 cross-connect, ARP and ND crossing it) and IP
//! (l3xc; the workload's memifs in IP mode, as NSM's IP payload wants them), over IPv4 and
//! IPv6. Without root or the VPP build (`NSM_TEST_VPP`) these skip, saying why, outside CI.
//!
//! What an IP vWire is in VPP (memifs in IP mode joined by l3xc both ways and for both
//! families, and no policy left after unplumbing, which VPP would otherwise keep for the
//! next interface at the same index) is also held against the simulator, one body for both.

// Shared with `vpp.rs`, which uses the rest of it.
#[path = "vpp/backend.rs"]
#[allow(dead_code)]
mod backend;

use std::time::Duration;

use nsm_dataplane::vpp::{SOCKETFILE_PARAMETER, Vpp};
use nsm_dataplane::{Dataplane, End, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{ConnectionContext, Mechanism, MechanismClass, Plumbing, VWireId};
use nsm_test_support::vpp::VppInstance;
use nsm_vpp::api::{L3xcDump, MemifMode};
use tokio::time::Instant;

use self::backend::{Backend, Namespaces, Setup, ip_in};

/// How long two VPPs may take to connect a memif and answer a first ping.
const FIRST_REPLY_WITHIN: Duration = Duration::from_secs(20);
/// Echoes sent once the path answers, 0.2 s apart.
const ECHOES: u32 = 5;
/// How many of them may go uncounted: VPP's `ping` counts a reply only while it waits
/// before its next echo (and briefly after the last), and on a busy two-core machine a
/// reply is sometimes later than that.
const LATE_ALLOWED: u32 = 1;

mod memif_to_kernel {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ethernet_carries_pings_both_ways() {
        memif_to_kernel(Payload::Ethernet).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ip_carries_pings_both_ways() {
        memif_to_kernel(Payload::Ip).await;
    }
}

mod memif_to_memif {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ethernet_carries_pings() {
        memif_to_memif(Payload::Ethernet).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ip_carries_pings() {
        memif_to_memif(Payload::Ip).await;
    }
}

mod an_ip_vwire_is_ip_memifs_joined_by_l3xc_and_leaves_no_policy {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_the_simulator() {
        super::an_ip_vwire_is_ip_memifs_joined_by_l3xc_and_leaves_no_policy(Backend::Simulator)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_vpp() {
        super::an_ip_vwire_is_ip_memifs_joined_by_l3xc_and_leaves_no_policy(Backend::Vpp).await;
    }
}

fn memif() -> Mechanism {
    Mechanism::new(MechanismClass::Local, "MEMIF")
}

fn kernel_in(namespace: &str) -> Mechanism {
    let mut mechanism = Mechanism::new(MechanismClass::Local, "KERNEL");
    mechanism
        .parameters
        .insert("inodeURL".into(), format!("file:///run/netns/{namespace}"));
    mechanism
}

/// Addresses of both ends, IPv4 and IPv6, as an endpoint's IPAM would hand them out.
fn context(v4_net: u8, v6_net: u16) -> ConnectionContext {
    let mut context = ConnectionContext::default();
    context.ip.src_ip_addrs = vec![
        format!("10.{v4_net}.0.1/30"),
        format!("fd00:{v6_net:x}::1/64"),
    ];
    context.ip.dst_ip_addrs = vec![
        format!("10.{v4_net}.0.2/30"),
        format!("fd00:{v6_net:x}::2/64"),
    ];
    context
}

fn request(
    vpp: &Vpp,
    payload: Payload,
    client: Mechanism,
    endpoint: Mechanism,
    context: ConnectionContext,
) -> PlumbRequest {
    let vwire = VWireId::new_random();
    PlumbRequest {
        vwire,
        payload,
        client: vpp.complete(vwire, End::Client, client),
        endpoint: vpp.complete(vwire, End::Endpoint, endpoint),
        context,
    }
}

fn plumbing(request: &PlumbRequest) -> Plumbing {
    Plumbing {
        dataplane: "vpp".into(),
        dry_run: false,
        client_mechanism: request.client.clone(),
        endpoint_mechanism: request.endpoint.clone(),
        plumbed_at: chrono::Utc::now(),
    }
}

fn socket_file(mechanism: &Mechanism) -> &str {
    &mechanism.parameters[SOCKETFILE_PARAMETER]
}

fn address(cidr: &str) -> &str {
    cidr.split('/').next().unwrap()
}

/// A second VPP playing the workloads: memif slaves on the vWire's socket files.
struct Workload {
    vpp: VppInstance,
    memifs: u32,
}

impl Workload {
    fn start(test: &str) -> Option<Self> {
        Some(Self {
            vpp: VppInstance::start_or_skip(test)?,
            memifs: 0,
        })
    }

    /// A memif slave on `socket_file`, in IP mode for an IP vWire, in FIB table `table`
    /// (made if not 0), up, with `addresses`; its VPP name (`memif<socket>/0`).
    fn memif(
        &mut self,
        socket_file: &str,
        payload: Payload,
        table: u32,
        addresses: &[String],
    ) -> String {
        self.memifs += 1;
        let socket = self.memifs;
        let vpp = &self.vpp;
        vpp.cli_ok(&format!(
            "create memif socket id {socket} filename {socket_file}"
        ));
        let mode = match payload {
            Payload::Ethernet => "",
            Payload::Ip => " mode ip",
        };
        vpp.cli_ok(&format!(
            "create interface memif id 0 socket-id {socket} slave{mode}"
        ));
        let name = format!("memif{socket}/0");
        if table != 0 {
            vpp.cli_ok(&format!("ip table add {table}"));
            vpp.cli_ok(&format!("ip6 table add {table}"));
            vpp.cli_ok(&format!("set interface ip table {name} {table}"));
            vpp.cli_ok(&format!("set interface ip6 table {name} {table}"));
        }
        vpp.cli_ok(&format!("set interface state {name} up"));
        for cidr in addresses {
            vpp.cli_ok(&format!("set interface ip address {name} {cidr}"));
        }
        name
    }

    /// Pings `to` out of interface `from`: (sent, received).
    fn ping(&self, to: &str, from: &str, count: u32) -> (u32, u32) {
        let out = self.vpp.cli_ok(&format!(
            "ping {to} source {from} repeat {count} interval 0.2"
        ));
        sent_received(&out).unwrap_or_else(|| panic!("ping {to} printed no statistics: {out}"))
    }

    /// Pings until the path answers (memifs connecting, neighbours resolving), then sends
    /// [`ECHOES`] that must come back (all but [`LATE_ALLOWED`]).
    async fn assert_pings(&self, to: &str, from: &str, what: &str) {
        let began = Instant::now();
        while self.ping(to, from, 1).1 == 0 {
            assert!(
                began.elapsed() < FIRST_REPLY_WITHIN,
                "{what}: no reply from {to} within {FIRST_REPLY_WITHIN:?}\n{}\n{}",
                self.vpp.cli_ok("show memif"),
                self.vpp.cli_ok("show errors")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (sent, received) = self.ping(to, from, ECHOES);
        assert_eq!(sent, ECHOES, "{what}: ping {to}");
        assert!(
            received + LATE_ALLOWED >= sent,
            "{what}: ping {to}: {received} of {sent} echoes answered"
        );
    }
}

/// `ping` from network namespace `ns`, two echoes: whether both came back, and what it
/// printed.
fn ping_in(ns: &str, to: &str) -> (bool, String) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "2", "-W", "2", to])
        .output()
        .expect("run ping");
    let printed = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.success(), printed.into_owned())
}

/// VPP's "N sent, M received".
fn sent_received(ping: &str) -> Option<(u32, u32)> {
    let statistics = ping.lines().find(|l| l.contains(" sent, "))?;
    let mut numbers = statistics
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .map(|n| n.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// The l3xc policies VPP holds, as (input interface, the interface its path leaves by).
async fn l3xc_policies(setup: &Setup) -> Vec<(u32, u32)> {
    let dump = L3xcDump {
        sw_if_index: u32::MAX,
    };
    let mut policies: Vec<(u32, u32)> = setup
        .api()
        .await
        .dump(&dump)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.l3xc.sw_if_index, d.l3xc.paths[0].sw_if_index))
        .collect();
    policies.sort();
    policies
}

async fn memif_to_kernel(payload: Payload) {
    let test = format!("Memif2Kernel, {} payload", payload.as_str());
    let Some(setup) = Setup::start(Backend::Vpp, &test).await else {
        return;
    };
    let Some(mut workload) = Workload::start(&test) else {
        return;
    };
    let mut namespaces = Namespaces::new();
    let endpoint_ns = namespaces.add("nse");
    let context = context(71, 0x71);
    let request = request(
        &setup.vpp,
        payload,
        memif(),
        kernel_in(&endpoint_ns),
        context.clone(),
    );
    setup.vpp.plumb(request.clone()).await.expect("plumb");

    let client = workload.memif(
        socket_file(&request.client),
        payload,
        0,
        &context.ip.src_ip_addrs,
    );
    for (to, from) in context.ip.dst_ip_addrs.iter().zip(&context.ip.src_ip_addrs) {
        workload
            .assert_pings(
                address(to),
                &client,
                &format!("{test}: workload → endpoint"),
            )
            .await;
        let (answered, out) = ping_in(&endpoint_ns, address(from));
        assert!(
            answered,
            "{test}: endpoint → workload {}: {out}",
            address(from)
        );
    }
    if payload == Payload::Ip {
        let (_, link) = ip_in(&endpoint_ns, &["link", "show"]);
        assert!(
            link.contains("NOARP"),
            "{test}: the endpoint's veth resolves nothing: {link}"
        );
    }

    setup
        .vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .expect("unplumb");
    assert!(setup.tagged_with(request.vwire).await.is_empty());
    assert!(
        l3xc_policies(&setup).await.is_empty(),
        "{test}: no l3xc policy left"
    );
}

async fn memif_to_memif(payload: Payload) {
    let test = format!("Memif2Memif, {} payload", payload.as_str());
    let Some(setup) = Setup::start(Backend::Vpp, &test).await else {
        return;
    };
    let Some(mut workload) = Workload::start(&test) else {
        return;
    };
    let context = context(72, 0x72);
    let request = request(&setup.vpp, payload, memif(), memif(), context.clone());
    setup.vpp.plumb(request.clone()).await.expect("plumb");

    let ip = &context.ip;
    let client = workload.memif(socket_file(&request.client), payload, 0, &ip.src_ip_addrs);
    let endpoint = workload.memif(socket_file(&request.endpoint), payload, 1, &ip.dst_ip_addrs);
    for (to, from) in [(&ip.dst_ip_addrs, &client), (&ip.src_ip_addrs, &endpoint)] {
        for cidr in to {
            workload
                .assert_pings(address(cidr), from, &format!("{test}: out of {from}"))
                .await;
        }
    }

    setup
        .vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .expect("unplumb");
    assert!(setup.tagged_with(request.vwire).await.is_empty());
    assert!(
        l3xc_policies(&setup).await.is_empty(),
        "{test}: no l3xc policy left"
    );
}

async fn an_ip_vwire_is_ip_memifs_joined_by_l3xc_and_leaves_no_policy(backend: Backend) {
    let Some(setup) = Setup::start(backend, "an IP vWire's l3xc").await else {
        return;
    };
    let request = request(&setup.vpp, Payload::Ip, memif(), memif(), context(73, 0x73));
    let work = setup.vpp.plumb(request.clone()).await.expect("plumb");
    assert!(
        work.operations
            .iter()
            .any(|o| o.contains("at L3 (IPv4, IPv6")),
        "{:?}",
        work.operations
    );
    let ends = setup.tagged_with(request.vwire).await;
    let [a, b] = [ends[0].sw_if_index, ends[1].sw_if_index];
    let memifs = setup.memifs().await;
    assert!(
        memifs
            .iter()
            .all(|m| m.mode == MemifMode::MEMIF_MODE_API_IP),
        "IP mode: {memifs:?}"
    );
    // One policy per family each way; VPP's dump does not say which family.
    let mut expected = vec![(a, b), (a, b), (b, a), (b, a)];
    expected.sort();
    assert_eq!(l3xc_policies(&setup).await, expected);
    assert!(setup.xconnects().await.is_empty(), "no L2 cross-connect");

    setup
        .vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .expect("unplumb");
    assert!(setup.tagged_with(request.vwire).await.is_empty());
    assert!(
        l3xc_policies(&setup).await.is_empty(),
        "deleting the interfaces would have left the policies"
    );

    // An Ethernet vWire made next, at the same indices, is a plain L2 cross-connect.
    let ethernet = request_ethernet(&setup.vpp);
    setup.vpp.plumb(ethernet.clone()).await.expect("plumb");
    assert!(l3xc_policies(&setup).await.is_empty());
    assert_eq!(setup.xconnects().await.len(), 2);
    setup
        .vpp
        .unplumb(ethernet.vwire, &plumbing(&ethernet))
        .await
        .expect("unplumb");
}

fn request_ethernet(vpp: &Vpp) -> PlumbRequest {
    request(
        vpp,
        Payload::Ethernet,
        memif(),
        memif(),
        ConnectionContext::default(),
    )
}

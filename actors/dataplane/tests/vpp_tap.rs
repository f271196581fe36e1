//! KERNEL ends by VPP tap (`--vpp-kernel-interface tap`): VPP makes the tap in the
//! workload's namespace, and the forwarder sets every address, every route and the MTU there
//! over netlink, as NSM's forwarder does.
//!
//! - On a real VPP (`NSM_TEST_VPP`): tap mode is refused at start on a host without
//!   `/dev/vhost-net` (as these machines are: VPP's own `tap_create_v3` fails -11 here), and
//!   `auto` chooses veth + af_packet then.
//! - On the simulator with `linux_taps` (it makes each tap's Linux side for real, in the
//!   tap's namespace, as VPP does), in network namespaces of the test's own, checked with
//!   `ip`: what the forwarder configures, what verify sees, what unplumbing removes, and
//!   that a failure anywhere leaves no tap behind.
//!
//! Needs root (network namespaces, netlink); outside CI a test without it says so and
//! passes, and the real-VPP tests skip without a VPP build.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nsm_dataplane::kernel::{self, netns};
use nsm_dataplane::vpp::{KernelInterface, VHOST_NET, Vpp, VppConfig};
use nsm_dataplane::{Dataplane, DataplaneError, PlumbRequest};
use nsm_domain::vwire::{
    ConnectionContext, IpContext, Mechanism, MechanismClass, Plumbing, Route, VWireId,
};
use nsm_test_support::vpp::VppInstance;
use nsm_vpp_simulator::{SimInterface, SimKind, Simulator, SimulatorConfig};

/// Whether this test can run; panics under CI without the capabilities.
fn capable() -> bool {
    nsm_test_support::capable_or_skip("the VPP tap tests", &kernel::missing_capabilities())
}

/// Named namespaces, removed when dropped.
struct Namespaces(Vec<String>);

impl Namespaces {
    async fn make(names: &[&str]) -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let mut made = Vec::new();
        for name in names {
            let full = format!("vtap-{tag}-{name}");
            netns::create_named(&full).await.expect("make a namespace");
            made.push(full);
        }
        Self(made)
    }

    fn url(&self, i: usize) -> String {
        format!("file:///run/netns/{}", self.0[i])
    }

    /// `ip -n <namespace i> -o <args>`: its output, or `None` when it fails.
    fn ip(&self, i: usize, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["-n", &self.0[i], "-o"])
            .args(args)
            .output()
            .expect("ip runs");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every link of namespace `i` but the loopback.
    fn links(&self, i: usize) -> Vec<String> {
        self.ip(i, &["link", "show"])
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains(" lo: "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = netns::delete_named(name);
        }
    }
}

/// The forwarder in tap mode on a simulated VPP that makes each tap's Linux side.
struct Setup {
    _dir: tempfile::TempDir,
    sim: Simulator,
    vpp: Vpp,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimulatorConfig {
        linux_taps: true,
        ..SimulatorConfig::new(dir.path().join("api.sock"))
    })
    .unwrap();
    // This host has no /dev/vhost-net; the simulated VPP does.
    let vhost_net = dir.path().join("vhost-net");
    std::fs::write(&vhost_net, b"").unwrap();
    let config = VppConfig {
        kernel_interface: KernelInterface::Tap,
        request_timeout: Duration::from_secs(5),
        memif_dir: dir.path().to_owned(),
        vhost_net,
        ..VppConfig::new(sim.socket_path())
    };
    let vpp = Vpp::start("node-tap", config).await.unwrap();
    assert_eq!(vpp.kernel_interface(), KernelInterface::Tap);
    Setup {
        _dir: dir,
        sim,
        vpp,
    }
}

fn kernel_end(url: &str, name: &str) -> Mechanism {
    Mechanism {
        cls: MechanismClass::Local,
        mechanism_type: "KERNEL".into(),
        parameters: BTreeMap::from([
            ("inodeURL".to_owned(), url.to_owned()),
            ("name".to_owned(), name.to_owned()),
        ]),
    }
}

fn route(prefix: &str, next_hop: &str) -> Route {
    Route {
        prefix: prefix.into(),
        next_hop: next_hop.into(),
    }
}

/// A vWire whose client end has two IPv4 addresses and one IPv6, routes through a next hop
/// of each family and one on the link; the endpoint one address of each family and a route.
fn request(ns: &Namespaces) -> PlumbRequest {
    let mut context = ConnectionContext {
        ip: IpContext {
            src_ip_addrs: vec![
                "172.16.5.1/30".into(),
                "172.16.6.1/30".into(),
                "fd00:5::1/64".into(),
            ],
            dst_ip_addrs: vec!["172.16.5.2/30".into(), "fd00:5::2/64".into()],
            src_routes: vec![
                route("10.99.0.0/16", "172.16.5.2"),
                route("fd00:99::/48", "fd00:5::2"),
                route("192.168.77.0/24", ""),
            ],
            dst_routes: vec![route("172.16.6.0/30", "")],
            ..IpContext::default()
        },
        mtu: Some(1400),
        ..ConnectionContext::default()
    };
    context.ethernet.src_mac = "02:fe:00:00:05:01".into();
    PlumbRequest {
        vwire: VWireId::new_random(),
        payload: Default::default(),
        client: kernel_end(&ns.url(0), "tap-c"),
        endpoint: kernel_end(&ns.url(1), "tap-e"),
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

/// VPP's interfaces other than local0.
fn made(sim: &Simulator) -> Vec<SimInterface> {
    sim.interfaces()
        .into_iter()
        .filter(|i| i.sw_if_index != 0)
        .collect()
}

fn requests_of(sim: &Simulator, message: &str) -> u64 {
    sim.stats()
        .requests_by_message
        .get(message)
        .copied()
        .unwrap_or(0)
}

fn assert_has(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "{w:?} missing from:\n{text}");
    }
}

#[tokio::test]
async fn tap_mode_is_refused_at_start_without_vhost_net_naming_it_and_af_packet() {
    let Some(vpp) = VppInstance::start_or_skip("the tap start-up check") else {
        return;
    };
    // What the check saves an operator from: VPP itself cannot make a tap here.
    let host_has_it = Path::new(VHOST_NET).exists();
    if !host_has_it {
        let client =
            nsm_vpp::client::Client::connect(nsm_vpp::client::Config::new(vpp.api_socket()))
                .await
                .unwrap();
        let error = client
            .request(&nsm_vpp::api::TapCreateV3::default())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("-11"), "{error}");
    }
    // The host's own device where it lacks one, else a path that surely is not there.
    let missing = if host_has_it {
        vpp.dir().join("no-vhost-net")
    } else {
        VHOST_NET.into()
    };
    let config = VppConfig {
        kernel_interface: KernelInterface::Tap,
        vhost_net: missing.clone(),
        ..VppConfig::new(vpp.api_socket())
    };
    let error = Vpp::start("node-tap", config).await.unwrap_err();
    let DataplaneError::NotPermitted(message) = &error else {
        panic!("{error:?}");
    };
    assert_has(
        message,
        &[
            &missing.display().to_string(),
            "--vpp-kernel-interface af-packet",
        ],
    );
}

#[tokio::test]
async fn auto_makes_kernel_ends_by_af_packet_without_vhost_net_and_by_tap_with_it() {
    if !capable() {
        return;
    }
    let Some(vpp) = VppInstance::start_or_skip("auto's choice") else {
        return;
    };
    let auto = |vhost_net: &Path| VppConfig {
        kernel_interface: KernelInterface::Auto,
        vhost_net: vhost_net.to_owned(),
        ..VppConfig::new(vpp.api_socket())
    };
    let without = Vpp::start("node-auto", auto(&vpp.dir().join("no-vhost-net")))
        .await
        .unwrap();
    assert_eq!(without.kernel_interface(), KernelInterface::AfPacket);
    let device = vpp.dir().join("vhost-net");
    std::fs::write(&device, b"").unwrap();
    let with = Vpp::start("node-auto", auto(&device)).await.unwrap();
    assert_eq!(with.kernel_interface(), KernelInterface::Tap);
}

#[tokio::test]
async fn each_tap_gets_every_address_route_and_the_mtu_in_its_namespace() {
    if !capable() {
        return;
    }
    let ns = Namespaces::make(&["c", "e"]).await;
    let s = setup().await;
    let request = request(&ns);
    let vwire = request.vwire;
    let work = s.vpp.plumb(request.clone()).await.unwrap();

    // VPP was asked for the tap in the namespace, by name, with the MTU and the MAC; the
    // addresses are all netlink's.
    let taps: Vec<SimInterface> = made(&s.sim);
    assert_eq!(taps.len(), 2, "{taps:?}");
    for (i, name) in [(0, "tap-c"), (1, "tap-e")] {
        let tap = taps
            .iter()
            .find_map(|t| match &t.kind {
                SimKind::Tap(tap) if tap.host_if_name.as_str() == name => Some(tap),
                _ => None,
            })
            .expect("a tap of that name");
        assert_eq!(
            tap.host_namespace.as_str(),
            format!("/run/netns/{}", ns.0[i])
        );
        assert!(tap.host_mtu_set && tap.host_mtu_size == 1400);
        assert!(!tap.host_ip4_prefix_set && !tap.host_ip6_prefix_set);
    }

    let link = ns.ip(0, &["link", "show", "tap-c"]).unwrap();
    assert_has(
        &link,
        &[
            "mtu 1400",
            "state UP",
            "link/ether 02:fe:00:00:05:01",
            &format!("alias nsm-rs vwire={vwire} end=client"),
        ],
    );
    let addresses = ns.ip(0, &["addr", "show", "tap-c"]).unwrap();
    assert_has(
        &addresses,
        &["172.16.5.1/30", "172.16.6.1/30", "fd00:5::1/64"],
    );
    let routes = ns.ip(0, &["route", "show", "dev", "tap-c"]).unwrap();
    assert_has(
        &routes,
        &[
            "10.99.0.0/16 via 172.16.5.2",
            "192.168.77.0/24 proto static scope link",
        ],
    );
    let routes6 = ns.ip(0, &["-6", "route", "show", "dev", "tap-c"]).unwrap();
    assert_has(&routes6, &["fd00:99::/48 via fd00:5::2"]);

    let link = ns.ip(1, &["link", "show", "tap-e"]).unwrap();
    assert_has(&link, &["mtu 1400", "state UP", "end=endpoint"]);
    let addresses = ns.ip(1, &["addr", "show", "tap-e"]).unwrap();
    assert_has(&addresses, &["172.16.5.2/30", "fd00:5::2/64"]);
    let routes = ns.ip(1, &["route", "show", "dev", "tap-e"]).unwrap();
    assert_has(&routes, &["172.16.6.0/30 proto static scope link"]);
    assert!(
        work.operations
            .iter()
            .any(|o| o.contains("routed 10.99.0.0/16 via 172.16.5.2")),
        "{work:?}"
    );

    // Verify reads the Linux side too.
    assert_eq!(
        s.vpp.verify(request.clone()).await.unwrap(),
        Vec::<String>::new()
    );
    ns.ip(0, &["addr", "del", "172.16.6.1/30", "dev", "tap-c"])
        .expect("address removed by hand");
    let missing = s.vpp.verify(request.clone()).await.unwrap();
    assert!(
        missing.iter().any(|m| m.contains("lacks 172.16.6.1/30")),
        "{missing:?}"
    );

    s.vpp.unplumb(vwire, &plumbing(&request)).await.unwrap();
    assert!(made(&s.sim).is_empty());
    assert!(ns.links(0).is_empty(), "{:?}", ns.links(0));
    assert!(ns.links(1).is_empty(), "{:?}", ns.links(1));
}

#[tokio::test]
async fn a_netlink_step_that_fails_leaves_no_tap_behind() {
    if !capable() {
        return;
    }
    let ns = Namespaces::make(&["c", "e"]).await;
    let s = setup().await;
    let mut request = request(&ns);
    // The endpoint's tap is made, configured up to this route, which the kernel refuses:
    // its next hop is on no link of the namespace.
    request
        .context
        .ip
        .dst_routes
        .push(route("10.98.0.0/16", "192.0.2.1"));
    let error = s.vpp.plumb(request).await.unwrap_err();
    assert!(
        matches!(&error, DataplaneError::InvalidInput(m) if m.contains("not reachable")),
        "{error:?}"
    );
    assert_eq!(
        requests_of(&s.sim, "tap_create_v3"),
        2,
        "both taps were made"
    );
    assert_eq!(requests_of(&s.sim, "tap_delete_v2"), 2, "and both deleted");
    assert!(made(&s.sim).is_empty(), "{:?}", made(&s.sim));
    assert!(ns.links(0).is_empty(), "{:?}", ns.links(0));
    assert!(ns.links(1).is_empty(), "{:?}", ns.links(1));
}

#[tokio::test]
async fn a_taken_name_or_address_is_refused_before_vpp_makes_a_tap() {
    if !capable() {
        return;
    }
    let ns = Namespaces::make(&["c", "e"]).await;
    let s = setup().await;
    ns.ip(
        0,
        &[
            "link", "add", "tap-c", "type", "veth", "peer", "name", "other",
        ],
    )
    .expect("a link of the client end's name");
    let error = s.vpp.plumb(request(&ns)).await.unwrap_err();
    assert!(
        matches!(&error, DataplaneError::Conflict(m) if m.contains("tap-c is already taken")),
        "{error:?}"
    );
    ns.ip(0, &["link", "del", "tap-c"]).unwrap();
    ns.ip(
        1,
        &["link", "add", "x0", "type", "veth", "peer", "name", "x1"],
    )
    .unwrap();
    ns.ip(1, &["addr", "add", "172.16.5.2/30", "dev", "x0"])
        .unwrap();
    let error = s.vpp.plumb(request(&ns)).await.unwrap_err();
    assert!(
        matches!(&error, DataplaneError::Conflict(m) if m.contains("172.16.5.2")),
        "{error:?}"
    );
    // The client's tap (planned first) was made and removed again; the endpoint's never.
    assert_eq!(requests_of(&s.sim, "tap_create_v3"), 1);
    assert!(made(&s.sim).is_empty(), "{:?}", made(&s.sim));
    assert!(ns.links(0).is_empty(), "{:?}", ns.links(0));
}

#[tokio::test]
async fn what_no_kernel_end_can_carry_is_refused_before_vpp_is_touched() {
    if !capable() {
        return;
    }
    let ns = Namespaces::make(&["c", "e"]).await;
    let s = setup().await;
    let mut wrong_family = request(&ns);
    wrong_family.context.ip.src_routes = vec![route("10.99.0.0/16", "fd00:5::2")];
    let error = s.vpp.plumb(wrong_family).await.unwrap_err();
    assert!(
        matches!(&error, DataplaneError::InvalidInput(m) if m.contains("family")),
        "{error:?}"
    );
    let mut vfio = request(&ns);
    vfio.endpoint.mechanism_type = "VFIO".into();
    let error = s.vpp.plumb(vfio).await.unwrap_err();
    assert!(
        matches!(error, DataplaneError::Unsupported { .. }),
        "{error:?}"
    );
    let mut tiny_mtu = request(&ns);
    tiny_mtu.context.mtu = Some(1000);
    let error = s.vpp.plumb(tiny_mtu).await.unwrap_err();
    assert!(
        matches!(&error, DataplaneError::InvalidInput(m) if m.contains("IPv6 needs 1280")),
        "{error:?}"
    );
    assert_eq!(requests_of(&s.sim, "tap_create_v3"), 0);
}

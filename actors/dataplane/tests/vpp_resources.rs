//! What one VPP holds, and what a Request is told when it holds no more (see the data
//! plane's `vpp::resources`):
//!
//! - past `max_vwires` a Request is refused naming the setting, before VPP is touched (on
//!   the simulator and on a real VPP);
//! - a real VPP out of file descriptors refuses the next memif, or af_packet, end; the
//!   Request's error says so and names the limit to raise, and nothing of the refused vWire
//!   is left, in VPP or on the host;
//! - the af_packet ring of `VppConfig` is the one VPP makes;
//! - af_packet ends made sixteen at a time are read by polling and leave VPP answering (in
//!   interrupt mode VPP 26.06 spun on their packet sockets and never answered again).
//!
//! On a real VPP a test needs root and the build `NSM_TEST_VPP` names; without them it skips
//! outside CI (and fails under `CI=true`).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use nsm_dataplane::kernel;
use nsm_dataplane::vpp::{AfPacketRing, KernelInterface, Vpp, VppConfig};
use nsm_dataplane::{Dataplane, DataplaneError, End, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{ConnectionContext, Mechanism, MechanismClass, Plumbing, VWireId};
use nsm_test_support::vpp::VppInstance;
use nsm_vpp_simulator::{Simulator, SimulatorConfig};

/// A real VPP of the test's own and the data plane on it; `None` (after saying why) where
/// the test skips.
async fn on_vpp(
    test: &str,
    dir: &Path,
    tune: impl FnOnce(&mut VppConfig),
) -> Option<(VppInstance, Vpp)> {
    if !nsm_test_support::capable_or_skip(test, &kernel::missing_capabilities()) {
        return None;
    }
    let instance = VppInstance::start_or_skip(test)?;
    let vpp = data_plane(&instance.api_socket(), dir, tune).await;
    Some((instance, vpp))
}

async fn data_plane(socket: &Path, dir: &Path, tune: impl FnOnce(&mut VppConfig)) -> Vpp {
    let mut config = VppConfig {
        kernel_interface: KernelInterface::AfPacket,
        memif_dir: dir.join("memif"),
        ..VppConfig::new(socket)
    };
    tune(&mut config);
    let node = format!(
        "res-{}-{}",
        std::process::id(),
        dir.file_name().unwrap().to_string_lossy()
    );
    Vpp::start(&node, config).await.unwrap()
}

fn memif_request(vpp: &Vpp) -> PlumbRequest {
    let vwire = VWireId::new_random();
    let memif = |end| vpp.complete(vwire, end, Mechanism::new(MechanismClass::Local, "MEMIF"));
    PlumbRequest {
        vwire,
        payload: Payload::Ethernet,
        client: memif(End::Client),
        endpoint: memif(End::Endpoint),
        context: ConnectionContext::default(),
    }
}

fn plumbing(request: &PlumbRequest) -> Plumbing {
    Plumbing {
        dataplane: Vpp::NAME.into(),
        dry_run: false,
        client_mechanism: request.client.clone(),
        endpoint_mechanism: request.endpoint.clone(),
        plumbed_at: chrono::Utc::now(),
    }
}

/// Plumbs until a Request is refused (at most `most`); the plumbed ones and the refusal.
async fn plumb_until_refused(
    vpp: &Vpp,
    most: usize,
    mut request: impl FnMut(usize) -> PlumbRequest,
) -> (Vec<PlumbRequest>, Option<DataplaneError>) {
    let mut plumbed = Vec::new();
    for i in 0..most {
        let next = request(i);
        match vpp.plumb(next.clone()).await {
            Ok(_) => plumbed.push(next),
            Err(error) => return (plumbed, Some(error)),
        }
    }
    (plumbed, None)
}

/// What the data plane lists (VPP interfaces, host veths) of vWires other than `plumbed`.
async fn left_of_others(vpp: &Vpp, plumbed: &[PlumbRequest]) -> Vec<String> {
    let ours: HashSet<VWireId> = plumbed.iter().map(|r| r.vwire).collect();
    vpp.inventory()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.vwire.is_none_or(|v| !ours.contains(&v)))
        .map(|o| o.description)
        .collect()
}

async fn unplumb_all(vpp: &Vpp, plumbed: &[PlumbRequest]) {
    for request in plumbed {
        vpp.unplumb(request.vwire, &plumbing(request))
            .await
            .unwrap();
    }
    let left = vpp.inventory().await.unwrap();
    assert!(left.is_empty(), "left after unplumbing: {left:?}");
}

/// Sets a running VPP's open-files (soft) limit to what it has open now and `spare` more;
/// the hard limit stays, so that it can be raised again.
fn leave_file_descriptors(instance: &VppInstance, spare: usize) {
    let pid = instance.pid().expect("VPP runs");
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = open + spare;
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit refused");
}

async fn the_ceiling_refuses_before_vpp_is_touched(vpp: Vpp) {
    let (plumbed, refused) = plumb_until_refused(&vpp, 3, |_| memif_request(&vpp)).await;
    assert_eq!(plumbed.len(), 2);
    let refused = refused.expect("the third is refused").to_string();
    assert!(refused.contains("--vpp-max-vwires (2)"), "{refused}");
    assert!(left_of_others(&vpp, &plumbed).await.is_empty());
    unplumb_all(&vpp, &plumbed).await;
    // Room again.
    let again = memif_request(&vpp);
    vpp.plumb(again.clone()).await.unwrap();
    unplumb_all(&vpp, &[again]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_vwires_a_request_is_refused_naming_the_setting_on_the_simulator() {
    let test = "past_max_vwires_a_request_is_refused_naming_the_setting_on_the_simulator";
    if !nsm_test_support::capable_or_skip(test, &kernel::missing_capabilities()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let _simulator = Simulator::start(SimulatorConfig::new(&socket)).unwrap();
    let vpp = data_plane(&socket, dir.path(), |c| c.max_vwires = 2).await;
    the_ceiling_refuses_before_vpp_is_touched(vpp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_vwires_a_request_is_refused_naming_the_setting_on_vpp() {
    let test = "past_max_vwires_a_request_is_refused_naming_the_setting_on_vpp";
    let dir = tempfile::tempdir().unwrap();
    let Some((_instance, vpp)) = on_vpp(test, dir.path(), |c| c.max_vwires = 2).await else {
        return;
    };
    the_ceiling_refuses_before_vpp_is_touched(vpp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpp_out_of_file_descriptors_refuses_a_memif_end_naming_them_and_keeps_nothing_of_it() {
    let test =
        "a_vpp_out_of_file_descriptors_refuses_a_memif_end_naming_them_and_keeps_nothing_of_it";
    let dir = tempfile::tempdir().unwrap();
    let Some((instance, vpp)) = on_vpp(test, dir.path(), |_| {}).await else {
        return;
    };
    // Room for a few vWires' listening sockets (one per end), not twenty.
    leave_file_descriptors(&instance, 7);
    let (plumbed, refused) = plumb_until_refused(&vpp, 20, |_| memif_request(&vpp)).await;
    assert!(
        (1..20).contains(&plumbed.len()),
        "{} plumbed, {refused:?}",
        plumbed.len()
    );
    let refused = refused.expect("VPP refuses a memif").to_string();
    for part in [
        "SYSCALL_ERROR_4",
        "run out of file descriptors",
        "LimitNOFILE",
    ] {
        assert!(refused.contains(part), "{part}: {refused}");
    }
    let left = left_of_others(&vpp, &plumbed).await;
    assert!(left.is_empty(), "the refused vWire left {left:?}");
    // vppctl's connection needs a descriptor of VPP's too.
    leave_file_descriptors(&instance, 100);
    let sockets = instance.cli_ok("show memif");
    let ours = dir.path().join("memif").display().to_string();
    let listed = sockets.lines().filter(|l| l.contains(&ours)).count();
    assert_eq!(
        listed,
        2 * plumbed.len(),
        "memif sockets VPP knows:\n{sockets}"
    );
    unplumb_all(&vpp, &plumbed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpp_out_of_file_descriptors_refuses_an_af_packet_end_naming_them_and_keeps_nothing_of_it()
 {
    let test = "a_vpp_out_of_file_descriptors_refuses_an_af_packet_end_naming_them_and_keeps_nothing_of_it";
    let dir = tempfile::tempdir().unwrap();
    let Some((instance, vpp)) = on_vpp(test, dir.path(), |_| {}).await else {
        return;
    };
    let namespace = Namespace::new(&format!("nsmres{}", std::process::id()));
    // An af_packet end takes one (and VPP a netlink socket for a moment while making it).
    leave_file_descriptors(&instance, 5);
    let (plumbed, refused) = plumb_until_refused(&vpp, 20, |i| {
        let vwire = VWireId::new_random();
        let end = |name: String| {
            let mut mechanism = Mechanism::new(MechanismClass::Local, "KERNEL");
            let parameters = &mut mechanism.parameters;
            parameters.insert(kernel::NETNS_PARAMETER.into(), namespace.url());
            parameters.insert(kernel::NAME_PARAMETER.into(), name);
            mechanism
        };
        PlumbRequest {
            vwire,
            payload: Payload::Ethernet,
            client: end(format!("res-c{i}")),
            endpoint: end(format!("res-e{i}")),
            context: ConnectionContext::default(),
        }
    })
    .await;
    assert!(
        (1..20).contains(&plumbed.len()),
        "{} plumbed, {refused:?}",
        plumbed.len()
    );
    let refused = refused.expect("VPP refuses an af_packet end").to_string();
    for part in [
        "SYSCALL_ERROR_1",
        "run out of file descriptors",
        "LimitNOFILE",
    ] {
        assert!(refused.contains(part), "{part}: {refused}");
    }
    let left = left_of_others(&vpp, &plumbed).await;
    assert!(left.is_empty(), "the refused vWire left {left:?}");
    unplumb_all(&vpp, &plumbed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_af_packet_ring_of_the_config_is_the_one_vpp_makes() {
    let test = "the_af_packet_ring_of_the_config_is_the_one_vpp_makes";
    let dir = tempfile::tempdir().unwrap();
    let ring = AfPacketRing {
        frame_size: 2048,
        frames: 64,
    };
    let Some((instance, vpp)) = on_vpp(test, dir.path(), |c| c.af_packet_ring = ring).await else {
        return;
    };
    let namespace = Namespace::new(&format!("nsmring{}", std::process::id()));
    let end = |name: &str| {
        let mut mechanism = Mechanism::new(MechanismClass::Local, "KERNEL");
        mechanism
            .parameters
            .insert(kernel::NETNS_PARAMETER.into(), namespace.url());
        mechanism
            .parameters
            .insert(kernel::NAME_PARAMETER.into(), name.into());
        mechanism
    };
    let request = PlumbRequest {
        vwire: VWireId::new_random(),
        payload: Payload::Ethernet,
        client: end("ring-c"),
        endpoint: end("ring-e"),
        context: ConnectionContext::default(),
    };
    vpp.plumb(request.clone()).await.unwrap();
    let hardware = instance.cli_ok("show hardware-interfaces");
    let rings = hardware
        .lines()
        .filter(|l| l.contains("block size:131072 nr:1  frame size:2048 nr:64"))
        .count();
    // Two ends, a ring each way.
    assert_eq!(rings, 4, "{hardware}");
    unplumb_all(&vpp, &[request]).await;
}

/// A named network namespace of the test's own, deleted when dropped.
struct Namespace(String);

impl Namespace {
    fn new(name: &str) -> Self {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(status.success(), "ip netns add {name}");
        Self(name.to_owned())
    }

    fn url(&self) -> String {
        format!("file:///run/netns/{}", self.0)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn af_packet_ends_made_sixteen_at_a_time_are_polled_and_vpp_keeps_answering() {
    use futures::StreamExt;
    let test = "af_packet_ends_made_sixteen_at_a_time_are_polled_and_vpp_keeps_answering";
    let dir = tempfile::tempdir().unwrap();
    let Some((instance, vpp)) = on_vpp(test, dir.path(), |_| {}).await else {
        return;
    };
    let namespace = Namespace::new(&format!("nsmpoll{}", std::process::id()));
    let end = |name: String| {
        let mut mechanism = Mechanism::new(MechanismClass::Local, "KERNEL");
        let parameters = &mut mechanism.parameters;
        parameters.insert(kernel::NETNS_PARAMETER.into(), namespace.url());
        parameters.insert(kernel::NAME_PARAMETER.into(), name);
        mechanism
    };
    let requests: Vec<PlumbRequest> = (0..40)
        .map(|i| PlumbRequest {
            vwire: VWireId::new_random(),
            payload: Payload::Ethernet,
            client: end(format!("poll-c{i}")),
            endpoint: end(format!("poll-e{i}")),
            context: ConnectionContext::default(),
        })
        .collect();
    // Each workload side sends as it comes up (IPv6 router and neighbour solicitations).
    let outcomes: Vec<_> = futures::stream::iter(requests.iter().map(|r| vpp.plumb(r.clone())))
        .buffer_unordered(16)
        .collect()
        .await;
    for outcome in outcomes {
        outcome.expect("plumbed");
    }
    let placement = instance.cli_ok("show interface rx-placement");
    let polled = placement
        .lines()
        .filter(|l| l.contains("host-") && l.contains("(polling)"))
        .count();
    assert_eq!(polled, 80, "{placement}");
    unplumb_all(&vpp, &requests).await;
    assert!(left_of_others(&vpp, &[]).await.is_empty());
}

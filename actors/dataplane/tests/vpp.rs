//! The VPP data plane against VPP. Every test that injects no fault runs twice, on the VPP
//! API simulator and on a real VPP 26.06 of its own — one body, two back ends
//! ([`on_both_backends!`], `vpp/backend.rs`), state read back through VPP's API on both —
//! so the simulator stays honest: MEMIF and veth + af_packet vWires made, tagged,
//! cross-connected both ways, up, and removed with nothing left (interfaces, memif socket
//! ids, socket files), the memif socket folder made on a fresh host, a memif VPP cannot bind
//! refused with nothing left, a hundred vWires at once on one API session, what reconcile
//! needs after VPP restarts, the orphans of a crashed forwarder found and removed (another
//! node's interfaces, untagged ones and VPP's default memif socket left alone), and VXLAN
//! tunnels.
//!
//! On the simulator only: each injected fault giving the right error and leaving nothing
//! half-made, silence, and the CRC check at start-up. (Taps: `vpp_tap.rs`; liveness:
//! `vpp_liveness.rs`.)

#[path = "vpp/backend.rs"]
mod backend;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use nsm_dataplane::vpp::{KernelInterface, SOCKETFILE_PARAMETER, Vpp, VppConfig, VxlanTunnel};
use nsm_dataplane::{Dataplane, End, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{ConnectionContext, Mechanism, MechanismClass, Plumbing, VWireId};
use nsm_vpp::api::{MemifCreateV2, MemifRole, MemifSocketFilenameAddDelV2, SwInterfaceTagAddDel};
use nsm_vpp::codec::{FixedString, VarString};
use nsm_vpp_simulator::{SimInterface, Simulator, SimulatorConfig};

use self::backend::{Backend, Namespaces, Setup, admin_up, ip_in, is_socket};

/// Turns each named test body, `async fn body(backend: Backend)`, into a module of two
/// tests: `body::on_the_simulator` and `body::on_vpp`.
macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_the_simulator() {
                super::$body(super::Backend::Simulator).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_vpp() {
                super::$body(super::Backend::Vpp).await;
            }
        }
    )*};
}

on_both_backends!(
    a_memif_vwire_is_two_tagged_memifs_cross_connected_both_ways_and_up,
    the_memif_socket_folder_is_made_and_no_socket_file_outlives_its_vwire,
    a_memif_vpp_cannot_bind_is_refused_and_leaves_nothing,
    a_kernel_vwire_by_af_packet_joins_two_namespaces_through_vpp,
    a_hundred_vwires_plumb_at_once_on_one_api_session,
    after_vpp_restarts_the_loss_is_announced_and_each_vwire_can_be_remade,
    the_orphans_of_a_crashed_forwarder_are_removed_and_nothing_else_is,
    a_vxlan_tunnel_is_made_tagged_and_deleted_by_its_key,
);

fn memif_request(vpp: &Vpp) -> PlumbRequest {
    let vwire = VWireId::new_random();
    let memif = || Mechanism::new(MechanismClass::Local, "MEMIF");
    PlumbRequest {
        vwire,
        payload: Payload::Ethernet,
        client: vpp.complete(vwire, End::Client, memif()),
        endpoint: vpp.complete(vwire, End::Endpoint, memif()),
        context: ConnectionContext::default(),
    }
}

/// KERNEL ends in the named namespaces, 10.61.0.1/30 (client) and 10.61.0.2/30.
fn af_packet_request(vpp: &Vpp, client_ns: &str, endpoint_ns: &str) -> PlumbRequest {
    let vwire = VWireId::new_random();
    let kernel = |ns: &str| {
        let mut m = Mechanism::new(MechanismClass::Local, "KERNEL");
        m.parameters
            .insert("inodeURL".into(), format!("file:///run/netns/{ns}"));
        m
    };
    let mut context = ConnectionContext::default();
    context.ip.src_ip_addrs = vec!["10.61.0.1/30".into()];
    context.ip.dst_ip_addrs = vec!["10.61.0.2/30".into()];
    PlumbRequest {
        vwire,
        payload: Payload::Ethernet,
        client: vpp.complete(vwire, End::Client, kernel(client_ns)),
        endpoint: vpp.complete(vwire, End::Endpoint, kernel(endpoint_ns)),
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

/// Both ends' socket files.
fn socket_files(request: &PlumbRequest) -> [String; 2] {
    [&request.client, &request.endpoint].map(|m| m.parameters[SOCKETFILE_PARAMETER].clone())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn a_memif_vwire_is_two_tagged_memifs_cross_connected_both_ways_and_up(backend: Backend) {
    let Some(s) = Setup::start(backend, "a memif vWire").await else {
        return;
    };
    let request = memif_request(&s.vpp);
    let [socket, _] = socket_files(&request);
    assert!(
        socket.ends_with(&format!("{}-client.sock", request.vwire)),
        "{socket}"
    );
    s.vpp.plumb(request.clone()).await.unwrap();

    let ends = s.tagged_with(request.vwire).await;
    assert_eq!(ends.len(), 2, "{ends:?}");
    let (a, b) = (ends[0].sw_if_index, ends[1].sw_if_index);
    assert!(ends.iter().all(admin_up), "{ends:?}");
    let mut xconnects = s.xconnects().await;
    xconnects.sort();
    let mut both_ways = vec![(a, b), (b, a)];
    both_ways.sort();
    assert_eq!(xconnects, both_ways);
    let mut tags: Vec<&str> = ends.iter().map(|i| i.tag.as_str()).collect();
    tags.sort();
    assert!(
        tags[0].ends_with(":client") && tags[1].ends_with(":endpoint"),
        "{tags:?}"
    );
    let memifs = s.memifs().await;
    for end in &ends {
        let memif = memifs.iter().find(|m| m.sw_if_index == end.sw_if_index);
        let role = memif.expect("the end is a memif").role;
        assert_eq!(
            role.0,
            MemifRole::MEMIF_ROLE_API_MASTER.0,
            "VPP is the master: the workload connects"
        );
    }
    let sockets = s.memif_sockets().await;
    assert!(sockets.iter().any(|(_, f)| f == &socket), "{sockets:?}");
    assert!(s.vpp.verify(request.clone()).await.unwrap().is_empty());

    let work = s
        .vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .unwrap();
    assert!(
        work.operations.iter().any(|o| o.contains("removed")),
        "{work:?}"
    );
    assert_eq!(s.interfaces().await, []);
    assert_eq!(s.xconnects().await, []);
    let sockets = s.memif_sockets().await;
    assert!(
        sockets.iter().all(|(id, _)| *id == 0),
        "only VPP's default socket is left: {sockets:?}"
    );
}

/// Fix 1 of issue 16: VPP does not make the folder of an absolute socket path, nor remove
/// the file.
async fn the_memif_socket_folder_is_made_and_no_socket_file_outlives_its_vwire(backend: Backend) {
    let Some(s) = Setup::start(backend, "the memif socket folder").await else {
        return;
    };
    assert!(!s.memif_dir.exists(), "a fresh host: no folder yet");
    let by_default = memif_request(&s.vpp);
    // An end whose mechanism names its own socket, in a folder of the operator's.
    let operators = s.dir().join("operator");
    std::fs::create_dir(&operators).unwrap();
    std::fs::set_permissions(&operators, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut named = memif_request(&s.vpp);
    let own_file = operators.join("endpoint.sock");
    named.endpoint.parameters.insert(
        SOCKETFILE_PARAMETER.into(),
        own_file.to_string_lossy().into(),
    );
    for request in [&by_default, &named] {
        s.vpp.plumb(request.clone()).await.unwrap();
    }

    let files: Vec<String> = [&by_default, &named]
        .into_iter()
        .flat_map(socket_files)
        .collect();
    for file in &files {
        assert!(is_socket(file), "{file} is VPP's socket while plumbed");
    }
    assert_eq!(
        mode(&s.memif_dir),
        0o755,
        "a workload of any user reaches it"
    );
    assert_eq!(mode(s.memif_dir.parent().unwrap()), 0o755);
    assert_eq!(
        mode(&operators),
        0o700,
        "an existing folder is left as it is"
    );

    for request in [&by_default, &named] {
        s.vpp
            .unplumb(request.vwire, &plumbing(request))
            .await
            .unwrap();
    }
    for file in &files {
        assert!(!Path::new(file).exists(), "{file} outlived its vWire");
    }
    assert!(s.memif_dir.is_dir(), "the folder stays for the next vWires");
}

/// Fix 4 of issue 16: VPP's failed memif_create_v2 (-14) names the index it freed again; the
/// forwarder acts on none of it, and undoes the client end, socket file included.
async fn a_memif_vpp_cannot_bind_is_refused_and_leaves_nothing(backend: Backend) {
    let Some(s) = Setup::start(backend, "a memif VPP cannot bind").await else {
        return;
    };
    let live = memif_request(&s.vpp);
    s.vpp.plumb(live.clone()).await.unwrap();
    let interfaces = s.interfaces().await;
    let sockets = s.memif_sockets().await;

    // Where the endpoint's socket should be is a regular file: VPP's bind fails.
    let plain = s.dir().join("plain");
    std::fs::write(&plain, "not a socket").unwrap();
    let mut request = memif_request(&s.vpp);
    request
        .endpoint
        .parameters
        .insert(SOCKETFILE_PARAMETER.into(), plain.to_string_lossy().into());
    let error = s.vpp.plumb(request.clone()).await.unwrap_err().to_string();
    assert!(
        error.contains("memif_create_v2") && error.contains("SYSCALL_ERROR_4 (-14)"),
        "{error}"
    );

    assert_eq!(s.interfaces().await, interfaces, "nothing of it is left");
    assert_eq!(s.memif_sockets().await, sockets);
    let [client_file, _] = socket_files(&request);
    assert!(
        !Path::new(&client_file).exists(),
        "the client end's file went with it"
    );
    assert_eq!(
        std::fs::read(&plain).unwrap(),
        b"not a socket",
        "not ours to remove"
    );
    assert!(s.vpp.verify(live.clone()).await.unwrap().is_empty());
    // The index VPP named in its refusal is the next one it gives.
    let next = memif_request(&s.vpp);
    s.vpp.plumb(next.clone()).await.unwrap();
    assert!(s.vpp.verify(next).await.unwrap().is_empty());
    assert!(s.vpp.verify(live).await.unwrap().is_empty());
}

async fn a_kernel_vwire_by_af_packet_joins_two_namespaces_through_vpp(backend: Backend) {
    let test = "a KERNEL vWire by af_packet";
    let Some(s) = Setup::with_kernel_interface(backend, test, KernelInterface::AfPacket).await
    else {
        return;
    };
    let mut namespaces = Namespaces::new();
    let (client_ns, endpoint_ns) = (namespaces.add("c"), namespaces.add("e"));
    let request = af_packet_request(&s.vpp, &client_ns, &endpoint_ns);
    s.vpp.plumb(request.clone()).await.unwrap();

    let ends = s.tagged_with(request.vwire).await;
    assert_eq!(ends.len(), 2, "{ends:?}");
    for end in &ends {
        let name = end.interface_name.as_str();
        assert!(name.starts_with("host-vpp-"), "{name}");
        assert!(admin_up(end), "{name}");
    }
    assert_eq!(s.xconnects().await.len(), 2);
    for (ns, mechanism, address) in [
        (&client_ns, &request.client, "10.61.0.1/30"),
        (&endpoint_ns, &request.endpoint, "10.61.0.2/30"),
    ] {
        let name = &mechanism.parameters["name"];
        let (ok, shown) = ip_in(ns, &["addr", "show", "dev", name]);
        assert!(ok && shown.contains(address), "{ns}: {shown}");
    }
    if s.forwards_packets() {
        let ping = std::process::Command::new("ip")
            .args(["netns", "exec", &client_ns, "ping", "-c", "3", "-i", "0.2"])
            .args(["-W", "2", "10.61.0.2"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&ping.stdout);
        assert!(ping.status.success(), "through VPP: {said}");
    }
    assert!(s.vpp.verify(request.clone()).await.unwrap().is_empty());

    s.vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .unwrap();
    assert_eq!(s.interfaces().await, []);
    let name = &request.client.parameters["name"];
    assert!(
        !ip_in(&client_ns, &["link", "show", name]).0,
        "{name} is gone"
    );
}

async fn a_hundred_vwires_plumb_at_once_on_one_api_session(backend: Backend) {
    let Some(s) = Setup::start(backend, "a hundred vWires").await else {
        return;
    };
    let requests: Vec<PlumbRequest> = (0..100).map(|_| memif_request(&s.vpp)).collect();
    let plumbed = futures::future::join_all(requests.iter().map(|r| s.vpp.plumb(r.clone()))).await;
    assert!(plumbed.iter().all(Result::is_ok), "{plumbed:?}");
    assert_eq!(s.api_sessions(&format!("nsm-rs {}", s.node)), 1);
    assert_eq!(s.interfaces().await.len(), 200);
    assert_eq!(s.xconnects().await.len(), 200);
    let unplumbed = futures::future::join_all(
        requests
            .iter()
            .map(|r| s.vpp.unplumb(r.vwire, &plumbing(r))),
    )
    .await;
    assert!(unplumbed.iter().all(Result::is_ok));
    assert_eq!(s.interfaces().await, []);
    let left = std::fs::read_dir(&s.memif_dir).unwrap().count();
    assert_eq!(left, 0, "socket files left in {}", s.memif_dir.display());
}

async fn after_vpp_restarts_the_loss_is_announced_and_each_vwire_can_be_remade(backend: Backend) {
    let Some(mut s) = Setup::start(backend, "after VPP restarts").await else {
        return;
    };
    let mut lost = s.vpp.lost_state().unwrap();
    let requests: Vec<PlumbRequest> = (0..3).map(|_| memif_request(&s.vpp)).collect();
    for request in &requests {
        s.vpp.plumb(request.clone()).await.unwrap();
    }
    s.restart_vpp();
    tokio::time::timeout(Duration::from_secs(20), lost.changed())
        .await
        .expect("the restart is noticed")
        .unwrap();
    for request in &requests {
        let missing = s.vpp.verify(request.clone()).await.unwrap();
        assert_eq!(
            missing,
            [
                "the client end's VPP interface is missing",
                "the endpoint end's VPP interface is missing"
            ]
        );
        // What reconcile's heal does: remove the remains (VPP holds none, its socket files
        // are still on disk), plumb again.
        s.vpp
            .unplumb(request.vwire, &plumbing(request))
            .await
            .unwrap();
        for file in socket_files(request) {
            assert!(!Path::new(&file).exists(), "{file} outlived the unplumb");
        }
        s.vpp.plumb(request.clone()).await.unwrap();
        assert!(s.vpp.verify(request.clone()).await.unwrap().is_empty());
    }
    assert_eq!(s.interfaces().await.len(), 6);
    for request in &requests {
        s.vpp
            .unplumb(request.vwire, &plumbing(request))
            .await
            .unwrap();
    }
    let left = std::fs::read_dir(&s.memif_dir).unwrap().count();
    assert_eq!(left, 0, "socket files left in {}", s.memif_dir.display());
}

/// Fix 3 of issue 16: the sweep deleted memif socket 0 (VPP's own, which VPP refuses: -73)
/// when an orphan memif was on it, and logged the refusal among its removals.
async fn the_orphans_of_a_crashed_forwarder_are_removed_and_nothing_else_is(backend: Backend) {
    let Some(s) = Setup::start(backend, "orphans of a crashed forwarder").await else {
        return;
    };
    // This node's forwarder made two vWires and crashed; one was closed meanwhile.
    let crashed = s.data_plane(&s.node).await;
    let (live, orphan) = (memif_request(&crashed), memif_request(&crashed));
    for request in [&live, &orphan] {
        crashed.plumb(request.clone()).await.unwrap();
    }
    drop(crashed);
    // A memif of this node's on VPP's own socket (0), as a hand-made one is.
    let on_default_socket = VWireId::new_random();
    make_memif_on_the_default_socket(&s, &node_tag(&s.node, on_default_socket)).await;
    // Another node's vWire on the same VPP, and a memif nobody tagged.
    let node_b = s.data_plane(&format!("{}-b", s.node)).await;
    let other = memif_request(&node_b);
    node_b.plumb(other.clone()).await.unwrap();
    let untagged = make_untagged_memif(&s).await;

    // This node's forwarder again (s.vpp started before the crash, knowing nothing of it).
    let objects = s.vpp.inventory().await.unwrap();
    let mut owners: Vec<VWireId> = objects.iter().filter_map(|o| o.vwire).collect();
    owners.sort();
    let mut expected = vec![live.vwire, live.vwire, orphan.vwire, orphan.vwire];
    expected.push(on_default_socket);
    expected.sort();
    assert_eq!(owners, expected, "{objects:?}");

    let sockets_before = s.memif_sockets().await;
    let gone = [orphan.vwire, on_default_socket];
    let orphans = objects
        .into_iter()
        .filter(|o| o.vwire.is_some_and(|v| gone.contains(&v)))
        .collect();
    let work = s.vpp.remove(orphans).await.unwrap();
    let clean = work
        .operations
        .iter()
        .all(|o| !o.contains("could not") && !o.contains("(-"));
    assert!(clean, "{:#?}", work.operations);

    for vwire in gone {
        assert_eq!(s.tagged_with(vwire).await, []);
    }
    let sockets = s.memif_sockets().await;
    assert_eq!(sockets.len(), sockets_before.len() - 2, "{sockets:?}");
    assert!(sockets.iter().any(|(id, _)| *id == 0), "VPP's own stays");
    for file in socket_files(&orphan) {
        assert!(!Path::new(&file).exists(), "{file}");
        assert!(!sockets.iter().any(|(_, f)| *f == file), "{file}");
    }
    for file in socket_files(&live).into_iter().chain(socket_files(&other)) {
        assert!(is_socket(&file), "{file} is a live vWire's");
    }
    assert!(s.vpp.verify(live).await.unwrap().is_empty());
    assert!(node_b.verify(other.clone()).await.unwrap().is_empty());
    assert!(
        s.interfaces()
            .await
            .iter()
            .any(|i| i.sw_if_index == untagged)
    );
}

/// The tag `node`'s forwarder gives the client end of `vwire` (its node digest is FNV-1a 32
/// of the name).
fn node_tag(node: &str, vwire: VWireId) -> String {
    let digest = node
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
        .max(1);
    format!("nsm-rs:{digest:08x}:{vwire}:client")
}

/// A memif on VPP's default socket (0), tagged `tag`. A slave, so that nothing binds the
/// default socket's file, which every VPP of the host shares.
async fn make_memif_on_the_default_socket(s: &Setup, tag: &str) {
    let api = s.api().await;
    let create = MemifCreateV2 {
        role: MemifRole::MEMIF_ROLE_API_SLAVE,
        socket_id: 0,
        id: 4242,
        ..MemifCreateV2::default()
    };
    let sw_if_index = api.request(&create).await.unwrap().sw_if_index;
    let tagged = SwInterfaceTagAddDel {
        is_add: true,
        sw_if_index,
        tag: FixedString::new(tag).unwrap(),
    };
    api.request(&tagged).await.unwrap();
}

/// A master memif on a socket file of its own, untagged: what another program made.
async fn make_untagged_memif(s: &Setup) -> u32 {
    let api = s.api().await;
    let file = s.dir().join("untagged.sock");
    let socket = MemifSocketFilenameAddDelV2 {
        is_add: true,
        socket_id: u32::MAX,
        socket_filename: VarString(file.to_string_lossy().into_owned()),
    };
    let socket_id = api.request(&socket).await.unwrap().socket_id;
    let create = MemifCreateV2 {
        role: MemifRole::MEMIF_ROLE_API_MASTER,
        socket_id,
        ..MemifCreateV2::default()
    };
    api.request(&create).await.unwrap().sw_if_index
}

async fn a_vxlan_tunnel_is_made_tagged_and_deleted_by_its_key(backend: Backend) {
    let Some(s) = Setup::start(backend, "a VXLAN tunnel").await else {
        return;
    };
    let vxlan = s.vpp.vxlan().unwrap();
    let tunnel = VxlanTunnel {
        src: "192.0.2.1".parse().unwrap(),
        dst: "192.0.2.2".parse().unwrap(),
        vni: 4242,
    };
    let vwire = VWireId::new_random();
    let index = vxlan.create(vwire, End::Client, &tunnel).await.unwrap();
    let interfaces = s.interfaces().await;
    let made = interfaces.iter().find(|i| i.sw_if_index == index).unwrap();
    let name = made.interface_name.as_str();
    assert!(name.starts_with("vxlan_tunnel"), "{name}");
    assert!(made.tag.as_str().contains(&vwire.to_string()));
    assert_eq!(vxlan.list().await.unwrap().len(), 1);
    vxlan.delete(&tunnel).await.unwrap();
    assert!(s.interfaces().await.iter().all(|i| i.sw_if_index != index));
    vxlan.delete(&tunnel).await.unwrap();
    let wrong = VxlanTunnel {
        vni: 1 << 24,
        ..tunnel
    };
    assert!(vxlan.create(vwire, End::Client, &wrong).await.is_err());
}

// On the simulator only: injected faults and the CRC check.

struct SimSetup {
    _dir: tempfile::TempDir,
    sim: Simulator,
    vpp: Vpp,
}

/// A simulator and a data plane on it that needs no root: KERNEL ends by tap (the simulator
/// simulates vhost-net; the data plane only looks for the file).
async fn setup(request_timeout: Duration) -> SimSetup {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimulatorConfig::new(dir.path().join("api.sock"))).unwrap();
    let vpp = Vpp::start("node-a", sim_config(&sim, dir.path(), request_timeout))
        .await
        .unwrap();
    SimSetup {
        _dir: dir,
        sim,
        vpp,
    }
}

fn sim_config(sim: &Simulator, dir: &Path, request_timeout: Duration) -> VppConfig {
    let vhost_net = dir.join("vhost-net");
    std::fs::write(&vhost_net, "").unwrap();
    VppConfig {
        kernel_interface: KernelInterface::Tap,
        request_timeout,
        memif_dir: dir.join("memif"),
        vhost_net,
        ..VppConfig::new(sim.socket_path())
    }
}

/// Interfaces other than local0.
fn made(sim: &Simulator) -> Vec<SimInterface> {
    sim.interfaces()
        .into_iter()
        .filter(|i| i.sw_if_index != 0)
        .collect()
}

fn tagged_with(sim: &Simulator, vwire: VWireId) -> Vec<SimInterface> {
    let id = vwire.to_string();
    made(sim)
        .into_iter()
        .filter(|i| i.tag.contains(&id))
        .collect()
}

#[tokio::test]
async fn a_refusal_by_vpp_names_its_error_and_leaves_nothing() {
    let s = setup(Duration::from_secs(2)).await;
    for step in [
        "memif_socket_filename_add_del_v2",
        "memif_create_v2",
        "sw_interface_tag_add_del",
        "sw_interface_set_l2_xconnect",
        "sw_interface_set_flags",
    ] {
        s.sim.fail_next(step, -2, 1);
        let error = s.vpp.plumb(memif_request(&s.vpp)).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("INVALID_SW_IF_INDEX (-2)") && text.contains(step),
            "{step}: {text}"
        );
        assert!(made(&s.sim).is_empty(), "{step}: {:?}", made(&s.sim));
        assert!(
            s.sim.memif_sockets().iter().all(|(id, _)| *id == 0),
            "{step}"
        );
    }
}

#[tokio::test]
async fn silence_is_a_timeout_and_reconcile_finds_what_vpp_made_anyway() {
    let s = setup(Duration::from_millis(300)).await;
    s.sim.drop_next("sw_interface_set_flags", 1);
    let request = memif_request(&s.vpp);
    let error = s.vpp.plumb(request.clone()).await.unwrap_err();
    assert!(error.to_string().contains("did not answer"), "{error}");
    assert!(tagged_with(&s.sim, request.vwire).is_empty(), "undone");
    // The connection is still usable after a silent drop.
    s.vpp.plumb(memif_request(&s.vpp)).await.unwrap();
}

#[tokio::test]
async fn another_vpp_api_is_refused_at_start_naming_both_crcs() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimulatorConfig::new(dir.path().join("api.sock"))).unwrap();
    sim.advertise_crc("sw_interface_set_flags", 0x0bad_c0de);
    let config = sim_config(&sim, dir.path(), Duration::from_secs(2));
    let error = Vpp::start("node-a", config.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("sw_interface_set_flags (ours f5aec1b8, VPP 0badc0de)"),
        "{error}"
    );
    let nowhere = VppConfig {
        socket: dir.path().join("nothing.sock"),
        ..config
    };
    let missing = Vpp::start("node-a", nowhere).await.unwrap_err().to_string();
    assert!(missing.contains("nothing.sock"), "{missing}");
}

//! The VPP data plane against the VPP API simulator (no VPP on these machines): plumbing
//! and unplumbing taps and memifs, many vWires at once on one connection, each injected
//! fault giving the right error and leaving nothing half-made, the CRC check at start-up,
//! and what reconcile needs after VPP restarts (the loss noticed, what is missing named and
//! re-made, orphans found and removed, other nodes' interfaces left alone).

use std::time::Duration;

use nsm_dataplane::vpp::{KernelInterface, SOCKETFILE_PARAMETER, Vpp, VppConfig, VxlanTunnel};
use nsm_dataplane::{Dataplane, DataplaneError, End, PlumbRequest};
use nsm_domain::vwire::{ConnectionContext, Mechanism, MechanismClass, Plumbing, VWireId};
use nsm_vpp_simulator::{SimInterface, SimKind, Simulator, SimulatorConfig};

struct Setup {
    _dir: tempfile::TempDir,
    sim: Simulator,
    vpp: Vpp,
}

async fn setup(kernel_interface: KernelInterface) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimulatorConfig::new(dir.path().join("api.sock"))).unwrap();
    let config = VppConfig {
        kernel_interface,
        request_timeout: Duration::from_secs(2),
        memif_dir: dir.path().to_owned(),
        ..VppConfig::new(sim.socket_path())
    };
    let vpp = Vpp::start("node-a", config).await.unwrap();
    Setup {
        _dir: dir,
        sim,
        vpp,
    }
}

fn memif_request(vpp: &Vpp) -> PlumbRequest {
    let vwire = VWireId::new_random();
    let memif = || Mechanism::new(MechanismClass::Local, "MEMIF");
    PlumbRequest {
        vwire,
        client: vpp.complete(vwire, End::Client, memif()),
        endpoint: vpp.complete(vwire, End::Endpoint, memif()),
        context: ConnectionContext::default(),
    }
}

fn tap_request(vpp: &Vpp) -> PlumbRequest {
    let vwire = VWireId::new_random();
    let kernel = |pid: u32| {
        let mut m = Mechanism::new(MechanismClass::Local, "KERNEL");
        m.parameters
            .insert("inodeURL".into(), format!("file:///proc/{pid}/ns/net"));
        m
    };
    let mut context = ConnectionContext::default();
    context.ip.src_ip_addrs = vec!["10.60.0.1/30".into()];
    context.ip.dst_ip_addrs = vec!["10.60.0.2/30".into(), "fd00::2/64".into()];
    context.mtu = Some(1400);
    PlumbRequest {
        vwire,
        client: vpp.complete(vwire, End::Client, kernel(101)),
        endpoint: vpp.complete(vwire, End::Endpoint, kernel(202)),
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
async fn a_memif_vwire_is_two_tagged_memifs_cross_connected_both_ways_and_up() {
    let s = setup(KernelInterface::Tap).await;
    let request = memif_request(&s.vpp);
    let socket = request.client.parameters[SOCKETFILE_PARAMETER].clone();
    assert!(
        socket.ends_with(&format!("{}-client.sock", request.vwire)),
        "{socket}"
    );
    s.vpp.plumb(request.clone()).await.unwrap();

    let ends = tagged_with(&s.sim, request.vwire);
    assert_eq!(ends.len(), 2, "{ends:?}");
    let (a, b) = (&ends[0], &ends[1]);
    assert!(a.admin_up && b.admin_up);
    assert_eq!(a.l2_xconnect, Some(b.sw_if_index));
    assert_eq!(b.l2_xconnect, Some(a.sw_if_index));
    let mut tags: Vec<&str> = ends.iter().map(|i| i.tag.as_str()).collect();
    tags.sort();
    assert!(
        tags[0].ends_with(":client") && tags[1].ends_with(":endpoint"),
        "{tags:?}"
    );
    for end in &ends {
        let SimKind::Memif(memif) = &end.kind else {
            panic!("{end:?}");
        };
        assert_eq!(memif.role.0, 0, "VPP is the master: the workload connects");
    }
    let sockets: Vec<String> = s.sim.memif_sockets().into_iter().map(|(_, f)| f).collect();
    assert!(sockets.contains(&socket), "{sockets:?}");
    assert!(s.vpp.verify(request.clone()).await.unwrap().is_empty());

    let work = s
        .vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .unwrap();
    assert!(made(&s.sim).is_empty(), "{:?}", made(&s.sim));
    assert!(
        !s.sim.memif_sockets().iter().any(|(_, f)| f == &socket),
        "the socket files go too"
    );
    assert!(
        work.operations.iter().any(|o| o.contains("removed")),
        "{work:?}"
    );
}

#[tokio::test]
async fn a_kernel_vwire_by_tap_puts_each_end_in_its_namespace_with_its_context() {
    let s = setup(KernelInterface::Tap).await;
    let request = tap_request(&s.vpp);
    s.vpp.plumb(request.clone()).await.unwrap();
    let ends = tagged_with(&s.sim, request.vwire);
    assert_eq!(ends.len(), 2);
    for end in &ends {
        let SimKind::Tap(tap) = &end.kind else {
            panic!("{end:?}");
        };
        let client = end.tag.ends_with(":client");
        let (pid, name) = if client {
            (101, &request.client.parameters["name"])
        } else {
            (202, &request.endpoint.parameters["name"])
        };
        assert_eq!(tap.host_namespace.as_str(), format!("/proc/{pid}/ns/net"));
        assert_eq!(tap.host_if_name.as_str(), name);
        assert!(tap.host_mtu_set && tap.host_mtu_size == 1400);
        assert!(tap.host_ip4_prefix_set);
        assert_eq!(
            tap.host_ip6_prefix_set, !client,
            "only the endpoint has IPv6"
        );
        assert!(end.admin_up);
    }
    s.vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .unwrap();
    assert!(made(&s.sim).is_empty());
}

#[tokio::test]
async fn what_a_tap_cannot_carry_is_refused_before_vpp_is_touched() {
    let s = setup(KernelInterface::Tap).await;
    let mut request = tap_request(&s.vpp);
    request.context.ip.src_ip_addrs.push("10.61.0.1/30".into());
    let error = s.vpp.plumb(request).await.unwrap_err();
    assert!(
        matches!(&error, DataplaneError::InvalidInput(m) if m.contains("af-packet")),
        "{error}"
    );
    let mut request = tap_request(&s.vpp);
    request.client.mechanism_type = "VFIO".into();
    let error = s.vpp.plumb(request).await.unwrap_err();
    assert!(
        matches!(error, DataplaneError::Unsupported { .. }),
        "{error}"
    );
    assert_eq!(s.sim.stats().requests_by_message.get("tap_create_v3"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_vwires_plumb_at_once_on_one_connection() {
    let s = setup(KernelInterface::Tap).await;
    let requests: Vec<PlumbRequest> = (0..100).map(|_| memif_request(&s.vpp)).collect();
    let plumbed = futures::future::join_all(requests.iter().map(|r| s.vpp.plumb(r.clone()))).await;
    assert!(plumbed.iter().all(Result::is_ok));
    assert_eq!(made(&s.sim).len(), 200);
    assert_eq!(s.sim.xconnects().len(), 200);
    assert_eq!(s.sim.stats().open_connections, 1);
    let unplumbed = futures::future::join_all(
        requests
            .iter()
            .map(|r| s.vpp.unplumb(r.vwire, &plumbing(r))),
    )
    .await;
    assert!(unplumbed.iter().all(Result::is_ok));
    assert!(made(&s.sim).is_empty());
}

#[tokio::test]
async fn a_refusal_by_vpp_names_its_error_and_leaves_nothing() {
    let s = setup(KernelInterface::Tap).await;
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
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimulatorConfig::new(dir.path().join("api.sock"))).unwrap();
    let config = VppConfig {
        request_timeout: Duration::from_millis(300),
        memif_dir: dir.path().to_owned(),
        ..VppConfig::new(sim.socket_path())
    };
    let vpp = Vpp::start("node-a", config).await.unwrap();
    sim.drop_next("sw_interface_set_flags", 1);
    let request = memif_request(&vpp);
    let error = vpp.plumb(request.clone()).await.unwrap_err();
    assert!(error.to_string().contains("did not answer"), "{error}");
    assert!(tagged_with(&sim, request.vwire).is_empty(), "undone");
    // The connection is still usable after a silent drop.
    vpp.plumb(memif_request(&vpp)).await.unwrap();
}

#[tokio::test]
async fn another_vpp_api_is_refused_at_start_naming_both_crcs() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimulatorConfig::new(dir.path().join("api.sock"))).unwrap();
    sim.advertise_crc("sw_interface_set_flags", 0x0bad_c0de);
    let error = Vpp::start("node-a", VppConfig::new(sim.socket_path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("sw_interface_set_flags (ours f5aec1b8, VPP 0badc0de)"),
        "{error}"
    );
    let missing = Vpp::start("node-a", VppConfig::new(dir.path().join("nothing.sock")))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nothing.sock"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_vpp_restarts_the_loss_is_announced_and_each_vwire_can_be_remade() {
    let s = setup(KernelInterface::Tap).await;
    let mut lost = s.vpp.lost_state().unwrap();
    let requests: Vec<PlumbRequest> = (0..3).map(|_| memif_request(&s.vpp)).collect();
    for request in &requests {
        s.vpp.plumb(request.clone()).await.unwrap();
    }
    s.sim.restart();
    tokio::time::timeout(Duration::from_secs(10), lost.changed())
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
        // What reconcile's heal does: remove the remains, plumb again.
        s.vpp
            .unplumb(request.vwire, &plumbing(request))
            .await
            .unwrap();
        s.vpp.plumb(request.clone()).await.unwrap();
        assert!(s.vpp.verify(request.clone()).await.unwrap().is_empty());
    }
    assert_eq!(made(&s.sim).len(), 6);
}

#[tokio::test]
async fn inventory_finds_this_nodes_orphans_and_removal_leaves_the_rest() {
    let s = setup(KernelInterface::Tap).await;
    let live = memif_request(&s.vpp);
    s.vpp.plumb(live.clone()).await.unwrap();
    // Left by a run that crashed, and one of another node's, and an untagged one.
    let orphan = VWireId::new_random();
    let other_node = VWireId::new_random();
    for (tag, id) in [
        (
            format!("nsm-rs:{:08x}:{orphan}:client", digest("node-a")),
            7,
        ),
        (
            format!("nsm-rs:{:08x}:{other_node}:client", digest("node-b")),
            8,
        ),
        (String::new(), 9),
    ] {
        let mut tap = nsm_vpp::api::TapCreateV3 {
            id,
            ..Default::default()
        };
        tap.tag = nsm_vpp::codec::VarString(tag.clone());
        s.sim.insert_interface(SimInterface {
            sw_if_index: 0,
            name: format!("tap{id}"),
            dev_type: "virtio".into(),
            kind: SimKind::Tap(Box::new(tap)),
            admin_up: true,
            link_up: true,
            carrier: true,
            tag,
            mac: [2, 0, 0, 0, 0, id as u8],
            mtu: [1500, 0, 0, 0],
            rx_mode: None,
            addresses: vec![],
            l2_xconnect: None,
        });
    }
    let objects = s.vpp.inventory().await.unwrap();
    let owners: Vec<Option<VWireId>> = objects.iter().map(|o| o.vwire).collect();
    assert_eq!(objects.len(), 3, "{objects:?}");
    assert_eq!(owners.iter().filter(|o| **o == Some(live.vwire)).count(), 2);
    assert!(owners.contains(&Some(orphan)));
    let orphans: Vec<_> = objects
        .into_iter()
        .filter(|o| o.vwire == Some(orphan))
        .collect();
    s.vpp.remove(orphans).await.unwrap();
    let left: Vec<String> = made(&s.sim).into_iter().map(|i| i.name).collect();
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.contains(&"tap8".to_owned()) && left.contains(&"tap9".to_owned()));
    assert!(!left.contains(&"tap7".to_owned()));
}

#[tokio::test]
async fn a_vxlan_tunnel_is_made_tagged_and_deleted_by_its_key() {
    let s = setup(KernelInterface::Tap).await;
    let vxlan = s.vpp.vxlan().unwrap();
    let tunnel = VxlanTunnel {
        src: "192.0.2.1".parse().unwrap(),
        dst: "192.0.2.2".parse().unwrap(),
        vni: 4242,
    };
    let vwire = VWireId::new_random();
    let index = vxlan.create(vwire, End::Client, &tunnel).await.unwrap();
    let made = s.sim.interface(index).unwrap();
    assert!(made.name.starts_with("vxlan_tunnel"), "{made:?}");
    assert!(made.tag.contains(&vwire.to_string()));
    assert_eq!(vxlan.list().await.unwrap().len(), 1);
    vxlan.delete(&tunnel).await.unwrap();
    assert!(s.sim.interface(index).is_none());
    vxlan.delete(&tunnel).await.unwrap();
    let wrong = VxlanTunnel {
        vni: 1 << 24,
        ..tunnel
    };
    assert!(vxlan.create(vwire, End::Client, &wrong).await.is_err());
}

/// The node digest tags carry (FNV-1a 32 of the name, as the forwarder computes it).
fn digest(node: &str) -> u32 {
    node.bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
        .max(1)
}

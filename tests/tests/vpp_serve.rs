//! `nsm serve --dataplane vpp` end to end, against the VPP API simulator in the test process
//! (there is no VPP on these machines): a MEMIF vWire requested over gRPC becomes two
//! tagged, cross-connected VPP interfaces and Close removes them; when VPP restarts, the
//! node reconnects by itself, re-creates every live vWire's interfaces and removes this
//! node's orphans, each repair recorded on its vWire.

use std::collections::BTreeMap;
use std::time::Duration;

use nsm_proto::connection::Mechanism;
use nsm_tests::mesh::{Node, first_request, node_with_endpoint};
use nsm_tests::programs::streams;
use nsm_vpp_simulator::{SimInterface, SimKind, Simulator, SimulatorConfig};

fn memif() -> Mechanism {
    Mechanism {
        cls: "LOCAL".into(),
        r#type: "MEMIF".into(),
        parameters: Default::default(),
    }
}

fn ours(sim: &Simulator) -> Vec<SimInterface> {
    sim.interfaces()
        .into_iter()
        .filter(|i| i.tag.starts_with("nsm-rs:"))
        .collect()
}

async fn start(dir: &std::path::Path) -> (Simulator, Node, nsm_tests::fake_endpoint::FakeEndpoint) {
    let socket = dir.join("vpp-api.sock");
    let sim = Simulator::start(SimulatorConfig::new(&socket)).unwrap();
    let memif_dir = dir.join("memif");
    let flags = [
        "--dataplane",
        "vpp",
        "--vpp-api-socket",
        socket.to_str().unwrap(),
        "--vpp-kernel-interface",
        "tap",
        "--vpp-memif-dir",
        memif_dir.to_str().unwrap(),
    ];
    let (node, endpoint) = node_with_endpoint(dir, &flags).await;
    (sim, node, endpoint)
}

async fn request(node: &Node, client: &str) -> (nsm_proto::connection::Connection, String) {
    let mut request = first_request("icmp", client, &[]);
    request.mechanism_preferences = vec![memif()];
    let connection = node
        .network_service()
        .request(request)
        .await
        .expect("request")
        .into_inner();
    let vwire = connection.path.as_ref().unwrap().path_segments[1]
        .id
        .clone();
    (connection, vwire)
}

async fn event_types(db: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    streams(db)
        .await
        .into_iter()
        .map(|(stream, events)| (stream, events.into_iter().map(|e| e.event_type).collect()))
        .collect()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memif_vwire_is_plumbed_in_vpp_and_close_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, node, _endpoint) = start(dir.path()).await;
    let (connection, vwire) = request(&node, "nsc-1").await;
    let mechanism = connection.mechanism.clone().unwrap();
    assert_eq!(mechanism.r#type, "MEMIF");
    let socket = &mechanism.parameters["socketfile"];
    assert!(
        socket.contains(&vwire),
        "the client learns its socket: {socket}"
    );

    let ends = ours(&sim);
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert!(ends.iter().all(|i| i.tag.contains(&vwire) && i.admin_up));
    assert_eq!(ends[0].l2_xconnect, Some(ends[1].sw_if_index));
    assert_eq!(ends[1].l2_xconnect, Some(ends[0].sw_if_index));

    node.network_service()
        .close(connection)
        .await
        .expect("close");
    assert!(ours(&sim).is_empty(), "{:?}", ours(&sim));
    let types = event_types(&node.db).await;
    let stream = &types[&format!("vwire-{vwire}")];
    assert!(
        stream.contains(&"DataplanePlumbed".to_owned()),
        "{stream:?}"
    );
    assert!(
        stream.contains(&"DataplaneUnplumbed".to_owned()),
        "{stream:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_vpp_restarts_the_node_re_creates_live_vwires_and_removes_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, node, _endpoint) = start(dir.path()).await;
    let (_, first) = request(&node, "nsc-1").await;
    let (_, second) = request(&node, "nsc-2").await;
    assert_eq!(ours(&sim).len(), 4);

    // VPP restarts, empty; before the node gets back in, something tagged as this node's
    // for a vWire the log does not have appears (left by an earlier life).
    sim.stop_listening();
    sim.restart();
    let orphan_tag = ours_tag_like(&first).replace(&first, &uuid::Uuid::new_v4().to_string());
    let mut tap = nsm_vpp::api::TapCreateV3 {
        id: 77,
        ..Default::default()
    };
    tap.tag = nsm_vpp::codec::VarString(orphan_tag.clone());
    let mut orphan = SimInterface::new(SimKind::Tap(Box::new(tap)));
    orphan.tag = orphan_tag.clone();
    sim.insert_interface(orphan);
    sim.resume_listening().unwrap();

    eventually("both vWires re-created and the orphan removed", || {
        let now = ours(&sim);
        now.len() == 4 && !now.iter().any(|i| i.tag == orphan_tag)
    })
    .await;
    let now = ours(&sim);
    for vwire in [&first, &second] {
        let ends: Vec<_> = now
            .iter()
            .filter(|i| i.tag.contains(vwire.as_str()))
            .collect();
        assert_eq!(ends.len(), 2, "{vwire}: {now:?}");
        assert_eq!(ends[0].l2_xconnect, Some(ends[1].sw_if_index));
    }
    let mut types = BTreeMap::new();
    for _ in 0..100 {
        types = event_types(&node.db).await;
        let healed = [&first, &second]
            .iter()
            .all(|v| types[&format!("vwire-{v}")].last().map(String::as_str) == Some("Healed"));
        if healed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for vwire in [&first, &second] {
        let stream = &types[&format!("vwire-{vwire}")];
        assert_eq!(
            stream.last().map(String::as_str),
            Some("Healed"),
            "{stream:?}"
        );
    }
    let node_stream = &types["dataplane-node-a"];
    assert!(
        node_stream.contains(&"OrphansRemoved".to_owned()),
        "{node_stream:?}"
    );
}

/// The tag the node gives vWire `vwire`'s client end, read back from the simulator.
fn ours_tag_like(vwire: &str) -> String {
    format!("nsm-rs:{:08x}:{vwire}:client", digest("node-a"))
}

fn digest(node: &str) -> u32 {
    node.bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
        .max(1)
}

//! `nsm serve --dataplane vpp` end to end, each test on two back ends: the VPP API simulator
//! in the test process, and a real VPP 26.06 of the test's own (`NSM_TEST_VPP`; skipped with
//! a printed reason outside CI when it is missing, a failure under `CI=true`). What VPP holds
//! is read back through VPP's own API (`sw_interface_dump`), the same way on both.
//!
//! - A MEMIF vWire requested over gRPC becomes two tagged VPP interfaces that are up; its
//!   socket is made in a memif folder that did not exist; Close removes interfaces and socket.
//! - When VPP restarts, the node reconnects by itself, re-creates every live vWire's
//!   interfaces, and records each repair (`Healed`) on its vWire.
//! - A node restarted after a crash keeps its live vWires and removes this node's orphans
//!   (made while it was down), recording `OrphansRemoved` with a clean account of the work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nsm_proto::connection::Mechanism;
use nsm_test_support::vpp::VppInstance;
use nsm_tests::fake_endpoint::FakeEndpoint;
use nsm_tests::mesh::{Node, first_request, register};
use nsm_tests::programs::streams;
use nsm_vpp::api::{
    IfStatusFlags, MemifCreateV2, MemifRole, MemifSocketFilenameAddDelV2, SwInterfaceDump,
    SwInterfaceTagAddDel,
};
use nsm_vpp::client::{Client, Config};
use nsm_vpp::codec::{FixedString, VarString};
use nsm_vpp_simulator::{Simulator, SimulatorConfig};

/// The VPP a test runs against.
enum Backend {
    Simulator(Simulator),
    Real(VppInstance),
}

impl Backend {
    fn simulator(dir: &Path) -> Self {
        let socket = dir.join("vpp-api.sock");
        Self::Simulator(Simulator::start(SimulatorConfig::new(&socket)).unwrap())
    }

    fn real(test: &str) -> Option<Self> {
        VppInstance::start_or_skip(test).map(Self::Real)
    }

    fn socket(&self) -> PathBuf {
        match self {
            Self::Simulator(sim) => sim.socket_path().to_owned(),
            Self::Real(vpp) => vpp.api_socket(),
        }
    }

    /// VPP loses everything it held and comes back on the same socket.
    fn restart(&mut self) {
        match self {
            Self::Simulator(sim) => sim.restart(),
            Self::Real(vpp) => vpp.restart().expect("VPP starts again"),
        }
    }

    async fn client(&self) -> Client {
        Client::connect(Config::new(self.socket()))
            .await
            .expect("connect to VPP's API")
    }

    /// The interfaces tagged by nsm-rs, with their tags and whether they are admin up.
    async fn ours(&self) -> Vec<(String, bool)> {
        let dump = SwInterfaceDump {
            sw_if_index: u32::MAX,
            ..SwInterfaceDump::default()
        };
        let admin_up = IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP.0;
        self.client()
            .await
            .dump(&dump)
            .await
            .expect("sw_interface_dump")
            .into_iter()
            .filter(|i| i.tag.as_str().starts_with("nsm-rs:"))
            .map(|i| (i.tag.as_str().to_owned(), i.flags.0 & admin_up != 0))
            .collect()
    }

    /// Makes a memif tagged as `node`'s client end of `vwire`, as a crashed run leaves it.
    async fn make_orphan(&self, node: &str, socket_file: &Path, vwire: &str) {
        let client = self.client().await;
        let socket = MemifSocketFilenameAddDelV2 {
            is_add: true,
            socket_id: u32::MAX,
            socket_filename: VarString(socket_file.display().to_string()),
        };
        let socket_id = client.request(&socket).await.unwrap().socket_id;
        let memif = MemifCreateV2 {
            role: MemifRole::MEMIF_ROLE_API_MASTER,
            socket_id,
            ..MemifCreateV2::default()
        };
        let sw_if_index = client.request(&memif).await.unwrap().sw_if_index;
        let tag = SwInterfaceTagAddDel {
            is_add: true,
            sw_if_index,
            tag: FixedString::new(client_tag(node, vwire)).unwrap(),
        };
        client.request(&tag).await.unwrap();
    }
}

/// One test body, run on the simulator and on a real VPP.
macro_rules! on_both {
    ($body:ident: $on_simulator:ident, $on_vpp:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_simulator() {
            let dir = tempfile::tempdir().unwrap();
            let backend = Backend::simulator(dir.path());
            $body(dir.path(), backend).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_vpp() {
            let Some(backend) = Backend::real(stringify!($on_vpp)) else {
                return;
            };
            let dir = tempfile::tempdir().unwrap();
            $body(dir.path(), backend).await;
        }
    };
}

fn memif() -> Mechanism {
    Mechanism {
        cls: "LOCAL".into(),
        r#type: "MEMIF".into(),
        parameters: Default::default(),
    }
}

/// A memif folder that does not exist yet: the forwarder makes it (VPP does not).
fn memif_dir(dir: &Path) -> PathBuf {
    dir.join("run/vpp/nsm")
}

/// A node of a name of its own (its sweep must not meet another test's objects), serving
/// `icmp` by one in-process endpoint.
async fn start(dir: &Path, backend: &Backend) -> (Node, FakeEndpoint) {
    let socket = backend.socket();
    let memif_dir = memif_dir(dir);
    let flags = [
        "--dataplane",
        "vpp",
        "--vpp-api-socket",
        socket.to_str().unwrap(),
        // No /dev/vhost-net on these machines; MEMIF vWires do not use KERNEL ends anyway.
        "--vpp-kernel-interface",
        "af-packet",
        "--vpp-memif-dir",
        memif_dir.to_str().unwrap(),
    ];
    let name = format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let node = Node::start_in(dir, None, &name, &flags).await;
    let endpoint = FakeEndpoint::start(dir, "nse-1").await;
    register(
        &node,
        "icmp",
        "nse-1",
        &endpoint.url(),
        &[],
        chrono::Duration::hours(1),
    )
    .await;
    (node, endpoint)
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

async fn event_types(db: &Path) -> BTreeMap<String, Vec<String>> {
    streams(db)
        .await
        .into_iter()
        .map(|(stream, events)| (stream, events.into_iter().map(|e| e.event_type).collect()))
        .collect()
}

/// Waits up to 20 s for `check` to hold on what VPP holds.
async fn eventually_in_vpp(
    backend: &Backend,
    what: &str,
    check: impl Fn(&[(String, bool)]) -> bool,
) {
    let mut last = Vec::new();
    for _ in 0..200 {
        // VPP may be between sessions: a failed connect is just "not yet".
        if let Ok(client) = Client::connect(Config::new(backend.socket())).await {
            drop(client);
            last = backend.ours().await;
            if check(&last) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 20 s: {what}; VPP holds {last:?}");
}

/// Waits up to 20 s until every stream in `streams` ends with event `last`.
async fn eventually_last_event(
    db: &Path,
    streams: &[String],
    last: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut types = BTreeMap::new();
    for _ in 0..200 {
        types = event_types(db).await;
        if streams
            .iter()
            .all(|s| types.get(s).and_then(|e| e.last()).map(String::as_str) == Some(last))
        {
            return types;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 20 s: {streams:?} end with {last}: {types:?}");
}

on_both!(memif_vwire_then_close: a_memif_vwire_is_plumbed_and_close_removes_it_on_the_simulator, a_memif_vwire_is_plumbed_and_close_removes_it_on_vpp);

async fn memif_vwire_then_close(dir: &Path, backend: Backend) {
    assert!(!memif_dir(dir).exists());
    let (node, _endpoint) = start(dir, &backend).await;
    let (connection, vwire) = request(&node, "nsc-1").await;
    let mechanism = connection.mechanism.clone().unwrap();
    assert_eq!(mechanism.r#type, "MEMIF");
    let socket = PathBuf::from(&mechanism.parameters["socketfile"]);
    assert!(
        socket.starts_with(memif_dir(dir)) && socket.to_string_lossy().contains(&vwire),
        "the client learns its socket: {}",
        socket.display()
    );
    assert!(socket.exists(), "VPP listens on {}", socket.display());
    let ends = backend.ours().await;
    assert_eq!(ends.len(), 2, "{ends:?}");
    assert!(
        ends.iter().all(|(tag, up)| tag.contains(&vwire) && *up),
        "{ends:?}"
    );

    node.network_service()
        .close(connection)
        .await
        .expect("close");
    assert!(backend.ours().await.is_empty());
    assert!(!socket.exists(), "{} is left on disk", socket.display());
    let types = event_types(&node.db).await;
    let stream = &types[&format!("vwire-{vwire}")];
    for event in ["DataplanePlumbed", "DataplaneUnplumbed"] {
        assert!(stream.contains(&event.to_owned()), "{stream:?}");
    }
}

on_both!(vpp_restart: after_vpp_restarts_the_node_re_creates_live_vwires_on_the_simulator, after_vpp_restarts_the_node_re_creates_live_vwires_on_vpp);

async fn vpp_restart(dir: &Path, mut backend: Backend) {
    let (node, _endpoint) = start(dir, &backend).await;
    let (_, first) = request(&node, "nsc-1").await;
    let (_, second) = request(&node, "nsc-2").await;
    assert_eq!(backend.ours().await.len(), 4);

    backend.restart();
    eventually_in_vpp(&backend, "both vWires re-created, up", |ours| {
        ours.len() == 4
            && ours.iter().all(|(_, up)| *up)
            && [&first, &second].iter().all(|v| {
                ours.iter()
                    .filter(|(tag, _)| tag.contains(v.as_str()))
                    .count()
                    == 2
            })
    })
    .await;
    let streams = [format!("vwire-{first}"), format!("vwire-{second}")];
    eventually_last_event(&node.db, &streams, "Healed").await;
}

on_both!(node_crash: a_restarted_node_keeps_live_vwires_and_removes_orphans_on_the_simulator, a_restarted_node_keeps_live_vwires_and_removes_orphans_on_vpp);

async fn node_crash(dir: &Path, backend: Backend) {
    let (mut node, _endpoint) = start(dir, &backend).await;
    let (_, live) = request(&node, "nsc-1").await;
    node.sigkill();
    let orphan = uuid::Uuid::new_v4().to_string();
    backend
        .make_orphan(&node.name, &dir.join("orphan.sock"), &orphan)
        .await;
    assert_eq!(backend.ours().await.len(), 3);

    node.start_again().await;
    let ours = backend.ours().await;
    assert_eq!(
        ours.len(),
        2,
        "the orphan is removed before serving: {ours:?}"
    );
    assert!(
        ours.iter().all(|(tag, up)| tag.contains(&live) && *up),
        "{ours:?}"
    );
    let events = streams(&node.db).await;
    let removed: Vec<_> = events[&format!("dataplane-{}", node.name)]
        .iter()
        .filter(|e| e.event_type == "OrphansRemoved")
        .collect();
    assert_eq!(removed.len(), 1, "{removed:?}");
    let record = removed[0].payload.to_string();
    assert!(record.contains(&orphan), "{record}");
    for trouble in ["could not", "INVALID_ARGUMENT", "(-"] {
        assert!(
            !record.contains(trouble),
            "the removal went cleanly: {record}"
        );
    }
    let types = event_types(&node.db).await;
    let stream = &types[&format!("vwire-{live}")];
    assert!(
        !stream.contains(&"Healed".to_owned()),
        "the live vWire was whole: {stream:?}"
    );
}

/// The tag `node` gives a vWire's client end (FNV-1a 32 of the node name, as the forwarder
/// computes it).
fn client_tag(node: &str, vwire: &str) -> String {
    let digest = node
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
        .max(1);
    format!("nsm-rs:{digest:08x}:{vwire}:client")
}

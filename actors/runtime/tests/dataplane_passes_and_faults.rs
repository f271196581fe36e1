//! Reconcile in one pass of the data plane, and heals on the data plane's own word:
//!
//! - reconcile opens one pass around every vWire's check, so that VPP is read once per pass,
//!   not once per vWire: on the simulator, a reconcile of 20 vWires after a VPP restart
//!   (each re-made) and one of 20 whole vWires each cost one `sw_interface_dump` for the
//!   checks and one for the sweep;
//! - a vWire the data plane reports broken is healed at once, recorded as a failed probe
//!   (`ProbeFailed`, `DataplanePlumbed`, `Healed`) — on a scripted data plane, and on a real
//!   VPP with no probe configured: a host veth set down or deleted, a memif set down in VPP.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_dataplane::kernel::netns;
use nsm_dataplane::vpp::{KERNEL_EVENT, KernelInterface, VPP_EVENT, Vpp, VppConfig};
use nsm_dataplane::{Dataplane, DataplaneError, DataplaneObject, Fault, PlumbRequest};
use nsm_domain::vwire::{
    ClosedBy, ConnectionContext, DataplaneWork, Mechanism, MechanismClass, Plumbing, VWireEvent,
    VWireId,
};
use nsm_log::store::{Causation, EventStore, MemoryStore};
use nsm_test_support::vpp::VppInstance;
use nsm_vpp_simulator::{Simulator, SimulatorConfig};
use support::mesh::{Mesh1, connect, mesh};
use support::{MINUTE, events_in as events, run_paused};
use tokio::sync::broadcast;

/// A data plane that records what it is asked, and reports the faults the test sends.
#[derive(Debug)]
struct Recording {
    calls: Mutex<Vec<&'static str>>,
    faults: broadcast::Sender<Fault>,
}

impl Recording {
    fn new() -> Self {
        Self {
            calls: Mutex::default(),
            faults: broadcast::channel(16).0,
        }
    }

    fn called(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn work() -> DataplaneWork {
        DataplaneWork {
            dataplane: "recording".into(),
            dry_run: false,
            operations: vec!["done".into()],
        }
    }
}

impl Dataplane for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }
    fn local_mechanisms(&self) -> &'static [&'static str] {
        &["KERNEL"]
    }
    fn plumb(&self, _: PlumbRequest) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        self.called("plumb");
        Box::pin(async { Ok(Self::work()) })
    }
    fn unplumb(
        &self,
        _: VWireId,
        _: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        self.called("unplumb");
        Box::pin(async { Ok(Self::work()) })
    }
    fn verify(&self, _: PlumbRequest) -> BoxFuture<'static, Result<Vec<String>, DataplaneError>> {
        self.called("verify");
        Box::pin(async { Ok(Vec::new()) })
    }
    fn inventory(&self) -> BoxFuture<'static, Result<Vec<DataplaneObject>, DataplaneError>> {
        self.called("inventory");
        Box::pin(async { Ok(Vec::new()) })
    }
    fn faults(&self) -> Option<broadcast::Receiver<Fault>> {
        Some(self.faults.subscribe())
    }
    fn begin_pass(&self) -> BoxFuture<'static, Result<(), DataplaneError>> {
        self.called("begin_pass");
        Box::pin(async { Ok(()) })
    }
    fn end_pass(&self) {
        self.called("end_pass");
    }
}

/// The `probe` and `reason` of each `ProbeFailed` of vWire `id`.
async fn probe_failures(store: &MemoryStore, id: VWireId) -> Vec<(String, String)> {
    let recorded = store.read_stream(&id.stream(), 1).await.unwrap();
    recorded
        .iter()
        .filter_map(|e| match VWireEvent::decode(e).unwrap() {
            VWireEvent::ProbeFailed(failed) => Some((failed.probe, failed.reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn reconcile_checks_every_vwire_inside_one_pass_of_the_data_plane() {
    run_paused(|| async {
        let dataplane = Arc::new(Recording::new());
        let mesh = mesh(MemoryStore::new(), 1, dataplane.clone()).await;
        for _ in 0..3 {
            mesh.request(VWireId::new_random()).await.unwrap();
        }
        dataplane.calls();
        mesh.manager.reconcile().await.unwrap();
        assert_eq!(
            dataplane.calls(),
            [
                "begin_pass",
                "verify",
                "verify",
                "verify",
                "end_pass",
                "inventory"
            ]
        );
    });
}

#[test]
fn a_fault_the_data_plane_reports_heals_the_vwire_at_once_as_a_failed_probe_would() {
    run_paused(|| async {
        let dataplane = Arc::new(Recording::new());
        let mesh = mesh(MemoryStore::new(), 1, dataplane.clone()).await;
        let id = VWireId::new_random();
        mesh.request(id).await.unwrap();
        dataplane.calls();
        let fault = |reason: &str| Fault {
            vwire: id,
            what: "VPP interface event".into(),
            reason: reason.into(),
        };
        dataplane
            .faults
            .send(fault("the client end's VPP interface tap0 was deleted"))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            events(&mesh.store, id).await,
            [
                "Requested",
                "DataplanePlumbed",
                "Established",
                "ProbeFailed",
                "DataplanePlumbed",
                "Healed"
            ]
        );
        assert_eq!(
            probe_failures(&mesh.store, id).await,
            [(
                "VPP interface event".to_owned(),
                "the client end's VPP interface tap0 was deleted".to_owned()
            )]
        );
        assert_eq!(dataplane.calls(), ["unplumb", "plumb"]);

        // A fault that reaches a vWire after it ended changes nothing.
        mesh.manager
            .close(id, ClosedBy::Client, "done".into(), Causation::default())
            .await
            .unwrap();
        dataplane.faults.send(fault("late")).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(events(&mesh.store, id).await.last().unwrap(), "Closed");
        assert_eq!(dataplane.calls(), ["unplumb"]);
    });
}

/// Runs `test` in an actix System on a current-thread runtime with the real clock (VPP and
/// the kernel answer in real time).
fn run_real<F, Fut>(test: F) -> Fut::Output
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future,
{
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    });
    system.block_on(test())
}

/// A node on a VPP of the test's own, KERNEL ends by veth + af_packet. Its data plane tags
/// under a node name of its own: tests in other processes make veths in the same namespace.
async fn node_on_vpp(instance: &VppInstance) -> (Mesh1, Arc<Vpp>) {
    let config = VppConfig {
        kernel_interface: KernelInterface::AfPacket,
        memif_dir: instance.dir().to_owned(),
        ..VppConfig::new(instance.api_socket())
    };
    let node = format!("df-{}", &VWireId::new_random().0.simple().to_string()[..8]);
    let vpp = Arc::new(Vpp::start(&node, config).await.unwrap());
    (mesh(MemoryStore::new(), 1, vpp.clone()).await, vpp)
}

/// Waits until vWire `id` has recorded `heals` heals.
async fn healed(mesh: &Mesh1, id: VWireId, heals: usize) -> Vec<String> {
    for _ in 0..100 {
        let recorded = events(&mesh.store, id).await;
        if recorded.iter().filter(|e| *e == "Healed").count() >= heals {
            return recorded;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not healed: {:?}", events(&mesh.store, id).await);
}

async fn connect_with(mesh: &Mesh1, id: VWireId, client: Mechanism) {
    let mut request = connect(id, MINUTE);
    request.request.mechanism_preferences = vec![client];
    mesh.manager
        .connect(id, request, Causation::default())
        .await
        .unwrap();
}

/// Network namespaces of a test's own, removed when dropped.
struct Namespaces(Vec<String>);

impl Namespaces {
    async fn make(test: &str) -> Self {
        let tag = &VWireId::new_random().0.simple().to_string()[..6];
        let mut names = Vec::new();
        for what in ["c", "e"] {
            let name = format!("nsmf-{tag}-{what}");
            netns::create_named(&name)
                .await
                .unwrap_or_else(|e| panic!("{test}: {e}"));
            names.push(name);
        }
        Self(names)
    }

    fn kernel(&self, which: usize) -> Mechanism {
        let mut m = Mechanism::new(MechanismClass::Local, "KERNEL");
        m.parameters.insert(
            "inodeURL".into(),
            format!("file:///run/netns/{}", self.0[which]),
        );
        m
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = netns::delete_named(name);
        }
    }
}

fn ip(args: &[&str]) -> bool {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    out.status.success()
}

fn host_veth(vwire: VWireId, end: char) -> String {
    format!("vpp-{}-{end}", &vwire.0.simple().to_string()[..8])
}

#[test]
fn a_host_veth_set_down_or_deleted_is_remade_without_a_probe_on_vpp() {
    let test = "a_host_veth_set_down_or_deleted_is_remade_without_a_probe_on_vpp";
    let Some(instance) = VppInstance::start_or_skip(test) else {
        return;
    };
    run_real(|| async {
        let (mesh, _vpp) = node_on_vpp(&instance).await;
        let namespaces = Namespaces::make(test).await;
        let mut context = ConnectionContext::default();
        context.ip.src_ip_addrs = vec!["10.72.0.1/30".into()];
        context.ip.dst_ip_addrs = vec!["10.72.0.2/30".into()];
        *mesh.hop.answer.lock().unwrap() = Some((namespaces.kernel(1), context));
        let id = VWireId::new_random();
        connect_with(&mesh, id, namespaces.kernel(0)).await;

        let client_host = host_veth(id, 'c');
        assert!(ip(&["link", "set", &client_host, "down"]));
        let recorded = healed(&mesh, id, 1).await;
        assert_eq!(
            recorded,
            [
                "Requested",
                "DataplanePlumbed",
                "Established",
                "ProbeFailed",
                "DataplanePlumbed",
                "Healed"
            ]
        );
        let up = std::process::Command::new("ip")
            .args(["-br", "link", "show", &client_host])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&up.stdout).contains("UP"),
            "re-made and up: {}",
            String::from_utf8_lossy(&up.stdout)
        );

        assert!(ip(&["link", "del", &host_veth(id, 'e')]));
        healed(&mesh, id, 2).await;
        let failures = probe_failures(&mesh.store, id).await;
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures.iter().all(|(probe, _)| probe == KERNEL_EVENT));
        assert!(failures[0].1.ends_with("was set down"), "{failures:?}");
        assert!(failures[1].1.ends_with("was deleted"), "{failures:?}");

        mesh.manager
            .close(id, ClosedBy::Client, "done".into(), Causation::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(events(&mesh.store, id).await.last().unwrap(), "Closed");
    });
}

#[test]
fn a_memif_set_down_in_vpp_is_remade_without_a_probe_on_vpp() {
    let test = "a_memif_set_down_in_vpp_is_remade_without_a_probe_on_vpp";
    let Some(instance) = VppInstance::start_or_skip(test) else {
        return;
    };
    run_real(|| async {
        let (mesh, vpp) = node_on_vpp(&instance).await;
        let memif = Mechanism::new(MechanismClass::Local, "MEMIF");
        *mesh.hop.answer.lock().unwrap() = Some((memif.clone(), ConnectionContext::default()));
        let id = VWireId::new_random();
        connect_with(&mesh, id, memif).await;

        // Its VPP name, as the inventory describes it (`VPP interface memif1/0 on ...`).
        let inventory = vpp.inventory().await.unwrap();
        let client = inventory
            .iter()
            .find(|o| o.vwire == Some(id) && o.description.ends_with("(client end)"))
            .unwrap();
        let name = client.description["VPP interface ".len()..]
            .split(' ')
            .next()
            .unwrap();
        instance.cli_ok(&format!("set interface state {name} down"));
        let recorded = healed(&mesh, id, 1).await;
        assert_eq!(recorded[3..], ["ProbeFailed", "DataplanePlumbed", "Healed"]);
        let failures = probe_failures(&mesh.store, id).await;
        assert_eq!(failures[0].0, VPP_EVENT);
        assert!(
            failures[0]
                .1
                .starts_with("the client end's VPP interface memif")
                && failures[0].1.ends_with("was set down"),
            "{failures:?}"
        );
    });
}

fn dumps(sim: &Simulator) -> u64 {
    let stats = sim.stats();
    stats
        .requests_by_message
        .get("sw_interface_dump")
        .copied()
        .unwrap_or(0)
}

#[test]
fn a_reconcile_reads_vpp_once_for_its_checks_however_many_vwires_on_the_simulator() {
    run_real(|| async {
        let dir = tempfile::tempdir().unwrap();
        let sim = Simulator::start(SimulatorConfig::new(dir.path().join("api.sock"))).unwrap();
        // The simulator simulates vhost-net; the data plane needs only a file to find.
        let vhost_net = dir.path().join("vhost-net");
        std::fs::write(&vhost_net, "").unwrap();
        let config = VppConfig {
            kernel_interface: KernelInterface::Tap,
            memif_dir: dir.path().join("memif"),
            vhost_net,
            ..VppConfig::new(sim.socket_path())
        };
        let vpp = Vpp::start("node-a", config).await.unwrap();
        let mut lost = vpp.lost_state().unwrap();
        let mesh = mesh(MemoryStore::new(), 1, Arc::new(vpp)).await;
        for _ in 0..20 {
            let memif = Mechanism::new(MechanismClass::Local, "MEMIF");
            connect_with(&mesh, VWireId::new_random(), memif).await;
        }

        sim.restart();
        tokio::time::timeout(Duration::from_secs(10), lost.changed())
            .await
            .expect("the restart is noticed")
            .unwrap();
        let before = dumps(&sim);
        let report = mesh.manager.reconcile().await.unwrap();
        assert_eq!((report.checked, report.healed), (20, 20), "{report:?}");
        assert_eq!(
            dumps(&sim) - before,
            2,
            "one for the checks and heals, one for the sweep"
        );

        let before = dumps(&sim);
        let report = mesh.manager.reconcile().await.unwrap();
        assert_eq!((report.checked, report.whole), (20, 20), "{report:?}");
        assert_eq!(
            dumps(&sim) - before,
            2,
            "one for the checks, one for the sweep"
        );
    });
}

//! The two VPPs the VPP data plane's tests run on — the simulator, and a real VPP 26.06 of
//! the test's own (`nsm_test_support::vpp`) — behind one [`Setup`], and what a test reads
//! back from them. State is read through VPP's binary API on a session of the test's own
//! (`sw_interface_dump`, `l2_xconnect_dump`, `memif_dump`, `memif_socket_filename_dump`), the
//! same dumps on both, so one assertion holds the simulator and VPP to the same answer.
//!
//! On VPP a test needs root and the VPP build `NSM_TEST_VPP` names; without them it skips
//! outside CI (and fails under `CI=true`).
//!
//! KERNEL ends: there is no /dev/vhost-net where VPP runs here, so on VPP the data plane
//! makes them by veth + af_packet; on the simulator, by tap (it simulates vhost-net), unless
//! a test asks for af_packet (which needs root on both, for the veths).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nsm_dataplane::kernel;
use nsm_dataplane::vpp::{KernelInterface, Vpp, VppConfig};
use nsm_domain::vwire::VWireId;
use nsm_test_support::vpp::VppInstance;
use nsm_vpp::api::{
    IfStatusFlags, L2XconnectDump, MemifDetails, MemifDump, MemifSocketFilenameDump,
    SwInterfaceDetails, SwInterfaceDump,
};
use nsm_vpp::client::{Client, Config};
use nsm_vpp_simulator::{Simulator, SimulatorConfig};

/// Which VPP a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Simulator,
    Vpp,
}

/// The VPP a test runs on, running.
pub(crate) enum Running {
    Simulator(Simulator),
    Vpp(VppInstance),
}

/// One test's VPP, its data plane and a folder for its files. The node's name is the test's
/// own: tests run at once, and a sweep must find only its own test's objects (the host veths
/// of af_packet ends live in the one namespace every test shares).
pub(crate) struct Setup {
    /// The data plane under test.
    pub vpp: Vpp,
    /// Its node name, unique to this test.
    pub node: String,
    pub running: Running,
    /// Where memif sockets go when a mechanism names none; not made beforehand, as on a
    /// fresh host (the data plane makes it).
    pub memif_dir: PathBuf,
    config: VppConfig,
    dir: tempfile::TempDir,
}

impl Setup {
    /// `backend` with the KERNEL ends it can make (see the module header); `None` (after
    /// printing why) where the test skips.
    pub(crate) async fn start(backend: Backend, test: &str) -> Option<Self> {
        let kernel_interface = match backend {
            Backend::Simulator => KernelInterface::Tap,
            Backend::Vpp => KernelInterface::AfPacket,
        };
        Self::with_kernel_interface(backend, test, kernel_interface).await
    }

    pub(crate) async fn with_kernel_interface(
        backend: Backend,
        test: &str,
        kernel_interface: KernelInterface,
    ) -> Option<Self> {
        let needs_root = backend == Backend::Vpp || kernel_interface == KernelInterface::AfPacket;
        if needs_root && !nsm_test_support::capable_or_skip(test, &kernel::missing_capabilities()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let running = match backend {
            Backend::Simulator => {
                let config = SimulatorConfig::new(dir.path().join("api.sock"));
                Running::Simulator(Simulator::start(config).unwrap())
            }
            Backend::Vpp => Running::Vpp(VppInstance::start_or_skip(test)?),
        };
        // The simulator simulates vhost-net; it needs only a file to find.
        let vhost_net = dir.path().join("vhost-net");
        std::fs::write(&vhost_net, "").unwrap();
        let config = VppConfig {
            kernel_interface,
            request_timeout: Duration::from_secs(5),
            memif_dir: dir.path().join("run/nsm"),
            vhost_net,
            ..VppConfig::new(running.api_socket())
        };
        let node = format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let vpp = Vpp::start(&node, config.clone()).await.unwrap();
        Some(Self {
            vpp,
            node,
            memif_dir: config.memif_dir.clone(),
            running,
            config,
            dir,
        })
    }

    /// A folder of the test's own.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Another data plane on the same VPP, configured as the one under test: the same node
    /// after a restart, or another node.
    pub(crate) async fn data_plane(&self, node: &str) -> Vpp {
        Vpp::start(node, self.config.clone()).await.unwrap()
    }

    /// VPP restarts (killed, as in a crash, and started again on the same sockets).
    pub(crate) fn restart_vpp(&mut self) {
        match &mut self.running {
            Running::Simulator(sim) => sim.restart(),
            Running::Vpp(instance) => {
                tokio::task::block_in_place(|| instance.restart()).expect("VPP starts again")
            }
        }
    }

    /// Whether packets go through this VPP (the simulator forwards none).
    pub(crate) fn forwards_packets(&self) -> bool {
        matches!(self.running, Running::Vpp(_))
    }

    /// API sessions VPP has open under `name` (`vppctl show api clients`; the simulator
    /// counts its open connections, of whatever name).
    pub(crate) fn api_sessions(&self, name: &str) -> usize {
        match &self.running {
            Running::Simulator(sim) => sim.stats().open_connections as usize,
            Running::Vpp(instance) => instance
                .cli_ok("show api clients")
                .lines()
                .filter(|line| line.contains(name))
                .count(),
        }
    }

    /// A session of the test's own.
    pub(crate) async fn api(&self) -> Client {
        let config = Config {
            name: "nsm-rs test".into(),
            ..Config::new(self.running.api_socket())
        };
        Client::connect(config).await.unwrap()
    }

    /// Every interface but local0.
    pub(crate) async fn interfaces(&self) -> Vec<SwInterfaceDetails> {
        let dump = SwInterfaceDump {
            sw_if_index: u32::MAX,
            ..SwInterfaceDump::default()
        };
        let all = self.api().await.dump(&dump).await.unwrap();
        all.into_iter().filter(|i| i.sw_if_index != 0).collect()
    }

    /// The interfaces whose tag names `vwire`, by index.
    pub(crate) async fn tagged_with(&self, vwire: VWireId) -> Vec<SwInterfaceDetails> {
        let id = vwire.to_string();
        let interfaces = self.interfaces().await;
        interfaces
            .into_iter()
            .filter(|i| i.tag.as_str().contains(&id))
            .collect()
    }

    /// Every one-way L2 cross-connect as (rx, tx).
    pub(crate) async fn xconnects(&self) -> Vec<(u32, u32)> {
        let listed = self.api().await.dump(&L2XconnectDump {}).await.unwrap();
        listed
            .iter()
            .map(|x| (x.rx_sw_if_index, x.tx_sw_if_index))
            .collect()
    }

    pub(crate) async fn memifs(&self) -> Vec<MemifDetails> {
        self.api().await.dump(&MemifDump {}).await.unwrap()
    }

    /// Memif socket files as (socket_id, filename), VPP's default (0) included.
    pub(crate) async fn memif_sockets(&self) -> Vec<(u32, String)> {
        let listed = self.api().await.dump(&MemifSocketFilenameDump {}).await;
        let mut sockets: Vec<(u32, String)> = listed
            .unwrap()
            .into_iter()
            .map(|s| (s.socket_id, s.socket_filename.as_str().to_owned()))
            .collect();
        sockets.sort();
        sockets
    }
}

impl Running {
    pub(crate) fn api_socket(&self) -> PathBuf {
        match self {
            Running::Simulator(sim) => sim.socket_path().to_owned(),
            Running::Vpp(instance) => instance.api_socket(),
        }
    }
}

/// Whether an interface is admin up.
pub(crate) fn admin_up(interface: &SwInterfaceDetails) -> bool {
    interface.flags.0 & IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP.0 != 0
}

/// Whether `path` is a UNIX socket (not following a symlink).
pub(crate) fn is_socket(path: impl AsRef<Path>) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

/// Network namespaces a test makes with `ip netns add`, deleted when dropped.
pub(crate) struct Namespaces {
    tag: String,
    names: Vec<String>,
}

impl Namespaces {
    pub(crate) fn new() -> Self {
        Self {
            tag: uuid::Uuid::new_v4().simple().to_string()[..6].to_owned(),
            names: Vec::new(),
        }
    }

    /// A new namespace, by name.
    pub(crate) fn add(&mut self, what: &str) -> String {
        let name = format!("nsmv-{}-{what}", self.tag);
        let made = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(made.is_ok_and(|s| s.success()), "ip netns add {name}");
        self.names.push(name.clone());
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// `ip -n NS ARGS...`: whether it succeeded, and what it printed.
pub(crate) fn ip_in(ns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("run ip");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.into_owned())
}

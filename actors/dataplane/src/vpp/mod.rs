//! The VPP data plane (`--dataplane vpp`): each vWire is two VPP interfaces, one per end,
//! cross-connected in both directions — at L2 for an ETHERNET payload, at L3 (l3xc) for an
//! IP one — and set up: NSM's forwarder-vpp, driven over VPP's binary API by [`nsm_vpp`],
//! the way NSM's does through GoVPP.
//!
//! | module | owns |
//! |---|---|
//! | `ends` | one end: planning it, making it (tap, veth + af_packet, memif), removing it |
//! | `connection` | the API session, reconnected with backoff when VPP goes away |
//! | `reading` | what VPP holds, read back by tags: verify, unplumb by tags, inventory, and the one reading a reconcile pass answers from |
//! | `liveness` | the probe from the client's end, and faults from VPP's interface events and the host veths' link events |
//! | `resources` | what one VPP holds: the af_packet ring per end, the ceiling on vWires, and the error a Request gets when VPP is out of a resource |
//! | `socket_file` | memif socket files on disk: their folder made, stale files removed |
//! | `tag` | the tag every interface carries: node, vWire, end |
//! | `vxlan` | VXLAN tunnels, for the remote mechanism |
//! | `xconnect` | joining the two ends by the payload: L2 cross-connect (ETHERNET) or l3xc (IP), and undoing it |
//!
//! What VPP holds is found again by its tags (`sw_interface_dump`), never by remembering
//! indices across sessions: after VPP restarts, [`Dataplane::lost_state`] changes and the
//! runtime reconciles, which re-creates what live vWires need and removes tagged
//! interfaces nobody owns.

mod connection;
mod ends;
mod liveness;
mod reading;
mod resources;
mod socket_file;
mod tag;
mod vxlan;
mod xconnect;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_domain::vwire::{DataplaneWork, Mechanism, Plumbing, VWireId};
use nsm_vpp::client::{Client, Config, Error as VppError};
use tokio::sync::{broadcast, watch};

use self::connection::Connection;
pub use self::ends::SOCKETFILE_PARAMETER;
use self::ends::{EndPlan, KERNEL, MEMIF, Made, MadeKind};
use self::liveness::Faults;
pub use self::liveness::{KERNEL_EVENT, VPP_EVENT};
use self::reading::Known;
pub use self::resources::{
    AfPacketRing, DEFAULT_MAX_VWIRES, MAX_FRAME_SIZE, MAX_FRAMES, MIN_FRAME_SIZE, OpenFiles,
    RingError, open_files,
};
pub use self::vxlan::{VXLAN_PORT, Vxlan, VxlanTunnel};
use crate::contract::{
    Dataplane, DataplaneError, DataplaneObject, End, Fault, Liveness, PlumbRequest,
};
use crate::kernel::{Kernel, NAME_PARAMETER};

/// How a KERNEL end is made. Either way its Linux side gets every address and route of the
/// end, set over netlink by the kernel data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelInterface {
    /// tap where the host has `/dev/vhost-net`, else veth + af_packet.
    Auto,
    /// A VPP tap (`tap_create_v3`), its Linux side straight in the workload's namespace.
    /// VPP's taps are vhost-net devices: refused at start without [`VHOST_NET`].
    Tap,
    /// A veth pair into the workload's namespace, VPP attached to its other end by
    /// `af_packet_create_v3`. Works on every kernel.
    AfPacket,
}

/// How VPP reads the rings of a veth + af_packet end.
///
/// VPP 26.06 in `interrupt` or `adaptive` mode (its default is interrupt) stops answering its
/// API for good once a few dozen af_packet rings hold frames at once: measured here with
/// `nsm bench vpp-capacity --kinds af-packet`, VPP's main thread spun in `epoll_wait` on the
/// ready packet sockets without ever draining them, with 16 Requests in flight from the
/// first vWires, and with one at a time at 64 vWires (128 ends). In `polling` mode it
/// held every vWire asked for. Polling costs VPP's main thread a core while any af_packet
/// end exists, as DPDK interfaces do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfPacketRxMode {
    #[default]
    Polling,
    Interrupt,
    Adaptive,
}

impl AfPacketRxMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "polling" => Some(Self::Polling),
            "interrupt" => Some(Self::Interrupt),
            "adaptive" => Some(Self::Adaptive),
            _ => None,
        }
    }

    pub(crate) fn api(self) -> nsm_vpp::api::RxMode {
        use nsm_vpp::api::RxMode;
        match self {
            Self::Polling => RxMode::RX_MODE_API_POLLING,
            Self::Interrupt => RxMode::RX_MODE_API_INTERRUPT,
            Self::Adaptive => RxMode::RX_MODE_API_ADAPTIVE,
        }
    }
}

/// The device VPP's taps need: without it `tap_create_v3` fails (`SYSCALL_ERROR_1`, -11).
pub const VHOST_NET: &str = "/dev/vhost-net";

impl KernelInterface {
    /// The way KERNEL ends will be made on a host whose vhost-net device is at `vhost_net`:
    /// `auto` chosen (and logged, with why); `tap` refused without the device, naming it
    /// and the way that works instead.
    fn resolve(self, vhost_net: &std::path::Path) -> Result<Self, DataplaneError> {
        let present = vhost_net.exists();
        let device = vhost_net.display();
        match self {
            Self::Auto if present => {
                tracing::info!(
                    kernel_interface = "tap",
                    "auto: {device} present: KERNEL ends by VPP tap"
                );
                Ok(Self::Tap)
            }
            Self::Auto => {
                tracing::info!(
                    kernel_interface = "af-packet",
                    "auto: no {device}: KERNEL ends by veth + af_packet"
                );
                Ok(Self::AfPacket)
            }
            Self::Tap if !present => Err(DataplaneError::NotPermitted(format!(
                "--vpp-kernel-interface tap needs {device}, which this host lacks (VPP's taps are \
                 vhost-net devices: load the vhost_net module), or run with \
                 --vpp-kernel-interface af-packet (veth + af_packet, which works on every kernel)"
            ))),
            chosen => Ok(chosen),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Tap => "tap",
            Self::AfPacket => "af-packet",
        }
    }
}

/// How to run the VPP data plane.
#[derive(Debug, Clone)]
pub struct VppConfig {
    /// VPP's API socket.
    pub socket: PathBuf,
    pub kernel_interface: KernelInterface,
    /// How long one API call may take.
    pub request_timeout: Duration,
    /// Where memif sockets go when a mechanism names none.
    pub memif_dir: PathBuf,
    /// Where this host's vhost-net device is, which `tap` needs and `auto` looks for:
    /// [`VHOST_NET`]. (Tests against a simulated VPP name a file of their own.)
    pub vhost_net: PathBuf,
    /// The rings of each veth + af_packet end: locked kernel memory, see [`AfPacketRing`].
    pub af_packet_ring: AfPacketRing,
    /// How VPP reads those rings.
    pub af_packet_rx_mode: AfPacketRxMode,
    /// vWires of this node one VPP holds at most; more are refused before VPP's stats
    /// segment fills up and VPP aborts (see `resources`).
    pub max_vwires: u32,
}

impl VppConfig {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            kernel_interface: KernelInterface::Auto,
            request_timeout: Duration::from_secs(5),
            memif_dir: PathBuf::from("/run/vpp/nsm"),
            vhost_net: PathBuf::from(VHOST_NET),
            af_packet_ring: AfPacketRing::default(),
            af_packet_rx_mode: AfPacketRxMode::default(),
            max_vwires: DEFAULT_MAX_VWIRES,
        }
    }
}

/// Messages every configuration uses, checked at connect so a missing plugin is named at
/// start-up rather than at the first request.
const CORE: &[&str] = &[
    "sw_interface_dump",
    "sw_interface_set_flags",
    "sw_interface_tag_add_del",
    "sw_interface_set_l2_xconnect",
];
const WITH_TAP: &[&str] = &[
    "sw_interface_dump",
    "sw_interface_set_flags",
    "sw_interface_tag_add_del",
    "sw_interface_set_l2_xconnect",
    "tap_create_v3",
    "tap_delete_v2",
    "sw_interface_set_rx_mode",
];
const WITH_AF_PACKET: &[&str] = &[
    "sw_interface_dump",
    "sw_interface_set_flags",
    "sw_interface_tag_add_del",
    "sw_interface_set_l2_xconnect",
    "af_packet_create_v3",
    "af_packet_delete",
    "sw_interface_set_rx_mode",
];

/// What was done, in order, for the record.
#[derive(Debug, Default)]
pub(crate) struct Log(Vec<String>);

impl Log {
    pub(crate) fn push(&mut self, line: impl Into<String>) {
        self.0.push(line.into());
    }

    pub(crate) fn extend(&mut self, lines: Vec<String>) {
        self.0.extend(lines);
    }

    fn work(self) -> DataplaneWork {
        DataplaneWork {
            dataplane: Vpp::NAME.to_owned(),
            dry_run: false,
            operations: self.0,
        }
    }
}

/// The VPP data plane. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Vpp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node: String,
    config: VppConfig,
    kernel_interface: KernelInterface,
    connection: Arc<Connection>,
    /// The Linux side of KERNEL ends over netlink (the veth pair of af_packet, the
    /// configuration of a tap's); started in every mode by [`Vpp::start`].
    kernel: Option<Kernel>,
    /// What this session made, by vWire, and the reading of a reconcile pass in progress
    /// ([`reading`]); emptied when a new session starts (VPP restarted), and filled again
    /// from tags when needed.
    made: Arc<Mutex<Known>>,
    /// Live vWires found broken by interface events ([`liveness`]).
    faults: Faults,
}

/// Maps a client error to the data plane's.
pub(crate) fn vpp_error(error: VppError) -> DataplaneError {
    match &error {
        VppError::Vpp { retval, .. }
            if [
                nsm_vpp::retval::IF_ALREADY_EXISTS,
                nsm_vpp::retval::VALUE_EXIST,
            ]
            .contains(retval) =>
        {
            DataplaneError::Conflict(error.to_string())
        }
        VppError::Closed { .. } | VppError::Timeout { .. } | VppError::Connect { .. } => {
            DataplaneError::Unavailable {
                dataplane: Vpp::NAME,
                reason: error.to_string(),
            }
        }
        _ => DataplaneError::Failed {
            dataplane: Vpp::NAME,
            reason: error.to_string(),
        },
    }
}

/// Whether VPP's refusal says the object does not exist (fine when removing).
pub(crate) fn is_gone(error: &VppError) -> bool {
    matches!(error, VppError::Vpp { retval, .. }
        if [nsm_vpp::retval::INVALID_SW_IF_INDEX, nsm_vpp::retval::NO_SUCH_ENTRY].contains(retval))
}

impl Vpp {
    pub const NAME: &'static str = "vpp";

    /// Connects to VPP (refused, naming the socket, if it cannot) and checks that it has
    /// every message the chosen configuration needs.
    pub async fn start(node: &str, config: VppConfig) -> Result<Self, DataplaneError> {
        let kernel_interface = config.kernel_interface.resolve(&config.vhost_net)?;
        // Either way the Linux side of a KERNEL end is configured over netlink.
        let kernel = Some(Kernel::start(node).await.map_err(|e| {
            DataplaneError::NotPermitted(format!(
                "KERNEL ends by {} need the kernel's capabilities: {e}",
                match kernel_interface {
                    KernelInterface::Tap =>
                        "VPP tap (their addresses and routes are set over netlink)",
                    _ => "veth + af_packet",
                }
            ))
        })?);
        let required = match kernel_interface {
            KernelInterface::Tap => WITH_TAP,
            KernelInterface::AfPacket => WITH_AF_PACKET,
            KernelInterface::Auto => CORE,
        };
        let made: Arc<Mutex<Known>> = Arc::default();
        let forget = Arc::clone(&made);
        let client_config = Config {
            name: format!("nsm-rs {node}").chars().take(63).collect(),
            request_timeout: config.request_timeout,
            ..Config::new(&config.socket)
        };
        let connection = Connection::start(client_config, required, move || {
            forget.lock().expect("made lock").clear();
        })
        .await
        .map_err(|e| DataplaneError::Failed {
            dataplane: Self::NAME,
            reason: e.to_string(),
        })?;
        tracing::info!(socket = %config.socket.display(), kernel_interface = kernel_interface.as_str(), "connected to VPP");
        let inner = Arc::new(Inner {
            node: node.to_owned(),
            config,
            kernel_interface,
            connection,
            kernel,
            made,
            faults: Faults::new(),
        });
        liveness::watch(&inner);
        Ok(Self { inner })
    }

    /// How KERNEL ends are made here (tap or af-packet, `auto` resolved).
    pub fn kernel_interface(&self) -> KernelInterface {
        self.inner.kernel_interface
    }

    /// VXLAN tunnels on this VPP.
    pub fn vxlan(&self) -> Result<Vxlan, DataplaneError> {
        Ok(Vxlan::new(self.inner.client()?, &self.inner.node))
    }
}

impl Inner {
    fn client(&self) -> Result<Client, DataplaneError> {
        self.connection
            .client()
            .map_err(|reason| DataplaneError::Unavailable {
                dataplane: Vpp::NAME,
                reason,
            })
    }

    fn plan(&self, request: &PlumbRequest) -> Result<[EndPlan; 2], DataplaneError> {
        let plan = |end, mechanism: &Mechanism| {
            EndPlan::new(
                &self.node,
                request.vwire,
                end,
                mechanism,
                &request.context,
                self.kernel_interface,
            )
            .map(|plan| plan.carrying(request.payload))
        };
        let plans = [
            plan(End::Client, &request.client)?,
            plan(End::Endpoint, &request.endpoint)?,
        ];
        xconnect::check(request.payload, &plans)?;
        Ok(plans)
    }

    async fn plumb(&self, request: PlumbRequest) -> Result<DataplaneWork, DataplaneError> {
        let plans = self.plan(&request)?;
        let vwire = request.vwire;
        let held = self.made.lock().expect("made lock").held_besides(vwire);
        resources::check_ceiling(held, self.config.max_vwires)?;
        let client = self.client()?;
        let kernel = self.kernel.as_ref();
        let af_packet = (self.config.af_packet_ring, self.config.af_packet_rx_mode);
        let mut log = Log::default();
        let mut made = Vec::new();
        let outcome = async {
            for plan in &plans {
                made.push(ends::make(&client, kernel, vwire, plan, af_packet, &mut log).await?);
            }
            let [a, b] = [&made[0], &made[1]];
            let ends = [(a, &plans[0]), (b, &plans[1])];
            xconnect::connect(&client, request.payload, ends, &mut log).await
        }
        .await;
        if let Err(error) = outcome {
            let mut undo = Log::default();
            for (one, plan) in made.iter().zip(&plans).rev() {
                ends::remove(&client, kernel, vwire, one, Some(plan), &mut undo).await;
            }
            tracing::debug!(%vwire, undo = ?undo.0, "plumbing failed; removed what it made");
            return Err(error);
        }
        self.made.lock().expect("made lock").insert(vwire, made);
        Ok(log.work())
    }

    async fn remove(&self, objects: Vec<DataplaneObject>) -> Result<DataplaneWork, DataplaneError> {
        let (in_vpp, in_kernel): (Vec<_>, Vec<_>) = objects
            .into_iter()
            .partition(|o| o.locator.starts_with("vpp:"));
        let mut log = Log::default();
        if !in_vpp.is_empty() {
            let client = self.client()?;
            // A memif found by its tag alone: its socket file is known to VPP only.
            let has_memif = in_vpp.iter().any(|o| o.locator.contains(":memif"));
            let socket_files = match has_memif {
                true => ends::memif_socket_files(&client).await.unwrap_or_else(|e| {
                    log.push(format!("cannot list memif socket files: {e}"));
                    Default::default()
                }),
                false => Default::default(),
            };
            for object in in_vpp {
                let Some(made) = parse_locator(&object.locator) else {
                    log.push(format!("cannot read locator {}", object.locator));
                    continue;
                };
                let vwire = object.vwire.unwrap_or_else(VWireId::new_random);
                let plan = match &made.kind {
                    MadeKind::Memif { socket_id } => socket_files
                        .get(socket_id)
                        .map(|file| EndPlan::memif(&self.node, vwire, made.end, file.clone())),
                    _ => None,
                };
                let kernel = self.kernel.as_ref();
                ends::remove(&client, kernel, vwire, &made, plan.as_ref(), &mut log).await;
            }
        }
        if let (Some(kernel), false) = (&self.kernel, in_kernel.is_empty()) {
            log.extend(kernel.remove(in_kernel).await?.operations);
        }
        Ok(log.work())
    }
}

fn parse_locator(locator: &str) -> Option<Made> {
    let mut parts = locator.splitn(4, ':');
    (parts.next()? == "vpp").then_some(())?;
    let sw_if_index = parts.next()?.parse().ok()?;
    let end = match parts.next()? {
        "client" => End::Client,
        "endpoint" => End::Endpoint,
        _ => return None,
    };
    let name = parts.next()?.to_owned();
    let kind = MadeKind::from_vpp_name(&name, None)?;
    Some(Made {
        end,
        sw_if_index,
        name,
        kind,
    })
}

impl Dataplane for Vpp {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn local_mechanisms(&self) -> &'static [&'static str] {
        &[KERNEL, MEMIF]
    }

    fn complete(&self, vwire: VWireId, end: End, mut mechanism: Mechanism) -> Mechanism {
        let parameters = &mut mechanism.parameters;
        match mechanism.mechanism_type.as_str() {
            KERNEL if !parameters.contains_key(NAME_PARAMETER) => {
                parameters.insert(
                    NAME_PARAMETER.to_owned(),
                    crate::kernel::default_interface_name(vwire, end),
                );
            }
            MEMIF if !parameters.contains_key(SOCKETFILE_PARAMETER) => {
                let file = ends::default_socket_file(&self.inner.config.memif_dir, vwire, end);
                parameters.insert(SOCKETFILE_PARAMETER.to_owned(), file);
            }
            _ => {}
        }
        mechanism
    }

    fn plumb(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.plumb(request).await })
    }

    fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let inner = self.inner.clone();
        let plumbing = plumbing.clone();
        Box::pin(async move {
            if plumbing.dataplane != Self::NAME || plumbing.dry_run {
                return Ok(DataplaneWork {
                    dataplane: Self::NAME.to_owned(),
                    dry_run: false,
                    operations: vec![format!(
                        "nothing to remove: the vWire was plumbed by the {} data plane",
                        plumbing.dataplane
                    )],
                });
            }
            inner.unplumb(vwire, &plumbing).await
        })
    }

    fn verify(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<Vec<String>, DataplaneError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.verify(request).await })
    }

    fn inventory(&self) -> BoxFuture<'static, Result<Vec<DataplaneObject>, DataplaneError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.inventory().await })
    }

    fn remove(
        &self,
        objects: Vec<DataplaneObject>,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.remove(objects).await })
    }

    fn lost_state(&self) -> Option<watch::Receiver<u64>> {
        Some(self.inner.connection.sessions())
    }

    fn probe(
        &self,
        request: PlumbRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Liveness, DataplaneError>> {
        Box::pin(liveness::probe(request, timeout))
    }

    fn faults(&self) -> Option<broadcast::Receiver<Fault>> {
        Some(self.inner.faults.subscribe())
    }

    fn begin_pass(&self) -> BoxFuture<'static, Result<(), DataplaneError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.begin_pass().await })
    }

    fn end_pass(&self) {
        self.inner.end_pass();
    }
}

//! The VPP data plane (`--dataplane vpp`): each vWire is two VPP interfaces, one per end,
//! cross-connected at L2 in both directions and set up — NSM's forwarder-vpp, driven over
//! VPP's binary API by [`nsm_vpp`], the way NSM's does through GoVPP.
//!
//! | module | owns |
//! |---|---|
//! | `ends` | one end: planning it, making it (tap, veth + af_packet, memif), removing it |
//! | `connection` | the API session, reconnected with backoff when VPP goes away |
//! | `tag` | the tag every interface carries: node, vWire, end |
//! | `vxlan` | VXLAN tunnels, for the remote mechanism |
//!
//! What VPP holds is found again by its tags (`sw_interface_dump`), never by remembering
//! indices across sessions: after VPP restarts, [`Dataplane::lost_state`] changes and the
//! runtime reconciles, which re-creates what live vWires need and removes tagged
//! interfaces nobody owns.

mod connection;
mod ends;
mod tag;
mod vxlan;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_domain::vwire::{DataplaneWork, Mechanism, Plumbing, VWireId};
use nsm_vpp::api::{
    IfStatusFlags, SwInterfaceDetails, SwInterfaceDump, SwInterfaceSetFlags,
    SwInterfaceSetL2Xconnect,
};
use nsm_vpp::client::{Client, Config, Error as VppError};
use tokio::sync::watch;

use self::connection::Connection;
pub use self::ends::SOCKETFILE_PARAMETER;
use self::ends::{EndPlan, KERNEL, MEMIF, Made, MadeKind};
use self::tag::{VppTag, node_digest};
pub use self::vxlan::{VXLAN_PORT, Vxlan, VxlanTunnel};
use crate::contract::{Dataplane, DataplaneError, DataplaneObject, End, PlumbRequest};
use crate::kernel::{Kernel, NAME_PARAMETER};

/// How a KERNEL end is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelInterface {
    /// tap where the host has `/dev/vhost-net`, else veth + af_packet.
    Auto,
    Tap,
    AfPacket,
}

impl KernelInterface {
    fn resolve(self) -> Self {
        match self {
            Self::Auto if std::path::Path::new("/dev/vhost-net").exists() => Self::Tap,
            Self::Auto => Self::AfPacket,
            chosen => chosen,
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
}

impl VppConfig {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            kernel_interface: KernelInterface::Auto,
            request_timeout: Duration::from_secs(5),
            memif_dir: PathBuf::from("/run/vpp/nsm"),
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
    /// For veth + af_packet: the host side of KERNEL ends.
    kernel: Option<Kernel>,
    /// What this session made, by vWire; emptied when a new session starts (VPP restarted),
    /// and filled again from tags when needed.
    made: Arc<Mutex<HashMap<VWireId, Vec<Made>>>>,
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
        let kernel_interface = config.kernel_interface.resolve();
        let kernel = match kernel_interface {
            KernelInterface::AfPacket => Some(Kernel::start(node).await.map_err(|e| {
                DataplaneError::NotPermitted(format!(
                    "KERNEL ends by veth + af_packet need the kernel's capabilities: {e}"
                ))
            })?),
            _ => None,
        };
        let required = match kernel_interface {
            KernelInterface::Tap => WITH_TAP,
            KernelInterface::AfPacket => WITH_AF_PACKET,
            KernelInterface::Auto => CORE,
        };
        let made: Arc<Mutex<HashMap<VWireId, Vec<Made>>>> = Arc::default();
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
        Ok(Self {
            inner: Arc::new(Inner {
                node: node.to_owned(),
                config,
                kernel_interface,
                connection,
                kernel,
                made,
            }),
        })
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
        };
        Ok([
            plan(End::Client, &request.client)?,
            plan(End::Endpoint, &request.endpoint)?,
        ])
    }

    /// Every interface VPP has, as its dump gives them.
    async fn interfaces(&self, client: &Client) -> Result<Vec<SwInterfaceDetails>, DataplaneError> {
        let dump = SwInterfaceDump {
            sw_if_index: u32::MAX,
            ..SwInterfaceDump::default()
        };
        client.dump(&dump).await.map_err(vpp_error)
    }

    /// This node's tagged interfaces in a dump, with what their tags say.
    fn ours(&self, interfaces: &[SwInterfaceDetails]) -> Vec<(VppTag, Made)> {
        let digest = node_digest(&self.node);
        interfaces
            .iter()
            .filter_map(|i| {
                let tag = VppTag::parse(i.tag.as_str()).filter(|t| t.node == digest)?;
                let name = i.interface_name.as_str().to_owned();
                let kind = MadeKind::from_vpp_name(&name, None)?;
                let made = Made {
                    end: tag.end,
                    sw_if_index: i.sw_if_index,
                    name,
                    kind,
                };
                Some((tag, made))
            })
            .collect()
    }

    async fn plumb(&self, request: PlumbRequest) -> Result<DataplaneWork, DataplaneError> {
        let plans = self.plan(&request)?;
        let client = self.client()?;
        let kernel = self.kernel.as_ref();
        let vwire = request.vwire;
        let mut log = Log::default();
        let mut made = Vec::new();
        let outcome = async {
            for plan in &plans {
                made.push(ends::make(&client, kernel, vwire, plan, &mut log).await?);
            }
            connect_ends(&client, &made, &mut log).await
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

    async fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> Result<DataplaneWork, DataplaneError> {
        let client = self.client()?;
        let remembered = self.made.lock().expect("made lock").remove(&vwire);
        let made = match remembered {
            Some(made) => made,
            None => self
                .ours(&self.interfaces(&client).await?)
                .into_iter()
                .filter(|(tag, _)| tag.vwire == vwire)
                .map(|(_, made)| made)
                .collect(),
        };
        let mut log = Log::default();
        if made.is_empty() {
            log.push(format!("nothing of vWire {vwire} was in VPP"));
        }
        for one in &made {
            let mechanism = match one.end {
                End::Client => &plumbing.client_mechanism,
                End::Endpoint => &plumbing.endpoint_mechanism,
            };
            let plan = EndPlan::new(
                &self.node,
                vwire,
                one.end,
                mechanism,
                &Default::default(),
                self.kernel_interface,
            )
            .ok();
            ends::remove(
                &client,
                self.kernel.as_ref(),
                vwire,
                one,
                plan.as_ref(),
                &mut log,
            )
            .await;
        }
        Ok(log.work())
    }

    async fn verify(&self, request: PlumbRequest) -> Result<Vec<String>, DataplaneError> {
        let plans = self.plan(&request)?;
        let client = self.client()?;
        let interfaces = self.interfaces(&client).await?;
        let ours = self.ours(&interfaces);
        let mut missing = Vec::new();
        let mut found = Vec::new();
        for plan in &plans {
            let end = plan.end;
            match ours
                .iter()
                .find(|(tag, _)| tag.vwire == request.vwire && tag.end == end)
            {
                None => missing.push(format!("the {end} end's VPP interface is missing")),
                Some((_, made)) => {
                    let details = interfaces
                        .iter()
                        .find(|i| i.sw_if_index == made.sw_if_index);
                    let admin_up = IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP.0;
                    let up = details.is_some_and(|d| d.flags.0 & admin_up != 0);
                    if !up {
                        missing.push(format!(
                            "the {end} end's VPP interface {} is down",
                            made.name
                        ));
                    }
                    found.push(made.clone());
                }
            }
            if let (
                ends::EndKind::AfPacket {
                    host_name,
                    mechanism,
                    context,
                },
                Some(kernel),
            ) = (&plan.kind, self.kernel.as_ref())
            {
                missing.extend(
                    kernel
                        .verify_host_veth(request.vwire, end, mechanism, context, host_name)
                        .await,
                );
            }
        }
        if missing.is_empty() {
            self.made
                .lock()
                .expect("made lock")
                .insert(request.vwire, found);
        }
        Ok(missing)
    }

    async fn inventory(&self) -> Result<Vec<DataplaneObject>, DataplaneError> {
        let client = self.client()?;
        let mut objects: Vec<DataplaneObject> = self
            .ours(&self.interfaces(&client).await?)
            .into_iter()
            .map(|(tag, made)| DataplaneObject {
                vwire: Some(tag.vwire),
                description: format!("VPP interface {} ({} end)", made.name, made.end),
                locator: format!("vpp:{}:{}:{}", made.sw_if_index, made.end, made.name),
            })
            .collect();
        if let Some(kernel) = &self.kernel {
            objects.extend(kernel.inventory().await?);
        }
        Ok(objects)
    }

    async fn remove(&self, objects: Vec<DataplaneObject>) -> Result<DataplaneWork, DataplaneError> {
        let (in_vpp, in_kernel): (Vec<_>, Vec<_>) = objects
            .into_iter()
            .partition(|o| o.locator.starts_with("vpp:"));
        let mut log = Log::default();
        if !in_vpp.is_empty() {
            let client = self.client()?;
            for object in in_vpp {
                let Some(made) = parse_locator(&object.locator) else {
                    log.push(format!("cannot read locator {}", object.locator));
                    continue;
                };
                let vwire = object.vwire.unwrap_or_else(VWireId::new_random);
                ends::remove(&client, self.kernel.as_ref(), vwire, &made, None, &mut log).await;
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

/// L2 cross-connect in both directions (`sw_interface_set_l2_xconnect` is one-way), then
/// admin up on both.
async fn connect_ends(client: &Client, made: &[Made], log: &mut Log) -> Result<(), DataplaneError> {
    let [a, b] = made else {
        unreachable!("a vWire has two ends");
    };
    for (rx, tx) in [(a, b), (b, a)] {
        let xconnect = SwInterfaceSetL2Xconnect {
            rx_sw_if_index: rx.sw_if_index,
            tx_sw_if_index: tx.sw_if_index,
            enable: true,
        };
        client.request(&xconnect).await.map_err(vpp_error)?;
    }
    log.push(format!(
        "cross-connected {} and {} at L2, both ways",
        a.name, b.name
    ));
    for end in [a, b] {
        let up = SwInterfaceSetFlags {
            sw_if_index: end.sw_if_index,
            flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
        };
        client.request(&up).await.map_err(vpp_error)?;
    }
    log.push(format!("set {} and {} up", a.name, b.name));
    Ok(())
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
}

//! One end of a vWire in VPP: what it will be (worked out from the request before VPP is
//! touched), making it, and removing it.
//!
//! - KERNEL by **tap**, as NSM's forwarder does it: VPP creates a tap whose Linux side it
//!   puts straight into the workload's namespace (`tap_create_v3` with `host_namespace`,
//!   the end's name, MTU and MAC), then the kernel data plane configures that Linux side
//!   over netlink in full (tag, MTU, up, every address, every route), having checked the
//!   namespace first; if that fails the tap is deleted. Needs `/dev/vhost-net` on the host.
//! - KERNEL by **veth + af_packet**: the kernel data plane makes a veth pair, one end in the
//!   workload's namespace configured in full (addresses, routes), the other in VPP's, and
//!   VPP attaches to that one with `af_packet_create_v3`. Works on every kernel.
//! - MEMIF: a socket file VPP listens on (`memif_socket_filename_add_del_v2`) and a memif
//!   interface in the master role (`memif_create_v2`); the workload connects as slave. The
//!   file's folder is made first and the file removed after, as VPP does neither
//!   ([`super::socket_file`]); VPP's own socket (id 0) is never touched.
//!
//! Every interface is tagged with its vWire before anything else is done with it.

use std::collections::HashMap;
use std::path::Path;

use nsm_domain::registry::Payload;
use nsm_domain::vwire::{ConnectionContext, Mechanism, VWireId};
use nsm_vpp::api::{
    AfPacketCreateV3, AfPacketDelete, AfPacketFlags, AfPacketMode, IfStatusFlags, MemifCreateV2,
    MemifDelete, MemifMode, MemifRole, MemifSocketFilenameAddDelV2, MemifSocketFilenameDump,
    RxMode, SwInterfaceSetFlags, SwInterfaceSetRxMode, SwInterfaceTagAddDel, TapCreateV3,
    TapDeleteV2, TapFlags,
};
use nsm_vpp::client::{Client, Error as VppError};
use nsm_vpp::codec::{FixedString, VarString};

use super::resources::{self, AfPacketRing, Creating};
use super::socket_file::{self, Removal};
use super::tag::VppTag;
use super::{AfPacketRxMode, KernelInterface, Log, vpp_error, xconnect};
use crate::contract::{DataplaneError, End};
use crate::kernel::{self, Kernel, WorkloadPlan};

pub(crate) const KERNEL: &str = "KERNEL";
pub(crate) const MEMIF: &str = "MEMIF";
/// NSM's memif mechanism parameter naming the socket file.
pub const SOCKETFILE_PARAMETER: &str = "socketfile";
/// VPP's own memif socket (`/run/vpp/memif.sock`), which every VPP has and no end uses.
const DEFAULT_MEMIF_SOCKET: u32 = 0;

/// One end, planned.
#[derive(Debug, Clone)]
pub(crate) struct EndPlan {
    pub(crate) end: End,
    pub(crate) tag: VppTag,
    pub(crate) kind: EndKind,
    /// What the vWire carries, which decides how the end is made (see [`super::xconnect`]).
    pub(crate) payload: Payload,
}

#[derive(Debug, Clone)]
pub(crate) enum EndKind {
    Tap {
        /// `host_namespace`: the path the end's `inodeURL` names.
        netns_path: String,
        /// The Linux side as the kernel data plane configures it (name, MTU, MAC,
        /// addresses, routes).
        workload: Box<WorkloadPlan>,
    },
    AfPacket {
        host_name: String,
        mechanism: Mechanism,
        context: Box<ConnectionContext>,
    },
    Memif {
        socket_file: String,
    },
}

/// What VPP holds for one end, found again by unplumb and reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Made {
    pub(crate) end: End,
    pub(crate) sw_if_index: u32,
    pub(crate) name: String,
    pub(crate) kind: MadeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MadeKind {
    Tap,
    /// VPP's `host-<name>`; the kernel pair behind it goes with it.
    AfPacket {
        host_name: String,
    },
    Memif {
        socket_id: u32,
    },
}

impl MadeKind {
    /// What kind of interface VPP's name says it is (`tap3`, `host-vpp-…`, `memif5/0`).
    pub(crate) fn from_vpp_name(name: &str, socket_id: Option<u32>) -> Option<Self> {
        if let Some(host) = name.strip_prefix("host-") {
            return Some(Self::AfPacket {
                host_name: host.to_owned(),
            });
        }
        if let Some(rest) = name.strip_prefix("memif") {
            let socket = rest.split('/').next()?.parse().ok().or(socket_id)?;
            return Some(Self::Memif { socket_id: socket });
        }
        name.starts_with("tap").then_some(Self::Tap)
    }
}

fn invalid(message: String) -> DataplaneError {
    DataplaneError::InvalidInput(message)
}

/// The VPP-side veth end's name: `vpp-` and 8 hex of the vWire, `-c` or `-e` (14 bytes).
pub(crate) fn host_veth_name(vwire: VWireId, end: End) -> String {
    let simple = vwire.0.simple().to_string();
    let letter = match end {
        End::Client => 'c',
        End::Endpoint => 'e',
    };
    format!("vpp-{}-{letter}", &simple[..8])
}

/// The memif socket an end gets when its mechanism names none.
pub(crate) fn default_socket_file(dir: &Path, vwire: VWireId, end: End) -> String {
    dir.join(format!("{vwire}-{end}.sock"))
        .to_string_lossy()
        .into_owned()
}

impl EndPlan {
    /// A MEMIF end known by its socket file only (found by its tag, not planned from a
    /// request): what removing it needs.
    pub(crate) fn memif(node: &str, vwire: VWireId, end: End, socket_file: String) -> Self {
        Self {
            end,
            tag: VppTag::new(node, vwire, end),
            kind: EndKind::Memif { socket_file },
            payload: Payload::Ethernet,
        }
    }

    /// The end of a vWire that carries `payload` (planned as ETHERNET until told).
    pub(crate) fn carrying(self, payload: Payload) -> Self {
        Self { payload, ..self }
    }

    pub(crate) fn new(
        node: &str,
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        context: &ConnectionContext,
        mode: KernelInterface,
    ) -> Result<Self, DataplaneError> {
        let kind = match mechanism.mechanism_type.as_str() {
            KERNEL => kernel_end(vwire, end, mechanism, context, mode)?,
            MEMIF => {
                let socket_file = mechanism
                    .parameters
                    .get(SOCKETFILE_PARAMETER)
                    .cloned()
                    .ok_or_else(|| {
                        invalid(format!(
                            "the {end} end's MEMIF mechanism names no {SOCKETFILE_PARAMETER}"
                        ))
                    })?;
                check_socket_file(end, &socket_file)?;
                EndKind::Memif { socket_file }
            }
            other => {
                return Err(DataplaneError::Unsupported {
                    dataplane: super::Vpp::NAME,
                    offered: vec![other.to_owned()],
                    supported: vec![KERNEL.to_owned(), MEMIF.to_owned()],
                });
            }
        };
        Ok(Self {
            end,
            tag: VppTag::new(node, vwire, end),
            kind,
            payload: Payload::Ethernet,
        })
    }
}

fn kernel_end(
    vwire: VWireId,
    end: End,
    mechanism: &Mechanism,
    context: &ConnectionContext,
    mode: KernelInterface,
) -> Result<EndKind, DataplaneError> {
    if mode == KernelInterface::AfPacket {
        return Ok(EndKind::AfPacket {
            host_name: host_veth_name(vwire, end),
            mechanism: mechanism.clone(),
            context: Box::new(context.clone()),
        });
    }
    // Everything the kernel data plane will set is checked now, before VPP is touched.
    let workload = WorkloadPlan::new(vwire, end, mechanism, context)?;
    let netns_path = kernel::netns::path_of(&workload.end.netns_url)
        .map_err(|e| invalid(format!("the {end} end: {e}")))?
        .to_string_lossy()
        .into_owned();
    if netns_path.len() >= 64 {
        return Err(invalid(format!(
            "the {end} end's namespace path {netns_path} is longer than VPP's 63 bytes"
        )));
    }
    Ok(EndKind::Tap {
        netns_path,
        workload: Box::new(workload),
    })
}

/// A socket VPP can listen on: an absolute path or an abstract name (`@x`, `abstract:x`),
/// within VPP's 108-byte socket path limit.
fn check_socket_file(end: End, file: &str) -> Result<(), DataplaneError> {
    let abstract_name = file.starts_with('@') || file.starts_with("abstract:");
    if !(abstract_name || file.starts_with('/')) || file.len() > 107 {
        return Err(invalid(format!(
            "the {end} end's {SOCKETFILE_PARAMETER} {file:?} must be an absolute path or an abstract name (@name) of at most 107 bytes"
        )));
    }
    Ok(())
}

fn fixed<const N: usize>(what: &str, text: &str) -> Result<FixedString<N>, DataplaneError> {
    FixedString::new(text).map_err(|e| invalid(format!("{what} {text:?}: {e}")))
}

/// Makes one end and tags it. On error nothing of it is left.
pub(crate) async fn make(
    client: &Client,
    kernel: Option<&Kernel>,
    vwire: VWireId,
    plan: &EndPlan,
    (ring, rx_mode): (AfPacketRing, AfPacketRxMode),
    log: &mut Log,
) -> Result<Made, DataplaneError> {
    let tag = plan.tag.to_string();
    let made = match &plan.kind {
        EndKind::Tap {
            netns_path,
            workload,
        } => {
            make_tap(
                client,
                kernel,
                netns_path,
                workload,
                plan.payload,
                &tag,
                log,
            )
            .await?
        }
        EndKind::AfPacket {
            host_name,
            mechanism,
            context,
        } => {
            let kernel = kernel.ok_or_else(|| {
                DataplaneError::NotPermitted(
                    "veth + af_packet needs the kernel data plane's capabilities".into(),
                )
            })?;
            // An IP end's workload side resolves no neighbours: VPP wears its MAC (see
            // `xconnect`). An Ethernet end's VPP interface gets a MAC of VPP's choosing.
            let workload_mac = match plan.payload {
                Payload::Ethernet => {
                    let (work, _host_mac) = kernel
                        .make_host_veth(vwire, plan.end, mechanism, context, host_name)
                        .await?;
                    log.extend(work.operations);
                    None
                }
                Payload::Ip => {
                    let (work, workload_mac) = kernel
                        .make_ip_host_veth(vwire, plan.end, mechanism, context, host_name)
                        .await?;
                    log.extend(work.operations);
                    Some(workload_mac)
                }
            };
            let create = AfPacketCreateV3 {
                mode: AfPacketMode::AF_PACKET_API_MODE_ETHERNET,
                use_random_hw_addr: workload_mac.is_none(),
                hw_addr: workload_mac.unwrap_or_default(),
                host_if_name: fixed("af_packet host interface", host_name)?,
                // TPACKET_V2 rings are one block each way: frames per block is the ring.
                rx_frame_size: ring.frame_size,
                tx_frame_size: ring.frame_size,
                rx_frames_per_block: ring.frames,
                tx_frames_per_block: ring.frames,
                flags: AfPacketFlags::AF_PACKET_API_FLAG_VERSION_2,
                ..AfPacketCreateV3::default()
            };
            let made = match client.request(&create).await {
                Ok(reply) => Made {
                    end: plan.end,
                    sw_if_index: reply.sw_if_index,
                    name: format!("host-{host_name}"),
                    kind: MadeKind::AfPacket {
                        host_name: host_name.clone(),
                    },
                },
                Err(e) => {
                    let _ = kernel
                        .remove_host_veth(vwire, plan.end, mechanism, host_name)
                        .await;
                    let creating = Creating::AfPacket { host_name, ring };
                    return Err(resources::refused(e, creating, client.peer_pid()));
                }
            };
            // Up at once: the host side is up already, and VPP reads no af_packet ring of
            // an interface that is down, while the kernel keeps the ring readable for it;
            // so VPP's main thread spins in epoll (and answers its API late, or not at all)
            // for as long as the end waits for the rest of the vWire.
            // How VPP reads the rings, before it is up and reads them (see `AfPacketRxMode`).
            let rx_mode = SwInterfaceSetRxMode {
                sw_if_index: made.sw_if_index,
                mode: rx_mode.api(),
                ..SwInterfaceSetRxMode::default()
            };
            let up = SwInterfaceSetFlags {
                sw_if_index: made.sw_if_index,
                flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
            };
            let ready = async {
                client.request(&rx_mode).await?;
                client.request(&up).await
            };
            if let Err(e) = ready.await {
                let undo = &mut Log::default();
                remove(client, Some(kernel), vwire, &made, Some(plan), undo).await;
                return Err(vpp_error(e));
            }
            if let Some(mac) = workload_mac {
                let addresses = xconnect::workload_addresses(plan.end, plan);
                let sw_if_index = made.sw_if_index;
                let neighbours =
                    xconnect::add_workload_neighbours(client, sw_if_index, mac, &addresses, log);
                if let Err(e) = neighbours.await {
                    remove(
                        client,
                        Some(kernel),
                        vwire,
                        &made,
                        Some(plan),
                        &mut Log::default(),
                    )
                    .await;
                    return Err(e);
                }
            }
            made
        }
        EndKind::Memif { socket_file } => {
            make_memif(client, plan.end, socket_file, plan.payload).await?
        }
    };
    let tagged = SwInterfaceTagAddDel {
        is_add: true,
        sw_if_index: made.sw_if_index,
        tag: fixed("tag", &tag)?,
    };
    if let Err(e) = client.request(&tagged).await {
        remove(
            client,
            kernel,
            vwire,
            &made,
            Some(plan),
            &mut Log::default(),
        )
        .await;
        return Err(vpp_error(e));
    }
    log.push(format!(
        "made the {} end's VPP interface {} (sw_if_index {}) and tagged it {tag}",
        plan.end, made.name, made.sw_if_index
    ));
    Ok(made)
}

/// The tap, its Linux side checked for before and configured after; on error nothing of it
/// is left (deleting the tap in VPP removes its Linux side).
async fn make_tap(
    client: &Client,
    kernel: Option<&Kernel>,
    netns_path: &str,
    workload: &WorkloadPlan,
    payload: Payload,
    tag: &str,
    log: &mut Log,
) -> Result<Made, DataplaneError> {
    let kernel = kernel.ok_or_else(|| {
        DataplaneError::NotPermitted(
            "a tap's addresses and routes need the kernel data plane's capabilities".into(),
        )
    })?;
    log.extend(kernel.prepare_workload_end(workload).await?.operations);
    let end = workload.end.end;
    let mut create = TapCreateV3 {
        host_namespace_set: true,
        host_namespace: fixed("namespace", netns_path)?,
        host_if_name_set: true,
        host_if_name: fixed("interface name", &workload.end.name)?,
        tag: VarString(tag.to_owned()),
        ..TapCreateV3::default()
    };
    if let Some(mtu) = workload.mtu {
        create.host_mtu_set = true;
        create.host_mtu_size = mtu;
    }
    match payload {
        // A TUN tap for IP packets, as NSM makes it: point to point, no MAC, no ARP.
        Payload::Ip => create.tap_flags = TapFlags::TAP_API_FLAG_TUN,
        Payload::Ethernet => {
            if let Some(mac) = workload.end.mac {
                create.host_mac_addr_set = true;
                create.host_mac_addr = mac;
            }
        }
    }
    let reply = client.request(&create).await.map_err(vpp_error)?;
    let made = Made {
        end,
        sw_if_index: reply.sw_if_index,
        name: format!("tap (sw_if_index {})", reply.sw_if_index),
        kind: MadeKind::Tap,
    };
    let configured = async {
        // Adaptive polling, as NSM does: interrupts when idle, polling under load.
        let rx_mode = SwInterfaceSetRxMode {
            sw_if_index: reply.sw_if_index,
            mode: RxMode::RX_MODE_API_ADAPTIVE,
            ..SwInterfaceSetRxMode::default()
        };
        client.request(&rx_mode).await.map_err(vpp_error)?;
        kernel.configure_workload_end(workload).await
    };
    match configured.await {
        Ok(work) => {
            log.extend(work.operations);
            Ok(made)
        }
        Err(error) => {
            let delete = TapDeleteV2 {
                sw_if_index: reply.sw_if_index,
            };
            if let Err(e) = client.request(&delete).await {
                tracing::warn!(
                    %end,
                    sw_if_index = reply.sw_if_index,
                    error = %e,
                    "could not delete a tap that could not be set up; reconcile removes it"
                );
            }
            Err(error)
        }
    }
}

/// A memif in the master role, in IP mode for an IP vWire (no L2 header: the workload's
/// memif must be in IP mode too), Ethernet mode otherwise.
async fn make_memif(
    client: &Client,
    end: End,
    socket_file: &str,
    payload: Payload,
) -> Result<Made, DataplaneError> {
    // VPP binds an absolute path as it is: its folder must be there first.
    socket_file::make_folder(socket_file).map_err(|e| {
        let reason =
            format!("cannot make the folder of the {end} end's memif socket {socket_file}: {e}");
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => DataplaneError::NotPermitted(reason),
            _ => DataplaneError::Failed {
                dataplane: super::Vpp::NAME,
                reason,
            },
        }
    })?;
    let socket = MemifSocketFilenameAddDelV2 {
        is_add: true,
        socket_id: u32::MAX,
        socket_filename: VarString(socket_file.to_owned()),
    };
    let socket_id = client.request(&socket).await.map_err(vpp_error)?.socket_id;
    let create = MemifCreateV2 {
        role: MemifRole::MEMIF_ROLE_API_MASTER,
        mode: match payload {
            Payload::Ethernet => MemifMode::MEMIF_MODE_API_ETHERNET,
            Payload::Ip => MemifMode::MEMIF_MODE_API_IP,
        },
        socket_id,
        ..MemifCreateV2::default()
    };
    match client.request(&create).await {
        Ok(reply) => Ok(Made {
            end,
            sw_if_index: reply.sw_if_index,
            name: format!("memif{socket_id}/0 on {socket_file}"),
            kind: MadeKind::Memif { socket_id },
        }),
        Err(e) => {
            let _ = client.request(&remove_socket(socket_id)).await;
            // VPP binds the socket here: a refusal may mean it is out of file descriptors.
            let creating = Creating::Memif { socket_file };
            Err(resources::refused(e, creating, client.peer_pid()))
        }
    }
}

/// Deletes a memif, then its socket id, then the socket file VPP leaves behind (see
/// [`socket_file`]). Never socket 0: it is VPP's own default, no end of ours is on it, and
/// VPP refuses to delete it (-73).
async fn remove_memif(
    client: &Client,
    sw_if_index: u32,
    socket_id: u32,
    socket_file: Option<&str>,
    log: &mut Log,
) -> Result<(), VppError> {
    let deleted = client.request(&MemifDelete { sw_if_index }).await.map(drop);
    if socket_id == DEFAULT_MEMIF_SOCKET {
        return deleted;
    }
    match client.request(&remove_socket(socket_id)).await {
        Ok(_) => {}
        Err(e) => {
            // Still in use (-74) by a memif that is not this end's: its file stays too.
            log.push(format!("could not remove memif socket {socket_id}: {e}"));
            return deleted;
        }
    }
    if let Some(file) = socket_file {
        remove_socket_file(file, log);
    }
    deleted
}

/// Removes a memif socket file nothing listens on any more, saying so in `log`: after
/// its memif is deleted, or for an end VPP lost in a restart (its file stays on disk).
pub(crate) fn remove_socket_file(file: &str, log: &mut Log) {
    match socket_file::remove_stale(file) {
        Ok(Removal::Removed) => log.push(format!("removed the memif socket file {file}")),
        Ok(Removal::Absent) => {}
        Ok(Removal::Kept) => log.push(format!(
            "left {file}: it is not a socket, or something listens on it"
        )),
        Err(e) => log.push(format!(
            "could not remove the memif socket file {file}: {e}"
        )),
    }
}

/// The socket files VPP has, by socket id: where an end found by its tag alone was bound.
pub(crate) async fn memif_socket_files(
    client: &Client,
) -> Result<HashMap<u32, String>, DataplaneError> {
    let listed = client
        .dump(&MemifSocketFilenameDump {})
        .await
        .map_err(vpp_error)?;
    Ok(listed
        .into_iter()
        .map(|s| (s.socket_id, s.socket_filename.as_str().to_owned()))
        .collect())
}

fn remove_socket(socket_id: u32) -> MemifSocketFilenameAddDelV2 {
    MemifSocketFilenameAddDelV2 {
        is_add: false,
        socket_id,
        socket_filename: VarString::default(),
    }
}

/// Removes one end; what is gone already is fine. Best effort: every step is tried, and
/// what failed is in the log.
pub(crate) async fn remove(
    client: &Client,
    kernel: Option<&Kernel>,
    vwire: VWireId,
    made: &Made,
    plan: Option<&EndPlan>,
    log: &mut Log,
) {
    // First what VPP would keep past the interface and give to the next one at its index.
    xconnect::disconnect(client, made, log).await;
    let index = made.sw_if_index;
    let result = match &made.kind {
        MadeKind::Tap => client
            .request(&TapDeleteV2 { sw_if_index: index })
            .await
            .map(drop),
        MadeKind::AfPacket { host_name } => {
            let delete = AfPacketDelete {
                host_if_name: FixedString::new(host_name.as_str()).unwrap_or_default(),
            };
            let deleted = client.request(&delete).await.map(drop);
            if let Some(kernel) = kernel {
                let mechanism = match plan.map(|p| &p.kind) {
                    Some(EndKind::AfPacket { mechanism, .. }) => mechanism.clone(),
                    _ => Mechanism::new(nsm_domain::vwire::MechanismClass::Local, KERNEL),
                };
                match kernel
                    .remove_host_veth(vwire, made.end, &mechanism, host_name)
                    .await
                {
                    Ok(work) => log.extend(work.operations),
                    Err(e) => log.push(format!("could not remove the veth {host_name}: {e}")),
                }
            }
            deleted
        }
        MadeKind::Memif { socket_id } => {
            let socket_file = match plan.map(|p| &p.kind) {
                Some(EndKind::Memif { socket_file }) => Some(socket_file.as_str()),
                _ => None,
            };
            remove_memif(client, index, *socket_id, socket_file, log).await
        }
    };
    match result {
        Ok(()) => log.push(format!(
            "removed the {} end's VPP interface {}",
            made.end, made.name
        )),
        Err(e) if super::is_gone(&e) => log.push(format!(
            "the {} end's VPP interface {} was gone already",
            made.end, made.name
        )),
        Err(e) => log.push(format!(
            "could not remove the {} end's VPP interface {}: {e}",
            made.end, made.name
        )),
    }
}

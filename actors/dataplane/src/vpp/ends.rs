//! One end of a vWire in VPP: what it will be (worked out from the request before VPP is
//! touched), making it, and removing it.
//!
//! - KERNEL by **tap**: VPP creates a tap whose Linux side it puts straight into the
//!   workload's namespace (`tap_create_v3` with `host_namespace`), with the end's name, MTU,
//!   MAC and its first IPv4 and IPv6 address — what `tap_create_v3` itself can set.
//!   Needs `/dev/vhost-net` on the host.
//! - KERNEL by **veth + af_packet**: the kernel data plane makes a veth pair, one end in the
//!   workload's namespace configured in full (addresses, routes), the other in VPP's, and
//!   VPP attaches to that one with `af_packet_create_v3`. Works on every kernel.
//! - MEMIF: a socket file VPP listens on (`memif_socket_filename_add_del_v2`) and a memif
//!   interface in the master role (`memif_create_v2`); the workload connects as slave.
//!
//! Every interface is tagged with its vWire before anything else is done with it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use nsm_domain::vwire::{ConnectionContext, Mechanism, VWireId, parse_cidr};
use nsm_vpp::api::{
    AfPacketCreateV3, AfPacketDelete, AfPacketFlags, AfPacketMode, Ip4Prefix, Ip6Prefix,
    MemifCreateV2, MemifDelete, MemifMode, MemifRole, MemifSocketFilenameAddDelV2, RxMode,
    SwInterfaceSetRxMode, SwInterfaceTagAddDel, TapCreateV3, TapDeleteV2,
};
use nsm_vpp::client::Client;
use nsm_vpp::codec::{FixedString, VarString};

use super::tag::VppTag;
use super::{KernelInterface, Log, vpp_error};
use crate::contract::{DataplaneError, End};
use crate::kernel::{self, Kernel, NAME_PARAMETER, NETNS_PARAMETER};

pub(crate) const KERNEL: &str = "KERNEL";
pub(crate) const MEMIF: &str = "MEMIF";
/// NSM's memif mechanism parameter naming the socket file.
pub const SOCKETFILE_PARAMETER: &str = "socketfile";

/// One end, planned.
#[derive(Debug, Clone)]
pub(crate) struct EndPlan {
    pub(crate) end: End,
    pub(crate) tag: VppTag,
    pub(crate) kind: EndKind,
}

#[derive(Debug, Clone)]
pub(crate) enum EndKind {
    Tap {
        netns_path: String,
        name: String,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        ip4: Option<(Ipv4Addr, u8)>,
        ip6: Option<(Ipv6Addr, u8)>,
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
    let url = mechanism.parameters.get(NETNS_PARAMETER).ok_or_else(|| {
        invalid(format!(
            "the {end} end's KERNEL mechanism names no {NETNS_PARAMETER}"
        ))
    })?;
    let netns_path = kernel::netns::path_of(url)
        .map_err(|e| invalid(format!("the {end} end: {e}")))?
        .to_string_lossy()
        .into_owned();
    if netns_path.len() >= 64 {
        return Err(invalid(format!(
            "the {end} end's namespace path {netns_path} is longer than VPP's 63 bytes"
        )));
    }
    let name = mechanism
        .parameters
        .get(NAME_PARAMETER)
        .cloned()
        .unwrap_or_else(|| kernel::default_interface_name(vwire, end));
    kernel::check_interface_name(&name)
        .map_err(|e| invalid(format!("the {end} end's name {e}")))?;
    let ip = &context.ip;
    let (addresses, routes, mac) = match end {
        End::Client => (&ip.src_ip_addrs, &ip.src_routes, &context.ethernet.src_mac),
        End::Endpoint => (&ip.dst_ip_addrs, &ip.dst_routes, &context.ethernet.dst_mac),
    };
    if !routes.is_empty() {
        return Err(invalid(format!(
            "the {end} end has routes, which a VPP tap cannot carry into its namespace; \
             run with --vpp-kernel-interface af-packet"
        )));
    }
    let (mut ip4, mut ip6) = (None, None);
    for text in addresses {
        let (addr, len) = parse_cidr(text).map_err(|e| invalid(format!("the {end} end: {e}")))?;
        let taken = match addr {
            IpAddr::V4(v4) => ip4.replace((v4, len)).is_some(),
            IpAddr::V6(v6) => ip6.replace((v6, len)).is_some(),
        };
        if taken {
            return Err(invalid(format!(
                "the {end} end has more than one address of a family, which a VPP tap cannot \
                 set; run with --vpp-kernel-interface af-packet"
            )));
        }
    }
    Ok(EndKind::Tap {
        netns_path,
        name,
        mtu: context.mtu,
        mac: parse_mac(mac).map_err(|e| invalid(format!("the {end} end's MAC: {e}")))?,
        ip4,
        ip6,
    })
}

fn parse_mac(text: &str) -> Result<Option<[u8; 6]>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{text:?} is not a MAC address"))?;
    bytes
        .try_into()
        .map(Some)
        .map_err(|_| format!("{text:?} is not a MAC address"))
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
    log: &mut Log,
) -> Result<Made, DataplaneError> {
    let tag = plan.tag.to_string();
    let made = match &plan.kind {
        EndKind::Tap { .. } => make_tap(client, plan, &tag).await?,
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
            let (work, _host_mac) = kernel
                .make_host_veth(vwire, plan.end, mechanism, context, host_name)
                .await?;
            log.extend(work.operations);
            let create = AfPacketCreateV3 {
                mode: AfPacketMode::AF_PACKET_API_MODE_ETHERNET,
                use_random_hw_addr: true,
                host_if_name: fixed("af_packet host interface", host_name)?,
                rx_frame_size: 10240,
                tx_frame_size: 10240,
                rx_frames_per_block: 32,
                tx_frames_per_block: 32,
                flags: AfPacketFlags::AF_PACKET_API_FLAG_VERSION_2,
                ..AfPacketCreateV3::default()
            };
            match client.request(&create).await {
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
                    return Err(vpp_error(e));
                }
            }
        }
        EndKind::Memif { socket_file } => make_memif(client, plan.end, socket_file).await?,
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

async fn make_tap(client: &Client, plan: &EndPlan, tag: &str) -> Result<Made, DataplaneError> {
    let EndKind::Tap {
        netns_path,
        name,
        mtu,
        mac,
        ip4,
        ip6,
    } = &plan.kind
    else {
        unreachable!("make_tap is called for taps");
    };
    let mut create = TapCreateV3 {
        host_namespace_set: true,
        host_namespace: fixed("namespace", netns_path)?,
        host_if_name_set: true,
        host_if_name: fixed("interface name", name)?,
        tag: VarString(tag.to_owned()),
        ..TapCreateV3::default()
    };
    if let Some(mtu) = mtu {
        create.host_mtu_set = true;
        create.host_mtu_size = *mtu;
    }
    if let Some(mac) = mac {
        create.host_mac_addr_set = true;
        create.host_mac_addr = *mac;
    }
    if let Some((addr, len)) = ip4 {
        create.host_ip4_prefix_set = true;
        create.host_ip4_prefix = Ip4Prefix::new(*addr, *len);
    }
    if let Some((addr, len)) = ip6 {
        create.host_ip6_prefix_set = true;
        create.host_ip6_prefix = Ip6Prefix::new(*addr, *len);
    }
    let reply = client.request(&create).await.map_err(vpp_error)?;
    let made = Made {
        end: plan.end,
        sw_if_index: reply.sw_if_index,
        name: format!("tap (sw_if_index {})", reply.sw_if_index),
        kind: MadeKind::Tap,
    };
    // Adaptive polling, as NSM does: interrupts when idle, polling under load.
    let rx_mode = SwInterfaceSetRxMode {
        sw_if_index: reply.sw_if_index,
        mode: RxMode::RX_MODE_API_ADAPTIVE,
        ..SwInterfaceSetRxMode::default()
    };
    if let Err(e) = client.request(&rx_mode).await {
        let _ = client
            .request(&TapDeleteV2 {
                sw_if_index: reply.sw_if_index,
            })
            .await;
        return Err(vpp_error(e));
    }
    Ok(made)
}

async fn make_memif(client: &Client, end: End, socket_file: &str) -> Result<Made, DataplaneError> {
    let socket = MemifSocketFilenameAddDelV2 {
        is_add: true,
        socket_id: u32::MAX,
        socket_filename: VarString(socket_file.to_owned()),
    };
    let socket_id = client.request(&socket).await.map_err(vpp_error)?.socket_id;
    let create = MemifCreateV2 {
        role: MemifRole::MEMIF_ROLE_API_MASTER,
        mode: MemifMode::MEMIF_MODE_API_ETHERNET,
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
            Err(vpp_error(e))
        }
    }
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
            let deleted = client
                .request(&MemifDelete { sw_if_index: index })
                .await
                .map(drop);
            if let Err(e) = client.request(&remove_socket(*socket_id)).await
                && !super::is_gone(&e)
            {
                log.push(format!("could not remove memif socket {socket_id}: {e}"));
            }
            deleted
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

//! Handlers that create, delete and list devices: tap (tapv2), af_packet and vxlan
//! tunnels (memif has its own file). Checks run in the order VPP's own code runs
//! them, so when a request is wrong in two ways the retval is the one VPP would give; where
//! VPP leaves a reply field unset on failure (a zeroed argument struct), it is 0 here too.

use nsm_vpp::api::*;

use super::dispatch::*;
use super::linux_tap::{self, LinuxTap};
use super::state::{SimInterface, SimKind, address_of, clip, ip_of};

const DEFAULT_TAP_RING: u16 = 256;
const VXLAN_PORT: u16 = 4789;
/// vxlan's static next for "decap into L2" (what ~0 means).
const VXLAN_NEXT_L2_INPUT: u32 = 1;

/// Needs /dev/vhost-net (config.vhost_net) or fails -11, after the id check (-71 when an
/// explicit id is taken). A host_if_name already used by a tap in the same host namespace
/// fails the netlink rename: -145 NETLINK_ERROR. A tag in the request tags the interface.
///
/// With `config.linux_taps` and a `host_namespace`, the Linux side is made for real (see
/// `linux_tap`): a namespace that does not exist fails -12 before the vhost-net check, as
/// VPP opens it first; a device that cannot be made -13, one that cannot be configured
/// -145, and nothing is left of it.
pub(super) fn tap_create_v3(ctx: &mut Ctx<'_>, mut request: TapCreateV3) -> TapCreateV3Reply {
    let failed = |retval| TapCreateV3Reply {
        retval,
        sw_if_index: u32::MAX,
    };
    let taps: Vec<&TapCreateV3> = ctx
        .state
        .interfaces()
        .filter_map(|iface| match &iface.kind {
            SimKind::Tap(tap) => Some(tap.as_ref()),
            _ => None,
        })
        .collect();
    if request.id == u32::MAX {
        request.id = (0..)
            .find(|id| taps.iter().all(|tap| tap.id != *id))
            .unwrap_or(0);
    } else if taps.iter().any(|tap| tap.id == request.id) {
        return failed(INVALID_INTERFACE);
    }
    if request.tap_flags.0 & TapFlags::TAP_API_FLAG_ATTACH.0 != 0 && !request.host_if_name_set {
        return failed(NO_MATCHING_INTERFACE);
    }
    let linux_namespace = match (ctx.config.linux_taps, request.host_namespace_set) {
        (true, true) => match linux_tap::namespace_path(request.host_namespace.as_str()) {
            Some(path) => Some(path),
            None => return failed(SYSCALL_ERROR_2),
        },
        _ => None,
    };
    if !ctx.config.vhost_net {
        tracing::debug!("tap_create_if: open '/dev/vhost-net': No such file or directory");
        return failed(SYSCALL_ERROR_1);
    }
    if !request.host_if_name_set {
        request.host_if_name = fixed(&format!("tap{}", request.id));
        request.host_if_name_set = true;
    }
    let namespace = |tap: &TapCreateV3| tap.host_namespace_set.then(|| tap.host_namespace.clone());
    if taps.iter().any(|tap| {
        tap.host_if_name == request.host_if_name && namespace(tap) == namespace(&request)
    }) {
        return failed(NETLINK_ERROR);
    }
    request.rx_ring_sz = nonzero(request.rx_ring_sz, DEFAULT_TAP_RING);
    request.tx_ring_sz = nonzero(request.tx_ring_sz, DEFAULT_TAP_RING);
    request.num_rx_queues = request.num_rx_queues.max(1);
    let tun = request.tap_flags.0 & TapFlags::TAP_API_FLAG_TUN.0 != 0;
    if !tun && (!request.host_mac_addr_set || request.host_mac_addr == [0; 6]) {
        request.host_mac_addr = ctx.state.random_mac();
    }
    let mac = match (tun, request.use_random_mac) {
        (true, _) => [0; 6],
        (false, true) => ctx.state.random_mac(),
        (false, false) => request.mac_address,
    };
    let linux = match linux_namespace {
        Some(path) => match LinuxTap::create(&request, &path) {
            Ok(linux) => Some(linux),
            Err(retval) => return failed(retval),
        },
        None => None,
    };
    let tag = clip(request.tag.as_str(), 63);
    let mut iface = SimInterface::new(SimKind::Tap(Box::new(request)));
    iface.mac = mac;
    iface.tag = tag;
    let sw_if_index = ctx.state.insert(iface);
    if let Some(linux) = linux {
        ctx.state.linux_taps.insert(sw_if_index, linux);
    }
    TapCreateV3Reply {
        retval: 0,
        sw_if_index,
    }
}

/// -2 for a missing index and for an interface that is not a tap (local0 included).
pub(super) fn tap_delete_v2(ctx: &mut Ctx<'_>, request: TapDeleteV2) -> TapDeleteV2Reply {
    let retval = match ctx.state.get(request.sw_if_index).map(|iface| &iface.kind) {
        Some(SimKind::Tap(_)) => {
            ctx.state.delete(request.sw_if_index);
            0
        }
        _ => INVALID_SW_IF_INDEX,
    };
    TapDeleteV2Reply { retval }
}

/// ~0 means every tap.
pub(super) fn tap_dump(
    ctx: &mut Ctx<'_>,
    request: SwInterfaceTapV2Dump,
) -> Vec<SwInterfaceTapV2Details> {
    ctx.state
        .interfaces()
        .filter(|iface| request.sw_if_index == u32::MAX || iface.sw_if_index == request.sw_if_index)
        .filter_map(|iface| match &iface.kind {
            SimKind::Tap(tap) => Some(SwInterfaceTapV2Details {
                sw_if_index: iface.sw_if_index,
                id: tap.id,
                tx_ring_sz: tap.tx_ring_sz,
                rx_ring_sz: tap.rx_ring_sz,
                host_mtu_size: if tap.host_mtu_set {
                    tap.host_mtu_size
                } else {
                    0
                },
                host_mac_addr: tap.host_mac_addr,
                host_ip4_prefix: tap.host_ip4_prefix.clone(),
                host_ip6_prefix: tap.host_ip6_prefix.clone(),
                tap_flags: tap.tap_flags,
                dev_name: fixed(&iface.name),
                host_if_name: tap.host_if_name.clone(),
                host_namespace: if tap.host_namespace_set {
                    tap.host_namespace.clone()
                } else {
                    Default::default()
                },
                host_bridge: if tap.host_bridge_set {
                    tap.host_bridge.clone()
                } else {
                    Default::default()
                },
            }),
            _ => None,
        })
        .collect()
}

/// mode 0 → -7 (sw_if_index ~0); a host_if_name that already has an af_packet → -79 with
/// the existing interface's index (as VPP returns it); a host interface that does not exist
/// (not in config.host_interfaces, when that is set) → -71, the SIOCGIFINDEX failure.
pub(super) fn af_packet_create_v3(
    ctx: &mut Ctx<'_>,
    request: AfPacketCreateV3,
) -> AfPacketCreateV3Reply {
    let failed = |retval, sw_if_index| AfPacketCreateV3Reply {
        retval,
        sw_if_index,
    };
    let ip_mode = match request.mode {
        AfPacketMode::AF_PACKET_API_MODE_ETHERNET => false,
        AfPacketMode::AF_PACKET_API_MODE_IP => true,
        _ => return failed(INVALID_VALUE, u32::MAX),
    };
    let host = request.host_if_name.as_str();
    if let Some(existing) = af_packet_of(ctx, host) {
        return failed(IF_ALREADY_EXISTS, existing);
    }
    let host_exists = !host.is_empty()
        && ctx
            .config
            .host_interfaces
            .as_ref()
            .is_none_or(|hosts| hosts.contains(host));
    if !host_exists {
        return failed(INVALID_INTERFACE, 0);
    }
    let mac = match (ip_mode, request.use_random_hw_addr) {
        (true, _) => [0; 6],
        (false, true) => ctx.state.random_mac(),
        (false, false) => request.hw_addr,
    };
    let mut iface = SimInterface::new(SimKind::AfPacket(request));
    iface.mac = mac;
    AfPacketCreateV3Reply {
        retval: 0,
        sw_if_index: ctx.state.insert(iface),
    }
}

/// Keyed by host_if_name; an unknown one is -11 SYSCALL_ERROR_1 (af_packet_delete_if's
/// answer).
pub(super) fn af_packet_delete(ctx: &mut Ctx<'_>, request: AfPacketDelete) -> AfPacketDeleteReply {
    let retval = match af_packet_of(ctx, request.host_if_name.as_str()) {
        Some(sw_if_index) => {
            ctx.state.delete(sw_if_index);
            0
        }
        None => SYSCALL_ERROR_1,
    };
    AfPacketDeleteReply { retval }
}

fn af_packet_of(ctx: &Ctx<'_>, host: &str) -> Option<u32> {
    ctx.state.interfaces().find_map(|iface| match &iface.kind {
        SimKind::AfPacket(af) if af.host_if_name.as_str() == host => Some(iface.sw_if_index),
        _ => None,
    })
}

pub(super) fn af_packet_dump(ctx: &mut Ctx<'_>, _: AfPacketDump) -> Vec<AfPacketDetails> {
    ctx.state
        .interfaces()
        .filter_map(|iface| match &iface.kind {
            SimKind::AfPacket(af) => Some(AfPacketDetails {
                sw_if_index: iface.sw_if_index,
                host_if_name: af.host_if_name.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Keyed by (src, dst, encap_vrf_id, vni). Add: mixed families → -7, a VRF other than 0 →
/// -3, src = dst → -82, an existing tunnel → -75, a decap_next_index the input node does not
/// have → -76, an explicit instance in use → -147. The tunnel comes up admin up (VPP sets
/// it), so subscribers hear flags 3. Delete: no such tunnel → -6; the reply names the
/// deleted index.
pub(super) fn vxlan_add_del(
    ctx: &mut Ctx<'_>,
    mut request: VxlanAddDelTunnelV3,
) -> VxlanAddDelTunnelV3Reply {
    let failed = |retval| VxlanAddDelTunnelV3Reply {
        retval,
        sw_if_index: u32::MAX,
    };
    if request.src_address.af != request.dst_address.af {
        return failed(INVALID_VALUE);
    }
    if request.encap_vrf_id != 0 {
        return failed(NO_SUCH_FIB);
    }
    let (Some(src), Some(dst)) = (ip_of(&request.src_address), ip_of(&request.dst_address)) else {
        return failed(INVALID_VALUE);
    };
    if src == dst {
        return failed(SAME_SRC_DST);
    }
    if dst.is_multicast() && !ctx.state.exists(request.mcast_sw_if_index) {
        return failed(INVALID_SW_IF_INDEX);
    }
    let tunnels: Vec<(u32, &VxlanAddDelTunnelV3)> = ctx
        .state
        .interfaces()
        .filter_map(|iface| match &iface.kind {
            SimKind::Vxlan(vxlan) => Some((iface.sw_if_index, vxlan)),
            _ => None,
        })
        .collect();
    let existing = tunnels.iter().find(|(_, t)| {
        ip_of(&t.src_address) == Some(src)
            && ip_of(&t.dst_address) == Some(dst)
            && t.vni == request.vni
    });
    if !request.is_add {
        let Some(&(sw_if_index, _)) = existing else {
            return failed(NO_SUCH_ENTRY);
        };
        ctx.state.delete(sw_if_index);
        return VxlanAddDelTunnelV3Reply {
            retval: 0,
            sw_if_index,
        };
    }
    if existing.is_some() {
        return failed(TUNNEL_EXIST);
    }
    if request.decap_next_index == u32::MAX {
        request.decap_next_index = VXLAN_NEXT_L2_INPUT;
    }
    let node = if dst.is_ipv6() {
        "vxlan6-input"
    } else {
        "vxlan4-input"
    };
    let nexts = ctx.state.nexts.get(node).map_or(0, Vec::len);
    if request.decap_next_index as usize >= nexts {
        return failed(INVALID_DECAP_NEXT);
    }
    if request.instance == u32::MAX {
        request.instance = (0..)
            .find(|n| tunnels.iter().all(|(_, t)| t.instance != *n))
            .unwrap_or(0);
    } else if tunnels.iter().any(|(_, t)| t.instance == request.instance) {
        return failed(INSTANCE_IN_USE);
    }
    request.src_port = nonzero(request.src_port, VXLAN_PORT);
    request.dst_port = nonzero(request.dst_port, VXLAN_PORT);
    request.src_address = address_of(src);
    request.dst_address = address_of(dst);
    let sw_if_index = ctx.state.insert(SimInterface::new(SimKind::Vxlan(request)));
    ctx.state.set_admin(sw_if_index, true);
    VxlanAddDelTunnelV3Reply {
        retval: 0,
        sw_if_index,
    }
}

/// ~0 means every tunnel.
pub(super) fn vxlan_dump(
    ctx: &mut Ctx<'_>,
    request: VxlanTunnelV2Dump,
) -> Vec<VxlanTunnelV2Details> {
    ctx.state
        .interfaces()
        .filter(|iface| request.sw_if_index == u32::MAX || iface.sw_if_index == request.sw_if_index)
        .filter_map(|iface| match &iface.kind {
            SimKind::Vxlan(t) => Some(VxlanTunnelV2Details {
                sw_if_index: iface.sw_if_index,
                instance: t.instance,
                src_address: t.src_address.clone(),
                dst_address: t.dst_address.clone(),
                src_port: t.src_port,
                dst_port: t.dst_port,
                mcast_sw_if_index: t.mcast_sw_if_index,
                encap_vrf_id: t.encap_vrf_id,
                decap_next_index: t.decap_next_index,
                vni: t.vni,
            }),
            _ => None,
        })
        .collect()
}

pub(super) fn nonzero<T: PartialEq + Default>(value: T, default: T) -> T {
    if value == T::default() {
        default
    } else {
        value
    }
}

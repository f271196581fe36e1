//! Handlers for the messages that act on any interface (flags, tags, addresses, MTU, rx
//! mode, cross-connects, l3xc), the inventory dump, events, version and graph nodes. Each
//! checks what VPP checks, in VPP's order, and answers with VPP's retval.

use nsm_vpp::api::*;

use super::dispatch::*;
use super::state::{SimInterface, ip_of};

pub(super) fn show_version(_: &mut Ctx<'_>, _: ShowVersion) -> ShowVersionReply {
    ShowVersionReply {
        retval: 0,
        program: fixed("vpe"),
        version: fixed("26.06-sim"),
        build_date: fixed("simulated"),
        build_directory: fixed("/nsm-vpp/simulator"),
    }
}

/// Keyed by the request's client_index, as VPP keys it: enabling twice, or disabling what
/// was never enabled, is -31 INVALID_REGISTRATION.
pub(super) fn want_interface_events(
    ctx: &mut Ctx<'_>,
    request: WantInterfaceEvents,
) -> WantInterfaceEventsReply {
    let client = ctx.client_index;
    let subscribed = ctx.state.subscribers.contains_key(&client);
    let retval = match (request.enable_disable != 0, subscribed) {
        (true, false) => {
            ctx.state.subscribers.insert(client, request.pid);
            0
        }
        (false, true) => {
            ctx.state.subscribers.remove(&client);
            0
        }
        _ => INVALID_REGISTRATION,
    };
    WantInterfaceEventsReply { retval }
}

/// ~0 or 0 means every interface; the name filter is a case-insensitive substring (VPP
/// uses strcasestr).
pub(super) fn sw_interface_dump(
    ctx: &mut Ctx<'_>,
    request: SwInterfaceDump,
) -> Vec<SwInterfaceDetails> {
    let all = request.sw_if_index == u32::MAX || request.sw_if_index == 0;
    let filter = request
        .name_filter_valid
        .then(|| request.name_filter.as_str().to_lowercase());
    ctx.state
        .interfaces()
        .filter(|iface| all || iface.sw_if_index == request.sw_if_index)
        .filter(|iface| {
            let name = iface.name.to_lowercase();
            filter.as_deref().is_none_or(|filter| name.contains(filter))
        })
        .map(details)
        .collect()
}

fn details(iface: &SimInterface) -> SwInterfaceDetails {
    SwInterfaceDetails {
        sw_if_index: iface.sw_if_index,
        sup_sw_if_index: iface.sw_if_index,
        l2_address: iface.mac,
        flags: iface.flags(),
        r#type: IfType::IF_API_TYPE_HARDWARE,
        link_duplex: if iface.link_up {
            LinkDuplex::LINK_DUPLEX_API_FULL
        } else {
            LinkDuplex::LINK_DUPLEX_API_UNKNOWN
        },
        link_mtu: u16::try_from(iface.mtu[0]).unwrap_or(u16::MAX),
        mtu: iface.mtu,
        interface_name: fixed(&iface.name),
        interface_dev_type: fixed(&iface.dev_type),
        tag: fixed(&iface.tag),
        ..Default::default()
    }
}

pub(super) fn set_flags(
    ctx: &mut Ctx<'_>,
    request: SwInterfaceSetFlags,
) -> SwInterfaceSetFlagsReply {
    let up = request.flags.0 & IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP.0 != 0;
    let retval = match ctx.state.set_admin(request.sw_if_index, up) {
        true => 0,
        false => INVALID_SW_IF_INDEX,
    };
    SwInterfaceSetFlagsReply { retval }
}

/// Adding an empty tag is -7, as in VPP; deleting clears whatever tag there is.
pub(super) fn tag_add_del(
    ctx: &mut Ctx<'_>,
    request: SwInterfaceTagAddDel,
) -> SwInterfaceTagAddDelReply {
    let retval = match ctx.state.get_mut(request.sw_if_index) {
        None => INVALID_SW_IF_INDEX,
        Some(_) if request.is_add && request.tag.as_str().is_empty() => INVALID_VALUE,
        Some(iface) => {
            iface.tag = if request.is_add {
                request.tag.as_str().to_owned()
            } else {
                String::new()
            };
            0
        }
    };
    SwInterfaceTagAddDelReply { retval }
}

/// An address may sit on one interface only (-127 DUPLICATE_IF_ADDRESS otherwise, the same
/// prefix twice included); deleting a missing one is -60.
pub(super) fn add_del_address(
    ctx: &mut Ctx<'_>,
    request: SwInterfaceAddDelAddress,
) -> SwInterfaceAddDelAddressReply {
    SwInterfaceAddDelAddressReply {
        retval: address_retval(ctx, &request),
    }
}

fn address_retval(ctx: &mut Ctx<'_>, request: &SwInterfaceAddDelAddress) -> i32 {
    let sw_if_index = request.sw_if_index;
    if !ctx.state.exists(sw_if_index) {
        return INVALID_SW_IF_INDEX;
    }
    let Some(ip) = ip_of(&request.prefix.address) else {
        return if request.del_all {
            clear_addresses(ctx, sw_if_index)
        } else {
            INVALID_VALUE
        };
    };
    if request.del_all {
        return clear_addresses(ctx, sw_if_index);
    }
    let len = request.prefix.len;
    if len > if ip.is_ipv4() { 32 } else { 128 } {
        return INVALID_VALUE;
    }
    let holder = ctx.state.interfaces().find_map(|iface| {
        let held = iface.addresses.iter().find(|(held, _)| *held == ip)?;
        Some((iface.sw_if_index, held.1))
    });
    let Some(iface) = ctx.state.get_mut(sw_if_index) else {
        return INVALID_SW_IF_INDEX;
    };
    if request.is_add {
        return match holder {
            None => {
                iface.addresses.push((ip, len));
                0
            }
            Some((other, held)) if other != sw_if_index || held == len => DUPLICATE_IF_ADDRESS,
            // VPP keeps the first length given for an address already on the interface.
            Some(_) => 0,
        };
    }
    let before = iface.addresses.len();
    iface.addresses.retain(|&held| held != (ip, len));
    if iface.addresses.len() == before {
        ADDRESS_NOT_FOUND_FOR_INTERFACE
    } else {
        0
    }
}

fn clear_addresses(ctx: &mut Ctx<'_>, sw_if_index: u32) -> i32 {
    if let Some(iface) = ctx.state.get_mut(sw_if_index) {
        iface.addresses.clear();
    }
    0
}

/// A 0 in the request leaves that protocol's MTU as it was.
pub(super) fn set_mtu(ctx: &mut Ctx<'_>, request: SwInterfaceSetMtu) -> SwInterfaceSetMtuReply {
    let retval = match ctx.state.get_mut(request.sw_if_index) {
        None => INVALID_SW_IF_INDEX,
        Some(iface) => {
            for (mtu, wanted) in iface.mtu.iter_mut().zip(request.mtu) {
                if wanted != 0 {
                    *mtu = wanted;
                }
            }
            0
        }
    };
    SwInterfaceSetMtuReply { retval }
}

pub(super) fn set_rx_mode(
    ctx: &mut Ctx<'_>,
    request: SwInterfaceSetRxMode,
) -> SwInterfaceSetRxModeReply {
    let retval = match ctx.state.get_mut(request.sw_if_index) {
        None => INVALID_SW_IF_INDEX,
        Some(iface) => {
            iface.rx_mode = Some(request.mode);
            0
        }
    };
    SwInterfaceSetRxModeReply { retval }
}

/// One way only: rx sends what it receives to tx. Disabling puts rx back in L3 mode and
/// checks only rx, as VPP does.
pub(super) fn set_l2_xconnect(
    ctx: &mut Ctx<'_>,
    request: SwInterfaceSetL2Xconnect,
) -> SwInterfaceSetL2XconnectReply {
    let tx = request.tx_sw_if_index;
    let tx_ok = !request.enable || ctx.state.exists(tx);
    let retval = match ctx.state.get_mut(request.rx_sw_if_index) {
        Some(rx) if tx_ok => {
            rx.l2_xconnect = request.enable.then_some(tx);
            0
        }
        _ => INVALID_SW_IF_INDEX,
    };
    SwInterfaceSetL2XconnectReply { retval }
}

/// Every one-way L2 cross-connect, by rx interface.
pub(super) fn l2_xconnect_dump(ctx: &mut Ctx<'_>, _: L2XconnectDump) -> Vec<L2XconnectDetails> {
    ctx.state
        .xconnects()
        .into_iter()
        .map(|(rx_sw_if_index, tx_sw_if_index)| L2XconnectDetails {
            rx_sw_if_index,
            tx_sw_if_index,
        })
        .collect()
}

/// What VPP's FIB path parser answers for a path through an interface that does not exist:
/// -54, which VPP's error table names NO_MATCHING_INTERFACE.
const PATH_INTERFACE_MISSING: i32 = -54;

/// Creates or replaces the policy of (interface, family); no paths is -7, a path through an
/// interface that does not exist -54.
pub(super) fn l3xc_update(ctx: &mut Ctx<'_>, request: L3xcUpdate) -> L3xcUpdateReply {
    let L3xc {
        sw_if_index,
        is_ip6,
        paths,
    } = request.l3xc;
    let retval = if !ctx.state.exists(sw_if_index) {
        INVALID_SW_IF_INDEX
    } else if paths.is_empty() {
        INVALID_VALUE
    } else if paths
        .iter()
        .any(|path| path.sw_if_index != u32::MAX && !ctx.state.exists(path.sw_if_index))
    {
        PATH_INTERFACE_MISSING
    } else {
        ctx.state.l3xc.insert((sw_if_index, is_ip6), paths);
        0
    };
    L3xcUpdateReply {
        retval,
        stats_index: 0,
    }
}

/// A missing policy is -7 INVALID_VALUE (l3xc_delete's answer), not NO_SUCH_ENTRY.
pub(super) fn l3xc_del(ctx: &mut Ctx<'_>, request: L3xcDel) -> L3xcDelReply {
    let retval = if !ctx.state.exists(request.sw_if_index) {
        INVALID_SW_IF_INDEX
    } else if ctx
        .state
        .l3xc
        .remove(&(request.sw_if_index, request.is_ip6))
        .is_none()
    {
        INVALID_VALUE
    } else {
        0
    };
    L3xcDelReply { retval }
}

/// ~0 means all. VPP's l3xc_send_details never fills in `is_ip6`, so every detail says
/// false: a client must not tell the families apart from a dump, and here it cannot either.
pub(super) fn l3xc_dump(ctx: &mut Ctx<'_>, request: L3xcDump) -> Vec<L3xcDetails> {
    ctx.state
        .l3xc
        .iter()
        .filter(|((sw_if_index, _), _)| {
            request.sw_if_index == u32::MAX || *sw_if_index == request.sw_if_index
        })
        .map(|(&(sw_if_index, _), paths)| L3xcDetails {
            l3xc: L3xc {
                sw_if_index,
                is_ip6: false,
                paths: paths.clone(),
            },
        })
        .collect()
}

/// Adds (or replaces) or removes a neighbour, as VPP 26.06 answers: -2 for a missing
/// interface, -6 NO_SUCH_ENTRY when removing one that is not there, -7 for an address that
/// is neither IPv4 nor IPv6.
pub(super) fn ip_neighbor_add_del(
    ctx: &mut Ctx<'_>,
    request: IpNeighborAddDel,
) -> IpNeighborAddDelReply {
    let IpNeighbor {
        sw_if_index,
        mac_address,
        ip_address,
        ..
    } = request.neighbor;
    let retval = match ip_of(&ip_address) {
        _ if !ctx.state.exists(sw_if_index) => INVALID_SW_IF_INDEX,
        None => INVALID_VALUE,
        Some(ip) if request.is_add => {
            ctx.state.neighbors.insert((sw_if_index, ip), mac_address);
            0
        }
        Some(ip) => match ctx.state.neighbors.remove(&(sw_if_index, ip)) {
            Some(_) => 0,
            None => NO_SUCH_ENTRY,
        },
    };
    IpNeighborAddDelReply {
        retval,
        stats_index: 0,
    }
}

/// Links `next_name` after `node_name` and returns its next index (the existing one when
/// already linked): -63 for an unknown node, -64 for an unknown next node.
pub(super) fn add_node_next(ctx: &mut Ctx<'_>, request: AddNodeNext) -> AddNodeNextReply {
    let next = request.next_name.as_str();
    let failed = |retval| AddNodeNextReply {
        retval,
        next_index: u32::MAX,
    };
    if !ctx.state.nexts.contains_key(next) {
        if !ctx.state.nexts.contains_key(request.node_name.as_str()) {
            return failed(NO_SUCH_NODE);
        }
        return failed(NO_SUCH_NODE2);
    }
    let Some(nexts) = ctx.state.nexts.get_mut(request.node_name.as_str()) else {
        return failed(NO_SUCH_NODE);
    };
    let index = match nexts.iter().position(|known| known == next) {
        Some(index) => index,
        None => {
            nexts.push(next.to_owned());
            nexts.len() - 1
        }
    };
    AddNodeNextReply {
        retval: 0,
        next_index: index as u32,
    }
}

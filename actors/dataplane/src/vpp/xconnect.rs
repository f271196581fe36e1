//! How a vWire's two VPP interfaces are joined, by what its Network Service carries — NSM's
//! sdk-vpp `xconnect` (`l2xconnect` for ETHERNET, `l3xconnect` for IP) — and how that join
//! is taken apart again.
//!
//! - **ETHERNET**: an L2 cross-connect each way (`sw_interface_set_l2_xconnect` is one-way):
//!   every frame entering one interface leaves by the other, ARP and all.
//! - **IP**: an L3 cross-connect each way and for each family (`l3xc_update`): every IPv4 or
//!   IPv6 packet entering one interface leaves by the other without a FIB lookup. Nothing
//!   else crosses (no ARP, no ND), so each end is made so that it needs none
//!   ([`super::ends`]):
//!   - a memif in IP mode (the workload's memif must be in IP mode too) and a TUN tap are
//!     point to point: the path toward them names the interface alone;
//!   - a veth + af_packet end is Ethernet: the path toward it names the workload's address
//!     of that family as next hop, which a static neighbour ([`add_workload_neighbours`],
//!     made with the end) resolves to the workload's MAC. The other way, the workload's
//!     veth resolves nothing (NOARP: every frame goes to its own MAC) and VPP's interface
//!     wears that MAC, so VPP takes those frames as its own.
//!
//! Found on VPP 26.06 (l3xc plugin): an interface needs no address and no `ip4`/`ip6`
//! enable for l3xc, whose input feature runs ahead of VPP's "ip4-not-enabled" drop; a static
//! neighbour needs no address either (`NO_FIB_ENTRY` keeps it out of the FIB, where two
//! vWires with the same addresses would meet). VPP keeps an interface's l3xc policies after
//! the interface is deleted, and the next interface made at that index inherits them — with
//! the l3xc feature off, so that a later `l3xc_update` there replaces the policy and still
//! forwards nothing. So [`disconnect`] deletes the policies before an interface is deleted.
//! L2 cross-connects and neighbours go with their interface (deleting either end of an L2
//! cross-connect puts the other back in L3 mode).

use std::net::IpAddr;

use nsm_domain::registry::Payload;
use nsm_domain::vwire::parse_cidr;
use nsm_vpp::api::{
    Address, FibPath, FibPathNhProto, FibPathType, IfStatusFlags, IpNeighbor, IpNeighborAddDel,
    IpNeighborFlags, L3xc, L3xcDel, L3xcUpdate, SwInterfaceSetFlags, SwInterfaceSetL2Xconnect,
};
use nsm_vpp::client::{Client, Error as VppError};

use super::ends::{EndKind, EndPlan, Made};
use super::{Log, vpp_error};
use crate::contract::{DataplaneError, End};

/// VPP's answer to `l3xc_del` for an interface without a policy of that family.
const NO_POLICY: i32 = -7;

/// An address family, as l3xc keys its policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Ip4,
    Ip6,
}

impl Family {
    const BOTH: [Family; 2] = [Family::Ip4, Family::Ip6];

    fn is_ip6(self) -> bool {
        self == Family::Ip6
    }

    fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Family::Ip4,
            IpAddr::V6(_) => Family::Ip6,
        }
    }
}

/// The addresses a workload's end has, as its context gives them (the client's end gets the
/// `src_` addresses, the endpoint's the `dst_`), without their prefix lengths.
pub(crate) fn workload_addresses(end: End, plan: &EndPlan) -> Vec<IpAddr> {
    let EndKind::AfPacket { context, .. } = &plan.kind else {
        return Vec::new();
    };
    let cidrs = match end {
        End::Client => &context.ip.src_ip_addrs,
        End::Endpoint => &context.ip.dst_ip_addrs,
    };
    cidrs
        .iter()
        .filter_map(|cidr| parse_cidr(cidr).ok().map(|(address, _)| address))
        .collect()
}

/// Refuses, before anything is made, a vWire whose ends cannot be joined as its payload
/// asks: an IP vWire's Ethernet (veth + af_packet) end without an address, which VPP would
/// have nothing to send to.
pub(crate) fn check(payload: Payload, plans: &[EndPlan; 2]) -> Result<(), DataplaneError> {
    if payload != Payload::Ip {
        return Ok(());
    }
    for plan in plans {
        let ethernet = matches!(plan.kind, EndKind::AfPacket { .. });
        if ethernet && workload_addresses(plan.end, plan).is_empty() {
            return Err(DataplaneError::InvalidInput(format!(
                "the {} end of an IP vWire is a veth + af_packet KERNEL end with no address: \
                 VPP forwards IP packets to it by its address",
                plan.end
            )));
        }
    }
    Ok(())
}

/// Joins the two ends as `payload` asks, both ways, then sets both up. On error what was
/// joined is left for [`disconnect`] (the caller removes the ends, which calls it).
pub(crate) async fn connect(
    client: &Client,
    payload: Payload,
    ends: [(&Made, &EndPlan); 2],
    log: &mut Log,
) -> Result<(), DataplaneError> {
    let [(a, _), (b, _)] = ends;
    match payload {
        Payload::Ethernet => connect_l2(client, a, b, log).await?,
        Payload::Ip => connect_l3(client, ends, log).await?,
    }
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

async fn connect_l2(
    client: &Client,
    a: &Made,
    b: &Made,
    log: &mut Log,
) -> Result<(), DataplaneError> {
    for (rx, tx) in [(a, b), (b, a)] {
        let xconnect = SwInterfaceSetL2Xconnect {
            rx_sw_if_index: rx.sw_if_index,
            tx_sw_if_index: tx.sw_if_index,
            enable: true,
        };
        client.request(&xconnect).await.map_err(vpp_error)?;
    }
    log.push(format!(
        "cross-connected {} and {} at L2, both ways (ETHERNET payload)",
        a.name, b.name
    ));
    Ok(())
}

async fn connect_l3(
    client: &Client,
    ends: [(&Made, &EndPlan); 2],
    log: &mut Log,
) -> Result<(), DataplaneError> {
    let [a, b] = ends;
    for ((rx, _), (tx, tx_plan)) in [(a, b), (b, a)] {
        let mut families = Vec::new();
        for family in Family::BOTH {
            let Some(path) = path_toward(tx, tx_plan, family) else {
                continue;
            };
            let update = L3xcUpdate {
                l3xc: L3xc {
                    sw_if_index: rx.sw_if_index,
                    is_ip6: family.is_ip6(),
                    paths: vec![path],
                },
            };
            client.request(&update).await.map_err(vpp_error)?;
            families.push(match family {
                Family::Ip4 => "IPv4",
                Family::Ip6 => "IPv6",
            });
        }
        log.push(format!(
            "cross-connected {} to {} at L3 ({}; IP payload)",
            rx.name,
            tx.name,
            families.join(", ")
        ));
    }
    Ok(())
}

/// The l3xc path out of `to` for `family`: the interface alone for a point-to-point end;
/// for an Ethernet end the workload's address of that family as next hop, or none when it
/// has no such address (packets of that family then have nowhere to go and are dropped).
fn path_toward(to: &Made, plan: &EndPlan, family: Family) -> Option<FibPath> {
    let next_hop = match plan.kind {
        EndKind::AfPacket { .. } => Some(
            workload_addresses(plan.end, plan)
                .into_iter()
                .find(|address| Family::of(*address) == family)?,
        ),
        _ => None,
    };
    let mut path = FibPath {
        sw_if_index: to.sw_if_index,
        weight: 1,
        r#type: FibPathType::FIB_API_PATH_TYPE_NORMAL,
        proto: match family {
            Family::Ip4 => FibPathNhProto::FIB_API_PATH_NH_PROTO_IP4,
            Family::Ip6 => FibPathNhProto::FIB_API_PATH_NH_PROTO_IP6,
        },
        ..FibPath::default()
    };
    if let Some(next_hop) = next_hop {
        path.nh.address = Address::from(next_hop).un;
    }
    Some(path)
}

/// For an IP vWire's Ethernet end: static neighbours on `sw_if_index` for each of the
/// workload's `addresses`, at the workload's `mac`, so that the l3xc paths toward the end
/// resolve without ARP or ND (VPP has no address there to ask from). They go with the
/// interface.
pub(crate) async fn add_workload_neighbours(
    client: &Client,
    sw_if_index: u32,
    mac: [u8; 6],
    addresses: &[IpAddr],
    log: &mut Log,
) -> Result<(), DataplaneError> {
    let flags = IpNeighborFlags(
        IpNeighborFlags::IP_API_NEIGHBOR_FLAG_STATIC.0
            | IpNeighborFlags::IP_API_NEIGHBOR_FLAG_NO_FIB_ENTRY.0,
    );
    for address in addresses {
        let add = IpNeighborAddDel {
            is_add: true,
            neighbor: IpNeighbor {
                sw_if_index,
                flags,
                mac_address: mac,
                ip_address: Address::from(*address),
            },
        };
        client.request(&add).await.map_err(vpp_error)?;
    }
    let shown: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    log.push(format!(
        "static neighbours {} at {} on sw_if_index {sw_if_index}",
        shown.join(", "),
        mac.map(|b| format!("{b:02x}")).join(":")
    ));
    Ok(())
}

/// Deletes the l3xc policies of one interface (both families), before the interface is
/// deleted: VPP would keep them for the next interface made at its index. Best effort: a
/// policy that is not there is fine, and what failed is in the log.
pub(crate) async fn disconnect(client: &Client, made: &Made, log: &mut Log) {
    let delete = |family: Family| {
        let delete = L3xcDel {
            sw_if_index: made.sw_if_index,
            is_ip6: family.is_ip6(),
        };
        async move { (family, client.request(&delete).await) }
    };
    // Both in flight at once: one round trip, for every interface removed.
    let (ip4, ip6) = futures::join!(delete(Family::Ip4), delete(Family::Ip6));
    let mut deleted = Vec::new();
    for (family, outcome) in [ip4, ip6] {
        match outcome {
            Ok(_) => deleted.push(family),
            Err(VppError::Vpp { retval, .. }) if retval == NO_POLICY => {}
            Err(e) if super::is_gone(&e) => {}
            Err(e) => log.push(format!(
                "could not delete the {family:?} l3xc policy of {}: {e}",
                made.name
            )),
        }
    }
    if !deleted.is_empty() {
        log.push(format!("deleted the l3xc policies of {}", made.name));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use nsm_domain::vwire::{ConnectionContext, Mechanism, MechanismClass, VWireId};

    use super::*;
    use crate::vpp::KernelInterface;
    use crate::vpp::ends::MadeKind;

    fn af_packet_end(end: End, context: &ConnectionContext) -> EndPlan {
        let mut kernel = Mechanism::new(MechanismClass::Local, "KERNEL");
        kernel
            .parameters
            .insert("inodeURL".into(), "file:///run/netns/w".into());
        let vwire = VWireId::new_random();
        EndPlan::new(
            "node-a",
            vwire,
            end,
            &kernel,
            context,
            KernelInterface::AfPacket,
        )
        .unwrap()
        .carrying(Payload::Ip)
    }

    fn made(end: End, sw_if_index: u32) -> Made {
        Made {
            end,
            sw_if_index,
            name: format!("host-{sw_if_index}"),
            kind: MadeKind::AfPacket {
                host_name: format!("{sw_if_index}"),
            },
        }
    }

    #[test]
    fn an_ip_vwire_sends_to_the_workloads_own_address_of_each_family_it_has() {
        let mut context = ConnectionContext::default();
        context.ip.src_ip_addrs = vec!["10.1.0.1/30".into()];
        context.ip.dst_ip_addrs = vec!["10.1.0.2/30".into(), "fd00::2/64".into()];
        let client = af_packet_end(End::Client, &context);
        let endpoint = af_packet_end(End::Endpoint, &context);

        let to_endpoint = path_toward(&made(End::Endpoint, 7), &endpoint, Family::Ip6).unwrap();
        assert_eq!(to_endpoint.sw_if_index, 7);
        assert_eq!(to_endpoint.proto, FibPathNhProto::FIB_API_PATH_NH_PROTO_IP6);
        assert_eq!(
            Address {
                af: nsm_vpp::api::AddressFamily::ADDRESS_IP6,
                un: to_endpoint.nh.address,
            }
            .ip(),
            Some("fd00::2".parse().unwrap())
        );
        let to_client = path_toward(&made(End::Client, 8), &client, Family::Ip4).unwrap();
        assert_eq!(
            to_client.nh.address.0[..4],
            Ipv4Addr::new(10, 1, 0, 1).octets()
        );
        assert!(
            path_toward(&made(End::Client, 8), &client, Family::Ip6).is_none(),
            "the client has no IPv6 address to send to"
        );
        assert!(check(Payload::Ip, &[client, endpoint]).is_ok());
    }

    #[test]
    fn an_ip_vwire_with_an_ethernet_end_without_an_address_is_refused_before_vpp() {
        let mut context = ConnectionContext::default();
        context.ip.dst_ip_addrs = vec!["10.1.0.2/30".into()];
        let plans = [
            af_packet_end(End::Client, &context),
            af_packet_end(End::Endpoint, &context),
        ];
        let refused = check(Payload::Ip, &plans).unwrap_err();
        assert!(
            matches!(&refused, DataplaneError::InvalidInput(why) if why.contains("the client end")),
            "{refused}"
        );
        assert!(
            check(Payload::Ethernet, &plans).is_ok(),
            "L2 needs no address"
        );
    }
}

//! What plumbing one vWire means on the kernel, worked out from the request before anything
//! is touched: for each end, the namespace, the interface name, the addresses, routes and
//! MAC address. Everything a request can get wrong is found here, so that a refusal leaves
//! nothing behind. Pure: no I/O.
//!
//! The ends follow NSM's kernel mechanism: the client's end gets `src_ip_addrs`,
//! `src_routes` and `ethernet.src_mac`; the endpoint's end the `dst_` ones; both get the
//! context's MTU.

use std::net::IpAddr;

use nsm_events::vwire::{ConnectionContext, Mechanism, Route, VWireId, parse_cidr};

use super::tag::{End, default_interface_name};
use crate::dataplane::DataplaneError;

/// The mechanism type this data plane plumbs.
pub(crate) const KERNEL: &str = "KERNEL";
/// The mechanism parameter naming the end's network namespace (a `file://` URL).
pub const NETNS_PARAMETER: &str = "inodeURL";
/// The mechanism parameter naming the end's interface.
pub const NAME_PARAMETER: &str = "name";
/// Linux's interface name limit (`IFNAMSIZ` - 1).
pub const MAX_INTERFACE_NAME: usize = 15;

/// One end, ready to be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndPlan {
    pub(crate) end: End,
    pub(crate) netns_url: String,
    pub(crate) name: String,
    pub(crate) addresses: Vec<(IpAddr, u8)>,
    pub(crate) routes: Vec<RoutePlan>,
    pub(crate) mac: Option<[u8; 6]>,
}

/// A route of one end: to a network (host bits cleared), on the link or through a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoutePlan {
    pub(crate) network: IpAddr,
    pub(crate) len: u8,
    pub(crate) gateway: Option<IpAddr>,
}

/// A whole vWire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) vwire: VWireId,
    pub(crate) client: EndPlan,
    pub(crate) endpoint: EndPlan,
    pub(crate) mtu: Option<u32>,
}

fn invalid(message: String) -> DataplaneError {
    DataplaneError::InvalidInput(message)
}

impl Plan {
    pub(crate) fn new(
        vwire: VWireId,
        client: &Mechanism,
        endpoint: &Mechanism,
        context: &ConnectionContext,
    ) -> Result<Self, DataplaneError> {
        check_supported(context)?;
        let ip = &context.ip;
        let client = EndPlan::new(
            vwire,
            End::Client,
            client,
            &ip.src_ip_addrs,
            &ip.src_routes,
            &context.ethernet.src_mac,
        )?;
        let endpoint = EndPlan::new(
            vwire,
            End::Endpoint,
            endpoint,
            &ip.dst_ip_addrs,
            &ip.dst_routes,
            &context.ethernet.dst_mac,
        )?;
        if client.netns_url == endpoint.netns_url && client.name == endpoint.name {
            return Err(DataplaneError::Conflict(format!(
                "both ends would be interface {} in {}: give them different names",
                client.name, client.netns_url
            )));
        }
        let mtu = context.mtu.filter(|m| *m != 0);
        if let Some(mtu) = mtu {
            let has_ipv6 = client
                .addresses
                .iter()
                .chain(&endpoint.addresses)
                .any(|(a, _)| a.is_ipv6());
            let min = if has_ipv6 { 1280 } else { 68 };
            if !(min..=65535).contains(&mtu) {
                return Err(invalid(format!(
                    "context.MTU {mtu} is outside {min}-65535{}",
                    if has_ipv6 { " (IPv6 needs 1280)" } else { "" }
                )));
            }
        }
        Ok(Self {
            vwire,
            client,
            endpoint,
            mtu,
        })
    }
}

/// Parts of NSM's context this data plane does not apply yet: refused rather than ignored.
fn check_supported(context: &ConnectionContext) -> Result<(), DataplaneError> {
    let unsupported = |what: &str| {
        Err(invalid(format!(
            "the kernel data plane does not apply {what} yet (it applies addresses, routes, MTU and MAC addresses); send the context without it"
        )))
    };
    if !context.ip.policies.is_empty() {
        return unsupported("ip_context.policies (policy-based routing)");
    }
    if !context.ip.ip_neighbors.is_empty() {
        return unsupported("ip_context.ip_neighbors (static neighbours)");
    }
    if context.ethernet.vlan_tag != 0 {
        return unsupported("ethernet_context.vlan_tag");
    }
    Ok(())
}

impl EndPlan {
    fn new(
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        addresses: &[String],
        routes: &[Route],
        mac: &str,
    ) -> Result<Self, DataplaneError> {
        if mechanism.mechanism_type != KERNEL {
            return Err(DataplaneError::Unsupported {
                dataplane: super::Kernel::NAME,
                offered: vec![format!("{end} end: {}", mechanism.mechanism_type)],
                supported: vec![format!("LOCAL/{KERNEL}")],
            });
        }
        let netns_url = mechanism
            .parameters
            .get(NETNS_PARAMETER)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "the {end} end's KERNEL mechanism has no {NETNS_PARAMETER} parameter: name its network namespace as file:///proc/<pid>/ns/net or file:///var/run/netns/<name>"
                ))
            })?
            .clone();
        super::netns::path_of(&netns_url)
            .map_err(|e| invalid(format!("the {end} end's {NETNS_PARAMETER}: {e}")))?;
        let name = match mechanism.parameters.get(NAME_PARAMETER) {
            Some(name) => {
                check_interface_name(name)
                    .map_err(|why| invalid(format!("the {end} end's interface name {why}")))?;
                name.clone()
            }
            None => default_interface_name(vwire, end),
        };
        let addresses = addresses
            .iter()
            .map(|a| {
                parse_cidr(a).map_err(|e| invalid(format!("the {end} end's address {a:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut planned = routes
            .iter()
            .map(|r| route(end, r))
            .collect::<Result<Vec<_>, _>>()?;
        // Routes on the link first: a gateway is reachable only once they exist.
        planned.sort_by_key(|r| r.gateway.is_some());
        let mac = if mac.is_empty() {
            None
        } else {
            Some(parse_mac(mac).map_err(|why| invalid(format!("the {end} end's MAC {why}")))?)
        };
        Ok(Self {
            end,
            netns_url,
            name,
            addresses,
            routes: planned,
            mac,
        })
    }
}

/// Linux's rules for an interface name (`dev_valid_name`).
pub fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_INTERFACE_NAME {
        return Err(format!(
            "{name:?} must be 1-{MAX_INTERFACE_NAME} characters long"
        ));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!(
            "{name:?} is not a valid Linux interface name (no /, :, spaces, . or ..)"
        ));
    }
    Ok(())
}

fn route(end: End, route: &Route) -> Result<RoutePlan, DataplaneError> {
    let bad = |why: String| invalid(format!("the {end} end's route {:?}: {why}", route.prefix));
    let (addr, len) = parse_cidr(&route.prefix).map_err(|e| bad(e.to_string()))?;
    let gateway = if route.next_hop.is_empty() {
        None
    } else {
        let gateway: IpAddr = route
            .next_hop
            .parse()
            .map_err(|_| bad(format!("next hop {:?} is not an address", route.next_hop)))?;
        if gateway.is_ipv4() != addr.is_ipv4() {
            return Err(bad(format!(
                "next hop {gateway} is not of the prefix's family"
            )));
        }
        Some(gateway)
    };
    Ok(RoutePlan {
        network: network_of(addr, len),
        len,
        gateway,
    })
}

/// `addr` with the bits past `len` cleared (the kernel refuses a route with host bits).
fn network_of(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{text:?} is not a MAC address (aa:bb:cc:dd:ee:ff)");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(format!(
            "{text:?} is a multicast or zero address, not one an interface can have"
        ));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use nsm_events::vwire::{IpContext, MechanismClass};

    use super::*;

    fn kernel(parameters: &[(&str, &str)]) -> Mechanism {
        Mechanism {
            cls: MechanismClass::Local,
            mechanism_type: KERNEL.into(),
            parameters: parameters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn p2p() -> ConnectionContext {
        ConnectionContext {
            ip: IpContext {
                src_ip_addrs: vec!["172.16.0.1/32".into()],
                dst_ip_addrs: vec!["172.16.0.2/32".into()],
                src_routes: vec![
                    Route {
                        prefix: "10.9.0.0/16".into(),
                        next_hop: "172.16.0.2".into(),
                    },
                    Route {
                        prefix: "172.16.0.2/32".into(),
                        next_hop: String::new(),
                    },
                ],
                dst_routes: vec![Route {
                    prefix: "172.16.0.1/32".into(),
                    next_hop: String::new(),
                }],
                ..IpContext::default()
            },
            mtu: Some(1400),
            ..ConnectionContext::default()
        }
    }

    #[test]
    fn a_point_to_point_vwire_is_planned_end_by_end() {
        let vwire = VWireId::new_random();
        let plan = Plan::new(
            vwire,
            &kernel(&[("inodeURL", "file:///run/netns/c1"), ("name", "nsm-1")]),
            &kernel(&[("inodeURL", "file:///run/netns/e1")]),
            &p2p(),
        )
        .unwrap();
        assert_eq!(plan.client.name, "nsm-1");
        assert_eq!(
            plan.endpoint.name,
            default_interface_name(vwire, End::Endpoint)
        );
        assert_eq!(
            plan.client.addresses,
            vec![("172.16.0.1".parse().unwrap(), 32)]
        );
        // On-link routes come before the ones through a gateway.
        assert_eq!(plan.client.routes[0].gateway, None);
        assert_eq!(
            plan.client.routes[1].gateway,
            Some("172.16.0.2".parse().unwrap())
        );
        assert_eq!(plan.mtu, Some(1400));
    }

    #[test]
    fn route_prefixes_lose_their_host_bits() {
        let planned = route(
            End::Client,
            &Route {
                prefix: "10.1.2.3/16".into(),
                next_hop: String::new(),
            },
        )
        .unwrap();
        assert_eq!(planned.network, "10.1.0.0".parse::<IpAddr>().unwrap());
        let planned = route(
            End::Client,
            &Route {
                prefix: "fd00::1:2/112".into(),
                next_hop: String::new(),
            },
        )
        .unwrap();
        assert_eq!(planned.network, "fd00::1:0".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bad_requests_are_refused_naming_the_end_and_the_field() {
        let ok = || kernel(&[("inodeURL", "file:///run/netns/x")]);
        let cases: Vec<(Mechanism, Mechanism, ConnectionContext, &str)> = vec![
            (
                kernel(&[]),
                ok(),
                p2p(),
                "client end's KERNEL mechanism has no inodeURL",
            ),
            (
                kernel(&[("inodeURL", "inode://4/123")]),
                ok(),
                p2p(),
                "grpcfd",
            ),
            (
                kernel(&[
                    ("inodeURL", "file:///run/netns/x"),
                    ("name", "much-too-long-name"),
                ]),
                ok(),
                p2p(),
                "client end's interface name \"much-too-long-name\" must be 1-15",
            ),
            (
                ok(),
                kernel(&[("inodeURL", "file:///run/netns/x"), ("name", "a/b")]),
                p2p(),
                "endpoint end's interface name",
            ),
            (
                kernel(&[("inodeURL", "file:///run/netns/x"), ("name", "same")]),
                kernel(&[("inodeURL", "file:///run/netns/x"), ("name", "same")]),
                p2p(),
                "both ends would be interface same",
            ),
            (
                ok(),
                ok(),
                ConnectionContext {
                    mtu: Some(40),
                    ..p2p()
                },
                "MTU 40",
            ),
            (
                ok(),
                ok(),
                ConnectionContext {
                    ethernet: nsm_events::vwire::EthernetContext {
                        src_mac: "01:00:5e:00:00:01".into(),
                        ..Default::default()
                    },
                    ..p2p()
                },
                "multicast",
            ),
        ];
        for (client, endpoint, context, expected) in cases {
            let error = Plan::new(VWireId::new_random(), &client, &endpoint, &context)
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    #[test]
    fn unsupported_context_is_refused_not_ignored() {
        let mut context = p2p();
        context.ip.ip_neighbors = vec![nsm_events::vwire::IpNeighbor {
            ip: "172.16.0.2".into(),
            hardware_address: "02:00:00:00:00:01".into(),
        }];
        let ok = kernel(&[("inodeURL", "file:///run/netns/x")]);
        let error = Plan::new(VWireId::new_random(), &ok, &ok, &context)
            .unwrap_err()
            .to_string();
        assert!(error.contains("ip_neighbors"), "{error}");
    }

    #[test]
    fn memif_is_not_the_kernel_data_plane_s() {
        let memif = Mechanism::new(MechanismClass::Local, "MEMIF");
        let ok = kernel(&[("inodeURL", "file:///run/netns/x")]);
        let error = Plan::new(VWireId::new_random(), &ok, &memif, &p2p())
            .unwrap_err()
            .to_string();
        assert!(error.contains("endpoint end: MEMIF"), "{error}");
    }
}

//! What plumbing one vWire means on the kernel, worked out from the request before anything
//! is touched: for each end, the namespace, the interface name, the addresses, routes and
//! MAC address. Everything a request can get wrong is found here, so that a refusal leaves
//! nothing behind. Pure: no I/O.
//!
//! The ends follow NSM's kernel mechanism: the client's end gets `src_ip_addrs`,
//! `src_routes` and `ethernet.src_mac`; the endpoint's end the `dst_` ones; both get the
//! context's MTU. [`HostPlan`] is one such end alone, paired with a bare link in this
//! process's namespace (the VPP forwarder's veth + af_packet).

use std::net::IpAddr;

use nsm_domain::vwire::{ConnectionContext, Mechanism, Route, VWireId, parse_cidr};

use super::tag::{End, default_interface_name};
use crate::contract::DataplaneError;

/// The mechanism type this data plane plumbs.
pub(crate) const KERNEL: &str = "KERNEL";
/// The mechanism parameter naming the end's network namespace (a `file://` URL).
pub const NETNS_PARAMETER: &str = "inodeURL";
/// The mechanism parameter naming the end's interface.
pub const NAME_PARAMETER: &str = "name";
/// Linux's interface name limit (`IFNAMSIZ` - 1).
pub const MAX_INTERFACE_NAME: usize = 15;

/// Which link of an end a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The end itself, in the workload's namespace, as NSM's kernel mechanism names it.
    Workload,
    /// The bare peer of [`HostPlan`]'s end, in this process's namespace, for VPP.
    Host,
}

/// One end, ready to be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndPlan {
    pub(crate) end: End,
    pub(crate) side: Side,
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

/// One end of a vWire as a veth pair: the end in its workload's namespace, configured as
/// [`Plan`] would configure it, and a bare peer in this process's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPlan {
    pub(crate) vwire: VWireId,
    pub(crate) workload: EndPlan,
    pub(crate) host: EndPlan,
    pub(crate) mtu: Option<u32>,
}

/// One end of a vWire alone, whose link something else makes straight in its workload's
/// namespace (VPP's tap, `tap_create_v3` with `host_namespace`): the end is configured as
/// [`Plan`] would configure it, and has no peer of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkloadPlan {
    pub(crate) vwire: VWireId,
    pub(crate) end: EndPlan,
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
        let client = EndPlan::of_context(vwire, End::Client, client, context)?;
        let endpoint = EndPlan::of_context(vwire, End::Endpoint, endpoint, context)?;
        if client.netns_url == endpoint.netns_url && client.name == endpoint.name {
            return Err(DataplaneError::Conflict(format!(
                "both ends would be interface {} in {}: give them different names",
                client.name, client.netns_url
            )));
        }
        let mtu = context_mtu(context)?;
        Ok(Self {
            vwire,
            client,
            endpoint,
            mtu,
        })
    }
}

impl HostPlan {
    /// `end` of `vwire`, with its peer named `host_name` in the namespace `own_url` names.
    /// Whether the two would clash (the workload in this very namespace, under the same
    /// name) takes opening the namespaces, so the caller checks that.
    pub(crate) fn new(
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        context: &ConnectionContext,
        host_name: &str,
        own_url: &str,
    ) -> Result<Self, DataplaneError> {
        check_supported(context)?;
        let workload = EndPlan::of_context(vwire, end, mechanism, context)?;
        check_interface_name(host_name)
            .map_err(|why| invalid(format!("the {end} end's host-side interface name {why}")))?;
        let host = EndPlan {
            end,
            side: Side::Host,
            netns_url: own_url.to_owned(),
            name: host_name.to_owned(),
            addresses: Vec::new(),
            routes: Vec::new(),
            mac: None,
        };
        let mtu = context_mtu(context)?;
        Ok(Self {
            vwire,
            workload,
            host,
            mtu,
        })
    }
}

impl WorkloadPlan {
    pub(crate) fn new(
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        context: &ConnectionContext,
    ) -> Result<Self, DataplaneError> {
        check_supported(context)?;
        Ok(Self {
            vwire,
            end: EndPlan::of_context(vwire, end, mechanism, context)?,
            mtu: context_mtu(context)?,
        })
    }
}

/// The context's MTU, if it sets one (0 is none), checked against the families of all its
/// addresses: both ends of a wire carry the same packets. Addresses that do not parse are
/// refused where the end that has them is planned.
fn context_mtu(context: &ConnectionContext) -> Result<Option<u32>, DataplaneError> {
    let Some(mtu) = context.mtu.filter(|m| *m != 0) else {
        return Ok(None);
    };
    let ip = &context.ip;
    let has_ipv6 = ip
        .src_ip_addrs
        .iter()
        .chain(&ip.dst_ip_addrs)
        .filter_map(|a| parse_cidr(a).ok())
        .any(|(a, _)| a.is_ipv6());
    let min = if has_ipv6 { 1280 } else { 68 };
    if !(min..=65535).contains(&mtu) {
        return Err(invalid(format!(
            "context.MTU {mtu} is outside {min}-65535{}",
            if has_ipv6 { " (IPv6 needs 1280)" } else { "" }
        )));
    }
    Ok(Some(mtu))
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
    /// `end` as NSM's kernel mechanism configures it from the context: the client's end
    /// with the `src_` fields, the endpoint's with the `dst_` ones.
    fn of_context(
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        context: &ConnectionContext,
    ) -> Result<Self, DataplaneError> {
        let (ip, ethernet) = (&context.ip, &context.ethernet);
        let (addresses, routes, mac) = match end {
            End::Client => (&ip.src_ip_addrs, &ip.src_routes, &ethernet.src_mac),
            End::Endpoint => (&ip.dst_ip_addrs, &ip.dst_routes, &ethernet.dst_mac),
        };
        Self::new(vwire, end, mechanism, addresses, routes, mac)
    }

    /// What it is, for messages: "client end", or "host side of the client end".
    pub(crate) fn role(&self) -> String {
        match self.side {
            Side::Workload => format!("{} end", self.end),
            Side::Host => format!("host side of the {} end", self.end),
        }
    }

    /// The link in namespace `url`, for messages: "the client end nsm-1 in file:///…".
    pub(crate) fn here(&self, url: &str) -> String {
        format!("the {} {} in {url}", self.role(), self.name)
    }

    /// Its namespace `url`, for messages.
    pub(crate) fn namespace(&self, url: &str) -> String {
        match self.side {
            Side::Workload => format!("the {} end's network namespace {url}", self.end),
            Side::Host => format!("this process's network namespace {url}"),
        }
    }

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
            side: Side::Workload,
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

    use nsm_domain::vwire::{IpContext, MechanismClass};

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
                    ethernet: nsm_domain::vwire::EthernetContext {
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
        context.ip.ip_neighbors = vec![nsm_domain::vwire::IpNeighbor {
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
    fn a_host_veth_end_takes_its_own_end_s_fields_and_a_bare_peer() {
        let vwire = VWireId::new_random();
        let mut context = p2p();
        context.ethernet.dst_mac = "02:00:00:00:00:02".into();
        let endpoint = kernel(&[("inodeURL", "file:///run/netns/e1")]);
        let own = "file:///proc/1/ns/net";
        let plan = HostPlan::new(vwire, End::Endpoint, &endpoint, &context, "vpp-1", own).unwrap();
        assert_eq!(plan.workload.side, Side::Workload);
        assert_eq!(
            plan.workload.name,
            default_interface_name(vwire, End::Endpoint)
        );
        assert_eq!(
            plan.workload.addresses,
            vec![("172.16.0.2".parse().unwrap(), 32)]
        );
        assert_eq!(plan.workload.routes.len(), 1);
        assert_eq!(plan.workload.mac, Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(plan.host.side, Side::Host);
        assert_eq!(plan.host.end, End::Endpoint);
        assert_eq!(
            (plan.host.name.as_str(), plan.host.netns_url.as_str()),
            ("vpp-1", own)
        );
        assert!(plan.host.addresses.is_empty() && plan.host.routes.is_empty());
        assert_eq!(plan.host.mac, None);
        assert_eq!(plan.mtu, Some(1400));
        assert_eq!(
            plan.host.here(own),
            format!("the host side of the endpoint end vpp-1 in {own}")
        );
    }

    #[test]
    fn a_host_veth_end_is_refused_as_the_kernel_forwarder_refuses_it() {
        let ok = kernel(&[("inodeURL", "file:///run/netns/x")]);
        let own = "file:///proc/1/ns/net";
        let mut vlan = p2p();
        vlan.ethernet.vlan_tag = 7;
        let cases: Vec<(Mechanism, ConnectionContext, &str, &str)> = vec![
            (
                kernel(&[]),
                p2p(),
                "vpp-1",
                "client end's KERNEL mechanism has no inodeURL",
            ),
            (
                ok.clone(),
                p2p(),
                "much-too-long-name",
                "client end's host-side interface name",
            ),
            (ok.clone(), p2p(), "a b", "not a valid Linux interface name"),
            (ok.clone(), vlan, "vpp-1", "vlan_tag"),
            (
                ok.clone(),
                ConnectionContext {
                    mtu: Some(40),
                    ..p2p()
                },
                "vpp-1",
                "MTU 40",
            ),
            (
                Mechanism::new(MechanismClass::Local, "MEMIF"),
                p2p(),
                "vpp-1",
                "client end: MEMIF",
            ),
        ];
        for (mechanism, context, host, expected) in cases {
            let error = HostPlan::new(
                VWireId::new_random(),
                End::Client,
                &mechanism,
                &context,
                host,
                own,
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
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

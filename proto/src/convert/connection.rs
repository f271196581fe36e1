//! `connection` and `connectioncontext` wire types ↔ vWire domain types.

use nsm_domain::quote::quote;
use nsm_domain::vwire::{
    ConnectionContext, DnsConfig, EthernetContext, ExtraPrefixRequest, IpContext, IpFamily,
    IpNeighbor, Mechanism, MechanismClass, Path, PathSegment, PolicyRoute, Route,
};

use super::{ConversionError, labels_to_wire, time_from_wire, time_to_wire};
use crate::{connection as wire, connectioncontext as ctx};

/// Longest mechanism type or parameter value accepted.
const MAX_MECHANISM_TEXT: usize = 4096;

pub fn mechanism_from_wire(
    field: &str,
    mechanism: &wire::Mechanism,
) -> Result<Mechanism, ConversionError> {
    let cls = match mechanism.cls.as_str() {
        "LOCAL" => MechanismClass::Local,
        "REMOTE" => MechanismClass::Remote,
        other => {
            let problem = format!("cls {} must be LOCAL or REMOTE", quote(other));
            return Err(ConversionError::new(format!("{field}.cls"), problem));
        }
    };
    if mechanism.r#type.is_empty() || mechanism.r#type.len() > 64 {
        return Err(ConversionError::new(
            format!("{field}.type"),
            "must be 1-64 characters",
        ));
    }
    let oversized = mechanism
        .parameters
        .iter()
        .find(|(k, v)| k.len() > 256 || v.len() > MAX_MECHANISM_TEXT);
    if let Some((key, _)) = oversized {
        let problem = format!(
            "parameter {} exceeds 256 bytes of key or {MAX_MECHANISM_TEXT} of value",
            quote(key)
        );
        return Err(ConversionError::new(format!("{field}.parameters"), problem));
    }
    Ok(Mechanism {
        cls,
        mechanism_type: mechanism.r#type.clone(),
        parameters: mechanism
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

pub fn mechanism_to_wire(mechanism: &Mechanism) -> wire::Mechanism {
    wire::Mechanism {
        cls: match mechanism.cls {
            MechanismClass::Local => "LOCAL".into(),
            MechanismClass::Remote => "REMOTE".into(),
        },
        r#type: mechanism.mechanism_type.clone(),
        parameters: labels_to_wire(&mechanism.parameters),
    }
}

pub fn path_from_wire(field: &str, path: &wire::Path) -> Result<Path, ConversionError> {
    let segments = path
        .path_segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            let field = format!("{field}.path_segments[{i}]");
            let expires = segment
                .expires
                .as_ref()
                .map(|t| time_from_wire(&format!("{field}.expires"), t))
                .transpose()?;
            Ok(PathSegment {
                name: segment.name.clone(),
                id: segment.id.clone(),
                token: segment.token.clone(),
                expires,
                metrics: segment
                    .metrics
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, ConversionError>>()?;
    let path = Path {
        index: path.index,
        segments,
    };
    path.validate()
        .map_err(|e| ConversionError::invalid(format!("{field}.index"), e))?;
    Ok(path)
}

pub fn path_to_wire(path: &Path) -> wire::Path {
    wire::Path {
        index: path.index,
        path_segments: path
            .segments
            .iter()
            .map(|s| wire::PathSegment {
                name: s.name.clone(),
                id: s.id.clone(),
                token: s.token.clone(),
                expires: s.expires.map(time_to_wire),
                metrics: labels_to_wire(&s.metrics),
            })
            .collect(),
    }
}

fn route_from_wire(route: &ctx::Route) -> Route {
    Route {
        prefix: route.prefix.clone(),
        next_hop: route.next_hop.clone(),
    }
}

fn route_to_wire(route: &Route) -> ctx::Route {
    ctx::Route {
        prefix: route.prefix.clone(),
        next_hop: route.next_hop.clone(),
    }
}

fn family_from_wire(family: Option<&ctx::IpFamily>) -> IpFamily {
    match family.map(|f| f.family()) {
        Some(ctx::ip_family::Family::Ipv6) => IpFamily::Ipv6,
        _ => IpFamily::Ipv4,
    }
}

fn ip_from_wire(ip: &ctx::IpContext) -> IpContext {
    IpContext {
        src_ip_addrs: ip.src_ip_addrs.clone(),
        dst_ip_addrs: ip.dst_ip_addrs.clone(),
        src_ip_required: ip.src_ip_required,
        dst_ip_required: ip.dst_ip_required,
        src_routes: ip.src_routes.iter().map(route_from_wire).collect(),
        dst_routes: ip.dst_routes.iter().map(route_from_wire).collect(),
        excluded_prefixes: ip.excluded_prefixes.clone(),
        ip_neighbors: ip
            .ip_neighbors
            .iter()
            .map(|n| IpNeighbor {
                ip: n.ip.clone(),
                hardware_address: n.hardware_address.clone(),
            })
            .collect(),
        extra_prefix_request: ip
            .extra_prefix_request
            .iter()
            .map(|r| ExtraPrefixRequest {
                addr_family: family_from_wire(r.addr_family.as_ref()),
                prefix_len: r.prefix_len,
                required_number: r.required_number,
                requested_number: r.requested_number,
            })
            .collect(),
        extra_prefixes: ip.extra_prefixes.clone(),
        policies: ip
            .policies
            .iter()
            .map(|p| PolicyRoute {
                from: p.from.clone(),
                proto: p.proto.clone(),
                dst_port: p.dst_port.clone(),
                src_port: p.src_port.clone(),
                routes: p.routes.iter().map(route_from_wire).collect(),
            })
            .collect(),
    }
}

fn ip_to_wire(ip: &IpContext) -> ctx::IpContext {
    ctx::IpContext {
        src_ip_addrs: ip.src_ip_addrs.clone(),
        dst_ip_addrs: ip.dst_ip_addrs.clone(),
        src_ip_required: ip.src_ip_required,
        dst_ip_required: ip.dst_ip_required,
        src_routes: ip.src_routes.iter().map(route_to_wire).collect(),
        dst_routes: ip.dst_routes.iter().map(route_to_wire).collect(),
        excluded_prefixes: ip.excluded_prefixes.clone(),
        ip_neighbors: ip
            .ip_neighbors
            .iter()
            .map(|n| ctx::IpNeighbor {
                ip: n.ip.clone(),
                hardware_address: n.hardware_address.clone(),
            })
            .collect(),
        extra_prefix_request: ip
            .extra_prefix_request
            .iter()
            .map(|r| ctx::ExtraPrefixRequest {
                addr_family: Some(ctx::IpFamily {
                    family: match r.addr_family {
                        IpFamily::Ipv4 => ctx::ip_family::Family::Ipv4,
                        IpFamily::Ipv6 => ctx::ip_family::Family::Ipv6,
                    } as i32,
                }),
                prefix_len: r.prefix_len,
                required_number: r.required_number,
                requested_number: r.requested_number,
            })
            .collect(),
        extra_prefixes: ip.extra_prefixes.clone(),
        policies: ip
            .policies
            .iter()
            .map(|p| ctx::PolicyRoute {
                from: p.from.clone(),
                proto: p.proto.clone(),
                dst_port: p.dst_port.clone(),
                src_port: p.src_port.clone(),
                routes: p.routes.iter().map(route_to_wire).collect(),
            })
            .collect(),
    }
}

/// A connection context from the wire, with its IP context validated (addresses, prefixes,
/// neighbours, extra prefix requests).
pub fn context_from_wire(
    field: &str,
    context: &ctx::ConnectionContext,
) -> Result<ConnectionContext, ConversionError> {
    let ip = context
        .ip_context
        .as_ref()
        .map(ip_from_wire)
        .unwrap_or_default();
    ip.validate()
        .map_err(|e| ConversionError::invalid(format!("{field}.ip_context"), e))?;
    let dns = context.dns_context.as_ref().map_or_else(Vec::new, |d| {
        d.configs
            .iter()
            .map(|c| DnsConfig {
                dns_server_ips: c.dns_server_ips.clone(),
                search_domains: c.search_domains.clone(),
            })
            .collect()
    });
    let ethernet = context
        .ethernet_context
        .as_ref()
        .map_or_else(EthernetContext::default, |e| EthernetContext {
            src_mac: e.src_mac.clone(),
            dst_mac: e.dst_mac.clone(),
            vlan_tag: e.vlan_tag,
        });
    Ok(ConnectionContext {
        ip,
        dns,
        ethernet,
        mtu: (context.mtu != 0).then_some(context.mtu),
        extra: context
            .extra_context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

pub fn context_to_wire(context: &ConnectionContext) -> ctx::ConnectionContext {
    let empty_ethernet = context.ethernet == EthernetContext::default();
    ctx::ConnectionContext {
        ip_context: Some(ip_to_wire(&context.ip)),
        dns_context: (!context.dns.is_empty()).then(|| ctx::DnsContext {
            configs: context
                .dns
                .iter()
                .map(|c| ctx::DnsConfig {
                    dns_server_ips: c.dns_server_ips.clone(),
                    search_domains: c.search_domains.clone(),
                })
                .collect(),
        }),
        ethernet_context: (!empty_ethernet).then(|| ctx::EthernetContext {
            src_mac: context.ethernet.src_mac.clone(),
            dst_mac: context.ethernet.dst_mac.clone(),
            vlan_tag: context.ethernet.vlan_tag,
        }),
        extra_context: labels_to_wire(&context.extra),
        mtu: context.mtu.unwrap_or(0),
    }
}

//! Domain types of a vWire: what a client asked for and what it was connected to. They
//! mirror Network Service Mesh's `Connection` and `ConnectionContext` but are validated:
//! a value of these types is always well-formed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::LifecycleError;
use crate::envelope::StreamId;
use crate::registry::MAX_NAME_LEN;

/// Prefix of every vWire stream id in the log.
pub const VWIRE_STREAM_PREFIX: &str = crate::envelope::StreamKind::VWire.prefix();

/// The id of a vWire (a UUID); its stream in the log is `vwire-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VWireId(pub Uuid);

impl VWireId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn stream(&self) -> StreamId {
        StreamId::new(format!("{VWIRE_STREAM_PREFIX}{}", self.0.hyphenated()))
            .expect("a uuid makes a valid stream id")
    }

    /// The vWire a stream belongs to, if it is a vWire stream.
    pub fn from_stream(stream: &StreamId) -> Option<Self> {
        let id = stream.as_str().strip_prefix(VWIRE_STREAM_PREFIX)?;
        Uuid::parse_str(id).ok().map(Self)
    }
}

impl fmt::Display for VWireId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for VWireId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

fn invalid(message: String) -> LifecycleError {
    LifecycleError::Invalid(message)
}

use crate::quote::quote;

/// A Network Service name: `name` or `name@domain`, DNS-like characters only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn new(name: impl Into<String>) -> Result<Self, LifecycleError> {
        let name = name.into();
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@');
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
            return Err(invalid(format!(
                "network service name {} must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9._@-]",
                quote(&name)
            )));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = LifecycleError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ServiceName> for String {
    fn from(value: ServiceName) -> Self {
        value.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SPIFFE ID (`spiffe://trust-domain/path`): who a client or endpoint is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpiffeId(String);

impl SpiffeId {
    pub fn new(id: impl Into<String>) -> Result<Self, LifecycleError> {
        let id = id.into();
        let rest = id.strip_prefix("spiffe://").unwrap_or_default();
        let domain = rest.split('/').next().unwrap_or_default();
        let domain_ok = !domain.is_empty()
            && domain.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_')
            });
        let path_ok = rest[domain.len()..]
            .split('/')
            .skip(1)
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
        if id.len() > 2048 || !domain_ok || !path_ok {
            return Err(invalid(format!(
                "{} is not a SPIFFE ID (spiffe://<trust domain>/<path>)",
                quote(&id)
            )));
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SpiffeId {
    type Error = LifecycleError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<SpiffeId> for String {
    fn from(value: SpiffeId) -> Self {
        value.0
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Labels of a request or an endpoint (they drive endpoint selection).
pub type Labels = BTreeMap<String, String>;

/// Whether a mechanism attaches a workload on this node or reaches another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MechanismClass {
    Local,
    Remote,
}

/// How one end of a vWire is attached: NSM's `connection.Mechanism`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mechanism {
    pub cls: MechanismClass,
    /// `KERNEL`, `MEMIF`, `VXLAN`, `WIREGUARD`, ... (NSM's type strings).
    #[serde(rename = "type")]
    pub mechanism_type: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

impl Mechanism {
    pub fn new(cls: MechanismClass, mechanism_type: &str) -> Self {
        Self {
            cls,
            mechanism_type: mechanism_type.to_owned(),
            parameters: BTreeMap::new(),
        }
    }
}

/// One hop of a vWire's path: NSM's `connection.PathSegment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSegment {
    pub name: String,
    /// The connection id at that hop.
    pub id: String,
    #[serde(default)]
    pub token: String,
    #[serde(default, deserialize_with = "crate::timestamp::utc_option")]
    pub expires: Option<DateTime<Utc>>,
    /// Per-hop metrics (`client_rx_bytes`, `server_interface`, ...).
    #[serde(default)]
    pub metrics: BTreeMap<String, String>,
}

/// The hops of a vWire and which one is the current: NSM's `connection.Path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Path {
    pub index: u32,
    pub segments: Vec<PathSegment>,
}

impl Path {
    pub fn validate(&self) -> Result<(), LifecycleError> {
        if !self.segments.is_empty() && self.index as usize >= self.segments.len() {
            return Err(invalid(format!(
                "path index {} is outside its {} segments",
                self.index,
                self.segments.len()
            )));
        }
        Ok(())
    }
}

/// A route: `prefix` reached through `next_hop` (empty: the other end's address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub prefix: String,
    #[serde(default)]
    pub next_hop: String,
}

/// A static neighbour entry: NSM's `IpNeighbor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpNeighbor {
    pub ip: String,
    #[serde(default)]
    pub hardware_address: String,
}

/// An address family, as NSM's `IpFamily.Family`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum IpFamily {
    #[default]
    Ipv4,
    Ipv6,
}

/// A request for extra prefixes (vL3): NSM's `ExtraPrefixRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraPrefixRequest {
    pub addr_family: IpFamily,
    pub prefix_len: u32,
    pub required_number: u32,
    pub requested_number: u32,
}

/// Policy-based routing for matching traffic: NSM's `PolicyRoute`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRoute {
    /// Source IP, or empty for all of the vWire's addresses.
    #[serde(default)]
    pub from: String,
    /// IP protocol number, as a string (NSM's type since API v1.3.0).
    #[serde(default)]
    pub proto: String,
    #[serde(default)]
    pub dst_port: String,
    #[serde(default)]
    pub src_port: String,
    /// Empty means a default route for matching traffic.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// Addresses, routes and policies of both ends: NSM's `IPContext`, every field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpContext {
    #[serde(default)]
    pub src_ip_addrs: Vec<String>,
    #[serde(default)]
    pub dst_ip_addrs: Vec<String>,
    #[serde(default)]
    pub src_ip_required: bool,
    #[serde(default)]
    pub dst_ip_required: bool,
    #[serde(default)]
    pub src_routes: Vec<Route>,
    #[serde(default)]
    pub dst_routes: Vec<Route>,
    #[serde(default)]
    pub excluded_prefixes: Vec<String>,
    #[serde(default)]
    pub ip_neighbors: Vec<IpNeighbor>,
    #[serde(default)]
    pub extra_prefix_request: Vec<ExtraPrefixRequest>,
    #[serde(default)]
    pub extra_prefixes: Vec<String>,
    #[serde(default)]
    pub policies: Vec<PolicyRoute>,
}

/// Parses `addr/len`, checking the length against the address family.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), LifecycleError> {
    let bad = || {
        invalid(format!(
            "{} is not an address with a prefix length (addr/len)",
            quote(text)
        ))
    };
    let (addr, len) = text.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok((addr, len))
}

impl IpContext {
    pub fn validate(&self) -> Result<(), LifecycleError> {
        let addresses = self.src_ip_addrs.iter().chain(&self.dst_ip_addrs);
        let prefixes = self.excluded_prefixes.iter();
        let routes = self.src_routes.iter().chain(&self.dst_routes);
        for cidr in addresses.chain(prefixes).chain(routes.map(|r| &r.prefix)) {
            parse_cidr(cidr)?;
        }
        for route in self.src_routes.iter().chain(&self.dst_routes) {
            if !route.next_hop.is_empty() && route.next_hop.parse::<IpAddr>().is_err() {
                return Err(invalid(format!(
                    "next hop {} is not an IP address",
                    quote(&route.next_hop)
                )));
            }
        }
        for prefix in &self.extra_prefixes {
            parse_cidr(prefix)?;
        }
        for neighbor in &self.ip_neighbors {
            if neighbor.ip.parse::<IpAddr>().is_err() {
                return Err(invalid(format!(
                    "neighbor {} is not an IP address",
                    quote(&neighbor.ip)
                )));
            }
        }
        for policy in &self.policies {
            for route in &policy.routes {
                parse_cidr(&route.prefix)?;
            }
        }
        for request in &self.extra_prefix_request {
            let max = match request.addr_family {
                IpFamily::Ipv4 => 32,
                IpFamily::Ipv6 => 128,
            };
            let counts_ok =
                request.required_number >= 1 && request.requested_number >= request.required_number;
            if !counts_ok || request.prefix_len < 1 || request.prefix_len > max {
                return Err(invalid(format!(
                    "extra prefix request {request:?} needs 1 <= required <= requested and a prefix length of 1-{max}"
                )));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for cidr in self.src_ip_addrs.iter().chain(&self.dst_ip_addrs) {
            let (addr, _) = parse_cidr(cidr)?;
            if !seen.insert(addr) {
                return Err(invalid(format!(
                    "address {addr} is given to both ends or twice"
                )));
            }
        }
        Ok(())
    }
}

/// DNS servers for some (or all) domains: NSM's `DNSConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    #[serde(default)]
    pub dns_server_ips: Vec<String>,
    /// Empty means all domains.
    #[serde(default)]
    pub search_domains: Vec<String>,
}

/// Layer-2 details: NSM's `EthernetContext`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EthernetContext {
    #[serde(default)]
    pub src_mac: String,
    #[serde(default)]
    pub dst_mac: String,
    #[serde(default)]
    pub vlan_tag: i32,
}

/// What the endpoint side set for the vWire: NSM's `ConnectionContext`, every field, so a
/// connection read back from the log is the one the endpoint returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionContext {
    #[serde(default)]
    pub ip: IpContext,
    #[serde(default)]
    pub dns: Vec<DnsConfig>,
    #[serde(default)]
    pub ethernet: EthernetContext,
    /// MTU of the vWire's interfaces; `None` (0 on the wire) leaves the data plane's default.
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// The endpoint (NSE) a vWire is connected to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRef {
    pub name: String,
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_quote_huge_input_briefly() {
        let huge = "a".repeat(100_000);
        let bad_chars = format!("{}!", &huge[1..]);
        let refusals = [
            ServiceName::new(huge.clone()).unwrap_err(),
            ServiceName::new(bad_chars).unwrap_err(),
            SpiffeId::new(huge.clone()).unwrap_err(),
            parse_cidr(&huge).unwrap_err(),
        ];
        for refusal in refusals {
            let message = refusal.to_string();
            assert!(message.len() < 300, "{message}");
            assert!(message.contains("…\" (100000 bytes)"), "{message}");
        }
        let context = IpContext {
            ip_neighbors: vec![IpNeighbor {
                ip: huge.clone(),
                hardware_address: String::new(),
            }],
            ..Default::default()
        };
        assert!(context.validate().unwrap_err().to_string().len() < 300);
    }
}

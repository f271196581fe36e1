//! The input document of one authorization: plain facts about one call, established by the
//! caller of this crate before it asks. The policies see exactly this structure as `input`
//! (field names below are the Rego names).
//!
//! Trust boundary: nsm-policy does no cryptography and reads no certificate. It trusts every
//! fact given here. The gRPC adapter that calls [`crate::Policies::authorize`] must compute
//! them:
//! - `caller` / `server` from the verified TLS peer certificate's URI SAN, never from anything
//!   the peer wrote into the message;
//! - each [`TokenFacts`] by decoding the segment's JWT and verifying its ES256 signature
//!   against the public key of the peer certificate (`signed_by_caller` server side,
//!   `signed_by_server` client side); a signature that was not checked is `false`;
//! - `now` from the wall clock; `resource.registered_by` and `monitor.connections` from the
//!   node's own registry and connection state.
//!
//! No token text is part of the input, so no policy message can leak one.

use serde::{Deserialize, Serialize};

/// Everything the policies know about one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// Which gRPC call is authorized.
    pub call: Call,
    /// Whether this hop authorizes an incoming call (server) or the reply of its own call
    /// (client).
    pub side: Side,
    /// Server side: the caller's SPIFFE ID, from its TLS certificate. `None` on the client side.
    pub caller: Option<String>,
    /// Client side: the SPIFFE ID of the server that was called, from its TLS certificate.
    /// `None` on the server side.
    pub server: Option<String>,
    /// The path the call carries (request path server side, reply path client side).
    pub path: Path,
    /// The current time in unix seconds.
    pub now: i64,
    /// The Network Service asked for, when the call names one.
    pub service: Option<String>,
    /// Registry Register and Unregister: the NSE or NS that is changed.
    pub resource: Option<Resource>,
    /// MonitorConnections: the connections the caller's scope selects.
    pub monitor: Option<MonitorScope>,
}

/// The gRPC calls that are authorized. Serialized with their gRPC service and method names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Call {
    /// `networkservice.NetworkService/Request`: create or refresh a connection.
    #[serde(rename = "networkservice.Request")]
    Request,
    /// `networkservice.NetworkService/Close`.
    #[serde(rename = "networkservice.Close")]
    Close,
    /// A registry Register (of an NSE or an NS).
    #[serde(rename = "registry.Register")]
    RegistryRegister,
    /// A registry Unregister (of an NSE or an NS).
    #[serde(rename = "registry.Unregister")]
    RegistryUnregister,
    /// A registry Find.
    #[serde(rename = "registry.Find")]
    RegistryFind,
    /// `connection.MonitorConnection/MonitorConnections`.
    #[serde(rename = "connection.MonitorConnections")]
    MonitorConnections,
}

impl Call {
    /// The gRPC name, as the policies see it in `input.call`.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Request => "networkservice.Request",
            Call::Close => "networkservice.Close",
            Call::RegistryRegister => "registry.Register",
            Call::RegistryUnregister => "registry.Unregister",
            Call::RegistryFind => "registry.Find",
            Call::MonitorConnections => "connection.MonitorConnections",
        }
    }
}

/// Which end of a call authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// A node or endpoint authorizing an incoming call.
    Server,
    /// A hop authorizing the reply of a call it made.
    Client,
}

/// A path: its segments and the index of the segment of the hop that authorizes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Path {
    /// Index of this hop's own segment (NSM's `path.index` after this hop updated the path).
    /// Server side, this hop has already written and signed its own segment.
    pub index: u32,
    /// Segments from the client (0) towards the endpoint.
    pub segments: Vec<Segment>,
}

/// One hop's segment of a path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Segment {
    /// The hop's name.
    pub name: String,
    /// The connection id this hop uses.
    pub id: String,
    /// What is known about the segment's token.
    pub token: TokenFacts,
}

/// Facts about one segment's JWT, established by the caller of this crate (see the module
/// header for who computes what). `Default` is "no token".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenFacts {
    /// The segment carries a token at all.
    pub present: bool,
    /// The token is a well-formed JWT whose claims could be read.
    pub decoded: bool,
    /// The `sub` claim: the SPIFFE ID of the hop that wrote the token.
    pub sub: Option<String>,
    /// The `aud` claim (a single string audience is given as a one-element list).
    pub aud: Vec<String>,
    /// The `exp` claim, unix seconds.
    pub exp: Option<i64>,
    /// The signature verifies against the public key of the caller's TLS certificate.
    pub signed_by_caller: bool,
    /// The signature verifies against the public key of the called server's TLS certificate.
    pub signed_by_server: bool,
}

/// A registry resource that a Register or Unregister changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Endpoint or service.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// The caller SPIFFE ID it was first registered with, or `None` when it is new.
    pub registered_by: Option<String>,
}

/// The kinds of registry resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// A Network Service Endpoint.
    Nse,
    /// A Network Service.
    Ns,
}

/// The connections a MonitorConnections scope selects, with who owns them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MonitorScope {
    /// Every connection the scope selects.
    pub connections: Vec<SelectedConnection>,
}

/// One connection a monitor scope selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedConnection {
    /// The connection id.
    pub id: String,
    /// The caller owns it (it is the client of the connection, or a hop on its path).
    pub owned_by_caller: bool,
}

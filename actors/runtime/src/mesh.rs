//! What a vWire needs to reach the rest of the mesh: the registry (to discover endpoints),
//! the next hop (to forward Request and Close), the forwarder (to plumb), this node's name
//! (its path segments carry it), and whether datapaths are probed. A node without a [`Mesh`] only records lifecycles;
//! the tests of the core run that way.

use std::sync::Arc;
use std::time::Duration;

use nsm_domain::vwire::{ConnectionContext, VWireRequest};

use crate::forwarder::Forwarder;
use crate::next_hop::NextHop;
use crate::registry::RegistryHandle;

/// NSM's request timeout for a hop (cmd-nsc `NSM_REQUEST_TIMEOUT`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The node's view of the mesh, shared by every vWire.
#[derive(Debug, Clone)]
pub struct Mesh {
    /// This node's name: the `name` of its path segments.
    pub node: String,
    pub registry: RegistryHandle,
    pub next_hop: Arc<dyn NextHop>,
    pub forwarder: Forwarder,
    /// How long an endpoint has to answer one Request or Close.
    pub request_timeout: Duration,
    /// Probe every established vWire's datapath this way; `None`: no probes.
    pub liveness: Option<LivenessConfig>,
}

/// The datapath liveness probe (NSM's heal liveness check): every `interval`, ICMP from the
/// client's end to the endpoint's addresses; no reply within `timeout` re-plumbs the vWire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessConfig {
    pub interval: Duration,
    pub timeout: Duration,
}

/// A client's Request as the vWire takes it: a new vWire, or a refresh of an established one.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// Service, labels, client, mechanism preferences, the path with this node's segment at
    /// `path.index`, and the lifetime (the deadline is now + lifetime).
    pub request: VWireRequest,
    /// The context the client asked for (excluded prefixes, requested addresses), passed
    /// on to the endpoint, which decides the vWire's context.
    pub requested_context: ConnectionContext,
    /// The vWire id was minted for this request (not taken from the caller's path), so the
    /// vWire has no history to read.
    pub fresh_id: bool,
}

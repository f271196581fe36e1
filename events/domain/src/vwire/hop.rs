//! What one hop of a vWire says to the next, in domain terms: the Request it forwards, the
//! Close it sends, the endpoint's answer, and the status a refusing peer gave. The wire
//! (`nsm-proto`) turns these into NSM's `NetworkServiceRequest` and `Connection` and back;
//! the runtime never sees protobuf.

use std::fmt;

use super::model::{ConnectionContext, Labels, Mechanism, Path, ServiceName};
use super::state::{Status, VWire};
use crate::registry::Payload;

/// The vWire as this hop describes it to the next (NSM's `connection.Connection`).
#[derive(Debug, Clone, PartialEq)]
pub struct HopConnection {
    /// The vWire id (this hop's path segment id).
    pub id: String,
    pub service: ServiceName,
    /// The mechanism of the receiving end, once there is one.
    pub mechanism: Option<Mechanism>,
    pub context: Option<ConnectionContext>,
    pub labels: Labels,
    /// The path, with this hop's index.
    pub path: Path,
    /// The endpoint's name, once one is chosen.
    pub endpoint_name: String,
    /// What the vWire carries, once its Network Service was selected (NSM's
    /// `Connection.payload`); `None` says nothing (empty on the wire).
    pub payload: Option<Payload>,
    /// Whether the vWire is up (established) or down (anything else).
    pub up: bool,
}

/// Which end of the vWire a [`HopConnection`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// As the client sees it: the client's mechanism.
    Client,
    /// As the endpoint sees it: the endpoint's mechanism (for a Close forwarded to it).
    Endpoint,
}

impl HopConnection {
    /// `vwire` at this node's hop, as `side` sees it. A vWire that is not established is
    /// down.
    pub fn of(vwire: &VWire, side: Side) -> Self {
        let mechanism = match (side, &vwire.plumbing, &vwire.connection) {
            (Side::Endpoint, Some(plumbing), _) => Some(plumbing.endpoint_mechanism.clone()),
            (_, _, Some(connection)) => Some(connection.mechanism.clone()),
            _ => None,
        };
        HopConnection {
            id: vwire.id.to_string(),
            service: vwire.service.clone(),
            mechanism,
            context: vwire.connection.as_ref().map(|c| c.context.clone()),
            labels: vwire.labels.clone(),
            path: vwire.path.clone(),
            endpoint_name: vwire
                .connection
                .as_ref()
                .map(|c| c.endpoint.name.clone())
                .unwrap_or_default(),
            payload: vwire.connection.as_ref().map(|c| c.payload),
            up: vwire.status == Status::Established,
        }
    }
}

/// A Request forwarded to the next hop: the connection, and the mechanisms this hop can
/// attach the next hop's end with, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct HopRequest {
    pub connection: HopConnection,
    pub mechanism_preferences: Vec<Mechanism>,
}

/// What the next hop answered a Request with, read and checked field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct HopReply {
    /// The mechanism it chose for its end.
    pub mechanism: Mechanism,
    pub context: ConnectionContext,
    pub path: Path,
}

/// The canonical status codes a peer answers with (gRPC's, which NSM's peers use). The
/// names are gRPC's, so a code prints as the peer's own library prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Ok,
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

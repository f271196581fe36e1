//! A vWire's state as NSM's `connection.Connection`: what MonitorConnections shows, what a
//! Request returns, and what a Close tells the endpoint.

use nsm_domain::vwire::{Status, VWire};

use super::{context_to_wire, labels_to_wire, mechanism_to_wire, path_to_wire};
use crate::connection as wire;

/// Which end of the vWire the connection describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// As the client sees it: the client's mechanism.
    Client,
    /// As the endpoint sees it: the endpoint's mechanism (for a Close forwarded to it).
    Endpoint,
}

/// The vWire at this node's hop: `id` is the vWire id (this hop's path segment id) and the
/// path's index is this hop's. A vWire that is not established reads as `DOWN`.
pub fn vwire_to_wire(vwire: &VWire, side: Side) -> wire::Connection {
    let mechanism = match (side, &vwire.plumbing, &vwire.connection) {
        (Side::Endpoint, Some(plumbing), _) => Some(&plumbing.endpoint_mechanism),
        (_, _, Some(connection)) => Some(&connection.mechanism),
        _ => None,
    };
    let state = match vwire.status {
        Status::Established => wire::State::Up,
        _ => wire::State::Down,
    };
    wire::Connection {
        id: vwire.id.to_string(),
        network_service: vwire.service.to_string(),
        mechanism: mechanism.map(mechanism_to_wire),
        context: vwire
            .connection
            .as_ref()
            .map(|c| context_to_wire(&c.context)),
        labels: labels_to_wire(&vwire.labels),
        path: Some(path_to_wire(&vwire.path)),
        network_service_endpoint_name: vwire
            .connection
            .as_ref()
            .map(|c| c.endpoint.name.clone())
            .unwrap_or_default(),
        payload: String::new(),
        state: state.into(),
    }
}

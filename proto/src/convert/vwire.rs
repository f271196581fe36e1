//! A vWire at one hop as NSM's `connection.Connection`: what MonitorConnections shows, what a
//! Request returns, what a Close tells the endpoint, and what this node forwards to the next
//! hop and reads back from it.

use nsm_domain::vwire::{HopConnection, HopReply, HopRequest, VWire};

pub use nsm_domain::vwire::Side;

use super::{
    context_from_wire, context_to_wire, labels_to_wire, mechanism_from_wire, mechanism_to_wire,
    path_from_wire, path_to_wire,
};
use crate::connection as wire;
use crate::networkservice::NetworkServiceRequest;

/// The vWire at this node's hop: `id` is the vWire id (this hop's path segment id) and the
/// path's index is this hop's. A vWire that is not established reads as `DOWN`.
pub fn vwire_to_wire(vwire: &VWire, side: Side) -> wire::Connection {
    hop_to_wire(&HopConnection::of(vwire, side))
}

/// A connection as one hop describes it to the next.
pub fn hop_to_wire(hop: &HopConnection) -> wire::Connection {
    let state = if hop.up {
        wire::State::Up
    } else {
        wire::State::Down
    };
    wire::Connection {
        id: hop.id.clone(),
        network_service: hop.service.to_string(),
        mechanism: hop.mechanism.as_ref().map(mechanism_to_wire),
        context: hop.context.as_ref().map(context_to_wire),
        labels: labels_to_wire(&hop.labels),
        path: Some(path_to_wire(&hop.path)),
        network_service_endpoint_name: hop.endpoint_name.clone(),
        payload: hop
            .payload
            .map(|payload| payload.as_str().to_owned())
            .unwrap_or_default(),
        state: state.into(),
    }
}

/// A Request forwarded to the next hop.
pub fn hop_request_to_wire(request: &HopRequest) -> NetworkServiceRequest {
    NetworkServiceRequest {
        connection: Some(hop_to_wire(&request.connection)),
        mechanism_preferences: request
            .mechanism_preferences
            .iter()
            .map(mechanism_to_wire)
            .collect(),
    }
}

/// The next hop's answer to a Request: a chosen mechanism, a valid context and a path; what
/// is wrong with it otherwise, naming the field.
pub fn hop_reply_from_wire(reply: wire::Connection) -> Result<HopReply, String> {
    let mechanism = reply.mechanism.as_ref().ok_or("it chose no mechanism")?;
    let mechanism = mechanism_from_wire("mechanism", mechanism).map_err(|e| e.to_string())?;
    let context = context_from_wire("context", &reply.context.unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let path =
        path_from_wire("path", &reply.path.unwrap_or_default()).map_err(|e| e.to_string())?;
    Ok(HopReply {
        mechanism,
        context,
        path,
    })
}

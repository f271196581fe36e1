//! This node's place in a connection's path: NSM's `updatepath` for a hop named after the
//! node (`nsm-api.md` §8), and the vWire id that place gives.
//!
//! The node's path segment id *is* the vWire id, so a refresh, which carries back the path
//! the node returned, finds its vWire without any lookup table, and the mapping survives
//! restarts. An id belonging to an ended vWire is replaced by a fresh one ([`Hop::renew`]):
//! ended streams are never reopened.

use chrono::{DateTime, Utc};
use nsm_domain::quote::quote;
use nsm_domain::vwire::{Path, PathSegment, VWireId};
use nsm_proto::connection::Connection;
use nsm_proto::convert::path_from_wire;
use tonic::Status;

/// Where this node sits in a request's path.
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    /// The path with this node's segment at `path.index`.
    pub(crate) path: Path,
    pub(crate) vwire: VWireId,
    /// Whether the id came from the request (a refresh, or a retry) rather than minted.
    pub(crate) reused: bool,
    /// The caller's index and connection id, restored in the reply (as NSM does).
    pub(crate) caller_index: u32,
    pub(crate) caller_id: String,
}

impl Hop {
    /// NSM's `updatepath` for a Request arriving at node `node`.
    pub(crate) fn enter(node: &str, connection: &Connection) -> Result<Self, Status> {
        let wire_path = connection.path.clone().unwrap_or_default();
        let mut path = path_from_wire("connection.path", &wire_path)?;
        if path.segments.is_empty() {
            // The caller ran no updatepath: this node is the first hop.
            let (vwire, reused) = parse_or_mint(&connection.id);
            path.segments.push(own_segment(node, vwire));
            return Ok(Self {
                path,
                vwire,
                reused,
                caller_index: 0,
                caller_id: vwire.to_string(),
            });
        }
        let index = path.index as usize;
        if path.segments[index].name == node {
            // The caller is this node's own first-hop segment (see above).
            let (vwire, reused) = parse_or_mint(&path.segments[index].id);
            path.segments[index].id = vwire.to_string();
            return Ok(Self {
                path,
                vwire,
                reused,
                caller_index: path_index(index),
                caller_id: vwire.to_string(),
            });
        }
        if path.segments[index].id != connection.id {
            return Err(Status::invalid_argument(format!(
                "connection.id {} is not the id of the caller's path segment {index} ({})",
                quote(&connection.id),
                quote(&path.segments[index].id)
            )));
        }
        let own = index + 1;
        let (vwire, reused) = match path.segments.get(own) {
            Some(segment) if segment.name == node => parse_or_mint(&segment.id),
            _ => (VWireId::new_random(), false),
        };
        match path.segments.get_mut(own) {
            Some(segment) if segment.name == node => segment.id = vwire.to_string(),
            Some(segment) => *segment = own_segment(node, vwire),
            None => path.segments.push(own_segment(node, vwire)),
        }
        path.index = path_index(own);
        Ok(Self {
            path,
            vwire,
            reused,
            caller_index: path_index(index),
            caller_id: connection.id.clone(),
        })
    }

    /// The vWire a Close names, if the path holds this node's segment where NSM puts it.
    pub(crate) fn find(node: &str, connection: &Connection) -> Option<VWireId> {
        let path = connection.path.as_ref()?;
        let index = path.index as usize;
        [index, index + 1]
            .into_iter()
            .filter_map(|i| path.path_segments.get(i))
            .find(|segment| segment.name == node)
            .and_then(|segment| segment.id.parse().ok())
    }

    /// Gives this hop a fresh vWire id (the one it had belongs to an ended vWire).
    pub(crate) fn renew(&mut self) {
        self.vwire = VWireId::new_random();
        self.reused = false;
        let own = self.path.index as usize;
        self.path.segments[own].id = self.vwire.to_string();
        if own == self.caller_index as usize {
            self.caller_id = self.vwire.to_string();
        }
    }

    /// The expiry the caller put on its own segment, if any.
    pub(crate) fn caller_expires(&self) -> Option<DateTime<Utc>> {
        let own = self.path.index as usize;
        if own == self.caller_index as usize {
            return None;
        }
        self.path.segments[self.caller_index as usize].expires
    }
}

fn own_segment(node: &str, vwire: VWireId) -> PathSegment {
    PathSegment {
        name: node.to_owned(),
        id: vwire.to_string(),
        token: String::new(),
        expires: None,
        metrics: Default::default(),
    }
}

/// An id the node minted earlier parses as a UUID; anything else gets a new one.
fn parse_or_mint(id: &str) -> (VWireId, bool) {
    match id.parse::<VWireId>() {
        Ok(vwire) => (vwire, true),
        Err(_) => (VWireId::new_random(), false),
    }
}

fn path_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use nsm_proto::connection::{Path as WirePath, PathSegment as WireSegment};

    use super::*;

    fn connection(id: &str, index: u32, segments: &[(&str, &str)]) -> Connection {
        Connection {
            id: id.into(),
            path: Some(WirePath {
                index,
                path_segments: segments
                    .iter()
                    .map(|(name, id)| WireSegment {
                        name: (*name).into(),
                        id: (*id).into(),
                        ..Default::default()
                    })
                    .collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_first_request_appends_this_nodes_segment_with_a_new_id() {
        let hop = Hop::enter("node-a", &connection("c1", 0, &[("nsc", "c1")])).unwrap();
        assert_eq!(hop.path.index, 1);
        assert_eq!(hop.path.segments.len(), 2);
        assert_eq!(hop.path.segments[1].name, "node-a");
        assert_eq!(hop.path.segments[1].id, hop.vwire.to_string());
        assert!(!hop.reused);
        assert_eq!((hop.caller_index, hop.caller_id.as_str()), (0, "c1"));
    }

    #[test]
    fn a_refresh_finds_the_same_vwire_through_the_returned_path() {
        let first = Hop::enter("node-a", &connection("c1", 0, &[("nsc", "c1")])).unwrap();
        let own = first.vwire.to_string();
        let returned = connection("c1", 0, &[("nsc", "c1"), ("node-a", &own), ("nse", "e")]);
        let again = Hop::enter("node-a", &returned).unwrap();
        assert_eq!(again.vwire, first.vwire);
        assert!(again.reused);
        assert_eq!(
            again.path.segments.len(),
            3,
            "the endpoint's segment is kept"
        );
    }

    #[test]
    fn a_foreign_segment_at_this_hop_is_replaced_but_later_ones_kept() {
        let request = connection("c1", 0, &[("nsc", "c1"), ("other-node", "x"), ("nse", "e")]);
        let hop = Hop::enter("node-a", &request).unwrap();
        assert_eq!(hop.path.segments[1].name, "node-a");
        assert_eq!(hop.path.segments[2].name, "nse");
        assert!(!hop.reused);
    }

    #[test]
    fn an_id_that_is_not_the_callers_segment_id_is_refused() {
        let error = Hop::enter("node-a", &connection("zzz", 0, &[("nsc", "c1")])).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().contains("caller's path segment 0"));
    }

    #[test]
    fn a_huge_id_is_quoted_briefly() {
        let huge = "i".repeat(100_000);
        let error =
            Hop::enter("node-a", &connection(&huge, 0, &[("nsc", &huge[1..])])).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().len() < 400, "{}", error.message());
        assert!(
            error.message().contains("(100000 bytes)"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn an_empty_path_makes_this_node_the_first_hop() {
        let id = VWireId::new_random().to_string();
        let hop = Hop::enter("node-a", &connection(&id, 0, &[])).unwrap();
        assert_eq!(hop.vwire.to_string(), id);
        assert!(hop.reused);
        assert_eq!((hop.path.index, hop.caller_index), (0, 0));
    }

    #[test]
    fn renew_replaces_an_ended_id_everywhere_it_appears() {
        let own = VWireId::new_random().to_string();
        let request = connection("c1", 0, &[("nsc", "c1"), ("node-a", &own)]);
        let mut hop = Hop::enter("node-a", &request).unwrap();
        hop.renew();
        assert_ne!(hop.vwire.to_string(), own);
        assert_eq!(hop.path.segments[1].id, hop.vwire.to_string());
        assert_eq!(hop.caller_id, "c1");
    }

    #[test]
    fn close_finds_this_nodes_segment_after_the_callers() {
        let own = VWireId::new_random();
        let closing = connection("c1", 0, &[("nsc", "c1"), ("node-a", &own.to_string())]);
        assert_eq!(Hop::find("node-a", &closing), Some(own));
        assert_eq!(Hop::find("node-b", &closing), None);
    }
}

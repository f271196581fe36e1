//! How the VPP forwarder marks what it made: every VPP interface of a vWire carries a tag
//! (`sw_interface_tag_add_del`, at most 63 bytes, `vppctl show interface` does not show it,
//! `sw_interface_dump` does) naming the node, the vWire and the end:
//!
//! ```text
//! nsm-rs:1f2e3d4c:6f0c4b3e-0d7e-4c6b-9f5e-2b7f1f7a9c10:client
//! ```
//!
//! The node appears as 8 hex digits of a hash of its name, so that the longest node name
//! still fits VPP's 64 bytes. Reconcile touches only interfaces whose tag names this node.

use std::fmt;

use nsm_domain::vwire::VWireId;

use crate::contract::End;

const PREFIX: &str = "nsm-rs";

/// The tag of one of a vWire's VPP interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct VppTag {
    pub(crate) node: u32,
    pub(crate) vwire: VWireId,
    pub(crate) end: End,
}

/// The 32-bit digest a node's name appears as in tags.
pub(crate) fn node_digest(node: &str) -> u32 {
    let hash = node.bytes().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash.max(1)
}

impl VppTag {
    pub(crate) fn new(node: &str, vwire: VWireId, end: End) -> Self {
        Self {
            node: node_digest(node),
            vwire,
            end,
        }
    }

    /// Reads a tag; `None` if it is not an nsm-rs tag.
    pub(crate) fn parse(tag: &str) -> Option<Self> {
        let mut parts = tag.split(':');
        if parts.next() != Some(PREFIX) {
            return None;
        }
        let node = u32::from_str_radix(parts.next()?, 16).ok()?;
        let vwire = parts.next()?.parse().ok()?;
        let end = match parts.next()? {
            "client" => End::Client,
            "endpoint" => End::Endpoint,
            _ => return None,
        };
        parts.next().is_none().then_some(Self { node, vwire, end })
    }
}

impl fmt::Display for VppTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}:{:08x}:{}:{}", self.node, self.vwire, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_reads_back_and_fits_vpp() {
        let vwire = VWireId::new_random();
        for end in [End::Client, End::Endpoint] {
            let tag = VppTag::new(&"n".repeat(253), vwire, end);
            let text = tag.to_string();
            assert!(text.len() < 64, "{text}");
            assert_eq!(VppTag::parse(&text), Some(tag));
        }
        assert_ne!(node_digest("node-a"), node_digest("node-b"));
    }

    #[test]
    fn other_tags_are_not_ours() {
        for tag in [
            "",
            "uplink",
            "nsm-rs:zz:6f0c4b3e-0d7e-4c6b-9f5e-2b7f1f7a9c10:client",
            "nsm-rs:0000abcd:not-a-uuid:client",
            "nsm-rs:0000abcd:6f0c4b3e-0d7e-4c6b-9f5e-2b7f1f7a9c10:middle",
            "nsm-rs:0000abcd:6f0c4b3e-0d7e-4c6b-9f5e-2b7f1f7a9c10:client:x",
        ] {
            assert_eq!(VppTag::parse(tag), None, "{tag:?}");
        }
    }
}

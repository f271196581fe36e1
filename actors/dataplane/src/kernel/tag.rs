//! How the kernel forwarder marks what it made, so that it can always find it again: every
//! link of a vWire carries an interface alias (`ip link` shows it) naming the node, the
//! vWire and the end:
//!
//! ```text
//! nsm-rs vwire=6f0c4b3e-0d7e-4c6b-9f5e-2b7f1f7a9c10 end=client node=node-a
//! ```
//!
//! The alias is set right after the pair is made (Linux takes no alias in the request that
//! creates a link). What a link does carry from its first instant is its device group
//! ([`group_of`], `ip link show group N`): every link of this node is made in the node's
//! group, so a pair a crash caught between being made and being tagged is still known as
//! this node's. Reconcile trusts nothing else: a link with neither is never touched.

use std::fmt;

use nsm_domain::vwire::VWireId;

pub(crate) use crate::contract::End;

const PREFIX: &str = "nsm-rs";
/// Linux keeps at most 255 bytes of alias (`IFALIASZ` - 1).
#[cfg(test)]
const MAX_ALIAS: usize = 255;
/// Room for the node's name in an alias: the rest is the prefix, the vWire and the end.
const MAX_NODE_IN_TAG: usize = 180;

/// The alias of one of a vWire's links.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    pub vwire: VWireId,
    pub end: End,
    /// The node that made it, as it appears in the tag (see [`node_in_tag`]).
    pub node: String,
}

impl Tag {
    pub fn new(vwire: VWireId, end: End, node: &str) -> Self {
        Self {
            vwire,
            end,
            node: node_in_tag(node),
        }
    }

    /// Reads an alias; `None` if it is not an nsm-rs tag.
    pub fn parse(alias: &str) -> Option<Self> {
        let mut words = alias.split(' ');
        if words.next() != Some(PREFIX) {
            return None;
        }
        let (mut vwire, mut end, mut node) = (None, None, None);
        for word in words {
            match word.split_once('=')? {
                ("vwire", id) => vwire = id.parse().ok(),
                ("end", "client") => end = Some(End::Client),
                ("end", "endpoint") => end = Some(End::Endpoint),
                ("node", name) if !name.is_empty() => node = Some(name.to_owned()),
                _ => return None,
            }
        }
        Some(Self {
            vwire: vwire?,
            end: end?,
            node: node?,
        })
    }

    /// Whether this node made it.
    pub fn is_of(&self, node: &str) -> bool {
        self.node == node_in_tag(node)
    }

    /// Whether it is the tag of `end` of `vwire`, made by `node`.
    pub fn is_end_of(&self, vwire: VWireId, end: End, node: &str) -> bool {
        self.vwire == vwire && self.end == end && self.is_of(node)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX} vwire={} end={} node={}",
            self.vwire, self.end, self.node
        )
    }
}

/// A node name as tags carry it: itself when short enough, else a hash of it (node names
/// may be 253 characters; an alias holds 255 bytes).
fn node_in_tag(node: &str) -> String {
    if node.len() <= MAX_NODE_IN_TAG {
        node.to_owned()
    } else {
        format!("hash-{:016x}", fnv1a64(node.as_bytes()))
    }
}

/// The device group of every link node `node` makes: `0x4e53` ("NS") and 16 bits of the
/// node's name, below 2^31 so that `ip link show group <n>` takes it.
pub(crate) fn group_of(node: &str) -> u32 {
    0x4e53_0000 | (fnv1a64(node.as_bytes()) & 0xffff) as u32
}

/// The interface name an end gets when its mechanism names none: `nsm-` (client) or `nse-`
/// (endpoint) and 8 hex digits of the vWire, so it is the same every time it is made.
pub fn default_interface_name(vwire: VWireId, end: End) -> String {
    let simple = vwire.0.simple().to_string();
    match end {
        End::Client => format!("nsm-{}", &simple[..8]),
        End::Endpoint => format!("nse-{}", &simple[..8]),
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(tag: &Tag) -> bool {
        tag.to_string().len() <= MAX_ALIAS
    }

    #[test]
    fn a_tag_reads_back_as_written() {
        let vwire = VWireId::new_random();
        for end in [End::Client, End::Endpoint] {
            let tag = Tag::new(vwire, end, "node-a");
            assert_eq!(Tag::parse(&tag.to_string()), Some(tag.clone()));
            assert!(tag.is_of("node-a"));
            assert!(!tag.is_of("node-b"));
        }
    }

    #[test]
    fn the_longest_node_name_still_fits() {
        let long = "n".repeat(253);
        let tag = Tag::new(VWireId::new_random(), End::Endpoint, &long);
        assert!(fits(&tag), "{}", tag.to_string().len());
        assert!(tag.is_of(&long));
        assert_eq!(Tag::parse(&tag.to_string()), Some(tag));
    }

    #[test]
    fn other_aliases_are_not_tags() {
        for alias in [
            "",
            "uplink",
            "nsm-rs",
            "nsm-rs vwire=not-a-uuid end=client node=a",
            "nsm-rs vwire=6f0c4b3e-0d7e-4c6b-9f5e-2b7f1f7a9c10 end=middle node=a",
            "nsm-rs vwire=6f0c4b3e-0d7e-4c6b-9f5e-2b7f1f7a9c10 end=client",
            "nsm-rs vwire=6f0c4b3e-0d7e-4c6b-9f5e-2b7f1f7a9c10 end=client node=a extra",
        ] {
            assert_eq!(Tag::parse(alias), None, "{alias:?}");
        }
    }

    #[test]
    fn default_names_fit_linux_and_groups_fit_iproute2() {
        let vwire = VWireId::new_random();
        assert!(default_interface_name(vwire, End::Client).len() <= 15);
        assert_ne!(
            default_interface_name(vwire, End::Client),
            default_interface_name(vwire, End::Endpoint)
        );
        for node in ["node-a", "node-b", &"n".repeat(253)] {
            assert!(group_of(node) < 1 << 31 && group_of(node) != 0);
        }
        assert_ne!(group_of("node-a"), group_of("node-b"));
    }
}

//! The simulated VPP's state, shared by all its connections as one VPP's is: the interface
//! table, memif socket files, l3xc policies, the graph nodes `add_node_next` can link, and
//! who subscribed to interface events.
//!
//! Invariants kept here rather than in the handlers: sw_if_index 0 is `local0` and is never
//! deleted; a deleted interface's index is given to the next interface made (the last freed
//! first, as VPP's interface pool does), so an index names an interface only while it lives;
//! memif socket files are real sockets on disk while a master memif listens on them, left
//! behind when it stops, as VPP leaves them; an interface's link is up
//! exactly when it is admin up and has carrier (see [`SimInterface::carrier`]); deleting an
//! interface removes every cross-connect that names it, in either direction, and its
//! neighbours, but not its l3xc policies (VPP keeps them, and gives them to the next
//! interface made at that index).
//! Every change of an interface's flags, and every deletion, is recorded as a [`Change`] for
//! the event fan-out that runs after the request's reply has been queued.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::net::UnixListener;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use nsm_vpp::api::{
    Address, AddressFamily, AddressUnion, AfPacketCreateV3, FibPath, IfStatusFlags, MacAddress,
    MemifCreateV2, RxMode, TapCreateV3, VxlanAddDelTunnelV3,
};

use super::linux_tap::LinuxTap;

/// local0's index: present from start-up, never deleted.
pub const LOCAL0: u32 = 0;

/// One interface of the simulated VPP, as tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimInterface {
    pub sw_if_index: u32,
    /// VPP's name: `local0`, `tap<id>`, `host-<ifname>`, `memif<socket>/<id>`, `vxlan_tunnel<n>`.
    pub name: String,
    /// The device class VPP reports as `interface_dev_type`.
    pub dev_type: String,
    /// What created it, with the create request's fields (ids and defaults resolved).
    pub kind: SimKind,
    pub admin_up: bool,
    pub link_up: bool,
    /// Whether the device below can carry traffic (for a memif: its peer is connected). The
    /// link is up when the interface is admin up and has carrier. True unless a test clears
    /// it with `Simulator::set_carrier`, so a memif links up on admin up by default.
    pub carrier: bool,
    /// At most 63 bytes, as VPP's 64-byte field allows; empty when unset.
    pub tag: String,
    pub mac: MacAddress,
    /// Per protocol: L3, IPv4, IPv6, MPLS.
    pub mtu: [u32; 4],
    pub rx_mode: Option<RxMode>,
    pub addresses: Vec<(IpAddr, u8)>,
    /// The tx side of this interface's one-way L2 cross-connect (rx = this interface).
    pub l2_xconnect: Option<u32>,
}

/// The kind of an interface, with the request that made it.
#[derive(Debug, Clone, PartialEq)]
pub enum SimKind {
    Local,
    /// `id` and `host_if_name` resolved (auto id taken, the default host name filled in).
    Tap(Box<TapCreateV3>),
    AfPacket(AfPacketCreateV3),
    /// `ring_size` and `buffer_size` defaults filled in.
    Memif(MemifCreateV2),
    /// `instance`, ports and `decap_next_index` resolved.
    Vxlan(VxlanAddDelTunnelV3),
}

impl SimKind {
    /// The interface name VPP gives this kind.
    pub fn interface_name(&self) -> String {
        match self {
            SimKind::Local => "local0".to_owned(),
            SimKind::Tap(tap) => format!("tap{}", tap.id),
            SimKind::AfPacket(af) => format!("host-{}", af.host_if_name),
            SimKind::Memif(memif) => format!("memif{}/{}", memif.socket_id, memif.id),
            SimKind::Vxlan(vxlan) => format!("vxlan_tunnel{}", vxlan.instance),
        }
    }

    /// VPP's device class name for this kind.
    pub fn dev_type(&self) -> &'static str {
        match self {
            SimKind::Local => "local",
            SimKind::Tap(_) => "virtio",
            SimKind::AfPacket(_) => "af-packet",
            SimKind::Memif(_) => "memif",
            SimKind::Vxlan(_) => "VXLAN",
        }
    }
}

impl SimInterface {
    /// A new interface of `kind` as VPP creates it: admin down, untagged, with carrier.
    /// `sw_if_index` is assigned when it is added to a simulator.
    pub fn new(kind: SimKind) -> Self {
        let mtu = match kind {
            SimKind::Local => [0; 4],
            _ => [1500, 0, 0, 0],
        };
        Self {
            sw_if_index: u32::MAX,
            name: kind.interface_name(),
            dev_type: kind.dev_type().to_owned(),
            kind,
            admin_up: false,
            link_up: false,
            carrier: true,
            tag: String::new(),
            mac: [0; 6],
            mtu,
            rx_mode: None,
            addresses: Vec::new(),
            l2_xconnect: None,
        }
    }

    /// The same interface with a tag (cut to 63 bytes, as VPP stores it).
    pub fn with_tag(mut self, tag: &str) -> Self {
        self.tag = clip(tag, 63);
        self
    }

    /// The flags VPP reports: ADMIN_UP (1) and LINK_UP (2).
    pub fn flags(&self) -> IfStatusFlags {
        let admin = if self.admin_up { 1 } else { 0 };
        let link = if self.link_up { 2 } else { 0 };
        IfStatusFlags(admin | link)
    }

    /// The Linux-side name of a tap or af_packet interface.
    pub fn host_if_name(&self) -> Option<&str> {
        match &self.kind {
            SimKind::Tap(tap) => Some(tap.host_if_name.as_str()),
            SimKind::AfPacket(af) => Some(af.host_if_name.as_str()),
            _ => None,
        }
    }

    /// The network namespace a tap's host side was put in, if one was given.
    pub fn host_namespace(&self) -> Option<&str> {
        match &self.kind {
            SimKind::Tap(tap) if tap.host_namespace_set => Some(tap.host_namespace.as_str()),
            _ => None,
        }
    }
}

/// An l3xc policy: traffic of one address family entering `sw_if_index` goes out `paths`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimL3xc {
    pub sw_if_index: u32,
    pub is_ip6: bool,
    pub paths: Vec<FibPath>,
}

/// An interface change subscribers are told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Change {
    pub(super) sw_if_index: u32,
    pub(super) flags: IfStatusFlags,
    pub(super) deleted: bool,
}

/// One run of the simulated VPP (a restart starts a new one).
#[derive(Debug)]
pub(super) struct VppState {
    interfaces: BTreeMap<u32, SimInterface>,
    /// The index after the highest ever given in this run.
    next_index: u32,
    /// Indices of deleted interfaces, handed out again last-freed first, as VPP's pool of
    /// software interfaces does.
    free_indices: Vec<u32>,
    /// socket_id → filename; 0 is VPP's built-in default.
    pub(super) memif_sockets: BTreeMap<u32, String>,
    /// socket_id → the socket listening on its file while a master memif uses it.
    pub(super) memif_listeners: HashMap<u32, UnixListener>,
    /// sw_if_index → the real Linux side of a tap (`SimulatorConfig::linux_taps`), removed
    /// with the tap and with this state.
    pub(super) linux_taps: HashMap<u32, LinuxTap>,
    /// (sw_if_index, is_ip6) → paths.
    pub(super) l3xc: BTreeMap<(u32, bool), Vec<FibPath>>,
    /// (sw_if_index, address) → MAC: static neighbours, flushed with their interface.
    pub(super) neighbors: BTreeMap<(u32, IpAddr), MacAddress>,
    /// client_index → the pid it subscribed with.
    pub(super) subscribers: BTreeMap<u32, u32>,
    /// Graph node → its next nodes, in next-index order.
    pub(super) nexts: HashMap<String, Vec<String>>,
    rng: StdRng,
    changes: Vec<Change>,
}

/// Nodes `add_node_next` knows. vxlan's input nodes start with their two static nexts
/// (error-drop = 0, l2-input = 1), so the first node added gets next index 2, as in VPP.
const NODES: [&str; 10] = [
    "vxlan4-input",
    "vxlan6-input",
    "ethernet-input",
    "l2-input",
    "error-drop",
    "ip4-input",
    "ip6-input",
    "ip4-lookup",
    "ip6-lookup",
    "interface-output",
];

impl VppState {
    pub(super) fn new(seed: u64) -> Self {
        let mut local0 = SimInterface::new(SimKind::Local);
        local0.sw_if_index = LOCAL0;
        let nexts = NODES
            .iter()
            .map(|&node| {
                let static_nexts: &[&str] = match node {
                    "vxlan4-input" | "vxlan6-input" => &["error-drop", "l2-input"],
                    _ => &["error-drop"],
                };
                let static_nexts = static_nexts.iter().map(|n| n.to_string()).collect();
                (node.to_owned(), static_nexts)
            })
            .collect();
        Self {
            interfaces: BTreeMap::from([(LOCAL0, local0)]),
            next_index: LOCAL0 + 1,
            free_indices: Vec::new(),
            memif_sockets: BTreeMap::from([(0, "/run/vpp/memif.sock".to_owned())]),
            memif_listeners: HashMap::new(),
            linux_taps: HashMap::new(),
            l3xc: BTreeMap::new(),
            neighbors: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            nexts,
            rng: StdRng::seed_from_u64(seed),
            changes: Vec::new(),
        }
    }

    pub(super) fn get(&self, sw_if_index: u32) -> Option<&SimInterface> {
        self.interfaces.get(&sw_if_index)
    }

    pub(super) fn get_mut(&mut self, sw_if_index: u32) -> Option<&mut SimInterface> {
        self.interfaces.get_mut(&sw_if_index)
    }

    pub(super) fn exists(&self, sw_if_index: u32) -> bool {
        self.interfaces.contains_key(&sw_if_index)
    }

    pub(super) fn interfaces(&self) -> impl Iterator<Item = &SimInterface> {
        self.interfaces.values()
    }

    /// The index the next interface will get: the last one freed, else a new one.
    pub(super) fn next_index(&self) -> u32 {
        self.free_indices.last().copied().unwrap_or(self.next_index)
    }

    /// Adds an interface under [`Self::next_index`] (its name derived from its kind) and
    /// returns the index. No event: VPP announces only flag changes and deletions.
    pub(super) fn insert(&mut self, mut iface: SimInterface) -> u32 {
        let sw_if_index = match self.free_indices.pop() {
            Some(freed) => freed,
            None => {
                let fresh = self.next_index;
                self.next_index += 1;
                fresh
            }
        };
        iface.sw_if_index = sw_if_index;
        iface.name = iface.kind.interface_name();
        iface.dev_type = iface.kind.dev_type().to_owned();
        iface.link_up = iface.admin_up && iface.carrier;
        self.interfaces.insert(sw_if_index, iface);
        sw_if_index
    }

    /// Sets admin state (and so the link); false if there is no such interface.
    pub(super) fn set_admin(&mut self, sw_if_index: u32, up: bool) -> bool {
        self.update_flags(sw_if_index, |iface| iface.admin_up = up)
    }

    pub(super) fn set_carrier(&mut self, sw_if_index: u32, carrier: bool) -> bool {
        self.update_flags(sw_if_index, |iface| iface.carrier = carrier)
    }

    fn update_flags(&mut self, sw_if_index: u32, change: impl FnOnce(&mut SimInterface)) -> bool {
        let Some(iface) = self.interfaces.get_mut(&sw_if_index) else {
            return false;
        };
        let before = iface.flags();
        change(iface);
        iface.link_up = iface.admin_up && iface.carrier;
        let flags = iface.flags();
        if flags != before {
            self.changes.push(Change {
                sw_if_index,
                flags,
                deleted: false,
            });
        }
        true
    }

    /// Removes an interface with everything that names it; None for a missing one or local0.
    pub(super) fn delete(&mut self, sw_if_index: u32) -> Option<SimInterface> {
        if sw_if_index == LOCAL0 {
            return None;
        }
        let removed = self.interfaces.remove(&sw_if_index)?;
        self.linux_taps.remove(&sw_if_index);
        self.free_indices.push(sw_if_index);
        for iface in self.interfaces.values_mut() {
            if iface.l2_xconnect == Some(sw_if_index) {
                iface.l2_xconnect = None;
            }
        }
        self.neighbors.retain(|&(on, _), _| on != sw_if_index);
        // l3xc policies stay, as on VPP (26.06): the deleted interface's own policy and the
        // paths toward it are kept, and an interface made later at the same index inherits
        // that policy. Whoever made one must delete it before deleting the interface.
        self.changes.push(Change {
            sw_if_index,
            flags: IfStatusFlags(0),
            deleted: true,
        });
        Some(removed)
    }

    /// The changes recorded since the last call, oldest first.
    pub(super) fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// A random locally administered MAC, `02:fe:..` as VPP generates them.
    pub(super) fn random_mac(&mut self) -> MacAddress {
        let tail: [u8; 4] = self.rng.random();
        [0x02, 0xfe, tail[0], tail[1], tail[2], tail[3]]
    }

    /// A memif socket id nobody uses (VPP picks one at random too).
    pub(super) fn unused_socket_id(&mut self) -> u32 {
        loop {
            let id = self.rng.random::<u32>();
            if id != 0 && id != u32::MAX && !self.memif_sockets.contains_key(&id) {
                return id;
            }
        }
    }

    /// Every L2 cross-connect as (rx, tx).
    pub(super) fn xconnects(&self) -> Vec<(u32, u32)> {
        self.interfaces
            .values()
            .filter_map(|iface| Some((iface.sw_if_index, iface.l2_xconnect?)))
            .collect()
    }
}

/// The address an API `address` carries, if its family is one VPP knows.
pub(super) fn ip_of(address: &Address) -> Option<IpAddr> {
    let bytes = address.un.0;
    match address.af {
        AddressFamily::ADDRESS_IP4 => {
            Some(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into())
        }
        AddressFamily::ADDRESS_IP6 => Some(Ipv6Addr::from(bytes).into()),
        _ => None,
    }
}

/// The API form of an address.
pub(super) fn address_of(ip: IpAddr) -> Address {
    let mut un = [0u8; 16];
    let af = match ip {
        IpAddr::V4(v4) => {
            un[..4].copy_from_slice(&v4.octets());
            AddressFamily::ADDRESS_IP4
        }
        IpAddr::V6(v6) => {
            un = v6.octets();
            AddressFamily::ADDRESS_IP6
        }
    };
    Address {
        af,
        un: AddressUnion(un),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(super) fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

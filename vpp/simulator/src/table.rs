//! The message table a simulated VPP run sends in `sockclnt_create_reply`: which id each
//! message has in this run.
//!
//! As in VPP, memclnt's 28 messages have static ids (1..=28, in the order of
//! `memclnt.api`), and every other message, this crate's and the plugin messages it does not
//! know alike, takes an id from 29 upward. The dynamic ids are a seeded shuffle, rotated by a
//! non-zero amount on every restart, so *every* dynamic id changes when the simulated VPP
//! restarts and most change with the seed: a client that caches or hard-codes ids breaks at
//! once instead of by luck. The table is sent in a shuffled order too, as VPP sends it in
//! hash order.

use std::collections::{BTreeMap, HashMap};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use nsm_vpp::api::{MESSAGES, MessageTableEntry};
use nsm_vpp::codec::FixedString;
use nsm_vpp::message::name_crc;

/// memclnt's messages with the CRCs of VPP 26.06, in id order (id = position + 1).
const MEMCLNT: [(&str, u32); 28] = [
    ("memclnt_create", 0x9c5e1c2f),
    ("memclnt_create_reply", 0x42ec4560),
    ("memclnt_delete", 0x7e1c04e3),
    ("memclnt_delete_reply", 0x3d3b6312),
    ("rx_thread_exit", 0xc3a3a452),
    ("memclnt_rx_thread_suspend", 0xc3a3a452),
    ("memclnt_read_timeout", 0xc3a3a452),
    ("rpc_call", 0x7e8a2c95),
    ("rpc_call_reply", 0xe8d4e804),
    ("get_first_msg_id", 0xebf79a66),
    ("get_first_msg_id_reply", 0x7d337472),
    ("api_versions", 0x51077d14),
    ("api_versions_reply", 0x5f0d99d6),
    ("trace_plugin_msg_ids", 0xf476d3ce),
    ("sockclnt_create", 0x455fb9c4),
    ("sockclnt_create_reply", 0x35166268),
    ("sockclnt_delete", 0x8ac76db6),
    ("sockclnt_delete_reply", 0x8f38b1ee),
    ("sock_init_shm", 0x51646d92),
    ("sock_init_shm_reply", 0xe8d4e804),
    ("memclnt_keepalive", 0x51077d14),
    ("memclnt_keepalive_reply", 0xe8d4e804),
    ("control_ping", 0x51077d14),
    ("control_ping_reply", 0xf6b0b8ca),
    ("memclnt_create_v2", 0xc4bd4882),
    ("memclnt_create_v2_reply", 0x42ec4560),
    ("get_api_json", 0x51077d14),
    ("get_api_json_reply", 0xea715b59),
];

/// Messages of VPP 26.06 plugins this crate does not define (CRCs from the 26.06 JSON), so
/// the table looks like a real VPP's and clients must cope with names they do not know.
const FOREIGN: [(&str, u32); 56] = [
    ("acl_add_replace", 0xee5c2f18),
    ("acl_add_replace_reply", 0xac407b0c),
    ("acl_del", 0xef34fea4),
    ("acl_del_reply", 0xe8d4e804),
    ("acl_dump", 0xef34fea4),
    ("acl_details", 0x95babae0),
    ("acl_interface_set_acl_list", 0x473982bd),
    ("acl_interface_set_acl_list_reply", 0xe8d4e804),
    ("wireguard_interface_create", 0xa530137e),
    ("wireguard_interface_create_reply", 0x5383d31f),
    ("wireguard_interface_delete", 0xf9e6675e),
    ("wireguard_interface_delete_reply", 0xe8d4e804),
    ("wireguard_peer_add", 0x9b8aad61),
    ("wireguard_peer_add_reply", 0x084a0cd3),
    ("wireguard_peer_remove", 0x3b74607a),
    ("wireguard_peer_remove_reply", 0xe8d4e804),
    ("want_wireguard_peer_events", 0x3bc666c8),
    ("want_wireguard_peer_events_reply", 0xe8d4e804),
    ("wireguard_peer_event", 0x4e1b5d67),
    ("ip_route_add_del", 0xb8ecfe0d),
    ("ip_route_add_del_reply", 0x1992deab),
    ("ip_neighbor_add_del", 0x0607c257),
    ("ip_neighbor_add_del_reply", 0x1992deab),
    ("ip_address_dump", 0x2d033de4),
    ("ip_address_details", 0xee29b797),
    ("create_loopback", 0x42bb5d22),
    ("create_loopback_reply", 0x5383d31f),
    ("delete_loopback", 0xf9e6675e),
    ("delete_loopback_reply", 0xe8d4e804),
    ("bridge_domain_add_del_v2", 0x600b7170),
    ("bridge_domain_add_del_v2_reply", 0xfcb1e980),
    ("sw_interface_set_l2_bridge", 0xd0678b13),
    ("sw_interface_set_l2_bridge_reply", 0xe8d4e804),
    ("create_vlan_subif", 0xaf34ac8b),
    ("create_vlan_subif_reply", 0x5383d31f),
    ("want_ping_finished_events", 0xe79ee58b),
    ("want_ping_finished_events_reply", 0xe8d4e804),
    ("ping_finished_event", 0x397ccf72),
    ("ip_table_add_del", 0x0ffdaec0),
    ("ip_table_add_del_reply", 0xe8d4e804),
    ("sw_interface_set_table", 0xdf42a577),
    ("sw_interface_set_table_reply", 0xe8d4e804),
    ("sw_interface_set_unnumbered", 0x154a6439),
    ("sw_interface_set_unnumbered_reply", 0xe8d4e804),
    ("memif_create", 0xb1b25061),
    ("memif_create_reply", 0x5383d31f),
    ("tm_sys_node_add", 0x0f60688a),
    ("tm_sys_node_add_reply", 0xe8d4e804),
    ("l2_interface_vlan_tag_rewrite", 0x62cc0bbc),
    ("l2_interface_vlan_tag_rewrite_reply", 0xe8d4e804),
    ("delete_subif", 0xf9e6675e),
    ("delete_subif_reply", 0xe8d4e804),
    ("af_packet_create_v2", 0x4aff0436),
    ("af_packet_create_v2_reply", 0x5383d31f),
    ("tap_create_v2", 0x2d0d6570),
    ("tap_create_v2_reply", 0x5383d31f),
];

/// The first id VPP hands to modules after memclnt.
pub(super) const FIRST_DYNAMIC_ID: u16 = 29;

/// One run's id assignment.
#[derive(Debug)]
pub(super) struct Table {
    /// Every entry in the order the handshake sends them: id, name, CRC.
    entries: Vec<(u16, &'static str, u32)>,
    /// Id → name, for the messages this crate defines (the ones the simulator can decode).
    known: HashMap<u16, &'static str>,
    /// Name → id, for every entry.
    ids: HashMap<&'static str, u16>,
}

impl Table {
    /// The table of the `generation`-th run (0 = first) of a VPP seeded with `seed`.
    pub(super) fn build(seed: u64, generation: u64) -> Self {
        let mut all: BTreeMap<&'static str, u32> = FOREIGN.into_iter().collect();
        all.extend(MESSAGES.iter().map(|m| (m.name, m.crc)));
        let mut entries: Vec<(u16, &'static str, u32)> = (1u16..)
            .zip(MEMCLNT)
            .map(|(id, (name, crc))| (id, name, all.get(name).copied().unwrap_or(crc)))
            .collect();

        let mut dynamic: Vec<(&'static str, u32)> = all
            .into_iter()
            .filter(|(name, _)| !MEMCLNT.iter().any(|(m, _)| m == name))
            .collect();
        dynamic.shuffle(&mut StdRng::seed_from_u64(seed));
        let offset = rotation(seed, generation, dynamic.len());
        for (position, (name, crc)) in dynamic.iter().enumerate() {
            let slot = (position + offset) % dynamic.len();
            entries.push((FIRST_DYNAMIC_ID + slot as u16, name, *crc));
        }
        entries.shuffle(&mut StdRng::seed_from_u64(
            seed ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ));

        let ids = entries.iter().map(|&(id, name, _)| (name, id)).collect();
        let known = entries
            .iter()
            .filter_map(|&(id, name, _)| {
                MESSAGES
                    .iter()
                    .find(|m| m.name == name)
                    .map(|m| (id, m.name))
            })
            .collect();
        Self {
            entries,
            known,
            ids,
        }
    }

    /// The name of the crate-defined message with this id.
    pub(super) fn known_name(&self, id: u16) -> Option<&'static str> {
        self.known.get(&id).copied()
    }

    /// Whether the id is in the table at all (known to this crate or not).
    pub(super) fn has_id(&self, id: u16) -> bool {
        self.entries.iter().any(|&(entry, _, _)| entry == id)
    }

    pub(super) fn id(&self, name: &str) -> Option<u16> {
        self.ids.get(name).copied()
    }

    /// The handshake's table, with the CRCs `advertised` instead of the real ones where given.
    pub(super) fn handshake(&self, advertised: &HashMap<String, u32>) -> Vec<MessageTableEntry> {
        self.entries
            .iter()
            .filter_map(|&(index, name, crc)| {
                let crc = advertised.get(name).copied().unwrap_or(crc);
                let name = FixedString::new(name_crc(name, crc)).ok()?;
                Some(MessageTableEntry { index, name })
            })
            .collect()
    }
}

/// How far the dynamic ids of run `generation` are rotated: a sum of non-zero steps (mod
/// `n`), so two consecutive runs never give a message the same id.
fn rotation(seed: u64, generation: u64, n: usize) -> usize {
    use rand::Rng;
    if n < 2 {
        return 0;
    }
    let mut rng = StdRng::seed_from_u64(seed.rotate_left(17) ^ 0x5eed);
    (0..generation).fold(0, |offset, _| (offset + rng.random_range(1..n)) % n)
}

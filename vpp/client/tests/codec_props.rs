//! Property tests of the VPP codec (`codec`, `message`, `dynamic`, `frame`).
//!
//! This file owns these properties:
//! - every message of `api::MESSAGES` (the table is iterated, so a message added to it is
//!   covered without touching this file): decoding any bytes never panics, and what decodes
//!   re-encodes to a canonical form that is a fixed point and is exactly the bytes decoding
//!   it consumes;
//! - typed round trips of real values of the messages the forwarder depends on, through
//!   the typed codec and through the JSON (`dynamic`) one, which must agree byte for byte;
//! - the socket framing: `split_frames` and `read_frame` over arbitrary streams never panic,
//!   agree with each other, and stop at an impossible length before reading any of the
//!   body.
//!
//! The codec's byte-exact agreement with vpp_papi is `papi_conformance.rs`; the fuzz targets
//! in `vpp/fuzz/` push the byte-level properties much further than a test run can.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use nsm_vpp::api::{self, MESSAGES};
use nsm_vpp::codec::{FixedString, VarString};
use nsm_vpp::dynamic::{self, DynamicError, Header, MessageInfo};
use nsm_vpp::frame::{self, FrameError, HEADER_LEN, MAX_FRAME};
use nsm_vpp::message::{self, Message};
use proptest::prelude::*;
use proptest::sample::Index;
use tokio::io::{AsyncRead, ReadBuf};

// ---------------------------------------------------------------------------------------
// Every message in the table, from arbitrary bytes.
// ---------------------------------------------------------------------------------------

/// Bytes as a peer might send them: uniformly random, or biased towards NULs, ASCII and
/// small values. The bias matters: in uniform bytes a 64-byte string almost never ends in a
/// NUL before invalid UTF-8, and a count is almost never small, so the re-encoding
/// properties below would rarely get past their first step.
fn wire_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let biased = prop_oneof![
        4 => Just(0u8),
        4 => 0x20u8..0x7f,
        1 => 1u8..4,
        2 => any::<u8>(),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..max),
        prop::collection::vec(biased, 0..max),
    ]
}

/// The one way a decoded message may fail to re-encode through JSON: a `string x[N]` whose
/// N bytes held no NUL, or whose invalid UTF-8 became U+FFFD (3 bytes each), decodes to more
/// text than the N-1 bytes `FixedString::new` (and so its `Deserialize`) accepts.
fn is_fixed_string_overflow(error: &DynamicError) -> bool {
    matches!(error, DynamicError::Json { source, .. } if source.to_string().contains("do not fit"))
}

/// For one message type and any bytes that decode as it, with `x = decode(bytes)`:
///
/// 1. `encode(x)` succeeds (but for [`is_fixed_string_overflow`]) and starts with exactly
///    the header bytes of the input: header fields are plain integers, never normalised.
/// 2. `decode(encode(x)) == x`: decoding the canonical form gives back the same header and
///    fields, so `encode(decode(encode(x))) == encode(x)` too (the canonical form is a fixed
///    point). Comparing `encode(x)` with the input itself would be wrong: decoding ignores
///    trailing bytes, cuts a fixed string at its first NUL (dropping what follows it),
///    replaces invalid UTF-8, and reads any non-zero byte as `true`.
/// 3. `encode(x)` is exactly what decoding it consumes: with any bytes appended it decodes
///    to the same `x` (trailing bytes are ignored), and without its last byte it does not
///    decode at all (so decoding needed every byte of it).
fn check_reencoding(info: &MessageInfo, bytes: &[u8]) -> Result<(), TestCaseError> {
    let name = info.name;
    let Ok((header, fields)) = dynamic::decode_json(name, bytes) else {
        return Ok(());
    };
    let canonical = match dynamic::encode_json(name, &header, &fields) {
        Ok(canonical) => canonical,
        Err(error) if is_fixed_string_overflow(&error) => return Ok(()),
        Err(error) => {
            return Err(TestCaseError::fail(format!(
                "{name}: decoded but does not re-encode: {error}; fields {fields}"
            )));
        }
    };
    let header_len = info.shape.header_len();
    prop_assert_eq!(
        &canonical[..header_len],
        &bytes[..header_len],
        "{}: header bytes changed",
        name
    );

    let again = dynamic::decode_json(name, &canonical);
    prop_assert!(
        again.is_ok(),
        "{name}: canonical form does not decode: {again:?}"
    );
    let (again_header, again_fields) = again.unwrap();
    prop_assert_eq!(again_header, header, "{}: header changed", name);
    prop_assert_eq!(&again_fields, &fields, "{}: fields changed", name);
    let twice = dynamic::encode_json(name, &again_header, &again_fields);
    prop_assert_eq!(
        twice.ok(),
        Some(canonical.clone()),
        "{}: not a fixed point",
        name
    );

    let mut padded = canonical.clone();
    padded.extend_from_slice(bytes);
    let (padded_header, padded_fields) = dynamic::decode_json(name, &padded).unwrap();
    prop_assert_eq!(
        padded_header,
        header,
        "{}: trailing bytes changed the header",
        name
    );
    prop_assert_eq!(
        padded_fields,
        fields,
        "{}: trailing bytes changed the fields",
        name
    );
    prop_assert!(
        matches!(
            dynamic::decode_json(name, &canonical[..canonical.len() - 1]),
            Err(DynamicError::Decode { .. })
        ),
        "{name}: decodes without the last byte of its canonical form"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Decoding is total: any bytes give a message or an error, for every message type.
    #[test]
    fn decoding_any_bytes_never_panics(bytes in wire_bytes(1024)) {
        for info in MESSAGES {
            let _ = dynamic::decode_json(info.name, &bytes);
        }
    }
}

/// A message's encoding with every field at its default.
fn default_encoding(info: &MessageInfo) -> Vec<u8> {
    info.encode_json(&Header::default(), &serde_json::json!({}))
        .unwrap_or_else(|error| {
            panic!(
                "{}: the default message does not encode: {error}",
                info.name
            )
        })
}

/// Edits to apply to every message's default encoding: bytes overwritten at a few places,
/// then bytes appended. Arbitrary bytes seldom get past a `string x[0]` length or a count;
/// a default encoding with a few bytes changed does, and reaches the fields after them.
fn near_real_messages() -> impl Strategy<Value = (Vec<(Index, u8)>, Vec<u8>)> {
    (
        prop::collection::vec((any::<Index>(), any::<u8>()), 0..8),
        wire_bytes(512),
    )
}

fn mutated(info: &MessageInfo, (writes, tail): &(Vec<(Index, u8)>, Vec<u8>)) -> Vec<u8> {
    let mut bytes = default_encoding(info);
    let len = bytes.len();
    for (at, byte) in writes {
        bytes[at.index(len)] = *byte;
    }
    bytes.extend_from_slice(tail);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn what_decodes_reencodes_canonically(bytes in wire_bytes(2048)) {
        for info in MESSAGES {
            check_reencoding(info, &bytes)?;
        }
    }

    #[test]
    fn near_real_messages_reencode_canonically(edits in near_real_messages()) {
        for info in MESSAGES {
            let bytes = mutated(info, &edits);
            prop_assert!(dynamic::decode_json(info.name, &bytes).is_ok() || !edits.0.is_empty(),
                "{}: a default message with bytes appended does not decode", info.name);
            check_reencoding(info, &bytes)?;
        }
    }
}

/// The table is what `dynamic` looks names up in: every entry is found under its own name,
/// and no two messages share a name.
#[test]
fn every_message_is_found_by_its_name() {
    for info in MESSAGES {
        let found = dynamic::lookup(info.name).unwrap();
        assert_eq!((found.name, found.crc), (info.name, info.crc));
    }
    assert!(matches!(
        dynamic::decode_json("no_such_message", &[0; 64]),
        Err(DynamicError::Unknown(_))
    ));
}

/// The typed path has no JSON in the way: whatever a few typed messages decode from, they
/// encode, the encoding decodes, and encoding that again gives as many bytes (every field
/// keeps its place even when its text was not canonical).
fn check_typed_reencoding<M: Message>(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok((header, value)) = message::decode::<M>(bytes) else {
        return Ok(());
    };
    let first = message::encode(&value, header);
    prop_assert!(
        first.is_ok(),
        "{}: a decoded message does not encode: {first:?}",
        M::NAME
    );
    let first = first.unwrap();
    let again = message::decode::<M>(&first);
    prop_assert!(
        again.is_ok(),
        "{}: its encoding does not decode: {again:?}",
        M::NAME
    );
    let (again_header, again) = again.unwrap();
    prop_assert_eq!(again_header, header);
    let second = message::encode(&again, again_header).unwrap();
    prop_assert_eq!(second.len(), first.len(), "{}: layout changed", M::NAME);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn typed_messages_reencode_with_their_layout(bytes in wire_bytes(2048)) {
        check_typed_reencoding::<api::SwInterfaceDetails>(&bytes)?;
        check_typed_reencoding::<api::ShowVersionReply>(&bytes)?;
        check_typed_reencoding::<api::SockclntCreateReply>(&bytes)?;
        check_typed_reencoding::<api::TapCreateV3>(&bytes)?;
        check_typed_reencoding::<api::L3xcDetails>(&bytes)?;
        check_typed_reencoding::<api::MemifDetails>(&bytes)?;
    }
}

/// Text that decoding made longer than its field (N bytes of invalid UTF-8 become 3N bytes
/// of U+FFFD) cannot go back through JSON (see [`is_fixed_string_overflow`]); the typed
/// encoder writes its first N bytes instead, so the fields after it stay in place.
#[test]
fn overlong_decoded_text_keeps_the_layout() {
    // A show_version_reply whose `program` (string[32]) is 32 bytes of 0xff, and whose
    // `version` is "v1".
    let at = api::ShowVersionReply::SHAPE.header_len() + 4;
    let mut bytes = vec![0u8; at];
    bytes.extend_from_slice(&[0xff; 32]);
    bytes.extend_from_slice(b"v1");
    bytes.resize(at + 32 + 32 + 32 + 256, 0);
    let (header, reply) = message::decode::<api::ShowVersionReply>(&bytes).unwrap();
    assert_eq!(reply.program.as_str(), "\u{fffd}".repeat(32));
    let encoded = message::encode(&reply, header).unwrap();
    assert_eq!(encoded.len(), bytes.len());
    assert_eq!(encoded[at + 32..], bytes[at + 32..]);
    let (_, again) = message::decode::<api::ShowVersionReply>(&encoded).unwrap();
    assert_eq!(again.version.as_str(), "v1");
}

/// Every message with all its fields at their defaults (`{}` in JSON: every message type is
/// `#[serde(default)]`) has a canonical encoding: it decodes to the same JSON and re-encodes
/// to the same bytes. These encodings are also the seeds that [`near_real_messages`] mutates.
#[test]
fn every_default_message_round_trips_exactly() {
    for info in MESSAGES {
        let bytes = default_encoding(info);
        assert!(bytes.len() >= info.shape.header_len(), "{}", info.name);
        let (header, fields) = info.decode_json(&bytes).unwrap();
        assert_eq!(header, Header::default(), "{}", info.name);
        assert_eq!(
            info.encode_json(&header, &fields).unwrap(),
            bytes,
            "{}",
            info.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// Typed round trips of real values.
// ---------------------------------------------------------------------------------------

/// The longest prefix of `text`, NULs left out, that fits in `max` bytes without cutting a
/// character.
fn fit(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars().filter(|&c| c != '\0') {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Text a `string x[N]` can carry: at most N-1 bytes, no NUL. Printable ASCII of up to
/// N+16 bytes often fills the field to its last byte; arbitrary characters bring multi-byte
/// ones, which must not be cut.
fn fixed_string<const N: usize>() -> impl Strategy<Value = FixedString<N>> {
    prop_oneof![
        prop::collection::vec(0x20u8..0x7f, 0..N + 16)
            .prop_map(|ascii| String::from_utf8(ascii).expect("ASCII")),
        prop::collection::vec(any::<char>(), 0..N).prop_map(String::from_iter),
    ]
    .prop_map(|text| FixedString::new(fit(&text, N - 1)).expect("fits by construction"))
}

/// `string x[0]`: any text, NULs included (its length is on the wire).
fn var_string() -> impl Strategy<Value = VarString> {
    prop::collection::vec(any::<char>(), 0..300)
        .prop_map(|chars| VarString(chars.into_iter().collect()))
}

/// A header with the fields `M`'s shape has (the others decode as 0).
fn header_for<M: Message>() -> impl Strategy<Value = Header> {
    (any::<u16>(), any::<u32>(), any::<u32>()).prop_map(|(msg_id, client_index, context)| Header {
        msg_id,
        client_index: if M::SHAPE.client_index {
            client_index
        } else {
            0
        },
        context: if M::SHAPE.context { context } else { 0 },
    })
}

fn ip4_address() -> impl Strategy<Value = api::Address> {
    any::<[u8; 4]>().prop_map(|ip4| {
        let mut un = [0u8; 16];
        un[..4].copy_from_slice(&ip4);
        api::Address {
            af: api::AddressFamily::ADDRESS_IP4,
            un: api::AddressUnion(un),
        }
    })
}

fn ip6_address() -> impl Strategy<Value = api::Address> {
    any::<[u8; 16]>().prop_map(|ip6| api::Address {
        af: api::AddressFamily::ADDRESS_IP6,
        un: api::AddressUnion(ip6),
    })
}

fn sw_interface_details() -> impl Strategy<Value = api::SwInterfaceDetails> {
    let link = (
        any::<u32>(),
        any::<u32>(),
        any::<[u8; 6]>(),
        any::<u32>().prop_map(api::IfStatusFlags),
        any::<u32>().prop_map(api::IfType),
        any::<u32>().prop_map(api::LinkDuplex),
        any::<u32>(),
        any::<u16>(),
        any::<[u32; 4]>(),
    );
    let sub = (
        any::<u32>(),
        0u8..=2,
        any::<u16>(),
        any::<u16>(),
        any::<u32>().prop_map(api::SubIfFlags),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
    );
    let names = (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        any::<u16>(),
        any::<u32>(),
        fixed_string::<64>(),
        fixed_string::<64>(),
        fixed_string::<64>(),
    );
    (link, sub, names).prop_map(
        |(
            (
                sw_if_index,
                sup_sw_if_index,
                l2_address,
                flags,
                r#type,
                link_duplex,
                link_speed,
                link_mtu,
                mtu,
            ),
            (
                sub_id,
                sub_number_of_tags,
                sub_outer_vlan_id,
                sub_inner_vlan_id,
                sub_if_flags,
                vtr_op,
                vtr_push_dot1q,
                vtr_tag1,
                vtr_tag2,
                outer_tag,
            ),
            (b_dmac, b_smac, b_vlanid, i_sid, interface_name, interface_dev_type, tag),
        )| api::SwInterfaceDetails {
            sw_if_index,
            sup_sw_if_index,
            l2_address,
            flags,
            r#type,
            link_duplex,
            link_speed,
            link_mtu,
            mtu,
            sub_id,
            sub_number_of_tags,
            sub_outer_vlan_id,
            sub_inner_vlan_id,
            sub_if_flags,
            vtr_op,
            vtr_push_dot1q,
            vtr_tag1,
            vtr_tag2,
            outer_tag,
            b_dmac,
            b_smac,
            b_vlanid,
            i_sid,
            interface_name,
            interface_dev_type,
            tag,
        },
    )
}

fn tap_create_v3() -> impl Strategy<Value = api::TapCreateV3> {
    let queues = (
        any::<u32>(),
        any::<bool>(),
        any::<[u8; 6]>(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        any::<u32>(),
        any::<bool>(),
        any::<[u8; 6]>(),
    );
    let host_ips = (
        any::<bool>(),
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(address, len)| api::Ip4Prefix { address, len }),
        any::<bool>(),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(address, len)| api::Ip6Prefix { address, len }),
        any::<bool>(),
        any::<[u8; 4]>(),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<u32>().prop_map(api::TapFlags),
    );
    let host_names = (
        any::<bool>(),
        fixed_string::<64>(),
        any::<bool>(),
        fixed_string::<64>(),
        any::<bool>(),
        fixed_string::<64>(),
        var_string(),
    );
    (queues, host_ips, host_names).prop_map(
        |(
            (
                id,
                use_random_mac,
                mac_address,
                num_rx_queues,
                num_tx_queues,
                tx_ring_sz,
                rx_ring_sz,
                host_mtu_set,
                host_mtu_size,
                host_mac_addr_set,
                host_mac_addr,
            ),
            (
                host_ip4_prefix_set,
                host_ip4_prefix,
                host_ip6_prefix_set,
                host_ip6_prefix,
                host_ip4_gw_set,
                host_ip4_gw,
                host_ip6_gw_set,
                host_ip6_gw,
                tap_flags,
            ),
            (
                host_namespace_set,
                host_namespace,
                host_if_name_set,
                host_if_name,
                host_bridge_set,
                host_bridge,
                tag,
            ),
        )| api::TapCreateV3 {
            id,
            use_random_mac,
            mac_address,
            num_rx_queues,
            num_tx_queues,
            tx_ring_sz,
            rx_ring_sz,
            host_mtu_set,
            host_mtu_size,
            host_mac_addr_set,
            host_mac_addr,
            host_ip4_prefix_set,
            host_ip4_prefix,
            host_ip6_prefix_set,
            host_ip6_prefix,
            host_ip4_gw_set,
            host_ip4_gw,
            host_ip6_gw_set,
            host_ip6_gw,
            tap_flags,
            host_namespace_set,
            host_namespace,
            host_if_name_set,
            host_if_name,
            host_bridge_set,
            host_bridge,
            tag,
        },
    )
}

fn mpls_label() -> impl Strategy<Value = api::FibMplsLabel> {
    (0u8..=1, 0u32..1 << 20, any::<u8>(), 0u8..8).prop_map(|(is_uniform, label, ttl, exp)| {
        api::FibMplsLabel {
            is_uniform,
            label,
            ttl,
            exp,
        }
    })
}

/// A path via an IPv4 or IPv6 next hop (the union's shorter member is zero-padded).
fn fib_path() -> impl Strategy<Value = api::FibPath> {
    let next_hop = prop_oneof![
        ip4_address().prop_map(|a| (api::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP4, a.un)),
        ip6_address().prop_map(|a| (api::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP6, a.un)),
    ];
    (
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
        ),
        (
            any::<u32>().prop_map(api::FibPathType),
            any::<u32>().prop_map(api::FibPathFlags),
        ),
        (next_hop, any::<u32>(), any::<u32>(), any::<u32>()),
        (0u8..=16, prop::array::uniform16(mpls_label())),
    )
        .prop_map(
            |(
                (sw_if_index, table_id, rpf_id, weight, preference),
                (r#type, flags),
                ((proto, address), via_label, obj_id, classify_table_index),
                (n_labels, label_stack),
            )| api::FibPath {
                sw_if_index,
                table_id,
                rpf_id,
                weight,
                preference,
                r#type,
                flags,
                proto,
                nh: api::FibPathNh {
                    address,
                    via_label,
                    obj_id,
                    classify_table_index,
                },
                n_labels,
                label_stack,
            },
        )
}

fn l3xc_update(paths: std::ops::Range<usize>) -> impl Strategy<Value = api::L3xcUpdate> {
    (
        any::<u32>(),
        any::<bool>(),
        prop::collection::vec(fib_path(), paths),
    )
        .prop_map(|(sw_if_index, is_ip6, paths)| api::L3xcUpdate {
            l3xc: api::L3xc {
                sw_if_index,
                is_ip6,
                paths,
            },
        })
}

/// VPP's table names messages `name_crc`; arbitrary text that fits is in the mix too.
fn message_table_entry() -> impl Strategy<Value = api::MessageTableEntry> {
    let name = prop_oneof![
        "[a-z][a-z0-9_]{0,45}_[0-9a-f]{8}"
            .prop_map(|text| FixedString::new(text).expect("at most 55 bytes")),
        fixed_string::<64>(),
    ];
    (any::<u16>(), name).prop_map(|(index, name)| api::MessageTableEntry { index, name })
}

fn sockclnt_create_reply() -> impl Strategy<Value = api::SockclntCreateReply> {
    (
        any::<i32>(),
        any::<u32>(),
        prop::collection::vec(message_table_entry(), 0..50),
    )
        .prop_map(
            |(response, index, message_table)| api::SockclntCreateReply {
                response,
                index,
                message_table,
            },
        )
}

/// Both ends of a tunnel are of one family, as VPP requires.
fn vxlan_add_del_tunnel_v3() -> impl Strategy<Value = api::VxlanAddDelTunnelV3> {
    let ends = prop_oneof![
        (ip4_address(), ip4_address()),
        (ip6_address(), ip6_address()),
    ];
    (
        (
            any::<bool>(),
            any::<u32>(),
            ends,
            any::<u16>(),
            any::<u16>(),
        ),
        (
            prop_oneof![Just(u32::MAX), any::<u32>()],
            any::<u32>(),
            any::<u32>(),
            0u32..1 << 24,
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (is_add, instance, (src_address, dst_address), src_port, dst_port),
                (mcast_sw_if_index, encap_vrf_id, decap_next_index, vni, is_l3),
            )| api::VxlanAddDelTunnelV3 {
                is_add,
                instance,
                src_address,
                dst_address,
                src_port,
                dst_port,
                mcast_sw_if_index,
                encap_vrf_id,
                decap_next_index,
                vni,
                is_l3,
            },
        )
}

/// `decode(encode(x)) == (header, x)`; the JSON codec gives the same bytes and decodes
/// them to the same JSON; and the encoding is exactly what decoding consumes (it does not
/// decode without its last byte). Returns the bytes for layout checks.
fn check_round_trip<M: Message + PartialEq>(
    value: &M,
    header: Header,
) -> Result<Vec<u8>, TestCaseError> {
    let bytes = message::encode(value, header)
        .map_err(|error| TestCaseError::fail(format!("{}: {error}", M::NAME)))?;
    let decoded = message::decode::<M>(&bytes);
    prop_assert_eq!(decoded.ok(), Some((header, value.clone())));

    let fields = serde_json::to_value(value).expect("messages serialise");
    let by_name = dynamic::encode_json(M::NAME, &header, &fields);
    prop_assert_eq!(
        by_name.ok(),
        Some(bytes.clone()),
        "JSON and typed encodings differ"
    );
    let (json_header, json_fields) = dynamic::decode_json(M::NAME, &bytes).expect("decodes");
    prop_assert_eq!(json_header, header);
    prop_assert_eq!(json_fields, fields);

    prop_assert!(message::decode::<M>(&bytes[..bytes.len() - 1]).is_err());
    Ok(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sw_interface_details_round_trip(
        header in header_for::<api::SwInterfaceDetails>(),
        details in sw_interface_details(),
    ) {
        check_round_trip(&details, header)?;
    }

    #[test]
    fn tap_create_v3_round_trip(header in header_for::<api::TapCreateV3>(), tap in tap_create_v3()) {
        let bytes = check_round_trip(&tap, header)?;
        // `tag` (string[0]) is last: its u32 length, then its bytes.
        let tag = tap.tag.as_str().as_bytes();
        let (before, text) = bytes.split_at(bytes.len() - tag.len());
        prop_assert_eq!(text, tag);
        prop_assert_eq!(&before[before.len() - 4..], &(tag.len() as u32).to_be_bytes()[..]);
    }

    #[test]
    fn l3xc_update_round_trip(header in header_for::<api::L3xcUpdate>(), update in l3xc_update(0..4)) {
        let bytes = check_round_trip(&update, header)?;
        // sw_if_index, is_ip6, the u8 count, then 167 bytes per vl_api_fib_path_t.
        let at = api::L3xcUpdate::SHAPE.header_len();
        let n = update.l3xc.paths.len();
        prop_assert_eq!(bytes[at + 5] as usize, n);
        prop_assert_eq!(bytes.len(), at + 6 + 167 * n);
    }

    #[test]
    fn sockclnt_create_reply_round_trip(
        header in header_for::<api::SockclntCreateReply>(),
        reply in sockclnt_create_reply(),
    ) {
        let bytes = check_round_trip(&reply, header)?;
        // response, index, the u16 count, then 2 + 64 bytes per entry.
        let at = api::SockclntCreateReply::SHAPE.header_len();
        let n = reply.message_table.len();
        prop_assert_eq!(&bytes[at + 8..at + 10], &(n as u16).to_be_bytes()[..]);
        prop_assert_eq!(bytes.len(), at + 10 + 66 * n);
    }

    #[test]
    fn vxlan_add_del_tunnel_v3_round_trip(
        header in header_for::<api::VxlanAddDelTunnelV3>(),
        tunnel in vxlan_add_del_tunnel_v3(),
    ) {
        let bytes = check_round_trip(&tunnel, header)?;
        // is_add, instance, then the source address: its family byte and 16 union bytes.
        let at = api::VxlanAddDelTunnelV3::SHAPE.header_len() + 5;
        prop_assert_eq!(bytes[at], tunnel.src_address.af.0);
        prop_assert_eq!(&bytes[at + 1..at + 17], &tunnel.src_address.un.0[..]);
    }
}

/// A list longer than its count field can count is refused, not truncated or wrapped.
#[test]
fn a_list_longer_than_its_count_is_refused() {
    let path = api::FibPath {
        sw_if_index: 1,
        table_id: 0,
        rpf_id: 0,
        weight: 1,
        preference: 0,
        r#type: api::FibPathType(0),
        flags: api::FibPathFlags(0),
        proto: api::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP4,
        nh: api::FibPathNh {
            address: api::AddressUnion([0; 16]),
            via_label: 0,
            obj_id: 0,
            classify_table_index: 0,
        },
        n_labels: 0,
        label_stack: Default::default(),
    };
    let mut update = api::L3xcUpdate {
        l3xc: api::L3xc {
            sw_if_index: 1,
            is_ip6: false,
            paths: vec![path; 255],
        },
    };
    assert!(message::encode(&update, Header::default()).is_ok());
    update.l3xc.paths.push(update.l3xc.paths[0].clone());
    assert!(matches!(
        message::encode(&update, Header::default()),
        Err(nsm_vpp::codec::EncodeError::TooMany {
            len: 256,
            max: 255,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------
// The socket framing.
// ---------------------------------------------------------------------------------------

/// One frame as VPP may send it: the 12 header bytes it ignores arbitrary, 1..64 bytes of
/// message.
fn one_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<[u8; 8]>(),
        any::<[u8; 4]>(),
        prop::collection::vec(any::<u8>(), 1..64),
    )
        .prop_map(|(front, back, message)| {
            let mut out = front.to_vec();
            out.extend_from_slice(&(message.len() as u32).to_be_bytes());
            out.extend_from_slice(&back);
            out.extend_from_slice(&message);
            out
        })
}

/// A stream a reader may see: uniform bytes (almost always a huge length at once), or whole
/// frames followed by nothing, garbage, a header no frame has (length 0, or past
/// `MAX_FRAME`), a header at the limit with no body, or another frame; the lot maybe cut
/// anywhere.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let tail = prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..48),
        Just(frame::header(0).to_vec()),
        ((MAX_FRAME as u32 + 1)..=u32::MAX).prop_map(|len| frame::header(len as usize).to_vec()),
        Just(frame::header(MAX_FRAME).to_vec()),
        one_frame(),
    ];
    let framed = (
        prop::collection::vec(one_frame(), 0..6),
        tail,
        any::<Option<Index>>(),
    )
        .prop_map(|(frames, tail, cut)| {
            let mut out = frames.concat();
            out.extend_from_slice(&tail);
            if let Some(cut) = cut {
                out.truncate(cut.index(out.len() + 1));
            }
            out
        });
    prop_oneof![1 => prop::collection::vec(any::<u8>(), 0..256), 4 => framed]
}

/// How a stream ends for a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// After a whole frame, or with nothing at all.
    Clean,
    /// In the middle of a header or a message.
    Cut,
    /// At a header announcing an empty message.
    Empty,
    /// At a header announcing more than `MAX_FRAME`.
    TooLong(usize),
}

/// The frames a stream holds and how it ends, by a plain walk over it (independent of
/// `frame`'s code): the messages, the bytes their frames take, and the end.
fn walk(stream: &[u8]) -> (Vec<&[u8]>, usize, End) {
    let mut messages = Vec::new();
    let mut used = 0;
    loop {
        let rest = &stream[used..];
        if rest.is_empty() {
            return (messages, used, End::Clean);
        }
        if rest.len() < HEADER_LEN {
            return (messages, used, End::Cut);
        }
        let len = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
        let end = match len {
            0 => End::Empty,
            n if n > MAX_FRAME => End::TooLong(n),
            n if rest.len() - HEADER_LEN < n => End::Cut,
            _ => {
                messages.push(&rest[HEADER_LEN..HEADER_LEN + len]);
                used += HEADER_LEN + len;
                continue;
            }
        };
        return (messages, used, end);
    }
}

fn end_of(error: &FrameError) -> Result<End, TestCaseError> {
    Ok(match error {
        FrameError::Closed { mid_frame: false } => End::Clean,
        FrameError::Closed { mid_frame: true } => End::Cut,
        FrameError::Empty => End::Empty,
        FrameError::TooLong(n) => End::TooLong(*n),
        FrameError::Io(e) => {
            return Err(TestCaseError::fail(format!("I/O error from memory: {e}")));
        }
    })
}

/// Polls a future once: readers over memory are always ready, so no runtime is needed.
fn poll_now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a reader over memory never waits"),
    }
}

/// Frames read one after another until the first error, as the client's reader does.
fn read_all<R: AsyncRead + Unpin>(reader: &mut R) -> (Vec<Vec<u8>>, FrameError) {
    let mut messages = Vec::new();
    loop {
        match poll_now(frame::read_frame(reader)) {
            Ok(message) => messages.push(message),
            Err(error) => return (messages, error),
        }
    }
}

/// A reader that hands out its bytes a few at a time (sizes taken in turn from `sizes`),
/// as a socket may: headers and messages arrive in pieces.
struct Trickle<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    reads: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let size = this.sizes[this.reads % this.sizes.len()]
            .min(buf.remaining())
            .min(this.data.len());
        let (now, later) = this.data.split_at(size);
        buf.put_slice(now);
        this.data = later;
        this.reads += 1;
        Poll::Ready(Ok(()))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `split_frames` returns the whole frames at the front and how many bytes they take,
    /// stopping at a cut frame and failing at a header no frame has; re-framing what it
    /// returns gives the bytes it consumed, up to the 12 header bytes VPP ignores.
    #[test]
    fn split_frames_takes_the_whole_frames_at_the_front(stream in stream()) {
        let (expected, expected_used, end) = walk(&stream);
        match (frame::split_frames(&stream), end) {
            (Err(FrameError::Empty), End::Empty) => {}
            (Err(FrameError::TooLong(n)), End::TooLong(m)) => prop_assert_eq!(n, m),
            (Ok((messages, used)), End::Clean | End::Cut) => {
                prop_assert_eq!(&messages, &expected);
                prop_assert_eq!(used, expected_used);
                let reframed: Vec<u8> = messages.iter().flat_map(|m| frame::framed(m)).collect();
                let mut consumed = stream[..used].to_vec();
                let mut at = 0;
                for message in &messages {
                    consumed[at..at + 8].fill(0);
                    consumed[at + 12..at + HEADER_LEN].fill(0);
                    at += HEADER_LEN + message.len();
                }
                prop_assert_eq!(reframed, consumed);
            }
            (result, end) => {
                return Err(TestCaseError::fail(format!("split {result:?}, expected {end:?}")));
            }
        }
    }

    /// A loop of `read_frame` over the stream, whole or a few bytes at a time, reads the
    /// frames `split_frames` finds and ends as the stream does. At a header that announces
    /// an impossible length it stops right after the header, reading none of the body. (That
    /// it allocates nothing beyond `MAX_FRAME` either is what the `frame_reader` fuzz target
    /// checks, under libFuzzer's malloc limit: a test here cannot count allocations without
    /// an allocator of its own, which takes `unsafe`.)
    #[test]
    fn read_frame_reads_what_split_frames_finds(
        stream in stream(),
        sizes in prop::collection::vec(1usize..24, 1..8),
    ) {
        let (expected, used, end) = walk(&stream);
        let expected: Vec<Vec<u8>> = expected.into_iter().map(<[u8]>::to_vec).collect();

        let mut whole = &stream[..];
        let (messages, error) = read_all(&mut whole);
        prop_assert_eq!(&messages, &expected);
        prop_assert_eq!(end_of(&error)?, end);
        if let End::Empty | End::TooLong(_) = end {
            prop_assert_eq!(whole.len(), stream.len() - used - HEADER_LEN);
        }

        let mut trickle = Trickle { data: &stream, sizes, reads: 0 };
        let (messages, error) = read_all(&mut trickle);
        prop_assert_eq!(&messages, &expected);
        prop_assert_eq!(end_of(&error)?, end);
    }

    /// Frames written with `framed` split back into the same messages, taking every byte.
    #[test]
    fn framed_messages_split_back(messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..200), 0..8)) {
        let stream: Vec<u8> = messages.iter().flat_map(|m| frame::framed(m)).collect();
        let (split, used) = frame::split_frames(&stream).unwrap();
        prop_assert_eq!(used, stream.len());
        prop_assert_eq!(split, messages.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }
}

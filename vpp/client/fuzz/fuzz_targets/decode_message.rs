//! Fuzz target `decode_message` (this file owns it): the first byte picks a message of
//! `nsm_vpp::api::MESSAGES` (two bytes once the table outgrows 256 entries), the rest is a
//! whole message (id, header, body) decoded as that message.
//!
//! Checked for every input:
//! - decoding through the table entry and by name (`dynamic::decode_json`) never panics and
//!   agrees;
//! - what decodes re-encodes (unless a `string x[N]` decoded to more than N-1 bytes of text,
//!   which `FixedString`'s Deserialize refuses), keeps the header bytes, and is canonical:
//!   it decodes to the same header and JSON, re-encodes to the same bytes, decodes the same
//!   with bytes appended, and does not decode without its last byte;
//! - for a few typed messages, typed decode → encode → decode never panics and keeps the
//!   layout (the second encoding is as long as the first).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nsm_vpp::api::{self, MESSAGES};
use nsm_vpp::dynamic::{self, DynamicError, MessageInfo};
use nsm_vpp::message::{self, Message};

fn pick(data: &[u8]) -> Option<(&'static MessageInfo, usize, &[u8])> {
    let (index, rest) = if MESSAGES.len() <= 256 {
        let (&first, rest) = data.split_first()?;
        (usize::from(first), rest)
    } else {
        let (first, rest) = data.split_at_checked(2)?;
        (usize::from(u16::from_be_bytes([first[0], first[1]])), rest)
    };
    Some((&MESSAGES[index % MESSAGES.len()], index, rest))
}

fn is_fixed_string_overflow(error: &DynamicError) -> bool {
    matches!(error, DynamicError::Json { source, .. } if source.to_string().contains("do not fit"))
}

fn check_json(info: &MessageInfo, bytes: &[u8]) {
    let name = info.name;
    let direct = info.decode_json(bytes);
    let by_name = dynamic::decode_json(name, bytes);
    let Ok((header, fields)) = direct else {
        assert!(by_name.is_err(), "{name}: decodes by name only");
        return;
    };
    let (named_header, named_fields) = by_name.expect("decodes through the table, not by name");
    assert_eq!((named_header, &named_fields), (header, &fields));

    let canonical = match info.encode_json(&header, &fields) {
        Ok(canonical) => canonical,
        Err(error) if is_fixed_string_overflow(&error) => return,
        Err(error) => panic!("{name}: decodes but does not re-encode: {error}; {fields}"),
    };
    let header_len = info.shape.header_len();
    assert_eq!(
        canonical[..header_len],
        bytes[..header_len],
        "{name}: header changed"
    );

    let (again_header, again_fields) = info
        .decode_json(&canonical)
        .unwrap_or_else(|error| panic!("{name}: canonical form does not decode: {error}"));
    assert_eq!(again_header, header, "{name}: header changed");
    assert_eq!(again_fields, fields, "{name}: fields changed");
    let twice = info
        .encode_json(&again_header, &again_fields)
        .expect("re-encodes");
    assert_eq!(twice, canonical, "{name}: not a fixed point");

    let mut padded = canonical.clone();
    padded.extend_from_slice(bytes);
    let (padded_header, padded_fields) = info.decode_json(&padded).expect("padded decodes");
    assert_eq!(
        (padded_header, &padded_fields),
        (header, &fields),
        "{name}: tail mattered"
    );
    assert!(
        info.decode_json(&canonical[..canonical.len() - 1]).is_err(),
        "{name}: decodes without the last byte of its canonical form"
    );
}

/// The typed path has no JSON in the way, so text longer than its field reaches
/// `FixedString::encode` (which writes its first N bytes).
fn check_typed<M: Message>(bytes: &[u8]) {
    let Ok((header, value)) = message::decode::<M>(bytes) else {
        return;
    };
    let first = message::encode(&value, header).expect("a decoded message encodes");
    let (again_header, again) = message::decode::<M>(&first).expect("its encoding decodes");
    assert_eq!(again_header, header);
    let second = message::encode(&again, again_header).expect("encodes again");
    assert_eq!(second.len(), first.len(), "{}: layout changed", M::NAME);
}

fuzz_target!(|data: &[u8]| {
    let Some((info, index, bytes)) = pick(data) else {
        return;
    };
    check_json(info, bytes);
    match index % 6 {
        0 => check_typed::<api::SwInterfaceDetails>(bytes),
        1 => check_typed::<api::ShowVersionReply>(bytes),
        2 => check_typed::<api::SockclntCreateReply>(bytes),
        3 => check_typed::<api::TapCreateV3>(bytes),
        4 => check_typed::<api::L3xcDetails>(bytes),
        _ => check_typed::<api::MemifDetails>(bytes),
    }
});

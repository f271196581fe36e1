//! The socket protocol: handshake, silence, ordering, dumps, disconnect.

use std::collections::HashSet;

use super::*;
use nsm_vpp::api::MESSAGES;

#[tokio::test]
async fn the_handshake_lists_every_message_with_memclnt_ids_static_and_the_rest_from_29() {
    let sim = start();
    let client = Raw::connect(&sim).await;

    // u16 id | u32 client_index (0) | u32 context | i32 response | u32 index | ...
    assert_eq!(&client.hello[2..6], &[0, 0, 0, 0]);
    assert_eq!(client.reply.response, 0);
    assert_eq!(client.handle, 0x8000_0001);
    for info in MESSAGES {
        let key = name_crc(info.name, info.crc);
        assert!(client.table.contains_key(&key), "{key} missing");
    }
    let memclnt = [
        ("sockclnt_create_455fb9c4", 15),
        ("sockclnt_create_reply_35166268", 16),
        ("sockclnt_delete_8ac76db6", 17),
        ("sockclnt_delete_reply_8f38b1ee", 18),
        ("control_ping_51077d14", 23),
        ("control_ping_reply_f6b0b8ca", 24),
        ("get_api_json_51077d14", 27),
    ];
    for (name, id) in memclnt {
        assert_eq!(client.table[name], id, "{name}");
    }
    assert!(client.table.contains_key("acl_add_replace_ee5c2f18"));
    assert!(client.table.len() >= MESSAGES.len() + 30);
    let ids: HashSet<u16> = client.table.values().copied().collect();
    assert_eq!(ids.len(), client.table.len(), "ids are unique");
    assert_eq!(*ids.iter().max().unwrap() as usize, client.table.len());
    assert!(client.id::<SwInterfaceDump>() >= 29);

    let order: Vec<u16> = client.reply.message_table.iter().map(|e| e.index).collect();
    assert!(
        !order.is_sorted(),
        "the table comes in hash order, not by id"
    );
    let names: Vec<&str> = client
        .reply
        .message_table
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(!names.is_sorted(), "nor by name");

    let second = Raw::connect(&sim).await;
    assert_eq!(second.handle, 0x8000_0002);
    assert_eq!(second.table, client.table, "one run, one table");
}

#[tokio::test]
async fn the_seed_decides_the_dynamic_ids() {
    let ids = |seed| async move {
        let sim = start_with(|config| config.seed = seed);
        let client = Raw::connect(&sim).await;
        client.table
    };
    let (one, again, other) = (ids(1).await, ids(1).await, ids(2).await);
    assert_eq!(one, again);
    let moved = one.iter().filter(|(name, id)| other[*name] != **id).count();
    assert!(
        moved > one.len() / 2,
        "most dynamic ids move with the seed ({moved})"
    );
    assert_eq!(other["control_ping_51077d14"], 23);
}

#[tokio::test]
async fn wrong_client_index_unknown_id_and_short_message_get_no_reply_and_the_socket_stays_up() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;

    // The request runs (local0 goes up) but its reply goes nowhere.
    let bytes = client.frame_as(&admin_up(0), 0, 1);
    client.write(&bytes).await;
    assert!(client.quiet().await);
    assert!(sim.interface(0).unwrap().admin_up);

    let mut unknown = client.frame(&ControlPing {}, 2);
    unknown[16..18].copy_from_slice(&0xfff0u16.to_be_bytes());
    client.write(&unknown).await;
    assert!(client.quiet().await);

    let full = message::encode(
        &admin_up(0),
        Header {
            msg_id: client.id::<SwInterfaceSetFlags>(),
            client_index: client.handle,
            context: 3,
        },
    )
    .unwrap();
    client.write(&frame::framed(&full[..full.len() - 2])).await;
    assert!(client.quiet().await);

    let stats = sim.stats();
    assert_eq!(
        (stats.wrong_client_index, stats.unknown_ids, stats.truncated),
        (1, 1, 1)
    );
    assert_eq!(stats.silent_drops, 3);
    assert_eq!(stats.requests_by_message["sw_interface_set_flags"], 2);

    client.send(&ControlPing {}, 4).await;
    let (header, reply) = client.recv_as::<ControlPingReply>().await;
    assert_eq!((header.context, reply.retval), (4, 0));
}

#[tokio::test]
async fn a_reply_goes_to_the_client_its_client_index_names() {
    let sim = start();
    let mut asker = Raw::connect(&sim).await;
    let mut named = Raw::connect(&sim).await;
    let bytes = asker.frame_as(&ControlPing {}, named.handle, 9);
    asker.write(&bytes).await;
    let (header, _) = named.recv_as::<ControlPingReply>().await;
    assert_eq!(header.context, 9);
    assert!(asker.quiet().await);
}

#[tokio::test]
async fn every_message_cut_short_or_garbled_is_dropped_without_harm() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let mut garbage = frame::header(0).to_vec();
    garbage.extend(frame::framed(&[0x01]));
    for id in client.table.values() {
        garbage.extend(frame::framed(
            &[&id.to_be_bytes()[..], &[0x80, 0, 0]].concat(),
        ));
    }
    client.write(&garbage).await;
    assert!(client.quiet().await);
    client.call(&ControlPing {}).await;
    let stats = sim.stats();
    assert_eq!(stats.silent_drops as usize, client.table.len() + 2);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let mut bytes = client.frame(&ShowVersion {}, 1);
    bytes.extend(client.frame(&ControlPing {}, 2));
    bytes.extend(client.frame(&admin_up(0), 3));
    bytes.extend(client.frame(&af_packet("veth0"), 4));
    bytes.extend(client.frame(&ControlPing {}, 5));
    client.write(&bytes).await;

    let expected = [
        client.id::<ShowVersionReply>(),
        client.id::<ControlPingReply>(),
        client.id::<SwInterfaceSetFlagsReply>(),
        client.id::<AfPacketCreateV3Reply>(),
        client.id::<ControlPingReply>(),
    ];
    for (context, id) in (1u32..).zip(expected) {
        let reply = client.recv().await;
        assert_eq!(
            (message::id_of(&reply), context_of(&reply)),
            (Some(id), context)
        );
    }
    let (_, version) = {
        client.send(&ShowVersion {}, 6).await;
        client.recv_as::<ShowVersionReply>().await
    };
    assert_eq!(
        (version.program.as_str(), version.version.as_str()),
        ("vpe", "26.06-sim")
    );
}

#[tokio::test]
async fn a_dump_ends_with_the_reply_to_the_control_ping_sent_with_its_context() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    make_af_packet(&mut client, "veth-a").await;
    make_af_packet(&mut client, "veth-b").await;

    let mut bytes = client.frame(&SwInterfaceDump::default(), 7);
    bytes.extend(client.frame(&ControlPing {}, 7));
    client.write(&bytes).await;
    for name in ["local0", "host-veth-a", "host-veth-b"] {
        let (header, details) = client.recv_as::<SwInterfaceDetails>().await;
        assert_eq!((header.context, details.interface_name.as_str()), (7, name));
    }
    // VPP's 18-byte reply: id | context | retval | client_index (0) | vpe_pid.
    let ping = client.recv().await;
    let mut expected = client.id::<ControlPingReply>().to_be_bytes().to_vec();
    expected.extend(7u32.to_be_bytes());
    expected.extend(0i32.to_be_bytes());
    expected.extend(0u32.to_be_bytes());
    expected.extend(29023u32.to_be_bytes());
    assert_eq!(ping, expected);

    let filtered = client
        .dump(&SwInterfaceDump {
            sw_if_index: u32::MAX,
            name_filter_valid: true,
            name_filter: "HOST-VETH-B".into(),
        })
        .await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].interface_dev_type.as_str(), "af-packet");
}

#[tokio::test]
async fn sockclnt_delete_answers_1_then_closes_and_minus_1_for_an_unknown_index() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let wrong = client.call(&SockclntDelete { index: 0x8000_0099 }).await;
    assert_eq!(wrong.response, -1);

    let index = client.handle;
    let reply = client.call(&SockclntDelete { index }).await;
    assert_eq!(reply.response, 1);
    assert!(client.closed().await);
    assert_eq!(sim.stats().open_connections, 0);
}

#[tokio::test]
async fn a_dropped_handle_shuts_the_simulator_down() {
    let sim = start();
    let path = sim.socket_path().to_owned();
    let mut client = Raw::connect(&sim).await;
    let clone = sim.clone();
    drop(sim);
    client.send(&ControlPing {}, 1).await;
    client.recv_as::<ControlPingReply>().await;
    drop(clone);
    assert!(client.closed().await);
    assert!(UnixStream::connect(&path).await.is_err());
}

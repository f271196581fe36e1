//! Devices and interface settings: VPP's names, checks and retvals.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::state::address_of;
use crate::{SimInterface, SimKind};

pub(super) fn vxlan(vni: u32) -> VxlanAddDelTunnelV3 {
    VxlanAddDelTunnelV3 {
        is_add: true,
        instance: u32::MAX,
        src_address: address_of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        dst_address: address_of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))),
        mcast_sw_if_index: u32::MAX,
        decap_next_index: u32::MAX,
        vni,
        ..Default::default()
    }
}

pub(super) fn memif(socket_id: u32, id: u32) -> MemifCreateV2 {
    MemifCreateV2 {
        socket_id,
        id,
        ..Default::default()
    }
}

fn tap(host: &str, tag: &str) -> TapCreateV3 {
    TapCreateV3 {
        id: u32::MAX,
        use_random_mac: true,
        host_if_name_set: true,
        host_if_name: text(host),
        tap_flags: TapFlags::TAP_API_FLAG_TUN,
        tag: tag.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn taps_need_vhost_net_get_tap_n_names_and_refuse_a_taken_host_name() {
    let without = start_with(|config| config.vhost_net = false);
    let mut client = Raw::connect(&without).await;
    let failed = client.call(&tap("nsm0", "")).await;
    assert_eq!((failed.retval, failed.sw_if_index), (-11, u32::MAX));

    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let first = client.call(&tap("nsm0", "conn-1")).await;
    assert_eq!((first.retval, first.sw_if_index), (0, 1));
    let made = sim.interface(1).unwrap();
    assert_eq!((made.name.as_str(), made.tag.as_str()), ("tap0", "conn-1"));
    assert_eq!(made.host_if_name(), Some("nsm0"));
    assert_eq!(client.call(&tap("nsm0", "")).await.retval, -145);
    assert_eq!(client.call(&tap("nsm1", "")).await.sw_if_index, 2);
    let taken = TapCreateV3 {
        id: 0,
        ..tap("nsm2", "")
    };
    assert_eq!(client.call(&taken).await.retval, -71);

    let taps = client
        .dump(&SwInterfaceTapV2Dump {
            sw_if_index: u32::MAX,
        })
        .await;
    let names: Vec<_> = taps
        .iter()
        .map(|t| (t.dev_name.as_str(), t.host_if_name.as_str()))
        .collect();
    assert_eq!(names, [("tap0", "nsm0"), ("tap1", "nsm1")]);

    for not_a_tap in [0, 9] {
        let delete = TapDeleteV2 {
            sw_if_index: not_a_tap,
        };
        assert_eq!(client.call(&delete).await.retval, -2, "{not_a_tap}");
    }
    assert_eq!(client.call(&TapDeleteV2 { sw_if_index: 1 }).await.retval, 0);
    assert_eq!(
        client.call(&tap("nsm3", "")).await.sw_if_index,
        1,
        "a freed index is given again"
    );
}

#[tokio::test]
async fn freed_indices_are_given_again_last_freed_first() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let made = [
        make_af_packet(&mut client, "a").await,
        make_af_packet(&mut client, "b").await,
        make_af_packet(&mut client, "c").await,
    ];
    assert_eq!(made, [1, 2, 3]);
    for host in ["a", "c"] {
        client
            .call(&AfPacketDelete {
                host_if_name: text(host),
            })
            .await;
    }
    let again = [
        make_af_packet(&mut client, "d").await,
        make_af_packet(&mut client, "e").await,
        make_af_packet(&mut client, "f").await,
    ];
    assert_eq!(again, [3, 1, 4]);
}

#[tokio::test]
async fn af_packet_checks_mode_duplicates_and_the_host_side() {
    let sim = start_with(|config| {
        config.host_interfaces = Some(HashSet::from(["veth0".to_owned()]));
    });
    let mut client = Raw::connect(&sim).await;
    let no_mode = AfPacketCreateV3 {
        mode: AfPacketMode(0),
        ..af_packet("veth0")
    };
    let failed = client.call(&no_mode).await;
    assert_eq!((failed.retval, failed.sw_if_index), (-7, u32::MAX));
    assert_eq!(client.call(&af_packet("missing")).await.retval, -71);

    let index = make_af_packet(&mut client, "veth0").await;
    let again = client.call(&af_packet("veth0")).await;
    assert_eq!((again.retval, again.sw_if_index), (-79, index));
    assert_eq!(sim.interface(index).unwrap().name, "host-veth0");
    let listed = client.dump(&AfPacketDump {}).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].host_if_name.as_str(), "veth0");

    let unknown = AfPacketDelete {
        host_if_name: text("nope"),
    };
    assert_eq!(client.call(&unknown).await.retval, -11);
    let delete = AfPacketDelete {
        host_if_name: text("veth0"),
    };
    assert_eq!(client.call(&delete).await.retval, 0);
    assert_eq!(sim.interfaces().len(), 1);
}

#[tokio::test]
async fn memif_needs_its_socket_and_names_itself_after_it() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let add = MemifSocketFilenameAddDelV2 {
        is_add: true,
        socket_id: u32::MAX,
        socket_filename: "abstract:nsm-1,netns_name=/proc/1/ns/net".into(),
    };
    let socket = client.call(&add).await;
    assert_eq!(socket.retval, 0);
    assert!(socket.socket_id != 0 && socket.socket_id != u32::MAX);
    assert_eq!(sim.memif_sockets().len(), 2);
    assert_eq!(
        client.call(&memif(socket.socket_id + 1, 0)).await.retval,
        -73
    );

    let made = client.call(&memif(socket.socket_id, 3)).await;
    assert_eq!(made.retval, 0);
    let name = format!("memif{}/3", socket.socket_id);
    assert_eq!(sim.interface(made.sw_if_index).unwrap().name, name);
    assert_eq!(client.call(&memif(socket.socket_id, 3)).await.retval, -68);

    let remove = MemifSocketFilenameAddDelV2 {
        is_add: false,
        socket_id: socket.socket_id,
        ..Default::default()
    };
    assert_eq!(client.call(&remove).await.retval, -74, "still used");
    // VPP reports the sizes a connected slave runs with, and 1 and 0 otherwise.
    let slave_socket = client
        .call(&MemifSocketFilenameAddDelV2 {
            socket_filename: "abstract:nsm-2".into(),
            ..add.clone()
        })
        .await;
    let slave = MemifCreateV2 {
        role: MemifRole::MEMIF_ROLE_API_SLAVE,
        ..memif(slave_socket.socket_id, 0)
    };
    let slave = client.call(&slave).await.sw_if_index;
    for up in [made.sw_if_index, slave] {
        client
            .call(&SwInterfaceSetFlags {
                sw_if_index: up,
                flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
            })
            .await;
    }
    let sizes = |listed: &[MemifDetails]| -> Vec<(u32, u32, u16)> {
        listed
            .iter()
            .map(|m| (m.sw_if_index, m.ring_size, m.buffer_size))
            .collect()
    };
    let listed = client.dump(&MemifDump {}).await;
    assert_eq!(
        sizes(&listed),
        [(made.sw_if_index, 1, 0), (slave, 1024, 2048)]
    );
    sim.set_carrier(slave, false);
    let listed = client.dump(&MemifDump {}).await;
    assert_eq!(sizes(&listed), [(made.sw_if_index, 1, 0), (slave, 1, 0)]);
    client.call(&MemifDelete { sw_if_index: slave }).await;
    let remove_slave_socket = MemifSocketFilenameAddDelV2 {
        is_add: false,
        socket_id: slave_socket.socket_id,
        ..Default::default()
    };
    assert_eq!(client.call(&remove_slave_socket).await.retval, 0);
    let delete = MemifDelete {
        sw_if_index: made.sw_if_index,
    };
    assert_eq!(client.call(&delete).await.retval, 0);
    assert_eq!(client.call(&remove).await.retval, 0);
    assert_eq!(
        sim.memif_sockets(),
        vec![(0, "/run/vpp/memif.sock".to_owned())]
    );
}

#[tokio::test]
async fn vxlan_tunnels_are_keyed_by_endpoints_and_vni() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let link = AddNodeNext {
        node_name: text("vxlan4-input"),
        next_name: text("ethernet-input"),
    };
    let next = client.call(&link).await;
    assert_eq!((next.retval, next.next_index), (0, 2));
    assert_eq!(client.call(&link).await.next_index, 2, "linked once");
    let bad = AddNodeNext {
        node_name: text("nope"),
        ..link
    };
    assert_eq!(client.call(&bad).await.retval, -63);

    let tunnel = VxlanAddDelTunnelV3 {
        decap_next_index: 2,
        ..vxlan(7)
    };
    let made = client.call(&tunnel).await;
    assert_eq!(made.retval, 0);
    assert_eq!(
        sim.interface(made.sw_if_index).unwrap().name,
        "vxlan_tunnel0"
    );
    assert_eq!(client.call(&tunnel).await.retval, -75);
    let bad_next = VxlanAddDelTunnelV3 {
        decap_next_index: 5,
        ..vxlan(8)
    };
    assert_eq!(client.call(&bad_next).await.retval, -76);

    let listed = client
        .dump(&VxlanTunnelV2Dump {
            sw_if_index: u32::MAX,
        })
        .await;
    assert_eq!(
        (listed.len(), listed[0].vni, listed[0].dst_port),
        (1, 7, 4789)
    );

    let missing = VxlanAddDelTunnelV3 {
        is_add: false,
        ..vxlan(9)
    };
    assert_eq!(client.call(&missing).await.retval, -6);
    let delete = VxlanAddDelTunnelV3 {
        is_add: false,
        ..vxlan(7)
    };
    let deleted = client.call(&delete).await;
    assert_eq!((deleted.retval, deleted.sw_if_index), (0, made.sw_if_index));
}

#[tokio::test]
async fn l2_cross_connects_are_one_way_and_go_with_their_interfaces() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let a = make_af_packet(&mut client, "a").await;
    let b = make_af_packet(&mut client, "b").await;
    let xc = |rx, tx, enable| SwInterfaceSetL2Xconnect {
        rx_sw_if_index: rx,
        tx_sw_if_index: tx,
        enable,
    };
    assert_eq!(client.call(&xc(a, 99, true)).await.retval, -2);
    assert_eq!(client.call(&xc(a, b, true)).await.retval, 0);
    assert_eq!(sim.xconnects(), vec![(a, b)]);
    assert_eq!(client.call(&xc(b, a, true)).await.retval, 0);
    assert_eq!(
        client.call(&xc(a, 0, false)).await.retval,
        0,
        "only rx is checked"
    );
    assert_eq!(sim.xconnects(), vec![(b, a)]);

    client.call(&xc(a, b, true)).await;
    let listed = client.dump(&L2XconnectDump {}).await;
    let pairs: Vec<(u32, u32)> = listed
        .iter()
        .map(|d| (d.rx_sw_if_index, d.tx_sw_if_index))
        .collect();
    assert_eq!(pairs, [(a, b), (b, a)]);
    client
        .call(&AfPacketDelete {
            host_if_name: text("b"),
        })
        .await;
    assert!(sim.xconnects().is_empty(), "both directions went with b");
}

#[tokio::test]
async fn l3xc_policies_per_interface_and_family() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let a = make_af_packet(&mut client, "a").await;
    let b = make_af_packet(&mut client, "b").await;
    let path = FibPath {
        sw_if_index: b,
        ..Default::default()
    };
    let update = |is_ip6, paths: Vec<FibPath>| L3xcUpdate {
        l3xc: L3xc {
            sw_if_index: a,
            is_ip6,
            paths,
        },
    };
    assert_eq!(client.call(&update(false, vec![])).await.retval, -7);
    assert_eq!(
        client.call(&update(false, vec![path.clone()])).await.retval,
        0
    );
    assert_eq!(
        client.call(&update(true, vec![path.clone()])).await.retval,
        0
    );
    let listed = client.dump(&L3xcDump { sw_if_index: a }).await;
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|d| !d.l3xc.is_ip6),
        "VPP leaves is_ip6 unset"
    );
    assert_eq!(sim.l3xc().len(), 2);

    let del = L3xcDel {
        sw_if_index: a,
        is_ip6: true,
    };
    assert_eq!(client.call(&del).await.retval, 0);
    assert_eq!(client.call(&del).await.retval, -7);
    client
        .call(&AfPacketDelete {
            host_if_name: text("b"),
        })
        .await;
    assert_eq!(
        client.call(&update(false, vec![path.clone()])).await.retval,
        -54,
        "no path through a deleted interface"
    );
    assert_eq!(sim.l3xc().len(), 1, "VPP keeps a policy whose path is gone");
    client
        .call(&AfPacketDelete {
            host_if_name: text("a"),
        })
        .await;
    let reborn = make_af_packet(&mut client, "c").await;
    assert_eq!(reborn, a, "the freed index is given again");
    let inherited = client.dump(&L3xcDump { sw_if_index: a }).await;
    assert_eq!(inherited.len(), 1, "the new interface inherits a's policy");
    let del = L3xcDel {
        sw_if_index: a,
        is_ip6: false,
    };
    assert_eq!(client.call(&del).await.retval, 0);
    assert!(sim.l3xc().is_empty());
}

/// Static neighbours as VPP 26.06 keeps them: replaced when added again, -6 when removing
/// one that is not there, -2 on a missing interface, flushed when their interface goes.
#[tokio::test]
async fn static_neighbours_go_with_their_interface() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let a = make_af_packet(&mut client, "a").await;
    let neighbour = |is_add, sw_if_index, ip: IpAddr| IpNeighborAddDel {
        is_add,
        neighbor: IpNeighbor {
            sw_if_index,
            flags: IpNeighborFlags(
                IpNeighborFlags::IP_API_NEIGHBOR_FLAG_STATIC.0
                    | IpNeighborFlags::IP_API_NEIGHBOR_FLAG_NO_FIB_ENTRY.0,
            ),
            mac_address: [2, 0, 0, 0, 0, 1],
            ip_address: address_of(ip),
        },
    };
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2));
    let v6: IpAddr = "fd00::2".parse().unwrap();
    assert_eq!(client.call(&neighbour(true, a, v4)).await.retval, 0);
    assert_eq!(client.call(&neighbour(true, a, v4)).await.retval, 0);
    assert_eq!(client.call(&neighbour(true, a, v6)).await.retval, 0);
    assert_eq!(client.call(&neighbour(true, 999, v4)).await.retval, -2);
    assert_eq!(
        sim.neighbors(),
        vec![(a, v4, [2, 0, 0, 0, 0, 1]), (a, v6, [2, 0, 0, 0, 0, 1])]
    );
    assert_eq!(client.call(&neighbour(false, a, v4)).await.retval, 0);
    assert_eq!(client.call(&neighbour(false, a, v4)).await.retval, -6);
    client
        .call(&AfPacketDelete {
            host_if_name: text("a"),
        })
        .await;
    assert!(sim.neighbors().is_empty(), "flushed with the interface");
}

#[tokio::test]
async fn tags_mtu_and_addresses() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    let orphan = SimInterface::new(SimKind::AfPacket(af_packet("old"))).with_tag("nsm-orphan");
    let index = sim.insert_interface(orphan);
    let listed = client.dump(&SwInterfaceDump::default()).await;
    assert_eq!(listed[1].tag.as_str(), "nsm-orphan");
    assert_eq!(listed[1].interface_name.as_str(), "host-old");

    let tag = |is_add, tag: &str| SwInterfaceTagAddDel {
        is_add,
        sw_if_index: index,
        tag: text(tag),
    };
    assert_eq!(client.call(&tag(true, "")).await.retval, -7);
    assert_eq!(client.call(&tag(true, "nsm-new")).await.retval, 0);
    assert_eq!(sim.interface(index).unwrap().tag, "nsm-new");
    assert_eq!(client.call(&tag(false, "")).await.retval, 0);
    assert_eq!(sim.interface(index).unwrap().tag, "");

    let mtu = SwInterfaceSetMtu {
        sw_if_index: index,
        mtu: [9000, 0, 0, 0],
    };
    assert_eq!(client.call(&mtu).await.retval, 0);
    assert_eq!(sim.interface(index).unwrap().mtu[0], 9000);

    let rx = SwInterfaceSetRxMode {
        sw_if_index: index,
        mode: RxMode::RX_MODE_API_ADAPTIVE,
        ..Default::default()
    };
    assert_eq!(client.call(&rx).await.retval, 0);
    let mode = sim.interface(index).unwrap().rx_mode;
    assert_eq!(mode, Some(RxMode::RX_MODE_API_ADAPTIVE));

    let address = |sw_if_index, is_add| SwInterfaceAddDelAddress {
        sw_if_index,
        is_add,
        del_all: false,
        prefix: Prefix {
            address: address_of(IpAddr::V4(Ipv4Addr::new(10, 1, 1, 1))),
            len: 24,
        },
    };
    assert_eq!(client.call(&address(index, true)).await.retval, 0);
    assert_eq!(client.call(&address(index, true)).await.retval, -127);
    assert_eq!(client.call(&address(0, true)).await.retval, -127);
    assert_eq!(client.call(&address(index, false)).await.retval, 0);
    assert_eq!(client.call(&address(index, false)).await.retval, -60);
    assert_eq!(client.call(&address(42, true)).await.retval, -2);
}

fn socket_file(filename: &str) -> MemifSocketFilenameAddDelV2 {
    MemifSocketFilenameAddDelV2 {
        is_add: true,
        socket_id: u32::MAX,
        socket_filename: filename.into(),
    }
}

fn master(socket_id: u32) -> MemifCreateV2 {
    MemifCreateV2 {
        role: MemifRole::MEMIF_ROLE_API_MASTER,
        ..memif(socket_id, 0)
    }
}

#[tokio::test]
async fn a_master_memif_listens_on_its_socket_file_and_leaves_it_behind() {
    use std::os::unix::fs::FileTypeExt;
    let dir = std::env::temp_dir().join(format!("nsm-sim-memif-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("m.sock");
    let is_socket = |path: &std::path::Path| {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
    };
    let sim = start();
    let mut client = Raw::connect(&sim).await;

    // VPP makes no directory for an absolute path: the bind fails, -14, and the reply names
    // the index the interface had before it was freed again.
    let missing = client
        .call(&socket_file(
            &dir.join("no/such/dir.sock").to_string_lossy(),
        ))
        .await;
    let failed = client.call(&master(missing.socket_id)).await;
    assert_eq!((failed.retval, failed.sw_if_index), (-14, 1));
    assert_eq!(sim.interfaces().len(), 1, "nothing made");

    let socket = client.call(&socket_file(&file.to_string_lossy())).await;
    assert!(!file.exists(), "adding a socket id binds nothing yet");
    let first = client.call(&master(socket.socket_id)).await;
    assert_eq!((first.retval, first.sw_if_index), (0, 1));
    assert!(is_socket(&file));
    std::os::unix::net::UnixStream::connect(&file).expect("it listens");

    // The same file under a second socket id: an active listener is there.
    let twin = client.call(&socket_file(&file.to_string_lossy())).await;
    let refused = client.call(&master(twin.socket_id)).await;
    assert_eq!((refused.retval, refused.sw_if_index), (-14, 2));

    // The last memif closes the socket; deleting the id too; the file stays.
    client
        .call(&MemifDelete {
            sw_if_index: first.sw_if_index,
        })
        .await;
    let remove = MemifSocketFilenameAddDelV2 {
        is_add: false,
        socket_id: socket.socket_id,
        ..Default::default()
    };
    assert_eq!(client.call(&remove).await.retval, 0);
    assert!(is_socket(&file), "VPP leaves the file");
    assert!(std::os::unix::net::UnixStream::connect(&file).is_err());

    // A stale socket file is replaced; a file of another kind is not.
    let again = client.call(&master(twin.socket_id)).await;
    assert_eq!(again.retval, 0, "the stale file was replaced");
    std::fs::write(dir.join("plain"), "x").unwrap();
    let plain = client
        .call(&socket_file(&dir.join("plain").to_string_lossy()))
        .await;
    assert_eq!(client.call(&master(plain.socket_id)).await.retval, -14);
    assert_eq!(std::fs::read(dir.join("plain")).unwrap(), b"x");

    let listed = client.dump(&MemifSocketFilenameDump {}).await;
    let mut ids: Vec<u32> = listed.iter().map(|d| d.socket_id).collect();
    ids.sort();
    let mut expected = vec![0, missing.socket_id, twin.socket_id, plain.socket_id];
    expected.sort();
    assert_eq!(ids, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Interface events: subscription, and delivery after the reply that caused them.

use super::*;

fn subscribe(pid: u32) -> WantInterfaceEvents {
    WantInterfaceEvents {
        enable_disable: 1,
        pid,
    }
}

#[tokio::test]
async fn events_follow_the_reply_of_the_request_that_caused_them() {
    let sim = start();
    let mut watcher = Raw::connect(&sim).await;
    let mut other = Raw::connect(&sim).await;
    assert_eq!(watcher.call(&subscribe(4242)).await.retval, 0);
    let index = make_af_packet(&mut watcher, "veth0").await;

    // Pipelined with a ping: reply, then the event, then the ping's reply.
    let mut bytes = watcher.frame(&admin_up(index), 1);
    bytes.extend(watcher.frame(&ControlPing {}, 2));
    watcher.write(&bytes).await;
    let (header, reply) = watcher.recv_as::<SwInterfaceSetFlagsReply>().await;
    assert_eq!((header.context, reply.retval), (1, 0));
    let (header, event) = watcher.recv_as::<SwInterfaceEvent>().await;
    assert_eq!(header.client_index, watcher.handle);
    assert_eq!(
        event,
        SwInterfaceEvent {
            pid: 4242,
            sw_if_index: index,
            flags: IfStatusFlags(3),
            deleted: false,
        }
    );
    watcher.recv_as::<ControlPingReply>().await;

    // Unchanged flags: no event.
    assert_eq!(watcher.call(&admin_up(index)).await.retval, 0);
    assert!(watcher.quiet().await);

    let delete = AfPacketDelete {
        host_if_name: text("veth0"),
    };
    assert_eq!(watcher.call(&delete).await.retval, 0);
    let (_, event) = watcher.recv_as::<SwInterfaceEvent>().await;
    assert_eq!(
        (event.sw_if_index, event.flags, event.deleted),
        (index, IfStatusFlags(0), true)
    );

    assert!(other.quiet().await, "no subscription, no events");
}

#[tokio::test]
async fn subscribing_twice_or_unsubscribing_twice_is_minus_31() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    assert_eq!(client.call(&subscribe(1)).await.retval, 0);
    assert_eq!(client.call(&subscribe(1)).await.retval, -31);
    assert_eq!(sim.subscribers(), vec![(client.handle, 1)]);
    let unsubscribe = WantInterfaceEvents::default();
    assert_eq!(client.call(&unsubscribe).await.retval, 0);
    assert_eq!(client.call(&unsubscribe).await.retval, -31);
    assert!(sim.subscribers().is_empty());
}

#[tokio::test]
async fn a_closed_connection_loses_its_subscription() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    client.call(&subscribe(1)).await;
    drop(client);
    for _ in 0..100 {
        if sim.subscribers().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the subscription outlived its connection");
}

#[tokio::test]
async fn a_vxlan_tunnel_comes_up_on_creation_and_a_memif_waits_for_carrier() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    client.call(&subscribe(9)).await;

    let tunnel = client.call(&super::devices::vxlan(10)).await;
    assert_eq!(tunnel.retval, 0);
    let (_, event) = client.recv_as::<SwInterfaceEvent>().await;
    assert_eq!(
        (event.sw_if_index, event.flags),
        (tunnel.sw_if_index, IfStatusFlags(3))
    );

    let memif = client.call(&super::devices::memif(0, 1)).await;
    assert_eq!(memif.retval, 0);
    assert!(sim.set_carrier(memif.sw_if_index, false));
    client.call(&admin_up(memif.sw_if_index)).await;
    let (_, event) = client.recv_as::<SwInterfaceEvent>().await;
    assert_eq!(event.flags, IfStatusFlags(1), "admin up, no peer yet");
    sim.set_carrier(memif.sw_if_index, true);
    let (_, event) = client.recv_as::<SwInterfaceEvent>().await;
    assert_eq!(event.flags, IfStatusFlags(3), "the peer connected");
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_how_many_events_it_missed_then_goes_on() {
    use nsm_vpp::client::{Client, Config, Error};
    let sim = start();
    let mut raw = Raw::connect(&sim).await;
    let index = make_af_packet(&mut raw, "veth0").await;
    let client = Client::connect(Config::new(sim.socket_path()))
        .await
        .unwrap();
    let mut events = client.subscribe::<SwInterfaceEvent>().unwrap();
    client.request(&subscribe(7)).await.unwrap();
    // Every flip of the admin flag is an event; nobody reads them meanwhile.
    let flips: u32 = 10_000;
    for flip in 0..flips {
        let flags = match flip % 2 {
            0 => IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
            _ => IfStatusFlags(0),
        };
        let set = SwInterfaceSetFlags {
            sw_if_index: index,
            flags,
        };
        client.request(&set).await.unwrap();
    }
    let missed = match events.next().await {
        Some(Err(Error::EventsMissed { event, missed })) => {
            assert_eq!(event, "sw_interface_event");
            missed
        }
        other => panic!("expected missed events, got {other:?}"),
    };
    assert!(missed > 0 && missed < u64::from(flips), "{missed}");
    // The rest are there, in order, up to the last flip (admin down).
    let mut last = None;
    for _ in missed..u64::from(flips) {
        last = Some(events.next().await.unwrap().unwrap());
    }
    assert_eq!(last.map(|e| e.flags), Some(IfStatusFlags(0)));
}

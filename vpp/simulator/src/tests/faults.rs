//! Injected faults: each affects the next matching request, on any connection.

use std::io::ErrorKind;

use super::*;

#[tokio::test]
async fn fail_next_answers_with_the_retval_and_changes_nothing() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    sim.fail_next("sw_interface_set_flags", -2, 2);
    assert_eq!(client.call(&admin_up(0)).await.retval, -2);
    let mut other = Raw::connect(&sim).await;
    assert_eq!(
        other.call(&admin_up(0)).await.retval,
        -2,
        "on any connection"
    );
    assert!(!sim.interface(0).unwrap().admin_up);
    assert_eq!(client.call(&admin_up(0)).await.retval, 0);
    assert!(sim.interface(0).unwrap().admin_up);

    sim.fail_next("af_packet_create_v3", -11, 1);
    let failed = client.call(&af_packet("veth0")).await;
    assert_eq!((failed.retval, failed.sw_if_index), (-11, u32::MAX));
    assert_eq!(sim.interfaces().len(), 1);
}

// On the paused clock, time moves only when every task waits: the delay is exactly 300 ms of
// virtual time and the other connection's answer takes none, on any machine.
#[tokio::test(start_paused = true)]
async fn a_delay_holds_the_requests_behind_it_on_its_connection_only() {
    let sim = start();
    let mut slow = Raw::connect(&sim).await;
    let mut fast = Raw::connect(&sim).await;
    sim.delay("show_version", Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    let mut bytes = slow.frame(&ShowVersion {}, 1);
    bytes.extend(slow.frame(&ControlPing {}, 2));
    slow.write(&bytes).await;

    fast.call(&ControlPing {}).await;
    assert_eq!(started.elapsed(), Duration::ZERO, "other connections go on");
    slow.recv_as::<ShowVersionReply>().await;
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    slow.recv_as::<ControlPingReply>().await;
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(300),
        "the ping waited its turn"
    );

    sim.delay("show_version", Duration::ZERO);
    let started = tokio::time::Instant::now();
    slow.call(&ShowVersion {}).await;
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn drop_next_runs_the_request_and_loses_its_reply() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    sim.drop_next("af_packet_create_v3", 1);
    client.send(&af_packet("veth0"), 1).await;
    assert!(client.quiet().await);
    assert_eq!(sim.interfaces().len(), 2, "it ran");
    let again = client.call(&af_packet("veth0")).await;
    assert_eq!((again.retval, again.sw_if_index), (-79, 1));
    let stats = sim.stats();
    assert_eq!((stats.injected_drops, stats.silent_drops), (1, 0));
}

#[tokio::test]
async fn close_mid_dump_sends_some_details_then_closes() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    make_af_packet(&mut client, "veth0").await;
    sim.close_mid_dump(1);
    let mut bytes = client.frame(&SwInterfaceDump::default(), 5);
    bytes.extend(client.frame(&ControlPing {}, 5));
    client.write(&bytes).await;
    let (_, details) = client.recv_as::<SwInterfaceDetails>().await;
    assert_eq!(details.interface_name.as_str(), "local0");
    assert!(client.closed().await);

    let mut next = Raw::connect(&sim).await;
    assert_eq!(
        next.dump(&SwInterfaceDump::default()).await.len(),
        2,
        "once only"
    );
}

#[tokio::test]
async fn an_advertised_crc_shows_in_the_tables_of_later_connections() {
    let sim = start();
    let before = Raw::connect(&sim).await;
    sim.advertise_crc("sw_interface_dump", 0xdead_beef);
    let after = Raw::connect(&sim).await;
    assert!(before.table.contains_key("sw_interface_dump_aa610c27"));
    assert!(!after.table.contains_key("sw_interface_dump_aa610c27"));
    assert_eq!(
        after.table["sw_interface_dump_deadbeef"],
        before.table["sw_interface_dump_aa610c27"]
    );
}

#[tokio::test]
async fn a_restart_closes_every_connection_and_forgets_state_pid_and_ids() {
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    make_af_packet(&mut client, "veth0").await;
    client
        .call(&WantInterfaceEvents {
            enable_disable: 1,
            pid: 1,
        })
        .await;
    let old_pid = sim.pid();

    sim.restart();
    assert!(client.closed().await);
    assert_eq!(sim.interfaces().len(), 1);
    assert_eq!(sim.interfaces()[0].name, "local0");
    assert!(sim.subscribers().is_empty());
    assert_ne!(sim.pid(), old_pid);

    let mut fresh = Raw::connect(&sim).await;
    for (name, id) in &client.table {
        if *id >= 29 {
            assert_ne!(fresh.table[name], *id, "{name} kept its id");
        } else {
            assert_eq!(fresh.table[name], *id, "{name} is static");
        }
    }
    assert_eq!(
        make_af_packet(&mut fresh, "veth0").await,
        1,
        "indices start again"
    );
    let ping = {
        fresh.send(&ControlPing {}, 3).await;
        fresh.recv().await
    };
    assert_eq!(&ping[14..18], &sim.pid().to_be_bytes());
}

#[tokio::test]
async fn a_stopped_listener_refuses_connections_until_resumed() {
    let sim = start();
    let mut open = Raw::connect(&sim).await;
    sim.stop_listening();
    let refused = UnixStream::connect(sim.socket_path()).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    open.call(&ControlPing {}).await;

    sim.resume_listening().unwrap();
    let mut again = Raw::connect(&sim).await;
    again.call(&ControlPing {}).await;
    assert_eq!(sim.stats().connections, 2);
}

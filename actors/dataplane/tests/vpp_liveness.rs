//! Liveness and single-pass reconcile of the VPP data plane, on the simulator and on a real
//! VPP (one test body, two back ends, where both can run it):
//!
//! - a reconcile pass reads VPP once for every vWire's check — after a node restart, and
//!   after a VPP restart with every vWire re-made — and its reading is not trusted for a
//!   vWire plumbed since, nor after another VPP restart;
//! - a memif whose link goes down is not a fault (the workload comes and goes), one deleted
//!   or set down is, reported once per plumbing, and our own unplumbing reports nothing;
//! - on a real VPP with veth + af_packet ends in namespaces of the test's own: the probe
//!   from the client's end passes on a live vWire and fails on a broken one, and a host veth
//!   set down, deleted, or left without carrier, or VPP's interface deleted, is reported at
//!   once, without a probe.
//!
//! The ignored test `reconcile_time_for_1000_live_memif_vwires` measures what the issue asks
//! (run it with `--run-ignored only`).

#[path = "vpp/backend.rs"]
#[allow(dead_code)]
mod backend;

use std::time::Duration;

use futures::StreamExt;
use nsm_dataplane::vpp::{KERNEL_EVENT, VPP_EVENT, Vpp};
use nsm_dataplane::{Dataplane, End, Fault, Liveness, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{ConnectionContext, Mechanism, MechanismClass, Plumbing, VWireId};
use nsm_vpp::api::{
    AfPacketDelete, IfStatusFlags, MemifDelete, SwInterfaceDetails, SwInterfaceSetFlags,
};
use nsm_vpp::codec::FixedString;
use tokio::sync::broadcast;
use tokio::time::Instant;

use self::backend::{Backend, Namespaces, Running, Setup};

/// How long a fault may take to be reported.
const REPORTED_WITHIN: Duration = Duration::from_secs(5);
/// How long to wait to be sure that nothing is reported.
const QUIET: Duration = Duration::from_millis(700);

/// Puts the test's data plane under a node name of its own and returns it: tests in other
/// processes make veths in the same namespace, and one node's inventory must not find
/// another test's.
async fn own_node(s: &mut Setup) -> String {
    let node = format!("lv-{}", &VWireId::new_random().0.simple().to_string()[..8]);
    s.vpp = s.data_plane(&node).await;
    node
}

/// `sw_interface_dump`s VPP has answered, where they can be counted (the simulator).
fn dumps(s: &Setup) -> Option<u64> {
    match &s.running {
        Running::Simulator(sim) => Some(
            sim.stats()
                .requests_by_message
                .get("sw_interface_dump")
                .copied()
                .unwrap_or(0),
        ),
        Running::Vpp(_) => None,
    }
}

/// Restarts VPP and waits until the data plane has noticed and connected again.
async fn restart_vpp(s: &mut Setup) {
    let mut lost = s.vpp.lost_state().unwrap();
    lost.borrow_and_update();
    s.restart_vpp();
    tokio::time::timeout(Duration::from_secs(20), lost.changed())
        .await
        .expect("the restart is noticed")
        .unwrap();
}

/// The vWire's `end` interface in VPP, as a dump shows it now.
async fn interface(s: &Setup, vwire: VWireId, end: End) -> SwInterfaceDetails {
    let suffix = format!(":{end}");
    s.tagged_with(vwire)
        .await
        .into_iter()
        .find(|i| i.tag.as_str().ends_with(&suffix))
        .unwrap_or_else(|| panic!("vWire {vwire} has no {end} end in VPP"))
}

/// Sets the vWire's `end` interface down behind the data plane's back.
async fn set_down(s: &Setup, vwire: VWireId, end: End) {
    let down = SwInterfaceSetFlags {
        sw_if_index: interface(s, vwire, end).await.sw_if_index,
        flags: IfStatusFlags(0),
    };
    s.api().await.request(&down).await.unwrap();
}

fn memif_request(vpp: &Vpp) -> PlumbRequest {
    let vwire = VWireId::new_random();
    let memif = || Mechanism::new(MechanismClass::Local, "MEMIF");
    PlumbRequest {
        vwire,
        client: vpp.complete(vwire, End::Client, memif()),
        endpoint: vpp.complete(vwire, End::Endpoint, memif()),
        context: ConnectionContext::default(),
        payload: Payload::Ethernet,
    }
}

fn plumbing(request: &PlumbRequest) -> Plumbing {
    Plumbing {
        dataplane: "vpp".into(),
        dry_run: false,
        client_mechanism: request.client.clone(),
        endpoint_mechanism: request.endpoint.clone(),
        plumbed_at: chrono::Utc::now(),
    }
}

/// What reconcile's heal does: remove the remains, plumb again.
async fn replumb(vpp: &Vpp, request: &PlumbRequest) {
    vpp.unplumb(request.vwire, &plumbing(request))
        .await
        .unwrap();
    vpp.plumb(request.clone()).await.unwrap();
}

async fn plumb_all(vpp: &Vpp, requests: &[PlumbRequest], in_flight: usize) {
    let plumbed: Vec<_> = futures::stream::iter(requests.iter().cloned())
        .map(|r| vpp.plumb(r))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    for outcome in plumbed {
        outcome.unwrap();
    }
}

/// Verifies every vWire, `in_flight` at once, as reconcile does; the problems of each.
async fn verify_all(vpp: &Vpp, requests: &[PlumbRequest], in_flight: usize) -> Vec<Vec<String>> {
    futures::stream::iter(requests.iter().cloned())
        .map(|r| async move { vpp.verify(r).await.unwrap() })
        .buffered(in_flight)
        .collect()
        .await
}

async fn next_fault(faults: &mut broadcast::Receiver<Fault>) -> Fault {
    tokio::time::timeout(REPORTED_WITHIN, faults.recv())
        .await
        .expect("a fault is reported without a probe")
        .unwrap()
}

async fn assert_quiet(faults: &mut broadcast::Receiver<Fault>) {
    tokio::time::sleep(QUIET).await;
    let heard = faults.try_recv();
    assert!(
        matches!(heard, Err(broadcast::error::TryRecvError::Empty)),
        "{heard:?}"
    );
}

async fn a_reconcile_pass_reads_vpp_once_for_every_vwire(s: &mut Setup) {
    let node = own_node(s).await;
    let requests: Vec<PlumbRequest> = (0..20).map(|_| memif_request(&s.vpp)).collect();
    plumb_all(&s.vpp, &requests, 8).await;
    let dumps_since = |s: &Setup, before: Option<u64>| Some(dumps(s)? - before?);

    // A restarted node: nothing known, everything read from VPP, once.
    let node = s.data_plane(&node).await;
    let before = dumps(s);
    node.begin_pass().await.unwrap();
    let problems = verify_all(&node, &requests, 32).await;
    node.end_pass();
    assert!(problems.iter().all(Vec::is_empty), "{problems:?}");
    if let Some(dumps) = dumps_since(s, before) {
        assert_eq!(dumps, 1, "one dump for the whole pass");
    }
    drop(node);

    // A vWire plumbed after the pass read VPP is read afresh, not found missing.
    s.vpp.begin_pass().await.unwrap();
    let late = memif_request(&s.vpp);
    s.vpp.plumb(late.clone()).await.unwrap();
    assert_eq!(s.vpp.verify(late).await.unwrap(), Vec::<String>::new());
    s.vpp.end_pass();

    // VPP restarted: each vWire found missing, its remains looked up and re-made, on one
    // reading.
    restart_vpp(s).await;
    let before = dumps(s);
    s.vpp.begin_pass().await.unwrap();
    for request in &requests {
        let missing = s.vpp.verify(request.clone()).await.unwrap();
        assert_eq!(missing.len(), 2, "{missing:?}");
        replumb(&s.vpp, request).await;
    }
    s.vpp.end_pass();
    if let Some(dumps) = dumps_since(s, before) {
        assert_eq!(dumps, 1, "one dump for the whole pass, heals included");
    }
    let problems = verify_all(&s.vpp, &requests, 8).await;
    assert!(problems.iter().all(Vec::is_empty), "{problems:?}");

    // A reading from before another VPP restart is not believed.
    s.vpp.begin_pass().await.unwrap();
    restart_vpp(s).await;
    let missing = s.vpp.verify(requests[0].clone()).await.unwrap();
    s.vpp.end_pass();
    assert_eq!(missing.len(), 2, "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_pass_reads_vpp_once_for_every_vwire_on_the_simulator() {
    let test = "a_reconcile_pass_reads_vpp_once_for_every_vwire_on_the_simulator";
    if let Some(mut s) = Setup::start(Backend::Simulator, test).await {
        a_reconcile_pass_reads_vpp_once_for_every_vwire(&mut s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_pass_reads_vpp_once_for_every_vwire_on_vpp() {
    let test = "a_reconcile_pass_reads_vpp_once_for_every_vwire_on_vpp";
    if let Some(mut s) = Setup::start(Backend::Vpp, test).await {
        a_reconcile_pass_reads_vpp_once_for_every_vwire(&mut s).await;
    }
}

async fn a_memif_is_faulty_when_deleted_or_set_down_not_when_its_link_drops(s: &mut Setup) {
    own_node(s).await;
    let mut faults = s.vpp.faults().unwrap();
    let request = memif_request(&s.vpp);
    s.vpp.plumb(request.clone()).await.unwrap();
    let liveness = s
        .vpp
        .probe(request.clone(), Duration::from_millis(200))
        .await
        .unwrap();
    assert!(
        matches!(&liveness, Liveness::NotProbed { why } if why.contains("memif")),
        "{liveness:?}"
    );
    // The workload connects and goes away again (on a real VPP nobody connects: the link
    // stays down from the start). Neither is a fault.
    if let Running::Simulator(sim) = &s.running {
        let client = interface(s, request.vwire, End::Client).await;
        assert!(sim.set_carrier(client.sw_if_index, true));
        assert!(sim.set_carrier(client.sw_if_index, false));
    }
    assert_quiet(&mut faults).await;

    set_down(s, request.vwire, End::Endpoint).await;
    let fault = next_fault(&mut faults).await;
    assert_eq!(
        (fault.vwire, fault.what.as_str()),
        (request.vwire, VPP_EVENT)
    );
    assert!(
        fault
            .reason
            .starts_with("the endpoint end's VPP interface memif")
            && fault.reason.ends_with("was set down"),
        "{}",
        fault.reason
    );
    // Once per plumbing: the other end going down too adds nothing.
    set_down(s, request.vwire, End::Client).await;
    assert_quiet(&mut faults).await;

    // The heal deletes and re-makes both ends: our own doing, not a fault.
    replumb(&s.vpp, &request).await;
    assert_quiet(&mut faults).await;
    assert!(s.vpp.verify(request.clone()).await.unwrap().is_empty());

    let delete = MemifDelete {
        sw_if_index: interface(s, request.vwire, End::Client).await.sw_if_index,
    };
    s.api().await.request(&delete).await.unwrap();
    let fault = next_fault(&mut faults).await;
    assert!(
        fault
            .reason
            .starts_with("the client end's VPP interface memif")
            && fault.reason.ends_with("was deleted"),
        "{}",
        fault.reason
    );
    s.vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .unwrap();
    assert_quiet(&mut faults).await;

    // After VPP restarts, the new session's events are watched.
    restart_vpp(s).await;
    s.vpp.plumb(request.clone()).await.unwrap();
    set_down(s, request.vwire, End::Client).await;
    let fault = next_fault(&mut faults).await;
    assert!(fault.reason.ends_with("was set down"), "{}", fault.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memif_is_faulty_when_deleted_or_set_down_not_when_its_link_drops_on_the_simulator() {
    let test =
        "a_memif_is_faulty_when_deleted_or_set_down_not_when_its_link_drops_on_the_simulator";
    if let Some(mut s) = Setup::start(Backend::Simulator, test).await {
        a_memif_is_faulty_when_deleted_or_set_down_not_when_its_link_drops(&mut s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memif_is_faulty_when_deleted_or_set_down_not_when_its_link_drops_on_vpp() {
    let test = "a_memif_is_faulty_when_deleted_or_set_down_not_when_its_link_drops_on_vpp";
    if let Some(mut s) = Setup::start(Backend::Vpp, test).await {
        a_memif_is_faulty_when_deleted_or_set_down_not_when_its_link_drops(&mut s).await;
    }
}

/// A vWire between a client and an endpoint namespace, KERNEL on both ends.
fn kernel_request(vpp: &Vpp, client_ns: &str, endpoint_ns: &str) -> PlumbRequest {
    let vwire = VWireId::new_random();
    let kernel = |ns: &str| {
        let mut m = Mechanism::new(MechanismClass::Local, "KERNEL");
        m.parameters
            .insert("inodeURL".into(), format!("file:///run/netns/{ns}"));
        m
    };
    let mut context = ConnectionContext::default();
    context.ip.src_ip_addrs = vec!["10.71.0.1/30".into()];
    context.ip.dst_ip_addrs = vec!["10.71.0.2/30".into()];
    PlumbRequest {
        vwire,
        client: vpp.complete(vwire, End::Client, kernel(client_ns)),
        endpoint: vpp.complete(vwire, End::Endpoint, kernel(endpoint_ns)),
        context,
        payload: Payload::Ethernet,
    }
}

/// The host side of a veth + af_packet end, as the data plane names it.
fn host_veth(vwire: VWireId, end: End) -> String {
    let letter = match end {
        End::Client => 'c',
        End::Endpoint => 'e',
    };
    format!("vpp-{}-{letter}", &vwire.0.simple().to_string()[..8])
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_af_packet_vwire_is_probed_from_its_client_and_a_broken_one_fails() {
    let test = "an_af_packet_vwire_is_probed_from_its_client_and_a_broken_one_fails";
    let Some(mut s) = Setup::start(Backend::Vpp, test).await else {
        return;
    };
    own_node(&mut s).await;
    let mut namespaces = Namespaces::new();
    let (client_ns, endpoint_ns) = (namespaces.add("c"), namespaces.add("e"));
    let request = kernel_request(&s.vpp, &client_ns, &endpoint_ns);
    s.vpp.plumb(request.clone()).await.unwrap();
    let timeout = Duration::from_secs(2);
    let liveness = s.vpp.probe(request.clone(), timeout).await.unwrap();
    assert!(matches!(liveness, Liveness::Alive { .. }), "{liveness:?}");

    set_down(&s, request.vwire, End::Endpoint).await;
    let liveness = s.vpp.probe(request.clone(), timeout).await.unwrap();
    let Liveness::Dead { what, reason } = &liveness else {
        panic!("{liveness:?}");
    };
    assert!(what.contains("10.71.0.1 → 10.71.0.2"), "{what}");
    assert!(reason.contains("no reply"), "{reason}");

    replumb(&s.vpp, &request).await;
    let liveness = s.vpp.probe(request.clone(), timeout).await.unwrap();
    assert!(matches!(liveness, Liveness::Alive { .. }), "{liveness:?}");
    s.vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_af_packet_end_is_reported_at_once_without_a_probe() {
    let test = "a_broken_af_packet_end_is_reported_at_once_without_a_probe";
    let Some(mut s) = Setup::start(Backend::Vpp, test).await else {
        return;
    };
    own_node(&mut s).await;
    let mut namespaces = Namespaces::new();
    let (client_ns, endpoint_ns) = (namespaces.add("c"), namespaces.add("e"));
    let mut faults = s.vpp.faults().unwrap();
    let request = kernel_request(&s.vpp, &client_ns, &endpoint_ns);
    s.vpp.plumb(request.clone()).await.unwrap();
    assert_quiet(&mut faults).await;
    let (client_host, endpoint_host) = (
        host_veth(request.vwire, End::Client),
        host_veth(request.vwire, End::Endpoint),
    );
    let expect = |fault: Fault, what: &str, reason: &str| {
        assert_eq!((fault.vwire, fault.what.as_str()), (request.vwire, what));
        assert_eq!(fault.reason, reason);
    };

    ip(&["link", "set", &client_host, "down"]);
    let reason = format!(
        "the client end's host veth {client_host} (under VPP's host-{client_host}) was set down"
    );
    expect(next_fault(&mut faults).await, KERNEL_EVENT, &reason);
    replumb(&s.vpp, &request).await;
    assert_quiet(&mut faults).await;

    ip(&["link", "del", &endpoint_host]);
    let reason = format!(
        "the endpoint end's host veth {endpoint_host} (under VPP's host-{endpoint_host}) was deleted"
    );
    expect(next_fault(&mut faults).await, KERNEL_EVENT, &reason);
    replumb(&s.vpp, &request).await;
    assert_quiet(&mut faults).await;

    // The workload sets its own end down: the host side loses its carrier.
    let client_name = request.client.parameters["name"].clone();
    ip(&["-n", &client_ns, "link", "set", &client_name, "down"]);
    let reason = format!(
        "the client end's host veth {client_host} (under VPP's host-{client_host}) lost its \
         carrier (its peer in the workload's namespace is down or gone)"
    );
    expect(next_fault(&mut faults).await, KERNEL_EVENT, &reason);
    replumb(&s.vpp, &request).await;
    assert_quiet(&mut faults).await;

    // VPP's own interface set down, or deleted, behind the forwarder's back: VPP takes the
    // host veth down with it, so the kernel's event or VPP's may tell first.
    let from_either = |fault: Fault, end: End| {
        assert_eq!(fault.vwire, request.vwire);
        assert!([VPP_EVENT, KERNEL_EVENT].contains(&fault.what.as_str()));
        let end = format!("the {end} end's ");
        assert!(fault.reason.starts_with(&end), "{}", fault.reason);
    };
    set_down(&s, request.vwire, End::Client).await;
    from_either(next_fault(&mut faults).await, End::Client);
    replumb(&s.vpp, &request).await;
    assert_quiet(&mut faults).await;
    let delete = AfPacketDelete {
        host_if_name: FixedString::new(endpoint_host.as_str()).unwrap(),
    };
    s.api().await.request(&delete).await.unwrap();
    from_either(next_fault(&mut faults).await, End::Endpoint);
    replumb(&s.vpp, &request).await;
    assert!(s.vpp.verify(request.clone()).await.unwrap().is_empty());
    let liveness = s
        .vpp
        .probe(request.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    assert!(matches!(liveness, Liveness::Alive { .. }), "{liveness:?}");
    s.vpp
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .unwrap();
    assert_quiet(&mut faults).await;
}

/// Reconcile of 1,000 live MEMIF vWires, data-plane level, as the runtime runs it (32
/// vWires checked at once): after a node restart (all whole: one reading, 1,000 checks,
/// the sweep's inventory) and after a VPP restart (all missing: one reading, 1,000 checks
/// and re-plumbs, the inventory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: a minute or two on a real VPP"]
async fn reconcile_time_for_1000_live_memif_vwires() {
    const VWIRES: usize = 1000;
    const CHECKED_AT_ONCE: usize = 32;
    let test = "reconcile_time_for_1000_live_memif_vwires";
    let Some(mut s) = Setup::start(Backend::Vpp, test).await else {
        return;
    };
    let node = own_node(&mut s).await;
    let requests: Vec<PlumbRequest> = (0..VWIRES).map(|_| memif_request(&s.vpp)).collect();
    let began = Instant::now();
    plumb_all(&s.vpp, &requests, 16).await;
    let plumbing_took = began.elapsed();

    let restarted = s.data_plane(&node).await;
    let began = Instant::now();
    restarted.begin_pass().await.unwrap();
    let problems = verify_all(&restarted, &requests, CHECKED_AT_ONCE).await;
    restarted.end_pass();
    let inventory = restarted.inventory().await.unwrap();
    let after_node_restart = began.elapsed();
    assert!(problems.iter().all(Vec::is_empty));
    assert_eq!(inventory.len(), 2 * VWIRES);
    drop(restarted);
    // For comparison: the same checks each reading VPP for itself, as before passes.
    let restarted = s.data_plane(&node).await;
    let began = Instant::now();
    let problems = verify_all(&restarted, &requests, CHECKED_AT_ONCE).await;
    let without_pass = began.elapsed();
    assert!(problems.iter().all(Vec::is_empty));
    drop(restarted);

    restart_vpp(&mut s).await;
    let began = Instant::now();
    s.vpp.begin_pass().await.unwrap();
    let vpp = &s.vpp;
    let healed: Vec<usize> = futures::stream::iter(requests.iter().cloned())
        .map(|request| async move {
            let missing = vpp.verify(request.clone()).await.unwrap();
            replumb(vpp, &request).await;
            missing.len()
        })
        .buffer_unordered(CHECKED_AT_ONCE)
        .collect()
        .await;
    s.vpp.end_pass();
    let inventory = s.vpp.inventory().await.unwrap();
    let after_vpp_restart = began.elapsed();
    assert!(healed.iter().all(|missing| *missing == 2));
    assert_eq!(inventory.len(), 2 * VWIRES);

    // To stderr: nextest shows it with --no-capture, and a test's stdout is the harness's.
    eprintln!(
        "{{\"vwires\": {VWIRES}, \"plumb_all_ms\": {}, \"reconcile_after_node_restart_ms\": {}, \"checks_after_node_restart_without_pass_ms\": {}, \"reconcile_after_vpp_restart_ms\": {}}}",
        plumbing_took.as_millis(),
        after_node_restart.as_millis(),
        without_pass.as_millis(),
        after_vpp_restart.as_millis()
    );
}

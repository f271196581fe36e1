//! One end of a vWire as a veth pair between a workload's namespace and this process's (the
//! kernel half of the VPP forwarder's veth + af_packet), against real namespaces: checked
//! with iproute2 rather than with our own code, verified, removed, refused without leaving
//! anything, and found and removed by the inventory.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN). Outside CI a test without them says so and
//! passes; with `CI=true` it fails. The host sides live in this process's namespace, the
//! host's, so every name is unique to the run and removed when the test ends.

use std::collections::BTreeMap;
use std::process::Command;

use nsm_dataplane::kernel::{self, Kernel, netns};
use nsm_dataplane::{Dataplane, DataplaneError, End};
use nsm_domain::vwire::{
    ConnectionContext, EthernetContext, IpContext, Mechanism, MechanismClass, Route, VWireId,
};

/// What one test makes, by a tag unique to it: named namespaces and links in this
/// namespace, all removed when dropped.
struct Scratch {
    tag: String,
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl Scratch {
    fn new() -> Self {
        Self {
            tag: uuid::Uuid::new_v4().simple().to_string()[..6].to_owned(),
            namespaces: Vec::new(),
            links: Vec::new(),
        }
    }

    /// A fresh named namespace; its name.
    async fn namespace(&mut self, what: &str) -> String {
        let name = format!("nsmh-{}-{what}", self.tag);
        netns::create_named(&name).await.expect("make a namespace");
        self.namespaces.push(name.clone());
        name
    }

    /// A link name in this namespace, unique to the test (at most 15 bytes).
    fn host_name(&mut self, what: &str) -> String {
        let name = format!("vh{}{what}", self.tag);
        assert!(name.len() <= 15, "{name}");
        self.links.push(name.clone());
        name
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for link in &self.links {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
        for name in &self.namespaces {
            let _ = netns::delete_named(name);
        }
    }
}

/// Whether this test can run; panics under CI without the capabilities.
fn capable() -> bool {
    nsm_test_support::capable_or_skip("the kernel tests", &kernel::missing_capabilities())
}

/// `ip ARGS`: whether it succeeded, and what it printed.
fn ip(args: &[&str]) -> (bool, String) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Whether link `name` exists, in namespace `ns` or (`None`) in this one.
fn exists(ns: Option<&str>, name: &str) -> bool {
    match ns {
        Some(ns) => ip(&["-n", ns, "link", "show", name]).0,
        None => ip(&["link", "show", name]).0,
    }
}

/// The word after `key` in `text` (`ip` prints `key value` pairs).
fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace().skip_while(|w| *w != key).nth(1)
}

/// The peer's index `ip -o link` shows a veth with (`NAME@ifN:`).
fn peer_index(text: &str, name: &str) -> String {
    let start = format!("{name}@if");
    let rest = &text[text
        .find(&start)
        .unwrap_or_else(|| panic!("{start} in {text}"))
        + start.len()..];
    rest.split(':').next().unwrap().to_owned()
}

fn own_index(text: &str) -> String {
    text.split(':').next().unwrap().trim().to_owned()
}

fn kernel_end(ns: &str, name: Option<&str>) -> Mechanism {
    let mut parameters =
        BTreeMap::from([("inodeURL".to_owned(), format!("file:///run/netns/{ns}"))]);
    if let Some(name) = name {
        parameters.insert("name".into(), name.into());
    }
    Mechanism {
        cls: MechanismClass::Local,
        mechanism_type: "KERNEL".into(),
        parameters,
    }
}

/// A point-to-point context: the client 172.30.0.1 with a route to 10.30.0.0/16 through the
/// endpoint 172.30.0.2, and MAC addresses for both.
fn context() -> ConnectionContext {
    ConnectionContext {
        ip: IpContext {
            src_ip_addrs: vec!["172.30.0.1/32".into()],
            dst_ip_addrs: vec!["172.30.0.2/32".into()],
            src_routes: vec![
                Route {
                    prefix: "172.30.0.2/32".into(),
                    next_hop: String::new(),
                },
                Route {
                    prefix: "10.30.0.0/16".into(),
                    next_hop: "172.30.0.2".into(),
                },
            ],
            dst_routes: vec![Route {
                prefix: "172.30.0.1/32".into(),
                next_hop: String::new(),
            }],
            ..IpContext::default()
        },
        ethernet: EthernetContext {
            src_mac: "02:30:00:00:00:01".into(),
            dst_mac: "02:30:00:00:00:02".into(),
            ..EthernetContext::default()
        },
        mtu: Some(1400),
        ..ConnectionContext::default()
    }
}

async fn node(name: &str) -> Kernel {
    Kernel::start(name)
        .await
        .expect("start the kernel data plane")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_end_is_made_as_the_kernel_forwarder_makes_it_and_reaches_this_namespace() {
    if !capable() {
        return;
    }
    let mut scratch = Scratch::new();
    let ns = scratch.namespace("c").await;
    let host = scratch.host_name("c");
    let node_name = format!("hv-make-{}", scratch.tag);
    let kernel = node(&node_name).await;
    let vwire = VWireId::new_random();
    let mechanism = kernel_end(&ns, Some("nsm-1"));
    let context = context();

    let (work, mac) = kernel
        .make_host_veth(vwire, End::Client, &mechanism, &context, &host)
        .await
        .expect("make the pair");
    assert!(
        work.operations.iter().any(|o| o.contains("172.30.0.1/32")),
        "{:?}",
        work.operations
    );
    let tag = format!("alias nsm-rs vwire={vwire} end=client node={node_name}");

    // The workload's side, as the kernel forwarder makes a client end.
    let (ok, workload) = ip(&["-d", "-n", &ns, "link", "show", "nsm-1"]);
    assert!(ok, "nsm-1 is in {ns}");
    for expected in ["mtu 1400", "state UP", "link/ether 02:30:00:00:00:01", &tag] {
        assert!(
            workload.contains(expected),
            "{expected:?} not in {workload}"
        );
    }
    let (_, addresses) = ip(&["-n", &ns, "addr", "show", "dev", "nsm-1"]);
    assert!(addresses.contains("inet 172.30.0.1/32"), "{addresses}");
    let (_, routes) = ip(&["-n", &ns, "route", "show", "dev", "nsm-1"]);
    assert!(routes.contains("172.30.0.2 "), "{routes}");
    assert!(routes.contains("10.30.0.0/16 via 172.30.0.2"), "{routes}");

    // The host side, here.
    let (ok, here) = ip(&["-d", "link", "show", &host]);
    assert!(ok, "{host} is in this namespace");
    let shown_mac = mac.map(|b| format!("{b:02x}")).join(":");
    for expected in [
        "mtu 1400",
        "state UP",
        &format!("link/ether {shown_mac}"),
        &tag,
    ] {
        assert!(here.contains(expected), "{expected:?} not in {here}");
    }
    let (_, host_addresses) = ip(&["addr", "show", "dev", &host]);
    assert!(
        !host_addresses.contains("inet "),
        "no address here: {host_addresses}"
    );
    // In the node's group, as the workload's side is.
    let group = after(&here, "group").expect("a group");
    assert_ne!(group, "default", "{here}");
    assert_eq!(after(&workload, "group"), Some(group), "{workload}");
    // And they are each other's peer.
    let (_, host_line) = ip(&["-o", "link", "show", &host]);
    let (_, workload_line) = ip(&["-o", "-n", &ns, "link", "show", "nsm-1"]);
    assert_eq!(peer_index(&host_line, &host), own_index(&workload_line));
    assert_eq!(peer_index(&workload_line, "nsm-1"), own_index(&host_line));

    let verify = || kernel.verify_host_veth(vwire, End::Client, &mechanism, &context, &host);
    assert_eq!(verify().await, Vec::<String>::new());
    assert!(ip(&["link", "del", &host]).0);
    let problems = verify().await;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(
            |p| p.contains(&format!("host side of the client end {host}")) && p.contains("missing")
        ),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("the client end nsm-1") && p.contains("missing")),
        "{problems:?}"
    );

    kernel
        .make_host_veth(vwire, End::Client, &mechanism, &context, &host)
        .await
        .expect("make it again");
    let work = kernel
        .remove_host_veth(vwire, End::Client, &mechanism, &host)
        .await
        .expect("remove");
    assert!(
        work.operations.iter().any(|o| o.contains("removed")),
        "{work:?}"
    );
    assert!(!exists(None, &host), "{host} is gone");
    assert!(!exists(Some(&ns), "nsm-1"), "nsm-1 went with it");
    let work = kernel
        .remove_host_veth(vwire, End::Client, &mechanism, &host)
        .await
        .expect("removing what is gone is fine");
    assert!(
        work.operations.iter().any(|o| o.contains("nothing")),
        "{work:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_problem_and_leave_nothing() {
    if !capable() {
        return;
    }
    let mut scratch = Scratch::new();
    let ns = scratch.namespace("c").await;
    let kernel = node(&format!("hv-refuse-{}", scratch.tag)).await;
    // In the workload's namespace: a link holding a name and an address (a veth pair: this
    // kernel may lack the dummy driver).
    assert!(
        ip(&[
            "-n", &ns, "link", "add", "taken0", "type", "veth", "peer", "taken1"
        ])
        .0
    );
    assert!(ip(&["-n", &ns, "addr", "add", "172.30.9.9/32", "dev", "taken0"]).0);
    // Here: a link holding a name.
    let taken_here = scratch.host_name("t");
    let its_peer = scratch.host_name("u");
    assert!(
        ip(&[
            "link",
            "add",
            &taken_here,
            "type",
            "veth",
            "peer",
            &its_peer
        ])
        .0
    );

    let fresh = scratch.host_name("f");
    let with_address = |address: &str| {
        let mut context = context();
        context.ip.src_ip_addrs = vec![format!("{address}/32")];
        context
    };
    let unreachable = {
        let mut context = context();
        context.ip.src_routes = vec![Route {
            prefix: "10.77.0.0/16".into(),
            next_hop: "192.0.2.1".into(),
        }];
        context
    };
    let with_vlan = {
        let mut context = context();
        context.ethernet.vlan_tag = 100;
        context
    };
    let here_too = Mechanism {
        parameters: BTreeMap::from([
            ("inodeURL".to_owned(), "file:///proc/self/ns/net".to_owned()),
            ("name".to_owned(), fresh.clone()),
        ]),
        ..kernel_end(&ns, None)
    };
    let missing = kernel_end("nsmh-no-such-namespace", Some("nsm-1"));
    let good = kernel_end(&ns, Some("nsm-1"));
    let taken_here_message = format!("interface name {taken_here} is already taken");
    type Case<'a> = (Mechanism, ConnectionContext, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (missing, context(), &fresh, "does not exist"),
        (
            kernel_end(&ns, Some("taken0")),
            context(),
            &fresh,
            "interface name taken0 is already taken",
        ),
        (good.clone(), context(), &taken_here, &taken_here_message),
        (
            good.clone(),
            with_address("172.30.9.9"),
            &fresh,
            "address 172.30.9.9 is already on interface",
        ),
        (good.clone(), with_vlan, &fresh, "vlan_tag"),
        (
            good.clone(),
            context(),
            "much-too-long-name",
            "host-side interface name",
        ),
        (here_too, context(), &fresh, "would both be interface"),
        // Refused by the kernel once the pair exists: undone.
        (
            good.clone(),
            unreachable,
            &fresh,
            "next hop 192.0.2.1 is not reachable",
        ),
    ];
    for (mechanism, context, host, expected) in cases {
        let vwire = VWireId::new_random();
        let error = kernel
            .make_host_veth(vwire, End::Client, &mechanism, &context, host)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{expected:?} not in {error}"
        );
        if expected.contains("already") || expected.contains("both") {
            assert!(matches!(error, DataplaneError::Conflict(_)), "{error:?}");
        }
        assert!(!exists(None, &fresh), "{expected}: left {fresh} here");
        assert!(
            !exists(Some(&ns), "nsm-1"),
            "{expected}: left nsm-1 in {ns}"
        );
        let found = kernel.inventory().await.unwrap();
        assert!(
            found.iter().all(|o| o.vwire != Some(vwire)),
            "{expected}: left {found:?}"
        );
    }
    // What was there before is untouched.
    assert!(exists(Some(&ns), "taken0") && exists(None, &taken_here));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_finds_both_sides_and_removing_either_removes_the_pair() {
    if !capable() {
        return;
    }
    let mut scratch = Scratch::new();
    let client_ns = scratch.namespace("c").await;
    let endpoint_ns = scratch.namespace("e").await;
    let host_c = scratch.host_name("c");
    let host_e = scratch.host_name("e");
    let kernel = node(&format!("hv-inv-{}", scratch.tag)).await;
    let vwire = VWireId::new_random();
    // Both ends of one vWire, so that both host sides share this namespace and the tag's
    // end is what tells them apart.
    let client = kernel_end(&client_ns, Some("nsm-1"));
    let endpoint = kernel_end(&endpoint_ns, None);
    let endpoint_name = kernel::default_interface_name(vwire, End::Endpoint);
    let context = context();
    let make_endpoint =
        || kernel.make_host_veth(vwire, End::Endpoint, &endpoint, &context, &host_e);
    kernel
        .make_host_veth(vwire, End::Client, &client, &context, &host_c)
        .await
        .expect("the client end");
    make_endpoint().await.expect("the endpoint end");
    // The endpoint end gets the dst_ fields.
    let (_, addresses) = ip(&["-n", &endpoint_ns, "addr", "show", "dev", &endpoint_name]);
    assert!(addresses.contains("inet 172.30.0.2/32"), "{addresses}");
    let (_, link) = ip(&["-n", &endpoint_ns, "link", "show", &endpoint_name]);
    assert!(link.contains("link/ether 02:30:00:00:00:02"), "{link}");

    let own = netns::own_url();
    let found: Vec<_> = kernel
        .inventory()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.vwire == Some(vwire))
        .collect();
    assert_eq!(found.len(), 4, "{found:?}");
    for (url, name) in [
        (own.clone(), host_c.as_str()),
        (own.clone(), host_e.as_str()),
        (format!("file:///run/netns/{client_ns}"), "nsm-1"),
        (
            format!("file:///run/netns/{endpoint_ns}"),
            endpoint_name.as_str(),
        ),
    ] {
        let listed = |o: &&nsm_dataplane::DataplaneObject| {
            o.locator.starts_with(&format!("{url}#")) && o.locator.ends_with(&format!("#{name}"))
        };
        assert!(
            found.iter().any(|o| listed(&o)),
            "{url} {name} in {found:?}"
        );
    }

    // The endpoint end's host side alone, as reconcile would remove an orphan: its pair
    // goes, the client end's stays.
    let host_side: Vec<_> = found
        .iter()
        .filter(|o| o.locator.ends_with(&format!("#{host_e}")))
        .cloned()
        .collect();
    let work = kernel.remove(host_side).await.unwrap();
    assert!(
        work.operations
            .iter()
            .any(|o| o.contains(&format!("removed {host_e}"))),
        "{work:?}"
    );
    assert!(!exists(None, &host_e) && !exists(Some(&endpoint_ns), &endpoint_name));
    assert!(exists(None, &host_c) && exists(Some(&client_ns), "nsm-1"));

    // Removed by tag when neither name is right: only the endpoint end's.
    make_endpoint().await.expect("the endpoint end again");
    let nameless = Mechanism::new(MechanismClass::Local, "KERNEL");
    kernel
        .remove_host_veth(vwire, End::Endpoint, &nameless, "vh-wrong")
        .await
        .expect("remove by tag");
    assert!(!exists(None, &host_e), "{host_e} found by its tag");
    assert!(exists(None, &host_c), "{host_c} is the client end's");

    let left: Vec<_> = kernel
        .inventory()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.vwire == Some(vwire))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    kernel.remove(left).await.unwrap();
    assert!(!exists(None, &host_c) && !exists(Some(&client_ns), "nsm-1"));
    let found = kernel.inventory().await.unwrap();
    assert!(found.iter().all(|o| o.vwire != Some(vwire)), "{found:?}");
}

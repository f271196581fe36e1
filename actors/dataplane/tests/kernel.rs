//! The kernel data plane against real network namespaces: plumb, probe, verify, unplumb,
//! inventory and removal, and refusals that leave nothing behind.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN). Outside CI a test without them says so and
//! passes; with `CI=true` it fails.

use std::collections::BTreeMap;
use std::time::Duration;

use nsm_dataplane::kernel::{self, Kernel, netns};
use nsm_dataplane::{Dataplane, DataplaneError, Liveness, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{
    ConnectionContext, IpContext, Mechanism, MechanismClass, Plumbing, Route, VWireId,
};

/// Named namespaces removed when dropped.
struct Namespaces(Vec<String>);

impl Namespaces {
    async fn make(prefix: &str, names: &[&str]) -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let mut made = Vec::new();
        for name in names {
            let full = format!("{prefix}-{tag}-{name}");
            netns::create_named(&full).await.expect("make a namespace");
            made.push(full);
        }
        Self(made)
    }

    fn url(&self, i: usize) -> String {
        format!("file:///run/netns/{}", self.0[i])
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = netns::delete_named(name);
        }
    }
}

/// Whether this test can run; panics under CI without the capabilities.
fn capable() -> bool {
    nsm_test_support::capable_or_skip("the kernel tests", &kernel::missing_capabilities())
}

fn kernel_end(url: &str, name: Option<&str>) -> Mechanism {
    let mut parameters = BTreeMap::from([("inodeURL".to_owned(), url.to_owned())]);
    if let Some(name) = name {
        parameters.insert("name".into(), name.into());
    }
    Mechanism {
        cls: MechanismClass::Local,
        mechanism_type: "KERNEL".into(),
        parameters,
    }
}

fn p2p(client: &str, endpoint: &str) -> ConnectionContext {
    let host = |a: &str| format!("{a}/32");
    ConnectionContext {
        ip: IpContext {
            src_ip_addrs: vec![host(client)],
            dst_ip_addrs: vec![host(endpoint)],
            src_routes: vec![Route {
                prefix: host(endpoint),
                next_hop: String::new(),
            }],
            dst_routes: vec![Route {
                prefix: host(client),
                next_hop: String::new(),
            }],
            ..IpContext::default()
        },
        mtu: Some(1450),
        ..ConnectionContext::default()
    }
}

fn plumbing(request: &PlumbRequest) -> Plumbing {
    Plumbing {
        dataplane: "kernel".into(),
        dry_run: false,
        client_mechanism: request.client.clone(),
        endpoint_mechanism: request.endpoint.clone(),
        plumbed_at: chrono::Utc::now(),
    }
}

async fn node(name: &str) -> Kernel {
    Kernel::start(name)
        .await
        .expect("start the kernel data plane")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vwire_carries_pings_and_leaves_nothing_when_unplumbed() {
    if !capable() {
        return;
    }
    let spaces = Namespaces::make("nsmk", &["c", "e"]).await;
    let kernel = node("kt-plumb").await;
    let request = PlumbRequest {
        vwire: VWireId::new_random(),
        payload: Payload::Ethernet,
        client: kernel_end(&spaces.url(0), Some("nsm-1")),
        endpoint: kernel_end(&spaces.url(1), Some("nse-1")),
        context: p2p("172.31.0.1", "172.31.0.2"),
    };
    let work = kernel.plumb(request.clone()).await.expect("plumb");
    assert!(!work.dry_run);
    assert!(
        work.operations.iter().any(|o| o.contains("172.31.0.1/32")),
        "{:?}",
        work.operations
    );
    assert_eq!(
        kernel.verify(request.clone()).await.unwrap(),
        Vec::<String>::new()
    );
    let liveness = kernel
        .probe(request.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    assert!(matches!(liveness, Liveness::Alive { .. }), "{liveness:?}");
    let found = kernel.inventory().await.unwrap();
    let ours: Vec<_> = found
        .iter()
        .filter(|o| o.vwire == Some(request.vwire))
        .collect();
    assert_eq!(ours.len(), 2, "{found:?}");
    // As iproute2 sees them: MTU, up, the tag.
    for (ns, name, end) in [
        (&spaces.0[0], "nsm-1", "client"),
        (&spaces.0[1], "nse-1", "endpoint"),
    ] {
        let shown = std::process::Command::new("ip")
            .args(["-d", "-n", ns, "link", "show", name])
            .output()
            .expect("run ip");
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.contains("mtu 1450") && shown.contains("state UP"),
            "{shown}"
        );
        let tag = format!(
            "alias nsm-rs vwire={} end={end} node=kt-plumb",
            request.vwire
        );
        assert!(shown.contains(&tag), "{shown}");
    }

    kernel
        .unplumb(request.vwire, &plumbing(&request))
        .await
        .expect("unplumb");
    let found = kernel.inventory().await.unwrap();
    assert!(
        found.iter().all(|o| o.vwire != Some(request.vwire)),
        "{found:?}"
    );
    let problems = kernel.verify(request.clone()).await.unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_problem_and_leave_nothing() {
    if !capable() {
        return;
    }
    let spaces = Namespaces::make("nsmk", &["c", "e"]).await;
    let kernel = node("kt-refuse").await;
    let good = PlumbRequest {
        vwire: VWireId::new_random(),
        payload: Payload::Ethernet,
        client: kernel_end(&spaces.url(0), Some("nsm-1")),
        endpoint: kernel_end(&spaces.url(1), None),
        context: p2p("172.31.1.1", "172.31.1.2"),
    };
    kernel.plumb(good.clone()).await.expect("the first vWire");

    let taken = PlumbRequest {
        vwire: VWireId::new_random(),
        context: p2p("172.31.1.5", "172.31.1.6"),
        ..good.clone()
    };
    let clash = PlumbRequest {
        vwire: VWireId::new_random(),
        client: kernel_end(&spaces.url(0), Some("nsm-2")),
        ..good.clone()
    };
    let unreachable = PlumbRequest {
        vwire: VWireId::new_random(),
        payload: Payload::Ethernet,
        client: kernel_end(&spaces.url(0), Some("nsm-3")),
        endpoint: kernel_end(&spaces.url(1), Some("nse-3")),
        context: {
            let mut context = p2p("172.31.1.9", "172.31.1.10");
            context.ip.src_routes.push(Route {
                prefix: "10.77.0.0/16".into(),
                next_hop: "192.0.2.1".into(),
            });
            context
        },
    };
    let missing = PlumbRequest {
        vwire: VWireId::new_random(),
        client: kernel_end("file:///run/netns/nsm-no-such-namespace", Some("nsm-4")),
        ..good.clone()
    };
    let cases: [(PlumbRequest, &str); 4] = [
        (taken, "interface name nsm-1 is already taken"),
        (clash, "address 172.31.1.1 is already on interface"),
        (unreachable, "next hop 192.0.2.1 is not reachable"),
        (missing, "does not exist"),
    ];
    for (request, expected) in cases {
        let error = kernel.plumb(request.clone()).await.unwrap_err();
        assert!(
            error.to_string().contains(expected),
            "{expected:?} not in {error}"
        );
        if expected.contains("already") {
            assert!(matches!(error, DataplaneError::Conflict(_)), "{error:?}");
        }
        let found = kernel.inventory().await.unwrap();
        assert!(
            found.iter().all(|o| o.vwire != Some(request.vwire)),
            "{expected}: left {found:?}"
        );
    }
    // Only the first vWire's two ends exist.
    let found = kernel.inventory().await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_found_by_tag_and_removed() {
    if !capable() {
        return;
    }
    let spaces = Namespaces::make("nsmk", &["c", "e"]).await;
    let kernel = node("kt-orphan").await;
    let other_node = node("kt-orphan-other").await;
    let request = |client: &str, endpoint: &str, vwire| PlumbRequest {
        vwire,
        payload: Payload::Ethernet,
        client: kernel_end(&spaces.url(0), Some(client)),
        endpoint: kernel_end(&spaces.url(1), Some(endpoint)),
        context: ConnectionContext::default(),
    };
    let kept = request("nsm-k", "nse-k", VWireId::new_random());
    let orphan = request("nsm-o", "nse-o", VWireId::new_random());
    let foreign = request("nsm-f", "nse-f", VWireId::new_random());
    kernel.plumb(kept.clone()).await.unwrap();
    kernel.plumb(orphan.clone()).await.unwrap();
    other_node.plumb(foreign.clone()).await.unwrap();

    let found = kernel.inventory().await.unwrap();
    assert_eq!(
        found.len(),
        4,
        "another node's links are not ours: {found:?}"
    );
    let orphans: Vec<_> = found
        .into_iter()
        .filter(|o| o.vwire == Some(orphan.vwire))
        .collect();
    let work = kernel.remove(orphans).await.unwrap();
    // Removing either end removes the pair; which comes first depends on the order the
    // namespaces are listed in.
    let removed = |name: &str| {
        work.operations
            .iter()
            .any(|o| o.contains(&format!("removed {name}")))
    };
    assert!(removed("nsm-o") || removed("nse-o"), "{work:?}");
    let left = kernel.inventory().await.unwrap();
    assert!(left.iter().all(|o| o.vwire == Some(kept.vwire)), "{left:?}");
    assert_eq!(other_node.inventory().await.unwrap().len(), 2);
}

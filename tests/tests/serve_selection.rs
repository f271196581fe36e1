//! Endpoint selection by `nsm serve`, end to end: a Network Service's `matches` route a
//! Request by its labels (source selector) to endpoints by theirs (destination selector,
//! with NSM's `{{.label}}` templates), `fallthrough` goes on to the next match, and
//! `Destination.weight` shares Requests out in proportion (a smooth weighted round robin).

use std::collections::BTreeMap;

use futures::StreamExt;
use nsm_proto::registry::{
    Destination, Match, NetworkService, NetworkServiceEndpoint, NetworkServiceLabels,
};
use nsm_tests::fake_endpoint::FakeEndpoint;
use nsm_tests::mesh::{Node, first_request};
use nsm_tests::programs::refused;
use tonic::Code;

fn labels(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A match: requests whose labels contain `source` go to endpoints whose labels contain
/// one of `routes` (selector, weight).
fn rule(source: &[(&str, &str)], routes: &[(&[(&str, &str)], u32)], fallthrough: bool) -> Match {
    Match {
        source_selector: labels(source),
        routes: routes
            .iter()
            .map(|(selector, weight)| Destination {
                destination_selector: labels(selector),
                weight: *weight,
            })
            .collect(),
        fallthrough,
        ..Default::default()
    }
}

async fn register_service(node: &Node, name: &str, matches: Vec<Match>) {
    node.services()
        .register(NetworkService {
            name: name.into(),
            payload: "IP".into(),
            matches,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Starts a fake endpoint `name` and registers it for `service` with `with` labels.
async fn endpoint(
    node: &Node,
    dir: &std::path::Path,
    service: &str,
    name: &str,
    with: &[(&str, &str)],
) -> FakeEndpoint {
    let fake = FakeEndpoint::start(dir, name).await;
    node.endpoints()
        .register(NetworkServiceEndpoint {
            name: name.into(),
            network_service_names: vec![service.into()],
            network_service_labels: [(
                service.to_owned(),
                NetworkServiceLabels {
                    labels: labels(with),
                },
            )]
            .into(),
            url: fake.url(),
            ..Default::default()
        })
        .await
        .unwrap();
    fake
}

/// The endpoint a new Request for `service` labelled `with` lands on.
async fn chosen(node: &Node, service: &str, with: &[(&str, &str)]) -> String {
    node.network_service()
        .request(first_request(service, "nsc-1", with))
        .await
        .unwrap()
        .into_inner()
        .network_service_endpoint_name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_of_3_to_1_share_400_requests_3_to_1() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let gold: &[(&str, &str)] = &[("tier", "gold")];
    let silver: &[(&str, &str)] = &[("tier", "silver")];
    register_service(
        &node,
        "icmp",
        vec![rule(&[], &[(gold, 3), (silver, 1)], false)],
    )
    .await;
    let _gold = endpoint(&node, dir.path(), "icmp", "nse-gold", gold).await;
    let _silver = endpoint(&node, dir.path(), "icmp", "nse-silver", silver).await;

    let requests = (0..400).map(|_| chosen(&node, "icmp", &[]));
    let mut shares: BTreeMap<String, usize> = BTreeMap::new();
    let mut answers = futures::stream::iter(requests).buffer_unordered(16);
    while let Some(name) = answers.next().await {
        *shares.entry(name).or_default() += 1;
    }
    let gold_share = shares.get("nse-gold").copied().unwrap_or(0);
    let silver_share = shares.get("nse-silver").copied().unwrap_or(0);
    assert_eq!(gold_share + silver_share, 400, "{shares:?}");
    assert!((270..=330).contains(&gold_share), "{shares:?}");
    assert!((90..=110).contains(&silver_share), "{shares:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_endpoints_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    register_service(&node, "icmp", vec![]).await;
    let _a = endpoint(&node, dir.path(), "icmp", "nse-a", &[]).await;
    let _b = endpoint(&node, dir.path(), "icmp", "nse-b", &[]).await;

    let mut order = Vec::new();
    for _ in 0..10 {
        order.push(chosen(&node, "icmp", &[]).await);
    }
    assert!(
        order.windows(2).all(|pair| pair[0] != pair[1]),
        "round robin alternates: {order:?}"
    );
    assert_eq!(order.iter().filter(|n| *n == "nse-a").count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_labels_that_select_one_endpoint_always_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let gold: &[(&str, &str)] = &[("tier", "gold")];
    let silver: &[(&str, &str)] = &[("tier", "silver")];
    let matches = vec![
        rule(&[("app", "a")], &[(gold, 1)], false),
        rule(&[("app", "b")], &[(silver, 1)], false),
    ];
    register_service(&node, "icmp", matches).await;
    let _gold = endpoint(&node, dir.path(), "icmp", "nse-gold", gold).await;
    let _silver = endpoint(&node, dir.path(), "icmp", "nse-silver", silver).await;

    for _ in 0..10 {
        assert_eq!(chosen(&node, "icmp", &[("app", "a")]).await, "nse-gold");
        assert_eq!(chosen(&node, "icmp", &[("app", "b")]).await, "nse-silver");
    }
    // No match's source selector fits: every endpoint is a candidate, in turn.
    let first = chosen(&node, "icmp", &[("app", "c")]).await;
    let second = chosen(&node, "icmp", &[("app", "c")]).await;
    assert_ne!(first, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_template_is_filled_from_the_request_labels() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let same_pod: &[(&str, &str)] = &[("pod", "{{.podName}}")];
    register_service(&node, "icmp", vec![rule(&[], &[(same_pod, 1)], false)]).await;
    let _p1 = endpoint(&node, dir.path(), "icmp", "nse-p1", &[("pod", "p1")]).await;
    let _p2 = endpoint(&node, dir.path(), "icmp", "nse-p2", &[("pod", "p2")]).await;

    for _ in 0..5 {
        assert_eq!(chosen(&node, "icmp", &[("podName", "p2")]).await, "nse-p2");
        assert_eq!(chosen(&node, "icmp", &[("podName", "p1")]).await, "nse-p1");
    }
    let status = refused(
        node.network_service()
            .request(first_request("icmp", "nsc-1", &[("podName", "p3")]))
            .await,
        Code::FailedPrecondition,
        &["no endpoint of network service \"icmp\""],
    );
    assert!(status.message().contains("p3"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallthrough_goes_on_to_the_next_match_and_without_it_there_is_no_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]).await;
    let platinum: &[(&str, &str)] = &[("tier", "platinum")];
    let gold: &[(&str, &str)] = &[("tier", "gold")];
    for (service, fallthrough) in [("lenient", true), ("strict", false)] {
        let matches = vec![
            rule(&[("app", "a")], &[(platinum, 1)], fallthrough),
            rule(&[("app", "a")], &[(gold, 1)], false),
        ];
        register_service(&node, service, matches).await;
    }
    let fake = FakeEndpoint::start(dir.path(), "nse-gold").await;
    node.endpoints()
        .register(NetworkServiceEndpoint {
            name: "nse-gold".into(),
            network_service_names: vec!["lenient".into(), "strict".into()],
            network_service_labels: ["lenient", "strict"]
                .map(|s| {
                    let labels = NetworkServiceLabels {
                        labels: labels(gold),
                    };
                    (s.to_owned(), labels)
                })
                .into(),
            url: fake.url(),
            ..Default::default()
        })
        .await
        .unwrap();

    assert_eq!(chosen(&node, "lenient", &[("app", "a")]).await, "nse-gold");
    refused(
        node.network_service()
            .request(first_request("strict", "nsc-1", &[("app", "a")]))
            .await,
        Code::FailedPrecondition,
        &["no endpoint of network service \"strict\""],
    );
    assert_eq!(fake.seen().requests.len(), 1);
}

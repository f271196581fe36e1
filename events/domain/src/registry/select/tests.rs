use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::registry::{
    Destination, EndpointName, EndpointSpec, EndpointStatus, EndpointUrl, Match, Payload,
    Registration,
};
use crate::vwire::ServiceName;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn endpoint(name: &str, service: &str, own: &[(&str, &str)]) -> EndpointState {
    EndpointState {
        spec: EndpointSpec {
            name: EndpointName::new(name).unwrap(),
            url: EndpointUrl::new(format!("unix:///run/{name}.sock")).unwrap(),
            services: vec![ServiceName::new(service).unwrap()],
            labels: BTreeMap::from([(service.to_owned(), labels(own))]),
        },
        version: 1,
        status: EndpointStatus::Registered,
        registration: Registration {
            initial_registration_time: now(),
            expiration_time: now() + Duration::minutes(1),
        },
        changed_at: now(),
    }
}

fn service(matches: Vec<Match>) -> NetworkService {
    NetworkService {
        name: ServiceName::new("web").unwrap(),
        payload: Payload::Ip,
        matches,
    }
}

fn route(selector: &[(&str, &str)], weight: u32) -> Destination {
    Destination {
        destination_selector: labels(selector),
        weight,
    }
}

fn names(found: &[Candidate<'_>]) -> Vec<String> {
    found
        .iter()
        .map(|c| c.endpoint.spec.name.to_string())
        .collect()
}

#[test]
fn templates_are_filled_from_the_request_labels() {
    let request = labels(&[("podName", "web-1"), ("node", "n1")]);
    assert_eq!(render("{{.podName}}", &request), "web-1");
    assert_eq!(render("x-{{ .node }}-{{.podName}}", &request), "x-n1-web-1");
    assert_eq!(render("{{.missing}}", &request), "<no value>");
    assert_eq!(render("plain", &request), "plain");
    assert_eq!(
        render("{{ index .Labels \"a\" }}", &request),
        "{{ index .Labels \"a\" }}"
    );
    assert_eq!(render("{{.unclosed", &request), "{{.unclosed");
}

#[test]
fn without_matches_every_live_endpoint_of_the_service_is_a_candidate() {
    let mut expired = endpoint("c-expired", "web", &[]);
    expired.registration.expiration_time = now();
    let mut gone = endpoint("d-gone", "web", &[]);
    gone.status = EndpointStatus::Unregistered;
    let all = [
        endpoint("b", "web", &[]),
        endpoint("a", "web", &[]),
        endpoint("other", "db", &[]),
        expired,
        gone,
    ];
    let found = candidates(&service(vec![]), &Labels::new(), &all, now());
    assert_eq!(names(&found), ["a", "b"]);
}

#[test]
fn the_first_fitting_match_decides_with_templates_and_fallthrough() {
    let all = [
        endpoint("blue-1", "web", &[("color", "blue"), ("node", "n1")]),
        endpoint("blue-2", "web", &[("color", "blue"), ("node", "n2")]),
        endpoint("red", "web", &[("color", "red")]),
    ];
    let same_node = Match {
        source_selector: labels(&[("app", "shop")]),
        routes: vec![route(&[("node", "{{.node}}")], 0)],
        fallthrough: true,
        ..Match::default()
    };
    let red = Match {
        source_selector: Labels::new(),
        routes: vec![route(&[("color", "red")], 0)],
        ..Match::default()
    };
    let ns = service(vec![same_node, red]);
    let on_n2 = labels(&[("app", "shop"), ("node", "n2")]);
    assert_eq!(names(&candidates(&ns, &on_n2, &all, now())), ["blue-2"]);
    // No endpoint on n9: fall through to the next match.
    let on_n9 = labels(&[("app", "shop"), ("node", "n9")]);
    assert_eq!(names(&candidates(&ns, &on_n9, &all, now())), ["red"]);
    // Another app skips the first match.
    assert_eq!(
        names(&candidates(&ns, &labels(&[("app", "blog")]), &all, now())),
        ["red"]
    );
}

#[test]
fn an_empty_match_without_fallthrough_means_no_endpoint() {
    let all = [endpoint("a", "web", &[("color", "blue")])];
    let strict = Match {
        routes: vec![route(&[("color", "green")], 0)],
        ..Match::default()
    };
    assert!(candidates(&service(vec![strict]), &Labels::new(), &all, now()).is_empty());
}

#[test]
fn unfitting_source_selectors_and_route_less_matches_select_everyone() {
    let all = [endpoint("a", "web", &[]), endpoint("b", "web", &[])];
    let picky = Match {
        source_selector: labels(&[("app", "nope")]),
        routes: vec![route(&[("x", "y")], 0)],
        ..Match::default()
    };
    assert_eq!(
        names(&candidates(
            &service(vec![picky]),
            &Labels::new(),
            &all,
            now()
        )),
        ["a", "b"]
    );
    let metadata_only = Match {
        metadata: labels(&[("p2p", "true")]),
        ..Match::default()
    };
    assert_eq!(
        names(&candidates(
            &service(vec![metadata_only]),
            &Labels::new(),
            &all,
            now()
        )),
        ["a", "b"]
    );
}

#[test]
fn weights_share_requests_in_proportion_and_smoothly() {
    let all = [
        endpoint("heavy", "web", &[("tier", "gold")]),
        endpoint("light", "web", &[("tier", "silver")]),
    ];
    let weighted = Match {
        routes: vec![
            route(&[("tier", "gold")], 3),
            route(&[("tier", "silver")], 1),
        ],
        ..Match::default()
    };
    let ns = service(vec![weighted]);
    let mut rr = RoundRobin::default();
    let mut firsts = Vec::new();
    for _ in 0..400 {
        let ordered = rr.order("web", candidates(&ns, &Labels::new(), &all, now()));
        assert_eq!(
            ordered.len(),
            2,
            "the other candidate follows as a fallback"
        );
        firsts.push(ordered[0].endpoint.spec.name.to_string());
    }
    assert_eq!(firsts.iter().filter(|n| *n == "heavy").count(), 300);
    // Smooth: never more than three heavy picks in a row.
    assert!(firsts.windows(4).all(|w| w.iter().any(|n| n == "light")));
    rr.forget("heavy");
    assert!(rr.current.keys().all(|(_, name)| name != "heavy"));
}

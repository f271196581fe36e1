use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use nsm_domain::registry::{
    Destination, EndpointName, EndpointSpec, EndpointState, EndpointStatus, EndpointUrl, Match,
    NetworkService, Payload, Registration,
};
use nsm_domain::vwire::{
    ConnectionContext, DnsConfig, EthernetContext, ExtraPrefixRequest, IpContext, IpFamily,
    IpNeighbor, Mechanism, MechanismClass, Path, PathSegment, PolicyRoute, Route, ServiceName,
};

use super::*;
use crate::{connection as wire, connectioncontext as ctx, registry as reg};

fn at(nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, nanos).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn full_context() -> ConnectionContext {
    ConnectionContext {
        ip: IpContext {
            src_ip_addrs: vec!["10.0.0.1/32".into(), "fd00::1/128".into()],
            dst_ip_addrs: vec!["10.0.0.2/32".into()],
            src_ip_required: true,
            dst_ip_required: false,
            src_routes: vec![Route {
                prefix: "10.0.0.2/32".into(),
                next_hop: String::new(),
            }],
            dst_routes: vec![Route {
                prefix: "0.0.0.0/0".into(),
                next_hop: "10.0.0.1".into(),
            }],
            excluded_prefixes: vec!["10.96.0.0/12".into()],
            ip_neighbors: vec![IpNeighbor {
                ip: "10.0.0.2".into(),
                hardware_address: "aa:bb:cc:dd:ee:ff".into(),
            }],
            extra_prefix_request: vec![ExtraPrefixRequest {
                addr_family: IpFamily::Ipv6,
                prefix_len: 64,
                required_number: 1,
                requested_number: 2,
            }],
            extra_prefixes: vec!["172.16.0.0/24".into()],
            policies: vec![PolicyRoute {
                from: "10.0.0.1/32".into(),
                proto: "6".into(),
                dst_port: "80-90".into(),
                src_port: String::new(),
                routes: vec![Route {
                    prefix: "192.168.0.0/16".into(),
                    next_hop: String::new(),
                }],
            }],
        },
        dns: vec![DnsConfig {
            dns_server_ips: vec!["10.0.0.53".into()],
            search_domains: vec!["svc".into()],
        }],
        ethernet: EthernetContext {
            src_mac: "02:00:00:00:00:01".into(),
            dst_mac: String::new(),
            vlan_tag: 100,
        },
        mtu: Some(1450),
        extra: labels(&[("k", "v")]),
    }
}

#[test]
fn domain_values_survive_a_trip_over_the_wire() {
    let mechanism = Mechanism {
        cls: MechanismClass::Remote,
        mechanism_type: "VXLAN".into(),
        parameters: labels(&[("src_ip", "192.0.2.1"), ("vni", "42")]),
    };
    assert_eq!(
        mechanism_from_wire("m", &mechanism_to_wire(&mechanism)).unwrap(),
        mechanism
    );

    let path = Path {
        index: 1,
        segments: vec![
            PathSegment {
                name: "nsc".into(),
                id: "nsc-1".into(),
                token: "t1".into(),
                expires: Some(at(123_456_789)),
                metrics: BTreeMap::new(),
            },
            PathSegment {
                name: "nsmgr".into(),
                id: "u-2".into(),
                token: String::new(),
                expires: None,
                metrics: labels(&[("client_rx_bytes", "10")]),
            },
        ],
    };
    assert_eq!(path_from_wire("p", &path_to_wire(&path)).unwrap(), path);

    let context = full_context();
    assert_eq!(
        context_from_wire("c", &context_to_wire(&context)).unwrap(),
        context
    );
    let bare = ConnectionContext::default();
    assert_eq!(
        context_from_wire("c", &context_to_wire(&bare)).unwrap(),
        bare
    );

    let service = NetworkService {
        name: ServiceName::new("vl3@domain.example").unwrap(),
        payload: Payload::Ip,
        matches: vec![Match {
            source_selector: labels(&[("app", "a")]),
            routes: vec![Destination {
                destination_selector: labels(&[("node", "{{.node}}")]),
                weight: 3,
            }],
            fallthrough: true,
            metadata: labels(&[("p2p", "true")]),
        }],
    };
    assert_eq!(
        service_from_wire(&service_to_wire(&service)).unwrap(),
        service
    );

    let endpoint = EndpointState {
        spec: EndpointSpec {
            name: EndpointName::new("nse-1").unwrap(),
            url: EndpointUrl::new("tcp://127.0.0.1:5002").unwrap(),
            services: vec![ServiceName::new("web").unwrap()],
            labels: BTreeMap::from([("web".to_owned(), labels(&[("color", "blue")]))]),
        },
        version: 3,
        status: EndpointStatus::Registered,
        registration: Registration {
            initial_registration_time: at(0),
            expiration_time: at(0) + Duration::minutes(1),
        },
        changed_at: at(0),
    };
    let (spec, expiration) = endpoint_from_wire(&endpoint_to_wire(&endpoint)).unwrap();
    assert_eq!(spec, endpoint.spec);
    assert_eq!(expiration, Some(endpoint.registration.expiration_time));
}

#[test]
fn malformed_wire_values_name_the_field() {
    let bad_cls = wire::Mechanism {
        cls: "SIDEWAYS".into(),
        r#type: "KERNEL".into(),
        parameters: Default::default(),
    };
    assert_eq!(
        mechanism_from_wire("request.mechanism_preferences[0]", &bad_cls)
            .unwrap_err()
            .field,
        "request.mechanism_preferences[0].cls"
    );
    let no_type = wire::Mechanism {
        cls: "LOCAL".into(),
        r#type: String::new(),
        parameters: Default::default(),
    };
    assert!(
        mechanism_from_wire("m", &no_type)
            .unwrap_err()
            .field
            .ends_with(".type")
    );

    let bad_index = wire::Path {
        index: 5,
        path_segments: vec![wire::PathSegment::default()],
    };
    assert_eq!(
        path_from_wire("connection.path", &bad_index)
            .unwrap_err()
            .field,
        "connection.path.index"
    );
    let bad_time = wire::Path {
        index: 0,
        path_segments: vec![wire::PathSegment {
            expires: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..Default::default()
        }],
    };
    assert!(
        path_from_wire("p", &bad_time)
            .unwrap_err()
            .field
            .ends_with("path_segments[0].expires")
    );

    let bad_ip = ctx::ConnectionContext {
        ip_context: Some(ctx::IpContext {
            src_ip_addrs: vec!["10.0.0.300/32".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = context_from_wire("connection.context", &bad_ip).unwrap_err();
    assert_eq!(err.field, "connection.context.ip_context");
    assert!(err.problem.contains("10.0.0.300/32"), "{err}");

    let nameless = reg::NetworkServiceEndpoint {
        url: "tcp://h:1".into(),
        network_service_names: vec!["web".into()],
        ..Default::default()
    };
    assert_eq!(
        endpoint_from_wire(&nameless).unwrap_err().field,
        "network_service_endpoint.name"
    );
    let bad_url = reg::NetworkServiceEndpoint {
        name: "n".into(),
        url: "ftp://x".into(),
        network_service_names: vec!["web".into()],
        ..Default::default()
    };
    assert_eq!(
        endpoint_from_wire(&bad_url).unwrap_err().field,
        "network_service_endpoint.url"
    );
    let huge_labels = reg::NetworkServiceEndpoint {
        name: "n".into(),
        url: "tcp://h:1".into(),
        network_service_names: vec!["web".into()],
        network_service_labels: [(
            "web".to_owned(),
            reg::NetworkServiceLabels {
                labels: [("k".to_owned(), "v".repeat(300))].into(),
            },
        )]
        .into(),
        ..Default::default()
    };
    assert!(
        endpoint_from_wire(&huge_labels)
            .unwrap_err()
            .field
            .contains("network_service_labels[web]")
    );
    let bad_payload = reg::NetworkService {
        name: "web".into(),
        payload: "SMOKE".into(),
        ..Default::default()
    };
    assert_eq!(
        service_from_wire(&bad_payload).unwrap_err().field,
        "network_service.payload"
    );
    let status: tonic::Status = service_from_wire(&bad_payload).unwrap_err().into();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

/// A refusal goes back in a gRPC status message, which travels in HTTP/2 headers: it quotes
/// only the beginning of a huge value.
#[test]
fn refusals_of_huge_values_stay_short() {
    let huge = "a".repeat(100_000);
    let short = |error: ConversionError| {
        let message = error.to_string();
        assert!(
            message.len() < 600,
            "{} bytes: {message:.600}",
            message.len()
        );
        assert!(message.contains("(100000 bytes)"), "{message}");
    };
    let mechanism = |cls: &str, key: &str| wire::Mechanism {
        cls: cls.into(),
        r#type: "KERNEL".into(),
        parameters: [(key.to_owned(), "v".to_owned())].into(),
    };
    short(mechanism_from_wire("m", &mechanism(&huge, "k")).unwrap_err());
    short(mechanism_from_wire("m", &mechanism("LOCAL", &huge)).unwrap_err());

    let labelled = reg::NetworkServiceEndpoint {
        name: "n".into(),
        url: "tcp://h:1".into(),
        network_service_names: vec!["web".into()],
        network_service_labels: [(
            huge.clone(),
            reg::NetworkServiceLabels {
                labels: [(huge.clone(), "v".to_owned())].into(),
            },
        )]
        .into(),
        ..Default::default()
    };
    let error = endpoint_from_wire(&labelled).unwrap_err();
    assert!(error.field.len() < 200, "{}", error.field);
    short(error);

    let named = |name: &str, url: &str| reg::NetworkServiceEndpoint {
        name: name.into(),
        url: url.into(),
        network_service_names: vec!["web".into()],
        ..Default::default()
    };
    short(endpoint_from_wire(&named(&huge, "tcp://h:1")).unwrap_err());
    short(endpoint_from_wire(&named("n", &huge)).unwrap_err());
    let service = reg::NetworkService {
        name: huge.clone(),
        ..Default::default()
    };
    short(service_from_wire(&service).unwrap_err());
    let bad_ip = ctx::ConnectionContext {
        ip_context: Some(ctx::IpContext {
            src_ip_addrs: vec![huge.clone()],
            ..Default::default()
        }),
        ..Default::default()
    };
    short(context_from_wire("connection.context", &bad_ip).unwrap_err());
    let url_error = huge.parse::<crate::transport::PeerUrl>().unwrap_err();
    assert!(url_error.to_string().len() < 400, "{url_error}");
}

/// NSM's `Connection.payload` (field 8) says what the vWire carries once its service was
/// selected, and says nothing (empty) before.
#[test]
fn a_connection_carries_its_payload_once_known() {
    let hop = |payload| nsm_domain::vwire::HopConnection {
        id: "5b1e4a6c-43c9-4e8e-9a51-0c6e3f6d2c11".into(),
        service: ServiceName::new("vl3").unwrap(),
        mechanism: None,
        context: None,
        labels: BTreeMap::new(),
        path: Path::default(),
        endpoint_name: String::new(),
        payload,
        up: false,
    };
    assert_eq!(hop_to_wire(&hop(Some(Payload::Ip))).payload, "IP");
    assert_eq!(
        hop_to_wire(&hop(Some(Payload::Ethernet))).payload,
        "ETHERNET"
    );
    assert_eq!(hop_to_wire(&hop(None)).payload, "");
}

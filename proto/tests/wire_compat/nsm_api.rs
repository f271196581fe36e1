//! NSM API v1.15 as a table: every file, message, field, enum value and gRPC method of
//! NSM's five `.proto` files, written from `shared/reference/nsm-api.md` (sections 1 to 6),
//! not from our `.proto` files. `wire_compat.rs` holds the descriptor set and the generated
//! code to it.
//!
//! Field types are written as in a `.proto` file, with `message` or `enum` in front of a
//! named type because the two are encoded differently on the wire. To follow a new NSM
//! release, change this table and the `.proto` files together.

/// One `.proto` file, from the table at the top of nsm-api.md.
#[derive(Debug)]
pub(crate) struct File {
    pub(crate) name: &'static str,
    pub(crate) package: &'static str,
    pub(crate) go_package: &'static str,
    pub(crate) imports: &'static [&'static str],
}

const GO_NETWORKSERVICE: &str = "github.com/networkservicemesh/api/pkg/api/networkservice";

pub(crate) const FILES: &[File] = &[
    File {
        name: "connection.proto",
        package: "connection",
        go_package: GO_NETWORKSERVICE,
        imports: &["google/protobuf/timestamp.proto", "connectioncontext.proto"],
    },
    File {
        name: "connectioncontext.proto",
        package: "connectioncontext",
        go_package: GO_NETWORKSERVICE,
        imports: &[],
    },
    File {
        name: "networkservice.proto",
        package: "networkservice",
        go_package: GO_NETWORKSERVICE,
        imports: &["connection.proto", "google/protobuf/empty.proto"],
    },
    File {
        name: "registry.proto",
        package: "registry",
        go_package: "github.com/networkservicemesh/api/pkg/api/registry",
        imports: &[
            "google/protobuf/empty.proto",
            "google/protobuf/timestamp.proto",
        ],
    },
    File {
        name: "ipam.proto",
        package: "ipam",
        go_package: "github.com/networkservicemesh/api/pkg/api/ipam",
        imports: &[],
    },
];

/// The well-known types our files import; they ride along in the descriptor set so that
/// reflection clients can resolve every type.
pub(crate) const IMPORTED_WELL_KNOWN: &[&str] = &[
    "google/protobuf/empty.proto",
    "google/protobuf/timestamp.proto",
];

/// (number, field name, type).
pub(crate) type Field = (i32, &'static str, &'static str);

/// (fully qualified message name, fields). Map entry messages are not listed: a map field
/// is written `map<K, V>`.
pub(crate) const MESSAGES: &[(&str, &[Field])] = &[
    // Section 2: package `connection`.
    (
        "connection.Mechanism",
        &[
            (1, "cls", "string"),
            (2, "type", "string"),
            (3, "parameters", "map<string, string>"),
        ],
    ),
    (
        "connection.PathSegment",
        &[
            (1, "name", "string"),
            (2, "id", "string"),
            (3, "token", "string"),
            (4, "expires", "message google.protobuf.Timestamp"),
            (5, "metrics", "map<string, string>"),
        ],
    ),
    (
        "connection.Path",
        &[
            (1, "index", "uint32"),
            (
                2,
                "path_segments",
                "repeated message connection.PathSegment",
            ),
        ],
    ),
    (
        "connection.Connection",
        &[
            (1, "id", "string"),
            (2, "network_service", "string"),
            (3, "mechanism", "message connection.Mechanism"),
            (4, "context", "message connectioncontext.ConnectionContext"),
            (5, "labels", "map<string, string>"),
            (6, "path", "message connection.Path"),
            (7, "network_service_endpoint_name", "string"),
            (8, "payload", "string"),
            (9, "state", "enum connection.State"),
        ],
    ),
    (
        "connection.ConnectionEvent",
        &[
            (1, "type", "enum connection.ConnectionEventType"),
            (
                2,
                "connections",
                "map<string, message connection.Connection>",
            ),
        ],
    ),
    (
        "connection.MonitorScopeSelector",
        &[
            (
                1,
                "path_segments",
                "repeated message connection.PathSegment",
            ),
            (2, "network_services", "repeated string"),
        ],
    ),
    // Section 3: package `connectioncontext`.
    (
        "connectioncontext.IpNeighbor",
        &[(1, "ip", "string"), (2, "hardware_address", "string")],
    ),
    (
        "connectioncontext.Route",
        &[(1, "prefix", "string"), (2, "nextHop", "string")],
    ),
    (
        "connectioncontext.IpFamily",
        &[(1, "family", "enum connectioncontext.IpFamily.Family")],
    ),
    (
        "connectioncontext.ExtraPrefixRequest",
        &[
            (1, "addr_family", "message connectioncontext.IpFamily"),
            (2, "prefix_len", "uint32"),
            (3, "required_number", "uint32"),
            (4, "requested_number", "uint32"),
        ],
    ),
    (
        "connectioncontext.PolicyRoute",
        &[
            (1, "from", "string"),
            (2, "proto", "string"),
            (3, "dst_port", "string"),
            (4, "src_port", "string"),
            (5, "routes", "repeated message connectioncontext.Route"),
        ],
    ),
    (
        "connectioncontext.IPContext",
        &[
            (1, "src_ip_addrs", "repeated string"),
            (2, "dst_ip_addrs", "repeated string"),
            (3, "src_ip_required", "bool"),
            (4, "dst_ip_required", "bool"),
            (5, "src_routes", "repeated message connectioncontext.Route"),
            (6, "dst_routes", "repeated message connectioncontext.Route"),
            (7, "excluded_prefixes", "repeated string"),
            (
                8,
                "ip_neighbors",
                "repeated message connectioncontext.IpNeighbor",
            ),
            (
                9,
                "extra_prefix_request",
                "repeated message connectioncontext.ExtraPrefixRequest",
            ),
            (10, "extra_prefixes", "repeated string"),
            (
                11,
                "policies",
                "repeated message connectioncontext.PolicyRoute",
            ),
        ],
    ),
    (
        "connectioncontext.DNSConfig",
        &[
            (1, "dns_server_ips", "repeated string"),
            (2, "search_domains", "repeated string"),
        ],
    ),
    (
        "connectioncontext.DNSContext",
        &[(1, "configs", "repeated message connectioncontext.DNSConfig")],
    ),
    (
        "connectioncontext.EthernetContext",
        &[
            (1, "src_mac", "string"),
            (2, "dst_mac", "string"),
            (3, "vlan_tag", "int32"),
        ],
    ),
    (
        "connectioncontext.ConnectionContext",
        &[
            (1, "ip_context", "message connectioncontext.IPContext"),
            (2, "dns_context", "message connectioncontext.DNSContext"),
            (
                3,
                "ethernet_context",
                "message connectioncontext.EthernetContext",
            ),
            (4, "extra_context", "map<string, string>"),
            (5, "MTU", "uint32"),
        ],
    ),
    // Section 4: package `networkservice`.
    (
        "networkservice.NetworkServiceRequest",
        &[
            (1, "connection", "message connection.Connection"),
            (
                2,
                "mechanism_preferences",
                "repeated message connection.Mechanism",
            ),
        ],
    ),
    // Section 5: package `registry`.
    (
        "registry.NetworkService",
        &[
            (1, "name", "string"),
            (2, "payload", "string"),
            (3, "matches", "repeated message registry.Match"),
            (4, "path_ids", "repeated string"),
        ],
    ),
    (
        "registry.Match",
        &[
            (1, "source_selector", "map<string, string>"),
            (2, "routes", "repeated message registry.Destination"),
            (3, "fallthrough", "bool"),
            (4, "metadata", "message registry.Metadata"),
        ],
    ),
    ("registry.Metadata", &[(1, "labels", "map<string, string>")]),
    (
        "registry.Destination",
        &[
            (1, "destination_selector", "map<string, string>"),
            (2, "weight", "uint32"),
        ],
    ),
    (
        "registry.NetworkServiceLabels",
        &[(1, "labels", "map<string, string>")],
    ),
    (
        "registry.NetworkServiceEndpoint",
        &[
            (1, "name", "string"),
            (2, "network_service_names", "repeated string"),
            (
                3,
                "network_service_labels",
                "map<string, message registry.NetworkServiceLabels>",
            ),
            (4, "url", "string"),
            (5, "expiration_time", "message google.protobuf.Timestamp"),
            (
                6,
                "initial_registration_time",
                "message google.protobuf.Timestamp",
            ),
            (7, "path_ids", "repeated string"),
        ],
    ),
    (
        "registry.NetworkServiceQuery",
        &[
            (1, "network_service", "message registry.NetworkService"),
            (2, "watch", "bool"),
        ],
    ),
    (
        "registry.NetworkServiceEndpointQuery",
        &[
            (
                1,
                "network_service_endpoint",
                "message registry.NetworkServiceEndpoint",
            ),
            (2, "watch", "bool"),
        ],
    ),
    (
        "registry.NetworkServiceResponse",
        &[
            (1, "network_service", "message registry.NetworkService"),
            (2, "deleted", "bool"),
        ],
    ),
    (
        "registry.NetworkServiceEndpointResponse",
        &[
            (
                1,
                "network_service_endpoint",
                "message registry.NetworkServiceEndpoint",
            ),
            (2, "deleted", "bool"),
        ],
    ),
    // Section 6: package `ipam`. PrefixResponse has no field 1.
    (
        "ipam.PrefixRequest",
        &[
            (1, "type", "enum ipam.Type"),
            (2, "prefix", "string"),
            (3, "exclude_prefixes", "repeated string"),
        ],
    ),
    (
        "ipam.PrefixResponse",
        &[
            (2, "prefix", "string"),
            (3, "exclude_prefixes", "repeated string"),
        ],
    ),
];

/// (fully qualified enum name, [(value name, number)]).
pub(crate) const ENUMS: &[(&str, &[(&str, i32)])] = &[
    (
        "connection.State",
        &[
            ("UP", 0),
            ("DOWN", 1),
            ("REFRESH_REQUESTED", 2),
            ("RESELECT_REQUESTED", 3),
        ],
    ),
    (
        "connection.ConnectionEventType",
        &[("INITIAL_STATE_TRANSFER", 0), ("UPDATE", 1), ("DELETE", 2)],
    ),
    (
        "connectioncontext.IpFamily.Family",
        &[("IPV4", 0), ("IPV6", 1)],
    ),
    (
        "ipam.Type",
        &[("UNDEFINED", 0), ("ALLOCATE", 1), ("DELETE", 2)],
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Streaming {
    Unary,
    Server,
    Bidi,
}

/// (gRPC method path, request type, response type, streaming), from section 1.
pub(crate) const METHODS: &[(&str, &str, &str, Streaming)] = &[
    (
        "/networkservice.NetworkService/Request",
        "networkservice.NetworkServiceRequest",
        "connection.Connection",
        Streaming::Unary,
    ),
    (
        "/networkservice.NetworkService/Close",
        "connection.Connection",
        "google.protobuf.Empty",
        Streaming::Unary,
    ),
    (
        "/connection.MonitorConnection/MonitorConnections",
        "connection.MonitorScopeSelector",
        "connection.ConnectionEvent",
        Streaming::Server,
    ),
    (
        "/registry.NetworkServiceEndpointRegistry/Register",
        "registry.NetworkServiceEndpoint",
        "registry.NetworkServiceEndpoint",
        Streaming::Unary,
    ),
    (
        "/registry.NetworkServiceEndpointRegistry/Find",
        "registry.NetworkServiceEndpointQuery",
        "registry.NetworkServiceEndpointResponse",
        Streaming::Server,
    ),
    (
        "/registry.NetworkServiceEndpointRegistry/Unregister",
        "registry.NetworkServiceEndpoint",
        "google.protobuf.Empty",
        Streaming::Unary,
    ),
    (
        "/registry.NetworkServiceRegistry/Register",
        "registry.NetworkService",
        "registry.NetworkService",
        Streaming::Unary,
    ),
    (
        "/registry.NetworkServiceRegistry/Find",
        "registry.NetworkServiceQuery",
        "registry.NetworkServiceResponse",
        Streaming::Server,
    ),
    (
        "/registry.NetworkServiceRegistry/Unregister",
        "registry.NetworkService",
        "google.protobuf.Empty",
        Streaming::Unary,
    ),
    (
        "/ipam.IPAM/ManagePrefixes",
        "ipam.PrefixRequest",
        "ipam.PrefixResponse",
        Streaming::Bidi,
    ),
];

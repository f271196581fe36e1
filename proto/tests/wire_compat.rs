//! The wire-compatibility contract with NSM API v1.15.
//!
//! `wire_compat/nsm_api.rs` lists, from `shared/reference/nsm-api.md` and not from our
//! `.proto` files, every file, message, field (name, number, type, label), enum value and
//! gRPC method of NSM's API. These tests decode [`nsm_proto::FILE_DESCRIPTOR_SET`], which
//! `build.rs` compiles from the same `.proto` files as the generated code, and fail on any
//! difference in either direction: a field missing, renumbered, retyped or renamed, or one
//! that NSM does not have. A few further tests pin the generated Rust code itself to the
//! same numbers and names.

#[path = "wire_compat/nsm_api.rs"]
mod nsm_api;

use std::collections::{BTreeMap, HashMap};

use nsm_api::{ENUMS, FILES, IMPORTED_WELL_KNOWN, MESSAGES, METHODS, Streaming};
use nsm_proto::{connection, connectioncontext, ipam, networkservice, registry};
use prost::Message as _;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, Timestamp,
    field_descriptor_proto::{Label, Type},
};

// ---------------------------------------------------------------------------------------
// Reading the descriptor set.
// ---------------------------------------------------------------------------------------

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(nsm_proto::FILE_DESCRIPTOR_SET)
        .expect("FILE_DESCRIPTOR_SET decodes as a FileDescriptorSet")
}

/// Our five files, without the imported well-known types.
fn nsm_files(set: &FileDescriptorSet) -> Vec<&FileDescriptorProto> {
    set.file
        .iter()
        .filter(|f| !f.package().starts_with("google."))
        .collect()
}

/// Every message of our files, nested ones included, by fully qualified name.
fn all_messages(set: &FileDescriptorSet) -> BTreeMap<String, &DescriptorProto> {
    fn walk<'a>(
        prefix: &str,
        msg: &'a DescriptorProto,
        out: &mut BTreeMap<String, &'a DescriptorProto>,
    ) {
        let name = format!("{prefix}.{}", msg.name());
        for nested in &msg.nested_type {
            walk(&name, nested, out);
        }
        out.insert(name, msg);
    }
    let mut out = BTreeMap::new();
    for file in nsm_files(set) {
        for msg in &file.message_type {
            walk(file.package(), msg, &mut out);
        }
    }
    out
}

fn is_map_entry(msg: &DescriptorProto) -> bool {
    msg.options.as_ref().is_some_and(|o| o.map_entry())
}

/// Every enum of our files, nested ones included, by fully qualified name.
fn all_enums(set: &FileDescriptorSet) -> BTreeMap<String, &EnumDescriptorProto> {
    let mut out = BTreeMap::new();
    for file in nsm_files(set) {
        for e in &file.enum_type {
            out.insert(format!("{}.{}", file.package(), e.name()), e);
        }
    }
    for (name, msg) in all_messages(set) {
        for e in &msg.enum_type {
            out.insert(format!("{name}.{}", e.name()), e);
        }
    }
    out
}

/// A field's type in the notation of the tables: `string`, `repeated message a.B`,
/// `map<string, enum a.C>`. Anything the tables never use (`optional`, `oneof`, a map
/// entry with unexpected numbers) renders as something no table row matches.
fn render_type(
    field: &FieldDescriptorProto,
    messages: &BTreeMap<String, &DescriptorProto>,
) -> String {
    let type_name = field.type_name().trim_start_matches('.');
    let base = match field.r#type() {
        Type::Message => format!("message {type_name}"),
        Type::Enum => format!("enum {type_name}"),
        scalar => scalar
            .as_str_name()
            .trim_start_matches("TYPE_")
            .to_lowercase(),
    };
    let mut rendered = match field.label() {
        Label::Repeated => match messages.get(type_name) {
            Some(entry) if is_map_entry(entry) => render_map(entry, messages),
            _ => format!("repeated {base}"),
        },
        Label::Optional => base,
        Label::Required => format!("required {base}"),
    };
    if field.proto3_optional() {
        rendered = format!("optional {rendered}");
    }
    if field.oneof_index.is_some() {
        rendered = format!("oneof {rendered}");
    }
    rendered
}

fn render_map(entry: &DescriptorProto, messages: &BTreeMap<String, &DescriptorProto>) -> String {
    let rendered: Vec<(i32, String, String)> = entry
        .field
        .iter()
        .map(|f| (f.number(), f.name().to_owned(), render_type(f, messages)))
        .collect();
    match rendered.as_slice() {
        [(1, k, key), (2, v, value)] if k == "key" && v == "value" => {
            format!("map<{key}, {value}>")
        }
        other => format!("malformed map entry {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The descriptor set against the contract.
// ---------------------------------------------------------------------------------------

#[test]
fn descriptor_set_holds_the_five_nsm_files_and_their_imports() {
    let set = descriptor_set();
    let mut names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = FILES.iter().map(|f| f.name).collect();
    expected.extend(IMPORTED_WELL_KNOWN);
    expected.sort_unstable();
    assert_eq!(names, expected);

    for want in FILES {
        let name = want.name;
        let file = set
            .file
            .iter()
            .find(|f| f.name() == name)
            .expect("file is in the set");
        assert_eq!(file.package(), want.package, "package of {name}");
        assert_eq!(file.syntax(), "proto3", "syntax of {name}");
        let mut imports: Vec<&str> = file.dependency.iter().map(String::as_str).collect();
        imports.sort_unstable();
        let mut want_imports = want.imports.to_vec();
        want_imports.sort_unstable();
        assert_eq!(imports, want_imports, "imports of {name}");
        let go_package = file.options.as_ref().map(|o| o.go_package());
        assert_eq!(go_package, Some(want.go_package), "go_package of {name}");
    }
}

#[test]
fn every_message_field_matches_nsm_name_number_type_and_label() {
    let set = descriptor_set();
    let messages = all_messages(&set);

    let found: Vec<&str> = messages
        .iter()
        .filter(|(_, msg)| !is_map_entry(msg))
        .map(|(name, _)| name.as_str())
        .collect();
    let mut expected: Vec<&str> = MESSAGES.iter().map(|(name, _)| *name).collect();
    expected.sort_unstable();
    assert_eq!(found, expected, "the set of messages differs from NSM's");

    // Every message is checked before failing, so one run shows every drift.
    let mut drifts = Vec::new();
    for (name, fields) in MESSAGES {
        let msg = messages[*name];
        if !msg.oneof_decl.is_empty() || !msg.reserved_range.is_empty() {
            drifts.push(format!(
                "{name} has a oneof or a reserved range; NSM has neither"
            ));
        }
        let mut actual: Vec<(i32, String, String)> = msg
            .field
            .iter()
            .map(|f| (f.number(), f.name().to_owned(), render_type(f, &messages)))
            .collect();
        actual.sort();
        let mut want: Vec<(i32, String, String)> = fields
            .iter()
            .map(|(n, field, ty)| (*n, (*field).to_owned(), (*ty).to_owned()))
            .collect();
        want.sort();
        if actual != want {
            drifts.push(format!("{name}:\n  ours: {actual:?}\n  NSM:  {want:?}"));
        }
    }
    assert!(
        drifts.is_empty(),
        "fields differ from NSM's:\n{}",
        drifts.join("\n")
    );
}

#[test]
fn every_enum_value_matches_nsm() {
    let set = descriptor_set();
    let enums = all_enums(&set);

    let found: Vec<&str> = enums.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = ENUMS.iter().map(|(name, _)| *name).collect();
    expected.sort_unstable();
    assert_eq!(found, expected, "the set of enums differs from NSM's");

    for (name, values) in ENUMS {
        let actual: Vec<(&str, i32)> = enums[*name]
            .value
            .iter()
            .map(|v| (v.name(), v.number()))
            .collect();
        assert_eq!(actual, values.to_vec(), "values of {name}");
        for (value, number) in *values {
            assert_eq!(
                generated_enum_value(name, value),
                Some(*number),
                "generated {name}::{value}"
            );
        }
    }
}

/// The number the generated Rust enum gives a proto value name, so the generated code is
/// held to the same table as the descriptor.
fn generated_enum_value(enum_name: &str, value: &str) -> Option<i32> {
    match enum_name {
        "connection.State" => connection::State::from_str_name(value).map(|v| v as i32),
        "connection.ConnectionEventType" => {
            connection::ConnectionEventType::from_str_name(value).map(|v| v as i32)
        }
        "connectioncontext.IpFamily.Family" => {
            connectioncontext::ip_family::Family::from_str_name(value).map(|v| v as i32)
        }
        "ipam.Type" => ipam::Type::from_str_name(value).map(|v| v as i32),
        _ => None,
    }
}

#[test]
fn every_service_method_path_and_streaming_matches_nsm() {
    let set = descriptor_set();
    let mut actual = Vec::new();
    for file in nsm_files(&set) {
        for service in &file.service {
            for method in &service.method {
                let streaming = match (method.client_streaming(), method.server_streaming()) {
                    (false, false) => Streaming::Unary,
                    (false, true) => Streaming::Server,
                    (true, true) => Streaming::Bidi,
                    (true, false) => panic!(
                        "{} is client-streaming; NSM has no such method",
                        method.name()
                    ),
                };
                actual.push((
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    method.input_type().trim_start_matches('.').to_owned(),
                    method.output_type().trim_start_matches('.').to_owned(),
                    streaming,
                ));
            }
        }
    }
    actual.sort();
    let mut want: Vec<(String, String, String, Streaming)> = METHODS
        .iter()
        .map(|(path, req, resp, s)| {
            (
                (*path).to_owned(),
                (*req).to_owned(),
                (*resp).to_owned(),
                *s,
            )
        })
        .collect();
    want.sort();
    assert_eq!(actual, want);
}

#[test]
fn json_names_keep_nsm_spellings() {
    let set = descriptor_set();
    let messages = all_messages(&set);
    let json_name = |msg: &str, field: &str| {
        messages[msg]
            .field
            .iter()
            .find(|f| f.name() == field)
            .map(|f| f.json_name().to_owned())
    };
    assert_eq!(
        json_name("connectioncontext.Route", "nextHop").as_deref(),
        Some("nextHop")
    );
    assert_eq!(
        json_name("connectioncontext.ConnectionContext", "MTU").as_deref(),
        Some("MTU")
    );
    assert_eq!(
        json_name("registry.NetworkServiceEndpoint", "network_service_names").as_deref(),
        Some("networkServiceNames")
    );
}

// ---------------------------------------------------------------------------------------
// The generated code against the contract.
// ---------------------------------------------------------------------------------------

#[test]
fn generated_servers_name_the_nsm_services() {
    assert_eq!(
        networkservice::network_service_server::SERVICE_NAME,
        "networkservice.NetworkService"
    );
    assert_eq!(
        connection::monitor_connection_server::SERVICE_NAME,
        "connection.MonitorConnection"
    );
    assert_eq!(
        registry::network_service_endpoint_registry_server::SERVICE_NAME,
        "registry.NetworkServiceEndpointRegistry"
    );
    assert_eq!(
        registry::network_service_registry_server::SERVICE_NAME,
        "registry.NetworkServiceRegistry"
    );
    assert_eq!(ipam::ipam_server::SERVICE_NAME, "ipam.IPAM");
}

#[test]
fn generated_code_encodes_nsm_field_numbers() {
    // Field 2, length-delimited: tag 0x12. PrefixResponse has no field 1.
    let response = ipam::PrefixResponse {
        prefix: "a".to_owned(),
        exclude_prefixes: vec![],
    };
    assert_eq!(response.encode_to_vec(), [0x12, 1, b'a']);

    // Route.nextHop is field 2.
    let route = connectioncontext::Route {
        prefix: String::new(),
        next_hop: "b".to_owned(),
    };
    assert_eq!(route.encode_to_vec(), [0x12, 1, b'b']);

    // ConnectionContext.MTU is field 5, varint: tag 0x28.
    let context = connectioncontext::ConnectionContext {
        mtu: 1500,
        ..Default::default()
    };
    assert_eq!(context.encode_to_vec(), [0x28, 0xdc, 0x0b]);

    // Connection.state is field 9, varint: tag 0x48; DOWN is 1, and UP (0) is not sent.
    let down = connection::Connection {
        state: connection::State::Down as i32,
        ..Default::default()
    };
    assert_eq!(down.encode_to_vec(), [0x48, 0x01]);
    assert!(connection::Connection::default().encode_to_vec().is_empty());
}

#[test]
fn connection_round_trips_through_prost_with_maps_and_timestamp() {
    let connection = connection::Connection {
        id: "nsc-1".to_owned(),
        network_service: "icmp-responder".to_owned(),
        mechanism: Some(connection::Mechanism {
            cls: "LOCAL".to_owned(),
            r#type: "KERNEL".to_owned(),
            parameters: HashMap::from([
                ("name".to_owned(), "nsm-1".to_owned()),
                ("inodeURL".to_owned(), "inode://4/4026532338".to_owned()),
            ]),
        }),
        context: Some(connectioncontext::ConnectionContext {
            ip_context: Some(connectioncontext::IpContext {
                src_ip_addrs: vec!["172.16.1.3/32".to_owned()],
                dst_routes: vec![connectioncontext::Route {
                    prefix: "172.16.1.2/32".to_owned(),
                    next_hop: String::new(),
                }],
                ..Default::default()
            }),
            extra_context: HashMap::from([("k".to_owned(), "v".to_owned())]),
            mtu: 1446,
            ..Default::default()
        }),
        labels: HashMap::from([("podName".to_owned(), "alpine".to_owned())]),
        path: Some(connection::Path {
            index: 1,
            path_segments: vec![connection::PathSegment {
                name: "nsmgr-a".to_owned(),
                id: "1f7a".to_owned(),
                token: "eyJhbGciOiJFUzI1NiJ9.e30.sig".to_owned(),
                expires: Some(Timestamp {
                    seconds: 1_767_225_600,
                    nanos: 123_456_789,
                }),
                metrics: HashMap::from([("client_rx_bytes".to_owned(), "1024".to_owned())]),
            }],
        }),
        network_service_endpoint_name: "nse-1".to_owned(),
        payload: "ETHERNET".to_owned(),
        state: connection::State::RefreshRequested as i32,
    };

    let bytes = connection.encode_to_vec();
    let decoded = connection::Connection::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(decoded, connection);
    assert_eq!(decoded.state(), connection::State::RefreshRequested);

    let event = connection::ConnectionEvent {
        r#type: connection::ConnectionEventType::Update as i32,
        connections: HashMap::from([(connection.id.clone(), connection)]),
    };
    let decoded =
        connection::ConnectionEvent::decode(event.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded, event);
}

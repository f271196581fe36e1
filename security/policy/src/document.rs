//! The input as a regorus [`Value`], built field by field. This is the same document serde
//! would produce from [`Input`] (a test holds the two equal), built directly because going
//! through `serde_json::Value` cost a tenth of an authorization.

use std::collections::BTreeMap;

use regorus::Value;

use crate::input::{
    Input, MonitorScope, Path, Resource, ResourceKind, Segment, SelectedConnection, Side,
    TokenFacts,
};

pub(crate) fn input_document(input: &Input) -> Value {
    object([
        ("call", input.call.as_str().into()),
        ("side", side(input.side).into()),
        ("caller", optional_string(input.caller.as_deref())),
        ("server", optional_string(input.server.as_deref())),
        ("path", path(&input.path)),
        ("now", input.now.into()),
        ("service", optional_string(input.service.as_deref())),
        (
            "resource",
            input.resource.as_ref().map_or(Value::Null, resource),
        ),
        (
            "monitor",
            input.monitor.as_ref().map_or(Value::Null, monitor),
        ),
    ])
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let map: BTreeMap<Value, Value> = fields
        .into_iter()
        .map(|(key, value)| (Value::from(key), value))
        .collect();
    map.into()
}

fn optional_string(text: Option<&str>) -> Value {
    text.map_or(Value::Null, Value::from)
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Server => "server",
        Side::Client => "client",
    }
}

fn path(path: &Path) -> Value {
    object([
        ("index", path.index.into()),
        (
            "segments",
            path.segments.iter().map(segment).collect::<Vec<_>>().into(),
        ),
    ])
}

fn segment(segment: &Segment) -> Value {
    object([
        ("name", segment.name.as_str().into()),
        ("id", segment.id.as_str().into()),
        ("token", token(&segment.token)),
    ])
}

fn token(token: &TokenFacts) -> Value {
    object([
        ("present", token.present.into()),
        ("decoded", token.decoded.into()),
        ("sub", optional_string(token.sub.as_deref())),
        (
            "aud",
            token
                .aud
                .iter()
                .map(|aud| Value::from(aud.as_str()))
                .collect::<Vec<_>>()
                .into(),
        ),
        ("exp", token.exp.map_or(Value::Null, Value::from)),
        ("signed_by_caller", token.signed_by_caller.into()),
        ("signed_by_server", token.signed_by_server.into()),
    ])
}

fn resource(resource: &Resource) -> Value {
    let kind = match resource.kind {
        ResourceKind::Nse => "nse",
        ResourceKind::Ns => "ns",
    };
    object([
        ("kind", kind.into()),
        ("name", resource.name.as_str().into()),
        (
            "registered_by",
            optional_string(resource.registered_by.as_deref()),
        ),
    ])
}

fn monitor(monitor: &MonitorScope) -> Value {
    let connections: Vec<Value> = monitor.connections.iter().map(connection).collect();
    object([("connections", connections.into())])
}

fn connection(connection: &SelectedConnection) -> Value {
    object([
        ("id", connection.id.as_str().into()),
        ("owned_by_caller", connection.owned_by_caller.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Call, MonitorScope, Resource, SelectedConnection};
    use crate::sample;

    fn through_serde(input: &Input) -> Value {
        let json = serde_json::to_value(input).expect("an input serializes");
        serde_json::from_value(json).expect("JSON is a regorus value")
    }

    #[test]
    fn the_document_is_the_serde_form_of_the_input() {
        let mut registration = sample::three_hop_request(1_000);
        registration.call = Call::RegistryRegister;
        registration.resource = Some(Resource {
            kind: ResourceKind::Ns,
            name: "secure-intranet".into(),
            registered_by: Some("spiffe://example.org/a".into()),
        });
        registration.path.segments[0].token.exp = None;
        let mut monitoring = sample::three_hop_reply(1_000);
        monitoring.call = Call::MonitorConnections;
        monitoring.monitor = Some(MonitorScope {
            connections: vec![SelectedConnection {
                id: "c".into(),
                owned_by_caller: true,
            }],
        });
        for input in [registration, monitoring] {
            assert_eq!(input_document(&input), through_serde(&input));
        }
    }

    #[test]
    fn calls_and_sides_have_their_documented_names() {
        let document = input_document(&sample::three_hop_request(1_000));
        assert_eq!(document["call"], Value::from("networkservice.Request"));
        assert_eq!(document["side"], Value::from("server"));
        assert_eq!(
            document["path"]["segments"][0]["token"]["aud"][0],
            Value::from(sample::spiffe_id("nsmgr"))
        );
    }
}

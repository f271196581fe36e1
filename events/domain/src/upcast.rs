//! Event schemas and upcasters: every event type the log can hold, its current schema
//! version, and how older payload shapes are read as the current one, in memory. Stored rows
//! are never rewritten, so every (event type, schema version) ever written must stay
//! readable. Event type names are unique across the whole log (vWire and registry events).
//!
//! To change a payload shape: bump its version in [`SCHEMAS`], add a step to [`step`] that
//! turns the previous version's JSON into the new one, and add a test that reads a stored
//! payload of the old version.

use serde_json::{Value, json};

/// Why a stored event could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} schema version {version} is newer than this binary knows ({known})")]
    NewerVersion {
        event_type: String,
        version: u32,
        known: u32,
    },
    #[error("no upcaster for {event_type} schema version {version}")]
    NoUpcaster { event_type: String, version: u32 },
    #[error("{event_type} payload at position {position} does not decode: {message}")]
    Payload {
        event_type: String,
        position: u64,
        message: String,
    },
}

/// What decoding reads of a stored event: a reader that holds only these columns (a fold
/// over millions of rows, borrowing them from SQLite) decodes without building a
/// [`RecordedEvent`](crate::envelope::RecordedEvent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPayload<'a> {
    pub position: crate::envelope::Position,
    pub event_type: &'a str,
    pub schema_version: u32,
    /// JSON text, exactly as stored.
    pub payload: &'a str,
}

impl<'a> From<&'a crate::envelope::RecordedEvent> for StoredPayload<'a> {
    fn from(recorded: &'a crate::envelope::RecordedEvent) -> Self {
        Self {
            position: recorded.position,
            event_type: &recorded.event_type,
            schema_version: recorded.schema_version,
            payload: &recorded.payload,
        }
    }
}

/// Reads a stored payload of `event_type` at the current schema version: as stored when it
/// is current, upcast when older, refused when newer or unknown. `parse` reads the JSON.
pub(crate) fn read_current<T>(
    recorded: StoredPayload<'_>,
    parse: impl Fn(&str, &str) -> Result<T, serde_json::Error>,
) -> Result<T, DecodeError> {
    let event_type = recorded.event_type;
    let known = current_version(event_type)
        .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
    let payload_error = |e: serde_json::Error| DecodeError::Payload {
        event_type: event_type.to_owned(),
        position: recorded.position.0,
        message: e.to_string(),
    };
    if recorded.schema_version == known {
        return parse(event_type, recorded.payload).map_err(payload_error);
    }
    if recorded.schema_version > known {
        return Err(DecodeError::NewerVersion {
            event_type: event_type.to_owned(),
            version: recorded.schema_version,
            known,
        });
    }
    let old: serde_json::Value = serde_json::from_str(recorded.payload).map_err(payload_error)?;
    let current = upcast(event_type, recorded.schema_version, old)?;
    parse(event_type, &current.to_string()).map_err(payload_error)
}

/// Every event type and its current schema version.
pub const SCHEMAS: &[(&str, u32)] = &[
    // vWire lifecycle (streams `vwire-<uuid>`).
    ("Requested", 1),
    // v2 records the payload (ETHERNET or IP); v1 vWires all carried Ethernet.
    ("Established", 2),
    ("Refreshed", 1),
    ("Expired", 1),
    ("Closed", 1),
    // v2 (this release) records the stage and a gRPC-style code; v1 had the reason alone.
    ("Failed", 2),
    ("Healed", 1),
    ("DataplanePlumbed", 1),
    ("DataplaneUnplumbed", 1),
    ("ProbeFailed", 1),
    // The node's data plane (stream `dataplane-<node>`).
    ("OrphansRemoved", 1),
    ("Reconciled", 1),
    // Registry (streams `ns-<name>` and `nse-<name>`).
    ("ServiceRegistered", 1),
    ("ServiceUnregistered", 1),
    ("EndpointRegistered", 1),
    ("EndpointRefreshed", 1),
    ("EndpointUnregistered", 1),
    ("EndpointExpired", 1),
];

pub fn current_version(event_type: &str) -> Option<u32> {
    SCHEMAS
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|&(_, version)| version)
}

/// True if a stored `(event_type, version)` can be read by this binary.
pub fn is_readable(event_type: &str, version: u32) -> bool {
    match current_version(event_type) {
        Some(current) if version == current => true,
        Some(current) if version < current => (version..current).all(|v| has_step(event_type, v)),
        _ => false,
    }
}

fn has_step(event_type: &str, from: u32) -> bool {
    matches!((event_type, from), ("Failed", 1) | ("Established", 1))
}

/// Upgrades `payload` from `version` to the current version, one step at a time.
pub(crate) fn upcast(
    event_type: &str,
    version: u32,
    mut payload: Value,
) -> Result<Value, DecodeError> {
    let current = current_version(event_type).unwrap_or(version);
    for from in version..current {
        payload = step(event_type, from, payload)?;
    }
    Ok(payload)
}

fn step(event_type: &str, from: u32, mut payload: Value) -> Result<Value, DecodeError> {
    match (event_type, from) {
        ("Failed", 1) => {
            if let Some(fields) = payload.as_object_mut() {
                fields.entry("stage").or_insert(json!("unknown"));
                fields.entry("code").or_insert(json!("unknown"));
            }
            Ok(payload)
        }
        ("Established", 1) => {
            if let Some(fields) = payload.as_object_mut() {
                fields.entry("payload").or_insert(json!("ETHERNET"));
            }
            Ok(payload)
        }
        _ => Err(DecodeError::NoUpcaster {
            event_type: event_type.to_owned(),
            version: from,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Position;
    use crate::registry::Payload;
    use crate::vwire::VWireEvent;

    fn stored(version: u32, payload: &str) -> StoredPayload<'_> {
        StoredPayload {
            position: Position(7),
            event_type: "Established",
            schema_version: version,
            payload,
        }
    }

    /// An `Established` as a v1 writer left it: no payload, so Ethernet (every vWire was
    /// cross-connected at L2 then, and NSM defaults a service to ETHERNET).
    #[test]
    fn a_v1_established_reads_as_an_ethernet_vwire() {
        let v1 = r#"{"at":"2026-01-01T00:00:00Z","endpoint":{"name":"nse-1","url":"unix:///nse.sock"},
            "mechanism":{"cls":"LOCAL","type":"KERNEL"},"expires_at":"2026-01-01T00:10:00Z"}"#;
        assert!(is_readable("Established", 1));
        let VWireEvent::Established(established) =
            VWireEvent::decode_stored(stored(1, v1)).expect("a v1 Established decodes")
        else {
            panic!("not an Established");
        };
        assert_eq!(established.payload, Payload::Ethernet);
        assert_eq!(established.endpoint.name, "nse-1");
    }

    #[test]
    fn a_v2_established_keeps_its_payload() {
        let v2 = r#"{"at":"2026-01-01T00:00:00Z","endpoint":{"name":"nse-1","url":"unix:///nse.sock"},
            "payload":"IP","mechanism":{"cls":"LOCAL","type":"MEMIF"},"expires_at":"2026-01-01T00:10:00Z"}"#;
        assert_eq!(current_version("Established"), Some(2));
        let VWireEvent::Established(established) =
            VWireEvent::decode_stored(stored(2, v2)).expect("a v2 Established decodes")
        else {
            panic!("not an Established");
        };
        assert_eq!(established.payload, Payload::Ip);
        let newer = VWireEvent::decode_stored(stored(3, v2)).unwrap_err();
        assert!(
            matches!(newer, DecodeError::NewerVersion { known: 2, .. }),
            "{newer}"
        );
    }
}

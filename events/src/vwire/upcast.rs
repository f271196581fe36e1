//! Upcasters: old payload shapes read as the current one, in memory. Stored rows are never
//! rewritten, so every (event type, schema version) ever written must stay readable.
//!
//! To change a payload shape: bump its version in [`SCHEMAS`], add a step to [`step`] that
//! turns the previous version's JSON into the new one, and add a test that reads a stored
//! payload of the old version.

use serde_json::{Value, json};

use super::event::DecodeError;

/// Every vWire event type and its current schema version.
pub const SCHEMAS: &[(&str, u32)] = &[
    ("Requested", 1),
    ("Established", 1),
    ("Refreshed", 1),
    ("Expired", 1),
    ("Closed", 1),
    // v2 (this release) records the stage and a gRPC-style code; v1 had the reason alone.
    ("Failed", 2),
    ("Healed", 1),
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
    matches!((event_type, from), ("Failed", 1))
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
        _ => Err(DecodeError::NoUpcaster {
            event_type: event_type.to_owned(),
            version: from,
        }),
    }
}

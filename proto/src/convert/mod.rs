//! Conversions between NSM's wire types and nsm-rs's domain types.
//!
//! Wire → domain validates (a peer's bytes are input) and names the offending field in a
//! [`ConversionError`], which becomes gRPC `InvalidArgument`. Domain → wire cannot fail.
//! Round trips domain → wire → domain are lossless; the tests hold that.

mod connection;
mod registry;
#[cfg(test)]
mod tests;
mod vwire;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use nsm_domain::registry::validate_labels;
use nsm_domain::vwire::{Labels, LifecycleError};

pub use connection::{
    context_from_wire, context_to_wire, mechanism_from_wire, mechanism_to_wire, path_from_wire,
    path_to_wire,
};
pub use registry::{endpoint_from_wire, endpoint_to_wire, service_from_wire, service_to_wire};
pub use vwire::{Side, hop_reply_from_wire, hop_request_to_wire, hop_to_wire, vwire_to_wire};

/// A wire value that does not make a valid domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConversionError {
    /// Where in the message, e.g. `connection.mechanism.cls`.
    pub field: String,
    pub problem: String,
}

impl ConversionError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Wraps a domain validation error found in `field`.
    pub(crate) fn invalid(field: impl Into<String>, error: LifecycleError) -> Self {
        Self::new(field, error.to_string())
    }
}

impl From<ConversionError> for tonic::Status {
    fn from(error: ConversionError) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

/// A protobuf timestamp as a UTC time.
pub fn time_from_wire(
    field: &str,
    stamp: &prost_types::Timestamp,
) -> Result<DateTime<Utc>, ConversionError> {
    let nanos = u32::try_from(stamp.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000);
    nanos
        .and_then(|nanos| DateTime::from_timestamp(stamp.seconds, nanos))
        .ok_or_else(|| ConversionError::new(field, format!("{stamp:?} is not a valid time")))
}

pub fn time_to_wire(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Wire labels as domain labels, within the documented limits.
pub fn labels_from_wire(
    field: &str,
    labels: &HashMap<String, String>,
) -> Result<Labels, ConversionError> {
    let labels: Labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    validate_labels(field, &labels).map_err(|e| ConversionError::invalid(field, e))?;
    Ok(labels)
}

pub fn labels_to_wire(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

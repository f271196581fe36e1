//! The trace context of a gRPC call, as stored with the events it causes.

use nsm_events::store::Causation;
use tonic::metadata::MetadataMap;

/// The call's W3C trace id (`traceparent`) as the correlation id, so everything one request
/// did shares it; a fresh id when the caller sent none.
pub(crate) fn causation(metadata: &MetadataMap) -> Causation {
    let trace_id = metadata
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_owned);
    Causation {
        correlation_id: Some(trace_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())),
        causation_id: None,
    }
}

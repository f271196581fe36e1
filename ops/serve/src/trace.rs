//! The trace context of a gRPC call: its span, and the trace id stored with the events it
//! causes (their correlation id, which `nsm events --trace-id` finds).
//!
//! The trace id is the caller's W3C `traceparent` trace id, or a fresh one when it sent
//! none. When spans are exported ([`super::otlp`]) the call's span is started under the
//! caller's `traceparent`, and the id recorded is the exported span's own, so the collector
//! and the event log agree; otherwise no OpenTelemetry code runs.

use nsm_log::store::Causation;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{KeyRef, MetadataMap};
use tracing::Span;
use tracing::field::Empty;

use super::metrics::Method;

/// The span of one NetworkService call, and the causation its events carry. `export`: spans
/// are exported over OTLP.
pub(crate) fn server_span(
    method: Method,
    metadata: &MetadataMap,
    export: bool,
) -> (Span, Causation) {
    let (span, exported_id) = if export {
        let span = under_caller(method, metadata);
        let id = exported_trace_id(&span);
        (span, id)
    } else {
        (new_span(method), None)
    };
    let trace_id = exported_id
        .or_else(|| sent_trace_id(metadata))
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    span.record("trace_id", trace_id.as_str());
    let causation = Causation {
        correlation_id: Some(trace_id),
        causation_id: None,
    };
    (span, causation)
}

/// Records how the call ended on its exported span (gRPC status; error status if not OK).
pub(crate) fn finish(span: &Span, code: tonic::Code, export: bool) {
    if !export {
        return;
    }
    span.record("rpc.grpc.status_code", code as i32);
    if code != tonic::Code::Ok {
        span.record("otel.status_code", "ERROR");
    }
}

fn new_span(method: Method) -> Span {
    // A span's name is fixed where it is written: one per method.
    match method {
        Method::Request => tracing::info_span!(
            "networkservice.NetworkService/Request",
            trace_id = Empty,
            otel.kind = Empty,
            rpc.system = Empty,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        ),
        Method::Close => tracing::info_span!(
            "networkservice.NetworkService/Close",
            trace_id = Empty,
            otel.kind = Empty,
            rpc.system = Empty,
            rpc.grpc.status_code = Empty,
            otel.status_code = Empty,
        ),
    }
}

/// A new span whose parent is the caller's `traceparent` (none: a new trace).
fn under_caller(method: Method, metadata: &MetadataMap) -> Span {
    let parent = TraceContextPropagator::new().extract(&Metadata(metadata));
    let span = {
        // The layer takes a new span's parent from the current context (no span is entered
        // in a tonic handler).
        let _attached = parent.attach();
        new_span(method)
    };
    span.record("otel.kind", "server");
    span.record("rpc.system", "grpc");
    span
}

/// The trace id of an exported span (`None` if the filter dropped it).
fn exported_trace_id(span: &Span) -> Option<String> {
    let _entered = span.enter();
    let id = opentelemetry::Context::current()
        .span()
        .span_context()
        .trace_id();
    (id != TraceId::INVALID).then(|| id.to_string())
}

/// The trace id of the caller's `traceparent`, if it sent a well-formed one.
fn sent_trace_id(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_owned)
}

/// gRPC metadata as OpenTelemetry's propagators read it.
struct Metadata<'a>(&'a MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                KeyRef::Ascii(key) => Some(key.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_trace_id_is_the_correlation_id() {
        let mut metadata = MetadataMap::new();
        metadata.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let (_, causation) = server_span(Method::Request, &metadata, false);
        assert_eq!(
            causation.correlation_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let (_, fresh) = server_span(Method::Close, &MetadataMap::new(), false);
        assert_eq!(fresh.correlation_id.map(|id| id.len()), Some(32));
    }
}

//! Trace export over OTLP/gRPC (`--otlp-endpoint`): a tracing-opentelemetry layer whose spans
//! go through a batch exporter to the collector, under `service.name = nsm-serve` and the
//! node's name (`nsm.node`). Without the setting none of this runs.
//!
//! The layer goes in the logging slot ([`crate::logging::add_span_layer`]), so it sees what
//! `--log` lets through. The exporter's own HTTP/2 and the OpenTelemetry SDK are left out
//! (their spans would be exported by the next export, and so on). The batch processor runs
//! on a thread of its own; the tonic channel it sends through runs on the node's runtime.
//! [`TraceExport::shutdown`] exports what is left, at the end of `nsm serve`.
//!
//! The gRPC handlers start their span under the caller's `traceparent`
//! ([`super::trace::server_span`]), so a trace in the collector has the id the events
//! record as their correlation id.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::span;
use tracing::{Dispatch, Event, Metadata};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};

/// How long the last export at shutdown may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Targets whose spans and events are not exported: the exporter's own transport, and the
/// SDK's own diagnostics.
const NOT_EXPORTED: [&str; 6] = ["h2", "hyper", "tower", "tonic", "opentelemetry", "otel"];

/// The running export.
#[derive(Debug)]
pub(crate) struct TraceExport {
    provider: SdkTracerProvider,
}

impl TraceExport {
    /// Starts exporting to `endpoint` (an `http://host:port` already checked). Must run on
    /// the runtime (the gRPC channel is built on it); connects lazily, so a collector that
    /// is not there yet delays nothing.
    pub(crate) fn start(endpoint: &str, node: &str) -> anyhow::Result<Self> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .with_context(|| format!("--otlp-endpoint {endpoint}: cannot build the exporter"))?;
        let resource = Resource::builder()
            .with_service_name("nsm-serve")
            .with_attributes([
                KeyValue::new("nsm.node", node.to_owned()),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("nsm-serve"))
            .with_tracked_inactivity(false);
        crate::logging::add_span_layer(Box::new(Exported(layer)))?;
        tracing::info!(endpoint, "exporting trace spans over OTLP");
        Ok(Self { provider })
    }

    /// Exports the spans still queued, then stops the exporter.
    pub(crate) async fn shutdown(self) {
        let provider = self.provider;
        // The SDK blocks until its thread has exported; not on a runtime worker.
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the last trace export failed"),
            Err(e) => tracing::warn!(error = %e, "the trace exporter's shutdown failed"),
        }
    }
}

fn exported(metadata: &Metadata<'_>) -> bool {
    exported_target(metadata.target())
}

/// Whether `target` (a module path) is none of [`NOT_EXPORTED`] nor in one (`h2::proto`,
/// `hyper_util`, `opentelemetry_sdk`).
fn exported_target(target: &str) -> bool {
    !NOT_EXPORTED.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::") || rest.starts_with('_'))
    })
}

/// The exporting layer, shown only the spans and events of [`exported`] targets. (Not a
/// per-layer filter: those cannot be added to a subscriber that is already running.)
struct Exported<L>(L);

impl<L: Layer<Registry>> Layer<Registry> for Exported<L> {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, Registry>) {
        if exported(attrs.metadata()) {
            self.0.on_new_span(attrs, id, ctx);
        }
    }

    // A span the inner layer was not shown has none of its data: these do nothing for it.
    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, Registry>) {
        self.0.on_record(id, values, ctx);
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: Context<'_, Registry>) {
        self.0.on_follows_from(id, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, Registry>) {
        if exported(event.metadata()) {
            self.0.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, Registry>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, Registry>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, Registry>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, Registry>) {
        self.0.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exporters_own_transport_is_not_exported() {
        let cases = [
            ("h2::proto::streams", false),
            ("hyper_util::client", false),
            ("hyper::client", false),
            ("opentelemetry_sdk", false),
            ("tonic::transport", false),
            ("nsm::serve::network_service", true),
            ("nsm_runtime::vwire", true),
            ("h2x", true),
        ];
        for (target, expected) in cases {
            assert_eq!(exported_target(target), expected, "{target}");
        }
    }
}

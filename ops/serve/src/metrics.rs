//! The node's metrics: one Prometheus registry, served as text by the admin listener
//! ([`super::admin`]). Names are `nsm_<thing>_<unit>`, counters end in `_total`, and every
//! label has a small fixed set of values (never a vWire id, a client or an endpoint).
//!
//! | metric | labels | from |
//! |---|---|---|
//! | `nsm_requests_total` | `method` (Request, Close), `status` (gRPC code: ok, not_found, ...) | [`super::network_service`] |
//! | `nsm_request_duration_seconds` (histogram) | `method` | same |
//! | `nsm_vwires` (gauge) | `state` (requested, established) | the vWire actors, at scrape |
//! | `nsm_dataplane_operations_total` | `op` (plumb, unplumb), `result` (ok, error) | the Forwarder, at scrape |
//! | `nsm_dataplane_repairs_total` | `kind` (healed, orphan_removed) | same |
//! | `nsm_event_log_append_duration_seconds` (histogram) | | the journal writer |
//! | `nsm_event_log_commit_duration_seconds` (histogram) | | same |
//! | `nsm_event_log_commit_events` (histogram) | | same |
//! | `nsm_event_log_commit_failures_total` | | same |
//! | `nsm_replay_duration_seconds` (gauge) | | start-up |
//! | `nsm_process_start_time_seconds` (gauge), `nsm_build_info` | `version`, `node` | start-up |
//!
//! What the runtime counts itself (vWires, data plane) is read from its atomics when scraped
//! ([`nsm_runtime::stats`]); the rest is recorded as it happens.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nsm_log::store::sqlite::{CommitObservation, JournalObserver};
use nsm_runtime::stats::{DataplaneStats, VWireGauge};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The NetworkService methods that are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Request,
    Close,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Request => "Request",
            Method::Close => "Close",
        }
    }
}

type Labels<const N: usize> = [(&'static str, &'static str); N];
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// Latencies from 0.1 ms to about 1.6 s: an fsync is a fraction of a millisecond on NVMe
/// and tens of milliseconds on a slow disk.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 15))
}

/// A call's time, 0.5 ms to about 16 s (a Request waits for the endpoint, up to its
/// request timeout).
fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

/// The node's registry and the metrics recorded as things happen.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Labels<2>, Counter>,
    request_duration: Histograms<1>,
    replay_duration: Gauge<f64, AtomicU64>,
    journal: Arc<JournalMetrics>,
    runtime: Arc<RuntimeMetrics>,
}

impl Metrics {
    pub(crate) fn new(node: &str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels<2>, Counter>::default();
        registry.register(
            "nsm_requests",
            "NetworkService calls answered, by method (Request, Close) and gRPC status (ok, invalid_argument, not_found, unavailable, ...)",
            requests.clone(),
        );
        let request_duration = Histograms::<1>::new_with_constructor(call_buckets as fn() -> _);
        registry.register(
            "nsm_request_duration_seconds",
            "Time from a NetworkService call's arrival to its answer, in seconds, by method",
            request_duration.clone(),
        );
        let replay_duration = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "nsm_replay_duration_seconds",
            "How long start-up replay of the event log (registry and vWires) took, in seconds",
            replay_duration.clone(),
        );
        let journal = Arc::new(JournalMetrics::new(&mut registry));
        let runtime = Arc::new(RuntimeMetrics::default());
        registry.register_collector(Box::new(runtime.clone()));
        register_process(&mut registry, node);
        Self {
            registry,
            requests,
            request_duration,
            replay_duration,
            journal,
            runtime,
        }
    }

    /// The journal writer's observer (for the event log's `OpenOptions`).
    pub(crate) fn journal(&self) -> Arc<dyn JournalObserver> {
        self.journal.clone()
    }

    /// Where the vWire and data-plane figures are read from, once the runtime has started.
    pub(crate) fn watch_runtime(&self, vwires: Arc<VWireGauge>, dataplane: Arc<DataplaneStats>) {
        let _ = self.runtime.vwires.set(vwires);
        let _ = self.runtime.dataplane.set(dataplane);
    }

    pub(crate) fn replayed(&self, took: Duration) {
        self.replay_duration.set(took.as_secs_f64());
    }

    /// A NetworkService call was answered with `code` after `took`.
    pub(crate) fn answered(&self, method: Method, code: tonic::Code, took: Duration) {
        let method = method.as_str();
        self.requests
            .get_or_create(&[("method", method), ("status", code_name(code))])
            .inc();
        self.request_duration
            .get_or_create(&[("method", method)])
            .observe(took.as_secs_f64());
    }

    /// The exposition in Prometheus' (OpenMetrics) text format.
    pub(crate) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

fn register_process(registry: &mut Registry, node: &str) {
    let started = Gauge::<f64, AtomicU64>::default();
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    started.set(since_epoch.as_secs_f64());
    registry.register(
        "nsm_process_start_time_seconds",
        "When this nsm serve process started, in seconds since the Unix epoch",
        started,
    );
    registry.register(
        "nsm_build",
        "This nsm serve's version and node name (always 1)",
        Info::new(vec![
            ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            ("node".to_owned(), node.to_owned()),
        ]),
    );
}

/// The journal writer's work, as it reports it.
#[derive(Debug)]
struct JournalMetrics {
    append_duration: Histogram,
    commit_duration: Histogram,
    commit_events: Histogram,
    commit_failures: Counter,
}

impl JournalMetrics {
    fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            append_duration: latency_buckets(),
            commit_duration: latency_buckets(),
            // 1 to 4096 events per commit (a batch is at most 1024 appends).
            commit_events: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            commit_failures: Counter::default(),
        };
        registry.register(
            "nsm_event_log_append_duration_seconds",
            "Time from an append being queued to the journal writer to its answer (durable, or refused), in seconds",
            metrics.append_duration.clone(),
        );
        registry.register(
            "nsm_event_log_commit_duration_seconds",
            "Time one group commit of the event log took (its statements and the fsync), in seconds",
            metrics.commit_duration.clone(),
        );
        registry.register(
            "nsm_event_log_commit_events",
            "Events newly written per committed transaction (the group commit's batch size)",
            metrics.commit_events.clone(),
        );
        registry.register(
            "nsm_event_log_commit_failures",
            "Transactions of the journal writer that did not commit (rolled back, or COMMIT failed with the outcome unknown); each is logged at ERROR",
            metrics.commit_failures.clone(),
        );
        metrics
    }
}

impl JournalObserver for JournalMetrics {
    fn committed(&self, commit: &CommitObservation) {
        if !commit.committed {
            self.commit_failures.inc();
            return;
        }
        self.commit_duration.observe(commit.duration.as_secs_f64());
        self.commit_events.observe(commit.events as f64);
    }

    fn appended(&self, latency: Duration) {
        self.append_duration.observe(latency.as_secs_f64());
    }
}

/// What the runtime counts itself, read when scraped (zero until it has started).
#[derive(Debug, Default)]
struct RuntimeMetrics {
    vwires: OnceLock<Arc<VWireGauge>>,
    dataplane: OnceLock<Arc<DataplaneStats>>,
}

impl Collector for RuntimeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let live = self.vwires.get().map(|g| g.read()).unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "nsm_vwires",
            "Live vWires on this node by state: requested (being connected) or established",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [
            ("requested", live.requested),
            ("established", live.established),
        ] {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            ConstGauge::new(n).encode(family.encode_family(&[("state", state)])?)?;
        }
        let done = self.dataplane.get().map(|d| d.read()).unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "nsm_dataplane_operations",
            "Data-plane plumb and unplumb calls, by result",
            None,
            MetricType::Counter,
        )?;
        for (op, result, n) in [
            ("plumb", "ok", done.plumb_ok),
            ("plumb", "error", done.plumb_error),
            ("unplumb", "ok", done.unplumb_ok),
            ("unplumb", "error", done.unplumb_error),
        ] {
            let labels = [("op", op), ("result", result)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "nsm_dataplane_repairs",
            "Data-plane repairs: vWires re-created (healed: by reconcile at start-up or after the data plane lost its state, or after a failed liveness probe) and objects no live vWire owned, removed by reconcile (orphan_removed)",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in [
            ("healed", done.healed),
            ("orphan_removed", done.orphans_removed),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&[("kind", kind)])?)?;
        }
        Ok(())
    }
}

/// A gRPC status code as a label value: the name in the gRPC spec, in snake case.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_its_labels() {
        let metrics = Metrics::new("node-a");
        metrics.answered(Method::Request, tonic::Code::Ok, Duration::from_millis(3));
        metrics.answered(
            Method::Close,
            tonic::Code::NotFound,
            Duration::from_millis(1),
        );
        metrics.journal.committed(&CommitObservation {
            appends: 2,
            events: 3,
            duration: Duration::from_micros(400),
            committed: true,
        });
        metrics.replayed(Duration::from_millis(12));
        let text = metrics.encode().unwrap();
        for line in [
            "nsm_requests_total{method=\"Request\",status=\"ok\"} 1",
            "nsm_requests_total{method=\"Close\",status=\"not_found\"} 1",
            "nsm_vwires{state=\"established\"} 0",
            "nsm_dataplane_operations_total{op=\"plumb\",result=\"ok\"} 0",
            "nsm_dataplane_repairs_total{kind=\"orphan_removed\"} 0",
            "nsm_event_log_commit_events_count 1",
            "nsm_event_log_commit_failures_total 0",
            "nsm_replay_duration_seconds 0.012",
            "nsm_build_info{version=",
            "# EOF",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
    }
}

//! The admin listener (`--admin-listen`): plain HTTP/1 for Prometheus and for probes.
//!
//! | path | answers |
//! |---|---|
//! | `GET /metrics` | the node's metrics ([`super::metrics`]), OpenMetrics text |
//! | `GET /live` | 200 `ok` as soon as the process serves this listener |
//! | `GET /ready` | 200 `ready` once replay and reconcile are done and gRPC is served; 503 with the stage before that, and again while draining at shutdown |
//!
//! It is bound before the event log is opened, so a long replay is live but not ready, and
//! it stops last, after the gRPC listeners have drained. It serves no state of any vWire.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nsm_proto::transport::PeerUrl;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use nsm_proto::listen::Listener;

/// What Prometheus asks for and prometheus-client writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where start-up or shutdown is; only [`Stage::Serving`] is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stage {
    Replaying = 0,
    Reconciling = 1,
    Binding = 2,
    Serving = 3,
    Draining = 4,
}

impl Stage {
    fn from_u8(n: u8) -> Self {
        match n {
            0 => Stage::Replaying,
            1 => Stage::Reconciling,
            2 => Stage::Binding,
            3 => Stage::Serving,
            _ => Stage::Draining,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Stage::Replaying => "starting: replaying the event log",
            Stage::Reconciling => "starting: reconciling the data plane with the log",
            Stage::Binding => "starting: binding the gRPC listeners",
            Stage::Serving => "ready",
            Stage::Draining => "draining: shutting down",
        }
    }
}

/// The node's readiness, shared by the start-up sequence and the admin listener.
#[derive(Debug, Clone)]
pub(crate) struct Readiness(Arc<AtomicU8>);

impl Default for Readiness {
    fn default() -> Self {
        Self(Arc::new(AtomicU8::new(Stage::Replaying as u8)))
    }
}

impl Readiness {
    pub(crate) fn set(&self, stage: Stage) {
        self.0.store(stage as u8, Ordering::Release);
    }

    fn get(&self) -> Stage {
        Stage::from_u8(self.0.load(Ordering::Acquire))
    }
}

#[derive(Debug, Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// The running admin listener.
#[derive(Debug)]
pub(crate) struct AdminServer {
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    /// Binds `url` (a `tcp://` URL; port 0 picks a free port, which the log names) and serves.
    pub(crate) async fn start(
        url: &PeerUrl,
        metrics: Arc<Metrics>,
        readiness: Readiness,
    ) -> anyhow::Result<Self> {
        let bound = Listener::bind(url)
            .await
            .with_context(|| format!("--admin-listen {url}"))?;
        let Listener::Tcp { listener, .. } = bound else {
            anyhow::bail!("--admin-listen {url}: must be tcp://host:port");
        };
        let address = format!("http://{}", listener.local_addr()?);
        tracing::info!(%address, "admin listening");
        let app = Router::new()
            .route("/metrics", get(scrape))
            .route("/live", get(live))
            .route("/ready", get(ready))
            .with_state(AdminState { metrics, readiness });
        let (stop, mut stopped) = watch::channel(false);
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        Ok(Self { stop, task })
    }

    /// Stops serving; a scrape in progress is finished first.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the admin listener failed"),
            Err(e) => tracing::warn!(error = %e, "the admin listener's task failed"),
        }
    }
}

async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<AdminState>) -> (StatusCode, String) {
    let stage = state.readiness.get();
    let code = if stage == Stage::Serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{}\n", stage.describe()))
}

async fn scrape(State(state): State<AdminState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

//! # nsm-serve: `nsm serve`, the node daemon
//!
//! The node daemon. It opens the event log, loads the registry and replays the
//! vWires (start-up heal), then serves NSM's API on every `--listen` address until SIGINT or
//! SIGTERM:
//!
//! | gRPC service | module |
//! |---|---|
//! | `networkservice.NetworkService` (Request, Close) | [`network_service`] |
//! | `connection.MonitorConnection` | [`monitor`] |
//! | `registry.NetworkServiceRegistry`, `registry.NetworkServiceEndpointRegistry` | [`registry`] |
//! | `grpc.health.v1.Health` (SERVING once replay is done), gRPC reflection | here |
//!
//! Nothing is served before replay and reconcile have finished (the data plane agrees with
//! the log), so a client never sees a half-loaded node.
//!
//! Every listener serves mutual TLS as the node's X.509-SVID (`--svid-cert`, `--svid-key`,
//! `--trust-bundle`, followed through rotations), and the node's calls to endpoints
//! ([`next_hop`]) present the same SVID; a vWire's client is the caller's SPIFFE ID from its
//! certificate. `--insecure` is plaintext without authentication, announced at start; with
//! neither, the node refuses to start before it opens anything.
//!
//! With `--admin-listen`, an HTTP listener ([`admin`]) serves the metrics ([`metrics`]) and
//! the liveness and readiness probes; it is bound first, so the node is live (not ready)
//! during a long replay. With `--otlp-endpoint`, spans are exported ([`otlp`]).
//!
//! It owns the gRPC edge of a node: the services over the actors, the gRPC next hop
//! ([`hop`]), the configuration (flags, environment, TOML), logging, metrics and OTLP. It
//! does not own the vWire flows (`nsm-runtime`), the data planes (`nsm-dataplane`) or the
//! log (`nsm-log`), and never reaches the VPP simulator.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod admin;
mod config;
mod hop;
pub mod logging;
mod metrics;
mod monitor;
mod network_service;
mod next_hop;
mod otlp;
mod registry;
mod status;
mod trace;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::future::join_all;
use nsm_dataplane::kernel::Kernel;
use nsm_dataplane::vpp::Vpp;
use nsm_dataplane::{Dataplane, DryRun};
use nsm_log::store::{OpenOptions, SqliteStore};
use nsm_proto::connection::monitor_connection_server::MonitorConnectionServer;
use nsm_proto::networkservice::network_service_server::NetworkServiceServer as NetworkServiceGrpc;
use nsm_proto::registry::network_service_endpoint_registry_server::NetworkServiceEndpointRegistryServer;
use nsm_proto::registry::network_service_registry_server::NetworkServiceRegistryServer;
use nsm_runtime::clock::SystemClock;
use nsm_runtime::{
    Forwarder, Journal, ManagerConfig, ManagerHandle, Mesh, RegistryConfig, RegistryHandle,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;

use admin::{AdminServer, Readiness, Stage};
pub use config::ServeArgs;
use config::{DataplaneKind, ServeConfig};
use metrics::Metrics;
use next_hop::GrpcNextHop;
use nsm_proto::listen::Listener;
use nsm_proto::transport::Security;

/// How long in-flight calls get to finish after SIGINT/SIGTERM (monitor and watch streams
/// never finish on their own).
const DRAIN: Duration = Duration::from_secs(5);

/// The gRPC service names health reports, as NSM's servers register them.
const SERVICE_NAMES: [&str; 4] = [
    "networkservice.NetworkService",
    "connection.MonitorConnection",
    "registry.NetworkServiceRegistry",
    "registry.NetworkServiceEndpointRegistry",
];

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let security = config
        .identity
        .clone()
        .start()
        .await
        .context("cannot load this node's identity")?;
    let traces = match &config.otlp_endpoint {
        Some(endpoint) => Some(otlp::TraceExport::start(endpoint, &config.node)?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new(&config.node));
    let readiness = Readiness::default();
    let admin = match &config.admin_listen {
        Some(url) => Some(AdminServer::start(url, metrics.clone(), readiness.clone()).await?),
        None => None,
    };
    let served = node(&config, &security, &metrics, &readiness).await;
    if let Some(admin) = admin {
        admin.stop().await;
    }
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    served
}

/// Opens the log, replays, reconciles, then serves until a signal.
async fn node(
    config: &ServeConfig,
    security: &Security,
    metrics: &Arc<Metrics>,
    readiness: &Readiness,
) -> anyhow::Result<()> {
    let options = OpenOptions {
        observer: Some(metrics.journal()),
        ..OpenOptions::default()
    };
    let store = SqliteStore::open(&config.db, options)
        .await
        .with_context(|| "cannot open the event log")?;
    let store: Arc<dyn nsm_log::store::EventStore> = Arc::new(store);
    let journal = Journal::new(store.clone());
    let clock = Arc::new(SystemClock);

    let registry_config = RegistryConfig {
        default_endpoint_lifetime: config.endpoint_lifetime,
    };
    let began = Instant::now();
    let (registry, loaded) =
        RegistryHandle::start(registry_config, journal.clone(), clock.clone()).await?;
    let registry_took = began.elapsed();
    tracing::info!(
        services = loaded.services,
        endpoints = loaded.endpoints,
        expired_during_downtime = loaded.expired_during_downtime,
        "registry loaded"
    );
    let dataplane = dataplane(config).await?;
    let lost_state = dataplane.lost_state();
    let forwarder = Forwarder::new(dataplane);
    let dataplane_stats = forwarder.stats();
    let mesh = Arc::new(Mesh {
        node: config.node.clone(),
        registry: registry.clone(),
        next_hop: Arc::new(GrpcNextHop::new(security.clone())),
        forwarder,
        request_timeout: config.request_timeout,
        liveness: config.liveness,
    });
    let manager_config = ManagerConfig {
        arbiters: config.actor_threads,
        mesh: Some(mesh),
    };
    let (manager, replayed) = ManagerHandle::start(manager_config, journal, clock).await?;
    tracing::info!(
        live = replayed.live,
        expired_during_downtime = replayed.expired_during_downtime,
        "vWires replayed"
    );
    metrics.replayed(registry_took + replayed.duration);
    metrics.watch_runtime(manager.vwire_gauge(), dataplane_stats);
    readiness.set(Stage::Reconciling);
    manager
        .reconcile()
        .await
        .context("cannot reconcile the data plane with the log")?;
    if let Some(lost_state) = lost_state {
        tokio::spawn(reconcile_when_lost(manager.clone(), lost_state));
    }
    readiness.set(Stage::Binding);
    let (routes, health) =
        routes(config, security, manager, registry, store, metrics.clone()).await?;
    serve(config, security, routes, &health, readiness).await
}

/// Reconciles again each time the data plane says it lost what it held (VPP restarted):
/// what live vWires need is re-created, each repair recorded on its vWire.
async fn reconcile_when_lost(
    manager: ManagerHandle,
    mut lost_state: tokio::sync::watch::Receiver<u64>,
) {
    while lost_state.changed().await.is_ok() {
        match manager.reconcile().await {
            Ok(report) => tracing::info!(?report, "reconciled after the data plane lost its state"),
            Err(e) => {
                tracing::error!(error = %e, "cannot reconcile after the data plane lost its state")
            }
        }
    }
}

/// The data plane the configuration names, started.
async fn dataplane(config: &ServeConfig) -> anyhow::Result<Arc<dyn Dataplane>> {
    Ok(match &config.dataplane {
        DataplaneKind::DryRun => {
            let why = config
                .dataplane_defaulted
                .as_deref()
                .unwrap_or("--dataplane dry-run");
            tracing::warn!(
                reason = why,
                "data plane: dry-run — vWires are recorded but nothing is plumbed"
            );
            Arc::new(DryRun)
        }
        DataplaneKind::Vpp(vpp) => {
            let socket = vpp.socket.clone();
            let vpp = Vpp::start(&config.node, vpp.clone())
                .await
                .with_context(|| {
                    format!("cannot start the VPP data plane on {}", socket.display())
                })?;
            tracing::info!(socket = %socket.display(), kernel_interface = vpp.kernel_interface().as_str(), "data plane: vpp");
            Arc::new(vpp)
        }
        DataplaneKind::Kernel => {
            let kernel = Kernel::start(&config.node)
                .await
                .context("cannot start the kernel data plane")?;
            tracing::info!(liveness = ?config.liveness, "data plane: kernel");
            Arc::new(kernel)
        }
    })
}

async fn routes(
    config: &ServeConfig,
    security: &Security,
    manager: ManagerHandle,
    registry: RegistryHandle,
    store: Arc<dyn nsm_log::store::EventStore>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(Routes, HealthReporter)> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in SERVICE_NAMES {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    // Both reflection versions: grpcurl and older tools still ask v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(nsm_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("cannot build the reflection service")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("cannot build the reflection service")?;
    let network_service = network_service::NetworkServiceServer::new(
        manager,
        config.node.clone(),
        config.lifetime,
        metrics,
        config.otlp_endpoint.is_some(),
        !security.is_insecure(),
    );
    let registry_server = registry::RegistryServer::new(registry);
    let routes = Routes::new(NetworkServiceGrpc::new(network_service))
        .add_service(MonitorConnectionServer::new(monitor::MonitorServer::new(
            store,
        )))
        .add_service(NetworkServiceRegistryServer::new(registry_server.clone()))
        .add_service(NetworkServiceEndpointRegistryServer::new(registry_server))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok((routes, health))
}

/// Binds every address (all or nothing), serves until a signal, then drains. Ready from
/// when every listener serves until the signal; from the signal on, gRPC health answers
/// NOT_SERVING too, so a client that checks it moves away before the listeners close.
async fn serve(
    config: &ServeConfig,
    security: &Security,
    routes: Routes,
    health: &HealthReporter,
    readiness: &Readiness,
) -> anyhow::Result<()> {
    let mut bound = Vec::new();
    for url in &config.listen {
        bound.push(Listener::bind(url).await?);
    }
    let (stop, stopped) = watch::channel(false);
    let mut servers = Vec::new();
    for listener in bound {
        let tls = if security.is_insecure() {
            "plaintext (--insecure)"
        } else {
            "mutual TLS"
        };
        tracing::info!(node = %config.node, address = %listener.url(), tls, "serving");
        let mut stopped = stopped.clone();
        let routes = routes.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let security = security.server();
        servers.push(tokio::spawn(async move {
            listener.serve(routes, &security, shutdown).await
        }));
    }
    readiness.set(Stage::Serving);
    let signal = shutdown_signal().await?;
    readiness.set(Stage::Draining);
    for name in SERVICE_NAMES.into_iter().chain([""]) {
        health
            .set_service_status(name, tonic_health::ServingStatus::NotServing)
            .await;
    }
    tracing::info!(signal, "stopping: draining calls for up to {DRAIN:?}");
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN, join_all(servers)).await;
    for outcome in drained.into_iter().flatten() {
        outcome.context("a listener task failed")??;
    }
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

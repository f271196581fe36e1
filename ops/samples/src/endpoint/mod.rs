//! `nsm endpoint`: a sample Network Service Endpoint, like NSM's `cmd-nse-icmp-responder`,
//! with one difference that matters: its IPAM is durable.
//!
//! ## What it does
//!
//! * **Start**: opens (or creates) its IPAM log (`--db`, see [`log`] for the table), folds
//!   it into the current allocations, re-arms their expiry timers, binds `--listen`, serves
//!   `networkservice.NetworkService`, `connection.MonitorConnection` and `grpc.health.v1`,
//!   then registers with `--registry` (the service if no service of that exact name exists,
//!   then the endpoint) and keeps the registration refreshed ([`registration`]).
//! * **Request**: NSM's `updatepath` for a hop named `--name` ([`path`]); the first KERNEL or
//!   MEMIF preference as the LOCAL mechanism; a point-to-point address pair from `--cidr`
//!   keyed by the endpoint's own segment id ([`ipam`]), appended to the log before the reply.
//!   The same segment id always gets the same pair, across refreshes and across restarts of
//!   the endpoint (NSM's in-memory IPAM does not promise that: sdk#1358).
//! * **Close**: releases the pair (`released`, cause `close`); unknown connections are fine.
//! * **Expiry**: a connection not refreshed is released (cause `expired`) one `--gc-grace`
//!   after its previous segment's `expires`.
//! * **SIGINT / SIGTERM**: unregisters, stops serving, exits 0. Allocations stay in the log.
//! * **Identity**: with `--svid-cert`, `--svid-key` and `--trust-bundle` it serves mutual TLS
//!   (the node calling it must hold an SVID of the same trust domain) and registers over
//!   mutual TLS as that SVID; `--insecure` does both in plaintext (development only).
//!
//! With the default `--name` (random suffix) each run has a new name and therefore a new
//! default `--db`; give `--name` (or `--db`) to keep allocations across restarts.

mod cidr;
mod ipam;
mod monitor;
mod path;
mod registration;
mod service;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use nsm_proto::connection::monitor_connection_server::MonitorConnectionServer;
use nsm_proto::networkservice::network_service_server::NetworkServiceServer;
use nsm_proto::registry::NetworkService;
use nsm_proto::transport::{DEFAULT_CONNECT_TIMEOUT, IdentityArgs, PeerUrl};
use tonic::service::Routes;

use self::cidr::Cidr;
use self::registration::Registration;
use self::service::Endpoint;
use crate::signals::Signals;
use nsm_log::ipam::IpamLog;
use nsm_proto::listen::Listener;

pub(crate) use self::service::MAX_INTERFACE_NAME;

#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// The network service this endpoint provides.
    #[arg(long, env = "NSM_ENDPOINT_SERVICE")]
    service: String,
    /// The pool client and endpoint addresses come from (IPv4 or IPv6).
    #[arg(long, env = "NSM_ENDPOINT_CIDR", default_value = "169.254.0.0/16")]
    cidr: Cidr,
    /// Where to serve NetworkService: unix:///path or tcp://host:port (port 0: any free one).
    #[arg(long, env = "NSM_ENDPOINT_LISTEN")]
    listen: PeerUrl,
    /// The node (`nsm serve`) whose registry to register with.
    #[arg(long, env = "NSM_ENDPOINT_REGISTRY")]
    registry: PeerUrl,
    /// A label of this endpoint for the service, `key=value` (repeat, or comma-separate).
    #[arg(long = "label", env = "NSM_ENDPOINT_LABEL", value_parser = parse_label, value_delimiter = ',')]
    labels: Vec<(String, String)>,
    /// The endpoint's name [default: endpoint-<service>-<random>]. Keep it across restarts.
    #[arg(long, env = "NSM_ENDPOINT_NAME")]
    name: Option<String>,
    /// This endpoint's network namespace, where the forwarder puts its end of each vWire
    /// [default: /proc/<own pid>/ns/net].
    #[arg(long, env = "NSM_ENDPOINT_NETNS")]
    netns: Option<PathBuf>,
    /// The IPAM log [default: ./nsm-endpoint-<name>.db].
    #[arg(long, env = "NSM_ENDPOINT_DB")]
    db: Option<PathBuf>,
    /// How long each registration lasts; it is renewed at 2/3 of it.
    #[arg(long, env = "NSM_ENDPOINT_REGISTRATION_LIFETIME", default_value = "1m", value_parser = humantime::parse_duration)]
    registration_lifetime: Duration,
    /// The payload the network service is registered with (if this endpoint registers it).
    #[arg(
        long,
        env = "NSM_ENDPOINT_PAYLOAD",
        value_enum,
        ignore_case = true,
        default_value = "IP"
    )]
    payload: Payload,
    /// How long after a connection's expiry, without a refresh, its addresses are released.
    #[arg(long, env = "NSM_ENDPOINT_GC_GRACE", default_value = "60s", value_parser = humantime::parse_duration)]
    gc_grace: Duration,
    #[command(flatten)]
    identity: IdentityArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Payload {
    #[value(name = "IP")]
    Ip,
    #[value(name = "ETHERNET")]
    Ethernet,
}

impl Payload {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "IP",
            Self::Ethernet => "ETHERNET",
        }
    }
}

pub async fn run(args: EndpointArgs) -> anyhow::Result<()> {
    let security = args.identity.start().await?;
    let mut signals = Signals::install()?;
    let name = args.name.clone().unwrap_or_else(|| {
        format!(
            "endpoint-{}-{}",
            args.service,
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        )
    });
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("./nsm-endpoint-{name}.db")));
    let log = IpamLog::open(&db).await?;
    let netns = args
        .netns
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/proc/{}/ns/net", std::process::id())));
    let netns = format!("file://{}", netns.display());
    let endpoint = Endpoint::restore(name.clone(), netns, args.cidr, args.gc_grace, log).await?;
    let listener = Listener::bind(&args.listen).await?;
    let url = listener.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let routes = routes(&endpoint).await;
    let served_with = security.server();
    let mut server = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        listener.serve(routes, &served_with, stopped).await
    });
    let gc = AbortOnDrop(tokio::spawn(endpoint.clone().collect_garbage()));
    tracing::info!(endpoint = %name, %url, log = %db.display(), "serving");
    let registration = Registration::new(
        args.registry
            .channel_with(DEFAULT_CONNECT_TIMEOUT, &security.client()),
        args.registry.to_string(),
        NetworkService {
            name: args.service.clone(),
            payload: args.payload.as_str().into(),
            ..NetworkService::default()
        },
        name.clone(),
        url.to_string(),
        args.labels.into_iter().collect::<HashMap<_, _>>(),
        args.registration_lifetime,
    );
    let work = async {
        let expires = tokio::select! {
            registered = registration.start() => registered?,
            () = signals.recv() => return Ok(()),
        };
        let refresh = AbortOnDrop(tokio::spawn(registration.clone().refresh(expires)));
        signals.recv().await;
        // No re-registration may land after the Unregister.
        drop(refresh);
        registration.unregister().await;
        anyhow::Ok(())
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        served = &mut server => {
            served??;
            anyhow::bail!("the server on {url} stopped by itself");
        }
    };
    let _ = stop.send(());
    server.await??;
    outcome?;
    drop(gc);
    tracing::info!(endpoint = %name, "stopped");
    Ok(())
}

/// The endpoint's gRPC services, with health reporting SERVING for each.
async fn routes(endpoint: &Endpoint) -> Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<NetworkServiceServer<Endpoint>>().await;
    health
        .set_serving::<MonitorConnectionServer<Endpoint>>()
        .await;
    Routes::new(health_service)
        .add_service(NetworkServiceServer::new(endpoint.clone()))
        .add_service(MonitorConnectionServer::new(endpoint.clone()))
}

/// `key=value`, for `--label`.
pub(crate) fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not key=value")),
    }
}

/// A background task that ends with its owner.
#[derive(Debug)]
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// For tests elsewhere in the crate: an endpoint named `name` serving on a unix socket in
/// `dir`, with its log there too, and no registry. It serves until the runtime ends.
#[cfg(test)]
pub(crate) async fn serve_for_test(dir: &std::path::Path, name: &str, cidr: &str) -> PeerUrl {
    let log = IpamLog::open(&dir.join(format!("{name}.db")))
        .await
        .unwrap();
    let endpoint = Endpoint::restore(
        name.into(),
        format!("file:///proc/{}/ns/net", std::process::id()),
        cidr.parse().unwrap(),
        Duration::from_secs(60),
        log,
    )
    .await
    .unwrap();
    let listener = Listener::bind(&PeerUrl::Unix(dir.join(format!("{name}.sock"))))
        .await
        .unwrap();
    let url = listener.url();
    let routes = routes(&endpoint).await;
    tokio::spawn(async move {
        let plaintext = nsm_proto::transport::ServerSecurity::Plaintext;
        listener
            .serve(routes, &plaintext, std::future::pending())
            .await
    });
    url
}

//! `nsm request`: a client like NSM's `cmd-nsc`. It requests one connection from the node,
//! prints it, keeps it refreshed, and closes it on SIGINT / SIGTERM or after `--hold`.
//!
//! * **Request**: one path segment of its own (`--name`, `--id`, `expires` = now +
//!   `--lifetime`) and one LOCAL mechanism preference (KERNEL with the interface `name`, or
//!   MEMIF; both with `inodeURL` = `file://<netns>`), bounded by `--request-timeout`. A
//!   failure ends the command with the gRPC code and message.
//! * **Refresh** (NSM's refresh client with one segment): after 1/3 of the time left until
//!   the earliest `expires` of the returned path, re-send the last returned connection with a
//!   new own `expires` and the same preferences; retry every 200 ms on failure.
//! * **Output**: a table for people, or with `--json` one line of JSON per successful
//!   Request or refresh, flushed at once (see [`show`]).
//! * **Identity**: it dials with mutual TLS as the SVID of `--svid-cert`, `--svid-key` and
//!   `--trust-bundle` (the node records that SPIFFE ID as the vWire's client), or in
//!   plaintext with `--insecure` (development only).

mod show;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use nsm_proto::connection::{Connection, Mechanism, Path, PathSegment};
use nsm_proto::convert::{time_from_wire, time_to_wire};
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_client::NetworkServiceClient;
use nsm_proto::transport::{IdentityArgs, PeerUrl};
use tonic::Status;
use tonic::transport::Channel;

use crate::endpoint::{MAX_INTERFACE_NAME, parse_label};
use crate::signals::Signals;

/// NSM's refresh client retries a failed refresh after this long.
const REFRESH_RETRY: Duration = Duration::from_millis(200);
/// cmd-nsc's dial timeout.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The network service to connect to.
    #[arg(long, env = "NSM_REQUEST_SERVICE")]
    service: String,
    /// The node to ask: unix:///path or tcp://host:port.
    #[arg(long, env = "NSM_REQUEST_CONNECT")]
    connect: PeerUrl,
    /// A label of the connection, `key=value` (repeat, or comma-separate).
    #[arg(long = "label", env = "NSM_REQUEST_LABEL", value_parser = parse_label, value_delimiter = ',')]
    labels: Vec<(String, String)>,
    /// The local mechanism to ask for.
    #[arg(
        long,
        env = "NSM_REQUEST_MECHANISM",
        value_enum,
        default_value = "kernel"
    )]
    mechanism: MechanismKind,
    /// The interface name in the client's netns (KERNEL), at most 15 characters.
    #[arg(long, env = "NSM_REQUEST_INTERFACE", default_value = "nsm-1", value_parser = parse_interface)]
    interface: String,
    /// The client's network namespace [default: /proc/<own pid>/ns/net].
    #[arg(long, env = "NSM_REQUEST_NETNS")]
    netns: Option<PathBuf>,
    /// The client's name in the path [default: nsc-<hostname>].
    #[arg(long, env = "NSM_REQUEST_NAME")]
    name: Option<String>,
    /// The connection id [default: a new UUID].
    #[arg(long, env = "NSM_REQUEST_ID")]
    id: Option<String>,
    /// The lifetime the client gives its own path segment at each Request.
    #[arg(long, env = "NSM_REQUEST_LIFETIME", default_value = "10m", value_parser = humantime::parse_duration)]
    lifetime: Duration,
    /// Print one line of JSON per Request and refresh instead of a table.
    #[arg(long, env = "NSM_REQUEST_JSON")]
    json: bool,
    /// Close and exit after this long [default: run until SIGINT or SIGTERM].
    #[arg(long, env = "NSM_REQUEST_HOLD", value_parser = humantime::parse_duration)]
    hold: Option<Duration>,
    /// Exit without closing the connection (it stays until it expires).
    #[arg(long, env = "NSM_REQUEST_NO_CLOSE")]
    no_close: bool,
    /// How long each Request, refresh or Close may take.
    #[arg(long, env = "NSM_REQUEST_REQUEST_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    #[command(flatten)]
    identity: IdentityArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MechanismKind {
    Kernel,
    Memif,
}

pub async fn run(args: RequestArgs) -> anyhow::Result<()> {
    let security = args.identity.start().await?;
    let mut signals = Signals::install()?;
    let hold = args.hold.map(|d| tokio::time::Instant::now() + d);
    let channel = args
        .connect
        .channel_with(DIAL_TIMEOUT.min(args.request_timeout), &security.client());
    let mut session = Session::new(channel, &args);
    let connection = session
        .establish(initial_connection(&args, Utc::now()))
        .await
        .map_err(|status| {
            anyhow::anyhow!("request to {} failed: {}", args.connect, describe(&status))
        })?;
    if let Err(e) = show::print(&connection, args.json) {
        // Whoever reads our output is gone (a broken pipe): do not leave the vWire behind.
        close_quietly(&mut session, &args).await;
        return Err(e);
    }
    tracing::info!(id = %connection.id, endpoint = %connection.network_service_endpoint_name, "connection established");
    let mut wait = refresh_delay(&connection, Utc::now(), args.lifetime);
    loop {
        let attempt = async {
            tokio::time::sleep(wait).await;
            session.refresh().await
        };
        let held = async {
            match hold {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            refreshed = attempt => match refreshed {
                Ok(connection) => {
                    tracing::info!(id = %connection.id, endpoint = %connection.network_service_endpoint_name, "connection refreshed");
                    if args.json && let Err(e) = show::print(&connection, true) {
                        close_quietly(&mut session, &args).await;
                        return Err(e);
                    }
                    wait = refresh_delay(&connection, Utc::now(), args.lifetime);
                }
                Err(status) => {
                    tracing::warn!(code = ?status.code(), error = %status.message(), "refresh failed; retrying in 200ms");
                    wait = REFRESH_RETRY;
                }
            },
            () = signals.recv() => break,
            () = held => break,
        }
    }
    if args.no_close {
        tracing::info!(id = %session.last().id, "exiting without Close (--no-close)");
        return Ok(());
    }
    session
        .close()
        .await
        .map_err(|status| anyhow::anyhow!("close failed: {}", describe(&status)))?;
    tracing::info!(id = %session.last().id, "connection closed");
    Ok(())
}

/// Closes the connection on the way out of an error (unless `--no-close`); a failed Close is
/// logged, the error that led here is what the caller reports.
async fn close_quietly(session: &mut Session, args: &RequestArgs) {
    if args.no_close {
        return;
    }
    match session.close().await {
        Ok(()) => tracing::info!(id = %session.last().id, "connection closed"),
        Err(status) => tracing::warn!(error = %describe(&status), "close failed"),
    }
}

/// One connection's client side: the last returned connection and the preferences.
#[derive(Debug)]
pub(crate) struct Session {
    client: NetworkServiceClient<Channel>,
    preferences: Vec<Mechanism>,
    lifetime: Duration,
    timeout: Duration,
    last: Connection,
}

impl Session {
    fn new(channel: Channel, args: &RequestArgs) -> Self {
        Self {
            client: NetworkServiceClient::new(channel),
            preferences: vec![preference(args)],
            lifetime: args.lifetime,
            timeout: args.request_timeout,
            last: Connection::default(),
        }
    }

    fn last(&self) -> &Connection {
        &self.last
    }

    /// The first Request.
    async fn establish(&mut self, connection: Connection) -> Result<Connection, Status> {
        self.send(connection).await
    }

    /// The last returned connection again, with a new own `expires`.
    async fn refresh(&mut self) -> Result<Connection, Status> {
        let mut connection = self.last.clone();
        let expires = Utc::now() + lifetime(self.lifetime);
        if let Some(path) = connection.path.as_mut() {
            let own = usize::try_from(path.index).unwrap_or(usize::MAX);
            if let Some(segment) = path.path_segments.get_mut(own) {
                segment.expires = Some(time_to_wire(expires));
            }
        }
        self.send(connection).await
    }

    async fn send(&mut self, connection: Connection) -> Result<Connection, Status> {
        let request = NetworkServiceRequest {
            connection: Some(connection),
            mechanism_preferences: self.preferences.clone(),
        };
        let returned = self
            .call(
                |mut client, request| async move { client.request(request).await },
                request,
            )
            .await?;
        self.last.clone_from(&returned);
        Ok(returned)
    }

    /// Close with the last returned connection.
    async fn close(&mut self) -> Result<(), Status> {
        let last = self.last.clone();
        self.call(
            |mut client, request| async move { client.close(request).await },
            last,
        )
        .await
    }

    /// One call, bounded by the timeout on both sides (the server sees `grpc-timeout`).
    async fn call<T, R, F>(
        &self,
        rpc: impl FnOnce(NetworkServiceClient<Channel>, tonic::Request<T>) -> F,
        message: T,
    ) -> Result<R, Status>
    where
        F: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        match tokio::time::timeout(self.timeout, rpc(self.client.clone(), request)).await {
            Ok(reply) => reply.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no reply within {}",
                humantime::format_duration(self.timeout)
            ))),
        }
    }
}

/// The connection of the first Request: the client's own segment only.
fn initial_connection(args: &RequestArgs, now: DateTime<Utc>) -> Connection {
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let name = args.name.clone().unwrap_or_else(default_name);
    Connection {
        id: id.clone(),
        network_service: args.service.clone(),
        labels: args.labels.iter().cloned().collect(),
        path: Some(Path {
            index: 0,
            path_segments: vec![PathSegment {
                name,
                id,
                expires: Some(time_to_wire(now + lifetime(args.lifetime))),
                ..PathSegment::default()
            }],
        }),
        ..Connection::default()
    }
}

fn preference(args: &RequestArgs) -> Mechanism {
    let netns = args
        .netns
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/proc/{}/ns/net", std::process::id())));
    let mut parameters =
        HashMap::from([("inodeURL".to_owned(), format!("file://{}", netns.display()))]);
    let r#type = match args.mechanism {
        MechanismKind::Kernel => {
            parameters.insert("name".into(), args.interface.clone());
            "KERNEL"
        }
        MechanismKind::Memif => "MEMIF",
    };
    Mechanism {
        cls: "LOCAL".into(),
        r#type: r#type.into(),
        parameters,
    }
}

/// When to refresh: 1/3 of the time left until the earliest `expires` of the path (NSM's
/// refresh client with a one-segment path), or 1/3 of our lifetime if none is set.
fn refresh_delay(connection: &Connection, now: DateTime<Utc>, own_lifetime: Duration) -> Duration {
    let earliest = connection
        .path
        .iter()
        .flat_map(|p| &p.path_segments)
        .filter_map(|s| s.expires.as_ref())
        .filter_map(|t| time_from_wire("expires", t).ok())
        .min();
    let remaining = earliest.map_or(own_lifetime, |at| (at - now).to_std().unwrap_or_default());
    (remaining / 3).max(REFRESH_RETRY)
}

fn lifetime(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// `nsc-<hostname>`, or `nsc-<random>` where the hostname cannot be read.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty());
    let host = host.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned());
    format!("nsc-{host}")
}

/// A Linux interface name: 1-15 bytes, no `/`, no whitespace, not `.` or `..`.
fn parse_interface(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > MAX_INTERFACE_NAME {
        return Err(format!(
            "{name:?} must be 1-{MAX_INTERFACE_NAME} characters long"
        ));
    }
    if name.contains('/') || name.chars().any(char::is_whitespace) || name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(name.to_owned())
}

/// A failed call as `Code: message`, followed by the causes under it that the message does
/// not already say: a refused TLS handshake or a node's GOAWAY carries its reason there
/// (tonic's message alone says `h2 protocol error: http2 error`).
fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        let said = error.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = error.source();
    }
    text
}

//! What the bad-input, registry and sample-program tests share: reading what a node
//! recorded, checking a refusal, `nsm serve` on a log path of the test's choosing,
//! `nsm endpoint` and `nsm request` run as a user runs them, and the endpoint's `ipam_log`.
//!
//! The endpoint's table is read with plain SQL (sqlx, read-only), as its documentation
//! promises any reader can.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nsm_log::store::{OpenOptions, RecordedEvent, SqliteStore};
use nsm_proto::networkservice::network_service_client::NetworkServiceClient;
use nsm_proto::registry::network_service_endpoint_registry_client::NetworkServiceEndpointRegistryClient;
use nsm_proto::registry::{NetworkServiceEndpoint, NetworkServiceEndpointQuery};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use nsm_identity::SvidFiles;
use nsm_proto::transport::Security;

use crate::mesh::{Process, channel, channel_with, identity_flags, nsm_binary};

/// How long a program gets to start, register or answer before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Every event of the log at `db`, checked by [`crate::audit_log`], grouped by stream.
pub async fn streams(db: &Path) -> BTreeMap<String, Vec<RecordedEvent>> {
    let store = SqliteStore::open_read_only(db, OpenOptions::default())
        .await
        .expect("open the log read-only");
    let mut streams: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
    for event in crate::audit_log(&store).await.events {
        streams
            .entry(event.stream.to_string())
            .or_default()
            .push(event);
    }
    streams
}

/// The vWire streams of the log (`vwire-<id>`), each as its event types in order.
pub async fn vwire_streams(db: &Path) -> BTreeMap<String, Vec<String>> {
    streams(db)
        .await
        .into_iter()
        .filter(|(stream, _)| stream.starts_with("vwire-"))
        .map(|(stream, events)| (stream, events.into_iter().map(|e| e.event_type).collect()))
        .collect()
}

/// Asserts that `result` is a refusal with `code` whose message mentions each of `mentions`;
/// returns it for further checks.
pub fn refused<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    mentions: &[&str],
) -> Status {
    let status = result.expect_err("the call should have been refused");
    assert_eq!(status.code(), code, "{status:?}");
    for mention in mentions {
        assert!(
            status.message().contains(mention),
            "the message does not mention {mention:?}: {:?}",
            status.message()
        );
    }
    status
}

/// `nsm serve` with its log at a path of the test's choosing (a tmpfs, say), its socket and
/// its own log file in `dir`. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct NodeOnLog {
    pub socket: PathBuf,
    pub db: PathBuf,
    pub process: Process,
}

impl NodeOnLog {
    /// Starts a node named `node-a` and waits until it serves (health SERVING).
    pub async fn start(dir: &Path, db: &Path) -> Self {
        let socket = dir.join("nsm.sock");
        let args = [
            "serve".to_owned(),
            "--listen".into(),
            format!("unix://{}", socket.display()),
            "--db".into(),
            db.display().to_string(),
            "--node".into(),
            "node-a".into(),
            "--dataplane".into(),
            "dry-run".into(),
            "--insecure".into(),
        ];
        let process = Process::spawn(&args, dir.join("serve.log"));
        let mut node = Self {
            socket,
            db: db.to_owned(),
            process,
        };
        let url = node.url();
        wait_serving(&url, &mut node.process, "networkservice.NetworkService").await;
        node
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn network_service(&self) -> NetworkServiceClient<Channel> {
        NetworkServiceClient::new(channel(&self.url()))
    }
}

/// Waits until the program at `url` reports `service` SERVING; panics with its log if it
/// exits first or takes longer than [`PATIENCE`].
pub async fn wait_serving(url: &str, process: &mut Process, service: &str) {
    wait_serving_with(url, process, service, &Security::insecure()).await;
}

/// [`wait_serving`], asking over `security`.
pub async fn wait_serving_with(
    url: &str,
    process: &mut Process,
    service: &str,
    security: &Security,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = process.exited() {
            panic!(
                "nsm exited ({status}) before serving:\n{}",
                process.log_text()
            );
        }
        let asked = HealthClient::new(channel_with(url, security))
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await;
        if asked.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nsm did not serve in {PATIENCE:?}:\n{}",
            process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The endpoint `name` as the registry at `registry` lists it, once it does.
pub async fn wait_registered(registry: &str, name: &str) -> NetworkServiceEndpoint {
    wait_registered_with(registry, name, &Security::insecure()).await
}

/// [`wait_registered`], asking over `security`.
pub async fn wait_registered_with(
    registry: &str,
    name: &str,
    security: &Security,
) -> NetworkServiceEndpoint {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = find_endpoint_with(registry, name, security).await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "endpoint {name} was not registered in {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A non-watching Find for the endpoint named exactly `name`.
pub async fn find_endpoint(registry: &str, name: &str) -> Option<NetworkServiceEndpoint> {
    find_endpoint_with(registry, name, &Security::insecure()).await
}

/// [`find_endpoint`], asking over `security`.
pub async fn find_endpoint_with(
    registry: &str,
    name: &str,
    security: &Security,
) -> Option<NetworkServiceEndpoint> {
    let query = NetworkServiceEndpointQuery {
        network_service_endpoint: Some(NetworkServiceEndpoint {
            name: name.into(),
            ..Default::default()
        }),
        watch: false,
    };
    let mut found = NetworkServiceEndpointRegistryClient::new(channel_with(registry, security))
        .find(query)
        .await
        .ok()?
        .into_inner();
    while let Some(Ok(response)) = found.next().await {
        let endpoint = response.network_service_endpoint.unwrap_or_default();
        if endpoint.name == name && !response.deleted {
            return Some(endpoint);
        }
    }
    None
}

/// `nsm endpoint --service <service> --cidr <cidr>` named `name`, listening on
/// `<dir>/<name>.sock`, with its IPAM log at `<dir>/<name>.db`, registered with `registry`.
#[derive(Debug)]
pub struct EndpointProgram {
    pub name: String,
    pub socket: PathBuf,
    pub db: PathBuf,
    pub process: Process,
}

impl EndpointProgram {
    /// Starts it and waits until it serves (it registers right after).
    pub async fn start(dir: &Path, name: &str, service: &str, cidr: &str, registry: &str) -> Self {
        Self::start_with(dir, name, service, cidr, registry, &[]).await
    }

    /// [`Self::start`] with more flags (`--netns`, say), in development mode (`--insecure`).
    pub async fn start_with(
        dir: &Path,
        name: &str,
        service: &str,
        cidr: &str,
        registry: &str,
        extra: &[&str],
    ) -> Self {
        let extra: Vec<&str> = extra.iter().copied().chain(["--insecure"]).collect();
        Self::launch(
            dir,
            [name, service, cidr, registry],
            &extra,
            &Security::insecure(),
        )
        .await
    }

    /// [`Self::start`] with mutual TLS as the SVID in `files`; the test asks whether it
    /// serves over `caller`.
    pub async fn start_secure(
        dir: &Path,
        [name, service, cidr, registry]: [&str; 4],
        files: &SvidFiles,
        caller: &Security,
    ) -> Self {
        let flags = identity_flags(files);
        let extra: Vec<&str> = flags.iter().map(String::as_str).collect();
        Self::launch(dir, [name, service, cidr, registry], &extra, caller).await
    }

    async fn launch(
        dir: &Path,
        [name, service, cidr, registry]: [&str; 4],
        extra: &[&str],
        caller: &Security,
    ) -> Self {
        let socket = dir.join(format!("{name}.sock"));
        let db = dir.join(format!("{name}.db"));
        let log = (1..)
            .map(|run| dir.join(format!("{name}-{run}.log")))
            .find(|log| !log.exists())
            .expect("a free log name");
        let args: Vec<String> = [
            "endpoint",
            "--service",
            service,
            "--cidr",
            cidr,
            "--listen",
            &format!("unix://{}", socket.display()),
            "--registry",
            registry,
            "--name",
            name,
            "--db",
            &db.display().to_string(),
        ]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect();
        let mut process = Process::spawn(&args, log);
        let url = format!("unix://{}", socket.display());
        wait_serving_with(&url, &mut process, "networkservice.NetworkService", caller).await;
        Self {
            name: name.into(),
            socket,
            db,
            process,
        }
    }

    /// Its `ipam_log`, in position order.
    pub async fn ipam_log(&self) -> Vec<IpamRow> {
        ipam_log(&self.db).await
    }
}

/// One row of an endpoint's `ipam_log` (see `ops/samples/src/endpoint/log.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamRow {
    pub position: i64,
    pub kind: String,
    pub connection_id: String,
    pub client_addr: Option<String>,
    pub endpoint_addr: Option<String>,
    pub cause: Option<String>,
}

/// The `ipam_log` table of the endpoint log at `db`, read-only with plain SQL, as the table's
/// documentation promises any reader can.
pub async fn ipam_log(db: &Path) -> Vec<IpamRow> {
    use sqlx::{ConnectOptions, Row};
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    let mut connection = options.connect().await.expect("open the endpoint's log");
    let rows = sqlx::query(
        "SELECT position, kind, connection_id, client_addr, endpoint_addr, cause \
         FROM ipam_log ORDER BY position",
    )
    .fetch_all(&mut connection)
    .await
    .expect("read ipam_log");
    rows.iter()
        .map(|row| IpamRow {
            position: row.get("position"),
            kind: row.get("kind"),
            connection_id: row.get("connection_id"),
            client_addr: row.get("client_addr"),
            endpoint_addr: row.get("endpoint_addr"),
            cause: row.get("cause"),
        })
        .collect()
}

/// `nsm request` with `--json`: its stdout read line by line, its stderr kept in a file.
/// Killed when dropped.
#[derive(Debug)]
pub struct RequestProgram {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub log: PathBuf,
}

impl RequestProgram {
    /// Runs `nsm request --json --connect <node> <args>`, with `--insecure` unless `args`
    /// give an SVID.
    pub fn start(dir: &Path, node: &str, args: &[&str]) -> Self {
        let insecure = (!args.contains(&"--svid-cert")).then_some("--insecure");
        let log = dir.join(format!("request-{}.log", uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&log).expect("create the client's log");
        let mut child = Command::new(nsm_binary())
            .args(["request", "--json", "--connect", node])
            .args(args)
            .args(insecure)
            .env("NSM_LOG", "info,h2=warn,tower=warn,hyper=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start nsm request");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
            log,
        }
    }

    /// The next JSON line it prints (a Request's or a refresh's connection).
    pub async fn next_connection(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no output in {PATIENCE:?}:\n{}", self.log_text()))
            .expect("read the client's output")
            .unwrap_or_else(|| panic!("the client printed nothing:\n{}", self.log_text()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"))
    }

    /// Waits for it to exit on its own.
    pub async fn exit(&mut self) -> ExitStatus {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running after {PATIENCE:?}:\n{}", self.log_text()))
            .expect("wait for nsm request")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

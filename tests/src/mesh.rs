//! Running the real `nsm` binary in tests: a node (`nsm serve`), sample endpoints
//! (`nsm endpoint`) and clients (`nsm request`), each a child process with its own log file,
//! killed when dropped. Helpers build the gRPC clients and messages tests speak.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use nsm_identity::SvidFiles;
use nsm_proto::connection::monitor_connection_client::MonitorConnectionClient;
use nsm_proto::connection::{Connection, Mechanism, Path as WirePath, PathSegment};
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_client::NetworkServiceClient;
use nsm_proto::registry::network_service_endpoint_registry_client::NetworkServiceEndpointRegistryClient;
use nsm_proto::registry::network_service_registry_client::NetworkServiceRegistryClient;
use nsm_proto::transport::{PeerUrl, Security};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The `nsm` binary of this build. Cargo builds it for the `nsm` package's integration tests,
/// which every workspace test run includes; `NSM_BIN` overrides.
pub fn nsm_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NSM_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/nsm
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let nsm = profile_dir.join("nsm");
    assert!(
        nsm.exists(),
        "{} is missing: run the tests with `cargo nextest run --workspace` (it builds the nsm binary), or set NSM_BIN",
        nsm.display()
    );
    nsm
}

/// A child process that is killed (SIGKILL) when dropped; its stderr goes to a file.
#[derive(Debug)]
pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(args: &[String], log: PathBuf) -> Self {
        Self::spawn_in(None, args, log)
    }

    /// `nsm <args>` inside network namespace `netns` (by `ip netns exec`, which becomes the
    /// nsm process), or in the test's own.
    pub fn spawn_in(netns: Option<&str>, args: &[String], log: PathBuf) -> Self {
        let stderr = std::fs::File::create(&log).expect("create the process log");
        let mut command = match netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(nsm_binary());
                command
            }
            None => Command::new(nsm_binary()),
        };
        let child = command
            .args(args)
            .env("NSM_LOG", "info,h2=warn,tower=warn,hyper=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nsm");
        Self { child, log }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful stop), then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.child.wait().expect("wait for nsm")
    }

    /// SIGTERM without waiting: the process drains and exits on its own.
    pub fn send_sigterm(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
    }

    /// Whether it has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll nsm")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `nsm serve` on a unix socket and a log in `dir`.
#[derive(Debug)]
pub struct Node {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub db: PathBuf,
    pub name: String,
    extra: Vec<String>,
    /// The network namespace it runs in (`None`: the test's own).
    netns: Option<String>,
    /// How the test's own calls dial it: plaintext for a node started with `--insecure`
    /// (every node but those of the security tests), else mutual TLS as a test identity.
    pub security: Security,
    pub process: Option<Process>,
    starts: usize,
}

impl Node {
    /// Starts a node and waits until it serves (health SERVING).
    pub async fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_in(dir, None, "node-a", extra).await
    }

    /// Starts node `name` inside network namespace `netns` (see [`Process::spawn_in`]).
    pub async fn start_in(dir: &Path, netns: Option<&str>, name: &str, extra: &[&str]) -> Self {
        Self::start_as(dir, netns, name, extra, Security::insecure()).await
    }

    /// Starts node `node-a` with mutual TLS as the SVID in `files`; the test's own calls to
    /// it present `caller`'s identity.
    pub async fn start_secure(
        dir: &Path,
        files: &SvidFiles,
        caller: Security,
        extra: &[&str],
    ) -> Self {
        let identity = identity_flags(files);
        let extra: Vec<&str> = identity
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect();
        Self::start_as(dir, None, "node-a", &extra, caller).await
    }

    async fn start_as(
        dir: &Path,
        netns: Option<&str>,
        name: &str,
        extra: &[&str],
        security: Security,
    ) -> Self {
        let mut node = Self {
            dir: dir.to_owned(),
            socket: dir.join("nsm.sock"),
            db: dir.join("events.db"),
            name: name.into(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            netns: netns.map(str::to_owned),
            security,
            process: None,
            starts: 0,
        };
        node.launch().await;
        node
    }

    /// Stops it gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate();
        }
    }

    /// Starts it again after [`Self::stop`] or [`Self::sigkill`].
    pub async fn start_again(&mut self) {
        self.launch().await;
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn channel(&self) -> Channel {
        channel_with(&self.url(), &self.security)
    }

    pub fn network_service(&self) -> NetworkServiceClient<Channel> {
        NetworkServiceClient::new(self.channel())
    }

    pub fn monitor(&self) -> MonitorConnectionClient<Channel> {
        MonitorConnectionClient::new(self.channel())
    }

    pub fn services(&self) -> NetworkServiceRegistryClient<Channel> {
        NetworkServiceRegistryClient::new(self.channel())
    }

    pub fn endpoints(&self) -> NetworkServiceEndpointRegistryClient<Channel> {
        NetworkServiceEndpointRegistryClient::new(self.channel())
    }

    /// SIGKILL: no shutdown code runs.
    pub fn sigkill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it again on the same log and socket.
    pub async fn restart(&mut self) {
        self.sigkill();
        self.launch().await;
    }

    async fn launch(&mut self) {
        self.starts += 1;
        let mut args: Vec<String> = [
            "serve",
            "--listen",
            &self.url(),
            "--db",
            &self.db.display().to_string(),
            "--node",
            &self.name,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Control-plane tests plumb nothing (their clients name no namespaces); the
        // data-plane tests ask for the kernel.
        if !self.extra.iter().any(|a| a == "--dataplane") {
            args.extend(["--dataplane".to_owned(), "dry-run".to_owned()]);
        }
        // Tests not about security run the node in development mode.
        if !self.extra.iter().any(|a| a == "--svid-cert") {
            args.push("--insecure".to_owned());
        }
        args.extend(self.extra.iter().cloned());
        let log = self.dir.join(format!("serve-{}.log", self.starts));
        self.process = Some(Process::spawn_in(self.netns.as_deref(), &args, log));
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let process = self.process.as_mut().expect("started");
            if let Some(status) = process.exited() {
                panic!(
                    "nsm serve exited ({status}) before serving:\n{}",
                    process.log_text()
                );
            }
            let mut health = HealthClient::new(self.channel());
            let asked = health
                .check(HealthCheckRequest {
                    service: "networkservice.NetworkService".into(),
                })
                .await;
            if asked.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nsm serve did not become ready in 60 s:\n{}",
                self.process
                    .as_ref()
                    .map(Process::log_text)
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        self.process
            .as_ref()
            .map(Process::log_text)
            .unwrap_or_default()
    }
}

/// `--svid-cert`, `--svid-key` and `--trust-bundle` naming `files`.
pub fn identity_flags(files: &SvidFiles) -> Vec<String> {
    [
        ("--svid-cert", &files.cert),
        ("--svid-key", &files.key),
        ("--trust-bundle", &files.bundle),
    ]
    .into_iter()
    .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()])
    .collect()
}

/// A plaintext channel to a `unix://` or `tcp://` URL.
pub fn channel(url: &str) -> Channel {
    channel_with(url, &Security::insecure())
}

/// A channel to a `unix://` or `tcp://` URL, dialled with `security`.
pub fn channel_with(url: &str, security: &Security) -> Channel {
    url.parse::<PeerUrl>()
        .expect("a valid URL")
        .channel_with(Duration::from_secs(2), &security.client())
}

/// A client's first Request, as NSM's cmd-nsc sends it: its own path segment at index 0.
pub fn first_request(
    service: &str,
    client: &str,
    labels: &[(&str, &str)],
) -> NetworkServiceRequest {
    let id = uuid::Uuid::new_v4().to_string();
    let expires = Utc::now() + chrono::Duration::minutes(10);
    NetworkServiceRequest {
        connection: Some(Connection {
            id: id.clone(),
            network_service: service.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            path: Some(WirePath {
                index: 0,
                path_segments: vec![PathSegment {
                    name: client.into(),
                    id,
                    expires: Some(prost_types::Timestamp {
                        seconds: expires.timestamp(),
                        nanos: 0,
                    }),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        mechanism_preferences: vec![kernel_mechanism("nsm-1")],
    }
}

/// A refresh: the connection the node returned, sent back with the same preferences.
pub fn refresh_request(returned: &Connection) -> NetworkServiceRequest {
    NetworkServiceRequest {
        connection: Some(returned.clone()),
        mechanism_preferences: vec![kernel_mechanism("nsm-1")],
    }
}

/// A client's first Request for a vWire whose client end is interface `interface` in the
/// namespace `netns_url` (NSM's kernel mechanism, `inodeURL` a `file://` URL).
pub fn kernel_request(
    service: &str,
    client: &str,
    netns_url: &str,
    interface: &str,
) -> NetworkServiceRequest {
    let mut request = first_request(service, client, &[]);
    let mut mechanism = kernel_mechanism(interface);
    mechanism
        .parameters
        .insert("inodeURL".into(), netns_url.to_owned());
    request.mechanism_preferences = vec![mechanism];
    request
}

pub fn kernel_mechanism(interface: &str) -> Mechanism {
    Mechanism {
        cls: "LOCAL".into(),
        r#type: "KERNEL".into(),
        parameters: [("name".to_owned(), interface.to_owned())].into(),
    }
}

/// Registers network service `service` (payload IP) and endpoint `name` at `url` serving it
/// with `labels`, for `lifetime`.
pub async fn register(
    node: &Node,
    service: &str,
    name: &str,
    url: &str,
    labels: &[(&str, &str)],
    lifetime: chrono::Duration,
) {
    use nsm_proto::registry::{NetworkService, NetworkServiceEndpoint, NetworkServiceLabels};
    node.services()
        .register(NetworkService {
            name: service.into(),
            payload: "IP".into(),
            ..Default::default()
        })
        .await
        .expect("register the service");
    let expires = Utc::now() + lifetime;
    node.endpoints()
        .register(NetworkServiceEndpoint {
            name: name.into(),
            network_service_names: vec![service.into()],
            network_service_labels: [(
                service.to_owned(),
                NetworkServiceLabels {
                    labels: labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                },
            )]
            .into(),
            url: url.into(),
            expiration_time: Some(prost_types::Timestamp {
                seconds: expires.timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .expect("register the endpoint");
}

/// A node (started with `extra` flags) whose service `icmp` is served by one in-process
/// endpoint, `nse-1`, registered for `lifetime`.
pub async fn node_with_endpoint(
    dir: &Path,
    extra: &[&str],
) -> (Node, crate::fake_endpoint::FakeEndpoint) {
    let node = Node::start(dir, extra).await;
    let endpoint = crate::fake_endpoint::FakeEndpoint::start(dir, "nse-1").await;
    let lifetime = chrono::Duration::hours(1);
    register(&node, "icmp", "nse-1", &endpoint.url(), &[], lifetime).await;
    (node, endpoint)
}

/// Client `client` requests `icmp`: the connection the node returned, and the vWire id (the
/// node's path segment id).
pub async fn request_vwire(node: &Node, client: &str) -> (Connection, String) {
    send_request(node, first_request("icmp", client, &[])).await
}

/// Sends `request`, which the node must accept: the connection it returned, and the vWire id.
pub async fn send_request(node: &Node, request: NetworkServiceRequest) -> (Connection, String) {
    let connection = node
        .network_service()
        .request(request)
        .await
        .expect("request")
        .into_inner();
    let vwire = connection.path.as_ref().expect("a path").path_segments[1]
        .id
        .clone();
    (connection, vwire)
}

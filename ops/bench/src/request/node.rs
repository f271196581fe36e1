//! The node under test: `nsm serve` as a child process of the bench, killed when dropped
//! (on success and on every error path).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use nsm_proto::convert::time_to_wire;
use nsm_proto::registry::network_service_endpoint_registry_client::NetworkServiceEndpointRegistryClient;
use nsm_proto::registry::network_service_registry_client::NetworkServiceRegistryClient;
use nsm_proto::registry::{NetworkService, NetworkServiceEndpoint};
use nsm_proto::transport::{DEFAULT_CONNECT_TIMEOUT, PeerUrl};
use tokio::time::Instant;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::load::SERVICE;
use super::servers::ENDPOINT_NAME;

/// How long the node has to become SERVING.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);
/// The node's log lines kept in an error, at most.
const LOG_TAIL_BYTES: usize = 4_000;

/// A running `nsm serve`. Dropping it kills the process (SIGKILL: the log is thrown away).
#[derive(Debug)]
pub(super) struct Node {
    child: Child,
    /// The node's stderr, for errors.
    log: PathBuf,
    pub(super) url: PeerUrl,
}

impl Node {
    /// Starts `nsm serve` with its socket and event log in `dir`, and waits until it is
    /// SERVING.
    pub(super) async fn start(dir: &Path) -> anyhow::Result<Self> {
        let url = PeerUrl::Unix(dir.join("nsm.sock"));
        let log = dir.join("node.log");
        let stderr = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let exe = std::env::current_exe().context("cannot find the nsm binary")?;
        let mut command = Command::new(&exe);
        command
            .arg("serve")
            .args(["--listen", &url.to_string()])
            .arg("--db")
            .arg(dir.join("events.db"))
            .args(["--node", "bench", "--dataplane", "dry-run", "--log", "warn"])
            // The bench's clients and endpoint speak plaintext; `--secure` is a later step.
            .arg("--insecure")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // The operator's NSM_* settings (a config file, lifetimes) are not the bench's.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("NSM_") {
                command.env_remove(name);
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let mut node = Self { child, log, url };
        node.wait_ready().await?;
        Ok(node)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the node exited ({status}) before it was ready; its log:\n{}",
                    self.log_tail()
                );
            }
            if self.serving().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the node was not SERVING after {READY_TIMEOUT:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether `grpc.health.v1.Health/Check` answers SERVING (a fresh channel each time, so
    /// a socket that does not exist yet costs nothing later).
    async fn serving(&self) -> bool {
        let mut client = HealthClient::new(self.url.channel(DEFAULT_CONNECT_TIMEOUT));
        let check = client.check(HealthCheckRequest {
            service: "networkservice.NetworkService".into(),
        });
        matches!(
            tokio::time::timeout(Duration::from_secs(1), check).await,
            Ok(Ok(reply)) if reply.get_ref().status == ServingStatus::Serving as i32
        )
    }

    /// Registers the bench's network service and its endpoint at `endpoint_url`.
    pub(super) async fn register(&self, endpoint_url: &str) -> anyhow::Result<()> {
        let channel = self.url.channel(DEFAULT_CONNECT_TIMEOUT);
        NetworkServiceRegistryClient::new(channel.clone())
            .register(NetworkService {
                name: SERVICE.into(),
                payload: "IP".into(),
                ..NetworkService::default()
            })
            .await
            .context("cannot register the network service")?;
        NetworkServiceEndpointRegistryClient::new(channel)
            .register(NetworkServiceEndpoint {
                name: ENDPOINT_NAME.into(),
                network_service_names: vec![SERVICE.into()],
                url: endpoint_url.into(),
                expiration_time: Some(time_to_wire(Utc::now() + chrono::Duration::hours(1))),
                ..NetworkServiceEndpoint::default()
            })
            .await
            .context("cannot register the endpoint")?;
        Ok(())
    }

    /// `error`, followed by the end of the node's log.
    pub(super) fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        anyhow::anyhow!("{error:#}\nthe node's log ends with:\n{}", self.log_tail())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut start = text.len().saturating_sub(LOG_TAIL_BYTES);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        match text[start..].trim() {
            "" => "(empty)".to_owned(),
            tail => tail.to_owned(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SIGKILL (no unsafe code, so no SIGTERM); nothing of the node is kept.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

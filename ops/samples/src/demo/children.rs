//! The demo's child processes: `nsm serve`, `nsm endpoint` and `nsm request`, each this very
//! executable run with the arguments a user would type, speaking real gRPC over unix sockets.
//!
//! * **Spawning**: stdin is closed, stderr (and stdout, except a client's JSON) goes to a log
//!   file of its own in the demo's directory. `NSM_*` variables of the demo's environment are
//!   not passed on, so the arguments shown are the whole configuration; each child logs at
//!   INFO, without colours. Each child leads a process group of its own, so that a Ctrl-C in
//!   the terminal reaches only the demo, which then stops the children in order (clients
//!   first, so that their Close still finds the node).
//! * **Waiting**: until a program serves (gRPC health SERVING) or the node's registry lists an
//!   endpoint, with a deadline; a child that exits first fails the wait with its log's tail.
//! * **Stopping**: SIGTERM (`kill -TERM`, as an operator would) and a bounded wait, then
//!   SIGKILL; or SIGKILL alone, for the guard that cleans up after an error.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use nsm_proto::registry::network_service_endpoint_registry_client::NetworkServiceEndpointRegistryClient;
use nsm_proto::registry::{NetworkServiceEndpoint, NetworkServiceEndpointQuery};
use nsm_proto::transport::{PeerUrl, Security};
use tokio::process::ChildStdout;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The log filter of every child: INFO, without the HTTP/2 stack's chatter.
const CHILD_LOG: &str = "info,h2=warn,hyper=warn,tower=warn";
/// How often a wait asks again.
const POLL: Duration = Duration::from_millis(100);
/// How long one health check or Find may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of a child's log shown when it fails.
const TAIL: usize = 20;

/// One running `nsm` child.
#[derive(Debug)]
pub(super) struct Child {
    /// Who it is, for messages: `the node`, `client demo-nsc-1`.
    pub(super) role: String,
    child: tokio::process::Child,
    pub(super) log: PathBuf,
}

impl Child {
    /// Runs `<this executable> <args>` with its output in `log`; a client's stdout is piped
    /// (`piped_stdout`) so that its JSON can be read.
    pub(super) fn spawn(
        role: impl Into<String>,
        args: &[String],
        log: PathBuf,
        piped_stdout: bool,
    ) -> anyhow::Result<Self> {
        let role = role.into();
        let exe = std::env::current_exe().context("cannot find the nsm executable")?;
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let stdout = if piped_stdout {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone()?)
        };
        let mut command = tokio::process::Command::new(&exe);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("NSM_") {
                command.env_remove(name);
            }
        }
        let child = command
            .args(args)
            .env("NSM_LOG", CHILD_LOG)
            // Logs go to files: no colour codes in them.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {role} ({})", exe.display()))?;
        Ok(Self { role, child, log })
    }

    /// Its piped stdout, once.
    pub(super) fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// How it exited, if it has.
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then up to `patience` for it to exit, then SIGKILL. Its exit status, and
    /// whether it had to be killed.
    pub(super) async fn terminate(&mut self, patience: Duration) -> (Option<ExitStatus>, bool) {
        if let Some(status) = self.exited() {
            return (Some(status), false);
        }
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        match tokio::time::timeout(patience, self.child.wait()).await {
            Ok(status) => (status.ok(), false),
            Err(_) => {
                let _ = self.child.kill().await;
                (self.exited(), true)
            }
        }
    }

    /// SIGKILL without waiting (for a guard's `Drop`); tokio reaps it.
    pub(super) fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    /// An error that it exited early, with the end of its log.
    pub(super) fn exited_early(&self, status: ExitStatus, waiting_for: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{} exited ({status}) before {waiting_for}; the end of its log ({}):\n{}",
            self.role,
            self.log.display(),
            tail(&self.log)
        )
    }

    /// An error that it did not do something in time, with the end of its log.
    pub(super) fn too_slow(&self, what: &str, patience: Duration) -> anyhow::Error {
        anyhow::anyhow!(
            "{} did not {what} within {}; the end of its log ({}):\n{}",
            self.role,
            humantime::format_duration(patience),
            self.log.display(),
            tail(&self.log)
        )
    }
}

/// The last [`TAIL`] lines of a log file, indented.
pub(super) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL);
    let shown: Vec<String> = lines[start..].iter().map(|l| format!("    {l}")).collect();
    if shown.is_empty() {
        "    (empty)".to_owned()
    } else {
        shown.join("\n")
    }
}

/// Waits until `child`, at `url`, reports `networkservice.NetworkService` SERVING; the
/// demo asks as `security`.
pub(super) async fn wait_serving(
    url: &PeerUrl,
    security: &Security,
    child: &mut Child,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    let mut health = HealthClient::new(url.channel_with(CALL_TIMEOUT, &security.client()));
    loop {
        if let Some(status) = child.exited() {
            return Err(child.exited_early(status, "serving"));
        }
        let asked = tokio::time::timeout(
            CALL_TIMEOUT,
            health.check(HealthCheckRequest {
                service: "networkservice.NetworkService".into(),
            }),
        )
        .await;
        if let Ok(Ok(reply)) = asked
            && reply.into_inner().status == ServingStatus::Serving as i32
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(child.too_slow("serve", patience));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the registry at `registry` lists the endpoint `name` that `child` runs; the
/// demo asks as `security`.
pub(super) async fn wait_registered(
    registry: &PeerUrl,
    security: &Security,
    name: &str,
    child: &mut Child,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    let channel = registry.channel_with(CALL_TIMEOUT, &security.client());
    let mut client = NetworkServiceEndpointRegistryClient::new(channel);
    loop {
        if let Some(status) = child.exited() {
            return Err(child.exited_early(status, "registering"));
        }
        if tokio::time::timeout(CALL_TIMEOUT, listed(&mut client, name))
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(child.too_slow("register with the node", patience));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a non-watching Find returns the endpoint named exactly `name`.
async fn listed(
    client: &mut NetworkServiceEndpointRegistryClient<tonic::transport::Channel>,
    name: &str,
) -> bool {
    let query = NetworkServiceEndpointQuery {
        network_service_endpoint: Some(NetworkServiceEndpoint {
            name: name.into(),
            ..NetworkServiceEndpoint::default()
        }),
        watch: false,
    };
    let Ok(found) = client.find(query).await else {
        return false;
    };
    let mut found = found.into_inner();
    while let Some(Ok(response)) = found.next().await {
        let listed = response.network_service_endpoint.unwrap_or_default();
        if listed.name == name && !response.deleted {
            return true;
        }
    }
    false
}

//! The demo's clients: `nsm request --json`, one in each client namespace, and what the
//! first line each prints says about its vWire.
//!
//! `nsm request --json` prints one line per Request and refresh (see `request/show.rs`). The
//! first line gives the connection the node returned: the client's address (`src_ip_addrs`)
//! and the endpoint's (`dst_ip_addrs`) from the endpoint's pool, and the path, whose node
//! segment's id is the vWire's id (the node's event stream is `vwire-<id>`). Later lines
//! (refreshes) are read and dropped, so that a client running for hours never blocks on a
//! full pipe.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use nsm_domain::vwire::VWireId;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::ChildStdout;

use super::children::Child;

/// The interface each client asks for in its namespace.
pub(super) const INTERFACE: &str = "nsm-1";

/// One running `nsm request`.
#[derive(Debug)]
pub(super) struct Client {
    /// Its name in the path: `demo-nsc-<n>`.
    pub(super) name: String,
    /// The named network namespace it asks its end in.
    pub(super) netns: String,
    pub(super) process: Child,
    lines: Option<Lines<BufReader<ChildStdout>>>,
}

/// What a client's first Request set up.
#[derive(Debug, Clone)]
pub(super) struct VWire {
    /// The client's name: `demo-nsc-<n>`.
    pub(super) client: String,
    pub(super) netns: String,
    pub(super) id: VWireId,
    pub(super) client_addr: IpAddr,
    pub(super) endpoint_addr: IpAddr,
    pub(super) endpoint: String,
    /// The path's segment names, client first.
    pub(super) path: Vec<String>,
}

impl Client {
    /// The arguments of client `number`, as a user would type them after `nsm`, with its
    /// SVID's `identity` flags.
    pub(super) fn args(
        number: usize,
        netns: &str,
        node: &str,
        service: &str,
        identity: &[String],
    ) -> Vec<String> {
        let mut args: Vec<String> = [
            "request",
            "--service",
            service,
            "--connect",
            node,
            "--netns",
            &format!("/run/netns/{netns}"),
            "--interface",
            INTERFACE,
            "--name",
            &format!("demo-nsc-{number}"),
            "--json",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend_from_slice(identity);
        args
    }

    /// Starts client `number` with its end in `netns`, logging to `dir/client-<n>.log`.
    pub(super) fn start(
        number: usize,
        netns: &str,
        node: &str,
        service: &str,
        identity: &[String],
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let name = format!("demo-nsc-{number}");
        let args = Self::args(number, netns, node, service, identity);
        let log = dir.join(format!("client-{number}.log"));
        let mut process = Child::spawn(format!("client {name}"), &args, log, true)?;
        let stdout = process.take_stdout().context("the client's stdout")?;
        Ok(Self {
            name,
            netns: netns.to_owned(),
            process,
            lines: Some(BufReader::new(stdout).lines()),
        })
    }

    /// The vWire of its first Request, once it prints it; the node is called `node` in the
    /// path. Its later lines are drained in the background.
    pub(super) async fn first_vwire(
        &mut self,
        node: &str,
        patience: Duration,
    ) -> anyhow::Result<VWire> {
        // The reader stays with the client until the line is read: dropped earlier (this
        // future cancelled by a Ctrl-C), it would close the pipe, and the client, failing
        // to print, would exit without closing its vWire.
        let lines = self
            .lines
            .as_mut()
            .context("read the client's output twice")?;
        let first = match tokio::time::timeout(patience, lines.next_line()).await {
            Err(_) => return Err(self.process.too_slow("print its connection", patience)),
            Ok(read) => read.context("cannot read the client's output")?,
        };
        let Some(first) = first else {
            let status = self.process_status().await;
            return Err(self.process.exited_early(status, "printing its connection"));
        };
        if let Some(mut rest) = self.lines.take() {
            tokio::spawn(async move { while let Ok(Some(_)) = rest.next_line().await {} });
        }
        let printed: Value = serde_json::from_str(&first).with_context(|| {
            format!("{} printed something that is not JSON: {first}", self.name)
        })?;
        vwire_of(&printed, &self.name, &self.netns, node)
            .with_context(|| format!("{} printed an unexpected connection: {first}", self.name))
    }

    /// Its exit status, once its output has ended.
    async fn process_status(&mut self) -> std::process::ExitStatus {
        let patience = Duration::from_secs(5);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.process.exited() {
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                let (status, _) = self.process.terminate(patience).await;
                return status.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The vWire a connection printed by `nsm request --json` describes.
fn vwire_of(printed: &Value, client: &str, netns: &str, node: &str) -> anyhow::Result<VWire> {
    let address = |field: &str| -> anyhow::Result<IpAddr> {
        let text = printed["context"][field][0]
            .as_str()
            .with_context(|| format!("no context.{field}"))?;
        let bare = text.split('/').next().unwrap_or(text);
        bare.parse()
            .with_context(|| format!("context.{field} {text:?} is not an address"))
    };
    let segments = printed["path"]["segments"]
        .as_array()
        .context("no path.segments")?;
    let node_segment = segments
        .iter()
        .find(|s| s["name"] == node)
        .or_else(|| segments.get(1))
        .context("no node segment in the path")?;
    let id = node_segment["id"]
        .as_str()
        .context("the node segment has no id")?;
    Ok(VWire {
        client: client.to_owned(),
        netns: netns.to_owned(),
        id: id
            .parse()
            .with_context(|| format!("the node segment's id {id:?} is not a vWire id"))?,
        client_addr: address("src_ip_addrs")?,
        endpoint_addr: address("dst_ip_addrs")?,
        endpoint: printed["network_service_endpoint_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        path: segments
            .iter()
            .map(|s| s["name"].as_str().unwrap_or("?").to_owned())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::vwire_of;

    #[test]
    fn the_vwire_is_the_node_segment_and_the_addresses_come_from_the_context() {
        let printed = serde_json::json!({
            "network_service_endpoint_name": "demo-nse",
            "context": {"src_ip_addrs": ["172.16.0.1/32"], "dst_ip_addrs": ["172.16.0.2/32"]},
            "path": {"index": 0, "segments": [
                {"name": "demo-nsc-1", "id": "c"},
                {"name": "nsm-demo", "id": "6f1c1f43-4d1a-4b8e-9b8e-1a2b3c4d5e6f"},
                {"name": "demo-nse", "id": "e"},
            ]},
        });
        let vwire = vwire_of(&printed, "demo-nsc-1", "ns", "nsm-demo").unwrap();
        assert_eq!(vwire.id.to_string(), "6f1c1f43-4d1a-4b8e-9b8e-1a2b3c4d5e6f");
        assert_eq!(vwire.client_addr.to_string(), "172.16.0.1");
        assert_eq!(vwire.endpoint_addr.to_string(), "172.16.0.2");
        assert_eq!(vwire.path, ["demo-nsc-1", "nsm-demo", "demo-nse"]);
        let no_context = serde_json::json!({"path": {"segments": []}});
        assert!(vwire_of(&no_context, "c", "ns", "nsm-demo").is_err());
    }
}

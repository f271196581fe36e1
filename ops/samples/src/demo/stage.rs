//! Everything `nsm demo` makes on the host, and taking it all down again.
//!
//! The stage owns the temporary directory (sockets, logs, the node's event log, the
//! endpoint's IPAM log, each program's SVID files), the throw-away trust domain, the named network namespaces (`nsm-demo-<6 hex>-...`, unique per
//! run so that two demos never share one), and the child processes. Teardown is ordered so
//! that each vWire is closed the way a user closes one:
//!
//! 1. **clients**: SIGTERM, on which `nsm request` sends Close and exits; the node records
//!    `Closed` and `DataplaneUnplumbed` and removes the veth pair;
//! 2. **endpoint**, then **node**: SIGTERM (the endpoint unregisters; the node checkpoints
//!    its log);
//! 3. the namespaces are deleted, and the directory removed unless asked to keep it.
//!
//! A child that does not exit within [`PATIENCE`] of its SIGTERM is killed. If the ordered
//! teardown never ran (an error, a panic unwinding), the `Drop` of the stage is the guard:
//! every child still running gets SIGKILL, and the namespaces are deleted (their links go
//! with them), so a failed demo leaves nothing on the host but, possibly, the directory of
//! a `--keep` run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use nsm_dataplane::kernel::netns;
use nsm_proto::transport::Security;

use super::children::Child;
use super::clients::{Client, VWire};
use super::identities::Identities;
use super::say;
use super::timeline::Shown;

/// How long a child has to exit after its SIGTERM.
const PATIENCE: Duration = Duration::from_secs(15);

/// What the demo made. Dropping it kills the children and deletes the namespaces.
#[derive(Debug)]
pub(super) struct Stage {
    /// `nsm-demo-<6 hex>`: the node's name and the prefix of this run's namespace names.
    /// Unique, so that two demos at once never share a namespace, and neither node takes
    /// the other's links (tagged with the node's name) for its own orphans.
    pub(super) tag: String,
    dir: Option<tempfile::TempDir>,
    namespaces: Vec<String>,
    pub(super) node: Option<Child>,
    pub(super) endpoint: Option<Child>,
    pub(super) clients: Vec<Client>,
    /// The vWires the clients reported, in client order.
    pub(super) vwires: Vec<VWire>,
    /// How much of each vWire's timeline was printed.
    pub(super) shown: Shown,
    /// The throw-away trust domain, once made.
    pub(super) identities: Option<Identities>,
}

impl Stage {
    /// A new tag and an empty temporary directory named after it.
    pub(super) fn new() -> anyhow::Result<Self> {
        let tag = format!(
            "nsm-demo-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("{tag}."))
            .tempdir()
            .context("cannot make a temporary directory")?;
        Ok(Self {
            tag,
            dir: Some(dir),
            namespaces: Vec::new(),
            node: None,
            endpoint: None,
            clients: Vec::new(),
            vwires: Vec::new(),
            shown: Shown::new(),
            identities: None,
        })
    }

    /// What the demo's own calls to its children present.
    pub(super) fn own_security(&self) -> anyhow::Result<Security> {
        self.identities
            .as_ref()
            .map(|identities| identities.own.clone())
            .context("the demo's trust domain is not made yet")
    }

    /// The temporary directory.
    pub(super) fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }

    /// This run's namespace called `<tag>-<role>`, made now.
    pub(super) async fn namespace(&mut self, role: &str) -> anyhow::Result<String> {
        let name = format!("{}-{role}", self.tag);
        netns::create_named(&name)
            .await
            .with_context(|| format!("cannot make the network namespace {name}"))?;
        self.namespaces.push(name.clone());
        Ok(name)
    }

    /// The first child found to have exited, as a message; for watching while waiting.
    pub(super) fn exited(&mut self) -> Option<String> {
        let clients = self.clients.iter_mut().map(|c| &mut c.process);
        let daemons = self.node.iter_mut().chain(self.endpoint.iter_mut());
        clients.chain(daemons).find_map(|child| {
            let status = child.exited()?;
            Some(format!(
                "{} exited unexpectedly ({status}); its log:\n{}",
                child.role,
                super::children::tail(&child.log)
            ))
        })
    }

    /// Step "close": SIGTERM to each client, which closes its vWire; whether all of them
    /// exited cleanly.
    pub(super) async fn close_clients(&mut self) -> bool {
        let mut clean = true;
        for client in &mut self.clients {
            let (status, killed) = client.process.terminate(PATIENCE).await;
            let outcome = match status {
                _ if killed => {
                    clean = false;
                    format!(
                        "did not exit within {}; killed",
                        humantime::format_duration(PATIENCE)
                    )
                }
                Some(status) if status.success() => "closed its vWire and exited".to_owned(),
                other => {
                    clean = false;
                    let status = other.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
                    format!(
                        "exited with {status}; the end of its log:\n{}",
                        super::children::tail(&client.process.log)
                    )
                }
            };
            say::detail(1, format_args!("{}: {outcome}", client.name));
        }
        self.clients.clear();
        clean
    }

    /// Step "clean up": the endpoint and the node stopped, the namespaces deleted, the
    /// directory removed or kept. Returns the directory if kept, and whether all went well.
    pub(super) async fn clean_up(&mut self, keep: bool) -> (Option<PathBuf>, bool) {
        let mut clean = true;
        for (child, what) in [
            (
                self.endpoint.take(),
                "the endpoint unregistered and stopped",
            ),
            (self.node.take(), "the node stopped"),
        ] {
            let Some(mut child) = child else { continue };
            if let Some(status) = child.exited() {
                // Not stopped by us: the error that ended the demo carries its log when it was
                // the first to go.
                clean = false;
                say::detail(
                    1,
                    format_args!("{} had already exited ({status})", child.role),
                );
                continue;
            }
            let (status, killed) = child.terminate(PATIENCE).await;
            if killed || !status.is_some_and(|s| s.success()) {
                clean = false;
                let status = status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
                say::detail(
                    1,
                    format_args!(
                        "{} did not stop cleanly ({status}{}); the end of its log:\n{}",
                        child.role,
                        if killed { ", killed" } else { "" },
                        super::children::tail(&child.log)
                    ),
                );
            } else {
                say::detail(1, what);
            }
        }
        clean &= self.delete_namespaces(true);
        (self.finish_dir(keep), clean)
    }

    /// Deletes this run's namespaces (saying so if `tell`); whether all went.
    fn delete_namespaces(&mut self, tell: bool) -> bool {
        let mut clean = true;
        for name in std::mem::take(&mut self.namespaces) {
            match netns::delete_named(&name) {
                Ok(()) if tell => say::detail(1, format_args!("deleted the namespace {name}")),
                Ok(()) => {}
                Err(e) => {
                    clean = false;
                    say::detail(
                        1,
                        format_args!(
                            "could not delete the namespace {name}: {e} (try `ip netns delete {name}`)"
                        ),
                    );
                }
            }
        }
        clean
    }

    /// Removes the directory, or keeps it and returns where it is.
    fn finish_dir(&mut self, keep: bool) -> Option<PathBuf> {
        let dir = self.dir.take()?;
        if keep {
            return Some(dir.keep());
        }
        let path = dir.path().to_owned();
        match dir.close() {
            Ok(()) => say::detail(1, format_args!("removed {}", path.display())),
            Err(e) => say::detail(1, format_args!("could not remove {}: {e}", path.display())),
        }
        None
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let clients = self.clients.iter_mut().map(|c| &mut c.process);
        for child in clients
            .chain(self.endpoint.iter_mut())
            .chain(self.node.iter_mut())
        {
            child.kill();
        }
        self.delete_namespaces(false);
    }
}

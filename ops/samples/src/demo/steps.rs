//! The demo's steps in the order a newcomer reads them: what is set up and with which
//! command, the pings, the timelines, the wait for Ctrl-C, the teardown and the recap.
//! Each step prints its numbered heading and then does its work; the resources it makes
//! go into the [`Stage`], so that an error or a Ctrl-C in any step still finds them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nsm_proto::transport::PeerUrl;

use super::children::{self, Child};
use super::clients::{Client, INTERFACE};
use super::identities::{Identities, ProgramSvid, TRUST_DOMAIN};
use super::pings::{self, Tally};
use super::say::{self, Steps};
use super::stage::Stage;
use super::{Ending, timeline};
use crate::signals::Signals;

/// The network service the endpoint offers and the clients ask for.
const SERVICE: &str = "icmp-responder";
/// The endpoint's address pool.
const CIDR: &str = "172.16.0.0/24";
/// The endpoint's name.
const ENDPOINT: &str = "demo-nse";
/// Clients, each in a namespace of its own.
const CLIENTS: usize = 2;
/// How long a program has to start serving, register, or get its vWire.
const PATIENCE: Duration = Duration::from_secs(30);
/// How often a child is checked while waiting for Ctrl-C.
const WATCH: Duration = Duration::from_millis(500);

/// The opening lines: what is about to happen, and where its files go.
pub(super) fn introduce(stage: &Stage) {
    say::line("nsm demo: a node, an endpoint and two clients on this machine, joined by vWires.");
    say::line("Each part is the real nsm program speaking gRPC; each vWire is a veth pair.");
    say::line("Sockets, SVIDs, logs and event logs go to a directory of their own:");
    say::detail(1, format_args!("DIR={}", stage.dir().display()));
}

/// Steps 1-6: namespaces, node, endpoint, clients, pings, timelines.
pub(super) async fn show(
    stage: &mut Stage,
    steps: &mut Steps,
    count: u32,
) -> anyhow::Result<Tally> {
    steps.next("Three network namespaces: one for each client, one for the endpoint");
    let mut clients = Vec::new();
    for n in 1..=CLIENTS {
        clients.push(stage.namespace(&format!("client-{n}")).await?);
    }
    let endpoint_ns = stage.namespace("endpoint").await?;
    for name in clients.iter().chain([&endpoint_ns]) {
        say::detail(1, name);
    }
    let svids = issue_identities(stage, steps)?;
    let node = start_node(stage, steps, &svids.node).await?;
    start_endpoint(stage, steps, &node, &svids.endpoint, &endpoint_ns).await?;
    steps.next(format_args!(
        "Two clients (nsm request), each asking the node for {SERVICE}"
    ));
    for ((i, netns), svid) in clients.iter().enumerate().zip(&svids.clients) {
        let dir = stage.dir().to_owned();
        let identity = svid.flags();
        say::command(
            1,
            &Client::args(i + 1, netns, &node.to_string(), SERVICE, &identity),
            &dir,
        );
        // On the stage before its first Request, so that a Ctrl-C meanwhile still closes it.
        let client = Client::start(i + 1, netns, &node.to_string(), SERVICE, &identity, &dir)?;
        stage.clients.push(client);
        let node_name = stage.tag.clone();
        let client = stage.clients.last_mut().expect("the client just added");
        let vwire = client.first_vwire(&node_name, PATIENCE).await?;
        say::detail(2, format_args!("{} got vWire {}", vwire.client, vwire.id));
        say::detail(
            3,
            format_args!(
                "client end    {} on {INTERFACE} in {netns}",
                vwire.client_addr
            ),
        );
        say::detail(
            3,
            format_args!(
                "endpoint end  {} in {endpoint_ns} ({})",
                vwire.endpoint_addr, vwire.endpoint
            ),
        );
        say::detail(3, format_args!("path          {}", vwire.path.join(" -> ")));
        stage.vwires.push(vwire);
    }
    steps.next(format_args!(
        "Pings across each vWire, from the client's {INTERFACE} to the endpoint"
    ));
    let tally = pings::across(&stage.vwires, count).await;
    steps.next("What the node recorded: each vWire's events, read from its event log");
    timeline::print(&db(stage), &stage.vwires, &mut stage.shown).await?;
    say::detail(1, "Times are UTC. To see the same rows yourself:");
    say::detail(2, sqlite_events(&db(stage)));
    Ok(tally)
}

/// The SVIDs of this run's programs.
struct ProgramSvids {
    node: ProgramSvid,
    endpoint: ProgramSvid,
    clients: Vec<ProgramSvid>,
}

/// Step: the throw-away trust domain, and an SVID for each program, shown by SPIFFE ID.
fn issue_identities(stage: &mut Stage, steps: &mut Steps) -> anyhow::Result<ProgramSvids> {
    steps.next(format_args!(
        "A throw-away trust domain, {TRUST_DOMAIN}: a CA for this run and an X.509-SVID for each program"
    ));
    let dir = stage.dir().to_owned();
    let identities = stage.identities.insert(Identities::new()?);
    let svids = ProgramSvids {
        node: identities.issue(&format!("/node/{}", stage.tag), &dir, "node")?,
        endpoint: identities.issue(&format!("/endpoint/{ENDPOINT}"), &dir, "endpoint")?,
        clients: (1..=CLIENTS)
            .map(|n| {
                identities.issue(
                    &format!("/client/demo-nsc-{n}"),
                    &dir,
                    &format!("client-{n}"),
                )
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let named = [("node", &svids.node), ("endpoint", &svids.endpoint)];
    let clients = svids
        .clients
        .iter()
        .enumerate()
        .map(|(i, svid)| (i + 1, svid));
    for (role, svid) in named {
        say::detail(1, format_args!("{role:<11} {}", svid.spiffe_id));
    }
    for (n, svid) in clients {
        say::detail(
            1,
            format_args!("{:<11} {}", format!("demo-nsc-{n}"), svid.spiffe_id),
        );
    }
    say::detail(
        2,
        "every call below is mutual TLS; the node records each client by the SPIFFE ID in its certificate",
    );
    Ok(svids)
}

/// Step: `nsm serve`, until it serves. Its URL.
async fn start_node(
    stage: &mut Stage,
    steps: &mut Steps,
    svid: &ProgramSvid,
) -> anyhow::Result<PeerUrl> {
    steps.next("The node (nsm serve), with the kernel data plane");
    let dir = stage.dir().to_owned();
    let url: PeerUrl = format!("unix://{}", dir.join("nsm.sock").display()).parse()?;
    let mut args = owned(&[
        "serve",
        "--listen",
        &url.to_string(),
        "--db",
        &db(stage).display().to_string(),
        "--node",
        &stage.tag,
        "--dataplane",
        "kernel",
    ]);
    args.extend(svid.flags());
    say::command(1, &args, &dir);
    let own = stage.own_security()?;
    let node = stage.node.insert(Child::spawn(
        "the node",
        &args,
        dir.join("node.log"),
        false,
    )?);
    children::wait_serving(&url, &own, node, PATIENCE).await?;
    say::detail(
        2,
        "serving NSM's API; every change of a vWire goes to its event log first",
    );
    Ok(url)
}

/// Step: `nsm endpoint`, until the node's registry lists it.
async fn start_endpoint(
    stage: &mut Stage,
    steps: &mut Steps,
    node: &PeerUrl,
    svid: &ProgramSvid,
    netns: &str,
) -> anyhow::Result<()> {
    steps.next(format_args!(
        "An endpoint (nsm endpoint) offering the network service {SERVICE}"
    ));
    let dir = stage.dir().to_owned();
    let url: PeerUrl = format!("unix://{}", dir.join("nse.sock").display()).parse()?;
    let mut args = owned(&[
        "endpoint",
        "--service",
        SERVICE,
        "--cidr",
        CIDR,
        "--name",
        ENDPOINT,
        "--netns",
        &format!("/run/netns/{netns}"),
        "--listen",
        &url.to_string(),
        "--registry",
        &node.to_string(),
        "--db",
        &dir.join("nse.db").display().to_string(),
    ]);
    args.extend(svid.flags());
    say::command(1, &args, &dir);
    let own = stage.own_security()?;
    let endpoint = stage.endpoint.insert(Child::spawn(
        "the endpoint",
        &args,
        dir.join("endpoint.log"),
        false,
    )?);
    children::wait_serving(&url, &own, endpoint, PATIENCE).await?;
    children::wait_registered(node, &own, ENDPOINT, endpoint, PATIENCE).await?;
    say::detail(
        2,
        format_args!("registered with the node as {ENDPOINT}; it hands out addresses from {CIDR}"),
    );
    Ok(())
}

/// Interactive mode: hints for looking around, then Ctrl-C (or a child that dies).
pub(super) async fn wait_for_ctrl_c(
    stage: &mut Stage,
    signals: &mut Signals,
    tally: Tally,
) -> Ending {
    say::blank();
    say::line("The vWires stay up, refreshed by their clients. In another terminal, look around:");
    if let Some(vwire) = stage.vwires.first() {
        say::detail(
            1,
            format_args!(
                "sudo ip netns exec {} ip addr show {INTERFACE}",
                vwire.netns
            ),
        );
        say::detail(
            1,
            format_args!(
                "sudo ip netns exec {} ping -c 3 {}",
                vwire.netns, vwire.endpoint_addr
            ),
        );
    }
    say::detail(1, format_args!("sudo {}", sqlite_events(&db(stage))));
    say::blank();
    say::line("Press Ctrl-C to close the vWires and clean up.");
    let died = async {
        loop {
            tokio::time::sleep(WATCH).await;
            if let Some(message) = stage.exited() {
                return message;
            }
        }
    };
    tokio::select! {
        () = signals.recv() => Ending::Shown(tally),
        message = died => Ending::Failed(anyhow::anyhow!(message)),
    }
}

/// The last steps: the clients close their vWires (and the timelines show it), then the
/// endpoint, the node, the namespaces and the directory go. Whether all went cleanly, and
/// the directory if kept.
pub(super) async fn take_down(
    stage: &mut Stage,
    steps: &mut Steps,
    keep: bool,
) -> (bool, Option<PathBuf>) {
    let mut clean = true;
    if !stage.clients.is_empty() {
        steps.next("Closing the vWires: SIGTERM to each client, which sends Close to the node");
        clean &= stage.close_clients().await;
        if !stage.vwires.is_empty() {
            say::detail(1, "What the node recorded since:");
            if let Err(e) = timeline::print(&db(stage), &stage.vwires, &mut stage.shown).await {
                say::detail(1, format_args!("{e:#}"));
                clean = false;
            }
        }
    }
    steps.next("Cleaning up");
    let (kept, stopped) = stage.clean_up(keep).await;
    if let Some(dir) = &kept {
        say::detail(1, format_args!("kept {} (--keep)", dir.display()));
    }
    (clean && stopped, kept)
}

/// What the newcomer just saw, and where to look next; `waited` if the demo waited for
/// Ctrl-C (so the namespaces could be looked into).
pub(super) fn recap(kept: Option<&Path>, waited: bool) {
    say::blank();
    say::line("What you just saw");
    say::paragraph(
        1,
        &format!(
            "Two clients asked the node for the network service {SERVICE}. The node found the \
             endpoint {ENDPOINT} in its registry, took an address pair for each client from it, \
             and had its kernel data plane make a veth pair: one end ({INTERFACE}) in the \
             client's namespace, the other in the endpoint's. The pings crossed those pairs. \
             Every call was mutual TLS between SVIDs of the throw-away trust domain \
             {TRUST_DOMAIN}, and the node recorded each client by the SPIFFE ID in its \
             certificate. Each step was recorded in the node's event log before the client got its answer; \
             that log is how a restarted node knows its vWires. On SIGTERM each client sent \
             Close, and the node removed the pair and recorded Closed and DataplaneUnplumbed."
        ),
    );
    if let Some(dir) = kept {
        say::blank();
        say::line("To look yourself:");
        say::detail(1, sqlite_events(&dir.join("events.db")));
        say::detail(
            1,
            format_args!(
                "sqlite3 -readonly -header {} \"SELECT position, kind, client_addr, endpoint_addr, cause FROM ipam_log\"",
                dir.join("nse.db").display()
            ),
        );
        say::detail(
            1,
            format_args!(
                "less {}   (and endpoint.log, client-1.log, client-2.log)",
                dir.join("node.log").display()
            ),
        );
        say::detail(1, format_args!("rm -r {}   when done", dir.display()));
    }
    let mut next = Vec::new();
    if kept.is_none() {
        next.push("with --keep, the logs and event logs stay for you to read".to_owned());
    }
    if !waited {
        next.push(format!(
            "without --exit-after-pings, the vWires stay up until Ctrl-C, so you can look \
             inside the namespaces (sudo ip netns exec <namespace> ip addr show {INTERFACE})"
        ));
    }
    if !next.is_empty() {
        say::blank();
        say::paragraph(0, &format!("Run it again: {}.", next.join("; ")));
    }
}

/// The node's event log.
fn db(stage: &Stage) -> PathBuf {
    stage.dir().join("events.db")
}

/// The sqlite3 command that lists the vWire events of the log at `db`.
fn sqlite_events(db: &Path) -> String {
    format!(
        "sqlite3 -readonly -header {} \"SELECT position, recorded_at, stream, event_type FROM events WHERE stream LIKE 'vwire-%' ORDER BY position\"",
        db.display()
    )
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

//! `nsm bench dataplane`: does the kernel data plane move packets as fast as the kernel
//! can, and how fast does it plumb?
//!
//! Throughput: one TCP connection for `--seconds` across a vWire the real kernel data plane
//! plumbed between two fresh network namespaces (`vwire_gbps`), against the same connection
//! across a bare veth pair between two other fresh namespaces (`bare_veth_gbps`, the
//! baseline of `ratio`). Rounds run bare, vWire, vWire, bare, ... so that the machine's
//! drift hits both alike; the report takes the median round of each. The measurement is built in (an
//! iperf3-like sender and receiver, see [`tcp`]), so nothing needs installing.
//!
//! Plumbing: `--vwires` vWires between one more pair of namespaces, `--concurrency` at a
//! time, each with its own interface names and /32 addresses; then all unplumbed, and the
//! host searched to check that nothing of them is left.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN). Every namespace is named `nsmbench-<tag>-..`
//! and removed on every way out, an error or Ctrl-C included; removing a namespace removes
//! its links. Then whatever the data plane still lists for this run's node (a pair cut off
//! while it was being made, in the host's namespace) is removed too.

mod plumbing;
mod tcp;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use nsm_dataplane::kernel::{self, BareEnd, Kernel, netns, netns::Netns};
use nsm_dataplane::{Dataplane, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{ConnectionContext, IpContext, Mechanism, MechanismClass, Route, VWireId};
use serde::Serialize;

use super::{median, round3};
use nsm_inspect::output::print_report;

/// The vWire whose throughput is measured: client and endpoint addresses.
const VWIRE_ADDRESSES: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 90, 0, 1), Ipv4Addr::new(10, 90, 0, 2)];
/// The bare pair's addresses, in one /24 so that each end reaches the other.
const BARE_ADDRESSES: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 91, 0, 1), Ipv4Addr::new(10, 91, 0, 2)];
const BARE_PREFIX_LEN: u8 = 24;
/// iperf3's port; nothing else listens in a fresh namespace.
const PORT: u16 = 5201;
/// Sent before the measured window starts, uncounted (slow start, first page faults).
const WARMUP: Duration = Duration::from_millis(300);

#[derive(Debug, Args)]
pub struct DataplaneArgs {
    /// Seconds of TCP traffic in each measured round, after a 0.3 s warm-up.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// Rounds of (bare veth, vWire); the median of each is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// vWires to plumb, then unplumb, for the plumbing rates.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    vwires: u32,
    /// Plumbs (and unplumbs) in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct DataplaneReport {
    vwire_gbps: f64,
    bare_veth_gbps: f64,
    ratio: f64,
    plumbed_per_s: f64,
    unplumbed_per_s: f64,
    p50_plumb_ms: f64,
    p99_plumb_ms: f64,
    p50_unplumb_ms: f64,
    p99_unplumb_ms: f64,
    vwires: u32,
    concurrency: u32,
    seconds: u32,
    rounds: u32,
}

pub(crate) async fn run(args: DataplaneArgs) -> anyhow::Result<()> {
    let missing = kernel::missing_capabilities();
    if !missing.is_empty() {
        bail!(
            "nsm bench dataplane makes network namespaces and veth pairs, so it needs CAP_NET_ADMIN and CAP_SYS_ADMIN; this process lacks {}: run it as root",
            missing.join(" and ")
        );
    }
    let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let kernel = Kernel::start(&format!("nsmbench-{tag}")).await?;
    let mut spaces = Namespaces::new(&tag);
    let measured = tokio::select! {
        report = measure(&kernel, &mut spaces, &args) => report,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    drop(spaces);
    sweep(&kernel).await;
    let report = measured?;
    print_report(&report, args.json)
}

async fn measure(
    kernel: &Kernel,
    spaces: &mut Namespaces,
    args: &DataplaneArgs,
) -> anyhow::Result<DataplaneReport> {
    let [vwire_client, vwire_endpoint] = spaces.make_pair("v").await?;
    let [bare_client, bare_endpoint] = spaces.make_pair("b").await?;
    let [plumb_client, plumb_endpoint] = spaces.make_pair("p").await?;

    let request = PlumbRequest {
        vwire: VWireId::new_random(),
        payload: Payload::Ethernet,
        client: kernel_end(&vwire_client, "nsm-bench"),
        endpoint: kernel_end(&vwire_endpoint, "nse-bench"),
        context: p2p(VWIRE_ADDRESSES[0], VWIRE_ADDRESSES[1]),
    };
    kernel
        .plumb(request)
        .await
        .context("cannot plumb the measured vWire")?;
    let bare =
        [(&bare_client, "bare-c", 0), (&bare_endpoint, "bare-e", 1)].map(|(netns, name, i)| {
            BareEnd {
                netns: netns.clone(),
                name: name.to_owned(),
                address: BARE_ADDRESSES[i].into(),
                prefix_len: BARE_PREFIX_LEN,
            }
        });
    kernel
        .bare_pair(bare)
        .await
        .context("cannot make the bare veth pair")?;

    let window = tcp::Window {
        warmup: WARMUP,
        measured: Duration::from_secs(u64::from(args.seconds)),
    };
    let to_vwire = SocketAddr::from((VWIRE_ADDRESSES[1], PORT));
    let to_bare = SocketAddr::from((BARE_ADDRESSES[1], PORT));
    let mut vwire_rates = Vec::new();
    let mut bare_rates = Vec::new();
    // Bare, vWire, vWire, bare, ...: a drift over the run hits both alike.
    for round in 0..args.rounds * 2 {
        if (round + round / 2) % 2 == 0 {
            let bare = tcp::gbps(&bare_client, &bare_endpoint, to_bare, window).await;
            bare_rates.push(bare.context("TCP across the bare veth pair")?);
        } else {
            let vwire = tcp::gbps(&vwire_client, &vwire_endpoint, to_vwire, window).await;
            vwire_rates.push(vwire.context("TCP across the vWire")?);
        }
    }

    let rates = plumbing::Load {
        vwires: args.vwires,
        concurrency: args.concurrency as usize,
    }
    .run(kernel, &plumb_client, &plumb_endpoint)
    .await?;
    let vwire_gbps = median(&mut vwire_rates);
    let bare_veth_gbps = median(&mut bare_rates);
    Ok(DataplaneReport {
        vwire_gbps: round3(vwire_gbps),
        bare_veth_gbps: round3(bare_veth_gbps),
        ratio: round3(vwire_gbps / bare_veth_gbps),
        plumbed_per_s: rates.plumbed_per_s.round(),
        unplumbed_per_s: rates.unplumbed_per_s.round(),
        p50_plumb_ms: round3(rates.p50_plumb_ms),
        p99_plumb_ms: round3(rates.p99_plumb_ms),
        p50_unplumb_ms: round3(rates.p50_unplumb_ms),
        p99_unplumb_ms: round3(rates.p99_unplumb_ms),
        vwires: args.vwires,
        concurrency: args.concurrency,
        seconds: args.seconds,
        rounds: args.rounds,
    })
}

/// The bench's named namespaces, removed (with every link in them) when dropped. Also
/// `nsm bench vpp-capacity`'s.
pub(crate) struct Namespaces {
    tag: String,
    names: Vec<String>,
}

impl Namespaces {
    pub(crate) fn new(tag: &str) -> Self {
        Self {
            tag: tag.to_owned(),
            names: Vec::new(),
        }
    }

    /// A client namespace `nsmbench-<tag>-<kind>c` and an endpoint one `..-<kind>e`.
    pub(crate) async fn make_pair(&mut self, kind: &str) -> anyhow::Result<[Netns; 2]> {
        let client = self.make(&format!("{kind}c")).await?;
        let endpoint = self.make(&format!("{kind}e")).await?;
        Ok([client, endpoint])
    }

    async fn make(&mut self, suffix: &str) -> anyhow::Result<Netns> {
        let name = format!("nsmbench-{}-{suffix}", self.tag);
        let made = netns::create_named(&name).await?;
        self.names.push(name);
        Ok(made)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(error) = netns::delete_named(name) {
                tracing::warn!(
                    netns = %name,
                    %error,
                    "namespace left behind; remove it with `ip netns delete`"
                );
            }
        }
    }
}

/// Removes whatever this run's node left on the host once its namespaces are gone: after
/// an interruption, the halves of pairs that were being made, which live in the host's own
/// namespace and so do not go with the bench's. (The node's name is this run's alone, so
/// everything the data plane lists is this run's.)
async fn sweep(kernel: &Kernel) {
    let removed = match kernel.inventory().await {
        Ok(left) if left.is_empty() => return,
        Ok(left) => kernel.remove(left).await,
        Err(error) => Err(error),
    };
    match removed {
        Ok(work) => tracing::warn!(removed = ?work.operations, "links the bench left were removed"),
        Err(error) => tracing::warn!(%error, "cannot look for links the bench left"),
    }
}

/// A LOCAL/KERNEL mechanism: interface `name` in `netns`.
pub(crate) fn kernel_end(netns: &Netns, name: &str) -> Mechanism {
    Mechanism {
        cls: MechanismClass::Local,
        mechanism_type: "KERNEL".into(),
        parameters: BTreeMap::from([
            (kernel::NETNS_PARAMETER.to_owned(), netns.url().to_owned()),
            (kernel::NAME_PARAMETER.to_owned(), name.to_owned()),
        ]),
    }
}

/// A point-to-point context: a /32 on each end and a route on the link to the other's.
pub(crate) fn p2p(client: Ipv4Addr, endpoint: Ipv4Addr) -> ConnectionContext {
    let host = |a: Ipv4Addr| format!("{a}/32");
    let on_link = |a: Ipv4Addr| Route {
        prefix: host(a),
        next_hop: String::new(),
    };
    ConnectionContext {
        ip: IpContext {
            src_ip_addrs: vec![host(client)],
            dst_ip_addrs: vec![host(endpoint)],
            src_routes: vec![on_link(endpoint)],
            dst_routes: vec![on_link(client)],
            ..IpContext::default()
        },
        ..ConnectionContext::default()
    }
}

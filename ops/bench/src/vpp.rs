//! `nsm bench vpp`: how fast cross-connects can be programmed into VPP over its binary API,
//! and what one bare round trip to VPP costs, measured in the same run.
//!
//! Why: configuring VPP is where NSM's forwarder spends a request's time. NSM users reported
//! 18 s to configure two tap interfaces at 80 clients per node; a node that sets up vWires
//! by the thousand needs its VPP programming to be a small, known cost, and this bench says
//! what it is on this machine (against this VPP, or the in-process simulator).
//!
//! 1. **cross-connects**: one cross-connect is six requests, issued in order: two
//!    `memif_create_v2` (role master, on memif socket 0, the default socket every VPP has,
//!    each with its own memif `id`), `sw_interface_set_l2_xconnect` in both directions, and
//!    `sw_interface_set_flags` admin up on both. `--in-flight` cross-connects run at once
//!    over ONE API connection (VPP's client handles many requests in flight by context).
//!    200 unmeasured cross-connects warm up first; then `--xconnects` are measured:
//!    `xconnects_per_s`, `requests_per_s` (six per cross-connect), and `p50_xconnect_ms` /
//!    `p99_xconnect_ms`, the latency of one whole cross-connect.
//! 2. **teardown**: every interface made is deleted (`memif_delete`, which in VPP also drops
//!    its L2 cross-connect), with the same concurrency. Not part of the rate above; reported
//!    as `deletes_per_s` (memif_delete requests per second). The bench leaves nothing behind,
//!    and checks that with `memif_dump` (and, on the simulator, its whole state).
//! 3. **control_ping**: a bare `control_ping` round trip, one at a time, 200 warm-up then
//!    2000 measured: `control_ping_us`, the median, in microseconds. This is the floor: a
//!    cross-connect cannot take less than six of these serially.
//! 4. **where the time goes**: after the rounds, each request of a cross-connect on its
//!    own, `--in-flight` at a time, 1000 of each kind (and 2000 `memif_create_v2`, then as
//!    many `memif_delete`): `request_us`, the wall time per request of each kind. With
//!    requests in flight VPP's main thread is the bottleneck, so this is what one request
//!    costs VPP; a cross-connect's six cost their sum.
//!
//! The target is the in-process simulator (`nsm_vpp_simulator`, its socket in a temporary
//! folder) unless `--vpp-api-socket` names a real VPP's API socket (`"target": "vpp"`).
//! Rates and `control_ping_us` are the median over `--rounds`; latency quantiles are over
//! the samples of every round.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use nsm_vpp::api::{
    ControlPing, IfStatusFlags, MemifCreateV2, MemifDelete, MemifDump, MemifMode, MemifRole,
    SwInterfaceSetFlags, SwInterfaceSetL2Xconnect,
};
use nsm_vpp::client::{Client, Config, Error};
use nsm_vpp::message::Message;
use nsm_vpp_simulator::{LOCAL0, Simulator, SimulatorConfig};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{median, quantile_ms, round3};
use nsm_inspect::output::print_report;

/// Cross-connects before the measured ones, per round, not measured.
const WARMUP_XCONNECTS: u64 = 200;
/// control_ping round trips before the measured ones, per round, not measured.
const WARMUP_PINGS: u32 = 200;
/// control_ping round trips measured per round.
const PINGS: u32 = 2000;
/// Requests in one cross-connect.
const REQUESTS_PER_XCONNECT: u64 = 6;
/// VPP's default memif socket (`/run/vpp/memif.sock`), which exists in every VPP.
const MEMIF_SOCKET: u32 = 0;
/// The first memif `id` the bench uses on that socket; ids then count up through the run,
/// so they never clash with each other, and hardly with memifs someone else made there.
const FIRST_MEMIF_ID: u32 = 0x4e53_0000;

#[derive(Debug, Args)]
pub struct VppArgs {
    /// A real VPP's API socket (`socksvr { socket-name }`, usually /run/vpp/api.sock).
    /// Default: an in-process simulated VPP.
    #[arg(long, value_name = "PATH")]
    vpp_api_socket: Option<PathBuf>,
    /// Cross-connects programmed concurrently over the one API connection.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    in_flight: u32,
    /// Cross-connects measured per round (after 200 of warm-up).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    xconnects: u64,
    /// Rounds; rates are the median round's.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct VppReport {
    /// "simulator" or "vpp".
    target: &'static str,
    xconnects_per_s: f64,
    requests_per_s: f64,
    p50_xconnect_ms: f64,
    p99_xconnect_ms: f64,
    max_xconnect_ms: f64,
    deletes_per_s: f64,
    control_ping_us: f64,
    /// Microseconds of VPP per request, by message, with `in_flight` in flight.
    request_us: BTreeMap<&'static str, f64>,
    in_flight: u32,
    xconnects: u64,
    rounds: u32,
}

/// One round's figures.
struct Round {
    xconnects_per_s: f64,
    deletes_per_s: f64,
    control_ping_us: f64,
    latencies: Vec<Duration>,
}

pub(crate) async fn run(args: VppArgs) -> anyhow::Result<()> {
    // The simulator (and the folder of its socket) lives until the end of this function.
    let (target, socket, simulator, _dir) = match &args.vpp_api_socket {
        Some(path) => ("vpp", path.clone(), None, None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("nsm-bench-vpp-")
                .tempdir()
                .context("cannot make a temporary folder for the simulator's socket")?;
            let socket = dir.path().join("api.sock");
            let simulator = Simulator::start(SimulatorConfig::new(&socket)).with_context(|| {
                format!("cannot start the VPP simulator on {}", socket.display())
            })?;
            ("simulator", socket, Some(simulator), Some(dir))
        }
    };
    let config = Config {
        name: "nsm-bench".to_owned(),
        ..Config::new(&socket)
    };
    let client = Client::connect(config).await.map_err(|e| match e {
        // Names the socket, and its message already ends with the io error (which it also
        // gives as its source, so `{:#}` of the error itself would say that twice).
        Error::Connect { .. } => anyhow::anyhow!("{e}"),
        other => anyhow::Error::from(other).context(format!(
            "cannot open an API session on {} ({target})",
            socket.display()
        )),
    })?;
    let report = measure(&args, target, &client, simulator.as_ref())
        .await
        .with_context(|| format!("nsm bench vpp against {target} at {}", socket.display()))?;
    let _ = client.disconnect().await;
    print_report(&report, args.json)
}

async fn measure(
    args: &VppArgs,
    target: &'static str,
    client: &Client,
    simulator: Option<&Simulator>,
) -> anyhow::Result<VppReport> {
    client.require(&[
        MemifCreateV2::NAME,
        MemifDelete::NAME,
        SwInterfaceSetL2Xconnect::NAME,
        SwInterfaceSetFlags::NAME,
    ])?;
    let ids = Arc::new(AtomicU32::new(FIRST_MEMIF_ID));
    let in_flight = args.in_flight as usize;

    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let warm = program(client, &ids, WARMUP_XCONNECTS, in_flight).await?;
        teardown(client, warm.created, in_flight).await?;
        let measured = program(client, &ids, args.xconnects, in_flight).await?;
        let made = measured.created.len();
        let deleting = teardown(client, measured.created, in_flight).await?;
        rounds.push(Round {
            xconnects_per_s: args.xconnects as f64 / measured.elapsed.as_secs_f64(),
            deletes_per_s: made as f64 / deleting.as_secs_f64(),
            control_ping_us: ping_median_us(client).await?,
            latencies: measured.latencies,
        });
    }
    let request_us = cost_per_request(client, &ids, in_flight).await?;
    let used = FIRST_MEMIF_ID..ids.load(Ordering::Relaxed);
    check_nothing_left(client, used, simulator).await?;

    let mut xconnect_rates: Vec<f64> = rounds.iter().map(|r| r.xconnects_per_s).collect();
    let mut delete_rates: Vec<f64> = rounds.iter().map(|r| r.deletes_per_s).collect();
    let mut pings: Vec<f64> = rounds.iter().map(|r| r.control_ping_us).collect();
    let mut latencies: Vec<Duration> = rounds.into_iter().flat_map(|r| r.latencies).collect();
    latencies.sort_unstable();
    let xconnects_per_s = median(&mut xconnect_rates);
    Ok(VppReport {
        target,
        xconnects_per_s: xconnects_per_s.round(),
        requests_per_s: (xconnects_per_s * REQUESTS_PER_XCONNECT as f64).round(),
        p50_xconnect_ms: round3(quantile_ms(&latencies, 0.50)),
        p99_xconnect_ms: round3(quantile_ms(&latencies, 0.99)),
        max_xconnect_ms: round3(quantile_ms(&latencies, 1.0)),
        deletes_per_s: median(&mut delete_rates).round(),
        control_ping_us: round3(median(&mut pings)),
        request_us,
        in_flight: args.in_flight,
        xconnects: args.xconnects,
        rounds: args.rounds,
    })
}

/// What [`program`] made and how long it took.
struct Programmed {
    elapsed: Duration,
    /// Every cross-connect's latency.
    latencies: Vec<Duration>,
    /// Every interface made, to delete.
    created: Vec<u32>,
}

/// What one worker did; `error` is why it stopped early, if it did.
struct WorkerOutcome {
    latencies: Vec<Duration>,
    created: Vec<u32>,
    error: Option<anyhow::Error>,
}

/// Programs `count` cross-connects, `in_flight` at a time. On the first failure every
/// worker stops, what was made is deleted (best effort) and the failure is returned.
async fn program(
    client: &Client,
    ids: &Arc<AtomicU32>,
    count: u64,
    in_flight: usize,
) -> anyhow::Result<Programmed> {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let workers = in_flight.min(count as usize).max(1);
    let began = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let (client, ids, next, failed) =
            (client.clone(), ids.clone(), next.clone(), failed.clone());
        tasks.spawn(async move {
            let mut outcome = WorkerOutcome {
                latencies: Vec::new(),
                created: Vec::new(),
                error: None,
            };
            while !failed.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let started = Instant::now();
                match xconnect(&client, &ids, &mut outcome.created).await {
                    Ok(()) => outcome.latencies.push(started.elapsed()),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        outcome.error = Some(e);
                        break;
                    }
                }
            }
            outcome
        });
    }
    let mut done = Programmed {
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(count as usize),
        created: Vec::with_capacity(2 * count as usize),
    };
    let mut error = None;
    while let Some(outcome) = tasks.join_next().await {
        let outcome = outcome.context("a cross-connect worker died")?;
        done.latencies.extend(outcome.latencies);
        done.created.extend(outcome.created);
        error = error.or(outcome.error);
    }
    done.elapsed = began.elapsed();
    if let Some(error) = error {
        let made = done.created.len();
        let cleanup = match teardown(client, done.created, in_flight).await {
            Ok(_) => format!("the {made} interface(s) it made were deleted"),
            Err(e) => format!("deleting the {made} interface(s) it made failed too: {e:#}"),
        };
        return Err(error.context(format!("programming a cross-connect failed; {cleanup}")));
    }
    Ok(done)
}

/// One cross-connect, its six requests in order; every interface made goes into `created`
/// as soon as VPP has made it.
async fn xconnect(client: &Client, ids: &AtomicU32, created: &mut Vec<u32>) -> anyhow::Result<()> {
    let a = create_memif(client, ids.fetch_add(1, Ordering::Relaxed)).await?;
    created.push(a);
    let b = create_memif(client, ids.fetch_add(1, Ordering::Relaxed)).await?;
    created.push(b);
    for (rx, tx) in [(a, b), (b, a)] {
        let request = SwInterfaceSetL2Xconnect {
            rx_sw_if_index: rx,
            tx_sw_if_index: tx,
            enable: true,
        };
        client
            .request(&request)
            .await
            .with_context(|| format!("cross-connecting {rx} to {tx}"))?;
    }
    for sw_if_index in [a, b] {
        let request = SwInterfaceSetFlags {
            sw_if_index,
            flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
        };
        client
            .request(&request)
            .await
            .with_context(|| format!("setting interface {sw_if_index} admin up"))?;
    }
    Ok(())
}

async fn create_memif(client: &Client, id: u32) -> anyhow::Result<u32> {
    let request = MemifCreateV2 {
        role: MemifRole::MEMIF_ROLE_API_MASTER,
        mode: MemifMode::MEMIF_MODE_API_ETHERNET,
        rx_queues: 1,
        tx_queues: 1,
        id,
        socket_id: MEMIF_SOCKET,
        ring_size: 1024,
        buffer_size: 2048,
        ..MemifCreateV2::default()
    };
    let reply = client
        .request(&request)
        .await
        .with_context(|| format!("creating memif id {id} on memif socket {MEMIF_SOCKET}"))?;
    Ok(reply.sw_if_index)
}

/// Deletes `interfaces`, `in_flight` at a time; returns how long it took. Every delete is
/// tried; the first failure is returned after the rest.
async fn teardown(
    client: &Client,
    interfaces: Vec<u32>,
    in_flight: usize,
) -> anyhow::Result<Duration> {
    let interfaces = Arc::new(interfaces);
    let next = Arc::new(AtomicU64::new(0));
    let workers = in_flight.min(interfaces.len()).max(1);
    let began = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let (client, interfaces, next) = (client.clone(), interfaces.clone(), next.clone());
        tasks.spawn(async move {
            let mut first_error = None;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&sw_if_index) = interfaces.get(n) else {
                    break;
                };
                let deleted = client.request(&MemifDelete { sw_if_index }).await;
                if let Err(e) = deleted {
                    let e = anyhow::Error::from(e).context(format!("deleting memif {sw_if_index}"));
                    first_error = first_error.or(Some(e));
                }
            }
            first_error
        });
    }
    let mut error = None;
    while let Some(outcome) = tasks.join_next().await {
        error = error.or(outcome.context("a delete worker died")?);
    }
    let elapsed = began.elapsed();
    match error {
        Some(error) => Err(error),
        None => Ok(elapsed),
    }
}

/// Cross-connects' worth of requests timed one kind at a time, for [`cost_per_request`].
const COSTED_XCONNECTS: usize = 1000;

/// Wall microseconds per request of each kind of a cross-connect, `in_flight` at a time:
/// 2 × [`COSTED_XCONNECTS`] memifs made, cross-connected in pairs both ways, set up, then
/// deleted; and as many `control_ping`s as cross-connects, for the floor.
async fn cost_per_request(
    client: &Client,
    ids: &AtomicU32,
    in_flight: usize,
) -> anyhow::Result<BTreeMap<&'static str, f64>> {
    let mut costs = BTreeMap::new();
    let ping = timed(COSTED_XCONNECTS, in_flight, |_| async {
        client.ping().await.context("control_ping").map(drop)
    });
    costs.insert(ControlPing::NAME, ping.await?);
    let first = ids.fetch_add(2 * COSTED_XCONNECTS as u32, Ordering::Relaxed);
    let made = Arc::new(std::sync::Mutex::new(vec![0; 2 * COSTED_XCONNECTS]));
    let create = timed(2 * COSTED_XCONNECTS, in_flight, |i| {
        let made = Arc::clone(&made);
        async move {
            let sw_if_index = create_memif(client, first + i as u32).await?;
            made.lock().expect("made lock")[i] = sw_if_index;
            Ok(())
        }
    });
    let created = create.await;
    let made = std::mem::take(&mut *made.lock().expect("made lock"));
    let made: Vec<u32> = made.into_iter().filter(|&index| index != 0).collect();
    let outcome = async {
        costs.insert(MemifCreateV2::NAME, created?);
        let made = &made;
        let xconnect = timed(2 * COSTED_XCONNECTS, in_flight, |i| async move {
            let request = SwInterfaceSetL2Xconnect {
                rx_sw_if_index: made[i],
                tx_sw_if_index: made[i ^ 1],
                enable: true,
            };
            client
                .request(&request)
                .await
                .map(drop)
                .context("cross-connecting")
        });
        costs.insert(SwInterfaceSetL2Xconnect::NAME, xconnect.await?);
        let up = timed(2 * COSTED_XCONNECTS, in_flight, |i| async move {
            let request = SwInterfaceSetFlags {
                sw_if_index: made[i],
                flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
            };
            client.request(&request).await.map(drop).context("admin up")
        });
        costs.insert(SwInterfaceSetFlags::NAME, up.await?);
        anyhow::Ok(())
    }
    .await;
    let began = Instant::now();
    let deleted = teardown(client, made.clone(), in_flight).await;
    let per_delete = began.elapsed().as_secs_f64() * 1e6 / made.len().max(1) as f64;
    outcome?;
    deleted?;
    costs.insert(MemifDelete::NAME, round3(per_delete));
    Ok(costs)
}

/// Runs `operation(0..count)`, `in_flight` at a time, every one to its end; wall
/// microseconds per operation, or the first error.
async fn timed<F, Fut>(count: usize, in_flight: usize, operation: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let began = Instant::now();
    let outcomes: Vec<anyhow::Result<()>> = futures::stream::iter((0..count).map(operation))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let elapsed = began.elapsed();
    outcomes.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(round3(elapsed.as_secs_f64() * 1e6 / count as f64))
}

/// The median of serial control_ping round trips, in microseconds.
async fn ping_median_us(client: &Client) -> anyhow::Result<f64> {
    for _ in 0..WARMUP_PINGS {
        client.ping().await.context("control_ping")?;
    }
    let mut samples = Vec::with_capacity(PINGS as usize);
    for _ in 0..PINGS {
        let began = Instant::now();
        client.ping().await.context("control_ping")?;
        samples.push(began.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(&mut samples))
}

/// No memif of the bench's is left (and on the simulator, nothing but local0 and no
/// cross-connect at all), or the bench would have measured a leak.
async fn check_nothing_left(
    client: &Client,
    used: std::ops::Range<u32>,
    simulator: Option<&Simulator>,
) -> anyhow::Result<()> {
    let left: Vec<u32> = client
        .dump(&MemifDump::default())
        .await
        .context("memif_dump")?
        .into_iter()
        .filter(|memif| memif.socket_id == MEMIF_SOCKET && used.contains(&memif.id))
        .map(|memif| memif.sw_if_index)
        .collect();
    if !left.is_empty() {
        bail!("the bench left memifs behind: sw_if_index {left:?}");
    }
    if let Some(simulator) = simulator {
        let interfaces: Vec<u32> = simulator
            .interfaces()
            .iter()
            .map(|iface| iface.sw_if_index)
            .filter(|&index| index != LOCAL0)
            .collect();
        let xconnects = simulator.xconnects();
        if !interfaces.is_empty() || !xconnects.is_empty() {
            bail!(
                "the simulator still has interfaces {interfaces:?} and cross-connects {xconnects:?}"
            );
        }
    }
    Ok(())
}

//! `nsm bench request`: how fast the node sets up vWires over real gRPC, against a floor
//! measured in the same run, on the same machine and disk.
//!
//! The bench starts the real node (`nsm serve`, dry-run data plane, its event log in a
//! temporary folder) as a child process ([`node`]), serves an in-process endpoint that
//! answers like NSM's ([`servers`]), and registers the service and the endpoint over the
//! node's registry API. Then, over unix sockets:
//!
//! 1. **load** ([`load`]): `--clients` concurrent clients share `--connections` HTTP/2
//!    connections; each setup is one `networkservice.NetworkService/Request` for a new
//!    connection. `--warmup` setups first, unmeasured; then `--setups`, measured:
//!    `setups_per_s`, `p50_ms`, `p99_ms`.
//! 2. **serial**: the same Request from one client, one at a time: `serial_p50_ms`.
//! 3. **floor** ([`floor`]), after the node is stopped: one bare tonic unary round trip
//!    (`echo_p50_ms`) plus one fsync'd SQLite commit with the event log's pragmas
//!    (`commit_p50_ms`).
//!
//! `ratio_p50` = `serial_p50_ms` / `floor_p50_ms`: one client's setup against one client's
//! floor. A setup is two gRPC round trips (client to node, node to endpoint) and two durable
//! appends (`Requested` before the endpoint is called, `Established` after), so about 2 is
//! the honest expectation; well above 2 is time the node spends of its own.

mod floor;
mod load;
mod node;
mod servers;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use nsm_proto::transport::DEFAULT_CONNECT_TIMEOUT;
use serde::Serialize;
use tonic::transport::Channel;

use super::{quantile_ms, round3};
use node::Node;
use nsm_inspect::output::print_report;
use servers::{BenchEndpoint, Echo, LocalServer};

/// What `ratio_p50` should be if the node added nothing to two round trips and two commits.
const EXPECTED_RATIO: f64 = 2.0;

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Concurrent clients in the measured load.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    clients: u32,
    /// HTTP/2 connections the clients share, round robin (one connection caps concurrency).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    connections: u32,
    /// Setups measured under load.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    setups: u64,
    /// Setups before the measured load, not measured.
    #[arg(long, default_value_t = 500)]
    warmup: u64,
    /// Setups of the serial run (one client, one at a time).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    serial: u64,
    /// Samples of each floor measurement (echo round trips, SQLite commits).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    floor_samples: u32,
    /// Directory for the node's event log, the sockets and the floor's SQLite file; a
    /// temporary folder is made (and removed) in it. Default: the system's temporary
    /// directory. Keep its path short: unix socket paths are limited to ~100 bytes.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct RequestReport {
    setups_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    serial_p50_ms: f64,
    serial_p99_ms: f64,
    /// `echo_p50_ms` + `commit_p50_ms`.
    floor_p50_ms: f64,
    echo_p50_ms: f64,
    commit_p50_ms: f64,
    /// `serial_p50_ms` / `floor_p50_ms`.
    ratio_p50: f64,
    /// Two round trips and two commits per setup.
    expected_ratio_p50: f64,
    clients: u32,
    connections: u32,
    setups: u64,
    warmup: u64,
    serial_setups: u64,
    floor_samples: u32,
}

/// What the node was measured to do.
struct NodeRuns {
    wall: std::time::Duration,
    load: Vec<std::time::Duration>,
    serial: Vec<std::time::Duration>,
}

pub(crate) async fn run(args: RequestArgs) -> anyhow::Result<()> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("nsm-bench-request-");
    let dir = match &args.dir {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .context("cannot make a temporary folder")?;

    let runs = measure_node(&args, dir.path()).await?;
    let echo_server = LocalServer::start(dir.path().join("echo.sock"), Echo)?;
    let echo_p50 = floor::echo_p50(&echo_server.url, args.floor_samples).await?;
    drop(echo_server);
    let commit_p50 = floor::commit_p50(&dir.path().join("floor.db"), args.floor_samples).await?;

    let serial_p50 = quantile_ms(&runs.serial, 0.50);
    let floor_p50 = echo_p50 + commit_p50;
    let report = RequestReport {
        setups_per_s: (args.setups as f64 / runs.wall.as_secs_f64()).round(),
        p50_ms: round3(quantile_ms(&runs.load, 0.50)),
        p99_ms: round3(quantile_ms(&runs.load, 0.99)),
        max_ms: round3(quantile_ms(&runs.load, 1.0)),
        serial_p50_ms: round3(serial_p50),
        serial_p99_ms: round3(quantile_ms(&runs.serial, 0.99)),
        floor_p50_ms: round3(floor_p50),
        echo_p50_ms: round3(echo_p50),
        commit_p50_ms: round3(commit_p50),
        ratio_p50: round3(serial_p50 / floor_p50),
        expected_ratio_p50: EXPECTED_RATIO,
        clients: args.clients,
        connections: args.connections,
        setups: args.setups,
        warmup: args.warmup,
        serial_setups: args.serial,
        floor_samples: args.floor_samples,
    };
    print_report(&report, args.json)
}

/// Starts the endpoint and the node, registers, and runs the load and the serial run. The
/// node and the endpoint are stopped on return, on every path.
async fn measure_node(args: &RequestArgs, dir: &std::path::Path) -> anyhow::Result<NodeRuns> {
    let endpoint = LocalServer::start(dir.join("nse.sock"), BenchEndpoint::default())?;
    let node = Node::start(dir).await?;
    let runs = async {
        node.register(&endpoint.url.to_string()).await?;
        let channels: Vec<Channel> = (0..args.connections)
            .map(|_| node.url.channel(DEFAULT_CONNECT_TIMEOUT))
            .collect();
        load::probe(&channels[0]).await?;
        load::drive(&channels, args.clients, args.warmup).await?;
        let (wall, load) = load::drive(&channels, args.clients, args.setups).await?;
        let (_, serial) = load::drive(&channels[..1], 1, args.serial).await?;
        anyhow::Ok(NodeRuns { wall, load, serial })
    }
    .await;
    runs.map_err(|e| node.explain(e))
}

//! # nsm-bench: `nsm bench ...`
//!
//! Measurements an operator runs on a node's own hardware. Each prints a table, or JSON
//! with `--json`; none is a pass/fail test. Each bench owns its workload and its baseline
//! (measured in the same run, so a figure is a ratio, not a number from another machine).
//! `nsm bench vpp` is the only user of the VPP simulator outside the tests, which is why the
//! benches are a crate of their own: the daemon (`nsm-serve`) never links it.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod actors;
mod authz;
mod dataplane;
mod fold;
mod ops;
mod request;
mod store;
mod vpp;
mod vpp_capacity;
mod workload;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Can this disk carry the event log? Durable append throughput with group commit,
    /// against raw SQLite inserts with the same pragmas, batch sizes and payloads.
    Store(store::StoreArgs),
    /// How long start-up replay takes on a big log: fold N events into vWire state.
    Fold(fold::FoldArgs),
    /// Memory per idle vWire actor, and replay time, at N live vWires.
    Actors(actors::ActorsArgs),
    /// How fast vWires are set up over real gRPC, against a floor of one gRPC round trip
    /// plus one fsync'd commit (a setup is two of each, so ratio_p50 ≈ 2 is the honest aim).
    Request(request::RequestArgs),
    /// Whether a vWire moves packets as fast as the kernel can: TCP throughput across a
    /// vWire of the kernel data plane against a bare veth pair, and how fast vWires are
    /// plumbed and unplumbed. Needs root.
    Dataplane(dataplane::DataplaneArgs),
    /// How fast VPP is programmed over its binary API: cross-connects (two memifs, L2
    /// cross-connected both ways, admin up) per second with N in flight on one connection,
    /// against one bare control_ping round trip. The in-process simulated VPP unless
    /// --vpp-api-socket names a real one.
    Vpp(vpp::VppArgs),
    /// How many vWires one VPP holds, per kind of end (MEMIF, veth + af_packet), made by the
    /// VPP data plane until VPP refuses one; checks that a refused vWire leaves nothing
    /// behind. Needs root and a real VPP (best one of its own: a full stats segment aborts
    /// VPP); --memif-workload-vpp-api-socket names a second VPP that connects the memifs.
    VppCapacity(vpp_capacity::VppCapacityArgs),
    /// How long the operator commands take on a big log (1,000,000 events over 100,000
    /// vWires): vwires --at a moment in the middle, show, events --vwire, verify.
    Ops(ops::OpsArgs),
    /// What authorizing one call costs a hop: the endpoint of a 3-hop path reads every
    /// segment's ES256 token, verifies the caller's signature, and evaluates every default
    /// policy (Rego, regorus). p50/p99 in microseconds, the parts timed on their own too.
    Authz(authz::AuthzArgs),
}

pub async fn run(which: Bench) -> anyhow::Result<()> {
    match which {
        Bench::Store(args) => store::run(args).await,
        Bench::Fold(args) => fold::run(args).await,
        Bench::Actors(args) => actors::run(args).await,
        Bench::Request(args) => request::run(args).await,
        Bench::Dataplane(args) => dataplane::run(args).await,
        Bench::Vpp(args) => vpp::run(args).await,
        Bench::VppCapacity(args) => vpp_capacity::run(args).await,
        Bench::Ops(args) => ops::run(args).await,
        Bench::Authz(args) => authz::run(args).await,
    }
}

/// The `q` quantile of sorted samples, in milliseconds.
fn quantile_ms(sorted: &[std::time::Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// The middle of `values` (sorting them); 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Rounds to three decimals for reports.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

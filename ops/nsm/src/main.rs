//! `nsm`: the nsm-rs binary. This file only parses arguments and hands each command to the
//! crate that owns it: `nsm-serve` (serve), `nsm-samples` (endpoint, request, demo),
//! `nsm-inspect` (the operator commands), `nsm-bench` (bench).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use nsm_bench as bench;
use nsm_inspect as inspect;
use nsm_samples::{demo, endpoint, request};
use nsm_serve as serve;
use nsm_serve::logging;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc instead of glibc's malloc: folding the log allocates many small strings and a
/// few large buffers, a pattern on which glibc spent a quarter of the fold's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// nsm-rs: an event-sourced Network Service Mesh runtime.
#[derive(Debug, Parser)]
#[command(name = "nsm", version, about)]
struct Cli {
    #[command(flatten)]
    logging: logging::LoggingArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show vWires carrying packets on this machine: a node, an endpoint and two clients in
    /// network namespaces, pings across each vWire, and the event log (run as root).
    Demo(demo::DemoArgs),
    /// Measure what this machine can carry (prints a table, or JSON with --json).
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Run the node daemon: NSM's gRPC API over the vWire actors and the event log.
    Serve(serve::ServeArgs),
    /// Run a sample Network Service Endpoint (like NSM's icmp-responder) with durable IPAM.
    Endpoint(endpoint::EndpointArgs),
    /// Request a vWire as a client (like NSM's cmd-nsc), keep it refreshed, close it on exit.
    Request(request::RequestArgs),
    /// The event log, filtered (by vWire, service, client, endpoint, kind, time, trace id);
    /// --follow streams new events as they are written.
    Events(inspect::events::EventsArgs),
    /// Every vWire and its state, now or as it was at a moment (--at TIME, --position P).
    Vwires(inspect::vwires::VWiresArgs),
    /// One vWire's whole story: each event, the gap since the one before, what changed.
    Show(inspect::show::ShowArgs),
    /// Re-make the runtime's decisions over the recorded events without side effects
    /// (--simulate) and report every one that differs from the log.
    Replay(inspect::replay::ReplayArgs),
    /// Check the log: positions, stream versions, event ids, schema versions, projections.
    Verify(inspect::verify::VerifyArgs),
    /// Write an incident bundle: events (optionally one vWire or a time window) and metadata.
    Export(inspect::bundle::ExportArgs),
    /// Load an incident bundle into a new, empty log, to inspect it like the node's own.
    Import(inspect::bundle::ImportArgs),
    /// Draw vWire lifecycles over time as a self-contained HTML page or SVG image.
    Timeline(inspect::timeline_cmd::TimelineArgs),
    /// Print a shell completion script (e.g. `nsm completions bash > /etc/bash_completion.d/nsm`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Daemons tell the operator what they did (INFO); one-shot commands speak only when
    /// something is wrong.
    fn default_log(&self) -> &'static str {
        match self {
            Command::Serve(_) | Command::Endpoint(_) | Command::Request(_) => "info",
            _ => "warn",
        }
    }
}

fn main() -> ExitCode {
    logging::abort_on_panic();
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.logging, cli.command.default_log()) {
        eprintln!("nsm: {e:#}");
        return ExitCode::from(2);
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let outcome = nsm_runtime::runtime::block_on(workers, async move {
        match cli.command {
            Command::Bench(which) => bench::run(which).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Endpoint(args) => endpoint::run(args).await,
            Command::Request(args) => request::run(args).await,
            Command::Events(args) => inspect::events::run(args).await,
            Command::Vwires(args) => inspect::vwires::run(args).await,
            Command::Show(args) => inspect::show::run(args).await,
            Command::Replay(args) => inspect::replay::run(args).await,
            Command::Verify(args) => inspect::verify::run(args).await,
            Command::Export(args) => inspect::bundle::export(args).await,
            Command::Import(args) => inspect::bundle::import(args).await,
            Command::Timeline(args) => inspect::timeline_cmd::run(args).await,
            Command::Completions { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "nsm", &mut std::io::stdout());
                Ok(())
            }
        }
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("nsm: {e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("nsm: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

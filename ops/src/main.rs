//! `nsm`: the nsm-rs binary. This file only parses arguments and hands each command to the
//! module that owns it.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod bench;
mod demo;
mod endpoint;
mod listen;
mod logging;
mod output;
mod request;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

impl Command {
    /// Daemons tell the operator what they did (INFO); one-shot commands speak only when
    /// something is wrong.
    fn default_log(&self) -> &'static str {
        match self {
            Command::Serve(_) | Command::Endpoint(_) | Command::Request(_) => "info",
            Command::Bench(_) | Command::Demo(_) => "warn",
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
    let outcome = nsm_actors::runtime::block_on(workers, async move {
        match cli.command {
            Command::Bench(which) => bench::run(which).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Endpoint(args) => endpoint::run(args).await,
            Command::Request(args) => request::run(args).await,
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

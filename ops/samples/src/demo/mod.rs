//! `nsm demo`: the first command of the README. Run as root on one machine, it sets up a
//! small mesh with the real programs and shows vWires carrying packets:
//!
//! 1. three network namespaces (two clients, one endpoint);
//! 2. a throw-away trust domain, `nsm-rs.demo`, and an X.509-SVID for each program, so every
//!    call below is mutual TLS and the node records each client by its SPIFFE ID;
//! 3. `nsm serve` with the kernel data plane;
//! 4. `nsm endpoint` offering `icmp-responder`, its end of each vWire in its namespace;
//! 5. two `nsm request` clients, one per client namespace, each given a vWire (a veth pair);
//! 6. pings across each vWire;
//! 7. each vWire's timeline from the node's event log;
//! 8. then (at once with `--exit-after-pings`, else on Ctrl-C) the clients close their
//!    vWires, the final timelines show it, and everything is taken down.
//!
//! Every part is a child process of this executable speaking gRPC over unix sockets, with
//! the arguments a user would type (shown as it goes). A missing capability stops the demo
//! before it touches anything; any failure, and Ctrl-C at any point, still runs the
//! teardown, and the [`stage`]'s drop guard covers what the teardown could not reach.
//!
//! | module | owns |
//! |---|---|
//! | [`steps`] | the steps in order: what each sets up and prints; the wait for Ctrl-C; the recap |
//! | [`stage`] | the directory, namespaces and children; ordered teardown; the drop guard |
//! | [`identities`] | the throw-away trust domain and each program's SVID files |
//! | [`children`] | spawning `nsm` children, waiting for them to serve or register, stopping them |
//! | [`clients`] | the `nsm request` clients and the vWire each reports |
//! | [`pings`] | pinging across each vWire |
//! | [`timeline`] | each vWire's events, read from the node's log |
//! | [`say`] | everything printed, on stdout |

mod children;
mod clients;
mod identities;
mod pings;
mod say;
mod stage;
mod steps;
mod timeline;

use clap::Args;

use self::pings::Tally;
use self::say::Steps;
use self::stage::Stage;
use crate::signals::Signals;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Take everything down right after the pings and timelines, without waiting for Ctrl-C
    /// (for CI and scripts).
    #[arg(long)]
    exit_after_pings: bool,
    /// Keep the temporary directory (logs, event log, IPAM log) and say where it is.
    #[arg(long)]
    keep: bool,
    /// Pings across each vWire.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pings: u32,
}

/// How the demo ended before its teardown.
enum Ending {
    /// Shown in full; the pings came to this.
    Shown(Tally),
    /// Ctrl-C (or SIGTERM) while setting up.
    Interrupted,
    /// Something went wrong.
    Failed(anyhow::Error),
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let missing = nsm_dataplane::kernel::missing_capabilities();
    if !missing.is_empty() {
        let command: Vec<String> = std::env::args().collect();
        anyhow::bail!(
            "nsm demo makes network namespaces and veth pairs, which needs CAP_NET_ADMIN and \
             CAP_SYS_ADMIN; this process lacks {}.\nRun it as root: sudo {}",
            missing.join(" and "),
            command.join(" ")
        );
    }
    let mut signals = Signals::install()?;
    let mut stage = Stage::new()?;
    let mut steps = Steps::default();
    steps::introduce(&stage);
    let ending = tokio::select! {
        shown = steps::show(&mut stage, &mut steps, args.pings) => match shown {
            Ok(tally) => Ending::Shown(tally),
            Err(e) => Ending::Failed(e),
        },
        () = signals.recv() => Ending::Interrupted,
    };
    let ending = match ending {
        Ending::Shown(tally) if !args.exit_after_pings => {
            steps::wait_for_ctrl_c(&mut stage, &mut signals, tally).await
        }
        other => other,
    };
    match ending {
        Ending::Interrupted => {
            say::blank();
            say::line("Interrupted: closing what was set up.");
        }
        Ending::Failed(_) => {
            say::blank();
            say::line("Something went wrong (the error is at the end); closing what was set up.");
        }
        Ending::Shown(_) => {}
    }
    let (clean, kept) = steps::take_down(&mut stage, &mut steps, args.keep).await;
    match ending {
        Ending::Shown(tally) if tally.all_answered() && clean => {
            steps::recap(kept.as_deref(), !args.exit_after_pings);
            Ok(())
        }
        Ending::Shown(tally) if !tally.all_answered() => anyhow::bail!(
            "{} of {} pings got no reply: the vWires did not carry packets (run again with \
             --keep and read node.log in the directory it keeps)",
            tally.sent - tally.answered,
            tally.sent
        ),
        Ending::Shown(_) => anyhow::bail!("the demo worked, but did not take down cleanly"),
        Ending::Interrupted => anyhow::bail!("interrupted"),
        Ending::Failed(e) => Err(e),
    }
}

//! The node's gRPC services (`nsm serve`): NSM's API served over the actors' handles.
//!
//! Today: the two registry services. The `nsm serve` command that binds listeners and the
//! NetworkService / MonitorConnection services come with the rest of issue 3.

// Not yet reachable from the command line: `nsm serve` arrives with the rest of issue 3, and
// until then only the tests use these services.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod registry;
pub(crate) mod status;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {}

pub(crate) async fn run(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("nsm serve is not built yet")
}

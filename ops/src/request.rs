//! `nsm request`: a sample client. Being written (issue 3).

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {}

pub(crate) async fn run(_args: RequestArgs) -> anyhow::Result<()> {
    anyhow::bail!("nsm request is not built yet")
}

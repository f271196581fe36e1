//! `nsm endpoint`: a sample Network Service Endpoint. Being written (issue 3).

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct EndpointArgs {}

pub(crate) async fn run(_args: EndpointArgs) -> anyhow::Result<()> {
    anyhow::bail!("nsm endpoint is not built yet")
}

//! Logs (tracing, to stderr, as text or JSON) and the crash-only panic policy.

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct LoggingArgs {
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info`, `nsm_events=debug`).
    #[arg(long, global = true, env = "NSM_LOG", default_value = "warn")]
    log: String,
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "NSM_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

pub(crate) fn init(args: &LoggingArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log)
        .map_err(|e| anyhow::anyhow!("invalid --log filter {:?}: {e}", args.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Crash-only: a panic anywhere (an actor on an arbiter thread included) ends the process,
/// and start-up replay is the recovery. Without this, a panicking arbiter thread would die
/// alone and leave the node half-alive.
pub(crate) fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

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
    /// Default: `info` for serve, endpoint and request; `warn` for the other commands.
    #[arg(long, global = true, env = "NSM_LOG")]
    log: Option<String>,
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

pub(crate) fn init(args: &LoggingArgs, default_filter: &str) -> anyhow::Result<()> {
    // h2, hyper and tower are chatty at INFO and say nothing an operator acts on (nor does
    // netlink_proto at WARN when a cancelled request's answer arrives); an
    // explicit --log is taken as given.
    let wanted = match &args.log {
        Some(filter) => filter.clone(),
        // netlink_proto warns of every answer that comes after its request was dropped.
        None => format!("{default_filter},h2=warn,hyper=warn,tower=warn,netlink_proto=error"),
    };
    let filter = EnvFilter::try_new(&wanted)
        .map_err(|e| anyhow::anyhow!("invalid --log filter {:?}: {e}", args.log))?;
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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

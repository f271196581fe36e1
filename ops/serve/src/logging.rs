//! Logs (tracing, to stderr, as text or JSON) and the crash-only panic policy.
//!
//! The subscriber is set up in `main`, before any runtime exists. Under the filter it has an
//! empty slot for one more layer, which `nsm serve` fills with its OTLP span exporter once
//! its runtime runs ([`add_span_layer`]); until then (and for every other command) the slot
//! is empty and costs one uncontended lock per span. Spans that the filter drops are not
//! exported either.

use std::sync::OnceLock;

use clap::{Args, ValueEnum};
use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// A layer that sees every span and event the filter lets through.
pub(crate) type SpanLayer = Box<dyn Layer<Registry> + Send + Sync>;

type Slot = reload::Handle<Option<SpanLayer>, Registry>;

/// The empty slot, once [`init`] has run.
static SLOT: OnceLock<Slot> = OnceLock::new();

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct LoggingArgs {
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info`, `nsm_runtime=debug`).
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

pub fn init(args: &LoggingArgs, default_filter: &str) -> anyhow::Result<()> {
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
    let (slot, handle) = reload::Layer::new(None::<SpanLayer>);
    tracing_subscriber::registry()
        .with(slot)
        .with(filter)
        .with(lines(args.log_format, ansi))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))?;
    let _ = SLOT.set(handle);
    Ok(())
}

/// Log lines to stderr in `format`.
fn lines<S>(format: LogFormat, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => Box::new(layer),
        LogFormat::Json => Box::new(layer.json()),
    }
}

/// Puts `layer` in the slot under the filter (see the module header); once per process.
pub(crate) fn add_span_layer(layer: SpanLayer) -> anyhow::Result<()> {
    let slot = SLOT
        .get()
        .ok_or_else(|| anyhow::anyhow!("logging is not set up"))?;
    let mut taken = false;
    slot.modify(|current| {
        if current.is_none() {
            *current = Some(layer);
            taken = true;
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot add the span layer: {e}"))?;
    anyhow::ensure!(taken, "a span layer is already set up");
    Ok(())
}

/// Crash-only: a panic anywhere (an actor on an arbiter thread included) ends the process,
/// and start-up replay is the recovery. Without this, a panicking arbiter thread would die
/// alone and leave the node half-alive.
pub fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        std::process::abort();
    }));
}

//! SIGINT and SIGTERM for the long-running commands (`serve` has its own drain): installed
//! at start, so that neither kills the process before it has cleaned up.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM, installed at start so that neither kills the process mid-way.
#[derive(Debug)]
pub(crate) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub(crate) fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received"),
        }
    }
}

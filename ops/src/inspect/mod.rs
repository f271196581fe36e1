//! Operator commands: questions asked of the event log, offline and read-only. Each opens the
//! log with [`log::LogFile`] (never a write, never a lock the node's writer waits for, so
//! they run beside a busy node or on a copy from another machine), prints a table for people
//! or JSON for programs, and fails with a message naming the file when it is missing, is not
//! an nsm-rs log, or has a schema newer than this binary.
//!
//! | command | module |
//! |---|---|
//! | `nsm events` (filters, `--follow`) | [`events`] |
//! | `nsm vwires [--at T\|--position P]` (time travel) | [`vwires`] |
//! | `nsm show VWIRE` | [`show`] |
//! | `nsm replay --simulate` | [`replay`] |
//! | `nsm verify` | [`verify`] |
//! | `nsm export` / `nsm import` | [`bundle`] |
//! | `nsm timeline` | [`timeline_cmd`], drawn by [`timeline`] |

pub(crate) mod bundle;
mod describe;
pub(crate) mod events;
mod filter;
mod fold;
mod log;
mod progress;
pub(crate) mod replay;
mod scan;
pub(crate) mod show;
mod table;
pub(crate) mod timeline;
pub(crate) mod timeline_cmd;
pub(crate) mod verify;
pub(crate) mod vwires;

use std::path::PathBuf;

use clap::Args;

/// The log a command reads, and how it prints.
#[derive(Debug, Clone, Args)]
pub(crate) struct LogArgs {
    /// The event log to read (it is never written). Default: the node's, /var/lib/nsm/events.db.
    #[arg(long, env = "NSM_DB", default_value = crate::serve::DEFAULT_DB)]
    pub(crate) db: PathBuf,
    /// Print JSON for programs (JSON lines for a stream of events) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Why printing stopped before the end: the reader closed the pipe (or a limit was reached),
/// which is success, or a real failure.
#[derive(Debug)]
pub(crate) enum Stop {
    Done,
    Failed(anyhow::Error),
}

impl Stop {
    pub(crate) fn from_io(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Stop::Done
        } else {
            Stop::Failed(error.into())
        }
    }
}

impl From<anyhow::Error> for Stop {
    fn from(error: anyhow::Error) -> Self {
        Stop::Failed(error)
    }
}

//! # nsm-inspect: the operator commands, as a library
//!
//! Questions asked of the event log, offline and read-only. Each opens the log with
//! [`nsm_log::read::LogReader`] (never a write, never a lock the node's writer waits for, so
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
//!
//! It reads logs offline, through `nsm-log`'s read API, and folds them with `nsm-domain`: it
//! never depends on the runtime or on a data plane, so it runs on any machine, against a log
//! copied from anywhere. It issues no SQL and names no column: `nsm import` writes through
//! `nsm-log`'s import API too. [`output`] is how every `nsm` command prints a report.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod bundle;
mod describe;
pub mod events;
mod filter;
mod fold;
pub mod output;
mod progress;
pub mod replay;
mod scan;
pub mod show;
mod table;
pub mod timeline;
pub mod timeline_cmd;
pub mod verify;
pub mod vwires;

use std::path::PathBuf;

use clap::Args;

/// The log a command reads, and how it prints.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// The event log to read (it is never written). Default: the node's, /var/lib/nsm/events.db.
    #[arg(long, env = "NSM_DB", default_value = nsm_log::DEFAULT_DB)]
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

impl From<nsm_log::ReadError> for Stop {
    fn from(error: nsm_log::ReadError) -> Self {
        Stop::Failed(error.into())
    }
}

//! # nsm-log: the durable event log, and the only code that knows its schema
//!
//! This crate owns what nsm-rs knows for certain: every change to every vWire and
//! registration is an event in an append-only log (the events themselves, and their folds,
//! are `nsm-domain`'s).
//!
//! * [`store`]: the event store contract ([`store::EventStore`]) and its implementations:
//!   [`store::SqliteStore`] (durable: one writer thread with group commit, a read pool,
//!   subscriptions) and [`store::MemoryStore`] (tests).
//! * [`projection`]: the `live_vwires` and `live_registry` projections, their rebuild from
//!   the log and the comparison of the two.
//! * [`read`]: [`read::LogReader`], a log opened read-only for the operator commands: bulk
//!   reads by position, stream or trace on a connection of its own, stream names, and the
//!   checks of `nsm verify` that SQL answers.
//! * [`import`]: [`import::Import`], a new log loaded from stored rows (`nsm import`) in one
//!   transaction.
//! * [`row`]: [`row::EventRow`], one `events` row as stored, and the one decoder of such rows
//!   that every read shares.
//! * [`ipam`]: [`ipam::IpamLog`], the sample endpoint's address allocations, in a file of
//!   their own whose schema is `migrations/endpoint/` (never in a node's event log).
//!
//! Nothing outside this crate issues SQL against an event log or names its columns (the
//! feature `test-support` adds [`testing`], for tests that damage a log on purpose). It knows
//! nothing of actors, gRPC or data planes.
//!
//! ## On-disk format
//!
//! One SQLite file in WAL mode. The `events` table (schema in `migrations/`, documented
//! column by column in the README) holds every event: a gap-free global `position`, a unique
//! `event_id` (the idempotency key), `stream` + `version` (unique, contiguous per stream),
//! `event_type` and `schema_version`, `recorded_at`, trace ids, and a JSON `payload`. The
//! `live_vwires` table is a projection of non-terminal vWires, written in the same
//! transaction as their events and rebuildable from them.
//!
//! ## Durability promise
//!
//! `append` resolves `Ok` only after the transaction holding the events has committed with
//! `synchronous=FULL` (the WAL is fsynced). An acknowledged event survives a process kill and
//! a power cut. An append that resolves with an error wrote nothing, except
//! [`StoreError::OutcomeUnknown`], after which the caller must re-read the log. Appending an
//! event id that is already in the log returns its original position and writes nothing.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod error;
pub mod import;
pub mod ipam;
pub mod projection;
pub mod read;
pub mod row;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use error::{BadRow, ImportError, OpenProblem, ReadError, RowProblem, StoreError};

/// Where a node keeps its event log unless told otherwise (`--db`, `NSM_DB`), and where the
/// operator commands look for it.
pub const DEFAULT_DB: &str = "/var/lib/nsm/events.db";

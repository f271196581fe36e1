//! # nsm-events: the vWire lifecycle and the durable event log
//!
//! This crate owns what nsm-rs knows for certain: every change to every vWire is an event in
//! an append-only log, and all state is a fold over those events.
//!
//! * [`vwire`]: the domain (network service, client identity, mechanisms, IP context, path),
//!   the lifecycle events (`Requested`, `Established`, `Refreshed`, `Expired`, `Closed`,
//!   `Failed`, `Healed`), the state fold and the pure `decide` function the actors run.
//! * [`store`]: the event store contract ([`store::EventStore`]) and its implementations:
//!   [`store::SqliteStore`] (durable) and [`store::MemoryStore`] (tests).
//! * [`replay`]: `nsm replay --simulate`, re-making each recorded decision to find divergences.
//!
//! It knows nothing of actors, gRPC or data planes.
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

pub mod clock;
pub mod dataplane;
mod error;
pub mod projection;
pub mod registry;
pub mod replay;
pub mod store;
pub mod timestamp;
pub mod upcast;
pub mod vwire;

pub use error::{OpenProblem, StoreError};

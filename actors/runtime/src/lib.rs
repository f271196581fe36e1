//! # nsm-runtime: the actors of a node and the flows they run
//!
//! One actor per vWire, a Manager that knows them all, the Registry, the Forwarder in front
//! of the data plane, and the journal they record through (DESIGN.md §3). It owns the
//! request, refresh, close, expiry and heal flows and start-up reconcile. Actix is an
//! implementation detail: callers use [`ManagerHandle`], [`VWireHandle`] and
//! [`RegistryHandle`], and no actix type appears in this crate's public API.
//!
//! It speaks domain types only (`nsm-domain`): the next hop ([`NextHop`]) takes and returns
//! them, so neither protobuf nor tonic is a dependency; the daemon (`nsm-serve`) puts gRPC
//! behind it. It does not own the log's storage (`nsm-log`) nor the data planes
//! (`nsm-dataplane`), only the order in which they are used.
//!
//! Invariants:
//! * a vWire's state changes only after its events are durable, in one exclusive step;
//! * every vWire that is live in the log has exactly one actor once [`ManagerHandle::start`] returns;
//! * an actor that cannot tell whether its append committed stops, and the Manager starts a
//!   fresh one that rebuilds from the log;
//! * expiry deadlines live in the events; timers are only their in-memory echo.
//!
//! Must run inside an actix `System` (the binary builds one on a multi-threaded tokio
//! runtime with `System::with_tokio_rt`).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod clock;

mod error;
mod faults;
mod flow;
mod forwarder;
mod journal;

mod manager;
mod mesh;
mod next_hop;
mod reconcile;
mod registry;
pub mod runtime;
pub mod stats;

mod vwire;

pub use error::ActorError;
pub use forwarder::{Forwarder, Sweep};
pub use journal::Journal;
pub use manager::{ManagerConfig, ManagerHandle, ReplayReport};
pub use mesh::{ConnectRequest, DEFAULT_REQUEST_TIMEOUT, LivenessConfig, Mesh};
pub use next_hop::{NextHop, NextHopError};
pub use reconcile::ReconcileReport;
pub use registry::{RegistryChange, RegistryConfig, RegistryHandle, RegistryReport, Selected};
pub use vwire::VWireHandle;

//! # nsm-domain: what a vWire and a registration are, and how their events decide and fold
//!
//! The pure model of nsm-rs (DESIGN.md §1-2). It owns:
//!
//! * [`vwire`]: the vWire's domain types (network service, client identity, mechanisms, IP
//!   context, path), its lifecycle events (`Requested`, `Established`, `Refreshed`,
//!   `Expired`, `Closed`, `Failed`, `Healed`, ...), the state fold and the pure `decide`
//!   function the actors run;
//! * [`registry`]: Network Services and Endpoints, their events and folds, and endpoint
//!   selection;
//! * [`dataplane`]: the events a node records when it reconciles its data plane;
//! * [`envelope`]: the envelope of every event (stream id and [`envelope::StreamKind`],
//!   position, causation, payload) and [`upcast`]: reading every schema version ever written;
//! * [`replay`]: the simulation behind `nsm replay --simulate`.
//!
//! It does not own, and never will: I/O of any kind, async, SQL, clocks (callers pass the
//! time in), actors, gRPC or data planes. The log (`nsm-log`) stores what this crate
//! decides; the runtime (`nsm-runtime`) asks it what to decide.
//!
//! Invariant: `decide` and the folds are total functions of their inputs. Given the same
//! events, every fold gives the same state on every node and in every replay.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod dataplane;
pub mod envelope;
mod error;
pub mod quote;
pub mod registry;
pub mod replay;
pub mod timestamp;
pub mod upcast;
pub mod vwire;

pub use error::EnvelopeError;
